"""Random sub-volume sampling with a minimum tumor fraction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Patch:
    """One sampled sub-volume.

    x: ``(C, sx, sy, sz)`` raw intensities, channels first (same dtype as the image).
    y: ``(sx, sy, sz, num_classes)`` float32 one-hot label, channels last, background included
       (the course's h5 ``y`` layout).
    corner: ``(x0, y0, z0)`` of the patch in the volume.
    tumor_fraction: fraction of the patch's voxels with a label > 0.
    """

    x: np.ndarray
    y: np.ndarray
    corner: tuple[int, int, int]
    tumor_fraction: float


def one_hot(label: np.ndarray, num_classes: int = 4) -> np.ndarray:
    """``label: (X, Y, Z)`` integer codes -> ``(X, Y, Z, num_classes)`` float32 one-hot."""
    codes = np.asarray(label).astype(np.int64)
    return (codes[..., None] == np.arange(num_classes)).astype(np.float32)


def sample_patch(
    image: np.ndarray,
    label: np.ndarray,
    size: tuple[int, int, int] = (160, 160, 16),
    min_tumor: float = 0.05,
    rng: np.random.Generator | None = None,
    max_tries: int = 1000,
    num_classes: int = 4,
) -> Patch | None:
    """Draw a random ``size`` sub-volume whose tumor fraction is at least ``min_tumor``.

    image: ``(X, Y, Z, C)``; label: ``(X, Y, Z)`` with codes ``0..num_classes-1``.
    Corners are uniform over the valid positions.  To avoid wasting tries, the z corner is
    drawn, with probability 3/4, among positions whose slab contains tumor at all (the x/y extent
    of 160 covers most of a 240-wide scan, z=16 does not).  Returns a :class:`Patch`, or None
    after ``max_tries`` rejected draws (a case with too little tumor).
    """
    rng = np.random.default_rng() if rng is None else rng
    X, Y, Z = label.shape
    sx, sy, sz = size
    if image.shape[:3] != label.shape:
        raise ValueError(f"image {image.shape} and label {label.shape} differ in size")
    if sx > X or sy > Y or sz > Z:
        raise ValueError(f"patch size {size} is larger than the volume {label.shape}")
    tumor = label > 0
    # tumor voxels per z-slice -> which z corners give a slab that holds any tumor
    per_z = tumor.sum(axis=(0, 1))
    csum = np.concatenate([[0], np.cumsum(per_z)])
    slab = csum[sz:] - csum[:-sz]  # tumor voxels in slab starting at z0, len Z - sz + 1
    hopeful = np.flatnonzero(slab >= min_tumor * sx * sy * sz)
    if hopeful.size == 0:
        return None
    need = min_tumor * sx * sy * sz
    for _ in range(max_tries):
        x0 = int(rng.integers(X - sx + 1))
        y0 = int(rng.integers(Y - sy + 1))
        if rng.random() < 0.75:
            z0 = int(hopeful[rng.integers(hopeful.size)])
        else:
            z0 = int(rng.integers(Z - sz + 1))
        t = tumor[x0 : x0 + sx, y0 : y0 + sy, z0 : z0 + sz]
        n = int(t.sum())
        if n >= need:
            xs = np.ascontiguousarray(
                np.moveaxis(image[x0 : x0 + sx, y0 : y0 + sy, z0 : z0 + sz], -1, 0)
            )
            ys = one_hot(label[x0 : x0 + sx, y0 : y0 + sy, z0 : z0 + sz], num_classes)
            return Patch(xs, ys, (x0, y0, z0), n / t.size)
    return None

"""Random sub-volume sampling with a minimum tumor fraction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tumorseg.contract import PATCH_SIZE


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
    size: tuple[int, int, int] = PATCH_SIZE,
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
    _check_sizes(image, label, size)
    X, Y, Z = label.shape
    sx, sy, sz = size
    tumor = label > 0
    # tumor voxels per z-slice -> which z corners give a slab that holds any tumor
    slab = _slab_sums(tumor.sum(axis=(0, 1)), sz)  # tumor voxels in slab starting at z0
    need = min_tumor * sx * sy * sz
    hopeful = np.flatnonzero(slab >= need)
    if hopeful.size == 0:
        return None
    for _ in range(max_tries):
        x0 = int(rng.integers(X - sx + 1))
        y0 = int(rng.integers(Y - sy + 1))
        if rng.random() < 0.75:
            z0 = int(hopeful[rng.integers(hopeful.size)])
        else:
            z0 = int(rng.integers(Z - sz + 1))
        n = int(tumor[x0 : x0 + sx, y0 : y0 + sy, z0 : z0 + sz].sum())
        if n >= need:
            return _cut(image, label, (x0, y0, z0), size, num_classes)
    return None


def sample_background_patch(
    image: np.ndarray,
    label: np.ndarray,
    size: tuple[int, int, int] = PATCH_SIZE,
    min_brain: float = 0.1,
    rng: np.random.Generator | None = None,
    num_classes: int = 4,
) -> Patch | None:
    """Draw a ``size`` sub-volume anywhere in the brain, whatever its tumor content.

    Such patches show the model normal anatomy (cerebellum, temporal lobes, cortex next to the
    skull) as background.  image: ``(X, Y, Z, C)``; label: ``(X, Y, Z)``.  The z corner is
    uniform over the slabs holding at least ``min_brain`` of the patch's voxels as brain
    (nonzero in any channel); x and y corners are centred on that slab's brain, jittered
    uniformly by up to a quarter of the free room.  Returns a :class:`Patch`, or None when no
    slab holds that much brain.
    """
    rng = np.random.default_rng() if rng is None else rng
    _check_sizes(image, label, size)
    X, Y, Z = label.shape
    sx, sy, sz = size
    brain = np.any(image != 0, axis=-1)
    slab = _slab_sums(brain.sum(axis=(0, 1)), sz)
    hopeful = np.flatnonzero(slab >= min_brain * sx * sy * sz)
    if hopeful.size == 0:
        return None
    z0 = int(hopeful[rng.integers(hopeful.size)])
    corner = [z0]
    inplane = brain[:, :, z0 : z0 + sz].any(axis=2)
    for axis, (dim, s) in enumerate(((X, sx), (Y, sy))):
        hit = np.flatnonzero(inplane.any(axis=1 - axis))
        centre = (hit[0] + hit[-1]) / 2.0 if hit.size else dim / 2.0
        room = dim - s
        start = centre - s / 2.0 + rng.uniform(-0.25, 0.25) * room
        corner.insert(axis, int(np.clip(round(start), 0, room)))
    return _cut(image, label, (corner[0], corner[1], corner[2]), size, num_classes)


def sample_class_patch(
    image: np.ndarray,
    label: np.ndarray,
    classes: tuple[int, ...],
    size: tuple[int, int, int] = PATCH_SIZE,
    rng: np.random.Generator | None = None,
    num_classes: int = 4,
) -> Patch | None:
    """Draw a ``size`` sub-volume centred near a voxel of one of ``classes`` (forced foreground).

    nnU-Net's class-aware oversampling: one class is drawn uniformly among those of ``classes``
    present in ``label``, then one of its voxels uniformly; the patch is centred on it, shifted
    by up to a quarter of the patch along each axis, and clipped into the volume.  Rare classes
    (enhancing rim, necrosis) and their borders thus reach the model far more often than
    their voxel share.  image: ``(X, Y, Z, C)``; label: ``(X, Y, Z)`` integer codes.
    Returns a :class:`Patch`, or None when no class of ``classes`` is present.
    """
    rng = np.random.default_rng() if rng is None else rng
    _check_sizes(image, label, size)
    present = [c for c in classes if np.any(label == c)]
    if not present:
        return None
    where = np.argwhere(label == present[int(rng.integers(len(present)))])
    centre = where[int(rng.integers(len(where)))]
    corner = []
    for c, s, dim in zip(centre, size, label.shape):
        start = int(c) - s // 2 + int(rng.integers(-(s // 4), s // 4 + 1))
        corner.append(int(np.clip(start, 0, dim - s)))
    return _cut(image, label, (corner[0], corner[1], corner[2]), size, num_classes)


def _check_sizes(image: np.ndarray, label: np.ndarray, size: tuple[int, int, int]) -> None:
    if image.shape[:3] != label.shape:
        raise ValueError(f"image {image.shape} and label {label.shape} differ in size")
    if any(s > d for s, d in zip(size, label.shape)):
        raise ValueError(f"patch size {size} is larger than the volume {label.shape}")


def _slab_sums(per_z: np.ndarray, sz: int) -> np.ndarray:
    """Sums of ``per_z`` over every window of ``sz`` slices, one per start position."""
    csum = np.concatenate([[0], np.cumsum(per_z)])
    return csum[sz:] - csum[:-sz]


def _cut(
    image: np.ndarray,
    label: np.ndarray,
    corner: tuple[int, int, int],
    size: tuple[int, int, int],
    num_classes: int,
) -> Patch:
    region = tuple(slice(c, c + s) for c, s in zip(corner, size))
    xs = np.ascontiguousarray(np.moveaxis(image[region], -1, 0))
    lab = label[region]
    return Patch(xs, one_hot(lab, num_classes), corner, float(np.mean(lab > 0)))

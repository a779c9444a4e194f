"""Training-time augmentation of channels-first patches: one place for flips and intensity jitter.

Two stages, both pure functions of their inputs and an ``np.random.Generator``:

* ``augment_raw`` works on raw intensities ``x (C, X, Y, Z)`` BEFORE standardization: a
  per-channel gamma, a smooth multiplicative bias field, in-plane blur, thick slices and
  Gaussian noise. It is what makes a model trained on synthetic scans meet new scanners.
* ``augment`` works on the standardized patch and its labels: random flips along X and Y
  (the brain is roughly symmetric left-right and the flips keep the z-axis) and a per-channel
  intensity scale and shift of the brain voxels.  At the SPATIAL level it first rotates and
  scales the patch in the axial plane (``rotate_scale``), image, brain mask and labels alike.

``Augment`` names the levels: NONE, FLIP (flips and a mild jitter), STRONG (both stages,
wider jitter), SPATIAL (STRONG plus small in-plane rotations and scaling, as nnU-Net's
spatial augmentation does in 3D) and DOMAIN (SPATIAL plus nnU-Net's image-quality changes:
simulated low in-plane resolution, a stronger blur of every channel at once, multiplicative
noise, then contrast and brightness of the standardized patch; ``augment_domain`` and
``adjust_contrast``).  ``PROBABILITIES`` lists every draw's probability and range; the
training manifest records the entry of its level.
"""

from __future__ import annotations

from enum import Enum

import numpy as np
from scipy import ndimage as ndi


class Augment(str, Enum):
    """Augmentation level of the training patches."""

    NONE = "none"
    FLIP = "flip"
    STRONG = "strong"
    SPATIAL = "spatial"
    DOMAIN = "domain"

    @property
    def raw(self) -> bool:
        """Whether the raw intensities are changed too (``augment_raw``)."""
        return self in (Augment.STRONG, Augment.SPATIAL, Augment.DOMAIN)

    @property
    def spatial(self) -> bool:
        """Whether the patch is rotated and scaled in plane (``rotate_scale``)."""
        return self in (Augment.SPATIAL, Augment.DOMAIN)


#: In-plane rotation (degrees, either way) and scale range of SPATIAL, each drawn with P_SPATIAL.
MAX_ROTATION, SCALE_RANGE, P_SPATIAL = 15.0, (0.85, 1.2), 0.3

#: DOMAIN's image-quality draws (nnU-Net's defaults, widened where the failing scans need it):
#: (probability per sample, range).  Low resolution: in-plane down-sampling factor; blur: the
#: in-plane SD in voxels (a third of it along z); noise: SD of the multiplicative factor;
#: contrast and brightness: per-channel factors on the standardized patch.
P_LOWRES, LOWRES_RANGE = 0.25, (1.0, 2.0)
P_BLUR_ALL, BLUR_RANGE = 0.25, (0.5, 2.0)
P_MULT_NOISE, MULT_NOISE_RANGE = 0.15, (0.0, 0.1)
P_CONTRAST, CONTRAST_RANGE = 0.15, (0.65, 1.5)
P_BRIGHTNESS, BRIGHTNESS_RANGE = 0.15, (0.7, 1.3)

_RAW = {
    "gamma": {"p_per_channel": 0.8, "exponent": [0.6, 1.6]},
    "bias_field": {"p_per_channel": 0.5, "log_sd_max": 0.3},
    "blur_in_plane": {"p_per_channel": 0.3, "sd_voxels": [0.3, 1.2]},
    "thick_slices": {"p_per_channel": 0.2, "voxels": [2, 4]},
    "gaussian_noise": {"p_per_channel": 0.4, "sd_of_mean_max": 0.08},
}
_SPATIAL = {
    "rotation_z": {"p": P_SPATIAL, "degrees_max": MAX_ROTATION},
    "scale_xy": {"p": P_SPATIAL, "range": list(SCALE_RANGE)},
}
_DOMAIN = {
    "low_resolution_xy": {"p": P_LOWRES, "factor": list(LOWRES_RANGE)},
    "blur_all_channels": {"p": P_BLUR_ALL, "sd_voxels_xy": list(BLUR_RANGE)},
    "multiplicative_noise": {"p": P_MULT_NOISE, "sd": list(MULT_NOISE_RANGE)},
    "contrast": {"p_per_channel": P_CONTRAST, "factor": list(CONTRAST_RANGE)},
    "brightness": {"p_per_channel": P_BRIGHTNESS, "factor": list(BRIGHTNESS_RANGE)},
}
_FLIPS = {"flip_x": {"p": 0.5}, "flip_y": {"p": 0.5}}

#: Every level's draws with their probabilities and ranges (the manifest's "augmentation").
PROBABILITIES: dict[str, dict] = {
    Augment.NONE.value: {},
    Augment.FLIP.value: {**_FLIPS, "jitter": {"scale": [0.9, 1.1], "shift_max": 0.1}},
    Augment.STRONG.value: {**_RAW, **_FLIPS, "jitter": {"scale": [0.75, 1.3], "shift_max": 0.3}},
    Augment.SPATIAL.value: {
        **_RAW,
        **_SPATIAL,
        **_FLIPS,
        "jitter": {"scale": [0.75, 1.3], "shift_max": 0.3},
    },
    Augment.DOMAIN.value: {
        **_RAW,
        **_DOMAIN,
        **_SPATIAL,
        **_FLIPS,
        "jitter": {"scale": [0.75, 1.3], "shift_max": 0.3},
    },
}


def augment_raw(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random scanner-like changes of raw intensities ``x (C, X, Y, Z)``; returns float32.

    Per channel and independently: gamma in [0.6, 1.6] (p 0.8), a low-frequency multiplicative
    bias field of log-SD up to 0.3 (p 0.5), in-plane Gaussian blur of SD up to 1.2 voxels
    (p 0.3), 2-4 voxel thick slices along z (p 0.2) and Gaussian noise up to 8 % of the mean
    brain intensity (p 0.4). Voxels that are 0 (outside the brain) stay 0.
    """
    x = np.asarray(x, np.float32).copy()
    brain = x != 0
    for c in range(x.shape[0]):
        ch, mask = x[c], brain[c]
        if not mask.any():
            continue
        top = float(ch[mask].max()) + 1e-6
        if rng.random() < 0.8:
            ch = top * np.clip(ch / top, 0.0, None) ** float(np.exp(rng.uniform(-0.5, 0.47)))
        if rng.random() < 0.5:
            coarse = rng.standard_normal((4, 4, 2)).astype(np.float32)
            field = ndi.zoom(coarse, np.array(ch.shape) / coarse.shape, order=1, mode="nearest")
            ch = ch * np.exp(
                rng.uniform(0.0, 0.3) * field[: ch.shape[0], : ch.shape[1], : ch.shape[2]]
            )
        if rng.random() < 0.3:
            sd = rng.uniform(0.3, 1.2)
            ch = ndi.gaussian_filter(ch, (sd, sd, 0))
        if rng.random() < 0.2 and ch.shape[2] >= 4:
            t = int(rng.integers(2, 5))
            ch = ndi.uniform_filter1d(ch, t, axis=2, mode="nearest")
        if rng.random() < 0.4:
            mean = float(ch[mask].mean())
            ch = ch + rng.normal(0.0, rng.uniform(0.0, 0.08) * mean, ch.shape).astype(np.float32)
        x[c] = np.where(mask, np.maximum(ch, 1e-3), 0.0)
    return x


def augment_domain(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """nnU-Net-like image-quality changes of raw intensities ``x (C, X, Y, Z)``; float32.

    Each drawn once per sample and applied to every channel alike, as an older or coarser
    scanner changes all sequences at once: simulated low in-plane resolution (nearest-neighbour
    down-sampling by a factor in ``LOWRES_RANGE``, linear up-sampling back, p ``P_LOWRES``), a
    Gaussian blur of in-plane SD in ``BLUR_RANGE`` voxels and a third of it along z
    (p ``P_BLUR_ALL``), and multiplicative noise ``x * N(1, sd)`` with sd in
    ``MULT_NOISE_RANGE`` (p ``P_MULT_NOISE``). Voxels that are 0 (outside the brain) stay 0.
    """
    x = np.asarray(x, np.float32).copy()
    brain = x != 0
    if rng.random() < P_LOWRES:
        f = rng.uniform(*LOWRES_RANGE)
        shape = x.shape[1:]
        small = [max(2, int(round(n / f))) for n in shape[:2]]
        for c in range(x.shape[0]):
            down = ndi.zoom(x[c], (small[0] / shape[0], small[1] / shape[1], 1), order=0)
            up = ndi.zoom(down, (shape[0] / down.shape[0], shape[1] / down.shape[1], 1), order=1)
            x[c] = up[: shape[0], : shape[1], : shape[2]]
    if rng.random() < P_BLUR_ALL:
        sd = rng.uniform(*BLUR_RANGE)
        for c in range(x.shape[0]):
            x[c] = ndi.gaussian_filter(x[c], (sd, sd, sd / 3))
    if rng.random() < P_MULT_NOISE:
        sd = rng.uniform(*MULT_NOISE_RANGE)
        x = x * rng.normal(1.0, sd, x.shape).astype(np.float32)
    return np.where(brain, np.maximum(x, 1e-3), 0.0).astype(np.float32)


def adjust_contrast(x: np.ndarray, brain: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Contrast and brightness of a standardized ``x (C, X, Y, Z)`` on ``brain`` voxels.

    Per channel: contrast (p ``P_CONTRAST``) stretches about the brain mean by a factor in
    ``CONTRAST_RANGE`` and clips to the channel's previous brain range, as nnU-Net does;
    brightness (p ``P_BRIGHTNESS``) multiplies by a factor in ``BRIGHTNESS_RANGE``.
    """
    x = np.asarray(x, np.float32).copy()
    for c in range(x.shape[0]):
        mask = brain[c]
        if not mask.any():
            continue
        ch = x[c]
        if rng.random() < P_CONTRAST:
            vals = ch[mask]
            lo, hi, mean = float(vals.min()), float(vals.max()), float(vals.mean())
            f = rng.uniform(*CONTRAST_RANGE)
            ch = np.where(mask, np.clip((ch - mean) * f + mean, lo, hi), ch)
        if rng.random() < P_BRIGHTNESS:
            ch = np.where(mask, ch * rng.uniform(*BRIGHTNESS_RANGE), ch)
        x[c] = ch
    return x


def rotate_scale(
    x: np.ndarray, y: np.ndarray, brain: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotate about the z-axis (up to ``MAX_ROTATION`` degrees) and scale in the axial plane
    (``SCALE_RANGE``), each with probability ``P_SPATIAL``, about the patch centre.

    x: ``(C, X, Y, Z)`` image (linear interpolation); y: ``(K, X, Y, Z)`` labels and brain:
    ``(C, X, Y, Z)`` bool mask (nearest neighbour, so labels stay 0/1).  What comes from outside
    the patch is 0 and not brain; image voxels outside the new brain mask are 0.  Returns new
    ``(x, y, brain)``; the inputs when nothing was drawn.
    """
    rotate, scale = rng.random() < P_SPATIAL, rng.random() < P_SPATIAL
    if not (rotate or scale):
        return x, y, brain
    angle = np.deg2rad(rng.uniform(-MAX_ROTATION, MAX_ROTATION)) if rotate else 0.0
    factor = rng.uniform(*SCALE_RANGE) if scale else 1.0
    cos, sin = np.cos(angle), np.sin(angle)
    # output voxel o samples input voxel M @ (o - c) + c: a rotation by angle, zoomed by factor
    matrix = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
    matrix[:2, :2] /= factor
    centre = (np.array(x.shape[1:], float) - 1) / 2
    offset = centre - matrix @ centre

    def warp(volume: np.ndarray, order: int) -> np.ndarray:
        out = ndi.affine_transform(volume, matrix, offset, order=order, mode="constant", cval=0)
        return out.astype(volume.dtype, copy=False)

    brain = np.stack([warp(b.astype(np.uint8), 0) > 0 for b in brain])
    x = np.stack([warp(c.astype(np.float32), 1) for c in x]) * brain
    y = np.stack([warp(k.astype(np.float32), 0) for k in y])
    return x.astype(np.float32), y, brain


def augment(
    x: np.ndarray,
    y: np.ndarray,
    brain: np.ndarray,
    rng: np.random.Generator,
    level: Augment = Augment.FLIP,
) -> tuple[np.ndarray, np.ndarray]:
    """Flip and jitter one standardized sample; returns new contiguous float32 ``(x, y)``.

    x: ``(C, X, Y, Z)`` standardized image; y: ``(K, X, Y, Z)`` labels; brain: ``(C, X, Y, Z)``
    bool mask of the brain voxels (where the jitter applies). SPATIAL first rotates and scales
    (``rotate_scale``).  Flips along X and Y (p 0.5 each), then per channel
    ``x * scale + shift`` on brain voxels: scale 0.9-1.1 and shift +-0.1 (FLIP), or scale
    0.75-1.3 and shift +-0.3 (STRONG, SPATIAL, DOMAIN). DOMAIN then changes contrast and
    brightness (``adjust_contrast``). NONE returns copies.
    """
    level = Augment(level)
    if level is Augment.NONE:
        return np.array(x, np.float32), np.array(y, np.float32)
    if level.spatial:
        x, y, brain = rotate_scale(x, y, brain, rng)
    for axis in (1, 2):
        if rng.random() < 0.5:
            x, y, brain = np.flip(x, axis), np.flip(y, axis), np.flip(brain, axis)
    (s_lo, s_hi), d = ((0.75, 1.3), 0.3) if level.raw else ((0.9, 1.1), 0.1)
    scale = rng.uniform(s_lo, s_hi, size=(x.shape[0], 1, 1, 1)).astype(np.float32)
    shift = rng.uniform(-d, d, size=(x.shape[0], 1, 1, 1)).astype(np.float32)
    x = np.where(brain, x * scale + shift, x).astype(np.float32)
    if level is Augment.DOMAIN:
        x = adjust_contrast(x, brain, rng)
    return np.ascontiguousarray(x), np.ascontiguousarray(y, dtype=np.float32)


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order ``(n,)`` in which epoch ``epoch`` visits ``n`` samples: a pure function of
    ``(seed, epoch)``, so a resumed run sees the same batches."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(int(n))

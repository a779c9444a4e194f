"""Label overlays: FLAIR in grey with the tumor classes in colour."""

from __future__ import annotations

import numpy as np

#: RGB colour of each tumor class (1 edema, 2 non-enhancing tumor, 3 enhancing tumor).
CLASS_COLORS = {1: (255, 0, 0), 2: (0, 255, 0), 3: (0, 0, 255)}


#: z-slices coloured at a time by ``get_labeled_image``: its float32 working arrays hold one
#: slab of this depth instead of the whole volume (a 240x240x155 scan: about 30 MB instead of
#: 0.45 GB at its peak).
CHUNK_SLICES = 16


def scale_to_uint8(volume: np.ndarray) -> np.ndarray:
    """Min-max scale any array to 0..255 over the whole array; a constant array maps to 0.

    ``volume``: any shape, float or int. Returns the same shape as float32 in [0, 255].
    """
    v = np.asarray(volume, dtype=np.float32)
    return _scaled(v, float(v.min()), float(v.max()))


def _scaled(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``v`` (float32) min-max scaled from [lo, hi] to [0, 255] as float32; zeros if hi <= lo."""
    if hi <= lo:
        return np.zeros_like(v)
    return (v - lo) * np.float32(255.0 / (hi - lo))


def get_labeled_image(
    image: np.ndarray, label: np.ndarray, is_categorical: bool = False
) -> np.ndarray:
    """Colour a volume's labels over its FLAIR channel.

    ``image``: (X, Y, Z, C) float, channel 0 is FLAIR. ``label``: (X, Y, Z) class codes
    0..3, or one-hot (X, Y, Z, 4) with background in channel 0 when ``is_categorical``.
    Returns (X, Y, Z, 3) uint8 RGB: FLAIR min-max scaled to 0..255 over the volume as grey
    where the label is background; edema red, non-enhancing tumor green, enhancing tumor blue.

    The sum is formed in float32 and clipped to 0..255 before the cast, so soft one-hot labels
    or a bright voxel under a label cannot wrap around; the original course added in uint8 and
    could wrap (e.g. 200 + 255 -> 199). The input arrays are not modified.  The volume is
    coloured ``CHUNK_SLICES`` z-slices at a time (the grey scale still spans the whole
    volume), so the result is the same as in one piece for a fraction of the memory.
    """
    image = np.asarray(image)
    label = np.asarray(label)
    if image.ndim != 4:
        raise ValueError(f"image must be (X, Y, Z, C) with FLAIR in channel 0, got {image.shape}")
    spatial = image.shape[:3]
    if is_categorical and label.shape != spatial + (4,):
        raise ValueError(f"one-hot label must be {spatial + (4,)}, got {label.shape}")
    if not is_categorical and label.shape != spatial:
        raise ValueError(f"label must be {spatial} class codes, got {label.shape}")
    flair = image[..., 0]
    # the float32 extremes of the whole volume, as scale_to_uint8 of all of it would take
    lo, hi = float(np.float32(flair.min())), float(np.float32(flair.max()))
    out = np.empty(spatial + (3,), np.uint8)
    for z0 in range(0, spatial[2], CHUNK_SLICES):
        z = slice(z0, z0 + CHUNK_SLICES)
        grey = _scaled(np.asarray(flair[:, :, z], dtype=np.float32), lo, hi)
        out[:, :, z] = _coloured(grey, _one_hot(label[:, :, z], is_categorical))
    return out


def _one_hot(label: np.ndarray, is_categorical: bool) -> np.ndarray:
    """(x, y, z, 4) float32 one-hot of class codes, or of a one-hot (soft) label as given."""
    if is_categorical:
        return label.astype(np.float32)
    codes = np.rint(label).astype(np.int16)
    return np.stack([codes == k for k in range(4)], axis=-1).astype(np.float32)


def _coloured(grey: np.ndarray, onehot: np.ndarray) -> np.ndarray:
    """(x, y, z, 3) uint8: ``grey`` (float32 0..255) weighted by the background channel of
    ``onehot`` plus each class's colour weighted by its channel, rounded and clipped."""
    rgb = np.repeat((grey * onehot[..., 0])[..., None], 3, axis=-1)
    for k, colour in CLASS_COLORS.items():
        rgb += onehot[..., k, None] * np.asarray(colour, dtype=np.float32)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)

"""Label overlays: FLAIR in grey with the tumor classes in colour."""

from __future__ import annotations

import numpy as np

#: RGB colour of each tumor class (1 edema, 2 non-enhancing tumor, 3 enhancing tumor).
CLASS_COLORS = {1: (255, 0, 0), 2: (0, 255, 0), 3: (0, 0, 255)}


def scale_to_uint8(volume: np.ndarray) -> np.ndarray:
    """Min-max scale any array to 0..255 over the whole array; a constant array maps to 0.

    ``volume``: any shape, float or int. Returns the same shape as float32 in [0, 255].
    """
    v = np.asarray(volume, dtype=np.float32)
    lo, hi = float(v.min()), float(v.max())
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
    could wrap (e.g. 200 + 255 -> 199). The input arrays are not modified.
    """
    image = np.asarray(image)
    label = np.asarray(label)
    if image.ndim != 4:
        raise ValueError(f"image must be (X, Y, Z, C) with FLAIR in channel 0, got {image.shape}")
    spatial = image.shape[:3]
    if is_categorical:
        if label.shape != spatial + (4,):
            raise ValueError(f"one-hot label must be {spatial + (4,)}, got {label.shape}")
        onehot = label.astype(np.float32)
    else:
        if label.shape != spatial:
            raise ValueError(f"label must be {spatial} class codes, got {label.shape}")
        codes = np.rint(label).astype(np.int16)
        onehot = np.stack([codes == k for k in range(4)], axis=-1).astype(np.float32)
    grey = scale_to_uint8(image[..., 0]) * onehot[..., 0]
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    for k, colour in CLASS_COLORS.items():
        rgb += onehot[..., k, None] * np.asarray(colour, dtype=np.float32)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)

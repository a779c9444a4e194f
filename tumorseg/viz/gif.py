"""An animated sweep through a labeled volume, the three views of the slice grid side by side."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tumorseg.atomic import write_bytes
from tumorseg.viz.labeled import CLASS_COLORS
from tumorseg.viz.plots import GRID_ROWS, take_slice

if TYPE_CHECKING:
    from IPython.display import Image

PROGRESS_ROWS = 3
#: Default sweep: every 3rd slice, 120 ms per frame (the original's 240 frames of 40 ms took
#: the same 9.6 s), grey in 32 levels.  About 0.85 MB for a 240x240x155 brain.
STEP = 3
DURATION_MS = 120
GREY_LEVELS = 32


def gif_frames(labeled: np.ndarray, step: int = 1) -> np.ndarray:
    """Frames of the sweep: for i = 0, step, 2 step, ... below the longest axis, the coronal,
    axial and sagittal slices at i side by side, oriented as in :func:`plot_image_grid`
    (each index clamped to its axis length).

    ``labeled``: (X, Y, Z, 3) uint8. Returns (ceil(max(X, Y, Z) / step), max(Y, Z) + 3,
    X + X + Y, 3) uint8, i.e. (80, 243, 720, 3) for a 240x240x155 volume and ``step=3``; a
    shorter panel is centred vertically on black.  The bottom 3 rows are a grey progress bar
    (i + 1) / n wide: it shows where the sweep is and keeps consecutive frames distinct, so GIF
    writers cannot merge the blank frames at the ends.
    """
    labeled = np.asarray(labeled)
    if labeled.ndim != 4 or labeled.shape[-1] != 3:
        raise ValueError(f"labeled must be (X, Y, Z, 3) RGB, got {labeled.shape}")
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    shape = labeled.shape[:3]
    n = max(shape)
    indices = range(0, n, step)
    # a view's picture is (rows, cols) = the two other axes, the later one first (rot90)
    sizes = [tuple(shape[a] for a in range(3) if a != axis)[::-1] for _, axis in GRID_ROWS]
    height = max(h for h, _ in sizes)
    width = sum(w for _, w in sizes)
    frames = np.zeros((len(indices), height + PROGRESS_ROWS, width, 3), dtype=np.uint8)
    for f, i in enumerate(indices):
        frames[f, height:, : max(1, round((i + 1) * width / n))] = 128
        col = 0
        for (_, axis), (h, w) in zip(GRID_ROWS, sizes):
            top = (height - h) // 2
            frames[f, top : top + h, col : col + w] = take_slice(
                labeled, axis, min(i, shape[axis] - 1)
            )
            col += w
    return frames


def palette_indices(frames: np.ndarray, grey_levels: int, colours: np.ndarray) -> np.ndarray:
    """Palette indices of (..., 3) uint8 ``frames`` for a palette of ``grey_levels`` evenly
    spaced greys followed by ``colours`` (K, 3): a grey pixel takes the nearest grey level, any
    other pixel the nearest palette entry by Euclidean RGB distance.  Returns uint8 of shape
    ``frames.shape[:-1]``."""
    frames = np.asarray(frames, dtype=np.uint8)
    r, g, b = frames[..., 0], frames[..., 1], frames[..., 2]
    out = np.rint(g.astype(np.float32) * ((grey_levels - 1) / 255)).astype(np.uint8)
    other = (r != g) | (g != b)
    if other.any():
        greys = np.linspace(0, 255, grey_levels)
        palette = np.concatenate([np.repeat(greys[:, None], 3, axis=1), colours]).astype(np.int32)
        pixels = frames[other].astype(np.int32)
        dist = ((pixels[:, None, :] - palette[None]) ** 2).sum(-1)
        out[other] = np.argmin(dist, axis=1)
    return out


def gif_bytes(frames: np.ndarray, duration_ms: int, grey_levels: int = GREY_LEVELS) -> bytes:
    """Encode (N, H, W, 3) uint8 frames as a looping GIF with one shared palette: ``grey_levels``
    evenly spaced greys plus the class colours; every pixel takes the nearest palette colour
    (no dithering), so grey is within half a level step and the class colours are exact.
    ``duration_ms``: display time of each frame."""
    from PIL import Image as PILImage

    colours = np.asarray(list(CLASS_COLORS.values()), dtype=np.uint8)
    greys = np.linspace(0, 255, grey_levels).round().astype(np.uint8)
    palette = np.concatenate([np.repeat(greys[:, None], 3, axis=1), colours])
    indices = palette_indices(frames, grey_levels, colours)
    flat = palette.ravel().tolist()
    images = []
    for frame in indices:
        image = PILImage.fromarray(frame, mode="P")
        image.putpalette(flat)
        images.append(image)
    buffer = io.BytesIO()
    images[0].save(
        buffer, "gif", save_all=True, append_images=images[1:], duration=int(duration_ms), loop=0
    )
    return buffer.getvalue()


def visualize_data_gif(
    labeled: np.ndarray,
    path: str | os.PathLike | None = None,
    duration_ms: int = DURATION_MS,
    step: int = STEP,
) -> Image:
    """The sweep of :func:`gif_frames` as a looping GIF, returned for display.

    ``labeled``: (X, Y, Z, 3) uint8 from :func:`get_labeled_image`. ``step``: slices between
    frames; ``duration_ms``: display time of each frame in milliseconds (browsers treat values
    under 20 as 100). ``path``: also write the GIF there (atomically); by default nothing is
    written to disk. Returns an ``IPython.display.Image`` holding the GIF bytes (``.data``).
    """
    from IPython.display import Image

    data = gif_bytes(gif_frames(labeled, step=step), duration_ms)
    if path is not None:
        write_bytes(Path(path), data)
    return Image(data=data, format="gif")

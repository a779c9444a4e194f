"""An animated sweep through a labeled volume, the three axes side by side."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tumorseg.atomic import atomic_path

if TYPE_CHECKING:
    from IPython.display import Image

PROGRESS_ROWS = 3


def gif_frames(labeled: np.ndarray) -> np.ndarray:
    """Frames of the sweep: for i over the longest axis, ``labeled[i]``, ``labeled[:, i]`` and
    ``labeled[:, :, i]`` side by side, each index clamped to its axis length.

    ``labeled``: (X, Y, Z, 3) uint8. Returns (max(X, Y, Z), max(Y, X) + 3, Z + Z + Y, 3) uint8,
    i.e. (240, 243, 550, 3) for a 240x240x155 volume; shorter panels are padded with black.
    The bottom 3 rows are a grey progress bar (i + 1) / n wide: it shows where the sweep is and
    keeps consecutive frames distinct, so GIF writers cannot merge the blank frames at the ends
    (Pillow merges identical frames, which would change the frame count and durations).
    """
    labeled = np.asarray(labeled)
    if labeled.ndim != 4 or labeled.shape[-1] != 3:
        raise ValueError(f"labeled must be (X, Y, Z, 3) RGB, got {labeled.shape}")
    nx, ny, nz, _ = labeled.shape
    n = max(nx, ny, nz)
    height = max(nx, ny)
    width = nz + nz + ny
    frames = np.zeros((n, height + PROGRESS_ROWS, width, 3), dtype=np.uint8)
    for i in range(n):
        frames[i, height:, : max(1, round((i + 1) * width / n))] = 128
        frames[i, :ny, :nz] = labeled[min(i, nx - 1)]
        frames[i, :nx, nz : 2 * nz] = labeled[:, min(i, ny - 1)]
        frames[i, :nx, 2 * nz :] = labeled[:, :, min(i, nz - 1)]
    return frames


def visualize_data_gif(
    labeled: np.ndarray, path: str | os.PathLike | None = None, duration_ms: int = 40
) -> Image:
    """Write the sweep of :func:`gif_frames` as a looping GIF and return it for display.

    ``labeled``: (X, Y, Z, 3) uint8 from :func:`get_labeled_image`. ``path``: where to write;
    by default a new file in the system temp folder (works on Windows too). ``duration_ms``:
    display time of each frame in milliseconds (browsers treat values under 20 as 100).
    Returns ``IPython.display.Image`` of the file; its ``.filename`` is the path.
    """
    import imageio.v3 as iio
    from IPython.display import Image

    frames = gif_frames(labeled)
    if path is None:
        fd, name = tempfile.mkstemp(prefix="tumorseg-", suffix=".gif")
        os.close(fd)
        path = Path(name)
    path = Path(path)
    with atomic_path(path, suffix=".gif") as tmp:
        iio.imwrite(tmp, frames, extension=".gif", duration=int(duration_ms), loop=0)
    return Image(filename=str(path))

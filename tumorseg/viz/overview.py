"""``tumorseg overview --data DIR --out PNG [--cases 3]``: one figure to eyeball a dataset.

One row per case: FLAIR, T1, T1Gd and T2 on the axial slice with the most tumor, and FLAIR with
the label overlaid (edema red, non-enhancing green, enhancing blue). Written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tumorseg.atomic import atomic_path
from tumorseg.data import open_dataset
from tumorseg.data.io import MODALITIES
from tumorseg.viz.labeled import CLASS_COLORS
from tumorseg.viz.plots import take_slice


def tumor_slice(label: np.ndarray) -> int:
    """Index of the axial (Z) slice of ``label`` (X, Y, Z) with the most tumor voxels
    (the middle slice when there is no tumor)."""
    counts = (np.asarray(label) > 0).sum(axis=(0, 1))
    return int(np.argmax(counts)) if counts.any() else label.shape[2] // 2


def brain_box(slices: np.ndarray, margin: int = 4) -> tuple[slice, slice]:
    """Row and column ranges of the non-zero voxels of ``slices`` (C, H, W), plus ``margin``
    (the whole slice when it is empty)."""
    occupied = np.any(slices != 0, axis=0)
    if not occupied.any():
        return slice(None), slice(None)
    rows, cols = np.flatnonzero(occupied.any(axis=1)), np.flatnonzero(occupied.any(axis=0))
    h, w = occupied.shape
    return (
        slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, h)),
        slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, w)),
    )


def window_slice(img2d: np.ndarray) -> np.ndarray:
    """Scale a 2-D slice to 0..1 with the 0.5/99.5 percentiles of its non-zero voxels."""
    fg = img2d[img2d != 0]
    if fg.size == 0:
        return np.zeros_like(img2d, dtype=np.float32)
    lo, hi = np.percentile(fg, [0.5, 99.5])
    return np.clip((img2d - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)


def overlay_rgb(flair2d: np.ndarray, label2d: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """(H, W, 3) float in 0..1: windowed FLAIR in grey with each class blended in its colour."""
    grey = window_slice(flair2d)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    for k, colour in CLASS_COLORS.items():
        m = np.rint(label2d) == k
        rgb[m] = (1 - alpha) * rgb[m] + alpha * np.asarray(colour, np.float32) / 255
    return rgb


def render_overview(data: str | os.PathLike, out: str | os.PathLike, n_cases: int = 3) -> Path:
    """Render the first ``n_cases`` cases of the dataset at ``data`` into the PNG ``out``.

    Each row shows FLAIR, T1, T1Gd, T2 and a label overlay of the axial slice with the most tumor.
    Returns the written path. Raises DataError for a bad dataset (see ``open_dataset``).
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from tqdm.auto import tqdm

    ds = open_dataset(data)
    cases = list(ds)[: max(1, n_cases)]
    n = len(cases)
    fig = Figure(figsize=(15, 3.4 * n + 0.6), facecolor="black")
    axes = fig.subplots(n, 5, squeeze=False)
    for r, case in enumerate(tqdm(cases, desc="overview", unit="case")):
        image, label = case.load()
        z = tumor_slice(label)
        vols = (label > 0).sum()
        mods = np.stack([take_slice(image[..., c], 2, z) for c in range(4)])
        lab2d = take_slice(label, 2, z)
        box = brain_box(mods)
        for c in range(4):
            axes[r, c].imshow(window_slice(mods[c][box]), cmap="gray", vmin=0, vmax=1)
        axes[r, 4].imshow(overlay_rgb(mods[0][box], lab2d[box]))
        axes[r, 0].set_ylabel(f"{case.id}\nz={z}, tumor {vols / 1000:.0f} cm³", color="w")
        del image, label
    for c, title in enumerate((*MODALITIES, "labels")):
        axes[0, c].set_title(title, color="w")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for s in ax.spines.values():
            s.set_visible(False)
    names = ("edema", "non-enhancing", "enhancing")
    handles = [
        Patch(color=np.asarray(CLASS_COLORS[k]) / 255, label=names[k - 1]) for k in CLASS_COLORS
    ]
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False, labelcolor="w")
    fig.subplots_adjust(
        left=0.04,
        right=0.995,
        top=1 - 0.35 / (3.4 * n + 0.6),
        bottom=0.4 / (3.4 * n + 0.6),
        wspace=0.02,
        hspace=0.03,
    )
    out = Path(out)
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100, facecolor=fig.get_facecolor())
    return out

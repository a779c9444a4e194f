"""Static figures: a grid of slices through a labeled volume, and a patch next to its label.

Figures are created with pyplot and closed before they are returned: in Jupyter a returned
figure shows once when it is the cell's last expression; elsewhere call ``fig.savefig(path)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Grid rows: (name, axis of the labeled volume that is sliced). Axes are X left-right,
#: Y posterior-anterior, Z inferior-superior (MSD/BraTS storage order).
GRID_ROWS = (("Coronal", 1), ("Axial", 2), ("Sagittal", 0))


def take_slice(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    """Slice ``volume`` (X, Y, Z[, C]) at ``index`` along spatial ``axis`` and rotate it for
    display (superior or anterior up). Returns (H, W[, C])."""
    return np.rot90(np.take(volume, index, axis=axis))


def pick_slices(mask: np.ndarray, axis: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` sorted slice indices along ``axis`` of a boolean (X, Y, Z) ``mask`` (the brain),
    drawn without replacement from the middle 70 % of the extent the mask occupies."""
    other = tuple(a for a in range(mask.ndim) if a != axis)
    occupied = np.flatnonzero(mask.any(axis=other))
    if occupied.size == 0:
        lo, hi = 0, mask.shape[axis] - 1
    else:
        lo, hi = int(occupied[0]), int(occupied[-1])
    margin = int(round(0.15 * (hi - lo)))
    candidates = np.arange(lo + margin, hi - margin + 1)
    if candidates.size >= n:
        return np.sort(rng.choice(candidates, size=n, replace=False))
    return np.linspace(lo, hi, n).round().astype(int)


def _pyplot():
    import matplotlib.pyplot as plt

    return plt


def plot_image_grid(labeled: np.ndarray, seed: int | None = None) -> Figure:
    """Show 6 slices per view of a labeled RGB volume: rows coronal, axial, sagittal.

    ``labeled``: (X, Y, Z, 3) uint8 from :func:`get_labeled_image`. Slices are drawn at random
    inside the brain (non-black voxels); pass ``seed`` for the same slices every time.
    Returns a matplotlib Figure, 16x9 inches, 3x6 axes without ticks or gaps between axes, on
    black so the margins left by each slice's true aspect ratio blend in.
    """
    labeled = np.asarray(labeled)
    if labeled.ndim != 4 or labeled.shape[-1] != 3:
        raise ValueError(f"labeled must be (X, Y, Z, 3) RGB, got {labeled.shape}")
    rng = np.random.default_rng(seed)
    brain = labeled.any(axis=-1)
    plt = _pyplot()
    fig, axes = plt.subplots(3, 6, figsize=(16, 9), facecolor="black")
    for row, (name, axis) in enumerate(GRID_ROWS):
        for col, idx in enumerate(pick_slices(brain, axis, 6, rng)):
            ax = axes[row, col]
            ax.imshow(take_slice(labeled, axis, int(idx)))  # true aspect; black margins
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{'xyz'[axis]}={idx}", fontsize=8, y=0.0, pad=2, color="w", loc="left")
        axes[row, 0].set_ylabel(name, fontsize=12, color="w")
    fig.subplots_adjust(left=0.03, right=1, bottom=0, top=1, wspace=0, hspace=0)
    plt.close(fig)
    return fig


def visualize_patch(
    X: np.ndarray, y: np.ndarray, z: int = 0, titles: tuple[str, str] = ("image", "label")
) -> Figure:
    """Show slice ``z`` of an image patch next to the same slice of a label or prediction, in grey.

    ``X``: (X, Y, Z) one channel of a patch (e.g. ``patch[0]`` of a (4, *PATCH_SIZE) patch);
    ``y``: (X, Y, Z) one label (or prediction) channel. ``titles``: the two panels' titles,
    each followed by ``, z=<z>``. Returns a matplotlib Figure with two axes.
    """
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim != 3 or y.shape != X.shape:
        raise ValueError(f"X and y must be (X, Y, Z) of one shape, got {X.shape} and {y.shape}")
    plt = _pyplot()
    fig, ax = plt.subplots(1, 2, figsize=(10, 5))
    for a, data, title in zip(ax, (X, y), titles):
        a.imshow(data[:, :, z], cmap="Greys_r")
        a.set_title(f"{title}, z={z}")
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    plt.close(fig)
    return fig


#: Views of :func:`plot_prediction_views`: (name, sliced axis, index of ``loc`` it uses).
PREDICTION_VIEWS = (("Sagittal", 0), ("Coronal", 1), ("Axial", 2))


def plot_prediction_views(
    truth: np.ndarray, pred: np.ndarray, loc: tuple[int, int, int], inch_per_voxel: float = 1 / 72
) -> Figure:
    """Ground truth (top row) and prediction (bottom row) in sagittal, coronal and axial
    planes through the voxel ``loc`` = (x, y, z), every panel at the same scale.

    ``truth``, ``pred``: (X, Y, Z, 3) uint8 labeled volumes of one shape (from
    :func:`get_labeled_image`); ``loc`` is clamped to the volume. Each panel's axes is exactly
    its slice's size times ``inch_per_voxel``, so a 155-slice side is drawn 155/240 as long as
    a 240-voxel side in every panel. Returns the pyplot Figure, still open: show or close it.
    """
    truth, pred = np.asarray(truth), np.asarray(pred)
    if truth.ndim != 4 or truth.shape[-1] != 3 or pred.shape != truth.shape:
        raise ValueError(
            f"truth and pred must be (X, Y, Z, 3) of one shape, got {truth.shape} and {pred.shape}"
        )
    shape = truth.shape[:3]
    loc = tuple(min(max(int(v), 0), n - 1) for v, n in zip(loc, shape))
    rows = [
        [take_slice(rgb, axis, loc[axis]) for _, axis in PREDICTION_VIEWS] for rgb in (truth, pred)
    ]
    k = inch_per_voxel
    gap, left, bottom_label, top = 0.12, 0.45, 0.4, 0.1
    widths = [s.shape[1] * k for s in rows[0]]
    row_h = max(s.shape[0] for s in rows[0]) * k
    fig_w = left + sum(widths) + gap * len(widths)
    fig_h = top + 2 * (row_h + bottom_label)
    plt = _pyplot()
    fig = plt.figure(figsize=(fig_w, fig_h))
    for r, (row, name) in enumerate(zip(rows, ("Ground Truth", "Prediction"))):
        y0 = fig_h - top - (r + 1) * row_h - r * bottom_label
        x0 = left
        for c, (view, (plane, _)) in enumerate(zip(row, PREDICTION_VIEWS)):
            h, w = view.shape[0] * k, view.shape[1] * k
            ax = fig.add_axes((x0 / fig_w, y0 / fig_h, w / fig_w, h / fig_h))  # on one baseline
            ax.imshow(view, aspect="equal", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(plane, fontsize=12)
            if c == 0:
                ax.set_ylabel(name, fontsize=12)
            x0 += w + gap
    return fig

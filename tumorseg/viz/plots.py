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
GRID_ROWS = (("Coronal", 1), ("Transversal", 2), ("Sagittal", 0))


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
    """Show 6 slices per view of a labeled RGB volume: rows coronal, transversal, sagittal.

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


def visualize_patch(X: np.ndarray, y: np.ndarray, z: int = 0) -> Figure:
    """Show slice ``z`` of an image patch next to the same slice of its label, in grey.

    ``X``: (X, Y, Z) one channel of a patch (e.g. ``patch[0]`` of a (4, 160, 160, 16) patch);
    ``y``: (X, Y, Z) one label channel. Returns a matplotlib Figure with two axes.
    """
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim != 3 or y.shape != X.shape:
        raise ValueError(f"X and y must be (X, Y, Z) of one shape, got {X.shape} and {y.shape}")
    plt = _pyplot()
    fig, ax = plt.subplots(1, 2, figsize=(10, 5))
    ax[0].imshow(X[:, :, z], cmap="Greys_r")
    ax[0].set_title(f"image, z={z}")
    ax[1].imshow(y[:, :, z], cmap="Greys_r")
    ax[1].set_title(f"label, z={z}")
    for a in ax:
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    plt.close(fig)
    return fig

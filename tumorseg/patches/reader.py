"""Reading one training sample from the h5 patch store, without Keras.

``read_patch`` reads a course h5 file; ``load_sample`` turns it into a model-ready,
optionally augmented ``(x, y)`` pair. Both are plain numpy/h5py, so the training input
workers (threads or spawned processes) can use them without loading a deep-learning backend.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from tumorseg.contract import DEFAULT_STANDARDIZE, N_CHANNELS, N_CLASSES, PATCH_SIZE, RAW
from tumorseg.data import DataError
from tumorseg.patches.augment import Augment, augment, augment_domain, augment_raw
from tumorseg.patches.standardize import standardize_patch

FIX = "Delete it and rebuild the patch store with `tumorseg patches` (or `make patches`)."


def read_patch(
    path: str | os.PathLike, dim: tuple[int, int, int] = PATCH_SIZE, num_channels: int = N_CHANNELS
) -> tuple[np.ndarray, np.ndarray]:
    """Read one course h5 patch: returns ``x (C, *dim)`` raw float32 and ``y (*dim, C)`` float32.

    Accepts float32 or float64 files (the real course files are float64).  Raises DataError naming
    the file when it is unreadable/truncated, lacks ``x``/``y``, or has other shapes.
    """
    path = os.fspath(path)
    try:
        with h5py.File(path, "r") as f:
            if "x" not in f or "y" not in f:
                raise DataError(
                    f"{path}: h5 file lacks dataset 'x' or 'y' (has {sorted(f.keys())}), so it is "
                    f"not a course patch. {FIX}"
                )
            dx, dy = f["x"], f["y"]
            if dx.shape != (num_channels, *dim) or dy.shape[:3] != tuple(dim) or dy.ndim != 4:
                raise DataError(
                    f"{path}: x has shape {dx.shape} and y {dy.shape}; expected x "
                    f"{(num_channels, *dim)} and y {(*dim, 'classes')}. {FIX}"
                )
            x = _read_float32(dx)
            y = _read_float32(dy)
    except DataError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(
            f"{path}: cannot read this h5 patch ({exc}); truncated or corrupt. {FIX}"
        ) from exc
    return x, y


def _read_float32(dataset) -> np.ndarray:
    """An h5 dataset as a float32 array (float32 files are read straight into the result)."""
    if dataset.dtype == np.float32:
        out = np.empty(dataset.shape, np.float32)
        if dataset.size:
            dataset.read_direct(out)
        return out
    return np.asarray(dataset[()], dtype=np.float32)


def load_sample(
    path: str | os.PathLike,
    rng: np.random.Generator | None = None,
    *,
    dim: tuple[int, int, int] = PATCH_SIZE,
    num_channels: int = N_CHANNELS,
    num_classes: int = N_CLASSES,
    standardize: str | None = DEFAULT_STANDARDIZE,
    level: Augment | str = Augment.NONE,
) -> tuple[np.ndarray, np.ndarray]:
    """One model-ready sample: ``x (num_channels, *dim)`` float32, ``y (num_classes, *dim)`` float32.

    x is standardized with ``standardize_patch(x, standardize)`` (``contract.RAW``, or None:
    raw intensities); y is the file's one-hot labels moved channels-first without the
    background channel. With an augmentation ``level`` other than NONE, ``rng`` drives the
    draws: STRONG, SPATIAL and DOMAIN first change the raw intensities (``augment_raw``; DOMAIN
    also ``augment_domain``), then
    ``augment`` follows (SPATIAL's rotation and scaling, flips, jitter) with the brain mask
    taken from the nonzero raw voxels.
    """
    x, y = read_patch(path, dim, num_channels)
    if y.shape[-1] < num_classes + 1:
        raise DataError(
            f"{os.fspath(path)}: y has {y.shape[-1]} classes, expected {num_classes + 1} "
            f"(background included). Rebuild the patch store with `tumorseg patches`."
        )
    y = np.ascontiguousarray(np.moveaxis(y, 3, 0)[1 : num_classes + 1])
    level = Augment(level)
    if standardize == RAW:
        standardize = None
    if level is Augment.NONE:
        return (standardize_patch(x, standardize) if standardize else x), y
    if rng is None:
        raise ValueError("load_sample: augmentation needs an rng")
    if level.raw:
        x = augment_raw(x, rng)
    if level is Augment.DOMAIN:
        x = augment_domain(x, rng)
    brain = x != 0
    if standardize:
        x = standardize_patch(x, standardize)
    return augment(x, y, brain, rng, level)

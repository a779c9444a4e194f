"""Intensity standardization of channels-first patches, shared by training and prediction."""

from __future__ import annotations

import numpy as np

MODES = ("slice", "brain")


def standardize_patch(x: np.ndarray, mode: str = "slice") -> np.ndarray:
    """Standardize an image patch ``x: (C, X, Y, Z)`` of raw intensities; returns float32, same shape.

    mode="slice": per channel ``c`` and z-slice ``z``, subtract the mean of ``x[c, :, :, z]`` over
        all its voxels and divide by its standard deviation when that is non-zero (a constant
        slice is only centred) — the course exercise's ``standardize``.
    mode="brain": per channel, mean and standard deviation over that channel's NONZERO voxels
        (the brain); those voxels are standardized, the zero background stays exactly 0.
        A channel with no nonzero voxel stays all 0; one with zero spread is only centred.
        Statistics over the whole brain rather than per slice make the input independent of
        how much of a slice the brain fills, which transfers better from synthetic to real scans.
    """
    if x.ndim != 4:
        raise ValueError(f"expected a (C, X, Y, Z) patch, got shape {x.shape}")
    x = np.asarray(x, dtype=np.float32)
    if mode == "slice":
        mean = x.mean(axis=(1, 2), keepdims=True, dtype=np.float64)
        std = x.std(axis=(1, 2), keepdims=True, dtype=np.float64)
        std = np.where(std > 0, std, 1.0)
        return ((x - mean) / std).astype(np.float32)
    if mode == "brain":
        out = np.zeros_like(x)
        for c in range(x.shape[0]):
            ch = x[c]
            mask = ch != 0
            if not mask.any():
                continue
            vals = ch[mask].astype(np.float64)
            mean, std = vals.mean(), vals.std()
            out[c][mask] = (vals - mean) / (std if std > 0 else 1.0)
        return out
    raise ValueError(f"unknown standardization mode {mode!r}; use one of {MODES}")

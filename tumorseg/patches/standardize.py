"""Intensity standardization of channels-first patches, shared by training and prediction."""

from __future__ import annotations

import numpy as np

from tumorseg.contract import BRAIN, DEFAULT_STANDARDIZE, SLICE, STANDARDIZE_MODES

MODES = STANDARDIZE_MODES

#: The mode wherever a model is trained or run and nothing else says which: the shipped model,
#: ``tumorseg train`` and ``predict_volume`` use it.  A trained model's manifest records its mode
#: (``predict_volume`` reads it into the model's ``InferenceSettings``), and that record wins.
#: "slice" is the course exercise's per-slice standardization, used where the notebook asks for
#: it.
DEFAULT_MODE = DEFAULT_STANDARDIZE


def standardize_patch(x: np.ndarray, mode: str = DEFAULT_MODE) -> np.ndarray:
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
    C, X, Y, Z = x.shape
    if mode == SLICE:
        v = x.reshape(C, X * Y, Z)
        mean = v.mean(axis=1, dtype=np.float64)  # (C, Z)
        var = np.einsum("cnz,cnz->cz", v, v, dtype=np.float64) / (X * Y) - mean**2
        std = _safe_std(var, mean)
        out = x - mean[:, None, None, :].astype(np.float32)
        out *= (1.0 / std[:, None, None, :]).astype(np.float32)
        return out
    if mode == BRAIN:
        v = x.reshape(C, -1)
        n = np.count_nonzero(v, axis=1)  # zeros add nothing to the sums below
        s1 = v.sum(axis=1, dtype=np.float64)
        s2 = np.einsum("cn,cn->c", v, v, dtype=np.float64)
        mean = s1 / np.maximum(n, 1)
        std = _safe_std(s2 / np.maximum(n, 1) - mean**2, mean)
        out = x - mean[:, None, None, None].astype(np.float32)
        out *= (1.0 / std[:, None, None, None]).astype(np.float32)
        out[x == 0] = 0.0
        return out
    raise ValueError(f"unknown standardization mode {mode!r}; use one of {MODES}")


def _safe_std(var: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Standard deviation from a one-pass variance; 1 where it is zero (up to rounding)."""
    std = np.sqrt(np.maximum(var, 0.0))
    return np.where(std > 1e-6 * (np.abs(mean) + 1e-12), std, 1.0)

"""The data/model contract in one place: what a patch is, how its intensities are scaled, and
when a class counts as present.

Every module takes these from here (the names of modalities, labels and regions live in
``tumorseg.labels``):

- a training patch is ``PATCH_SIZE`` voxels (X, Y, Z) of ``N_CHANNELS`` modalities, and the
  model outputs ``N_CLASSES`` probabilities per voxel (``INPUT_SHAPE`` is the model's
  channels-first input);
- intensities are standardized with one of ``STANDARDIZE_MODES`` (``DEFAULT_STANDARDIZE``
  unless a model's manifest says otherwise); ``RAW`` means no standardization;
- a class is present in a voxel when its probability is strictly above the threshold
  (``is_on``; default ``THRESHOLD``), and a voxel's label is its most probable present class
  (``probabilities_to_labels``).  Training validation, prediction, evaluation and the notebook
  use the same rule.
"""

from __future__ import annotations

import numpy as np

from tumorseg.labels import N_CHANNELS, N_CLASSES

#: Spatial size (X, Y, Z) of a training patch.
PATCH_SIZE: tuple[int, int, int] = (160, 160, 16)
#: The model's channels-first input shape for one patch.
INPUT_SHAPE: tuple[int, int, int, int] = (N_CHANNELS, *PATCH_SIZE)

#: Standardization per channel over the brain's (nonzero) voxels, or per z-slice.
BRAIN, SLICE = "brain", "slice"
STANDARDIZE_MODES: tuple[str, ...] = (SLICE, BRAIN)
#: No standardization: raw intensities (benchmarks and tests).
RAW = "none"
#: The mode wherever a model is trained or run and nothing else says which.
DEFAULT_STANDARDIZE = BRAIN

#: Default class threshold.
THRESHOLD = 0.5


def is_on(probs: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Where a class is present: ``probs > threshold`` (strictly), any shape, as bool."""
    return np.asarray(probs) > threshold


def probabilities_to_labels(probs: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Turn class probabilities into one label map.

    Rule: a voxel is background (0) when no class probability is above ``threshold``;
    otherwise it gets the label of its most probable class (1 edema, 2 non-enhancing tumor,
    3 enhancing tumor; ties go to the lower label).

    Args:
        probs: (3, X, Y, Z) probabilities, as ``predict_volume`` returns.
        threshold: probability a class must exceed to be reported.

    Returns:
        (X, Y, Z) uint8 label map with values in {0, 1, 2, 3}.
    """
    probs = np.asarray(probs)
    if probs.ndim != 4:
        raise ValueError(f"expected probabilities (K, X, Y, Z), got shape {probs.shape}")
    best = np.argmax(probs, axis=0)
    on = is_on(np.take_along_axis(probs, best[None], axis=0)[0], threshold)
    return np.where(on, best + 1, 0).astype(np.uint8)


__all__ = [
    "N_CHANNELS",
    "N_CLASSES",
    "PATCH_SIZE",
    "INPUT_SHAPE",
    "BRAIN",
    "SLICE",
    "STANDARDIZE_MODES",
    "RAW",
    "DEFAULT_STANDARDIZE",
    "THRESHOLD",
    "is_on",
    "probabilities_to_labels",
]

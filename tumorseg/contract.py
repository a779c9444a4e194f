"""The data/model contract in one place: what a patch is, how its intensities are scaled, and
when a class counts as present.

Every module takes these from here (the names of modalities, labels and regions live in
``tumorseg.labels``):

- a training patch is ``PATCH_SIZE`` voxels (X, Y, Z) of ``N_CHANNELS`` modalities, and the
  model outputs ``N_CLASSES`` probabilities per voxel (``INPUT_SHAPE`` is the model's
  channels-first input);
- intensities are standardized with one of ``STANDARDIZE_MODES`` (``DEFAULT_STANDARDIZE``
  unless a model's manifest says otherwise); ``RAW`` means no standardization;
- the model's three output channels are one of two ``Outputs`` kinds, which its manifest
  records (``"outputs"``): the tumour CLASSES (edema, non-enhancing, enhancing; the course's
  default) or the nested BraTS REGIONS (whole tumour, tumour core, enhancing tumour, as
  nnU-Net's BraTS models are trained; ``classes_to_regions`` turns class targets into them);
- a channel is on in a voxel when its probability is strictly above the threshold (``is_on``;
  default ``THRESHOLD``).  ``probabilities_to_labels`` gives each voxel one label: for CLASSES
  its most probable present class, for REGIONS the innermost present region.  Training
  validation, prediction, evaluation and the notebook use the same rule.
"""

from __future__ import annotations

from enum import Enum

import numpy as np

from tumorseg.labels import N_CHANNELS, N_CLASSES, REGIONS

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


class Outputs(str, Enum):
    """What the model's three output channels (independent sigmoids) stand for.

    CLASSES: channel c is label c + 1 (edema, non-enhancing tumour, enhancing tumour).
    REGIONS: channel r is the BraTS region ``list(REGIONS)[r]`` (whole tumour = labels 1-3,
    tumour core = 2-3, enhancing tumour = 3).
    """

    CLASSES = "classes"
    REGIONS = "regions"


#: The kind of a model whose manifest records none.
DEFAULT_OUTPUTS = Outputs.CLASSES


def is_on(probs: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Where a class is present: ``probs > threshold`` (strictly), any shape, as bool."""
    return np.asarray(probs) > threshold


def probabilities_to_labels(
    probs: np.ndarray, threshold: float = THRESHOLD, outputs: Outputs | str = DEFAULT_OUTPUTS
) -> np.ndarray:
    """Turn the model's probabilities into one label map.

    Rule for ``Outputs.CLASSES``: a voxel is background (0) when no class probability is above
    ``threshold``; otherwise it gets the label of its most probable class (1 edema,
    2 non-enhancing tumor, 3 enhancing tumor; ties go to the lower label).
    Rule for ``Outputs.REGIONS``: 3 where the enhancing tumour is on, else 2 where the tumour
    core is on, else 1 where the whole tumour is on, else 0 (nnU-Net's BraTS conversion).

    Args:
        probs: (3, X, Y, Z) probabilities, as ``predict_volume`` returns.
        threshold: probability a channel must exceed to be reported.
        outputs: what the channels stand for (the model's ``InferenceSettings.outputs``).

    Returns:
        (X, Y, Z) uint8 label map with values in {0, 1, 2, 3}.
    """
    probs = np.asarray(probs)
    if probs.ndim != 4:
        raise ValueError(f"expected probabilities (K, X, Y, Z), got shape {probs.shape}")
    if Outputs(outputs) is Outputs.REGIONS:
        whole, core, enhancing = (is_on(p, threshold) for p in probs)
        return np.select([enhancing, core, whole], [3, 2, 1], 0).astype(np.uint8)
    best = np.argmax(probs, axis=0)
    on = is_on(np.take_along_axis(probs, best[None], axis=0)[0], threshold)
    return np.where(on, best + 1, 0).astype(np.uint8)


def classes_to_regions(y: np.ndarray) -> np.ndarray:
    """Class targets or masks ``(..., 3, X, Y, Z)`` (edema, non-enhancing, enhancing; values in
    [0, 1]; the class axis at -4, so one sample or a batch) to the nested region targets of the
    same shape (whole tumour, tumour core, enhancing tumour): each region is the voxel-wise
    maximum of its classes.  Same dtype."""
    y = np.asarray(y)
    if y.ndim < 4 or y.shape[-4] != N_CLASSES:
        raise ValueError(f"expected {N_CLASSES} class channels at axis -4, got shape {y.shape}")
    channels = [
        np.max(y[..., [c - 1 for c in labels], :, :, :], axis=-4) for labels in REGIONS.values()
    ]
    return np.stack(channels, axis=-4).astype(y.dtype, copy=False)


def targets_for(y: np.ndarray, outputs: Outputs | str) -> np.ndarray:
    """Training targets of ``outputs`` kind from class targets ``y (..., 3, X, Y, Z)`` (one
    sample or a batch): unchanged for CLASSES, ``classes_to_regions`` for REGIONS."""
    return y if Outputs(outputs) is Outputs.CLASSES else classes_to_regions(y)


__all__ = [
    "Outputs",
    "DEFAULT_OUTPUTS",
    "classes_to_regions",
    "targets_for",
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

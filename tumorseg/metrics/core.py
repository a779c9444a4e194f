"""Implementation of the metrics; see :mod:`tumorseg.metrics` for the conventions."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

import numpy as np
import pandas as pd
from scipy import ndimage

from tumorseg.contract import THRESHOLD, is_on
from tumorseg.labels import CLASS_NAMES, REGIONS

#: HD95 (mm) when exactly one of the two masks is empty: the BraTS penalty, the diagonal of
#: the 240 x 240 x 155 mm BraTS volume, sqrt(240² + 240² + 155²) = 373.13 mm.
HD95_EMPTY = 373.12866


class BothEmpty(str, Enum):
    """How a region absent from both prediction and truth is scored (see tumorseg.metrics).

    BRATS: Dice 1.0 and HD95 0.0, as the BraTS challenge's scorers and nnU-Net's BraTS
    scripts (``evaluate_BraTS_case``) score it; the case counts in every mean.
    NAN: Dice and HD95 NaN, left out of means over cases: the convention of nnU-Net's generic
    evaluation, MONAI and MedPy, not of BraTS.
    """

    BRATS = "brats"
    NAN = "nan"


#: Values of the ``both_empty`` option, the default first.
BOTH_EMPTY_MODES: tuple[str, ...] = tuple(m.value for m in BothEmpty)


def _pair(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred).astype(bool, copy=False)
    truth = np.asarray(truth).astype(bool, copy=False)
    if pred.shape != truth.shape:
        raise ValueError(f"pred shape {pred.shape} differs from truth shape {truth.shape}")
    return pred, truth


def _mode(both_empty: str) -> BothEmpty:
    """The ``BothEmpty`` of ``both_empty``; ValueError naming the allowed values otherwise."""
    try:
        return BothEmpty(both_empty)
    except ValueError:
        raise ValueError(
            f"both_empty must be one of {BOTH_EMPTY_MODES}, got {both_empty!r}"
        ) from None


def _both_empty(both_empty: str, perfect: float) -> np.float64:
    """The score of a region empty in both masks: ``perfect`` (BRATS) or NaN (NAN)."""
    return np.float64("nan" if _mode(both_empty) is BothEmpty.NAN else perfect)


def dice(
    pred: np.ndarray, truth: np.ndarray, both_empty: str = BothEmpty.BRATS.value
) -> np.float64:
    """Dice overlap ``2|P & T| / (|P| + |T|)`` of two masks.

    Args:
        pred: (X, Y, Z) (any shape) boolean mask of the prediction; nonzero = inside.
        truth: boolean mask of the ground truth, same shape.
        both_empty: a ``BothEmpty`` value: ``"brats"`` (1.0, the default) or ``"nan"`` when
            both masks are empty.

    Returns:
        Dice in [0, 1] as ``np.float64``; 0.0 when exactly one mask is empty, 1.0 (or NaN)
        when both are (conventions in :mod:`tumorseg.metrics`).
    """
    pred, truth = _pair(pred, truth)
    total = int(pred.sum()) + int(truth.sum())
    if total == 0:
        return _both_empty(both_empty, 1.0)
    return np.float64(2.0 * int(np.logical_and(pred, truth).sum()) / total)


def _surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with at least one 6-neighbour outside it (the array border counts as outside)."""
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def hd95(
    pred: np.ndarray,
    truth: np.ndarray,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    both_empty: str = BothEmpty.BRATS.value,
) -> np.float64:
    """95th-percentile symmetric Hausdorff distance between the surfaces of two masks, in mm.

    The surface of a mask is the set of its voxels with a face neighbour outside it.  For every
    surface voxel of one mask we take the Euclidean distance (scaled by ``spacing``) to the
    nearest surface voxel of the other mask, in both directions; the result is the 95th
    percentile (linear interpolation) of both directions' distances pooled together, as MedPy's
    ``hd95`` and the BraTS scorer (``brats-evaluation``) compute it.  This is not the larger of
    the two directed 95th percentiles (DeepMind's ``surface-distance``), which can be far
    higher when a small false-positive blob holds just over 5 % of one surface.

    Args:
        pred: (X, Y, Z) boolean mask of the prediction.
        truth: (X, Y, Z) boolean mask of the ground truth.
        spacing: voxel size in mm along X, Y, Z (e.g. ``header.get_zooms()[:3]``).
        both_empty: a ``BothEmpty`` value: ``"brats"`` (0.0, the default) or ``"nan"`` when
            both masks are empty.

    Returns:
        HD95 in mm as ``np.float64``: ``HD95_EMPTY`` (373.13) when exactly one mask is empty,
        0.0 (or NaN) when both are (conventions in :mod:`tumorseg.metrics`).
    """
    pred, truth = _pair(pred, truth)
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != pred.ndim:
        raise ValueError(f"spacing {spacing} has {len(spacing)} values for a {pred.ndim}-D mask")
    has_p, has_t = bool(pred.any()), bool(truth.any())
    if not has_p and not has_t:
        return _both_empty(both_empty, 0.0)
    if has_p != has_t:
        return np.float64(HD95_EMPTY)
    # Crop to the union's bounding box plus one voxel: Euclidean distances do not depend on
    # the domain, and the margin keeps the array border's effect on the surfaces unchanged.
    coords = np.argwhere(pred | truth)
    lo = np.maximum(coords.min(0) - 1, 0)
    hi = np.minimum(coords.max(0) + 2, pred.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    sp, st = _surface(pred[box]), _surface(truth[box])
    dist_to_t = ndimage.distance_transform_edt(~st, sampling=spacing)
    dist_to_p = ndimage.distance_transform_edt(~sp, sampling=spacing)
    pooled = np.concatenate([dist_to_t[sp], dist_to_p[st]])
    return np.float64(np.percentile(pooled, 95))


def sensitivity_specificity(pred: np.ndarray, truth: np.ndarray) -> tuple[np.float64, np.float64]:
    """Sensitivity ``tp / (tp + fn)`` and specificity ``tn / (tn + fp)`` of a binary prediction.

    Args:
        pred: boolean mask (any shape) of the prediction; nonzero = positive.
        truth: boolean mask of the ground truth, same shape.

    Returns:
        ``(sensitivity, specificity)`` as ``np.float64``; a value is NaN when its denominator
        is zero (no positive, resp. no negative, voxel in ``truth``).
    """
    pred, truth = _pair(pred, truth)
    tp = int(np.logical_and(pred, truth).sum())
    fn = int(truth.sum()) - tp
    fp = int(pred.sum()) - tp
    tn = truth.size - tp - fn - fp
    sens = tp / (tp + fn) if tp + fn else float("nan")
    spec = tn / (tn + fp) if tn + fp else float("nan")
    return np.float64(sens), np.float64(spec)


def class_sens_spec(
    pred: np.ndarray, label: np.ndarray, class_num: int
) -> tuple[np.float64, np.float64]:
    """Sensitivity and specificity of one class of channels-first binary maps.

    Args:
        pred: (C, X, Y, Z) binary prediction, one channel per class (background excluded).
        label: (C, X, Y, Z) binary ground truth, same layout.
        class_num: channel index in ``0 .. C-1``.

    Returns:
        ``(sensitivity, specificity)`` of channel ``class_num`` (see ``sensitivity_specificity``).
    """
    pred = np.asarray(pred)
    label = np.asarray(label)
    if pred.shape != label.shape:
        raise ValueError(f"pred shape {pred.shape} differs from label shape {label.shape}")
    return sensitivity_specificity(pred[class_num], label[class_num])


def sens_spec_table(pred: np.ndarray, label: np.ndarray) -> pd.DataFrame:
    """Per-class sensitivity and specificity as a table.

    Args:
        pred: (3, X, Y, Z) binary prediction, channels edema, non-enhancing, enhancing.
        label: (3, X, Y, Z) binary ground truth, same layout.

    Returns:
        DataFrame with columns ``['Edema', 'Non-Enhancing Tumor', 'Enhancing Tumor']``, index
        ``['Sensitivity', 'Specificity']``, values rounded to 4 decimal places.
    """
    pred = np.asarray(pred)
    label = np.asarray(label)
    if pred.ndim != 4 or pred.shape[0] != len(CLASS_NAMES):
        raise ValueError(f"expected pred of shape (3, X, Y, Z), got {pred.shape}")
    table = pd.DataFrame(index=["Sensitivity", "Specificity"], columns=CLASS_NAMES, dtype=float)
    for i, name in enumerate(CLASS_NAMES):
        sens, spec = class_sens_spec(pred, label, i)
        table.loc["Sensitivity", name] = round(float(sens), 4)
        table.loc["Specificity", name] = round(float(spec), 4)
    return table


def region_scores(
    pred_labels: np.ndarray,
    true_labels: np.ndarray,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    both_empty: str = BothEmpty.BRATS.value,
) -> pd.DataFrame:
    """BraTS region scores of a predicted label map against the ground truth.

    Args:
        pred_labels: (X, Y, Z) integer label map, values 0 background, 1 edema,
            2 non-enhancing tumor, 3 enhancing tumor.
        true_labels: (X, Y, Z) ground-truth label map with the same values.
        spacing: voxel size in mm along X, Y, Z, used for HD95.
        both_empty: a ``BothEmpty`` value, how a region absent from both maps is scored:
            ``"brats"`` (Dice 1, HD95 0; the default) or ``"nan"``.

    Returns:
        DataFrame with index ``['WT', 'TC', 'ET']`` (whole tumor {1,2,3}, tumor core {2,3},
        enhancing tumor {3}) and columns ``['dice', 'hd95', 'sensitivity', 'specificity']``
        (HD95 in mm; empty-mask conventions in :mod:`tumorseg.metrics`).
    """
    pred_labels = np.asarray(pred_labels)
    true_labels = np.asarray(true_labels)
    if pred_labels.shape != true_labels.shape:
        raise ValueError(
            f"pred_labels shape {pred_labels.shape} differs from true_labels shape {true_labels.shape}"
        )
    rows = {}
    for name, values in REGIONS.items():
        p = np.isin(pred_labels, values)
        t = np.isin(true_labels, values)
        sens, spec = sensitivity_specificity(p, t)
        rows[name] = {
            "dice": float(dice(p, t, both_empty)),
            "hd95": float(hd95(p, t, spacing, both_empty)),
            "sensitivity": float(sens),
            "specificity": float(spec),
        }
    return pd.DataFrame.from_dict(rows, orient="index")[
        ["dice", "hd95", "sensitivity", "specificity"]
    ]


def hard_dice_per_class(
    pred: np.ndarray,
    truth: np.ndarray,
    threshold: float = THRESHOLD,
    both_empty: str = BothEmpty.BRATS.value,
) -> np.ndarray:
    """Per-sample, per-class hard Dice of probability batches.

    Args:
        pred: (B, K, X, Y, Z) class probabilities; a class is on where ``is_on`` (> threshold).
        truth: (B, K, X, Y, Z) 0/1 labels (> 0.5 counts as on).
        threshold: the class threshold.
        both_empty: a ``BothEmpty`` value, the rule of ``dice``: a class empty in both
            prediction and truth scores 1 (``"brats"``, the default) or NaN (``"nan"``).

    Returns:
        (B, K) float64 Dice.
    """
    empty = _both_empty(both_empty, 1.0)
    p = is_on(pred, threshold)
    t = np.asarray(truth) > 0.5
    inter = np.logical_and(p, t).sum(axis=(2, 3, 4))
    total = p.sum(axis=(2, 3, 4)) + t.sum(axis=(2, 3, 4))
    return np.where(total > 0, 2.0 * inter / np.maximum(total, 1), empty)

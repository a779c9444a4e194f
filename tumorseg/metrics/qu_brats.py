"""The QU-BraTS uncertainty score (BraTS 2019-2021 uncertainty task; Mehta et al., MELBA 2022).

A voxel uncertainty map ``u`` (0 certain .. 100 most uncertain) is judged, per region, by
filtering out the voxels whose uncertainty is above a threshold ``tau`` and scoring what is
left, for each ``tau`` of ``THRESHOLDS``:

- the Dice of the prediction and the truth on the kept voxels (1 when both are empty there, as
  BraTS scores an empty region);
- the filtered true-positive ratio ``FTP(tau) = (TP - TP_tau) / TP``: the share of the correct
  tumour voxels filtered out (0 when there are no true positives);
- the filtered true-negative ratio ``FTN(tau) = (TN - TN_tau) / TN``, the same for the correct
  background voxels.

Each curve is integrated over ``tau / 100`` in [0, 1] (trapezoids), and the score is
``(AUC_Dice + (1 - AUC_FTP) + (1 - AUC_FTN)) / 3``, higher better: an uncertainty map scores
well when filtering its uncertain voxels raises the Dice while few correct voxels are filtered.
At ``tau = 100`` nothing is filtered.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Uncertainty thresholds of the QU-BraTS evaluation (voxels above one are filtered out).
THRESHOLDS: tuple[int, ...] = (0, 25, 50, 75, 100)


def filtered_curves(
    pred: np.ndarray,
    truth: np.ndarray,
    uncertainty: np.ndarray,
    thresholds: Sequence[float] = THRESHOLDS,
) -> dict[str, np.ndarray]:
    """Filtered Dice, FTP and FTN at each threshold.

    Args:
        pred, truth: boolean masks of one region, any one shape.
        uncertainty: the same shape, 0..100 (higher: less certain).
        thresholds: ascending values in [0, 100].

    Returns:
        ``{"thresholds", "dice", "ftp", "ftn"}``, float arrays, one value per threshold.
    """
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    u = np.asarray(uncertainty, np.float64)
    if not pred.shape == truth.shape == u.shape:
        raise ValueError(f"shapes differ: {pred.shape}, {truth.shape}, {u.shape}")
    tp_all = int((pred & truth).sum())
    tn_all = int((~pred & ~truth).sum())
    dice, ftp, ftn = [], [], []
    for tau in thresholds:
        keep = u <= tau
        p, t = pred & keep, truth & keep
        tp = int((p & t).sum())
        total = int(p.sum()) + int(t.sum())
        dice.append(1.0 if total == 0 else 2.0 * tp / total)
        ftp.append(0.0 if tp_all == 0 else (tp_all - tp) / tp_all)
        tn = int((~pred & ~truth & keep).sum())
        ftn.append(0.0 if tn_all == 0 else (tn_all - tn) / tn_all)
    return {
        "thresholds": np.asarray(thresholds, float),
        "dice": np.asarray(dice),
        "ftp": np.asarray(ftp),
        "ftn": np.asarray(ftn),
    }


def qu_brats_score(
    pred: np.ndarray,
    truth: np.ndarray,
    uncertainty: np.ndarray,
    thresholds: Sequence[float] = THRESHOLDS,
) -> dict[str, float]:
    """The QU-BraTS figures of one region: ``{"dice_auc", "ftp_auc", "ftn_auc", "score"}``
    (see the module docstring; the areas over ``thresholds / 100``)."""
    curves = filtered_curves(pred, truth, uncertainty, thresholds)
    x = curves["thresholds"] / 100.0
    area = {k: _trapezoid(curves[k], x) for k in ("dice", "ftp", "ftn")}
    score = (area["dice"] + (1.0 - area["ftp"]) + (1.0 - area["ftn"])) / 3.0
    return {
        "dice_auc": area["dice"],
        "ftp_auc": area["ftp"],
        "ftn_auc": area["ftn"],
        "score": score,
    }


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    """Area under ``y(x)`` by the trapezoid rule (numpy 1.26 has no ``np.trapezoid``)."""
    return float(np.sum((y[1:] + y[:-1]) / 2.0 * np.diff(x)))

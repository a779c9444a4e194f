"""``tumorseg evaluate``: score a model on whole cases and write one CSV row per case.

Evaluation is prediction followed by scoring: each case is predicted (``predict_volume``,
with the settings' test-time mirroring), cleaned up (their post-processing), turned into a
label map (``probabilities_to_labels``) and scored exactly as ``tumorseg score`` scores a saved
label map (``tumorseg.inference.score.score_labels``): BraTS region Dice and HD95 (mm, voxel
spacing from the label file's header) for WT/TC/ET, and per-class sensitivity and specificity.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tumorseg.contract import THRESHOLD, probabilities_to_labels
from tumorseg.inference.postprocess import Postprocess, apply_to_probabilities
from tumorseg.inference.predict import predict_volume
from tumorseg.inference.score import score_labels
from tumorseg.inference.settings import InferenceSettings, resolve_settings
from tumorseg.metrics import BothEmpty


def score_case(
    probs: np.ndarray,
    label: np.ndarray,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    threshold: float = THRESHOLD,
    both_empty: str = BothEmpty.BRATS.value,
) -> dict[str, float]:
    """All scores of one case as a flat dict: the label map of ``probabilities_to_labels``
    scored as ``tumorseg score`` scores a saved prediction (``score_labels``).

    Args:
        probs: (3, X, Y, Z) probabilities from ``predict_volume``.
        label: (X, Y, Z) ground truth, codes 0..3.
        spacing: voxel size in mm along X, Y, Z.
        threshold: class threshold (see ``probabilities_to_labels``).
        both_empty: how a region absent from both maps is scored (``tumorseg.metrics``).

    Returns:
        The ``score_labels`` dict: WT/TC/ET dice, hd95, sensitivity, specificity and the
        per-class sensitivity and specificity.
    """
    return score_labels(probabilities_to_labels(probs, threshold), label, spacing, both_empty)


@dataclass(frozen=True)
class CasePrediction:
    """One case's prediction before post-processing, and what scoring it needs.

    probs: (3, X, Y, Z) probabilities; label: (X, Y, Z) ground truth, codes 0..3; spacing: mm
    per voxel along X, Y, Z; seconds: the prediction's wall time.
    """

    case: str
    probs: np.ndarray
    label: np.ndarray
    spacing: tuple[float, float, float]
    seconds: float


def predict_cases(
    data: str | Path,
    model: Any,
    cases: Sequence[str] | None = None,
    settings: InferenceSettings | None = None,
    **changes: Any,
) -> Iterator[CasePrediction]:
    """Predict every case (or the listed ones) of a dataset, one at a time, without
    post-processing; ``settings`` and ``changes`` as ``predict_volume`` takes them (None: the
    model's)."""
    from tqdm.auto import tqdm

    from tumorseg.data import open_dataset

    settings = resolve_settings(model, settings, **changes).override(postprocess=Postprocess.NONE)
    dataset = open_dataset(data)
    selected = list(dataset) if not cases else [dataset[c] for c in cases]
    for case in tqdm(selected, desc="evaluate", unit="case"):
        image, label, spacing = case.load_with_spacing()
        start = time.perf_counter()
        probs = predict_volume(image, model, settings=settings)
        seconds = time.perf_counter() - start
        yield CasePrediction(case.id, probs, label, spacing, seconds)


def score_prediction(
    pred: CasePrediction,
    rules: Postprocess | dict | None,
    threshold: float = THRESHOLD,
    both_empty: str = BothEmpty.BRATS.value,
) -> dict[str, float | str]:
    """``{"case", score_case columns..., "seconds"}`` of one prediction cleaned with ``rules``
    (the post-processing's own time is added to ``seconds``)."""
    start = time.perf_counter()
    rules = Postprocess.from_record(rules)
    probs = apply_to_probabilities(pred.probs, rules, threshold) if rules.active else pred.probs
    seconds = pred.seconds + time.perf_counter() - start
    row: dict[str, float | str] = {"case": pred.case}
    row.update(score_case(probs, pred.label, pred.spacing, threshold, both_empty))
    row["seconds"] = round(seconds, 2)
    return row


def evaluate(
    data: str | Path,
    model: Any,
    cases: Sequence[str] | None = None,
    settings: InferenceSettings | None = None,
    both_empty: str = BothEmpty.BRATS.value,
    **changes: Any,
) -> pd.DataFrame:
    """Predict and score every case (or the listed ones) of a dataset.

    Args:
        data: an MSD or BraTS dataset folder (``tumorseg.data.open_dataset``).
        model: channels-first model ``(B, 4, x, y, z) -> (B, 3, x, y, z)``.
        cases: case ids to score (default: all).
        settings: the ``InferenceSettings`` (standardization, threshold, mirroring, clean-up);
            None: those of the model's manifest (see ``predict_volume``).
        both_empty: how a region absent from both maps is scored (``tumorseg.metrics``).
        **changes: settings to change, by field name (e.g. ``threshold=0.4``).

    Returns:
        DataFrame, one row per case: ``case``, the ``score_case`` columns and ``seconds``.
    """
    settings = resolve_settings(model, settings, **changes)
    predictions = predict_cases(data, model, cases, settings)
    return pd.DataFrame(
        [
            score_prediction(p, settings.postprocess, settings.threshold, both_empty)
            for p in predictions
        ]
    )

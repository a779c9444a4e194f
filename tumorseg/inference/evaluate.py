"""``tumorseg evaluate``: score a model on whole cases and write one CSV row per case.

Evaluation is prediction followed by scoring: each case is predicted (``predict_volume``,
with the settings' test-time mirroring), cleaned up (their post-processing), turned into a
label map (``probabilities_to_labels``) and scored exactly as ``tumorseg score`` scores a saved
label map (``tumorseg.inference.score.score_labels``): BraTS region Dice and HD95 (mm, voxel
spacing from the label file's header) for WT/TC/ET, and per-class sensitivity and specificity.

A broken case (a missing, truncated or malformed file: ``DataError``) does not stop
``evaluate``: its row holds the reason in the ``error`` column (``score.case_table``), it is
named on stderr, and the summary leaves it out.  ``evaluate(..., save=DIR)`` also writes each
scored label map as ``DIR/<case>.nii.gz`` (on its image's grid, as ``tumorseg predict`` writes
it), so ``tumorseg score`` can rescore them without predicting again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tumorseg.batch import one_line, report_failure
from tumorseg.contract import DEFAULT_OUTPUTS, THRESHOLD, Outputs, probabilities_to_labels
from tumorseg.data import DataError, Dataset, open_dataset
from tumorseg.inference.outputs import (
    CaseResult,
    SaveOptions,
    judge,
    label_probabilities,
    write_outputs,
)
from tumorseg.inference.postprocess import Postprocess
from tumorseg.inference.score import ERROR, CaseHook, ScoredCase, case_table, score_labels
from tumorseg.inference.settings import InferenceSettings, resolve_settings
from tumorseg.inference.spacing import MODEL_SPACING, model_spacing, predict_probabilities
from tumorseg.inference.uncertainty import QC_COLUMNS
from tumorseg.metrics import BothEmpty


def score_case(
    probs: np.ndarray,
    label: np.ndarray,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    threshold: float = THRESHOLD,
    both_empty: str = BothEmpty.BRATS.value,
    outputs: Outputs | str = DEFAULT_OUTPUTS,
) -> dict[str, float]:
    """All scores of one case as a flat dict: the label map of ``probabilities_to_labels``
    scored as ``tumorseg score`` scores a saved prediction (``score_labels``).

    Args:
        probs: (3, X, Y, Z) probabilities from ``predict_volume``.
        label: (X, Y, Z) ground truth, codes 0..3.
        spacing: voxel size in mm along X, Y, Z.
        threshold: class threshold (see ``probabilities_to_labels``).
        both_empty: how a region absent from both maps is scored (``tumorseg.metrics``).
        outputs: what the channels stand for (the model's ``Outputs`` kind).

    Returns:
        The ``score_labels`` dict: WT/TC/ET dice, hd95, sensitivity, specificity and the
        per-class sensitivity and specificity.
    """
    labels = probabilities_to_labels(probs, threshold, outputs)
    return score_labels(labels, label, spacing, both_empty)


@dataclass(frozen=True)
class CasePrediction:
    """One case's prediction before post-processing, and what scoring it needs.

    probs: (3, X, Y, Z) probabilities; label: (X, Y, Z) ground truth, codes 0..3; spacing: mm
    per voxel along X, Y, Z; seconds: the prediction's wall time; reference: the image file
    whose header describes the grid (for saving the label map), when known; model_spacing: the
    spacing the model was trained at (the clean-up's sizes are voxels of it); ranges: the
    passes' disagreement (K, X, Y, Z, ``spacing.predict_probabilities``), None with one pass.
    """

    case: str
    probs: np.ndarray
    label: np.ndarray
    spacing: tuple[float, float, float]
    seconds: float
    reference: Path | None = None
    model_spacing: tuple[float, float, float] = MODEL_SPACING
    ranges: np.ndarray | None = None


@dataclass(frozen=True)
class CaseFailure:
    """A case that could not be read: its id and the reason (one line, naming the file)."""

    case: str
    error: str


def predict_cases(
    data: str | Path | Dataset,
    model: Any,
    cases: Sequence[str] | None = None,
    settings: InferenceSettings | None = None,
    keep_going: bool = False,
    resample: bool = True,
    **changes: Any,
) -> Iterator[CasePrediction | CaseFailure]:
    """Predict every case (or the listed ones) of a dataset, one at a time, without
    post-processing; ``settings`` and ``changes`` as ``predict_volume`` takes them (None: the
    model's).

    data: a dataset folder, or an opened ``Dataset``.  keep_going: a case whose files are
    missing or bad yields a ``CaseFailure`` instead of raising its DataError (and the folder is
    opened with ``strict=False``, so a missing file is found when its case is loaded).
    resample: resample a case whose voxel size (its label header's) differs from the model's
    (``tumorseg.inference.spacing.predict_probabilities``); the probabilities are on the case's
    own grid either way.
    """
    from tqdm.auto import tqdm

    settings = resolve_settings(model, settings, **changes).override(postprocess=Postprocess.NONE)
    dataset = data if isinstance(data, Dataset) else open_dataset(data, strict=not keep_going)
    target = model_spacing(model)
    selected = list(dataset) if not cases else [dataset[c] for c in cases]
    for case in tqdm(selected, desc="evaluate", unit="case"):
        try:
            image, label, spacing = case.load_with_spacing()
        except DataError as exc:
            if not keep_going:
                raise
            yield CaseFailure(case.id, one_line(exc))
            continue
        start = time.perf_counter()
        probs, ranges = predict_probabilities(image, spacing, model, settings, resample, case.id)
        del image
        seconds = time.perf_counter() - start
        yield CasePrediction(
            case.id, probs, label, spacing, seconds, case.image_paths[0], target, ranges
        )


def score_prediction(
    pred: CasePrediction,
    rules: Postprocess | dict | None,
    threshold: float = THRESHOLD,
    both_empty: str = BothEmpty.BRATS.value,
    save: str | Path | None = None,
    on_case: CaseHook | None = None,
    outputs: Outputs | str = DEFAULT_OUTPUTS,
    options: SaveOptions | None = None,
) -> dict[str, float | str]:
    """``{"case", score_case columns..., "seconds", QC_COLUMNS...}`` of one prediction cleaned
    with ``rules`` (the post-processing's own time is added to ``seconds``; its sizes are
    scaled to the case's voxels, ``spacing.scaled_rules``); the ``QC_COLUMNS`` are the case's
    doubt (``uncertainty.case_doubt``), untimed.

    save: a folder to write the scored label map into, as ``<case>.nii.gz`` on the grid of
    ``pred.reference`` (atomically; the folder is created when missing), with what
    ``options`` asks for (``outputs.write_outputs``: the coding, probabilities, uncertainty).
    on_case: called (untimed) with the row, the label map and the voxel uncertainty as a
    ``ScoredCase`` (no image).
    outputs: what the probabilities' channels stand for (the model's ``Outputs`` kind).
    """
    start = time.perf_counter()
    settings = InferenceSettings(
        threshold=threshold, postprocess=Postprocess.from_record(rules), outputs=outputs
    )
    labels = label_probabilities(pred.probs, settings, pred.spacing, pred.model_spacing)
    seconds = pred.seconds + time.perf_counter() - start
    row: dict[str, float | str] = {"case": pred.case}
    row.update(score_labels(labels, pred.label, pred.spacing, both_empty))
    row["seconds"] = round(seconds, 2)
    uncertainty, doubt = judge(pred.probs, labels, pred.spacing, outputs, pred.ranges)
    row.update(doubt)
    if save is not None:
        result = CaseResult(pred.probs, labels, uncertainty, doubt, Outputs(outputs))
        _save_outputs(result, pred, Path(save), options or SaveOptions(), threshold)
    if on_case is not None:
        on_case(
            ScoredCase(pred.case, row, labels, pred.label, pred.spacing, uncertainty=uncertainty)
        )
    return row


def _save_outputs(
    result: CaseResult, pred: CasePrediction, folder: Path, options: SaveOptions, threshold: float
) -> Path:
    import nibabel as nib

    from tumorseg.inference.batch import output_path

    if pred.reference is None:
        raise ValueError(f"case {pred.case}: no reference image to save its label map on")
    reference = nib.load(str(pred.reference))
    return write_outputs(
        result, reference, output_path(folder, pred.case), options, threshold, folder=True
    )[0]


def evaluate(
    data: str | Path | Dataset,
    model: Any,
    cases: Sequence[str] | None = None,
    settings: InferenceSettings | None = None,
    both_empty: str = BothEmpty.BRATS.value,
    save: str | Path | None = None,
    on_case: CaseHook | None = None,
    options: SaveOptions | None = None,
    resample: bool = True,
    **changes: Any,
) -> pd.DataFrame:
    """Predict and score every case (or the listed ones, in that order) of a dataset.

    Args:
        data: an MSD or BraTS dataset folder (``tumorseg.data.open_dataset``), or a Dataset.
        model: channels-first model ``(B, 4, x, y, z) -> (B, 3, x, y, z)``.
        cases: case ids to score (default: all).
        settings: the ``InferenceSettings`` (standardization, threshold, mirroring, clean-up);
            None: those of the model's manifest (see ``predict_volume``).
        both_empty: how a region absent from both maps is scored (``tumorseg.metrics``).
        save: a folder for the scored label maps, ``<case>.nii.gz`` (default: none kept).
        on_case: called with each scored case's ``ScoredCase`` (see ``score_prediction``),
            e.g. to draw the report's pictures while its label maps are in memory.
        options: what ``save`` writes per case (``outputs.SaveOptions``: label coding,
            probabilities, uncertainty; default: course-coded maps only).
        resample: resample cases at another spacing than the model's (``predict_cases``).
        **changes: settings to change, by field name (e.g. ``threshold=0.4``).

    Returns:
        ``score.case_table``, one row per case: ``case``, the ``score_case`` columns,
        ``seconds``, the doubt (``uncertainty.QC_COLUMNS``) and ``error`` ("" when scored; else why the case could not be read, and
        the scores are NaN).
    """
    settings = resolve_settings(model, settings, **changes)
    rows: list[dict] = []
    for item in predict_cases(data, model, cases, settings, keep_going=True, resample=resample):
        if isinstance(item, CaseFailure):
            report_failure("tumorseg evaluate", item.case, item.error)
            rows.append({"case": item.case, ERROR: item.error})
        else:
            rules, threshold = settings.postprocess, settings.threshold
            rows.append(
                score_prediction(
                    item, rules, threshold, both_empty, save, on_case, settings.outputs, options
                )
            )
    return case_table(rows, extra=["seconds", *QC_COLUMNS])

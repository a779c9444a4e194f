"""One scan's outputs, as ``tumorseg predict`` and ``tumorseg evaluate --save`` write them.

``run_case`` predicts a scan at any spacing (``tumorseg.inference.spacing``), keeps the
probabilities from before the clean-up, labels them (clean-up scaled to the scan's voxels) and
measures its doubt (``tumorseg.inference.uncertainty``).  ``write_outputs`` writes the label map
in the chosen ``LabelCoding`` and, when asked, the probabilities and the uncertainty map:

- one case: ``SEG.nii.gz``, ``SEG_probabilities.nii.gz``, ``SEG_uncertainty.nii.gz`` side by side;
- a folder: ``DIR/<case>.nii.gz``, ``DIR/probabilities/<case>.nii.gz`` and
  ``DIR/uncertainty/<case>.nii.gz``, so ``DIR`` itself holds only label maps and
  ``tumorseg score --pred DIR`` reads it as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tumorseg.contract import Outputs, classes_to_regions, probabilities_to_labels
from tumorseg.data import save_label_map
from tumorseg.data.io import NIFTI_EXTENSIONS
from tumorseg.inference.postprocess import apply_to_probabilities
from tumorseg.inference.predict import mask_bbox
from tumorseg.inference.settings import InferenceSettings, resolve_settings
from tumorseg.inference.spacing import model_spacing, predict_probabilities, scaled_rules
from tumorseg.inference.uncertainty import (
    case_doubt,
    save_probabilities,
    save_uncertainty,
    voxel_uncertainty,
)
from tumorseg.labels import DEFAULT_CODING, LabelCoding, to_coding

#: Sub-folders of a folder run for the probabilities and the uncertainty maps.
PROBABILITIES_DIR, UNCERTAINTY_DIR = "probabilities", "uncertainty"


@dataclass(frozen=True)
class SaveOptions:
    """What is written for each case: the label map's coding, and whether the probabilities
    (``--save-probabilities``) and the uncertainty map (``--save-uncertainty``) go beside it."""

    coding: LabelCoding = DEFAULT_CODING
    probabilities: bool = False
    uncertainty: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "coding", LabelCoding(self.coding))

    def record(self) -> dict[str, Any]:
        """The options as run.json keeps them."""
        return {
            "label_coding": self.coding.value,
            "probabilities": "uint8 (X, Y, Z, 3) WT/TC/ET, value/255 (header slope 1/255)"
            if self.probabilities
            else None,
            "uncertainty": "uint8 (X, Y, Z, 3) WT/TC/ET binary entropy x 100"
            if self.uncertainty
            else None,
        }


@dataclass
class CaseResult:
    """One scan's outputs: probs (K, X, Y, Z) before clean-up on the scan's grid; labels
    (X, Y, Z) uint8 course codes after clean-up; uncertainty (X, Y, Z, K) uint8 0..100; doubt,
    the ``case_doubt`` numbers; outputs: what the probabilities' channels stand for."""

    probs: np.ndarray
    labels: np.ndarray
    uncertainty: np.ndarray
    doubt: dict[str, float]
    outputs: Outputs = Outputs.REGIONS


def label_probabilities(
    probs: np.ndarray,
    settings: InferenceSettings,
    spacing: Sequence[float],
    target: Sequence[float],
) -> np.ndarray:
    """The label map of probabilities (K, X, Y, Z) from before the clean-up: the settings'
    clean-up (its sizes scaled from ``target`` voxels to ``spacing`` voxels, ``scaled_rules``),
    then ``probabilities_to_labels`` at their threshold; (X, Y, Z) uint8 course codes."""
    rules = scaled_rules(settings.postprocess, spacing, target)
    if rules.active:
        probs = apply_to_probabilities(probs, rules, settings.threshold, settings.outputs)
    return probabilities_to_labels(probs, settings.threshold, settings.outputs)


def judge(
    probs: np.ndarray,
    labels: np.ndarray,
    spacing: Sequence[float],
    outputs: Outputs | str = Outputs.REGIONS,
    ranges: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, float]]:
    """``(voxel_uncertainty, case_doubt)`` of a scan's probabilities (K, X, Y, Z) and final
    labels (X, Y, Z), both of the WT/TC/ET region probabilities (a class model's are turned
    into regions first: ``classes_to_regions``); the entropy is computed in the box of nonzero
    probabilities only (0 outside).  ranges: the passes' disagreement (K, X, Y, Z,
    ``predict_volume_spread``), or None; a class model's is not used (its ranges are of class
    probabilities, not regions), so its ``disagree_<R>`` are NaN."""
    if Outputs(outputs) is Outputs.CLASSES:
        probs, ranges = classes_to_regions(probs), None
    uncertainty = np.zeros((*probs.shape[1:], probs.shape[0]), np.uint8)
    box = _nonzero_box(probs)
    if box is not None:
        uncertainty[box] = voxel_uncertainty(probs[(slice(None), *box)])
    return uncertainty, case_doubt(probs, labels, spacing, uncertainty, ranges)


def _nonzero_box(probs: np.ndarray) -> tuple[slice, slice, slice] | None:
    """Bounding box of the voxels where any channel of ``probs (K, X, Y, Z)`` is above 0."""
    return mask_bbox(np.any(probs > 0, axis=0))


def run_case(
    image: np.ndarray,
    spacing: Sequence[float],
    model: Any,
    settings: InferenceSettings | None = None,
    resample: bool = True,
    source: object = "the scan",
    spread: bool = True,
) -> CaseResult:
    """Predict one scan (X, Y, Z, C) of voxel size ``spacing`` (mm) and judge it.

    settings: None: the model's (``resolve_settings``).  resample: see
    ``spacing.predict_probabilities``.  spread: measure the passes' disagreement for the
    doubt's ``disagree_<R>`` (False: they are NaN; the map and probabilities are the same
    either way).  A scan at the model's spacing gets exactly the label map ``predict_volume``
    with the clean-up gives.
    """
    settings = resolve_settings(model, settings)
    probs, ranges = predict_probabilities(image, spacing, model, settings, resample, source, spread)
    labels = label_probabilities(probs, settings, spacing, model_spacing(model))
    uncertainty, doubt = judge(probs, labels, spacing, settings.outputs, ranges)
    del ranges
    return CaseResult(probs, labels, uncertainty, doubt, Outputs(settings.outputs))


def side_paths(map_path: str | Path, folder: bool) -> tuple[Path, Path]:
    """Where the probabilities and the uncertainty map of the label map ``map_path`` go: in
    ``probabilities/`` and ``uncertainty/`` beside it for a folder run, else as
    ``<stem>_probabilities.nii.gz`` and ``<stem>_uncertainty.nii.gz`` beside it."""
    map_path = Path(map_path)
    if folder:
        return (
            map_path.parent / PROBABILITIES_DIR / map_path.name,
            map_path.parent / UNCERTAINTY_DIR / map_path.name,
        )
    name = map_path.name
    stem = next((name[: -len(e)] for e in NIFTI_EXTENSIONS if name.endswith(e)), name)
    ext = NIFTI_EXTENSIONS[0]
    return (
        map_path.with_name(f"{stem}_probabilities{ext}"),
        map_path.with_name(f"{stem}_uncertainty{ext}"),
    )


def write_outputs(
    result: CaseResult,
    reference: Any,
    map_path: str | Path,
    options: SaveOptions,
    threshold: float,
    folder: bool,
) -> list[Path]:
    """Write the label map (in ``options.coding``) at ``map_path`` and, as ``options`` ask, the
    probabilities (of ``result.outputs`` kind, encoded at ``threshold``: ``save_probabilities``) and the uncertainty map (``side_paths``), all on
    ``reference``'s grid; returns the paths written, the map first.  The side files are written
    before the map, so a map on disk means its case is complete."""
    probs_path, unc_path = side_paths(map_path, folder)
    written = []
    if options.probabilities:
        written.append(
            save_probabilities(result.probs, reference, probs_path, threshold, result.outputs)
        )
    if options.uncertainty:
        written.append(save_uncertainty(result.uncertainty, reference, unc_path))
    labels = to_coding(result.labels, options.coding)
    return [save_label_map(labels, reference, map_path), *written]

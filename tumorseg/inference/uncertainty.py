"""Saved probabilities, a voxel uncertainty map and per-case doubt, from a scan's probabilities.

Everything here starts from the model's probabilities on the input's grid, after mirroring
(and averaging over an ensemble's members) and before the clean-up: ``probs`` (3, X, Y, Z), for
the shipped region model WT, TC, ET (for a class model: edema, non-enhancing, enhancing).

- **Saved probabilities** (``save_probabilities``, ``load_probabilities``; a class model's
  are float32 as they are) (``encode_probabilities``/``decode_probabilities``): uint8
  (X, Y, Z, 3), channels last, ``q = round(255 p)``, except that a voxel keeps its side of the
  label threshold: ``decode_probabilities(q) > threshold`` exactly where ``p > threshold``, so
  ``probabilities_to_labels(decode_probabilities(q), threshold, outputs)`` is the label map
  before clean-up, voxel for voxel.  The NIfTI's scale slope is 1/255, so viewers and nibabel's
  ``get_fdata`` show values in [0, 1].
- **Voxel uncertainty** (``voxel_uncertainty``): per channel the binary entropy of the
  probability, in bits, times 100: uint8 (X, Y, Z, 3) in 0..100 (0 certain, 100 at p = 0.5), the
  scale the QU-BraTS challenge reads (``tumorseg.metrics.qu_brats``).
- **Per-case doubt** (``case_doubt``): the expected Dice of each region of the label map under
  the model's own probabilities, the passes' disagreement per region (``pass_disagreement``:
  mirror passes and ensemble members), the uncertain volume relative to the predicted tumour,
  the tumour volume; ``doubt`` (1 - the lowest expected Dice) ranks the cases, most doubtful
  first, in ``qc.csv`` (``QC_COLUMNS``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tumorseg.atomic import atomic_path, write_text
from tumorseg.contract import THRESHOLD, Outputs
from tumorseg.labels import REGIONS

#: Largest stored probability code (uint8): a code q stands for q / PROBABILITY_SCALE.
PROBABILITY_SCALE = 255
#: Largest voxel uncertainty (binary entropy of 1 bit).
UNCERTAINTY_SCALE = 100
#: A voxel counts as uncertain in ``case_doubt`` above this voxel uncertainty (p in about
#: 0.11-0.89).
UNCERTAIN_ABOVE = 50

#: Name of the check-first list a folder run writes.
QC_CSV = "qc.csv"
#: Columns of the per-case doubt, in ``qc.csv`` order after ``case``.
QC_COLUMNS: tuple[str, ...] = (
    "doubt",
    *(f"expected_dice_{r}" for r in REGIONS),
    *(f"disagree_{r}" for r in REGIONS),
    "uncertain_ratio",
    "tumour_ml",
)


def decode_probabilities(codes: np.ndarray) -> np.ndarray:
    """Stored probability codes (uint8, any shape) as float32 probabilities ``codes / 255``."""
    return np.asarray(codes, np.float32) / np.float32(PROBABILITY_SCALE)


def first_code_above(threshold: float) -> int:
    """The smallest code ``q`` with ``decode_probabilities(q) > threshold`` (256 when none)."""
    decoded = decode_probabilities(np.arange(PROBABILITY_SCALE + 1))
    above = np.flatnonzero(decoded > threshold)
    return int(above[0]) if above.size else PROBABILITY_SCALE + 1


def encode_probabilities(probs: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """(K, X, Y, Z) probabilities -> (X, Y, Z, K) uint8 codes (see the module docstring).

    Each code is ``round(255 p)`` moved, where rounding crossed the threshold, to the nearest
    code on the voxel's side: ``decode_probabilities(codes) > threshold == probs > threshold``.
    """
    probs = np.asarray(probs, np.float32)
    codes = np.rint(np.clip(probs, 0.0, 1.0) * PROBABILITY_SCALE).astype(np.int16)
    first = first_code_above(threshold)
    on = probs > threshold
    codes = np.where(on, np.maximum(codes, first), np.minimum(codes, first - 1))
    return np.moveaxis(codes.astype(np.uint8), 0, -1)


def voxel_uncertainty(probs: np.ndarray) -> np.ndarray:
    """(K, X, Y, Z) probabilities -> (X, Y, Z, K) uint8 uncertainty in 0..100: each channel's
    binary entropy in bits (0 at p = 0 or 1, 1 at p = 0.5) times 100, rounded."""
    p = np.clip(np.asarray(probs, np.float32), 1e-7, 1 - 1e-7)
    bits = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    out = np.rint(bits * UNCERTAINTY_SCALE)
    return np.moveaxis(np.clip(out, 0, UNCERTAINTY_SCALE).astype(np.uint8), 0, -1)


def expected_dice(probs: np.ndarray, mask: np.ndarray) -> float:
    """Expected Dice of ``mask`` when each voxel is foreground with probability ``probs``
    (both (X, Y, Z)), to first order: ``2 sum(p in mask) / (|mask| + sum(p))``; 1 when both are
    empty."""
    p = np.asarray(probs, np.float64)
    mask = np.asarray(mask, bool)
    total = float(mask.sum()) + float(p.sum())
    return 1.0 if total == 0 else 2.0 * float(p[mask].sum()) / total


def pass_disagreement(ranges: np.ndarray | None, labels: np.ndarray) -> dict[str, float]:
    """``{"disagree_<R>": ...}``: per region R, the mean over the voxels the label map (X, Y, Z,
    course codes) puts in R of ``ranges`` (3, X, Y, Z), the range of the passes' R probability
    (``predict.predict_volume_spread``; for two passes their absolute difference, 0..1); 0 for
    a region the map does not hold; NaN for every region when ``ranges`` is None (one pass)."""
    labels = np.asarray(labels)
    row = {}
    for channel, (region, codes) in enumerate(REGIONS.items()):
        value = math.nan
        if ranges is not None:
            mask = np.isin(labels, codes)
            value = float(ranges[channel][mask].mean()) if mask.any() else 0.0
        row[f"disagree_{region}"] = value
    return row


def case_doubt(
    probs: np.ndarray,
    labels: np.ndarray,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    uncertainty: np.ndarray | None = None,
    ranges: np.ndarray | None = None,
) -> dict[str, float]:
    """The per-case numbers of ``QC_COLUMNS`` for one scan.

    Args:
        probs: (3, X, Y, Z) region probabilities WT, TC, ET before clean-up.
        labels: (X, Y, Z) the final label map (course codes), whose regions are judged.
        spacing: voxel size in mm, for the tumour volume.
        uncertainty: its ``voxel_uncertainty`` when already computed (else computed here).
        ranges: (3, X, Y, Z) the passes' disagreement per region (``pass_disagreement``), or
            None when unknown (the ``disagree_<R>`` columns are then NaN).

    Returns:
        ``{"doubt": 1 - lowest expected Dice, "expected_dice_<R>" per region (``expected_dice``
        of the region's mask under its probability channel), "disagree_<R>" per region
        (``pass_disagreement``), "uncertain_ratio": voxels whose uncertainty in some channel is
        above ``UNCERTAIN_ABOVE``, per voxel of predicted tumour (of 1 when none),
        "tumour_ml"}``, rounded to 4 decimals.
    """
    labels = np.asarray(labels)
    row: dict[str, float] = pass_disagreement(ranges, labels)
    for channel, (region, codes) in enumerate(REGIONS.items()):
        row[f"expected_dice_{region}"] = expected_dice(probs[channel], np.isin(labels, codes))
    if uncertainty is None:
        uncertainty = voxel_uncertainty(probs)
    uncertain = int(np.any(uncertainty > UNCERTAIN_ABOVE, axis=-1).sum())
    tumour = int((labels > 0).sum())
    row["uncertain_ratio"] = uncertain / max(tumour, 1)
    row["tumour_ml"] = tumour * math.prod(float(s) for s in spacing) / 1000.0
    row["doubt"] = 1.0 - min(row[f"expected_dice_{r}"] for r in REGIONS)
    return {k: round(row[k], 4) for k in QC_COLUMNS}


def qc_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The check-first list: one row per case (``case``, then ``QC_COLUMNS``), most doubtful
    first (ties by case id)."""
    table = pd.DataFrame(list(rows), columns=["case", *QC_COLUMNS])
    return table.sort_values(["doubt", "case"], ascending=[False, True], kind="stable").reset_index(
        drop=True
    )


def qc_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The check-first rows (``case`` and ``QC_COLUMNS``) of an evaluate table's scored cases
    (a row with a non-empty ``error`` has no doubt and is left out, as a failed case of a folder
    predict is)."""
    scored = table
    if "error" in table:
        scored = table[table["error"].fillna("").astype(str) == ""]
    return scored[["case", *QC_COLUMNS]].to_dict("records")


def update_qc(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Merge ``rows`` into the check-first list at ``path`` (a case's new row replaces its old
    one) and write it back, sorted (``qc_table``), atomically; returns the path."""
    old = read_qc(path).to_dict("records")
    new = {str(r["case"]) for r in rows}
    merged = [r for r in old if str(r["case"]) not in new] + [dict(r) for r in rows]
    return write_qc(path, merged)


def read_qc(path: str | Path) -> pd.DataFrame:
    """The check-first list at ``path`` (``qc_table``); an empty one when there is no file."""
    path = Path(path)
    rows = pd.read_csv(path, dtype={"case": str}).to_dict("records") if path.is_file() else []
    return qc_table(rows)


def write_qc(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``rows`` as the check-first list at ``path`` (``qc_table``: sorted, most doubtful
    first), atomically; returns the path."""
    return write_text(path, qc_table(rows).to_csv(index=False, float_format="%.6g"))


def save_volume(
    volume: np.ndarray, reference: Any, out: str | Path, slope: float = 1.0, what: str = ""
) -> Path:
    """Write an (X, Y, Z, K) volume (uint8, or float32) as NIfTI on ``reference``'s grid (its
    affine and spatial header), atomically; ``slope``: the header's scale slope (stored values times it
    are the meaning); ``what``: the header's description (80 characters at most)."""
    import nibabel as nib

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = reference.header.copy()
    header.set_data_shape(volume.shape)
    volume = np.asarray(volume)
    header.set_data_dtype(volume.dtype)
    img = nib.Nifti1Image(volume, reference.affine, header=header)
    img.header.set_slope_inter(slope, 0.0)
    img.header["descrip"] = what[:79].encode()
    suffix = ".nii.gz" if out.name.endswith(".gz") else ".nii"
    with atomic_path(out, suffix=suffix) as tmp:
        nib.save(img, str(tmp))
    return out


def load_probabilities(path: str | Path) -> np.ndarray:
    """Saved probabilities (``save_probabilities``) back as (K, X, Y, Z) float32: uint8 codes
    decoded exactly as ``decode_probabilities`` does (not through the header's float32
    slope), float32 as stored."""
    import nibabel as nib

    stored = np.asarray(nib.load(str(path)).dataobj.get_unscaled())
    if stored.dtype == np.uint8:
        stored = decode_probabilities(stored)
    return np.moveaxis(stored.astype(np.float32, copy=False), -1, 0)


def save_probabilities(
    probs: np.ndarray,
    reference: Any,
    out: str | Path,
    threshold: float = THRESHOLD,
    outputs: Outputs | str = Outputs.REGIONS,
) -> Path:
    """Write (K, X, Y, Z) probabilities on the grid of ``reference``, channels last; returns the
    path.  A region model's (``outputs``): uint8 codes (``encode_probabilities``: labelling
    needs only each channel's side of ``threshold``, which they keep).  A class model's:
    float32 as they are, since its label is the most probable class and 8 bits would tie
    close classes."""
    if Outputs(outputs) is Outputs.CLASSES:
        volume = np.moveaxis(np.asarray(probs, np.float32), 0, -1)
        return save_volume(volume, reference, out, 1.0, "tumorseg class probabilities")
    codes = encode_probabilities(probs, threshold)
    what = f"tumorseg probabilities x/255, threshold {threshold:g}"
    return save_volume(codes, reference, out, 1.0 / PROBABILITY_SCALE, what)


def save_uncertainty(uncertainty: np.ndarray, reference: Any, out: str | Path) -> Path:
    """Write a ``voxel_uncertainty`` volume (X, Y, Z, K) uint8 0..100; returns the path."""
    return save_volume(uncertainty, reference, out, 1.0, "tumorseg uncertainty 0-100 (entropy)")


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation of two equal-length sequences (average ranks for ties); NaN
    with fewer than 3 pairs or a constant sequence."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(spearmanr(x, y).statistic)


def auroc(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """Area under the ROC curve of ``scores`` (higher: more likely positive) for the cases
    where ``positive`` is True (Mann-Whitney, ties count one half); NaN without both kinds."""
    from scipy.stats import rankdata

    scores, positive = np.asarray(scores, float), np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


#: A case whose worst region Dice is below this counts as failed in ``ranking_quality``.
FAILED_BELOW = 0.6


def ranking_quality(table: pd.DataFrame, failed_below: float = FAILED_BELOW) -> dict[str, float]:
    """How well the per-case doubt ranks the cases of an evaluate table (scored rows only).

    Returns ``{"n", "spearman": rank correlation of the confidence (1 - doubt) with the real
    worst region Dice, "auroc": AUROC of the doubt for catching the cases whose worst region
    Dice is below ``failed_below``, "failed": how many such cases}``; NaN where undefined.
    """
    scored = table
    if "error" in table:
        scored = table[table["error"].fillna("").astype(str) == ""]
    worst = scored[[f"{r}_dice" for r in REGIONS]].min(axis=1).to_numpy(float)
    doubt = scored["doubt"].to_numpy(float)
    failed = worst < failed_below
    return {
        "n": int(len(scored)),
        "spearman": spearman(1.0 - doubt, worst),
        "auroc": auroc(doubt, failed),
        "failed": int(failed.sum()),
    }


def ranking_line(table: pd.DataFrame, failed_below: float = FAILED_BELOW) -> str:
    """One line on ``ranking_quality``, for ``tumorseg evaluate``'s output."""
    q = ranking_quality(table, failed_below)
    return (
        f"doubt ranking over {q['n']} case(s): Spearman rho (1 - doubt vs worst region Dice) "
        f"{q['spearman']:.3f}; AUROC for worst region Dice < {failed_below:g} "
        f"({q['failed']} such case(s)) {q['auroc']:.3f}"
    )

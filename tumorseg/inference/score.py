"""Score saved label maps against a dataset's labels, with the course's metrics.

Predictions: a folder of NIfTI label maps ``<case>.nii.gz`` (or ``.nii``), ``(X, Y, Z)`` with
course codes 0 background, 1 edema, 2 non-enhancing tumor, 3 enhancing tumor, on the grid of
the case's image, as ``tumorseg predict`` writes them (or another tool, in that coding).

Labels: either a folder of label NIfTIs ``<case>.nii.gz`` in course codes (e.g. an MSD
``labelsTr``), or a dataset folder that ``tumorseg.data.open_dataset`` reads (MSD, or BraTS
2020/2021 whose raw codes are remapped).  Cases are matched by id: the file name without its
NIfTI extension, and the dataset's case id.

Per case: BraTS region Dice, HD95 (mm, voxel size from the label file's header), sensitivity
and specificity for WT/TC/ET, and per-class sensitivity and specificity of the label map.
Empty-mask conventions (BraTS by default: Dice 1 and HD95 0 for a region absent from both maps,
Dice 0 and HD95 373.13 mm for a missed or spurious one): see :mod:`tumorseg.metrics`.

A case that cannot be scored (an unreadable prediction or label, another grid) does not stop
the batch: its row keeps the case id, empty scores and the reason in the ``ERROR`` column
(``error``; empty for a scored case), the summary leaves it out (``summary``) and
``table_json`` counts it.  ``case_table`` builds such tables for ``score`` and ``evaluate``.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tumorseg.atomic import write_text
from tumorseg.batch import Shard, one_line, report_failure
from tumorseg.data import DataError, load_label_map, open_dataset
from tumorseg.data.io import NIFTI_EXTENSIONS, PathLike
from tumorseg.labels import (
    CLASS_KEYS,
    DEFAULT_CODING,
    REGIONS,
    LabelCoding,
    coding_fit,
    edema_outer_share,
    from_coding,
)
from tumorseg.metrics import BothEmpty

#: Relative tolerance on the voxel size of a prediction against its label's.
SPACING_RTOL = 1e-3

#: Column of a case table holding why a case was not scored ("" when it was).
ERROR = "error"

#: Columns of a ``score_folder`` table on the predictions' coding: the coding they were read in,
#: the share of the tumour's outer surface that is edema (``edema_outer_share``; empty when no
#: verdict) and the coding that fits better when the read one looks wrong ("" otherwise).
CODING_COLUMNS: tuple[str, ...] = ("label_coding", "edema_outer_share", "coding_fits")

#: Columns of the QU-BraTS score of an uncertainty map (``score_folder(uncertainty=...)``).
QU_COLUMNS: tuple[str, ...] = tuple(
    f"{r}_qu_{m}" for r in REGIONS for m in ("score", "dice_auc", "ftp_auc", "ftn_auc")
)


def read_uncertainty(path: PathLike, shape: Sequence[int]) -> np.ndarray:
    """An uncertainty map (``tumorseg predict --save-uncertainty``: (X, Y, Z, 3), WT/TC/ET,
    0..100; stored values, the header's scaling ignored) as float64; a 3-D map is used for
    every region.  Raises DataError naming the file when it is missing, unreadable, on another
    grid than ``shape`` (X, Y, Z) or outside 0..100."""
    import nibabel as nib

    try:
        unc = np.asarray(nib.load(str(path)).dataobj.get_unscaled(), np.float64)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(
            f"{path}: uncertainty map missing or unreadable ({one_line(exc)}). Write it with "
            f"`tumorseg predict DATA --out DIR --save-uncertainty` (DIR/uncertainty/<case>.nii.gz)."
        ) from None
    if unc.ndim == 3:
        unc = np.repeat(unc[..., None], len(REGIONS), axis=-1)
    if unc.shape != (*tuple(shape), len(REGIONS)) or unc.min() < 0 or unc.max() > 100:
        raise DataError(
            f"{path}: an uncertainty map must be (X, Y, Z) or (X, Y, Z, {len(REGIONS)}) on the "
            f"label's grid {tuple(shape)} with values 0..100; got shape {unc.shape}, values "
            f"{unc.min():g}..{unc.max():g}."
        )
    return unc


def qu_columns(pred: np.ndarray, truth: np.ndarray, unc: np.ndarray) -> dict[str, float]:
    """The ``QU_COLUMNS`` of one case: ``qu_brats_score`` of each region's masks of ``pred``
    and ``truth`` (course codes, (X, Y, Z)) with its channel of ``unc`` (X, Y, Z, 3)."""
    from tumorseg.metrics.qu_brats import qu_brats_score

    row = {}
    for channel, (region, codes) in enumerate(REGIONS.items()):
        figures = qu_brats_score(np.isin(pred, codes), np.isin(truth, codes), unc[..., channel])
        row.update({f"{region}_qu_{k}": round(v, 6) for k, v in figures.items()})
    return {k: row[k] for k in QU_COLUMNS}


@dataclass(frozen=True)
class ScoredCase:
    """One case as it is scored, handed to a per-case hook (``on_case``) of ``score_folder`` and
    ``tumorseg.inference.evaluate.evaluate``, e.g. the HTML report's ``CaseReport.add``.

    row: the case's table row; pred, truth: (X, Y, Z) label maps, codes 0..3; spacing: mm per
    voxel along X, Y, Z; image: (X, Y, Z, 4) channels last as ``load_case`` returns it (FLAIR,
    T1, T1Gd, T2), or None where the scorer did not read it; uncertainty: (X, Y, Z, 3) voxel
    uncertainty of the WT/TC/ET probabilities, uint8 0..100
    (``tumorseg.inference.uncertainty.voxel_uncertainty``; ``score_folder`` reads the saved maps
    of its ``uncertainty`` folder), or None where the scorer has none.
    """

    case: str
    row: Mapping[str, object]
    pred: np.ndarray
    truth: np.ndarray
    spacing: tuple[float, float, float]
    image: np.ndarray | None = None
    uncertainty: np.ndarray | None = None


#: A per-case hook: called once per scored case, in scoring order, before the next is read.
CaseHook = Callable[[ScoredCase], None]


def score_labels(
    pred_labels: np.ndarray,
    truth: np.ndarray,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    both_empty: str = BothEmpty.BRATS.value,
) -> dict[str, float]:
    """All scores of one case from its predicted and true label maps, as a flat dict.

    Args:
        pred_labels: (X, Y, Z) predicted label map, codes 0..3.
        truth: (X, Y, Z) ground-truth label map, codes 0..3.
        spacing: voxel size in mm along X, Y, Z.
        both_empty: how a region absent from both maps is scored (see ``tumorseg.metrics``).

    Returns:
        ``{"WT_dice", "WT_hd95", "WT_sensitivity", "WT_specificity", ... TC_*, ET_*,
        "edema_sensitivity", "edema_specificity", "non_enhancing_*", "enhancing_*"}``
        (class keys from ``tumorseg.labels.CLASS_KEYS``; class ``c`` is label ``c + 1``).
    """
    from tumorseg.metrics import region_scores, sensitivity_specificity

    pred_labels, truth = np.asarray(pred_labels), np.asarray(truth)
    regions = region_scores(pred_labels, truth, spacing, both_empty)
    row = {
        f"{region}_{name}": float(value)
        for region, scores in regions.iterrows()
        for name, value in scores.items()
    }
    for c, key in enumerate(CLASS_KEYS):
        sens, spec = sensitivity_specificity(pred_labels == c + 1, truth == c + 1)
        row[f"{key}_sensitivity"] = float(sens)
        row[f"{key}_specificity"] = float(spec)
    return row


def score_columns() -> list[str]:
    """The ``score_labels`` columns, in order (read off a scored 2x2x2 example)."""
    empty = np.zeros((2, 2, 2), np.uint8)
    return list(score_labels(empty, empty))


def case_table(rows: Sequence[dict], extra: Sequence[str] = ()) -> pd.DataFrame:
    """One row per case: ``case``, the ``score_labels`` columns, ``extra`` columns, ``error``.

    rows: dicts with ``case`` and either the scores (and ``extra``) or ``error``; a column a
        row lacks is NaN (``error``: ""), so a failed case keeps its row with empty scores.
    """
    rows = [{ERROR: "", **row} for row in rows]
    return pd.DataFrame(rows, columns=["case", *score_columns(), *extra, ERROR])


def failed_cases(table: pd.DataFrame) -> list[str]:
    """Case ids of the rows with an ``error`` (none when the table has no such column)."""
    if ERROR not in table:
        return []
    return table.loc[table[ERROR].fillna("").astype(str) != "", "case"].astype(str).tolist()


def count_line(table: pd.DataFrame) -> str:
    """``"<n> case(s): <m> scored, <k> failed"`` of a case table."""
    failed = len(failed_cases(table))
    return f"{len(table)} case(s): {len(table) - failed} scored, {failed} failed"


def nifti_files(folder: Path) -> dict[str, Path]:
    """Case id -> NIfTI file of ``folder`` (not recursive), sorted by id.

    A case stored as both ``.nii.gz`` and ``.nii`` takes the ``.nii.gz`` file (as
    ``tumorseg.data.io.find_nifti`` does); hidden files (``._*``, ``.*``) are ignored.
    """
    files: dict[str, Path] = {}
    for ext in reversed(NIFTI_EXTENSIONS):  # the preferred extension comes last and wins
        for path in folder.glob("*" + ext):
            if path.is_file() and not path.name.startswith("."):
                files[path.name[: -len(ext)]] = path
    return dict(sorted(files.items()))


def label_files(labels: PathLike) -> dict[str, tuple[Path, bool]]:
    """Case id -> (label file, whether it holds raw BraTS codes) of a labels folder.

    labels: a folder of label NIfTIs ``<case>.nii.gz`` in course codes, or an MSD/BraTS
        dataset folder (``tumorseg.data.open_dataset``).
    Raises DataError when the folder is missing or is neither.
    """
    root = Path(labels)
    if not root.is_dir():
        raise DataError(
            f"{root}: labels folder not found. Pass a folder of <case>.nii.gz label maps or an "
            f"MSD/BraTS dataset folder (e.g. data/BraTS-Data, built by `make data`)."
        )
    direct = nifti_files(root)
    if direct:
        return {cid: (path, False) for cid, path in direct.items()}
    return {case.id: (case.label_path, case.layout == "brats") for case in open_dataset(root)}


def _prediction_files(pred_dir: PathLike) -> dict[str, Path]:
    root = Path(pred_dir)
    files = nifti_files(root) if root.is_dir() else {}
    if not files:
        what = "holds no .nii.gz/.nii label map" if root.is_dir() else "folder not found"
        raise DataError(
            f"{root}: predictions {what}. Write one label map per case, named by case id, "
            f"e.g. `tumorseg predict IMAGE --out {root}/<case>.nii.gz`."
        )
    return files


def match_cases(
    pred_dir: PathLike, labels: PathLike, cases: Sequence[str] | None = None
) -> tuple[list[tuple[str, Path, Path, bool]], list[str]]:
    """Pair each prediction with its label by case id.

    Args:
        pred_dir: folder of predicted label maps ``<case>.nii.gz``.
        labels: labels folder or dataset folder (see ``label_files``).
        cases: case ids to score (default: every prediction).

    Returns:
        ``(pairs, unscored)``: ``(case id, prediction file, label file, raw BraTS codes)`` per
        scored case, and the labelled case ids without a prediction that are left out.
        Raises DataError naming the file for a prediction without a label, or a listed case
        without a prediction.
    """
    preds, truths = _prediction_files(pred_dir), label_files(labels)
    ids = list(cases) if cases else list(preds)
    pairs = []
    for cid in ids:
        if cid not in preds:
            raise DataError(
                f"{Path(pred_dir) / (cid + '.nii.gz')}: no prediction for case {cid!r}. Write "
                f"it with `tumorseg predict IMAGE --out` that path, or leave {cid!r} out of "
                f"--cases."
            )
        if cid not in truths:
            known = ", ".join(list(truths)[:5]) + (" ..." if len(truths) > 5 else "")
            raise DataError(
                f"{preds[cid]}: no label for case {cid!r} in {labels} (its cases: {known}). "
                f"Name predictions by the case id of their label, point --labels at the "
                f"dataset they were predicted from, or pass --cases."
            )
        pairs.append((cid, preds[cid], *truths[cid]))
    unscored = [cid for cid in truths if cid not in set(ids)]
    return pairs, unscored


def read_prediction(
    path: PathLike, coding: LabelCoding | str = DEFAULT_CODING
) -> tuple[np.ndarray, tuple[float, float, float]]:
    """``(labels, spacing)`` of a saved label map written in ``coding``: (X, Y, Z) course codes
    and its voxel size in mm.  Raises DataError naming the file when it is unreadable or holds a
    code that ``coding`` does not have (the message names the coding and the option)."""
    coding = LabelCoding(coding)
    try:
        if coding is LabelCoding.BRATS2021:
            return load_label_map(path, brats_codes=True)
        labels, spacing = load_label_map(path)
    except DataError as exc:
        raise DataError(
            f"{exc} (read in the {coding.value} label coding; pass --label-coding "
            f"{'/'.join(c.value for c in LabelCoding)} for the coding it was written in)"
        ) from None
    return (from_coding(labels, coding) if coding is not LabelCoding.MSD else labels), spacing


def coding_columns(pred: np.ndarray, coding: LabelCoding | str) -> dict[str, object]:
    """The ``CODING_COLUMNS`` of a prediction read in ``coding`` (course codes, (X, Y, Z))."""
    share = edema_outer_share(pred)
    fits = coding_fit(pred, coding)
    return {
        "label_coding": LabelCoding(coding).value,
        "edema_outer_share": math.nan if share is None else round(share, 4),
        "coding_fits": "" if fits is None else fits.value,
    }


def coding_warning(case: str, row: Mapping[str, object]) -> str | None:
    """The warning for a case whose ``coding_fits`` names another coding, or None."""
    if not row.get("coding_fits"):
        return None
    share = float(row["edema_outer_share"])  # type: ignore[arg-type]
    return (
        f"case {case}: its 'edema' code lies mostly inside the other tumour codes (edema is "
        f"{share:.0%} of the tumour's outer surface), so it was likely written in another "
        f"coding than {row['label_coding']}: {row['coding_fits']} fits; rescore with "
        f"--label-coding {row['coding_fits']}"
    )


def load_pair(
    pred_path: PathLike,
    label_path: PathLike,
    brats_codes: bool = False,
    coding: LabelCoding | str = DEFAULT_CODING,
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """``(pred, truth, spacing)``: a saved prediction and its label, (X, Y, Z) course codes, and
    the label's voxel size in mm.

    coding: the prediction's label coding (``LabelCoding``; the label follows its dataset's
    layout).  Raises DataError naming the prediction when it is unreadable, holds codes outside
    its coding, or lies on another grid (shape or voxel size) than the label.
    """
    truth, spacing = load_label_map(label_path, brats_codes)
    pred, pred_spacing = read_prediction(pred_path, coding)
    if pred.shape != truth.shape:
        raise DataError(
            f"{pred_path}: prediction shape {pred.shape} differs from the label's {truth.shape} "
            f"({label_path}). Save each prediction on the grid of its case's image, as "
            f"`tumorseg predict` does (no cropping or resampling)."
        )
    if not np.allclose(pred_spacing, spacing, rtol=SPACING_RTOL):
        raise DataError(
            f"{pred_path}: voxel size {pred_spacing} mm differs from the label's {spacing} mm "
            f"({label_path}). Save the prediction with its case image's header, as "
            f"`tumorseg predict` does."
        )
    return pred, truth, spacing


def score_file(
    pred_path: PathLike,
    label_path: PathLike,
    brats_codes: bool = False,
    both_empty: str = BothEmpty.BRATS.value,
) -> dict[str, float]:
    """``score_labels`` of a saved prediction against a label file, voxel size from the label
    (DataError as ``load_pair`` raises it)."""
    return score_labels(*load_pair(pred_path, label_path, brats_codes), both_empty)


def score_folder(
    pred_dir: PathLike,
    labels: PathLike,
    cases: Sequence[str] | None = None,
    both_empty: str = BothEmpty.BRATS.value,
    shard: Shard | None = None,
    on_case: CaseHook | None = None,
    coding: LabelCoding | str = DEFAULT_CODING,
    uncertainty: PathLike | None = None,
) -> pd.DataFrame:
    """Score every prediction of a folder (or the listed cases) against its label.

    Args:
        pred_dir: folder of predicted label maps ``<case>.nii.gz`` (course codes 0..3).
        labels: folder of label NIfTIs, or an MSD/BraTS dataset folder.
        cases: case ids to score (default: every prediction).
        both_empty: how a region absent from both maps is scored (see ``tumorseg.metrics``).
        shard: score only this share of those cases (``tumorseg.batch.Shard``; default all).
        on_case: called with each scored case's ``ScoredCase`` (no image) once it is scored.
        coding: the predictions' label coding (``LabelCoding``); each is checked for fitting
            it (``coding_fit``): a doubtful case is warned about on stderr, naming the coding
            that fits, and its row records it (``CODING_COLUMNS``).
        uncertainty: a folder of uncertainty maps ``<case>.nii.gz`` (``read_uncertainty``):
            each case also gets its QU-BraTS score per region (``QU_COLUMNS``), and ``on_case``
            its map (a report then draws the uncertainty panel).

    Returns:
        ``case_table``, one row per case sorted by case id (the shard rule's order): ``case``,
        the ``score_labels`` columns, the ``CODING_COLUMNS`` (and ``QU_COLUMNS``) and
        ``error``; ``attrs["unscored"]`` lists the labelled cases without a prediction.  Every pair is matched before any is scored, so a case
        without a prediction or label fails fast (DataError); a case whose files cannot be
        scored gets its ``error`` (also printed on stderr) and the others are scored.
    """
    from tqdm.auto import tqdm

    pairs, unscored = match_cases(pred_dir, labels, cases)
    pairs = [pairs[i] for i in (shard or Shard()).positions([p[0] for p in pairs])]
    rows: list[dict] = []
    for cid, pred_path, label_path, brats_codes in tqdm(pairs, desc="score", unit="case"):
        try:
            pred, truth, spacing = load_pair(pred_path, label_path, brats_codes, coding)
        except DataError as exc:
            report_failure("tumorseg score", cid, exc)
            rows.append({"case": cid, ERROR: one_line(exc)})
            continue
        row = {"case": cid, **score_labels(pred, truth, spacing, both_empty)}
        row.update(coding_columns(pred, coding))
        unc = None
        if uncertainty is not None:
            try:
                unc = read_uncertainty(Path(uncertainty) / pred_path.name, truth.shape)
            except DataError as exc:
                report_failure("tumorseg score", cid, exc)
                rows.append({"case": cid, ERROR: one_line(exc)})
                continue
            row.update(qu_columns(pred, truth, unc))
        warning = coding_warning(cid, row)
        if warning:
            print(f"tumorseg score: warning: {warning}", file=sys.stderr)
        rows.append(row)
        if on_case is not None:
            shown = None if unc is None else np.clip(np.rint(unc), 0, 100).astype(np.uint8)
            on_case(ScoredCase(cid, rows[-1], pred, truth, spacing, uncertainty=shown))
    extra = (*CODING_COLUMNS, *(QU_COLUMNS if uncertainty is not None else ()))
    table = case_table(rows, extra=extra)
    table.attrs["unscored"] = unscored
    return table


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation and median over cases of the region Dice and HD95 columns.

    Returns a DataFrame indexed by WT/TC/ET with columns dice_mean, dice_std, dice_median,
    hd95_mean, hd95_median (NaN-aware: a NaN score, from ``both_empty="nan"``, is left out)
    and ``n``, the number of cases each region's Dice statistics are taken over; rows with an
    ``error`` (cases that could not be scored) are left out.
    """
    if failed_cases(table):
        table = table[table[ERROR].fillna("").astype(str) == ""]
    rows = {}
    for region in REGIONS:
        d, h = table[f"{region}_dice"], table[f"{region}_hd95"]
        rows[region] = {
            "dice_mean": d.mean(),
            "dice_std": d.std(ddof=0),
            "dice_median": d.median(),
            "hd95_mean": h.mean(),
            "hd95_median": h.median(),
            "n": int(d.notna().sum()),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def _json_value(value: object) -> object:
    """NaN (a region absent from both maps under ``both_empty="nan"``) as JSON ``null``; other
    values unchanged."""
    return None if isinstance(value, float) and math.isnan(value) else value


def table_json(table: pd.DataFrame, stats: pd.DataFrame) -> str:
    """``{"cases": [one object per row], "summary": {region: {statistic: value}}, "scored": n,
    "failed": n}``, NaN as null (``stats``: the table's :func:`summary`)."""
    cases = [{k: _json_value(v) for k, v in row.items()} for row in table.to_dict("records")]
    regions = {
        region: {k: _json_value(float(v)) for k, v in row.items()}
        for region, row in stats.to_dict("index").items()
    }
    failed = len(failed_cases(table))
    document = {"cases": cases, "summary": regions, "scored": len(table) - failed, "failed": failed}
    return json.dumps(document, indent=1) + "\n"


def read_table(path: PathLike) -> pd.DataFrame:
    """A case table written by ``write_table`` (CSV, or JSON with ``"cases"``), ``error`` ""
    where a case was scored.  Raises DataError naming the file when it is missing or is not
    such a table."""
    path = Path(path)
    try:
        if path.name.endswith(".json"):
            table = pd.DataFrame(json.loads(path.read_text(encoding="utf-8"))["cases"])
        else:
            table = pd.read_csv(
                path, dtype={"case": str, ERROR: str}, keep_default_na=False, na_values=[""]
            )
    except FileNotFoundError:
        raise DataError(f"{path}: table not found. Pass the --out file of each shard.") from None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(
            f"{path}: not a per-case table of `tumorseg evaluate`/`score` ({type(exc).__name__}: "
            f"{one_line(exc)}). Pass the CSV or JSON --out file of each shard."
        ) from None
    if "case" not in table:
        raise DataError(
            f"{path}: has no 'case' column, so it is not a per-case table of `tumorseg "
            f"evaluate`/`score`. Pass the CSV or JSON --out file of each shard."
        )
    table["case"] = table["case"].astype(str)
    if ERROR in table:
        table[ERROR] = table[ERROR].fillna("").astype(str)
    return table


def write_table(out: str | Path, table: pd.DataFrame, stats: pd.DataFrame) -> Path:
    """Write the per-case table to ``out``: JSON (cases and ``stats``, the table's
    :func:`summary`) for ``*.json``, else CSV."""
    if str(out).endswith(".json"):
        return write_text(out, table_json(table, stats))
    return write_text(out, table.to_csv(index=False, float_format="%.6g"))

"""A model's ``evaluation`` record: its per-case whole-scan figures, kept in its manifest.

The record says how a shipped model scored on named cases and with which options, and how
the model it replaced scored on the same cases, so that anyone can rerun ``tumorseg evaluate``
and set the new figures beside the recorded ones (``compare_with_record``)::

    {"set": "...", "command": "tumorseg evaluate --data ...",
     "options": {"threshold": 0.4, "tta": "x", "postprocess": {...}, "both_empty": "brats"},
     "n": 7, "mean": {"WT_dice": ..., "TC_dice": ..., "ET_dice": ..., "WT_hd95_median": ...},
     "per_case": {"<case>": {"WT_dice": ..., "TC_dice": ..., "ET_dice": ...,
                             "WT_hd95": ..., "TC_hd95": ..., "ET_hd95": ...}},
     "previous_model": {the same keys, for the model this one replaced}}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from tumorseg.labels import REGIONS

#: The per-case columns a record keeps: Dice and HD95 of every BraTS region.
RECORD_COLUMNS: tuple[str, ...] = tuple(
    f"{region}_{measure}" for measure in ("dice", "hd95") for region in REGIONS
)


#: The summary row of ``compare_with_record``.
MEAN_ROW = "mean (HD95: median)"


def figures(table: pd.DataFrame) -> dict[str, Any]:
    """``{"n", "mean", "per_case"}`` of an ``evaluate``/``score`` table (one row per case).

    Cases with an ``error`` (a failed case) are left out; ``mean`` holds the mean Dice per
    region and the median WT HD95 over the remaining cases, rounded to 4 decimals.
    """
    if "error" in table:
        table = table[table["error"].isna() | (table["error"] == "")]
    per_case = {
        str(row["case"]): {c: round(float(row[c]), 4) for c in RECORD_COLUMNS}
        for _, row in table.iterrows()
    }
    mean = {f"{r}_dice": round(float(table[f"{r}_dice"].mean()), 4) for r in REGIONS}
    mean["WT_hd95_median"] = round(float(table["WT_hd95"].median()), 4)
    return {"n": len(per_case), "mean": mean, "per_case": per_case}


def evaluation_record(
    table: pd.DataFrame,
    options: Mapping[str, Any],
    description: str,
    previous: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """The manifest's ``evaluation`` record of ``table`` (this model) and ``previous`` (the
    model it replaces, scored on the same cases with its own options), described by
    ``description`` (which set, which command) and ``options`` (threshold, tta, post-processing,
    both-empty convention)."""
    record: dict[str, Any] = {"set": description, "options": dict(options), **figures(table)}
    if previous is not None:
        record["previous_model"] = figures(previous)
    return record


def compare_with_record(table: pd.DataFrame, record: Mapping[str, Any]) -> pd.DataFrame:
    """This run's Dice and WT HD95 beside the record's, for the cases both hold.

    Returns one row per shared case plus a summary row (``MEAN_ROW``: mean Dice, median
    HD95), columns ``<region>_dice`` (this run),
    ``<region>_dice_record`` (the record's) and ``WT_hd95``/``WT_hd95_record``, and the
    previous model's Dice (``<region>_dice_previous``) when the record holds it.  Empty when no
    case is shared.
    """
    recorded = record.get("per_case", {})
    previous = record.get("previous_model", {}).get("per_case", {})
    rows = []
    for _, row in table.iterrows():
        case = str(row["case"])
        if case not in recorded:
            continue
        out: dict[str, Any] = {"case": case}
        for key in (*(f"{r}_dice" for r in REGIONS), "WT_hd95"):
            out[key] = float(row[key])
            out[f"{key}_record"] = recorded[case].get(key)
            if case in previous:
                out[f"{key}_previous"] = previous[case].get(key)
        rows.append(out)
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows).set_index("case")
    hd95 = [c for c in frame.columns if c.startswith("WT_hd95")]
    summary_row = frame.mean(numeric_only=True)
    summary_row[hd95] = frame[hd95].median(numeric_only=True)
    frame.loc[MEAN_ROW] = summary_row
    return frame

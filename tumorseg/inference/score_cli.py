"""``tumorseg score``: score saved label maps (a folder of NIfTI predictions) against labels.

The library side is :mod:`tumorseg.inference.score`; this module parses the options, writes
the per-case table (CSV, or JSON with the summary) and prints the summary of
``tumorseg evaluate``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd

from tumorseg.atomic import write_text
from tumorseg.data import DataError
from tumorseg.errors import fail
from tumorseg.metrics import BOTH_EMPTY_MODES


def _json_value(value: object) -> object:
    """NaN (a region absent from both maps) as JSON ``null``; other values unchanged."""
    return None if isinstance(value, float) and math.isnan(value) else value


def table_json(table: pd.DataFrame, summary: pd.DataFrame) -> str:
    """``{"cases": [one object per row], "summary": {region: {statistic: value}}}``, NaN as null."""
    cases = [{k: _json_value(v) for k, v in row.items()} for row in table.to_dict("records")]
    stats = {
        region: {k: _json_value(float(v)) for k, v in row.items()}
        for region, row in summary.to_dict("index").items()
    }
    return json.dumps({"cases": cases, "summary": stats}, indent=1) + "\n"


def write_table(out: str | Path, table: pd.DataFrame, summary: pd.DataFrame) -> Path:
    """Write the per-case table to ``out``: JSON (cases and summary) for ``*.json``, else CSV."""
    if str(out).endswith(".json"):
        return write_text(out, table_json(table, summary))
    return write_text(out, table.to_csv(index=False, float_format="%.6g"))


def main(argv: list[str] | None = None) -> int:
    """``tumorseg score --pred DIR --labels DIR [--out CSV|JSON] [--cases ID ...]``."""
    parser = argparse.ArgumentParser(
        prog="tumorseg score",
        description="Score saved label maps (<case>.nii.gz, codes 0 background, 1 edema, "
        "2 non-enhancing, 3 enhancing, as `tumorseg predict` writes them) against a dataset's "
        "labels: BraTS WT/TC/ET Dice and HD95 (mm), sensitivity/specificity; one row per case "
        "and a summary table.",
    )
    parser.add_argument("--pred", required=True, help="folder of predicted <case>.nii.gz maps")
    parser.add_argument(
        "--labels",
        required=True,
        help="folder of <case>.nii.gz label maps, or an MSD/BraTS dataset folder",
    )
    parser.add_argument(
        "--out", default=None, help="per-case table: .csv, or .json with the summary"
    )
    parser.add_argument("--cases", nargs="+", default=None, help="case ids (default: all preds)")
    parser.add_argument(
        "--both-empty",
        choices=BOTH_EMPTY_MODES,
        default="nan",
        help="Dice/HD95 of a region absent from both maps: nan (BraTS, left out of means; the "
        "default) or perfect (1 / 0 mm)",
    )
    args = parser.parse_args(argv)

    from tumorseg.inference.score import score_folder, summary

    try:
        table = score_folder(args.pred, args.labels, args.cases, args.both_empty)
    except DataError as exc:
        fail(parser.prog, exc)
    stats = summary(table)
    if args.out:
        print(f"wrote {write_table(args.out, table, stats)}")
    unscored = table.attrs.get("unscored", [])
    if unscored:
        print(f"{len(unscored)} labelled case(s) without a prediction, not scored")
    with pd.option_context("display.width", 120, "display.precision", 4):
        print(f"{len(table)} case(s) scored")
        print(stats.to_string())
    return 0

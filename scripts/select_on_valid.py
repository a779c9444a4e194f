"""Choose a checkpoint, test-time mirroring and post-processing on whole validation scans.

For every ``--weights`` file and every ``--tta`` level, predicts each case of ``--scans`` once
(no post-processing), then scores the cached probabilities under every post-processing rule of
a small grid (``GRID``).  Prints per-patient WT/TC/ET Dice and HD95, the mean over patients
and the median WT HD95 for each combination, and writes everything to ``--json``.  Choose on
real validation patients (``../shared/real-brats-scans/valid``), never on the test patients.

    .venv/bin/python scripts/select_on_valid.py --scans ../shared/real-brats-scans/valid \\
        --weights runs/k1/snapshot_800.weights.h5 runs/k1/model.weights.h5 --tta none x \\
        --json runs/k1/selection.json

``--quick`` is a smoke run: the first case of ``--scans`` (default: the sample data), the
shipped model, no post-processing grid.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from tumorseg.inference.postprocess import Postprocess  # noqa: E402


#: The post-processing rules tried on every prediction: component sizes, and the BraTS
#: enhancing-tumour rule (a predicted ET smaller than ``min_enhancing`` voxels becomes
#: non-enhancing), scored as BraTS scores them (a region absent from both maps is perfect).
def rule_grid(
    components: tuple[int, ...] = (1000, 5000),
    fractions: tuple[float, ...] = (0.0, 0.1, 1.0),
    enhancing: tuple[int, ...] = (0, 300, 1000),
) -> list[Postprocess]:
    """No post-processing, then every combination of the three rules' values."""
    return [Postprocess()] + [
        Postprocess(min_component=m, keep_fraction=f, min_enhancing=e)
        for m, f, e in itertools.product(components, fractions, enhancing)
    ]


GRID = rule_grid()


def score_grid(
    weights: str | None, scans: Path, tta: str, cases, thresholds: list[float], grid: list
):
    """One row per (threshold, rule of ``GRID``, case): the threshold, the rule's fields, the
    case's scores, seconds.  Each case is predicted once (mirrored by ``tta``, without
    clean-up) and labelled with the model's output kind."""
    from tumorseg.inference import resolve_settings
    from tumorseg.inference.evaluate import predict_cases, score_prediction
    from tumorseg.model import load_pretrained

    model, _ = load_pretrained(weights, input_shape=(4, None, None, None))
    outputs = resolve_settings(model).outputs  # classes or regions: the label rule
    rows = []
    for pred in predict_cases(scans, model, cases, tta=tta):
        for threshold, rules in itertools.product(thresholds, grid):
            row = score_prediction(pred, rules, threshold, outputs=outputs)
            rows.append({"threshold": threshold, **rules.to_dict(), **row})
    return pd.DataFrame(rows)


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean Dice per region, median WT HD95 and the mean of the three Dice, per rule."""
    keys = ["threshold", "min_component", "keep_fraction", "min_enhancing"]
    g = table.groupby(keys)
    out = g[["WT_dice", "TC_dice", "ET_dice"]].mean()
    out["WT_hd95_median"] = g["WT_hd95"].median()
    out["mean_dice"] = out[["WT_dice", "TC_dice", "ET_dice"]].mean(axis=1)
    return out.sort_values("mean_dice", ascending=False)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scans", type=Path, help="dataset of whole validation cases (required)")
    p.add_argument(
        "--weights", nargs="+", default=[None], help=".weights.h5 files (default: shipped)"
    )
    p.add_argument("--tta", nargs="+", default=["none"], choices=["none", "x", "xyz"])
    p.add_argument("--cases", nargs="*", default=None, help="case ids (default: all)")
    p.add_argument("--threshold", type=float, nargs="+", default=[0.5])
    p.add_argument("--json", type=Path, default=None, help="write every figure here")
    p.add_argument(
        "--plain", action="store_true", help="score without post-processing only (no grid)"
    )
    p.add_argument("--min-component", type=int, nargs="+", default=[1000, 5000])
    p.add_argument("--keep-fraction", type=float, nargs="+", default=[0.0, 0.1, 1.0])
    p.add_argument("--min-enhancing", type=int, nargs="+", default=[0, 300, 1000])
    p.add_argument("--quick", action="store_true", help="smoke run: one case, --plain")
    args = p.parse_args(argv)
    if args.quick:
        from tumorseg.data import open_dataset

        args.scans = args.scans or ROOT / "data" / "BraTS-Data"
        args.cases, args.plain = args.cases or open_dataset(args.scans).ids[:1], True
    if args.scans is None:
        p.error("--scans is required")
    results = []
    for weights, tta in itertools.product(args.weights, args.tta):
        grid = [Postprocess()]
        if not args.plain:
            grid = rule_grid(
                tuple(args.min_component), tuple(args.keep_fraction), tuple(args.min_enhancing)
            )
        table = score_grid(weights, args.scans, tta, args.cases, args.threshold, grid)
        best = summarize(table)
        print(f"\n== {weights or 'shipped'}  tta={tta}")
        print("per patient, no post-processing:")
        plain = table[
            (table.min_component == 0) & (table.keep_fraction == 0) & (table.min_enhancing == 0)
        ]
        cols = ["threshold", "case", "seconds"]
        cols += [f"{r}_{m}" for r in ("WT", "TC", "ET") for m in ("dice", "hd95")]
        print(plain[cols].round(3).to_string(index=False))
        print("best rules (mean over patients):")
        print(best.head(8).round(3).to_string())
        results.append({"weights": weights, "tta": tta, "rows": table.to_dict(orient="records")})
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Per-patient Dice of several runs of ``tumorseg evaluate`` side by side, with bootstrap intervals.

    .venv/bin/python scripts/ablation_table.py round3=r3.json ensemble=ens.json [--boot 10000]

Each NAME=TABLE is a case table of ``tumorseg evaluate --out`` (CSV or JSON).  Prints, per
case, WT/TC/ET Dice of every run; then per run the mean over cases of each region with a 95 %
percentile bootstrap interval over cases (resampled with replacement, the same resamples for
every run, so intervals of runs on the same cases are comparable), the median WT HD95 and the
worst WT Dice.  ``--markdown`` prints Markdown tables (for CHANGES.md).  ``--quick`` is a smoke
run on two made-up tables.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tumorseg.inference.score import read_table  # noqa: E402

REGIONS = ("WT", "TC", "ET")


def bootstrap_mean(values: np.ndarray, draws: np.ndarray) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``values (n,)`` and the 2.5/97.5 percentiles of its
    means over the resampled index rows ``draws (B, n)``."""
    means = values[draws].mean(axis=1)
    return float(values.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def summary(tables: dict[str, pd.DataFrame], boot: int, seed: int = 0) -> pd.DataFrame:
    """One row per run: ``<R>`` means with ``<R>_lo``/``<R>_hi`` bootstrap bounds, the median WT
    HD95 and the worst WT Dice; every run over the same cases (the first table's)."""
    cases = list(next(iter(tables.values()))["case"])
    draws = np.random.default_rng(seed).integers(0, len(cases), (boot, len(cases)))
    rows = {}
    for name, t in tables.items():
        t = t.set_index("case").loc[cases]
        row: dict[str, float] = {}
        for r in REGIONS:
            row[r], row[f"{r}_lo"], row[f"{r}_hi"] = bootstrap_mean(
                t[f"{r}_dice"].to_numpy(float), draws
            )
        row["WT_hd95_median"] = float(t["WT_hd95"].median())
        row["worst_WT"] = float(t["WT_dice"].min())
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def per_case(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Rows: cases; columns: ``<run> <region>`` Dice."""
    parts = []
    for name, t in tables.items():
        part = t.set_index("case")[[f"{r}_dice" for r in REGIONS]]
        part.columns = [f"{name} {r}" for r in REGIONS]
        parts.append(part)
    return pd.concat(parts, axis=1)


def markdown(frame: pd.DataFrame) -> str:
    """``frame`` as a Markdown table, index first, floats with 3 decimals."""
    head = ["", *map(str, frame.columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for index, row in frame.iterrows():
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join([str(index), *cells]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ablation_table", description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="*", help="NAME=TABLE, a tumorseg evaluate --out file")
    p.add_argument("--boot", type=int, default=10000, help="bootstrap resamples")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--quick", action="store_true", help="smoke run on made-up tables")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ablation_table-") as tmp:
        if args.quick:
            args.runs, args.boot = _made_up(Path(tmp)), 200
        if not args.runs or any("=" not in r for r in args.runs):
            p.error("give runs as NAME=TABLE")
        tables = {n: read_table(f) for n, f in (r.split("=", 1) for r in args.runs)}
        show = markdown if args.markdown else str
        with pd.option_context("display.width", 200, "display.max_columns", 30):
            print(show(per_case(tables).round(3)))
            print()
            print(show(summary(tables, args.boot).round(3)))
    return 0


def _made_up(folder: Path) -> list[str]:
    rng = np.random.default_rng(0)
    runs = []
    for name in ("a", "b"):
        table = pd.DataFrame({"case": [f"c{i}" for i in range(5)], "error": [""] * 5})
        for r in REGIONS:
            table[f"{r}_dice"] = rng.uniform(0.5, 1.0, 5)
            table[f"{r}_hd95"] = rng.uniform(1, 10, 5)
        table.to_csv(folder / f"{name}.csv", index=False)
        runs.append(f"{name}={folder / f'{name}.csv'}")
    return runs


if __name__ == "__main__":
    sys.exit(main())

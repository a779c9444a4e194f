"""``tumorseg overview``: the command line of :func:`tumorseg.viz.overview.render_overview`."""

from __future__ import annotations

import argparse
from pathlib import Path

from tumorseg.data.errors import DataError
from tumorseg.errors import fail


def main(argv: list[str] | None = None) -> int:
    """``tumorseg overview``: render the overview PNG of a dataset."""
    ap = argparse.ArgumentParser(
        prog="tumorseg overview",
        description="Render FLAIR, T1, T1Gd, T2 and a label overlay of a few cases into a PNG.",
    )
    ap.add_argument("--data", required=True, type=Path, help="dataset folder (MSD or BraTS)")
    ap.add_argument("--out", required=True, type=Path, help="PNG file to write")
    ap.add_argument("--cases", type=int, default=3, help="number of cases (rows), default 3")
    args = ap.parse_args(argv)
    from tumorseg.viz.overview import render_overview

    try:
        out = render_overview(args.data, args.out, args.cases)
    except DataError as exc:
        fail("tumorseg overview", exc)
    print(f"wrote {out}")
    return 0

"""Command lines of batch work: ``tumorseg merge``, and the ``--shard I/N`` option that every
batch command takes (``add_shard_option``; the rule is in :mod:`tumorseg.batch`)."""

from __future__ import annotations

import argparse

from tumorseg.batch import SHARD_RULE, Shard
from tumorseg.errors import DataError, fail


def _shard(text: str) -> Shard:
    try:
        return Shard.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_shard_option(parser: argparse.ArgumentParser, items: str = "cases") -> None:
    """``--shard I/N`` (default ``0/1``, everything): do only shard I of N of the ``items``."""
    parser.add_argument(
        "--shard",
        type=_shard,
        default=Shard(),
        metavar="I/N",
        help=f"do only shard I of N of the {items} (0 <= I < N; rule: {SHARD_RULE}); the N "
        f"shards together do exactly the work of one run (default 0/1: all)",
    )


def merge_main(argv: list[str] | None = None) -> int:
    """``tumorseg merge --out OUT PART...``; exit status 1 when the merged table holds failed
    cases, 2 on a user error."""
    parser = argparse.ArgumentParser(
        prog="tumorseg merge",
        description="Merge the outputs of shards (--shard I/N): evaluate/score tables (CSV or "
        "JSON; rows sorted by case, summary recomputed) or grade folders (results.csv and the "
        "reports).  The result equals that of one unsharded run.",
    )
    parser.add_argument("parts", nargs="+", help="the shards' tables, or their grade folders")
    parser.add_argument(
        "--out", required=True, help="merged table (.csv or .json), or grade folder"
    )
    args = parser.parse_args(argv)

    import pandas as pd

    from tumorseg.batch.merge import (
        PartKind,
        merge_grades,
        merge_tables,
        parts_kind,
        write_merged_table,
    )

    try:
        kind = parts_kind(args.parts)
        if kind is PartKind.GRADES:
            rows = merge_grades(args.parts, args.out)
            print(f"merged {len(args.parts)} grade folder(s): {len(rows)} submission(s)")
            print(f"results: {args.out}/results.csv")
            return 0
        table = merge_tables(args.parts)
        written = write_merged_table(args.out, table)
    except DataError as exc:
        fail(parser.prog, exc)
    from tumorseg.inference.score import count_line, failed_cases, summary

    print(f"wrote {written}  ({len(args.parts)} part(s))")
    with pd.option_context("display.width", 120, "display.precision", 4):
        print(count_line(table))
        print(summary(table).to_string())
    return 1 if failed_cases(table) else 0

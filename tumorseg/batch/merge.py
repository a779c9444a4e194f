"""``tumorseg merge``: put the outputs of shards (``--shard I/N``) back together.

Two kinds of parts, all of one kind per merge:

- **case tables** of ``tumorseg evaluate``/``score`` (``--out`` CSV or JSON, any mix): the rows
  of every part, sorted by case id (the order of an unsharded run), and the summary recomputed
  from them (``tumorseg.inference.score.summary``: failed cases left out).  A case in two parts,
  or parts with different columns, is an error naming both files;
- **grade folders** of ``tumorseg grade --out``: ``results.csv`` rows merged by submission (the
  grader's own keyed merge, :mod:`tumorseg.course.grading.results`) and each row's JSON report
  copied beside it.  A submission graded differently in two parts is an error naming both.

Label-map folders of ``tumorseg predict`` need no merge: shards write into one folder.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from tumorseg.atomic import write_bytes
from tumorseg.errors import DataError


class PartKind(enum.Enum):
    """What a shard's output is: a per-case table, or a grades folder."""

    TABLE = "table"
    GRADES = "grades"


#: File endings of the case tables that ``tumorseg merge`` reads and writes.
TABLE_SUFFIXES = (".csv", ".json")


def part_kind(path: str | Path) -> PartKind:
    """The kind of one part; DataError naming it when it is neither."""
    from tumorseg.course.grading.results import CSV_NAME

    path = Path(path)
    if path.is_dir():
        if (path / CSV_NAME).is_file():
            return PartKind.GRADES
        raise DataError(
            f"{path}: a folder without {CSV_NAME}, so not a `tumorseg grade --out` folder. "
            f"Pass the grade folders of the shards, or the CSV/JSON tables of evaluate/score."
        )
    if path.suffix in TABLE_SUFFIXES:
        if not path.is_file():
            raise DataError(f"{path}: not found. Pass the --out file of each shard.")
        return PartKind.TABLE
    raise DataError(
        f"{path}: not a part to merge. Pass the .csv/.json tables of `tumorseg evaluate`/"
        f"`score`, or the --out folders of `tumorseg grade`."
    )


def parts_kind(parts: Sequence[str | Path]) -> PartKind:
    """The common kind of ``parts``; DataError when there are none or they differ."""
    if not parts:
        raise DataError("nothing to merge: pass the outputs of the shards.")
    kinds = {Path(p): part_kind(p) for p in parts}
    first = next(iter(kinds))
    for path, kind in kinds.items():
        if kind is not kinds[first]:
            raise DataError(
                f"{path}: a {kind.value} part, but {first} is a {kinds[first].value} part. "
                f"Merge the outputs of one command at a time."
            )
    return kinds[first]


def merge_tables(parts: Sequence[str | Path]) -> pd.DataFrame:
    """The rows of every part's case table, sorted by case id (see the module docstring).

    Returns the merged table (columns of the parts, ``error`` "" where scored).  Raises
    DataError for an unreadable part, a part whose columns differ from the first's, or a case
    found in two parts.
    """
    from tumorseg.inference.score import read_table

    tables = [(Path(p), read_table(p)) for p in parts]
    first, columns = tables[0][0], list(tables[0][1].columns)
    seen: dict[str, Path] = {}
    for path, table in tables:
        if list(table.columns) != columns:
            raise DataError(
                f"{path}: its columns differ from those of {first}; merge the tables of one "
                f"command with the same options (missing: {sorted(set(columns) - set(table))}, "
                f"extra: {sorted(set(table) - set(columns))})."
            )
        for case in table["case"]:
            if case in seen:
                raise DataError(
                    f"{path}: case {case!r} is also in {seen[case]}; the parts overlap. Merge "
                    f"the shards 0/N .. N-1/N of one run, each once."
                )
            seen[case] = path
    merged = pd.concat([t for _, t in tables], ignore_index=True)
    cases = merged["case"].tolist()
    order = sorted(range(len(cases)), key=lambda i: cases[i])
    return merged.iloc[order].reset_index(drop=True)


def write_merged_table(out: str | Path, table: pd.DataFrame) -> Path:
    """Write a merged case table to ``out`` (CSV, or JSON with the recomputed summary)."""
    from tumorseg.inference.score import summary, write_table

    if Path(out).suffix not in TABLE_SUFFIXES:
        raise DataError(f"{out}: merged tables are written as .csv or .json; name --out so.")
    return write_table(out, table, summary(table))


def merge_grades(parts: Sequence[str | Path], out: str | Path) -> dict[str, dict[str, str]]:
    """Merge grade folders into ``out``: their ``results.csv`` rows (merged by submission into
    ``out/results.csv``, which keeps its other rows) and each row's ``<name>.json`` report.

    Returns the merged rows by submission.  Raises DataError for an unreadable results.csv, a
    missing report, or a submission graded differently in two parts.
    """
    from tumorseg.course.grading import results

    out = Path(out)
    rows: dict[str, dict[str, str]] = {}
    origin: dict[str, Path] = {}
    for part in map(Path, parts):
        try:
            part_rows = results.read_rows(part)
        except results.ResultsFileError as exc:
            raise DataError(str(exc)) from None
        for key, row in part_rows.items():
            if key in rows and rows[key] != row:
                raise DataError(
                    f"{part / results.CSV_NAME}: submission {key!r} is also in "
                    f"{origin[key] / results.CSV_NAME} with another grade; the parts overlap. "
                    f"Merge the shards of one run, each once."
                )
            rows[key], origin[key] = row, part
    reports = {key: origin[key] / f"{Path(key).stem}.json" for key in rows}
    for key, report in reports.items():
        if not report.is_file():
            raise DataError(
                f"{report}: the report of {key!r} is missing; regrade that shard "
                f"(`tumorseg grade ... --shard`) before merging."
            )
    try:
        results.read_rows(out)  # refuse a foreign results.csv in OUT before writing anything
    except results.ResultsFileError as exc:
        raise DataError(str(exc)) from None
    for report in reports.values():
        target = out / report.name
        if target.resolve() != report.resolve():
            write_bytes(target, report.read_bytes())
    results.merge(out, rows)
    return rows

"""How the case tables of ``tumorseg evaluate``/``score`` shards (``--shard I/N``) merge: the
rows of every part (``--out`` CSV or JSON, any mix), sorted by case id (the order of an
unsharded run), and the summary recomputed from them (:func:`.score.summary`: failed cases left
out).  A case in two parts, or parts with different columns, is an error naming both files.
``tumorseg merge`` (:func:`tumorseg.cli.merge_main`) dispatches here."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from tumorseg.errors import DataError

from .batch import qc_files
from .score import read_table, summary, write_table
from .uncertainty import QC_COLUMNS, QC_CSV, qc_table, write_qc

#: File endings of the case tables that ``tumorseg merge`` reads and writes.
TABLE_SUFFIXES = (".csv", ".json")


def merge_tables(parts: Sequence[str | Path]) -> pd.DataFrame:
    """The rows of every part's case table, sorted by case id (see the module docstring).

    Returns the merged table (columns of the parts, ``error`` "" where scored).  Raises
    DataError for an unreadable part, a part whose columns differ from the first's, or a case
    found in two parts.
    """
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
    if Path(out).suffix not in TABLE_SUFFIXES:
        raise DataError(f"{out}: merged tables are written as .csv or .json; name --out so.")
    return write_table(out, table, summary(table))


def is_qc_table(path: str | Path) -> bool:
    """Whether ``path`` is a check-first list: a CSV whose header is ``case`` and the
    ``QC_COLUMNS``."""
    try:
        with open(path, encoding="utf-8") as f:
            header = f.readline().strip().split(",")
    except (OSError, UnicodeDecodeError):
        return False
    return header == ["case", *QC_COLUMNS]


def _read_qc_part(part: str | Path) -> dict[str, dict]:
    """``{case: row}`` of one merge part: a check-first list, or a run folder's lists
    (``batch.qc_files``: its qc.csv, say from an unsharded finishing pass or an earlier merge,
    and its shards'), read oldest first so that a case's newer row replaces its older one.
    DataError for a file that is not a check-first list, or a folder that holds none."""
    part = Path(part)
    files = [part] if part.is_file() else qc_files(part)
    if not files:
        raise DataError(
            f"{part}: holds no {QC_CSV} nor qc-shard-I-of-N.csv; pass the --out folders of "
            f"`tumorseg predict DATA` or the --save folders of `tumorseg evaluate`."
        )
    rows: dict[str, dict] = {}
    for path in files:
        if not is_qc_table(path):
            raise DataError(
                f"{path}: not a check-first list (its header is not case,"
                f"{','.join(QC_COLUMNS)}); pass the qc.csv files of one tumorseg version's runs."
            )
        rows.update(
            {r["case"]: r for r in pd.read_csv(path, dtype={"case": str}).to_dict("records")}
        )
    return rows


def merge_qc(parts: Sequence[str | Path]) -> pd.DataFrame:
    """One check-first list of the parts' (files, or run folders: ``_read_qc_part``), most
    doubtful first (``qc_table``).  Raises DataError for a part that is not a check-first
    list, or a case found in two parts."""
    rows: dict[str, dict] = {}
    seen: dict[str, Path] = {}
    for part in parts:
        for case, row in _read_qc_part(part).items():
            if case in seen:
                raise DataError(
                    f"{part}: case {case!r} is also in {seen[case]}; the parts overlap. Merge "
                    f"the shards 0/N .. N-1/N of one run, each once (or their one shared folder)."
                )
            seen[case], rows[case] = Path(part), row
    return qc_table(list(rows.values()))


def write_merged_qc(out: str | Path, table: pd.DataFrame) -> Path:
    """Write a merged check-first list to ``out`` (a ``.csv``), or to ``out/qc.csv`` when
    ``out`` is a folder (existing or not); returns the path."""
    out = Path(out)
    return write_qc(out if out.suffix == ".csv" else out / QC_CSV, table.to_dict("records"))

"""How the grade folders of ``tumorseg grade`` shards (``--shard I/N``) merge: ``results.csv``
rows merged by submission (the grader's own keyed merge, :mod:`.results`), each row's report and
feedback page copied beside it, and the summary rewritten.  A submission graded differently in
two parts is an error naming both.  ``tumorseg merge`` (:func:`tumorseg.cli.merge_main`) dispatches
here."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tumorseg.atomic import write_bytes
from tumorseg.errors import DataError

from . import pages, results


def merge_grades(parts: Sequence[str | Path], out: str | Path) -> dict[str, dict[str, str]]:
    """Merge grade folders into ``out``: their ``results.csv`` rows (merged by submission into
    ``out/results.csv``, which keeps its other rows), each row's ``<name>.json`` report and
    ``<name>.html`` feedback page, then the summary of ``out`` (:func:`.pages.write_summary`).

    Returns the merged rows by submission.  Raises DataError for an unreadable results.csv, a
    missing report, or a submission graded differently in two parts.
    """
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
        for suffix in results.REPORT_SUFFIXES:
            source, target = report.with_suffix(suffix), out / report.with_suffix(suffix).name
            if source.is_file() and target.resolve() != source.resolve():
                write_bytes(target, source.read_bytes())
    results.merge(out, rows)
    pages.write_summary(out)
    return rows

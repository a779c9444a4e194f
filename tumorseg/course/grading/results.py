"""The grades folder: ``results.csv`` (one row per submission) beside one JSON report each.

``results.csv`` is a merge keyed by the ``submission`` column: grading more notebooks into
the same folder adds their rows, grading a notebook again replaces its row, and every other
row is kept.  Each merge happens under a lock (two ``tumorseg grade`` runs may share a folder)
and the file is replaced atomically, right after each submission's report is written, so an
interrupted batch keeps every grade finished so far.  :func:`start_fresh` is the explicit way
to start over.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
from pathlib import Path

from tumorseg.atomic import folder_lock, write_text
from tumorseg.course.exercises import REGISTRY

CSV_NAME = "results.csv"
#: the files written per submission beside results.csv: the JSON report and the feedback page
REPORT_SUFFIXES = (".json", ".html")
_LOCK_NAME = ".results.lock"


def header() -> list[str]:
    """The columns: submission, one per exercise (0/1), total, flags (the number of graded cells
    that use the package's own implementation of their exercise), sandbox."""
    return ["submission", *REGISTRY, "total", "flags", "sandbox"]


class ResultsFileError(ValueError):
    """An existing results.csv that this grader did not write (or cannot read)."""


def read_rows(out: Path) -> dict[str, dict[str, str]]:
    """The rows of ``out/results.csv`` by submission; empty when the file does not exist."""
    path = out / CSV_NAME
    if not path.exists():
        return {}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or "submission" not in reader.fieldnames:
                raise ResultsFileError(
                    f"{path} has no 'submission' column, so it was not written by `tumorseg "
                    "grade`; choose another --out folder or pass --fresh to replace it."
                )
            columns = header()
            rows = {row["submission"]: {k: row.get(k) or "" for k in columns} for row in reader}
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ResultsFileError(
            f"{path} cannot be read ({exc}); fix or move it, or pass --fresh to start over."
        ) from None
    return rows


def locked(out: Path) -> contextlib.AbstractContextManager[None]:
    """Hold an exclusive lock on the grades folder (``tumorseg.atomic.folder_lock``)."""
    return folder_lock(out, _LOCK_NAME)


def _render(rows: dict[str, dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header(), lineterminator="\n")
    writer.writeheader()
    for key in sorted(rows):
        writer.writerow({**rows[key], "submission": key})
    return buffer.getvalue()


def merge(out: Path, rows: dict[str, dict[str, str]]) -> None:
    """Add or replace ``rows`` (keyed by submission) in ``out/results.csv``, keeping the others."""
    with locked(out):
        merged = read_rows(out)
        merged.update(rows)
        write_text(out / CSV_NAME, _render(merged))


def start_fresh(out: Path) -> list[Path]:
    """Start ``out`` over: an empty results.csv, and the reports (JSON and feedback page) of its
    old rows removed.
    Returns the removed reports."""
    removed: list[Path] = []
    with locked(out):
        try:
            old = read_rows(out)
        except ResultsFileError:
            old = {}
        for key in old:
            for suffix in REPORT_SUFFIXES:
                report = out / f"{Path(key).stem}{suffix}"
                if report.is_file() and Path(key).stem:
                    os.unlink(report)
                    removed.append(report)
        write_text(out / CSV_NAME, _render({}))
    return removed

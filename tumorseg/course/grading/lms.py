"""Grades for the LMS: ``tumorseg grade --export {canvas,moodle,csv} FILE --roster ROSTER``.

The grades come from ``results.csv`` of the grading folder (every row, so a merged or a
regraded folder exports whole); each exercise's points from the exercise registry
(``Exercise.points``, default 1) or ``--points C1=2 ...``.  Students are matched by the
notebook's file name through the instructor's roster:

- a CSV with a header row and the columns ``file`` (the notebook's name without ``.ipynb``),
  ``name``, ``id``, ``sis_id`` and ``section``; Canvas's own gradebook column names
  (``Student``, ``ID``, ``SIS User ID``, ``Section``) are accepted for the last four, and
  Canvas's "Points Possible" row is skipped;

and each format writes the columns its LMS imports (:class:`Format`):

- ``canvas``: Canvas's gradebook CSV: ``Student``, ``ID``, ``SIS User ID``, ``Section`` and the
  assignment's column, after a ``Points Possible`` row; one row per graded roster entry;
- ``moodle``: Moodle's grade import CSV: the identifier column ``ID number`` (the roster's
  ``sis_id``, else its ``id``; map it to the user field "ID number"), ``Full name`` and the
  grade item's column;
- ``csv``: every roster entry and every submission, with the points per exercise, the total,
  the maximum and a ``status`` (graded, not graded, no submission, not in roster).

A submission with no roster entry, or a roster entry with no graded submission, is never
dropped: :class:`Export` lists them, ``tumorseg grade`` prints them and the summary page shows
them (:func:`.pages.write_summary`).
"""

from __future__ import annotations

import csv
import enum
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tumorseg.course.exercises import REGISTRY
from tumorseg.errors import DataError

from . import results
from .pages import points

#: the assignment's column name when none is given
DEFAULT_ASSIGNMENT = "Brain Tumor Segmentation"
#: the roster's columns, each with the Canvas gradebook name accepted for it
ROSTER_COLUMNS = {"name": "Student", "id": "ID", "sis_id": "SIS User ID", "section": "Section"}
CANVAS_HEADER = ("Student", "ID", "SIS User ID", "Section")
MOODLE_HEADER = ("ID number", "Full name")


class Format(str, enum.Enum):
    """The layouts ``--export`` writes."""

    CANVAS = "canvas"
    MOODLE = "moodle"
    CSV = "csv"


class Standing(str, enum.Enum):
    """Where a student stands in the export (the ``status`` of the csv format)."""

    GRADED = "graded"
    NOT_GRADED = "not graded"  # a grader error left an exercise without a score
    NO_SUBMISSION = "no submission"
    NOT_IN_ROSTER = "not in roster"


@dataclass(frozen=True)
class Student:
    """One roster entry; ``file`` is the notebook's name without ``.ipynb``."""

    file: str
    name: str = ""
    id: str = ""
    sis_id: str = ""
    section: str = ""


@dataclass
class Export:
    """What an export matched: the graded rows by roster entry, and what it could not match."""

    grades: dict[str, float | None] = field(
        default_factory=dict
    )  # file -> points (None: not graded)
    no_roster_entry: list[str] = field(default_factory=list)  # submissions (results.csv keys)
    no_submission: list[str] = field(default_factory=list)  # roster files
    maximum: float = 0.0

    def unmatched(self) -> dict[str, list[str]]:
        """The lists for people: heading -> names (see :func:`.pages.write_summary`)."""
        return {
            "Submissions with no roster entry": self.no_roster_entry,
            "Roster entries with no graded submission": self.no_submission,
        }


def read_roster(path: Path) -> dict[str, Student]:
    """The roster CSV at ``path``, by file name; DataError naming the file and the fix."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fields = [f.strip() for f in reader.fieldnames or []]
            rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: the roster cannot be read ({exc}).") from None
    if "file" not in fields:
        raise DataError(
            f"{path}: the roster has no 'file' column (the notebook's name without .ipynb); "
            f"its columns are {fields}. Add a header row: file,name,id,sis_id,section."
        )
    roster: dict[str, Student] = {}
    for row in rows:
        if row.get("Student", "").startswith("Points Possible") or not row.get("file"):
            continue  # Canvas's second row, or a row without a notebook
        values = {k: row.get(k) or row.get(canvas, "") for k, canvas in ROSTER_COLUMNS.items()}
        key = row["file"].removesuffix(".ipynb")
        if key in roster:
            raise DataError(f"{path}: the file {key!r} is listed twice; keep one row per student.")
        roster[key] = Student(key, **values)
    return roster


def parse_points(items: list[str] | None) -> dict[str, float]:
    """``["C1=2", "C3=0.5"]`` -> {"C1": 2.0, "C3": 0.5}; DataError for another form."""
    found: dict[str, float] = {}
    for item in items or []:
        ex, _, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if ex not in REGISTRY or number < 0:
            raise DataError(
                f"--points {item}: write EXERCISE=POINTS with an exercise of "
                f"{', '.join(REGISTRY)} and a number >= 0, e.g. --points C1=2 C4=0.5."
            )
        found[ex] = number
    return found


def _points_of(row: Mapping[str, str], override: Mapping[str, float]) -> float | None:
    if any(row.get(ex, "") == "" for ex in REGISTRY):
        return None
    return sum(int(row[ex]) * points(ex, override) for ex in REGISTRY)


def match(out: Path, roster: Mapping[str, Student], override: Mapping[str, float]) -> Export:
    """Match the rows of ``out/results.csv`` with ``roster``."""
    rows = results.read_rows(out)
    export = Export(maximum=sum(points(ex, override) for ex in REGISTRY))
    by_file = {Path(key).stem: key for key in rows}
    for key in sorted(rows):
        if Path(key).stem not in roster:
            export.no_roster_entry.append(key)
    for file in roster:
        if file in by_file:
            export.grades[file] = _points_of(rows[by_file[file]], override)
        if export.grades.get(file) is None:
            export.no_submission.append(file)
    return export


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def render(
    fmt: Format,
    out: Path,
    roster: Mapping[str, Student],
    override: Mapping[str, float],
    assignment: str = DEFAULT_ASSIGNMENT,
) -> tuple[str, Export]:
    """The export file's text in ``fmt``, and what was matched."""
    export = match(out, roster, override)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    graded = [s for s in roster.values() if export.grades.get(s.file) is not None]
    if fmt is Format.CANVAS:
        writer.writerow([*CANVAS_HEADER, assignment])
        writer.writerow(["Points Possible", "", "", "", _number(export.maximum)])
        for s in graded:
            writer.writerow([s.name, s.id, s.sis_id, s.section, _number(export.grades[s.file])])
    elif fmt is Format.MOODLE:
        writer.writerow([*MOODLE_HEADER, assignment])
        for s in graded:
            writer.writerow([s.sis_id or s.id, s.name, _number(export.grades[s.file])])
    else:
        _render_csv(writer, out, roster, override, export)
    return buf.getvalue(), export


def _render_csv(
    writer: Any,
    out: Path,
    roster: Mapping[str, Student],
    override: Mapping[str, float],
    export: Export,
) -> None:
    rows = {Path(k).stem: r for k, r in results.read_rows(out).items()}
    writer.writerow(["file", *ROSTER_COLUMNS, *REGISTRY, "total", "max", "status"])
    for file in sorted({*roster, *rows}):
        s, row = roster.get(file, Student(file)), rows.get(file, {})
        earned = [
            _number(int(row[ex]) * points(ex, override)) if row.get(ex) else "" for ex in REGISTRY
        ]
        if file not in roster:
            standing = Standing.NOT_IN_ROSTER
        elif not row:
            standing = Standing.NO_SUBMISSION
        else:
            standing = Standing.GRADED if export.grades[file] is not None else Standing.NOT_GRADED
        total = _points_of(row, override) if row else None
        writer.writerow(
            [file, s.name, s.id, s.sis_id, s.section, *earned, _number(total),
             _number(export.maximum), standing.value]
        )  # fmt: skip

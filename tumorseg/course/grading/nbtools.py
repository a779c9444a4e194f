"""Reading submissions and building the reduced notebook a grading run executes.

Conventions of the course notebook (shared with ``tumorseg release``):

- one graded cell per exercise of :data:`tumorseg.course.exercises.REGISTRY`, with id
  ``unq-cn`` and the header line ``# UNQ_Cn (UNIQUE CELL IDENTIFIER, DO NOT EDIT)``;
- cells an exercise needs to run on its own (imports) are tagged ``setup``;
- the graded checks are cells tagged ``grader`` with ids ``grade-cn``; the
  release drops them, :func:`ensure_grader_cells` writes them.
"""

from __future__ import annotations

import copy
import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from tumorseg.course.exercises import REGISTRY, grade_id, header, public_test_id, unq_id

from . import checks
from .hidden import reference
from .records import Result, Status

__all__ = [
    "Submission",
    "build_grading_notebook",
    "ensure_grader_cells",
    "grade_id",
    "grader_cell_source",
    "header",
    "read_instructor",
    "read_submission",
    "stdout_text",
    "unq_id",
]

SETUP_TAG = "setup"
GRADER_TAG = "grader"
#: metadata key of every cell in a grading notebook: {"role": ..., "exercise": ...}
ROLE_KEY = "tumorseg_grading"
#: how the instructor notebook's check cells import the checks, and what a grading copy uses
PACKAGE_IMPORT = "from tumorseg.course.grading import checks as _grader"
FOLDER_IMPORT = "import _grading_checks as _grader"
DEFAULT_MAX_BYTES = 20 * 1024 * 1024


# --------------------------------------------------------------------------- submissions
@dataclass
class Submission:
    """What a submission file yields (stage 1's record): the source of each graded cell that
    was found, and why the others are missing (``problems``) or why nothing could be read
    (``fatal``); ``settled`` holds the results that reading alone decides (each missing
    exercise, or every exercise as an error when nothing could be read)."""

    path: Path
    sources: dict[str, str] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    fatal: str | None = None
    settled: dict[str, Result] = field(default_factory=dict)


def _text(source: object) -> str | None:
    if isinstance(source, str):
        return source
    if isinstance(source, list) and all(isinstance(s, str) for s in source):
        return "".join(source)
    return None


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip():
            return line.strip()
    return ""


def read_submission(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> Submission:
    """Stage 1: find the graded cells of a submitted notebook, never raising on bad input.

    A cell is found by its id first, then by its header line.  A cell that is missing,
    duplicated, or whose header line was edited leaves its exercise "missing"; a file that
    cannot be read leaves every exercise an "error" (:attr:`Submission.settled`)."""
    sub = _read(path, max_bytes)
    if sub.fatal:
        sub.settled = {ex: Result(Status.ERROR, sub.fatal) for ex in REGISTRY}
    else:
        sub.settled = {ex: Result(Status.MISSING, text) for ex, text in sub.problems.items()}
    return sub


def _read(path: Path, max_bytes: int) -> Submission:
    """The sources, problems or fatal error of :func:`read_submission`."""
    sub = Submission(Path(path))
    try:
        size = os.path.getsize(path)
        if size > max_bytes:
            sub.fatal = (
                f"The file is {size / 1e6:.1f} MB; the grader reads notebooks up to "
                f"{max_bytes / 1e6:.0f} MB. Clear the outputs (Edit > Clear outputs) and resubmit."
            )
            return sub
        with open(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)
        data = json.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        sub.fatal = f"The file could not be read ({type(exc).__name__})."
        return sub
    except json.JSONDecodeError as exc:
        sub.fatal = (
            f"The file is not a valid notebook: invalid JSON at line {exc.lineno}, "
            f"column {exc.colno}. Submit the .ipynb file saved by Jupyter."
        )
        return sub
    except RecursionError:
        sub.fatal = "The file is not a valid notebook (nested too deeply)."
        return sub
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        version = data.get("nbformat") if isinstance(data, dict) else None
        if isinstance(version, int) and version < 4:
            sub.fatal = (
                f"The notebook uses the old format version {version}; the grader reads "
                "format 4. Open it in a current Jupyter and save it again."
            )
        else:
            sub.fatal = "The file is JSON but not a Jupyter notebook (no list of cells)."
        return sub
    if data.get("nbformat") != 4:
        sub.fatal = (
            f"The notebook uses format version {data.get('nbformat')!r}; the grader reads "
            "format 4. Open it in a current Jupyter and save it again."
        )
        return sub
    try:  # nbformat's own reader, without conversion or validation side effects
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nb = nbformat.reads(raw.decode("utf-8"), as_version=nbformat.NO_CONVERT)
    except Exception as exc:  # noqa: BLE001 - whatever nbformat rejects
        sub.fatal = f"The file is not a valid notebook ({type(exc).__name__})."
        return sub
    code = []
    for cell in nb.get("cells", []):
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            text = _text(cell.get("source", ""))
            if text is not None:
                code.append((cell.get("id"), text))
    for ex in REGISTRY:
        exact = header(ex)
        found = [text for cid, text in code if cid == unq_id(ex) or _first_line(text) == exact]
        loose = re.compile(rf"#.*\bUNQ_{ex}\b")
        if len(found) > 1:
            sub.problems[ex] = (
                f"UNQ_{ex} appears in {len(found)} cells; keep exactly one cell "
                f"that starts with '{exact}'."
            )
        elif len(found) == 1 and _first_line(found[0]) != exact:
            sub.problems[ex] = (
                f"The first line of the UNQ_{ex} cell was edited; it must read '{exact}'."
            )
        elif not found:
            if any(loose.match(_first_line(text)) for _, text in code):
                sub.problems[ex] = (
                    f"The first line of the UNQ_{ex} cell was edited; it must read '{exact}'."
                )
            else:
                sub.problems[ex] = f"No cell starts with '{exact}'; the exercise was not found."
        else:
            sub.sources[ex] = found[0]
    return sub


# --------------------------------------------------------------------------- grader cells
def grader_cell_source(exercise: str) -> str:
    """The source of the graded check cell of one exercise (with the current digest)."""
    fn = REGISTRY[exercise].function
    return (
        "# NBVAL_CHECK_OUTPUT\n"
        f"# Graded check of UNQ_{exercise} on hidden cases. Instructors only: `tumorseg release` drops\n"
        "# this cell, `tumorseg grade` runs it (scripts/add_grader_cells.py writes it).\n"
        f"{PACKAGE_IMPORT}\n"
        f'_grader.check("{exercise}", globals().get("{fn}"), expect="{reference.expected_digest(exercise)}")'
    )


def _grader_cell(exercise: str, execution_count: int) -> NotebookNode:
    cell = nbformat.v4.new_code_cell(grader_cell_source(exercise))
    cell.id = grade_id(exercise)
    cell.metadata["tags"] = [GRADER_TAG]
    cell.execution_count = execution_count
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text=checks.verdict(exercise, True) + "\n")
    ]
    return cell


def stdout_text(cell: NotebookNode) -> str | None:
    """All stdout of a code cell's stored outputs, or None when it stored anything but streams."""
    text = ""
    for out in cell.get("outputs", []):
        if out.get("output_type") != "stream":
            return None
        if out.get("name") == "stdout":
            text += "".join(out.get("text", ""))
    return text


def ensure_grader_cells(nb: NotebookNode) -> bool:
    """Insert or refresh the graded check cells (idempotent); True when ``nb`` changed.

    A new check cell goes right after the exercise's public-test cell (id ``test-cn``) when
    there is one, else right after the graded cell itself."""
    changed = False
    for ex in REGISTRY:
        ids = [c.get("id") for c in nb.cells]
        if unq_id(ex) not in ids:
            raise ValueError(f"the instructor notebook has no cell with id {unq_id(ex)!r}")
        if grade_id(ex) in ids:
            cell = nb.cells[ids.index(grade_id(ex))]
            count = cell.get("execution_count") or 1
            want = _grader_cell(ex, count)
            want.metadata = {
                **cell.metadata,
                "tags": sorted({*cell.metadata.get("tags", []), GRADER_TAG}),
            }
            # a real execution may add stderr (TensorFlow logs); only stdout is compared
            if (
                cell.source != want.source
                or stdout_text(cell) != stdout_text(want)
                or cell.metadata != want.metadata
                or not cell.get("execution_count")
            ):
                cell.source, cell.outputs, cell.metadata = want.source, want.outputs, want.metadata
                cell.execution_count = count
                changed = True
            continue
        anchor = (
            ids.index(public_test_id(ex)) if public_test_id(ex) in ids else ids.index(unq_id(ex))
        )
        before = nb.cells[anchor].get("execution_count")
        nb.cells.insert(anchor + 1, _grader_cell(ex, (before or 0) + 1))
        changed = True
    return changed


# --------------------------------------------------------------------------- grading notebook
PRELUDE = """\
# Grader prelude: load the checks before any student code runs, so they hold pristine references.
import importlib.util as _grader_util
import os as _grader_os
import sys as _grader_sys
_grader_spec = _grader_util.spec_from_file_location(
    "_grading_checks", _grader_os.path.join(_grader_os.getcwd(), "_grading_checks.py"))
_grader = _grader_util.module_from_spec(_grader_spec)
_grader_sys.modules["_grading_checks"] = _grader
_grader_spec.loader.exec_module(_grader)
"""


def _cell(source: str, role: str, exercise: str = "") -> NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata[ROLE_KEY] = {"role": role, "exercise": exercise}
    return cell


def build_grading_notebook(
    instructor: NotebookNode, sources: dict[str, str], exercises: list[str]
) -> NotebookNode:
    """A notebook of: prelude, the ``setup`` cells, and for each exercise a state marker, the
    student's cell (source only) and the graded check -- in the instructor notebook's order,
    up to the last needed check.  Everything else (data, figures, training) is dropped.

    ``instructor`` is the notebook :func:`read_instructor` returns (grader cells up to date);
    a notebook that lacks a needed check cell gets them in a copy first."""
    nb = instructor
    ids = [c.get("id") for c in nb.cells]
    if any(grade_id(ex) not in ids for ex in exercises):
        nb = copy.deepcopy(instructor)
        ensure_grader_cells(nb)
        ids = [c.get("id") for c in nb.cells]
    last = max(ids.index(grade_id(ex)) for ex in exercises)
    cells = [_cell(PRELUDE, "prelude")]
    for cell in nb.cells[: last + 1]:
        if cell.cell_type != "code":
            continue
        cid = cell.get("id")
        for ex in exercises:
            if cid == unq_id(ex):
                cells.append(_cell(f'_grader.mark_before("{ex}")', "pre", ex))
                cells.append(_cell(sources[ex], "student", ex))
            elif cid == grade_id(ex):
                check = _cell(cell.source.replace(PACKAGE_IMPORT, FOLDER_IMPORT), "check", ex)
                check.outputs = copy.deepcopy(cell.outputs)
                check.execution_count = cell.get("execution_count") or 1
                cells.append(check)
        if SETUP_TAG in cell.metadata.get("tags", []) and cid not in {
            unq_id(ex) for ex in REGISTRY
        } | {grade_id(ex) for ex in REGISTRY}:
            cells.append(_cell(cell.source, "setup"))
    out = nbformat.v4.new_notebook(cells=cells)
    out.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
    }
    return out


def read_instructor(path: Path) -> NotebookNode:
    """The instructor notebook, with up-to-date grader cells (in memory only)."""
    nb = nbformat.read(str(path), as_version=4)
    ensure_grader_cells(nb)
    return nb

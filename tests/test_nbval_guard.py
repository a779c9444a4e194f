"""Guard for nbval's blind spot: a checked cell whose stored output was cleared.

nbval compares a ``# NBVAL_CHECK_OUTPUT`` cell only when the stored cell has an execution
count; a cell saved without outputs (``execution_count: null``) passes whatever it prints.
So clearing the notebook's outputs would silently switch every check off.  These tests fail
the build instead, and prove on doctored copies that the guard catches it and nbval does not.
"""

from __future__ import annotations

import copy
import subprocess
import sys

import nbformat
import pytest

from tumorseg.course.release import INSTRUCTOR

MARKER = "NBVAL_CHECK_OUTPUT"
TAG = "nbval-check-output"


def is_checked(cell) -> bool:
    """True for a code cell nbval compares under --nbval-lax (comment marker or tag)."""
    if cell.cell_type != "code":
        return False
    if TAG in cell.get("metadata", {}).get("tags", []):
        return True
    return any(
        line.strip().startswith("#") and line.strip().lstrip("#").strip() == MARKER
        for line in cell.source.splitlines()
    )


def unverified_checked_cells(nb) -> list[str]:
    """Checked cells that nbval would not really compare: no stored output or no count."""
    problems = []
    for index, cell in enumerate(nb.cells):
        if not is_checked(cell):
            continue
        name = f"cell {index} (id {cell.get('id')})"
        if cell.execution_count is None:
            problems.append(f"{name}: execution_count is null")
        if not cell.outputs:
            problems.append(f"{name}: no stored output")
        if any(o.output_type == "error" for o in cell.outputs):
            problems.append(f"{name}: stored output is an error")
    return problems


@pytest.fixture(scope="module")
def instructor():
    return nbformat.read(INSTRUCTOR, as_version=4)


def test_every_checked_cell_has_a_stored_output(instructor):
    problems = unverified_checked_cells(instructor)
    assert not problems, (
        "checked cells without stored outputs pass nbval whatever they print; execute the "
        "notebook and save its outputs (python scripts/run_notebook.py --save-checked):\n"
        + "\n".join(problems)
    )


def test_exercise_outputs_are_checked(instructor):
    cells = {c.get("id"): c for c in instructor.cells}
    for n in range(1, 7):
        test_cell = cells[f"test-c{n}"]
        assert is_checked(test_cell), f"test-c{n} must be marked # {MARKER}"
        text = "".join(o.get("text", "") for o in test_cell.outputs if o.output_type == "stream")
        assert text == "All tests passed\n", f"test-c{n} stored output: {text!r}"
    assert sum(is_checked(c) for c in instructor.cells) >= 12


def test_guard_catches_a_doctored_copy(instructor, tmp_path):
    doctored = copy.deepcopy(instructor)
    victim = next(i for i, c in enumerate(doctored.cells) if is_checked(c))
    doctored.cells[victim].outputs = []
    doctored.cells[victim].execution_count = None
    path = tmp_path / "doctored.ipynb"
    nbformat.write(doctored, str(path))
    before = set(unverified_checked_cells(instructor))
    after = set(unverified_checked_cells(nbformat.read(path, as_version=4)))
    name = f"cell {victim} (id {doctored.cells[victim].id})"
    assert after - before == {f"{name}: execution_count is null", f"{name}: no stored output"}


def _tiny_notebook(path, cleared):
    cell = nbformat.v4.new_code_cell(f"# {MARKER}\nprint(1 + 1)")
    if not cleared:
        cell.execution_count = 1
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="3\n")]  # wrong
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, str(path))


@pytest.mark.slow
def test_nbval_alone_misses_what_the_guard_catches(tmp_path):
    """nbval fails a wrong stored output, but passes the same checked cell once cleared."""

    def nbval(path) -> int:
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "--nbval-lax",
            "--nbval-current-env",
            "-p",
            "no:cacheprovider",
            str(path),
        ]
        return subprocess.run(cmd, cwd=tmp_path, capture_output=True, timeout=300).returncode

    counted, cleared = tmp_path / "counted.ipynb", tmp_path / "cleared.ipynb"
    _tiny_notebook(counted, cleared=False)
    _tiny_notebook(cleared, cleared=True)
    assert nbval(counted) == 1  # nbval compares and sees 2 != 3
    assert nbval(cleared) == 0  # the trap: nothing is compared
    assert unverified_checked_cells(nbformat.read(cleared, as_version=4))

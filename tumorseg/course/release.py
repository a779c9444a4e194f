"""Generate the student notebook from the instructor notebook (``tumorseg release``).

The instructor notebook (package data, ``tumorseg.resources.instructor_notebook()``) is the
single source.  The release:

- replaces the code between ``### START CODE HERE`` and ``### END CODE HERE`` by ``None``
  placeholders that keep the code's shape: ``x = expr`` becomes ``x = None``, ``x += 1``
  becomes ``x += None``, ``for i in range(n):`` becomes ``for i in None:``, ``while cond:`` /
  ``if cond:`` become ``while None:`` / ``if None:``, ``return expr`` becomes ``return None``
  and a bare expression becomes ``None``.  Comments, blank lines and indentation stay, so every
  released cell still parses;
- drops every cell tagged ``grader`` (the autograder's checks stay with the instructor);
- removes the ``# NBVAL_CHECK_OUTPUT`` marker lines (nbval's, meaningless to students);
- clears outputs, execution counts and per-cell execution metadata;
- checks that each exercise's public-test cell (``test-cN``) comes right after the exercise
  cell (``unq-cN``), so Run All on an unfinished notebook stops at the test's message before
  any later cell uses the function;
- writes complete notebook metadata (``kernelspec`` and ``language_info`` as the kernel reports
  them, the version from the instructor notebook's last execution), so JupyterLab opens the
  file without marking it changed.

The output is deterministic, so a test can compare the committed student notebook with a fresh
release.  The file is written atomically.
"""

from __future__ import annotations

import argparse
import ast
import copy
import sys
from pathlib import Path

import nbformat

from tumorseg import resources
from tumorseg.atomic import write_text
from tumorseg.errors import fail

INSTRUCTOR = resources.instructor_notebook()
#: the committed student notebook in a source checkout, else a file in the working directory
STUDENT = resources.student_notebook()

START = "### START CODE HERE"
END = "### END CODE HERE"
DROP_TAG = "grader"
CHECK_MARKER = "# NBVAL_CHECK_OUTPUT"
#: The kernel JupyterLab starts for the notebook, as the ipykernel kernelspec names it.
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
#: ipykernel's language_info without the Python version (taken from the instructor notebook).
LANGUAGE_INFO = {
    "codemirror_mode": {"name": "ipython", "version": 3},
    "file_extension": ".py",
    "mimetype": "text/x-python",
    "name": "python",
    "nbconvert_exporter": "python",
    "pygments_lexer": "ipython3",
}
#: per-cell metadata keys that only describe one execution; everything else is kept
_VOLATILE_CELL_METADATA = ("execution", "collapsed", "scrolled", "ExecuteTime")


_AUG_OPS = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.MatMult: "@",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.BitAnd: "&",
}


def _marker_regions(lines: list[str]) -> list[tuple[int, int]]:
    """1-based (start, end) line numbers of each START/END marker pair in a cell."""
    regions, start = [], None
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if text.startswith(START):
            if start is not None:
                raise ValueError(f"line {number}: {START} inside another solution block")
            start = number
        elif text.startswith(END):
            if start is None:
                raise ValueError(f"line {number}: {END} without a {START} before it")
            regions.append((start, number))
            start = None
    if start is not None:
        raise ValueError(f"line {start}: {START} without a matching {END}")
    return regions


def _segment(source: str, node: ast.AST) -> str:
    text = ast.get_source_segment(source, node)
    if text is None:  # pragma: no cover - only for nodes without positions
        raise ValueError(f"cannot locate {ast.dump(node)} in the cell source")
    return " ".join(text.split())  # a multi-line target becomes one line


def _placeholder(source: str, lines: list[str], node: ast.stmt) -> tuple[int, int, str]:
    """(first line, last line, replacement) for one statement inside a solution block."""
    indent = lines[node.lineno - 1][: node.col_offset]
    last = node.end_lineno or node.lineno
    if isinstance(node, ast.Assign):
        targets = " = ".join(_segment(source, t) for t in node.targets)
        text = f"{targets} = None"
    elif isinstance(node, ast.AugAssign):
        text = f"{_segment(source, node.target)} {_AUG_OPS[type(node.op)]}= None"
    elif isinstance(node, ast.AnnAssign):
        text = f"{_segment(source, node.target)}: {_segment(source, node.annotation)} = None"
    elif isinstance(node, ast.Return):
        text = "return None"
    elif isinstance(node, ast.Expr):
        text = "None"
    elif isinstance(node, (ast.Pass, ast.Break, ast.Continue)):
        text = lines[node.lineno - 1].strip()
    elif isinstance(node, ast.For):
        last = node.iter.end_lineno
        text = f"for {_segment(source, node.target)} in None:"
    elif isinstance(node, ast.While):
        last = node.test.end_lineno
        text = "while None:"
    elif isinstance(node, ast.If):
        last = node.test.end_lineno
        keyword = "elif" if lines[node.lineno - 1].lstrip().startswith("elif") else "if"
        text = f"{keyword} None:"
    else:
        raise ValueError(
            f"line {node.lineno}: a {type(node).__name__} statement inside a solution block has "
            "no placeholder form; move it outside the markers"
        )
    return node.lineno, last, indent + text


def placeholder_source(source: str) -> str:
    """Replace the solution code between the markers by ``None`` placeholders (see module doc).

    source: the text of one code cell.  Cells without markers come back unchanged.
    Raises ValueError for unbalanced markers or a statement without a placeholder form.
    """
    lines = source.split("\n")
    regions = _marker_regions(lines)
    if not regions:
        return source
    tree = ast.parse(source)
    edits: dict[int, tuple[int, str]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.stmt):
            continue
        if not any(lo < node.lineno < hi for lo, hi in regions):
            continue
        first, last, text = _placeholder(source, lines, node)
        edits[first] = (last, text)
    out, number = [], 1
    while number <= len(lines):
        if number in edits:
            last, text = edits[number]
            out.append(text)
            number = last + 1
        else:
            out.append(lines[number - 1])
            number += 1
    released = "\n".join(out)
    compile(released, "<released cell>", "exec")  # the release must still parse
    return released


def strip_check_markers(source: str) -> str:
    """``source`` without its ``# NBVAL_CHECK_OUTPUT`` comment lines."""
    return "\n".join(ln for ln in source.split("\n") if ln.strip() != CHECK_MARKER)


def check_test_order(cells: list) -> None:
    """Raise ValueError unless every exercise cell ``unq-cN`` is followed directly by its
    public-test cell ``test-cN`` (when the notebook has one)."""
    ids = [c.get("id") for c in cells]
    for index, cid in enumerate(ids):
        if not (cid and cid.startswith("unq-c")):
            continue
        test = "test-" + cid.removeprefix("unq-")
        if test in ids and (index + 1 >= len(ids) or ids[index + 1] != test):
            after = ids[index + 1] if index + 1 < len(ids) else "the end"
            raise ValueError(
                f"cell {test!r} must come right after {cid!r} (found {after!r} there): move it "
                "up in the instructor notebook, so Run All stops at the test's message"
            )


def notebook_metadata(metadata: dict) -> dict:
    """Complete ``kernelspec`` and ``language_info`` for the student notebook; the Python version
    comes from ``metadata`` (the instructor notebook's, written by its last execution)."""
    version = metadata.get("language_info", {}).get("version")
    language_info = {**LANGUAGE_INFO, **({"version": version} if version else {})}
    return {"kernelspec": dict(KERNELSPEC), "language_info": language_info}


def release_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student version of an instructor notebook (a new object; ``nb`` is not modified).
    Raises ValueError when a public-test cell does not follow its exercise (see module doc)."""
    student = copy.deepcopy(nb)
    cells = []
    for cell in student.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if DROP_TAG in tags:
            continue
        for key in _VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            cell.source = strip_check_markers(placeholder_source(cell.source))
        cells.append(cell)
    check_test_order(cells)
    student.cells = cells
    student.metadata = nbformat.from_dict(notebook_metadata(student.metadata))
    return student


def render(nb: nbformat.NotebookNode) -> str:
    """The notebook as the exact text written to disk (deterministic)."""
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def build_release(source: Path = INSTRUCTOR) -> str:
    """Read the instructor notebook at ``source`` and return the student notebook's text."""
    nb = nbformat.read(source, as_version=4)
    return render(release_notebook(nb))


def main(argv: list[str] | None = None) -> int:
    """``tumorseg release [--source NB] [--out PATH] [--check]``."""
    parser = argparse.ArgumentParser(
        prog="tumorseg release",
        description="Generate the student notebook (solutions replaced by None, outputs and "
        "grader cells removed) from the instructor notebook.",
    )
    parser.add_argument(
        "--source", type=Path, default=INSTRUCTOR, help="instructor notebook (default: %(default)s)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=STUDENT,
        help="where to write the student notebook (default: %(default)s)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if --out differs from a fresh release",
    )
    args = parser.parse_args(argv)
    try:
        text = build_release(args.source)
    except (OSError, ValueError, nbformat.ValidationError) as exc:
        fail("tumorseg release", f"{args.source}: {exc}")
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.is_file() else None
        if current != text:
            print(f"{args.out} is out of date; run `tumorseg release`", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    write_text(args.out, text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Insert or refresh the autograder's check cells in the instructor notebook (idempotent).

    .venv/bin/python scripts/add_grader_cells.py [NOTEBOOK] [--check]

Each exercise UNQ_Cn gets one code cell with id ``grade-cn``, tag ``grader`` and the stored
output ``UNQ_Cn graded check: passed``, placed after the exercise's public-test cell
(``test-cn``).  The cell calls :func:`tumorseg.course.grading.checks.check` with the digest of
the reference results, so rerun this script whenever the hidden cases change.  ``tumorseg
release`` drops these cells; ``tumorseg grade`` runs them.  ``--check`` only reports (exit 1)
when the cells are missing or stale.  The notebook is written atomically.  ``--quick`` is a
smoke run on a temporary copy of NOTEBOOK with its grader cells removed (the original stays
untouched): they must come back.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import nbformat

from tumorseg.course.grading import nbtools

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "tumorseg" / "course" / "notebooks" / "Brain_Tumor_Segmentation.ipynb"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--check", action="store_true", help="report stale cells, change nothing")
    parser.add_argument("--quick", action="store_true", help="smoke run on a stripped copy")
    args = parser.parse_args(argv)
    if args.quick:
        return _quick(args.notebook)
    nb = nbformat.read(str(args.notebook), as_version=4)
    changed = nbtools.ensure_grader_cells(nb)
    if args.check:
        print(f"{args.notebook}: grader cells {'STALE or missing' if changed else 'up to date'}")
        return 1 if changed else 0
    if changed:
        fd, tmp = tempfile.mkstemp(dir=args.notebook.parent, suffix=".ipynb.part")
        os.close(fd)
        try:
            nbformat.write(nb, tmp)
            os.replace(tmp, args.notebook)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    print(f"{args.notebook}: grader cells {'written' if changed else 'already up to date'}")
    return 0


def _quick(notebook: Path) -> int:
    """Strip the grader cells from a copy of ``notebook``, add them back, and compare."""
    original = nbformat.read(str(notebook), as_version=4)
    with tempfile.TemporaryDirectory(prefix="add_grader_cells-") as tmp:
        copy = Path(tmp) / notebook.name
        stripped = nbformat.read(str(notebook), as_version=4)
        stripped.cells = [c for c in stripped.cells if "grader" not in c.metadata.get("tags", [])]
        nbformat.write(stripped, str(copy))
        status = main([str(copy)])
        restored = nbformat.read(str(copy), as_version=4)
    same = [c.source for c in restored.cells] == [c.source for c in original.cells]
    print(f"quick: grader cells {'restored' if same else 'DIFFER from'} {notebook}")
    return status if same else 1


if __name__ == "__main__":
    sys.exit(main())

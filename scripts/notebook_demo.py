"""Run the course notebook's section-5 training demo on its own: time and peak memory.

    python scripts/notebook_demo.py [NOTEBOOK] [--onednn {on,off,default}] [--quick]

Executes, in a fresh kernel, only the cells the demo needs (:data:`DEMO_CELLS`: the imports,
the dataset, the student's metric and loss exercises, the patch store and the training cell
itself), with the same sampler of the kernel process tree's resident memory as
``scripts/run_notebook.py``.  ``--onednn off`` sets ``TF_ENABLE_ONEDNN_OPTS=0`` for the kernel:
TensorFlow's Eigen path, which is what CPUs without oneDNN (Apple Silicon) run.  The memory
ceiling test (``tests/test_notebook_memory.py``) runs :func:`run_demo` with oneDNN off.
``--quick``: a smoke run of the cells before the training cell only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

from tumorseg.hardware import onednn_env

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run_notebook  # noqa: E402

#: The notebook cells (by id, in notebook order) that section 5.1's training demo depends on.
DEMO_CELLS = ("imports", "imports-2", "data", "unq-c3", "unq-c4", "unq-c5", "patch-store")
#: The training demo cell itself.
TRAIN_CELL = "train-demo"
#: ``--onednn`` choices -> the ``TF_ENABLE_ONEDNN_OPTS`` value for the kernel (None: unset).
ONEDNN = {"on": "1", "off": "0", "default": None}


def demo_notebook(nb, train: bool = True) -> nbformat.NotebookNode:
    """A copy of ``nb`` holding only the code cells of :data:`DEMO_CELLS` and (when ``train``)
    the training cell, outputs cleared.  Raises KeyError naming a cell id the notebook lacks."""
    by_id = {cell.get("id"): cell for cell in nb.cells}
    missing = [cid for cid in (*DEMO_CELLS, TRAIN_CELL) if cid not in by_id]
    if missing:
        raise KeyError(f"the notebook has no cell with id {missing}")
    demo = nbformat.v4.new_notebook(metadata=nb.metadata)
    for cid in (*DEMO_CELLS, TRAIN_CELL)[: None if train else -1]:
        cell = nbformat.from_dict(dict(by_id[cid]))
        cell.outputs, cell.execution_count = [], None
        demo.cells.append(cell)
    return demo


def run_demo(
    notebook: Path = run_notebook.DEFAULT_NB,
    onednn: str | None = "0",
    timeout: int = 1800,
    train: bool = True,
) -> tuple[float, int, str, str | None]:
    """Execute the demo cells of ``notebook`` (without the training cell unless ``train``) in a
    fresh kernel with ``TF_ENABLE_ONEDNN_OPTS`` set to ``onednn`` (None: unset).  Returns
    (seconds, peak RSS bytes of the kernel process tree, the last cell's printed text, error
    message or None)."""
    nb = demo_notebook(nbformat.read(notebook, as_version=4), train)
    with onednn_env(onednn):
        _, seconds, peak, error = run_notebook.execute(nb, notebook.parent, timeout)
    text = "".join(o.get("text", "") for o in nb.cells[-1].get("outputs", []))
    return seconds, peak, text, error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", nargs="?", type=Path, default=run_notebook.DEFAULT_NB)
    parser.add_argument("--onednn", choices=tuple(ONEDNN), default="off")
    parser.add_argument("--quick", action="store_true", help="skip the training cell")
    args = parser.parse_args(argv)
    seconds, peak, text, error = run_demo(
        args.notebook.resolve(), ONEDNN[args.onednn], train=not args.quick
    )
    print(text, end="")
    print(
        f"oneDNN {args.onednn}: demo cells {seconds:.1f} s (kernel start included), "
        f"peak RSS of the kernel tree {peak / 1e9:.2f} GB"
    )
    if error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

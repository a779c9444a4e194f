"""A memory ceiling: the notebook's section-5 training demo fits 3 GB on TensorFlow's Eigen path.

CPUs without oneDNN (Apple Silicon) run Conv3D and its gradient on Eigen kernels, which need
about 3x the memory of oneDNN's; ``TF_ENABLE_ONEDNN_OPTS=0`` selects that path on any x86 CPU.
The test executes the demo's cells from the instructor notebook (``scripts/notebook_demo.py``:
the imports, the student's Dice and loss solutions, the patch store, the training cell) in a
fresh kernel with oneDNN off and samples the kernel process tree's resident memory.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import notebook_demo  # noqa: E402

#: The most resident memory the demo's kernel process tree may use, in bytes.
CEILING_BYTES = 3 * 10**9
EPOCH_LOSS = re.compile(r"soft dice loss (\d+\.\d+)")


@pytest.mark.slow
def test_section5_demo_fits_3gb_with_onednn_off(sample_data):
    seconds, peak, text, error = notebook_demo.run_demo(onednn="0")
    assert error is None, error
    losses = [float(v) for v in EPOCH_LOSS.findall(text)]
    assert len(losses) >= 5, text  # one line per epoch
    assert min(losses[-2:]) < 0.85 * losses[0], f"the loss does not fall clearly: {losses}"
    assert peak <= CEILING_BYTES, (
        f"section-5 demo with oneDNN off: peak RSS {peak / 1e9:.2f} GB > "
        f"{CEILING_BYTES / 1e9:.0f} GB ({seconds:.0f} s)"
    )


def test_the_demo_runs_the_notebooks_own_cells():
    import nbformat

    nb = nbformat.read(notebook_demo.run_notebook.DEFAULT_NB, as_version=4)
    demo = notebook_demo.demo_notebook(nb)
    ids = [cell.get("id") for cell in demo.cells]
    assert ids == [*notebook_demo.DEMO_CELLS, notebook_demo.TRAIN_CELL]
    train = next(c for c in nb.cells if c.get("id") == notebook_demo.TRAIN_CELL)
    assert demo.cells[-1].source == train.source  # the cell itself, not a copy of its code
    assert "soft_dice_loss" in train.source and "dice_coefficient" in train.source
    del nb.cells[[c.get("id") for c in nb.cells].index("unq-c5")]
    with pytest.raises(KeyError, match="unq-c5"):
        notebook_demo.demo_notebook(nb)


def test_release_memory_frees_a_deleted_model():
    import gc
    import weakref

    from tumorseg.course import facade

    model = facade.unet_model_3d("binary_crossentropy", input_shape=(4, 16, 16, 8), depth=2)
    alive = weakref.ref(model)
    gc.collect()
    gc.disable()  # only release_memory may collect the model's reference cycles
    try:
        del model
        held = alive() is not None
        facade.release_memory()
        freed = alive() is None
    finally:
        gc.enable()
    assert held, "the model had no reference cycle: this test checks nothing"
    assert freed

"""The course notebook as a student runs it: reruns, a skipped training demo, a patient without
enhancing tumor, and first cells that fail with a message (issue 32).

Fast checks read the instructor notebook's code:

- no cell binds a variable named like the package (``tumorseg``);
- every ``del`` deletes names its own cell made, so a rerun or a skipped cell cannot raise
  NameError;
- the exercise variables of sections 1-2 (``image``, ``label``, ``X``, ``y``) are bound by their
  own cells only (later cells may only release them with ``None``);
- the Colab bootstrap with the placeholder address, and the imports cell outside the project,
  stop with a message (SystemExit), not a traceback; the Colab setup reads pyproject.toml
  without ``tomllib`` (Python 3.10).

Slow checks execute the instructor notebook (``scripts/run_notebook.py``'s ``execute``):

- every code cell twice in a row (one kernel, cell 1, cell 1, cell 2, cell 2, ...);
- with section 5.1 (the training demo) skipped, on a dataset in the BraTS folder layout whose
  patients have no enhancing tumor (made from the synthetic sample scans with label 3 turned
  into label 2), the notebook's ``DATA_DIR`` pointed at it.
"""

from __future__ import annotations

import ast
import copy
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import numpy as np
import pytest

from tumorseg import resources
from tumorseg.course import colab

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import run_notebook  # noqa: E402

NB_PATH = resources.instructor_notebook()
#: the line of the data cell that picks the dataset folder
DATA_LINE = 'DATA_DIR = ROOT / "data" / "BraTS-Data"'
#: exercise variables -> the cells that may bind them to data
OWNERS = {"image": {"load-case"}, "label": {"load-case"}, "X": {"real-patch"}, "y": {"real-patch"}}


@pytest.fixture(scope="module")
def notebook() -> nbformat.NotebookNode:
    return nbformat.read(NB_PATH, as_version=4)


def _code_cells(nb: nbformat.NotebookNode) -> list[tuple[str, ast.Module]]:
    return [(c.get("id"), ast.parse(c.source)) for c in nb.cells if c.cell_type == "code"]


def _top_level_nodes(tree: ast.AST):
    """The nodes of a cell outside function and class bodies (the notebook's globals)."""
    todo = list(ast.iter_child_nodes(tree))
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            continue  # their loop variables are local
        yield node
        todo.extend(ast.iter_child_nodes(node))


def _stores(tree: ast.AST) -> list[ast.Name]:
    return [
        n
        for n in _top_level_nodes(tree)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    ]


def test_no_variable_is_named_like_the_package(notebook):
    bound = {(cid, n.id) for cid, tree in _code_cells(notebook) for n in _stores(tree)}
    assert [cid for cid, name in bound if name == "tumorseg"] == []


def test_every_del_deletes_names_its_own_cell_made(notebook):
    problems = []
    for cid, tree in _code_cells(notebook):
        made = {n.id: n.lineno for n in _stores(tree)}
        for node in _top_level_nodes(tree):
            if isinstance(node, ast.Delete):
                for target in node.targets:
                    name = getattr(target, "id", None)
                    if name is None or made.get(name, node.lineno) >= node.lineno:
                        problems.append(f"cell {cid}: del {ast.unparse(target)}")
    assert problems == []


def test_exercise_variables_are_not_reused_for_other_data(notebook):
    problems = []
    for cid, tree in _code_cells(notebook):
        released = {
            t.id
            for node in _top_level_nodes(tree)
            if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and node.value.value is None
            for t in node.targets
            if isinstance(t, ast.Name)
        }
        for name in _stores(tree):
            owners = OWNERS.get(name.id)
            if owners is not None and cid not in owners and name.id not in released:
                problems.append(f"cell {cid} binds {name.id} (line {name.lineno})")
    assert problems == []


def _cell_source(nb: nbformat.NotebookNode, cid: str) -> str:
    return next(c.source for c in nb.cells if c.get("id") == cid)


def test_colab_cell_with_the_placeholder_address_stops_with_a_message(
    notebook, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    """git fails on the placeholder address (here: a stand-in for git that fails)."""
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    calls = []
    monkeypatch.setattr(
        subprocess,
        "run",
        lambda cmd, **kw: calls.append(cmd) or subprocess.CompletedProcess(cmd, 128),
    )
    source = _cell_source(notebook, "colab")
    assert 'REPO_URL = "https://github.com/YOUR-ACCOUNT/' in source
    with pytest.raises(SystemExit) as info:
        exec(compile(source, "colab", "exec"), {})
    message = str(info.value.code)
    assert "placeholder" in message and "tumorseg release --repo-url URL" in message
    assert [c[:2] for c in calls] == [["git", "clone"]] and list(tmp_path.iterdir()) == []


def test_imports_cell_outside_the_project_stops_with_a_message(notebook, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(SystemExit) as info:
        exec(compile(_cell_source(notebook, "imports"), "imports", "exec"), {})
    assert "run the first cell" in str(info.value.code) and str(tmp_path) in str(info.value.code)


def test_colab_setup_reads_pyproject_without_tomllib(monkeypatch):
    import tomllib

    pyproject = resources.checkout_root() / "pyproject.toml"
    with pyproject.open("rb") as handle:
        expected = tomllib.load(handle)["project"]["dependencies"]
    assert colab._dependencies_without_tomllib(pyproject.read_text()) == expected
    with_tomllib = colab.declared_ranges(pyproject)
    monkeypatch.setitem(sys.modules, "tomllib", None)  # Python 3.10: the import fails
    assert colab.declared_ranges(pyproject) == with_tomllib
    assert set(with_tomllib) == set(colab.KEPT)
    with pytest.raises(ValueError, match="dependencies"):
        colab._dependencies_without_tomllib("[project]\nname = 'x'\n")


# --------------------------------------------------------------------------- executions


def _execute(nb: nbformat.NotebookNode) -> None:
    _, seconds, peak, error = run_notebook.execute(nb, NB_PATH.parent, timeout=900)
    assert error is None, error


@pytest.mark.slow
def test_every_code_cell_runs_twice_in_a_row(notebook, sample_data):
    nb = copy.deepcopy(notebook)
    cells = []
    for cell in nb.cells:
        cells.append(cell)
        if cell.cell_type == "code":
            again = copy.deepcopy(cell)
            again["id"] = f"{cell.get('id')}-again"
            cells.append(again)
    nb.cells = cells
    _execute(nb)


def _section_cells(nb: nbformat.NotebookNode, start: str, stop: str) -> list[int]:
    """Indexes of the code cells between the markdown headings ``start`` and ``stop``."""
    heads = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"]
    first = next(i for i in heads if nb.cells[i].source.lstrip().startswith(start))
    last = next(i for i in heads if i > first and nb.cells[i].source.lstrip().startswith(stop))
    return [i for i in range(first, last) if nb.cells[i].cell_type == "code"]


def _without_enhancing_tumor(source: Path, case: str, out: Path) -> None:
    """``case`` of the MSD-layout ``source`` as a BraTS case folder under ``out``, with its
    enhancing tumor (label 3) turned into non-enhancing tumor (2), in the BraTS 2018-2021
    label codes (1 non-enhancing, 2 edema, 4 enhancing)."""
    import nibabel as nib

    from tumorseg.labels import BRATS_LABEL_MAP, BRATS_SEG_SUFFIX, BRATS_SUFFIXES

    image = nib.load(source / "imagesTr" / f"{case}.nii.gz")
    label = nib.load(source / "labelsTr" / f"{case}.nii.gz")
    codes = np.asarray(label.dataobj).astype(np.uint8)
    codes[codes == 3] = 2
    raw = np.zeros_like(codes)
    for raw_code, course_code in BRATS_LABEL_MAP.items():
        raw[codes == course_code] = raw_code
    folder = out / case
    folder.mkdir(parents=True)
    data = np.asarray(image.dataobj, dtype=np.float32)
    for channel, suffix in enumerate(BRATS_SUFFIXES):
        nib.save(
            nib.Nifti1Image(data[..., channel], image.affine), folder / f"{case}_{suffix}.nii.gz"
        )
    nib.save(nib.Nifti1Image(raw, label.affine), folder / f"{case}_{BRATS_SEG_SUFFIX}.nii.gz")


@pytest.mark.slow
def test_a_run_with_5_1_skipped_on_patients_without_enhancing_tumor(
    notebook, sample_data, tmp_path
):
    """Section 5.1 skipped; sections 5.2-6.3 on BraTS-layout patients without label 3."""
    data = tmp_path / "no-et"
    for case in ("BRATS_001", "BRATS_005"):  # the notebook's section-1 case and a second one
        _without_enhancing_tumor(sample_data, case, data)
    nb = copy.deepcopy(notebook)
    data_cell = next(c for c in nb.cells if c.get("id") == "data")
    assert data_cell.source.count(DATA_LINE) == 1
    data_cell.source = data_cell.source.replace(DATA_LINE, f"DATA_DIR = Path({str(data)!r})")
    skipped = _section_cells(nb, "### 5.1", "### 5.2")
    assert [nb.cells[i].get("id") for i in skipped] == ["train-demo", "train-demo-check"]
    nb.cells = [c for i, c in enumerate(nb.cells) if i not in skipped]
    _execute(nb)

    def printed(cid: str, stream: str = "stdout") -> str:
        cell = next(c for c in nb.cells if c.get("id") == cid)
        return "".join(o.get("text", "") for o in cell.outputs if o.get("name") == stream)

    assert "patch: 0 enhancing" in printed("patch-predict")
    assert "Sensitivity: nan" in printed("patch-scores")
    assert "whole-scan prediction" in printed("scan-predict")
    for cid in ("patch-predict", "patch-scores", "scan-predict", "scan-sens-spec"):
        assert "Warning" not in printed(cid, "stderr"), (cid, printed(cid, "stderr"))

"""The student release: placeholders, dropped grader cells, determinism, helpful failures."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

from tumorseg.course import public_tests as pt
from tumorseg.course import release
from tumorseg.course.cli import release_main
from tumorseg.course.exercises import REGISTRY, public_test_id, unq_id
from tumorseg.course.release import INSTRUCTOR, STUDENT, placeholder_source

ROOT = Path(__file__).resolve().parents[1]

#: graded cell id -> (public test, graded function), from the exercise records
PUBLIC_TESTS = {unq_id(ex): (r.public_test, r.function) for ex, r in REGISTRY.items()}


@pytest.fixture(scope="module")
def released() -> nbformat.NotebookNode:
    return release.release_notebook(nbformat.read(INSTRUCTOR, as_version=4))


def test_committed_student_notebook_is_a_fresh_release():
    assert STUDENT.is_file(), (
        "run `tumorseg release` and commit notebooks/Brain_Tumor_Segmentation.ipynb"
    )
    fresh = release.build_release(INSTRUCTOR, release.configured_repo_url())
    assert STUDENT.read_text(encoding="utf-8") == fresh, (
        "notebooks/Brain_Tumor_Segmentation.ipynb is out of date: run `tumorseg release`"
    )


def test_committed_readme_badge_matches_the_configured_address():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    url = release.configured_repo_url()
    if url is None:
        assert f"colab.research.google.com/github/{release.PLACEHOLDER}/tumorseg/" in readme
    else:
        assert readme == release.stamp_badge(readme, url), "README.md: run `tumorseg release`"


def test_release_is_deterministic():
    assert release.build_release(INSTRUCTOR) == release.build_release(INSTRUCTOR)


def test_release_clears_outputs_drops_grader_cells_and_compiles(released):
    instructor = nbformat.read(INSTRUCTOR, as_version=4)
    kept = [c for c in instructor.cells if "grader" not in c.metadata.get("tags", [])]
    assert [c.id for c in released.cells] == [c.id for c in kept]
    for cell in released.cells:
        assert "grader" not in cell.metadata.get("tags", [])
        assert "execution" not in cell.metadata
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
            compile(cell.source, cell.id, "exec")


def test_release_removes_every_solution_line(released):
    instructor = {c.id: c for c in nbformat.read(INSTRUCTOR, as_version=4).cells}
    for n in range(1, 7):
        cell = next(c for c in released.cells if c.id == f"unq-c{n}")
        assert cell.source.splitlines()[0] == f"# UNQ_C{n} (UNIQUE CELL IDENTIFIER, DO NOT EDIT)"
        inside = re.search(r"### START CODE HERE.*?\n(.*?)### END CODE HERE", cell.source, re.S)
        code = [
            ln
            for ln in inside.group(1).splitlines()
            if ln.strip() and not ln.strip().startswith("#")
        ]
        assert code, f"unq-c{n}: nothing left between the markers"
        for line in code:
            assert "None" in line or line.strip() in {"else:", "pass"}, line
        # outside the markers the cell is unchanged
        original = instructor[f"unq-c{n}"].source
        assert (
            cell.source.split("### START CODE HERE")[0] == original.split("### START CODE HERE")[0]
        )


def test_placeholders_make_every_public_test_fail_helpfully(released, capsys):
    keras = pytest.importorskip("keras")
    ns = {"np": np, "keras": keras, "ops": keras.ops}
    for cell in released.cells:
        if cell.id in PUBLIC_TESTS:
            exec(compile(cell.source, cell.id, "exec"), ns)
    for test_name, fn_name in PUBLIC_TESTS.values():
        with pytest.raises(AssertionError) as info:
            getattr(pt, test_name)(ns[fn_name])
        message = str(info.value)
        assert "None" in message, f"{test_name}: {message}"
        assert "START CODE HERE" in message or "fill in every None" in message, message
    assert pt.PASSED not in capsys.readouterr().out


def test_released_notebook_has_no_nbval_markers(released):
    instructor = nbformat.read(INSTRUCTOR, as_version=4)
    assert any("NBVAL_CHECK_OUTPUT" in c.source for c in instructor.cells)
    for cell in released.cells:
        assert "NBVAL_CHECK_OUTPUT" not in cell.source, cell.id
    by_id = {c.id: c for c in instructor.cells}
    test_c1 = next(c for c in released.cells if c.id == "test-c1")
    assert test_c1.source == by_id["test-c1"].source.replace("# NBVAL_CHECK_OUTPUT\n", "")


def test_the_records_match_the_notebook(released):
    """Each record's cells are in the notebook: the graded cell defines its function with its
    signature, and the public-test cell calls its public test on it."""
    cells = {c.id: c.source for c in released.cells}
    for ex, record in REGISTRY.items():
        assert f"def {record.function}(" in cells[unq_id(ex)], ex
        assert (
            f"public_tests.{record.public_test}({record.function})" in cells[public_test_id(ex)]
        ), ex
        assert all(name in cells[unq_id(ex)] for name in record.signature), ex


def test_each_public_test_follows_its_exercise(released):
    ids = [c.id for c in released.cells]
    for unq, (_, fn_name) in PUBLIC_TESTS.items():
        at = ids.index(unq)
        assert ids[at + 1] == "test-" + unq.removeprefix("unq-")
        # no code cell before the test calls the function
        for cell in released.cells[:at]:
            if cell.cell_type == "code":
                assert not re.search(rf"(?<![\w.]){fn_name}\(", cell.source), (cell.id, fn_name)


def test_release_rejects_a_test_cell_moved_away(tmp_path):
    nb = nbformat.read(INSTRUCTOR, as_version=4)
    ids = [c.id for c in nb.cells]
    test = nb.cells.pop(ids.index("test-c1"))
    nb.cells.insert(ids.index("toy-sample"), test)  # after the first use of get_sub_volume
    with pytest.raises(ValueError, match="'test-c1' must come right after 'unq-c1'"):
        release.release_notebook(nb)
    source = tmp_path / "moved.ipynb"
    nbformat.write(nb, str(source))
    with pytest.raises(SystemExit) as info:
        release_main(["--source", str(source), "--out", str(tmp_path / "o.ipynb")])
    assert info.value.code == 2


def test_release_writes_complete_metadata(released):
    from ipykernel.ipkernel import IPythonKernel

    meta = released.metadata
    assert set(meta) == {"kernelspec", "language_info"}
    assert meta["kernelspec"] == {
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "name": "python3",
    }
    # what the kernel reports, which JupyterLab writes into the notebook when it differs
    kernel = dict(IPythonKernel.language_info)
    assert {k: v for k, v in meta["language_info"].items() if k != "version"} == {
        k: v for k, v in kernel.items() if k != "version"
    }
    assert (
        meta["language_info"]["version"]
        == nbformat.read(INSTRUCTOR, as_version=4).metadata["language_info"]["version"]
    )


@pytest.mark.slow
def test_run_all_on_the_untouched_student_notebook_stops_at_exercise_1_test():
    """Run the committed student notebook cell by cell, as Run All does, in a real kernel."""
    nbclient = pytest.importorskip("nbclient")
    if not (ROOT / "data" / "BraTS-Data" / "processed" / "config.json").is_file():
        pytest.skip("sample data not built; run `make patches`")
    nb = nbformat.read(STUDENT, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(STUDENT.parent)}},
    )
    with pytest.raises(nbclient.exceptions.CellExecutionError) as info:
        client.execute()
    failed = [c.id for c in nb.cells if any(o.output_type == "error" for o in c.get("outputs", []))]
    assert failed == ["test-c1"]
    assert info.value.ename == "AssertionError"
    assert "get_sub_volume returned None" in info.value.evalue
    ran = [c.id for c in nb.cells if c.cell_type == "code" and c.execution_count]
    assert ran[-2:] == ["unq-c1", "test-c1"] and "viewer" in ran


# ------------------------------------------------------------------ placeholder_source


def test_placeholder_forms():
    source = "\n".join(
        [
            "def f(a, b):",
            "    x = 0",
            "    ### START CODE HERE ###",
            "    y = (a +",
            "         b)",
            "    y += 2",
            "    p, q = 1, 2",
            "    for i in range(a):",
            "        if i > 1:",
            "            y = i",
            "        elif i:",
            "            print(i)",
            "        else:",
            "            pass",
            "    while y < 3:",
            "        y *= 2",
            "    ### END CODE HERE ###",
            "    return y",
        ]
    )
    out = placeholder_source(source).splitlines()
    assert out == [
        "def f(a, b):",
        "    x = 0",
        "    ### START CODE HERE ###",
        "    y = None",
        "    y += None",
        "    p, q = None",
        "    for i in None:",
        "        if None:",
        "            y = None",
        "        elif None:",
        "            None",
        "        else:",
        "            pass",
        "    while None:",
        "        y *= None",
        "    ### END CODE HERE ###",
        "    return y",
    ]


def test_block_closing_inside_a_loop_keeps_the_rest():
    source = "\n".join(
        [
            "def g(n):",
            "    ### START CODE HERE ###",
            "    while n:",
            "        n -= 1",
            "        ### END CODE HERE ###",
            "        return n",
        ]
    )
    assert placeholder_source(source).splitlines()[2:] == [
        "    while None:",
        "        n -= None",
        "        ### END CODE HERE ###",
        "        return n",
    ]


@pytest.mark.parametrize(
    "bad",
    [
        "### START CODE HERE\nx = 1\n",
        "x = 1\n### END CODE HERE\n",
        "### START CODE HERE\n### START CODE HERE\n### END CODE HERE\n",
    ],
)
def test_unbalanced_markers_are_rejected(bad):
    with pytest.raises(ValueError, match="CODE HERE"):
        placeholder_source(bad)


def test_unsupported_statement_is_rejected():
    with pytest.raises(ValueError, match="With"):
        placeholder_source(
            "### START CODE HERE\nwith open('f') as h:\n    pass\n### END CODE HERE\n"
        )


def test_cell_without_markers_is_unchanged():
    assert placeholder_source("x = 1  # no markers\n") == "x = 1  # no markers\n"


# ------------------------------------------------------------------------------ CLI


def test_cli_out_and_check(tmp_path, capsys):
    out = tmp_path / "sub" / "student.ipynb"
    url = "https://github.com/acme/tumorseg.git"
    files = ["--out", str(out), "--readme", str(_readme_copy(tmp_path)), "--repo-url", url]
    assert release_main(files) == 0
    assert out.read_text(encoding="utf-8") == release.build_release(INSTRUCTOR, url)
    assert not list(out.parent.glob("*.tmp"))
    assert release_main([*files, "--check"]) == 0
    out.write_text(
        out.read_text(encoding="utf-8").replace("Exercise 1", "Exercise 9"), encoding="utf-8"
    )
    assert release_main([*files, "--check"]) == 1
    assert "out of date" in capsys.readouterr().err


# ------------------------------------------------------------------ the repository address

NOTEBOOK_LINK = "/blob/main/notebooks/Brain_Tumor_Segmentation.ipynb"


def _readme_copy(tmp_path: Path) -> Path:
    readme = tmp_path / "README.md"
    readme.write_text((ROOT / "README.md").read_text(encoding="utf-8"), encoding="utf-8")
    return readme


def _bootstrap(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return next(c.source for c in nb.cells if c.id == release.BOOTSTRAP_ID)


def test_repo_url_goes_into_the_notebook_and_the_badge(tmp_path, capsys):
    url = "https://example.org/x/tumorseg.git"
    out, readme = tmp_path / "student.ipynb", _readme_copy(tmp_path)
    args = ["--out", str(out), "--readme", str(readme), "--repo-url", url]
    assert release_main(args) == 0
    assert f'REPO_URL = "{url}"' in _bootstrap(out)
    assert release.PLACEHOLDER not in out.read_text(encoding="utf-8")
    text = readme.read_text(encoding="utf-8")
    assert release.PLACEHOLDER not in text
    assert text.count("colab-badge.svg)](https://example.org/x/tumorseg)") == 2  # not GitHub
    assert "Colab opens notebooks from GitHub only" in capsys.readouterr().err
    # only the bootstrap cell differs from a release without the address
    plain = {c.id: c.source for c in release.release_notebook(nbformat.read(INSTRUCTOR, 4)).cells}
    stamped = {c.id: c.source for c in nbformat.read(out, as_version=4).cells}
    assert [k for k in plain if plain[k] != stamped[k]] == [release.BOOTSTRAP_ID]
    assert release_main([*args, "--check"]) == 0
    # the source keeps the placeholder
    assert release.PLACEHOLDER in _bootstrap(INSTRUCTOR)


def test_a_github_address_gives_a_colab_link_and_can_be_changed(tmp_path):
    readme = _readme_copy(tmp_path)
    out = str(tmp_path / "s.ipynb")
    for owner in ("acme", "other"):
        url = f"https://github.com/{owner}/tumorseg.git"
        assert release_main(["--out", out, "--readme", str(readme), "--repo-url", url]) == 0
        link = f"https://colab.research.google.com/github/{owner}/tumorseg{NOTEBOOK_LINK}"
        assert readme.read_text(encoding="utf-8").count(f"colab-badge.svg)]({link})") == 2


def test_check_reports_an_unset_address(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(release, "configured_repo_url", lambda: None)
    out = tmp_path / "s.ipynb"
    assert release_main(["--out", str(out)]) == 0
    assert release.PLACEHOLDER in _bootstrap(out)
    assert "repository address is not set" in capsys.readouterr().err
    assert release_main(["--out", str(out), "--check"]) == 1
    err = capsys.readouterr().err
    assert "repository address is not set" in err and "[project.urls]" in err
    assert "--repo-url" in err and "out of date" not in err


def test_configured_repo_url_reads_pyproject(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "tumorseg"\n', encoding="utf-8")
    assert release.configured_repo_url(pyproject) is None
    entry = '\n[project.urls]\nRepository = "https://github.com/{}/tumorseg"\n'
    pyproject.write_text(pyproject.read_text() + entry.format(release.PLACEHOLDER))
    assert release.configured_repo_url(pyproject) is None
    pyproject.write_text(pyproject.read_text().replace(release.PLACEHOLDER, "acme"))
    assert release.configured_repo_url(pyproject) == "https://github.com/acme/tumorseg"


@pytest.mark.parametrize(
    "bad",
    ["github.com/acme/tumorseg", "https://github.com/YOUR-ACCOUNT/t", 'https://e.org/a".git'],
)
def test_bad_repo_urls_are_rejected(bad, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        release_main(["--out", str(tmp_path / "s.ipynb"), "--repo-url", bad])
    assert info.value.code == 2
    assert f"repository address {bad!r}" in capsys.readouterr().err
    assert not (tmp_path / "s.ipynb").exists()


def test_missing_bootstrap_line_or_badge_is_reported(tmp_path, capsys):
    with pytest.raises(ValueError, match="REPO_URL"):
        release.stamp_repo_url("print('no address here')", "https://github.com/a/b.git")
    readme = tmp_path / "README.md"
    readme.write_text("# no badge\n", encoding="utf-8")
    with pytest.raises(SystemExit):
        release_main(["--out", str(tmp_path / "s.ipynb"), "--readme", str(readme),
                     "--repo-url", "https://github.com/a/b.git"])  # fmt: skip
    assert f"{readme}: no Colab badge" in capsys.readouterr().err


def test_cli_reports_a_broken_source(tmp_path, capsys):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("### START CODE HERE\nx = 1\n")])
    source = tmp_path / "bad.ipynb"
    nbformat.write(nb, str(source))
    with pytest.raises(SystemExit) as info:
        release_main(["--source", str(source), "--out", str(tmp_path / "o.ipynb")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("tumorseg release: error: ") and "without a matching" in err
    assert not (tmp_path / "o.ipynb").exists()

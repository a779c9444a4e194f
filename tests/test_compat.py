"""scripts/compat.py (``make compat``): the comparison of checked outputs and the sets.

The runs themselves take minutes each: not part of ``make test``; ``.ci/run`` runs ``make compat``
after it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


compat = _load("compat")


@pytest.fixture(autouse=True)
def _scripts_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))  # compat imports run_notebook from there


def _nb(*texts: str) -> nbformat.NotebookNode:
    cell = new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(1)", id="checked")
    cell.outputs = [new_output("stream", name="stdout", text=t) for t in texts]
    cell.outputs.append(new_output("display_data", data={"image/png": "AAAA", "text/plain": "F"}))
    return new_notebook(cells=[cell, new_code_cell("print(2)", id="free")])


def test_comparable_merges_streams_and_skips_what_nbval_skips():
    assert compat.comparable(_nb("a\n", "b\n").cells[0].outputs) == {
        "text/plain": ["F"],
        "text": ["a\nb\n"],
    }


def test_checked_differences_name_the_cell():
    stored = _nb("All tests passed\n")
    assert compat.checked_differences(_nb("All tests ", "passed\n"), stored) == []
    [line] = compat.checked_differences(_nb("3 tests failed\n"), stored)
    assert line.startswith("cell checked: expected") and "3 tests failed" in line
    other = _nb("All tests passed\n")
    other.cells[1].outputs = [new_output("stream", name="stdout", text="anything")]
    assert compat.checked_differences(other, stored) == []  # unchecked cells are free


def _pins(path: Path) -> dict[str, str]:
    """{name: version} of a requirements file of ``name==version`` lines."""
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return dict(line.split("==") for line in lines if line)


def test_each_set_pins_the_three_packages_inside_pyprojects_ranges():
    tomllib = pytest.importorskip("tomllib")
    from packaging.requirements import Requirement
    from packaging.version import Version

    from tumorseg.course import colab

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    ranges = {
        Requirement(d).name: Requirement(d).specifier for d in pyproject["project"]["dependencies"]
    }
    sets = sorted((ROOT / "tests" / "compat").glob("*.txt"))
    assert [p.name for p in sets] == ["colab.txt", "minimum.txt"]
    for path in sets:
        versions = _pins(path)
        assert set(colab.KEPT) <= set(versions), path.name
        for name, version in versions.items():
            if name in ranges:
                assert ranges[name].contains(version), f"{path.name}: {name}=={version}"
    minimum = _pins(sets[1])
    for name, spec in ranges.items():  # the lowest bound of every range, or the first on PyPI
        lowest = min((s.version for s in spec if s.operator == ">="), default=None)
        first = Version(minimum[name]) == Version(lowest)
        assert first or (name, minimum[name]) == ("tensorflow", "2.16.1"), name


@pytest.mark.slow
def test_each_set_installs_in_a_process_of_its_own(tmp_path):
    """Step 1 runs side by side for all sets (``--install`` processes); a failed install is the
    failure of its set, named, and leaves the other set alone."""
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text("# nothing to install\n")
    bad.write_text("--no-index\nno-such-package-for-tumorseg==1.0\n")  # fails without a network
    work = tmp_path / "work"
    started = {path: compat.start_install(path, work) for path in (good, bad)}
    with pytest.raises(compat.CompatError, match="install bad.txt: exit status 1"):
        compat.finish_install(bad, work, started[bad])
    times = compat.finish_install(good, work, started[good])
    assert set(times) == {"venv", "install set"}
    assert all(wall >= 0 and cpu >= 0 for wall, cpu in times.values())
    assert (work / "good" / "venv" / "bin" / "python").exists()
    assert (work / "good" / "stand-in" / "google" / "colab" / "__init__.py").is_file()
    assert (work / "good" / "content").is_dir()


@pytest.mark.slow
def test_stop_installs_ends_the_install_and_its_pip(tmp_path, monkeypatch):
    """An interrupted run ends every install still running, with the pip it started."""
    import socket
    import time

    import psutil

    server = socket.create_server(("127.0.0.1", 0))  # listens, never answers: pip waits
    monkeypatch.setenv("PIP_DEFAULT_TIMEOUT", "300")
    slow = tmp_path / "slow.txt"
    slow.write_text(f"--index-url http://127.0.0.1:{server.getsockname()[1]}/simple\nsix\n")
    process = compat.start_install(slow, tmp_path / "work")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until pip install runs (after the venv)
        children = psutil.Process(process.pid).children(recursive=True)
        if any(str(slow) in c.cmdline() for c in children):  # pip install -r slow.txt
            break
        time.sleep(0.2)
    else:
        pytest.fail("pip did not start")
    time.sleep(1)
    assert process.poll() is None, "pip should still be waiting for the index"
    compat.stop_installs([process])
    server.close()
    assert process.returncode is not None
    time.sleep(0.5)
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]

"""The Colab bootstrap: the notebook's first cell, ``tumorseg.course.colab`` and its command
line ``colab_main`` (``python -m tumorseg.course.cli colab``).

Fast checks only; ``make compat`` runs the cell for real in fresh venvs (``scripts/compat.py``).
"""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

from tumorseg.course import cli, colab, release
from tumorseg.course.release import INSTRUCTOR

ROOT = Path(__file__).resolve().parents[1]


def _bootstrap_source() -> str:
    nb = nbformat.read(INSTRUCTOR, as_version=4)
    return next(c.source for c in nb.cells if c.id == release.BOOTSTRAP_ID)


def test_declared_ranges_are_pyprojects():
    ranges = colab.declared_ranges(ROOT / "pyproject.toml")
    assert set(ranges) == set(colab.KEPT)
    assert ranges["tensorflow"].startswith("tensorflow>=") and "<3" in ranges["tensorflow"]


def test_keep_pins_only_versions_inside_the_ranges(capsys):
    ranges = {"tensorflow": "tensorflow>=2.16,<3", "keras": "keras>=3.4,<4", "numpy": "numpy>=1.26"}
    versions = {"tensorflow": "2.19.0", "keras": "3.3.3", "numpy": None}
    assert colab.keep_pins(ranges, versions) == ["tensorflow==2.19.0"]
    out = capsys.readouterr().out
    assert "keeping tensorflow 2.19.0" in out
    assert "keras: 3.3.3, the project needs <4,>=3.4: pip installs" in out
    assert "numpy: not installed" in out


def test_main_refuses_a_folder_that_is_not_a_clone(tmp_path, capsys):
    assert cli.colab_main([str(tmp_path)]) == 2
    assert "not a tumorseg clone" in capsys.readouterr().err


def test_python_dash_m_runs_the_setup_from_the_cli_module(tmp_path):
    """``python -m tumorseg.course.cli colab ROOT``; before the package is installed the setup
    can load nothing but the standard library and the clone's own modules."""
    command = [sys.executable, "-m", "tumorseg.course.cli"]
    done = subprocess.run([*command, "colab", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2 and "not a tumorseg clone" in done.stderr
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 2 and "usage: python -m tumorseg.course.cli {colab}" in done.stderr
    code = (
        "import sys; before = set(sys.modules); from tumorseg.course import colab, cli; "
        "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] not in "
        "{*sys.stdlib_module_names, 'tumorseg', 'packaging'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def test_run_streams_output_and_reports_failure(capsys):
    colab._run([sys.executable, "-c", "print('one'); print('two')"])
    assert capsys.readouterr().out == "    one\n    two\n"
    with pytest.raises(subprocess.CalledProcessError):
        colab._run([sys.executable, "-c", "raise SystemExit(3)"])


def test_bootstrap_cell_does_nothing_outside_colab(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "google.colab", None)  # import google.colab fails
    namespace: dict = {}
    exec(compile(_bootstrap_source(), "colab", "exec"), namespace)
    assert namespace["IN_COLAB"] is False
    assert list(tmp_path.iterdir()) == [] and capsys.readouterr().out == ""


@pytest.mark.slow
def test_bootstrap_cell_in_colab_clones_once_and_runs_the_setup(tmp_path, monkeypatch, capsys):
    """With a stand-in google.colab the cell clones REPO_URL (a local file:// repository of
    this checkout's HEAD), enters the clone and calls the setup; a rerun clones nothing."""
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{ROOT}", "origin"], cwd=tmp_path)
    work = tmp_path / "content"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    calls = []
    monkeypatch.setattr(cli, "colab_main", lambda argv: calls.append(Path.cwd()) or 0)
    source = release.stamp_repo_url(_bootstrap_source(), f"file://{tmp_path / 'origin'}")
    for _ in range(2):
        exec(compile(source, "colab", "exec"), {})
    clone = work / "tumorseg"
    assert calls == [clone, clone] and Path.cwd() == clone
    assert (clone / "util.py").is_file() and not (clone / "tumorseg" / "tumorseg").exists()
    assert capsys.readouterr().out.count("cloning file://") == 1


def test_install_pins_the_installed_stack_and_reports_it_unchanged(monkeypatch, capsys):
    seen = []

    def fake_run(command, cwd=None):
        seen.append((command, Path(command[-1]).read_text(encoding="utf-8")))

    monkeypatch.setattr(colab, "_run", fake_run)
    assert colab.install(ROOT) is True
    [(command, constraints)] = seen
    assert command[:6] == [sys.executable, "-m", "pip", "install", "-q", "-e"]
    assert command[6] == str(ROOT) and command[7] == "--constraint"
    versions = colab.installed()
    assert constraints.splitlines() == [f"{name}=={versions[name]}" for name in colab.KEPT]
    out = capsys.readouterr().out
    assert "pip installed: nothing new" in out and "unchanged" in out


def test_install_reports_a_changed_package(monkeypatch, capsys):
    versions = iter([{"tensorflow": "2.19.0", "keras": "3.10.0", "numpy": "2.0.2"},
                     {"tensorflow": "2.19.0", "keras": "3.10.0", "numpy": "2.4.0"}])  # fmt: skip
    monkeypatch.setattr(colab, "installed", lambda: next(versions))
    monkeypatch.setattr(colab, "_run", lambda command, cwd=None: None)
    assert colab.install(ROOT) is False
    assert "numpy changed: 2.0.2 -> 2.4.0; Runtime > Restart session" in capsys.readouterr().out


def test_sample_data_are_built_under_the_clone_once(tmp_path, monkeypatch):
    commands = []
    monkeypatch.setattr(colab, "_run", lambda command, cwd=None: commands.append(command[3:5]))
    colab.build_sample_data(tmp_path)
    data = tmp_path / "data" / "BraTS-Data"
    assert commands == [["synth", "--out"], ["patches", "--data"]]
    (data / "processed").mkdir(parents=True)
    (data / "processed" / "config.json").write_text("{}")
    commands.clear()
    colab.build_sample_data(tmp_path)
    assert commands == []

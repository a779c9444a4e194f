"""Every benchmark and script runs in its tiny ``--quick`` mode, so a stale path or import fails
here rather than when someone next runs it.

Each file runs as ``__main__`` inside this process (``runpy``), which imports TensorFlow once
for all of them; the whole set takes a minute or two of CPU.  ``benchmarks/bench_realism.py``
is left out (it needs the real data and is maintained apart).
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "data" / "BraTS-Data" / "processed"
EXCLUDED = {"benchmarks/bench_realism.py"}
FILES = sorted(
    p.relative_to(ROOT).as_posix()
    for folder in ("benchmarks", "scripts")
    for p in (ROOT / folder).glob("*.py")
    if p.relative_to(ROOT).as_posix() not in EXCLUDED
)

pytestmark = pytest.mark.slow


def test_every_benchmark_and_script_is_listed():
    """The list is found by glob, so a new file is smoke-tested (and needs --quick) at once."""
    assert "benchmarks/bench_train.py" in FILES and "scripts/ship_model.py" in FILES
    assert not EXCLUDED & set(FILES) and len(FILES) >= 12, FILES


@pytest.mark.parametrize("name", FILES)
def test_quick_mode_runs(name, monkeypatch, capsys):
    if not (STORE / "config.json").is_file():
        pytest.skip(f"sample patch store not built at {STORE}; run `make patches`")
    shipped = {p: p.stat().st_mtime_ns for p in (ROOT / "tumorseg" / "model" / "weights").iterdir()}
    monkeypatch.setattr(sys, "argv", [str(ROOT / name), "--quick"])
    monkeypatch.syspath_prepend(str(ROOT / name.split("/")[0]))
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(ROOT / name), run_name="__main__")
    out = capsys.readouterr().out
    assert exit_.value.code in (0, None), out[-3000:]
    assert out.strip(), "printed nothing"
    # no quick mode touches the shipped model (ship_model ships into a temporary copy)
    assert {p: p.stat().st_mtime_ns for p in shipped} == shipped


#: The benchmarks that load the deep-learning backend in their own process.
BACKEND_BENCHMARKS = (
    "bench_train",
    "bench_model",
    "bench_generator",
    "bench_realism",
    "bench_inference",
)


@pytest.mark.parametrize("name", BACKEND_BENCHMARKS)
def test_a_benchmark_imports_the_backend_quietly(name):
    """Importing a benchmark that uses the backend (what ``make bench`` runs, and what
    ``bench_train``'s spawned input workers do, as ``__mp_main__``) loads TensorFlow without the
    runtime's start-up lines on stderr."""
    from tumorseg.quiet import is_runtime_log_line

    code = (
        "import importlib.util, sys; "
        "spec = importlib.util.spec_from_file_location('__mp_main__', sys.argv[1]); "
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); "
        "print('tensorflow' in sys.modules)"
    )
    path = str(ROOT / "benchmarks" / f"{name}.py")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run(
        [sys.executable, "-c", code, path], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["True"]  # the import did load TensorFlow
    runtime = [line for line in done.stderr.splitlines() if is_runtime_log_line(line, 3)]
    assert runtime == [], done.stderr[-3000:]

"""Every benchmark and script runs in its tiny ``--quick`` mode, so a stale path or import fails
here rather than when someone next runs it.

Each file runs as ``__main__`` inside this process (``runpy``), which imports TensorFlow once
for all of them; the whole set takes a minute or two of CPU.  ``benchmarks/bench_realism.py``
is left out (it needs the real data and is maintained apart).
"""

from __future__ import annotations

import runpy
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

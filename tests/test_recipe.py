"""The README's real-data recipe, run line by line on a small synthetic MSD-layout dataset.

The recipe block is read from README.md; only sizes change (steps, batch, model, patches per
case), the backend becomes TensorFlow (JAX compiles slow CPU code for 3D convolutions) and the
download comes from a local file:// archive. Each substitution must match, so an edited
recipe fails here instead of drifting from what was tested.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def recipe_lines() -> list[str]:
    """The command lines between the recipe markers of README.md (comments dropped)."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- recipe:start -->\n```bash\n(.*?)```\n<!-- recipe:end -->", text, re.S)
    assert block, "README.md lost its recipe block"
    return [ln for ln in block.group(1).splitlines() if ln.strip() and not ln.startswith("#")]


@pytest.mark.slow
def test_readme_recipe_runs_end_to_end_on_synthetic_data(tmp_path):
    bin_dir = Path(sys.executable).parent
    src = tmp_path / "src" / "Task01_BrainTumour"
    subprocess.run(
        [bin_dir / "tumorseg", "synth", "--out", src, "--cases", "3"],
        check=True,
        capture_output=True,
    )
    archive = tmp_path / "Task01_BrainTumour.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(src, arcname="Task01_BrainTumour")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()

    lines = recipe_lines()
    commands = [ln.split()[ln.split().index("tumorseg") + 1] for ln in lines]
    assert commands == ["download", "patches", "train", "evaluate"]
    subs = [
        ("data/msd", str(tmp_path / "msd")),
        ("runs/msd", str(tmp_path / "runs")),
        (
            "--dest " + str(tmp_path / "msd"),
            f"--dest {tmp_path / 'msd'} --url file://{archive} --md5 {md5}",
        ),
        ("--per-case 8", "--per-case 1"),
        ("KERAS_BACKEND=jax", "KERAS_BACKEND=tensorflow"),
        ("--steps 20000 --batch-size 16", "--steps 2 --batch-size 2 --n-base-filters 8"),
        ("--eval-every 1000", "--eval-every 1"),
        ("--workers 8 --processes", "--workers 2 --processes"),
    ]
    script = "\n".join(lines)
    for old, new in subs:
        assert old in script, f"the README recipe no longer contains {old!r}"
        script = script.replace(old, new)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]

    import json

    store = json.loads((tmp_path / "msd" / "processed" / "config.json").read_text())
    assert set(store["train_cases"]).isdisjoint(store["valid_cases"]) and store["valid_cases"]
    manifest = json.loads((tmp_path / "runs" / "model.json").read_text())
    assert manifest["steps"] == 2 and manifest["training"]["processes"] is True
    assert manifest["data"]["valid_cases"] == store["valid_cases"]
    table = (tmp_path / "runs" / "evaluate.csv").read_text().splitlines()
    assert len(table) == 1 + len(store["valid_cases"]) and "WT_dice" in table[0]
    assert "scored, 0 failed; threshold" in proc.stdout

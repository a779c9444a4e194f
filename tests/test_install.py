"""The package installs like any other: ``pip install .`` (not editable) into a fresh venv.

One slow test (about a minute, most of it pip unpacking TensorFlow from the local wheel cache).
The venv is created without ``--system-site-packages``, and the package's dependencies are
resolved by pip from ``pyproject.toml``'s ranges, constrained to the exact pins of
``requirements.txt`` so the versions are the tested ones; a runtime dependency missing from
``pyproject.toml`` makes an import below fail.  The sources are copied to a temporary folder
first, so pip builds nothing inside the checkout.  Everything then runs from an unrelated folder,
so nothing can come from the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tumorseg.course import release

pytestmark = pytest.mark.slow

#: files that must be installed as package data (paths below the installed ``tumorseg``)
PACKAGE_DATA = (
    "data/mni/NOTICE.txt",
    "data/mni/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "data/mni/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "data/mni/mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
    "model/weights/model_pretrained.weights.h5",
    "model/weights/model_pretrained.json",
    "model/weights/model_member1.weights.h5",
    "model/weights/model_member1.json",
    "course/notebooks/Brain_Tumor_Segmentation.ipynb",
)

LOAD_SHIPPED = """
import json, pathlib, tumorseg
from tumorseg.model import load_pretrained
model, manifest = load_pretrained()
print(json.dumps({"package": str(pathlib.Path(tumorseg.__file__).parent),
                  "params": model.count_params(), "manifest": manifest,
                  "precision": getattr(model, "members", [model])[0].precision}))
"""


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (
        f"{' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}"
    )
    return done.stdout


def test_non_editable_install_runs_from_another_folder(tmp_path, repo_root):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(repo_root / name, src / name)
    shutil.copytree(
        repo_root / "tumorseg",
        src / "tumorseg",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP"}
    }
    env.update({"TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow", "MPLBACKEND": "Agg"})
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, env)
    python, tumorseg = venv / "bin" / "python", venv / "bin" / "tumorseg"
    _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-c",
            str(repo_root / "requirements.txt"),
            str(src),
        ],
        tmp_path,
        env,
        timeout=900,
    )
    shutil.rmtree(src)  # nothing may be read from the copied sources after this

    work = tmp_path / "elsewhere"
    work.mkdir()
    assert "usage: tumorseg <command>" in _run([str(python), "-m", "tumorseg", "--help"], work, env)

    _run([str(tumorseg), "synth", "--out", "d", "--cases", "1"], work, env)
    meta = json.loads((work / "d" / "dataset.json").read_text())
    assert len(meta["training"]) == 1
    assert all((work / "d" / meta["training"][0][k]).is_file() for k in ("image", "label"))

    _run([str(tumorseg), "release", "--out", "s.ipynb"], work, env)
    assert (work / "s.ipynb").read_text(encoding="utf-8") == release.build_release(
        release.INSTRUCTOR
    )

    shipped = json.loads(
        _run([str(python), "-c", LOAD_SHIPPED], work, env).strip().splitlines()[-1]
    )
    package = Path(shipped["package"])
    assert package.is_relative_to(venv), f"imported {package}, not the installed package"
    assert shipped["params"] == 2 * 4_081_075  # the shipped ensemble's two members
    repo_manifest = repo_root / "tumorseg" / "model" / "weights" / "model_pretrained.json"
    # the manifest as it runs: a setting given per inference precision resolved for this one
    from tumorseg.model.pretrained import for_precision

    assert shipped["manifest"] == for_precision(
        json.loads(repo_manifest.read_text()), shipped["precision"]
    )
    missing = [name for name in PACKAGE_DATA if not (package / name).is_file()]
    assert not missing, f"not installed as package data: {missing}"

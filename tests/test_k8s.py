"""The Kubernetes recipes of ``deploy/kubernetes/`` against the API schemas of every version
they claim: ``kubernetes-validate --strict`` (a test dependency that bundles the official
schemas) for each minor version from the floor stated in the manifest's comment
("Kubernetes >= 1.29") to the newest the package knows."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.y*ml"))


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def _minor_text(version: str) -> str:
    major, minor = _minor(version)
    return f"{major}.{minor}"


def _floor(manifest: Path) -> tuple[int, int]:
    """The oldest Kubernetes the manifest's comment claims ("Kubernetes >= 1.29")."""
    claims = re.findall(r"Kubernetes >= (\d+\.\d+)", manifest.read_text())
    assert claims, f"{manifest.name} states no floor (a comment 'Kubernetes >= X.Y')"
    return min(_minor(c) for c in claims)


def _cli() -> str:
    """The kubernetes-validate command of this interpreter's environment."""
    pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    found = Path(sys.executable).with_name("kubernetes-validate")
    return str(found) if found.exists() else (shutil.which("kubernetes-validate") or "")


def test_the_floor_is_the_one_backoff_limit_per_index_needs():
    assert MANIFESTS, "deploy/kubernetes holds no manifest"
    job = ROOT / "deploy" / "kubernetes" / "predict-job.yaml"
    assert "backoffLimitPerIndex" in job.read_text()
    assert _floor(job) == (1, 29)  # backoffLimitPerIndex: beta and on by default from 1.29


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_manifest_validates_strictly_on_every_claimed_version(manifest):
    cli = _cli()
    from kubernetes_validate.utils import all_versions

    floor = _floor(manifest)
    versions = [v for v in all_versions() if _minor(v) >= floor]
    assert versions and _minor(versions[0]) == floor, (
        f"kubernetes-validate knows no schema for {floor}"
    )
    # one command, every version (-k repeats): the CLI's start-up is paid once
    done = subprocess.run(
        [cli, "--strict", "--no-warn", *(f"-k{v}" for v in versions), str(manifest)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    for version in versions:  # each version was checked, and passed
        assert re.search(f"passed for .* against version {_minor_text(version)}$", output, re.M), (
            version,
            output,
        )


def test_strict_validation_catches_what_old_schemas_require(tmp_path):
    """The check can fail: the rule without ``status`` is what 1.29-1.34 reject."""
    cli = _cli()
    job = (ROOT / "deploy" / "kubernetes" / "predict-job.yaml").read_text()
    broken = tmp_path / "job.yaml"
    broken.write_text(re.sub(r'\n\s+status: "True".*', "", job))
    assert broken.read_text() != job
    done = subprocess.run(
        [cli, "--strict", "-k", "1.29.0", str(broken)], capture_output=True, text=True
    )
    assert done.returncode != 0 and "'status' is a required property" in done.stdout + done.stderr


def _job(name: str) -> dict:
    import yaml

    return yaml.safe_load((ROOT / "deploy" / "kubernetes" / name).read_text())


def test_merge_job_merges_the_predict_jobs_lists_into_one(tmp_path):
    """The merge job mounts the predict job's output claim at the same path, and its command,
    run here with that path pointing at a folder of two shards' lists, writes one qc.csv,
    most doubtful case first."""
    import pandas as pd

    from tumorseg.cli import main as tumorseg
    from tumorseg.inference.uncertainty import QC_COLUMNS, update_qc

    predict, merge = (
        _job(n)["spec"]["template"]["spec"] for n in ("predict-job.yaml", "merge-job.yaml")
    )

    def out_mount(spec: dict) -> tuple[str, str]:
        (container,) = spec["containers"]
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "out"]
        (volume,) = [v for v in spec["volumes"] if v["name"] == "out"]
        return mount["mountPath"], volume["persistentVolumeClaim"]["claimName"]

    assert out_mount(merge) == out_mount(predict)
    out = out_mount(merge)[0]
    (container,) = merge["containers"]
    assert container["command"] == ["tumorseg"]
    row = dict.fromkeys(QC_COLUMNS, 0.0)
    for i, (case, doubt) in enumerate([("x", 0.1), ("y", 0.7)]):
        update_qc(tmp_path / f"qc-shard-{i}-of-2.csv", [{**row, "case": case, "doubt": doubt}])
    args = [str(tmp_path) + a[len(out) :] if a.startswith(out) else a for a in container["args"]]
    assert tumorseg(args) == 0
    assert pd.read_csv(tmp_path / "qc.csv")["case"].tolist() == ["y", "x"]

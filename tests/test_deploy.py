"""The recipes of ``deploy/``, run here with the variables their engines set.

Each Slurm script runs under bash with the array variables that Slurm sets, and a stand-in
``tumorseg`` on PATH that records the command line the script built; that command line then
runs through ``tumorseg.cli.main`` on tiny synthetic cases (in this process: the model's
start-up is paid once, not per task).  The Kubernetes Job is parsed, its ``$(VAR)`` references
are expanded as the kubelet does, and its command runs the same way for every index.  The
container image is built where a Docker daemon answers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import write_tiny_dataset

import tumorseg
from tumorseg.cli import main

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
SLURM = DEPLOY / "slurm"
JOB = DEPLOY / "kubernetes" / "predict-job.yaml"

RECORDER = """#!/bin/sh
# stands in for a program of the recipes: records its command line, NUL-separated
printf '%s\\0' "$(basename "$0")" "$@" >> "$RECORD"
printf '%s\\n' "${FAKE_OUTPUT:-}"
"""


@pytest.fixture
def engine(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH finds recording stand-ins for ``tumorseg`` and ``sbatch``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("tumorseg", "sbatch"):
        (bin_dir / name).write_text(RECORDER)
        (bin_dir / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(PATH=f"{bin_dir}:{env['PATH']}", RECORD=str(tmp_path / "record"))
    return env


def run_recipe(script: Path, args: list[str], env: dict[str, str], **extra: str) -> list[list]:
    """Run ``script`` under bash with ``env`` and ``extra`` variables; the command lines its
    stand-ins recorded, in order.  Raises CalledProcessError when it fails."""
    record = Path(env["RECORD"])
    record.unlink(missing_ok=True)
    subprocess.run(
        ["bash", str(script), *args],
        env={**env, **extra},
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    words = record.read_text().split("\0")[:-1] if record.exists() else []
    calls, current = [], []
    for word in words:
        if word in ("tumorseg", "sbatch") and current:
            calls.append(current)
            current = []
        current.append(word)
    return calls + ([current] if current else [])


def array_task(task: int, first: int, count: int) -> dict[str, str]:
    """The variables Slurm sets in task ``task`` of ``--array=first-(first+count-1)``."""
    return {
        "SLURM_ARRAY_JOB_ID": "4242",
        "SLURM_ARRAY_TASK_ID": str(task),
        "SLURM_ARRAY_TASK_MIN": str(first),
        "SLURM_ARRAY_TASK_MAX": str(first + count - 1),
        "SLURM_ARRAY_TASK_COUNT": str(count),
        "SLURM_CPUS_PER_TASK": "2",
    }


@pytest.fixture(scope="module")
def four_cases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("four"), n=4, seed=10)


def _maps(folder: Path) -> dict[str, bytes]:
    import nibabel as nib

    return {p.name: np.asarray(nib.load(p).dataobj).tobytes() for p in folder.glob("*.nii.gz")}


# --------------------------------------------------------------------------- Slurm
def test_slurm_predict_array_then_the_finishing_pass(
    four_cases, batch_weights, engine, tmp_path, capsys
):
    out = tmp_path / "out"
    args = [str(four_cases), str(out), "--weights", str(batch_weights)]
    commands = []
    for task in (1, 2):  # --array=1-2: the ids start at 1, the shards at 0
        [argv] = run_recipe(SLURM / "predict.sbatch", args, engine, **array_task(task, 1, 2))
        commands.append(argv)
    assert commands == [
        ["tumorseg", "predict", str(four_cases), "--out", str(out), "--shard", f"{i}/2", *args[2:]]
        for i in (0, 1)
    ]
    for argv in commands:
        assert main(argv[1:]) == 0
    assert capsys.readouterr().out.count("2 written, 0 already there, 0 failed") == 2
    # no array: the whole set, then one check-first list of the shards' and its own
    finish, merge = run_recipe(SLURM / "predict.sbatch", args, engine)
    assert finish[finish.index("--shard") + 1] == "0/1"
    assert merge == ["tumorseg", "merge", "--out", str(out / "qc.csv"), str(out)]
    assert main(finish[1:]) == 0
    assert (
        capsys.readouterr().out.splitlines()[-1].startswith("0 written, 4 already there, 0 failed")
    )
    assert sorted(_maps(out)) == [f"BRATS_{i:03d}.nii.gz" for i in range(1, 5)]
    assert not (out / "qc.csv").exists()  # the finishing pass wrote no case
    assert main(merge[1:]) == 0
    qc = pd.read_csv(out / "qc.csv")
    assert sorted(qc["case"]) == [f"BRATS_{i:03d}" for i in range(1, 5)]
    assert qc["doubt"].is_monotonic_decreasing  # most doubtful first
    assert {p.name for p in out.glob("run*.json")} == {
        "run.json",
        "run-shard-0-of-2.json",
        "run-shard-1-of-2.json",
    }


def test_slurm_scripts_refuse_an_array_with_gaps_and_missing_arguments(engine):
    gaps = {**array_task(2, 0, 3), "SLURM_ARRAY_TASK_MAX": "4"}  # --array=0-4:2
    for script, args in (
        (SLURM / "predict.sbatch", ["D", "O"]),
        (SLURM / "grade.sbatch", ["S", "G"]),
    ):
        with pytest.raises(subprocess.CalledProcessError) as info:
            run_recipe(script, args, engine, **gaps)
        assert "one range without steps or gaps" in info.value.stderr
        with pytest.raises(subprocess.CalledProcessError) as info:
            run_recipe(script, [], engine)
        assert info.value.returncode == 2 and "usage:" in info.value.stderr
    assert not Path(engine["RECORD"]).exists()  # nothing ran


def test_slurm_grade_array_then_merge_equals_one_run(engine, tmp_path, fake_grading, capsys):
    subs = tmp_path / "subs"
    subs.mkdir()
    for i, name in enumerate(["ann", "ben", "cho", "dev", "eli"]):
        (subs / f"{name}.ipynb").write_text(str(i + 1))
    grades = tmp_path / "grades"
    for task in (0, 1):
        [argv] = run_recipe(
            SLURM / "grade.sbatch",
            [str(subs), str(grades), "--no-sandbox"],
            engine,
            **array_task(task, 0, 2),
        )
        assert argv[argv.index("--out") + 1] == str(grades / f"shard-{task}")
        assert argv[argv.index("--shard") + 1] == f"{task}/2"
        assert main(argv[1:]) == 0
    [merge] = run_recipe(SLURM / "merge.sbatch", [str(grades), str(grades)], engine)
    assert merge == [
        "tumorseg",
        "merge",
        "--out",
        str(grades),
        str(grades / "shard-0"),
        str(grades / "shard-1"),
    ]
    assert main(merge[1:]) == 0
    assert (
        main(["grade", str(subs), "--no-sandbox", "--quiet", "--out", str(tmp_path / "one")]) == 0
    )
    capsys.readouterr()
    one = (tmp_path / "one" / "results.csv").read_text()
    assert (grades / "results.csv").read_text() == one and one.count("\n") == 6
    for report in (tmp_path / "one").glob("*.json"):
        assert json.loads((grades / report.name).read_text()) == json.loads(report.read_text())


def test_submit_chains_the_array_and_the_dependent_step(engine):
    engine = {**engine, "FAKE_OUTPUT": "777;cluster"}
    predict = run_recipe(SLURM / "submit.sh", ["predict", "D", "O", "3"], engine)
    assert predict == [
        ["sbatch", "--parsable", "--array=0-2", str(SLURM / "predict.sbatch"), "D", "O"],
        [
            "sbatch",
            "--parsable",
            "--dependency=afterany:777",
            "--output=tumorseg-predict-%j.log",  # not %A_%a: it is no array job
            str(SLURM / "predict.sbatch"),
            "D",
            "O",
        ],
    ]
    # options after TASKS reach every task
    weights = run_recipe(SLURM / "submit.sh", ["predict", "D", "O", "2", "--weights", "W"], engine)
    assert [call[-2:] for call in weights] == [["--weights", "W"]] * 2
    grade = run_recipe(SLURM / "submit.sh", ["grade", "S", "G"], engine)
    assert grade == [
        ["sbatch", "--parsable", "--array=0-9", str(SLURM / "grade.sbatch"), "S", "G"],
        ["sbatch", "--parsable", "--dependency=afterok:777", str(SLURM / "merge.sbatch"), "G", "G"],
    ]


def test_sbatch_directives_come_before_the_first_command():
    """sbatch reads ``#SBATCH`` lines only up to the first command of the script."""
    for script in SLURM.glob("*.sbatch"):
        lines = script.read_text().splitlines()
        first_command = next(i for i, x in enumerate(lines[1:], 1) if x and not x.startswith("#"))
        directives = [i for i, x in enumerate(lines) if x.startswith("#SBATCH")]
        assert directives and max(directives) < first_command, script.name
        assert any("--time=" in lines[i] for i in directives), script.name


# --------------------------------------------------------------------------- Kubernetes
def _expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' expansion of ``$(VAR)`` in a container's command and args."""
    return re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), text)


def test_kubernetes_indexed_job_runs_each_index(
    four_cases, batch_weights, engine, tmp_path, capsys
):
    job = yaml.safe_load(JOB.read_text())
    spec = job["spec"]
    assert job["kind"] == "Job" and spec["completionMode"] == "Indexed"
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"  # required by podFailurePolicy
    [container] = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    shards = int(env["SHARDS"])
    assert spec["completions"] == shards and 1 <= spec["parallelism"] <= shards
    assert container["image"] == f"tumorseg:{tumorseg.__version__}"  # deploy/Dockerfile's tag
    assert f"-t tumorseg:{tumorseg.__version__} " in (DEPLOY / "Dockerfile").read_text()
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    claims = {v["name"]: v["persistentVolumeClaim"] for v in pod["volumes"]}
    assert mounts["data"]["readOnly"] and claims["data"]["readOnly"]
    assert not mounts["out"].get("readOnly") and set(claims) == set(mounts)

    out = tmp_path / "out"
    where = {mounts["data"]["mountPath"]: str(four_cases), mounts["out"]["mountPath"]: str(out)}
    for index in range(shards):
        env["JOB_COMPLETION_INDEX"] = str(index)  # what the Job controller sets in pod i
        argv = [_expand(a, env) for a in container["command"] + container["args"]]
        argv = [where.get(a, a) for a in argv]
        # the same command line as the Slurm array task of this shard
        [slurm] = run_recipe(
            SLURM / "predict.sbatch",
            [str(four_cases), str(out)],
            engine,
            **array_task(index, 0, shards),
        )
        assert argv == slurm
        assert main([*argv[1:], "--weights", str(batch_weights)]) == 0
    assert capsys.readouterr().out.count("1 written, 0 already there, 0 failed") == shards
    assert sorted(_maps(out)) == [f"BRATS_{i:03d}.nii.gz" for i in range(1, 5)]


# --------------------------------------------------------------------------- the image
def test_dockerfile_copies_what_exists_and_its_context_lets_it_through():
    text = (DEPLOY / "Dockerfile").read_text()
    sources = [
        w for line in text.splitlines() if line.startswith("COPY ") for w in line.split()[1:-1]
    ]
    assert sources and all((ROOT / s).exists() for s in sources), sources
    allowed = {
        line[1:]
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert set(sources) <= allowed


def _docker_daemon() -> str | None:
    """None when a Docker daemon answers, else why not."""
    if shutil.which("docker") is None:
        return "no docker command"
    try:
        done = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired:
        return "the Docker daemon did not answer in 20 s"
    if done.returncode != 0 or not done.stdout.strip():
        return f"no Docker daemon answers: {done.stderr.strip().splitlines()[-1:]}"
    return None


@pytest.mark.slow
def test_the_image_builds_and_holds_the_model(tmp_path):
    why = _docker_daemon()
    if why:
        pytest.skip(why)
    tag = f"tumorseg-test:{tumorseg.__version__}"
    build = ["docker", "build", "-f", str(DEPLOY / "Dockerfile"), "-t", tag, str(ROOT)]
    subprocess.run(build, check=True, timeout=1800)
    try:
        done = subprocess.run(
            ["docker", "run", "--rm", tag, "predict", "--help"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0 and "--shard" in done.stdout, done.stderr
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, timeout=120)

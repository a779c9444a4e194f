"""``deploy/slurm/`` on a real Slurm: one node, started here from a ``slurm.conf`` in a temporary
folder (Debian's ``slurm-wlm`` and ``munge``, installed with apt-get when missing and allowed).

What only a real controller does is checked: ``#SBATCH`` parsing, ``--array`` indices and
``SLURM_ARRAY_TASK_*``, the ``%A_%a``/``%j`` log names, the environment ``sbatch`` passes to
each task (``PATH`` finds this venv's ``tumorseg``), and ``--dependency``: the grade merge waits
for every task (``afterok``) and never runs when one fails, while predict's finishing pass runs
after every task (``afterany``) and reports the broken case.  The daemons inherit this process's
CPU affinity (run the tests under ``taskset``); the node claims 4 CPUs, so two jobs of
``--cpus-per-task=2`` run at once.  They are stopped by their pid files whatever
happens.  Accounting is off, so jobs are watched with ``squeue`` and ``scontrol show job``.
Where ``slurmd`` cannot run (no root, no packages, no way to install them, a daemon that does
not come up) the tests skip with the reason.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import write_tiny_dataset
from test_batch import broken_dataset

from tumorseg.cli import main
from tumorseg.resources import instructor_notebook

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SUBMIT = ROOT / "deploy" / "slurm" / "submit.sh"
DAEMONS = ("slurmd", "slurmctld", "munged")  # stopped in this order
#: seconds to wait for a batch of jobs to leave the queue
JOBS_TIMEOUT = 900

CONF = """\
ClusterName=tumorseg-test
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
AuthType=auth/munge
AuthInfo=socket={dir}/munge.sock
CredType=cred/munge
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
SlurmdParameters=config_overrides
MinJobAge=3600
NodeName={host} NodeAddr=127.0.0.1 CPUs=4 RealMemory=65536 State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def _install() -> str | None:
    """Install slurm-wlm and munge with apt-get where they are missing; None when the daemons
    are there, else why they are not."""
    if all(shutil.which(d, path=f"/usr/sbin:{os.environ['PATH']}") for d in DAEMONS):
        return None
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or not shutil.which("apt-get"):
        return "slurm-wlm and munge are missing; apt-get install slurm-wlm munge needs root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "slurm-wlm", "munge"],
    ):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            return f"{' '.join(cmd)} failed: {done.stderr.strip()[-300:]}"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(folder: Path) -> None:
    """Stop the daemons whose pid files are in ``folder``: SIGTERM, then SIGKILL after 10 s."""
    for name in DAEMONS:
        pid_file = folder / f"{name}.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError, IndexError):
            continue
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                break
            time.sleep(0.1)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _log_tail(folder: Path) -> str:
    return " | ".join(
        f"{p.name}: {' / '.join(p.read_text(errors='replace').splitlines()[-3:])}"
        for p in sorted(folder.glob("*.log"))
    )


def _skip(why: str) -> None:
    print(f"test_slurm: skipped: {why}", file=sys.stderr)
    pytest.skip(why)


def _start(folder: Path, env: dict[str, str]) -> str | None:
    """Start munged, slurmctld and slurmd on ``folder``'s slurm.conf; None once the node is
    idle, else why it did not come up."""
    key = folder / "munge.key"
    done = subprocess.run(["mungekey", "-c", "-k", str(key)], capture_output=True, text=True)
    if done.returncode != 0:
        return f"mungekey failed: {done.stderr.strip()}"
    starts = [
        [
            "munged",
            "--force",
            f"--socket={folder}/munge.sock",
            f"--key-file={key}",
            f"--log-file={folder}/munged.log",
            f"--pid-file={folder}/munged.pid",
            f"--seed-file={folder}/munged.seed",
        ],
        ["slurmctld", "-i", "-f", env["SLURM_CONF"]],
        ["slurmd", "-f", env["SLURM_CONF"]],
    ]
    for cmd in starts:
        cmd[0] = shutil.which(cmd[0], path=f"/usr/sbin:{env['PATH']}") or cmd[0]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            return f"{Path(cmd[0]).name} did not start: {done.stderr.strip()} {_log_tail(folder)}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True
        ).stdout.strip()
        if state == "idle":
            return None
        time.sleep(0.5)
    return f"the node did not become idle in 60 s (state {state!r}): {_log_tail(folder)}"


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A one-node Slurm on this machine; yields the environment its clients and jobs use
    (``SLURM_CONF``, and ``PATH`` with this venv's ``tumorseg`` first)."""
    why = _install()
    if why:
        _skip(why)
    folder = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool"):
        (folder / sub).mkdir()
    (folder / "slurm.conf").write_text(
        CONF.format(
            host=socket.gethostname().split(".")[0],
            ctld_port=_free_port(),
            d_port=_free_port(),
            dir=folder,
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_"))}
    env.update(
        SLURM_CONF=str(folder / "slurm.conf"),
        PATH=f"{Path(sys.executable).parent}:{env['PATH']}:/usr/sbin",
    )
    try:
        why = _start(folder, env)
        if why:
            _skip(why)
        yield env
    finally:
        subprocess.run(["scancel", "--user", "root"], env=env, capture_output=True, timeout=30)
        _stop(folder)


def submit(env: dict[str, str], cwd: Path, *args: str) -> tuple[str, str]:
    """Run ``submit.sh args`` in ``cwd``; the array job's id and its dependent job's id."""
    done = subprocess.run(
        ["bash", str(SUBMIT), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    array, dependent = re.search(r"array job (\d+) .*?(\d+)$", done.stdout.strip()).groups()
    return array, dependent


def job_states(env: dict[str, str], job: str) -> list[tuple[str, str, str]]:
    """``(state, exit code, reason)`` of each task of ``job`` (its array tasks, or itself) that
    the controller still knows; ``scontrol`` works without accounting."""
    text = subprocess.run(
        ["scontrol", "show", "job", job], env=env, capture_output=True, text=True, timeout=30
    ).stdout
    found = re.findall(r"JobState=(\w+) Reason=(\S+).*?ExitCode=(\S+)", text, re.S)
    return [(state, code, reason) for state, reason, code in found]


def wait(env: dict[str, str], jobs: list[str], never: tuple[str, ...] = ()) -> float:
    """Poll ``squeue`` until ``jobs`` have left the queue, except ``never``: jobs expected to
    stay pending because their dependency can never be satisfied (they must say so).  Returns
    the seconds waited; fails after JOBS_TIMEOUT."""
    start = time.monotonic()
    while time.monotonic() - start < JOBS_TIMEOUT:
        out = subprocess.run(
            ["squeue", "-h", "-j", ",".join(jobs), "-o", "%i %T %r"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.split("\n")
        left = [line.split() for line in out if line.strip()]
        waiting = [x for x in left if x[0].split("_")[0] not in never]
        stuck = [x for x in left if x[0] in never and x[2] == "DependencyNeverSatisfied"]
        if not waiting and len(stuck) == len(never):
            return time.monotonic() - start
        time.sleep(1)
    pytest.fail(f"jobs {jobs} still queued after {JOBS_TIMEOUT} s: {left}")


def _maps(folder: Path) -> dict[str, bytes]:
    import nibabel as nib
    import numpy as np

    return {p.name: np.asarray(nib.load(p).dataobj).tobytes() for p in folder.glob("*.nii.gz")}


def _sandbox_flags() -> list[str]:
    return [] if shutil.which("bwrap") else ["--no-sandbox"]


def _grading_report(path: Path) -> dict:
    """A grade report without what differs between two gradings of one notebook (timings)."""
    report = json.loads(path.read_text())
    for key in ("seconds", "started", "finished"):
        report.pop(key, None)
    return report


# --------------------------------------------------------------------------- the good run
def test_predict_and_grade_arrays_equal_one_run(slurm, batch_weights, tmp_path, capsys):
    data = write_tiny_dataset(tmp_path / "data", n=3, seed=20)
    subs = tmp_path / "subs"
    subs.mkdir()
    instructor = instructor_notebook()
    if not instructor.is_file():
        pytest.skip("instructor notebook missing")
    (subs / "ann.ipynb").write_bytes(instructor.read_bytes())
    (subs / "ben.ipynb").write_text("{not json")  # graded without a kernel: 0 points
    (subs / "cho.ipynb").write_text("")  # so is an empty file
    logs = tmp_path / "logs"
    logs.mkdir()
    weights = ["--weights", str(batch_weights)]
    grade_options = ["--cell-timeout", "60", *_sandbox_flags()]
    p_array, p_finish = submit(
        slurm, logs, "predict", str(data), str(tmp_path / "out"), "2", *weights
    )
    g_array, g_merge = submit(
        slurm, logs, "grade", str(subs), str(tmp_path / "grades"), "2", *grade_options
    )
    waited = wait(slurm, [p_array, p_finish, g_array, g_merge])
    print(f"test_slurm: the six jobs ran in {waited:.0f} s")
    states = {j: job_states(slurm, j) for j in (p_array, p_finish, g_array, g_merge)}
    assert all(s == "COMPLETED" and code == "0:0" for j in states.values() for s, code, _ in j), (
        states
    )
    assert [len(states[j]) for j in (p_array, p_finish, g_array, g_merge)] == [2, 1, 2, 1]
    # the log names of #SBATCH --output (%A_%a) and of submit.sh's --output (%j)
    assert {p.name for p in logs.iterdir()} == {
        f"tumorseg-predict-{p_array}_0.log",
        f"tumorseg-predict-{p_array}_1.log",
        f"tumorseg-predict-{p_finish}.log",
        f"tumorseg-grade-{g_array}_0.log",
        f"tumorseg-grade-{g_array}_1.log",
        f"tumorseg-merge-{g_merge}.log",
    }
    finish_log = (logs / f"tumorseg-predict-{p_finish}.log").read_text()
    assert "0 written, 3 already there, 0 failed" in finish_log

    # predict: the array's maps equal one unsharded run's
    assert main(["predict", str(data), "--out", str(tmp_path / "one"), *weights]) == 0
    capsys.readouterr()
    sharded, one = _maps(tmp_path / "out"), _maps(tmp_path / "one")
    assert sorted(sharded) == [f"BRATS_{i:03d}.nii.gz" for i in (1, 2, 3)] and sharded == one
    assert {p.name for p in (tmp_path / "out").glob("run-shard-*.json")} == {
        "run-shard-0-of-2.json",
        "run-shard-1-of-2.json",
    }
    # the finishing pass merged the shards' check-first lists into one, as one run writes it
    assert f"wrote {tmp_path / 'out' / 'qc.csv'}" in finish_log
    merged_qc = (tmp_path / "out" / "qc.csv").read_text()
    assert merged_qc == (tmp_path / "one" / "qc.csv").read_text()
    assert sorted(r["case"] for r in csv.DictReader(merged_qc.splitlines())) == sorted(
        p.removesuffix(".nii.gz") for p in sharded
    )
    # grade: the merged folder equals one unsharded run's
    one_grades = tmp_path / "one-grades"
    done = subprocess.run(
        ["tumorseg", "grade", str(subs), "--out", str(one_grades), "--quiet", *grade_options],
        env=slurm,
        capture_output=True,
        text=True,
        timeout=JOBS_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    merged = (tmp_path / "grades" / "results.csv").read_text()
    assert merged == (one_grades / "results.csv").read_text()
    rows = {r["submission"]: r for r in csv.DictReader(merged.splitlines())}
    assert set(rows) == {"ann.ipynb", "ben.ipynb", "cho.ipynb"}
    for name in ("ann", "ben", "cho"):
        assert _grading_report(tmp_path / "grades" / f"{name}.json") == _grading_report(
            one_grades / f"{name}.json"
        )


# --------------------------------------------------------------------------- a task fails
def test_a_failed_task_blocks_the_merge_and_is_reported(slurm, batch_weights, tmp_path):
    data = broken_dataset(tmp_path / "data", good=2, kinds=("truncated",))
    subs = tmp_path / "subs"
    subs.mkdir()
    for name in ("ann", "ben"):
        (subs / f"{name}.ipynb").write_text("{not json")
    grades = tmp_path / "grades"
    (grades / "shard-1").mkdir(parents=True)
    # a results.csv that is not the grader's: task 1 refuses it and fails (exit 2)
    (grades / "shard-1" / "results.csv").write_text("name,grade\nsomeone,A\n")
    logs = tmp_path / "logs"
    logs.mkdir()
    out = tmp_path / "out"
    p_array, p_finish = submit(
        slurm, logs, "predict", str(data), str(out), "2", "--weights", str(batch_weights)
    )
    g_array, g_merge = submit(slurm, logs, "grade", str(subs), str(grades), "2", "--no-sandbox")
    wait(slurm, [p_array, p_finish, g_array, g_merge], never=(g_merge,))

    # grade: task 1 failed, so the merge (afterok) never runs; it is cancelled here
    tasks = job_states(slurm, g_array)
    assert sorted((s, code) for s, code, _ in tasks) == [("COMPLETED", "0:0"), ("FAILED", "2:0")]
    [(state, _, reason)] = job_states(slurm, g_merge)
    assert state == "PENDING" and reason == "DependencyNeverSatisfied"
    assert not (logs / f"tumorseg-merge-{g_merge}.log").exists()
    assert not (grades / "results.csv").exists()
    assert (
        "was not written by `tumorseg grade`"
        in (logs / f"tumorseg-grade-{g_array}_1.log").read_text()
    )
    subprocess.run(["scancel", g_merge], env=slurm, check=True, timeout=30)

    # predict: the task that met the broken case failed; the finishing pass (afterany) ran
    # anyway, wrote nothing new, named the case and failed too
    tasks = sorted(code for _, code, _ in job_states(slurm, p_array))
    assert tasks == ["0:0", "1:0"]
    [(state, code, _)] = job_states(slurm, p_finish)
    assert (state, code) == ("FAILED", "1:0")
    finish_log = (logs / f"tumorseg-predict-{p_finish}.log").read_text()
    assert "0 written, 2 already there, 1 failed" in finish_log
    assert "BAD_truncated" in finish_log
    with open(out / "failures.csv", newline="") as fh:
        assert [r["case"] for r in csv.DictReader(fh)] == ["BAD_truncated"]
    with open(out / "qc.csv", newline="") as fh:  # merged all the same: the good cases
        assert sorted(r["case"] for r in csv.DictReader(fh)) == ["BRATS_001", "BRATS_002"]
    assert sorted(_maps(out)) == ["BRATS_001.nii.gz", "BRATS_002.nii.gz"]

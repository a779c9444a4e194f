"""Stage 2 of ``tumorseg grade``: build the grading notebook of one submission's cells and run
it with nbval in the sandbox; returns a :class:`.records.Run` (what the run left behind).

The grading folder holds the reduced notebook (:func:`.nbtools.build_grading_notebook`), the
checks module, the pytest plugin and config, util.py and empty output folders; the runner of
:mod:`.sandbox` starts ``pytest --nbval-lax`` there inside bubblewrap (:mod:`.isolation`) or,
with ``--no-sandbox``, as the grader's own user.  Everything is read back after every process
of the run is gone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat

from tumorseg import resources

from . import checks, isolation, nbtools
from .records import Item, Limits, Run, Setup
from .sandbox import runner_command

MAX_RECORD_BYTES = 5 * 1024 * 1024
MAX_JUNIT_BYTES = 50 * 1024 * 1024
# read once: later runs use these texts even if a submission rewrites files on disk
_CHECKS_SOURCE = Path(checks.__file__).read_text(encoding="utf-8")
_CONFTEST_SOURCE = (Path(__file__).parent / "folder_conftest.py").read_text(encoding="utf-8")
_UTIL_SOURCE = resources.facade_source()


def _run_env(where: str, limits: Limits) -> dict[str, str]:
    """The variables a grading run needs; ``where`` is the run folder as the run sees it."""
    return {
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "KERAS_BACKEND": "tensorflow",
        "PYTHONHASHSEED": "0",
        "MPLBACKEND": "Agg",
        "PYTHONDONTWRITEBYTECODE": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "TF_NUM_INTRAOP_THREADS": "1",
        "TF_NUM_INTEROP_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "JUPYTER_RUNTIME_DIR": f"{where}/runtime",
        checks.OUTPUT_ENV: f"{where}/_outputs",
        "TUMORSEG_GRADE_CONF": json.dumps(
            {
                "timeouts": {
                    "prelude": limits.setup_timeout,
                    "setup": limits.setup_timeout,
                    "pre": limits.setup_timeout,
                    "student": limits.cell_timeout,
                    "check": limits.cell_timeout,
                }
            }
        ),
    }


def _host_env(extra: dict[str, str]) -> dict[str, str]:
    """Without a sandbox: the grader's environment minus pytest/Jupyter state, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST", "TUMORSEG_GRADE", "JPY_", "JUPYTER_"))
    }
    env.update(extra)
    return env


def _read_limited(path: Path, limit: int) -> bytes | None:
    """A regular file's bytes (symbolic links are not followed), or None when it is missing,
    something else, or larger than ``limit``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not (info.st_mode & 0o170000 == 0o100000) or info.st_size > limit:
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read(limit + 1)[:limit]
    except OSError:
        return None
    finally:
        os.close(fd)


def _parse_junit(data: bytes) -> list[Item]:
    items: list[Item] = []
    root = ET.fromstring(data)
    for case in root.iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        items.append(
            Item(
                props.get("role", "?"),
                props.get("exercise", ""),
                props.get("outcome"),
                props.get("ename", "") or "",
            )
        )
    return items


def prepare_folder(
    folder: Path, instructor: nbformat.NotebookNode, sources: dict[str, str], exercises: list[str]
) -> None:
    """Fill an empty grading folder: the reduced notebook, the checks module, the pytest plugin
    and config, util.py (the setup cell finds the project by it) and empty output folders.
    Nothing in it reveals an expected result or an instructor solution."""
    nb = nbtools.build_grading_notebook(instructor, sources, exercises)
    nbformat.write(nb, str(folder / "grading.ipynb"))
    (folder / "conftest.py").write_text(_CONFTEST_SOURCE, encoding="utf-8")
    (folder / "_grading_checks.py").write_text(_CHECKS_SOURCE, encoding="utf-8")
    (folder / "pytest.ini").write_text("[pytest]\njunit_family = xunit1\n", encoding="utf-8")
    if _UTIL_SOURCE:
        (folder / "util.py").write_text(_UTIL_SOURCE, encoding="utf-8")
    (folder / "_outputs").mkdir()
    (folder / "runtime").mkdir()


def _pytest_command(where: str, limits: Limits) -> list[str]:
    """``pytest --nbval-lax`` on the grading notebook, with the run folder seen as ``where``."""
    return [
        sys.executable,
        "-m",
        "pytest",
        "grading.ipynb",
        "-c",
        "pytest.ini",
        "--rootdir",
        where,
        "-p",
        "no:cacheprovider",
        "-q",
        "--tb=line",
        "--nbval-lax",
        "--nbval-current-env",
        f"--nbval-cell-timeout={limits.setup_timeout}",
        f"--nbval-kernel-startup-timeout={limits.startup_timeout}",
        f"--junitxml={where}/junit.xml",
    ]


def _command(
    setup: Setup,
    folder: Path,
    sources: dict[str, str] | None = None,
    exercises: list[str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The runner's command line and environment for one run folder.  With ``sources``, the
    folder is filled first (:func:`prepare_folder` for ``exercises``): after this module's own
    parts, before the sandbox's (:mod:`.isolation`, :mod:`.sandbox`), which the folder needs."""
    limits = setup.limits
    where = isolation.INSIDE if setup.library is not None else str(folder)
    pytest_cmd = _pytest_command(where, limits)
    run_env = _run_env(where, limits)
    host_env = _host_env(run_env) if setup.library is None else {}
    if sources is not None:
        prepare_folder(folder, setup.instructor, sources, list(exercises or sources))
    if setup.library is not None:
        uid = isolation.prepare_folder(folder, setup.library.parent / "home")
        env = isolation.inside_env(run_env)
        inner = isolation.wrap(pytest_cmd, folder, setup.library, env, uid, limits.max_procs)
        # the runner imports the tumorseg the grader imported, not an install found on its own
        # (an editable install of another checkout); bwrap clears the environment inside
        runner_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(isolation.package_dir().parent),
        }
    else:
        inner, runner_env = pytest_cmd, host_env
    log = folder.parent / f"{folder.name}.log"
    cmd = runner_command(inner, limits.total_timeout, limits.memory_mb, folder, log)
    return cmd, runner_env


def _collect(run: Run, folder: Path, log: Path) -> None:
    """Read what the run left in its folder (after every process of it is gone)."""
    data = _read_limited(folder / "junit.xml", MAX_JUNIT_BYTES)
    if data:
        try:
            run.items = _parse_junit(data)
            run.junit_found = True
        except ET.ParseError:
            run.junit_found = False
    progress = _read_limited(folder / "progress.log", 1024 * 1024) or b""
    for line in progress.decode("utf-8", "replace").splitlines():
        parts = line.split()
        run.progress.append((parts[0] if parts else "?", parts[1] if len(parts) > 1 else ""))
    for ex in run.exercises:
        raw = _read_limited(folder / "_outputs" / f"{ex}.json", MAX_RECORD_BYTES)
        if raw is not None:
            try:
                run.records[ex] = json.loads(raw)
            except (ValueError, RecursionError):
                run.records[ex] = None
    run.log = (_read_limited(log, 10 * 1024 * 1024) or b"")[-4000:].decode("utf-8", "replace")


def run_once(setup: Setup, sources: dict[str, str], exercises: list[str]) -> Run:
    """Stage 2: grade ``exercises`` of one submission in one kernel; see the module docstring."""
    run = Run(list(exercises))
    base = Path(tempfile.mkdtemp(prefix="tumorseg-grade-"))
    folder = base / "run"
    folder.mkdir()
    started = time.monotonic()
    try:
        cmd, env = _command(setup, folder, sources, exercises)
        proc = subprocess.Popen(
            cmd,
            cwd=str(base),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            run.status = proc.wait(timeout=setup.limits.total_timeout + 60)
        except subprocess.TimeoutExpired:
            proc.terminate()  # the runner kills its descendants on SIGTERM
            try:
                run.status = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                run.status = proc.wait()
        run.outer_timeout = run.status == 124
        _collect(run, folder, base / f"{folder.name}.log")
    finally:
        run.seconds = time.monotonic() - started
        if setup.keep is not None:
            shutil.copytree(
                base,
                setup.keep / f"run-{'-'.join(exercises)}-{time.time_ns()}",
                symlinks=True,
                dirs_exist_ok=True,
            )
        shutil.rmtree(base, ignore_errors=True)
    return run

"""``tumorseg grade``: grade student notebooks with nbval, in a sandbox and in parallel.

    tumorseg grade SUBMISSION.ipynb [MORE ...] --out DIR [--jobs N] [--fresh] [--no-sandbox]
                   [--library-answers keep|zero]

For each submission the grader

1. reads the file (size-limited) and finds the graded cells of the exercises of
   :data:`tumorseg.course.exercises.REGISTRY` by id, then by header line
   (:func:`.nbtools.read_submission`); a missing, duplicated or re-headed cell leaves that
   exercise ``missing``, an unreadable file leaves all of them ``error``;
2. splices only those cells' *source* into a reduced copy of the instructor notebook (prelude,
   ``setup`` cells, and per exercise a state marker, the student's cell and the graded check)
   in a fresh temporary folder holding instructor assets only;
3. runs ``pytest --nbval-lax --nbval-current-env`` there inside the bubblewrap sandbox of
   :mod:`.isolation` (no network, no view of the checkout, the solutions, the grades
   or the other runs; a process limit), under the runner of :mod:`.sandbox` (memory,
   CPU and file-size limits, every leftover process killed), with a per-role cell timeout and
   an outer timeout;
4. maps JUnit items to exercises through their ``role``/``exercise`` properties and scores an
   exercise ``passed`` only when nbval matched its verdict line *and* the grader's own
   comparison of the raw results (:mod:`.hidden.judge`, never inside the sandbox) passed;
5. regrades, in a fresh kernel, the exercises whose result may have been caused by another
   exercise (the kernel died or hung before them, or earlier student code patched numpy,
   builtins, Keras ... ); the first exercise of each run always has a clean kernel, so every
   run settles at least one exercise;
6. reads each graded cell's syntax tree and flags the exercises whose cell imports or calls the
   package's own implementation of that exercise (:mod:`.integrity`); the flag goes into the
   message, and ``--library-answers zero`` scores such exercises 0 (status ``flagged``).

Outputs: ``DIR/<name>.json`` (score, status, message and flags per exercise) and
``DIR/results.csv`` (submission, C1..C6 as 0/1, total, flags: the number of flagged cells,
sandbox; blank where a grader error left no score), merged by submission (:mod:`.results`).  The exit status is 1 when any grader-error occurred
(each is retried once first), 2 when the sandbox is unavailable, else 0.  The command line
is ``grade_main`` in :mod:`.cli`.
"""

from __future__ import annotations

import enum
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from tumorseg import resources
from tumorseg.atomic import write_text
from tumorseg.batch import Shard
from tumorseg.course.exercises import REGISTRY

from . import checks, integrity, isolation, nbtools, results
from .hidden.judge import judge_record
from .sandbox import runner_command

INSTRUCTOR = resources.instructor_notebook()


class Status(str, enum.Enum):
    """The status of one graded exercise (the value is what reports show)."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    TIMEOUT = "timeout"
    MISSING = "missing"
    GRADER_ERROR = "grader-error"
    #: it passed, but its cell uses the package's own implementation (``--library-answers zero``)
    FLAGGED = "flagged"


STATUSES = tuple(s.value for s in Status)
#: what ``--library-answers`` may say: keep the score of a flagged exercise, or score it 0
LIBRARY_ANSWERS = ("keep", "zero")
#: outcomes of an item that did not (reliably) run
NOT_RUN = {"after-timeout", "kernel-dead", "skipped", "setup-error", None}
TRUSTED = {"prelude", "setup", "pre"}
MAX_RECORD_BYTES = 5 * 1024 * 1024
MAX_JUNIT_BYTES = 50 * 1024 * 1024
MAX_RUNS = 8  # per submission; every run settles at least one exercise, so 7 suffice
NO_SANDBOX = "none (--no-sandbox)"
# read once: later runs use these texts even if a submission rewrites files on disk
_CHECKS_SOURCE = Path(checks.__file__).read_text(encoding="utf-8")
_CONFTEST_SOURCE = (Path(__file__).parent / "folder_conftest.py").read_text(encoding="utf-8")
_UTIL_SOURCE = resources.facade_source()


@dataclass
class Limits:
    """Time, memory and process limits of one grading run (seconds, MiB, processes)."""

    cell_timeout: float = 30.0
    setup_timeout: float = 240.0
    startup_timeout: float = 90.0
    total_timeout: float = 600.0
    memory_mb: int = 6144
    max_procs: int = isolation.DEFAULT_MAX_PROCS


@dataclass(frozen=True)
class Result:
    """The final grade of one exercise; ``flags`` lists where its cell uses the package's own
    implementation of the exercise (:class:`.integrity.Use`, as text)."""

    status: Status
    message: str
    flags: tuple[str, ...] = ()

    @property
    def score(self) -> int | None:
        """1 passed, 0 otherwise; None for a grader error (not a zero)."""
        return None if self.status is Status.GRADER_ERROR else int(self.status is Status.PASSED)


@dataclass(frozen=True)
class Regrade:
    """The exercise's result in this run may have been caused by earlier code: grade it again
    in a fresh kernel."""


@dataclass(frozen=True)
class RunBroken:
    """The run broke before any student code ran (kernel start or a setup cell failed)."""


Outcome = Result | Regrade | RunBroken


@dataclass
class Item:
    role: str
    exercise: str
    outcome: str | None
    ename: str = ""


@dataclass
class Run:
    """What one grading run left behind, read after all its processes were killed."""

    exercises: list[str]
    items: list[Item] = field(default_factory=list)
    records: dict[str, Any] = field(default_factory=dict)
    junit_found: bool = False
    outer_timeout: bool = False
    progress: list[tuple[str, str]] = field(default_factory=list)  # (role, exercise) started
    status: int = 0
    seconds: float = 0.0
    log: str = ""

    def item(self, role: str, exercise: str) -> Item | None:
        for it in self.items:
            if it.role == role and it.exercise == exercise:
                return it
        return None

    def index(self, role: str, exercise: str) -> int:
        for i, it in enumerate(self.items):
            if it.role == role and it.exercise == exercise:
                return i
        return len(self.items)


@dataclass
class Setup:
    """What every grading run of a batch shares.

    ``library`` is the filtered copy of the package mounted in the sandbox
    (:func:`isolation.prepare_library`), with the template home of :func:`isolation.seed_home`
    beside it; None grades without a sandbox (``--no-sandbox``)."""

    instructor: nbformat.NotebookNode
    limits: Limits = field(default_factory=Limits)
    library: Path | None = None
    keep: Path | None = None
    library_answers: str = "keep"

    @property
    def sandboxed(self) -> bool:
        return self.library is not None


# --------------------------------------------------------------------------- one run
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


def _command(setup: Setup, folder: Path) -> tuple[list[str], dict[str, str]]:
    """The runner's command line and environment for one prepared run folder."""
    limits = setup.limits
    where = isolation.INSIDE if setup.sandboxed else str(folder)
    pytest_cmd = [
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
    if setup.library is not None:
        uid = isolation.prepare_folder(folder, setup.library.parent / "home")
        env = isolation.inside_env(_run_env(where, limits))
        inner = isolation.wrap(pytest_cmd, folder, setup.library, env, uid, limits.max_procs)
        # the runner imports the tumorseg the grader imported, not an install found on its own
        # (an editable install of another checkout); bwrap clears the environment inside
        runner_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(isolation.package_dir().parent),
        }
    else:
        inner, runner_env = pytest_cmd, _host_env(_run_env(where, limits))
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
    """Grade ``exercises`` of one submission in one kernel; see the module docstring."""
    run = Run(list(exercises))
    base = Path(tempfile.mkdtemp(prefix="tumorseg-grade-"))
    folder = base / "run"
    folder.mkdir()
    started = time.monotonic()
    try:
        prepare_folder(folder, setup.instructor, sources, exercises)
        cmd, env = _command(setup, folder)
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


# --------------------------------------------------------------------------- judging
def _contaminated_before(run: Run, exercise: str) -> bool:
    """Could an earlier exercise of this run have caused ``exercise``'s failure?"""
    position = run.index("student", exercise)
    first_student = min(
        (i for i, it in enumerate(run.items) if it.role == "student"), default=position
    )
    for i, it in enumerate(run.items[:position]):
        if it.role == "student" and it.exercise != exercise:
            record = run.records.get(it.exercise)
            if not isinstance(record, dict) or record.get("changed") is not False:
                return True
        if it.role in TRUSTED and i > first_student and it.outcome != "ok":
            return True
    return False


def _judge_killed(run: Run, exercise: str, clean: bool, limits: Limits) -> Outcome:
    """pytest itself was killed (no JUnit report): blame the cell that was running."""
    role, culprit = run.progress[-1] if run.progress else ("", "")
    if role in ("student", "check"):
        if culprit != exercise:
            return Regrade()
        if run.outer_timeout:
            return Result(
                Status.TIMEOUT,
                f"Grading UNQ_{exercise} took longer than the total "
                f"limit of {limits.total_timeout:.0f} s.",
            )
        return Result(
            Status.ERROR, f"The grading process was killed while your UNQ_{exercise} code ran."
        )
    if not any(r == "student" for r, _ in run.progress):
        return RunBroken() if clean else Regrade()
    return Regrade()


def _judge_items(
    run: Run, exercise: str, student: Item, check: Item | None, limits: Limits
) -> Result | None:
    """The result from the student's cell and the graded check; None: the check did not run."""
    fn = REGISTRY[exercise].function
    record = run.records.get(exercise)
    if student.outcome == "timeout":
        return Result(
            Status.TIMEOUT,
            f"Your UNQ_{exercise} cell did not finish within {limits.cell_timeout:.0f} s.",
        )
    if student.outcome == "kernel-died":
        return Result(
            Status.ERROR,
            f"The Python kernel died while your UNQ_{exercise} cell ran "
            "(os._exit, a crash, or more memory than the limit).",
        )
    if check is None or check.outcome in NOT_RUN:
        return None
    if check.outcome == "timeout":
        return Result(
            Status.TIMEOUT,
            f"`{fn}` did not return within {limits.cell_timeout:.0f} s "
            "on the hidden checks (an endless loop?).",
        )
    if check.outcome == "kernel-died":
        return Result(
            Status.ERROR,
            f"The Python kernel died while the hidden checks ran `{fn}` "
            "(os._exit, a crash, or more memory than the limit).",
        )
    if (
        isinstance(record, dict)
        and record.get("defined") is False
        and student.outcome == "exception"
    ):
        return Result(
            Status.ERROR,
            f"Your UNQ_{exercise} cell raised "
            f"{student.ename or 'an exception'}, so `{fn}` was not defined.",
        )
    if record is not None:
        status, message = judge_record(exercise, record)
        if status == "passed" and check.outcome != "ok":
            status, message = (
                "failed",
                (
                    f"`{fn}` returned the right results, but the graded check's output was altered "
                    "(printing around the grader or patching output functions is not allowed)."
                ),
            )
        return Result(Status(status), message)
    if student.outcome == "exception":
        return Result(
            Status.ERROR, f"Your UNQ_{exercise} cell raised {student.ename or 'an exception'}."
        )
    return Result(
        Status.FAILED,
        "The graded check could not run on your code (did your cell "
        "change or remove the grader's objects?).",
    )


def judge(run: Run, exercise: str, clean: bool, limits: Limits) -> Outcome:
    """The outcome of one exercise in one run.

    ``clean`` means no student code ran before this exercise's cell in this run; then the
    outcome is never :class:`Regrade` (but :class:`RunBroken` when the run broke before any
    student code)."""
    if not run.junit_found:
        return _judge_killed(run, exercise, clean, limits)
    position = run.index("student", exercise)
    for it in run.items[:position]:
        if it.role in TRUSTED and it.outcome != "ok" and (clean or it.role == "prelude"):
            return RunBroken() if clean else Regrade()
    student, check = run.item("student", exercise), run.item("check", exercise)
    if student is not None and student.outcome == "skipped":  # the student's own NBVAL_SKIP
        student.outcome = "ok"
    if student is None or student.outcome in NOT_RUN:
        return RunBroken() if clean else Regrade()
    result = _judge_items(run, exercise, student, check, limits)
    if result is None:
        if not clean:
            return Regrade()
        result = Result(
            Status.ERROR,
            f"The kernel stopped after your UNQ_{exercise} cell ran, "
            "before the graded check could run.",
        )
    # a crash or a hang can be set off by any earlier code (threads, timers): regrade alone
    crashed = {student.outcome, check.outcome if check else None} & {"timeout", "kernel-died"}
    if (
        result.status is not Status.PASSED
        and not clean
        and (crashed or _contaminated_before(run, exercise))
    ):
        return Regrade()
    return result


# --------------------------------------------------------------------------- one submission
@dataclass
class Graded:
    name: str
    results: dict[str, Result]
    seconds: float
    runs: int

    @property
    def grader_error(self) -> bool:
        return any(r.status is Status.GRADER_ERROR for r in self.results.values())

    @property
    def total(self) -> int | None:
        """The points of this submission; None when a grader error left an exercise unscored."""
        scores = [r.score for r in self.results.values()]
        return None if None in scores else sum(s for s in scores if s is not None)

    @property
    def flags(self) -> int:
        """How many graded cells use the package's own implementation of their exercise."""
        return sum(bool(r.flags) for r in self.results.values())


def flag_library_answers(
    result: Result, exercise: str, source: str, policy: str = "keep"
) -> Result:
    """``result`` with the integrity flags of the exercise's cell ``source`` (:mod:`.integrity`):
    the uses go into the message and :attr:`Result.flags`; with ``policy`` ``"zero"`` a passed
    exercise becomes :attr:`Status.FLAGGED` (0 points).  Unflagged results come back as they are."""
    ex = REGISTRY[exercise]
    uses = integrity.library_uses(source, ex)
    if not uses:
        return result
    status, message = result.status, f"{result.message}\n{integrity.flag_message(ex, uses)}"
    if policy == "zero" and status is Status.PASSED:
        status = Status.FLAGGED
        message += " This course scores such answers 0 (--library-answers zero)."
    return Result(status, message, tuple(str(u) for u in uses))


def grade_submission(
    path: Path, setup: Setup, max_bytes: int = nbtools.DEFAULT_MAX_BYTES, log: Any = None
) -> Graded:
    """Grade one notebook; never raises for anything inside the submission."""
    started = time.monotonic()
    sub = nbtools.read_submission(path, max_bytes)
    results: dict[str, Result] = {}
    runs = 0
    if sub.fatal:
        results = {ex: Result(Status.ERROR, sub.fatal) for ex in REGISTRY}
        return Graded(path.name, results, time.monotonic() - started, 0)
    for ex, problem in sub.problems.items():
        results[ex] = Result(Status.MISSING, problem)
    pending = [ex for ex in REGISTRY if ex in sub.sources]
    isolate, grader_failures = False, 0
    while pending:
        batch = pending[:1] if isolate else list(pending)
        run = run_once(setup, sub.sources, batch)
        runs += 1
        settled = 0
        broken = False
        for i, ex in enumerate(batch):
            outcome = judge(run, ex, clean=(i == 0), limits=setup.limits)
            if isinstance(outcome, RunBroken):
                broken = True
                break
            if isinstance(outcome, Regrade) and (len(batch) == 1 or runs >= MAX_RUNS):
                outcome = Result(
                    Status.ERROR, f"The grading run failed after your UNQ_{ex} cell ran."
                )
            if isinstance(outcome, Result):
                results[ex] = outcome
                settled += 1
        if broken:
            grader_failures += 1
            if log is not None:
                print(
                    f"[grade] {path.name}: grading run broke before student code "
                    f"(status {run.status}); log tail:\n{run.log[-1500:]}",
                    file=log,
                )
            if grader_failures >= 2:
                for ex in pending:
                    if ex not in results:
                        results[ex] = Result(
                            Status.GRADER_ERROR,
                            "The grader could not run this "
                            "exercise (kernel or setup failure, retried once); "
                            "the instructor has been told. This is not a zero.",
                        )
        pending = [ex for ex in pending if ex not in results]
        isolate = settled == 0 and not broken
    final = {
        ex: flag_library_answers(results[ex], ex, sub.sources.get(ex, ""), setup.library_answers)
        for ex in REGISTRY
    }
    return Graded(path.name, final, time.monotonic() - started, runs)


# --------------------------------------------------------------------------- batch + CLI
def _report_names(paths: list[Path]) -> list[str]:
    names, seen = [], {}
    for p in paths:
        stem = p.stem or "submission"
        count = seen.get(stem, 0)
        seen[stem] = count + 1
        names.append(stem if count == 0 else f"{stem}-{count + 1}")
    return names


def _report(g: Graded, path: Path, sandbox: str) -> dict[str, Any]:
    return {
        "submission": path.name,
        "total": g.total,
        "max": len(REGISTRY),
        "flags": g.flags,
        "sandbox": sandbox,
        "exercises": {
            ex: {
                "score": r.score,
                "status": r.status.value,
                "message": r.message,
                "flags": list(r.flags),
            }
            for ex, r in g.results.items()
        },
        "seconds": round(g.seconds, 1),
    }


def _row(g: Graded, sandbox: str) -> dict[str, str]:
    def cell(value: int | None) -> str:
        return "" if value is None else str(value)

    return {
        **{ex: cell(g.results[ex].score) for ex in REGISTRY},
        "total": cell(g.total),
        "flags": str(g.flags),
        "sandbox": sandbox,
    }


def grade_batch(
    paths: list[Path],
    out: Path,
    jobs: int = 2,
    limits: Limits | None = None,
    instructor_path: Path = INSTRUCTOR,
    keep: Path | None = None,
    progress: bool = True,
    sandbox: bool = True,
    fresh: bool = False,
    library_answers: str = "keep",
    shard: Shard | None = None,
) -> list[Graded]:
    """Grade many notebooks (``jobs`` at a time); write one JSON report each and merge their
    rows into ``out/results.csv`` as each one finishes.  ``library_answers`` (one of
    :data:`LIBRARY_ANSWERS`) says how exercises flagged by :mod:`.integrity` score.
    ``shard`` (``tumorseg.batch.Shard``): grade only that share of ``paths``, keyed by their
    ``results.csv`` names, which are chosen over all of ``paths`` (so every shard names a
    submission as one unsharded run does).  Returns the graded ones, in the order of ``paths``.

    Raises :class:`isolation.SandboxUnavailable` when ``sandbox`` is asked for but cannot run,
    and :class:`results.ResultsFileError` when ``out`` holds a results.csv of another kind."""
    limits = limits or Limits()
    if sandbox:
        isolation.check_available()
    instructor = nbtools.read_instructor(instructor_path)  # also computes the expected results
    out.mkdir(parents=True, exist_ok=True)
    if fresh:
        results.start_fresh(out)
    else:
        results.read_rows(out)  # refuse a foreign results.csv before grading anything
    names = _report_names(paths)
    keys = [f"{name}{path.suffix or '.ipynb'}" for name, path in zip(names, paths)]
    chosen = sorted((shard or Shard()).positions(keys))
    label = "bubblewrap" if sandbox else NO_SANDBOX
    graded: list[Graded | None] = [None] * len(paths)
    lock = threading.Lock()
    with tempfile.TemporaryDirectory(prefix="tumorseg-lib-") as lib:
        if sandbox:
            isolation.seed_home(Path(lib) / "home")
        setup = Setup(
            instructor,
            limits,
            keep=keep,
            library=(isolation.prepare_library(Path(lib) / "tumorseg") if sandbox else None),
            library_answers=library_answers,
        )
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(chosen), desc="grading", unit="nb", disable=not progress)
        except ImportError:  # pragma: no cover
            bar = None

        def work(index: int) -> None:
            g = grade_submission(paths[index], setup, log=sys.stderr)
            write_text(
                out / f"{names[index]}.json",
                json.dumps(_report(g, paths[index], label), indent=2) + "\n",
            )
            results.merge(out, {keys[index]: _row(g, label)})
            with lock:
                graded[index] = g
                if bar is not None:
                    bar.update(1)

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for future in [pool.submit(work, i) for i in chosen]:
                future.result()
        if bar is not None:
            bar.close()
    return [g for g in graded if g is not None]

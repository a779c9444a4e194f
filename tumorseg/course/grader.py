"""``tumorseg grade``: grade student notebooks with nbval, safely and in parallel.

    tumorseg grade SUBMISSION.ipynb [MORE ...] --out DIR [--jobs N]

For each submission the grader

1. reads the file (size-limited) and finds the six graded cells by id, then by header line
   (:func:`nbtools.read_submission`); a missing, duplicated or re-headed cell leaves that
   exercise ``missing``, an unreadable file leaves all six ``error``;
2. splices only those cells' *source* into a reduced copy of the instructor notebook (prelude,
   ``setup`` cells, and per exercise a state marker, the student's cell and the graded check)
   in a fresh temporary folder holding instructor assets only;
3. runs ``pytest --nbval-lax --nbval-current-env`` there through :mod:`.grading.sandbox`
   (own session, memory/CPU/file-size limits, every leftover process killed), with a per-role
   cell timeout and an outer timeout;
4. maps JUnit items to exercises through their ``role``/``exercise`` properties and scores an
   exercise ``passed`` only when nbval matched its verdict line *and* the grader's own
   comparison of the raw results (:mod:`.grading.reference`) passed;
5. regrades, in a fresh kernel, the exercises whose result may have been caused by another
   exercise (the kernel died or hung before them, or earlier student code patched numpy,
   builtins, Keras ... ); the first exercise of each run always has a clean kernel, so every
   run settles at least one exercise.

Outputs: ``DIR/results.csv`` (submission, C1..C6 as 0/1, total; blank where a grader error
left no score) and ``DIR/<name>.json`` (score, status, message per exercise).  Statuses:
passed, failed, error, timeout, missing, grader-error.  The exit status is 1 when any
grader-error occurred (each is retried once first), else 0.
"""

from __future__ import annotations

import argparse
import csv
import io
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

from .grading import checks, nbtools, reference

INSTRUCTOR = resources.instructor_notebook()
STATUSES = ("passed", "failed", "error", "timeout", "missing", "grader-error")
#: outcomes of an item that did not (reliably) run
NOT_RUN = {"after-timeout", "kernel-dead", "skipped", "setup-error", None}
TRUSTED = {"prelude", "setup", "pre"}
MAX_RECORD_BYTES = 5 * 1024 * 1024
MAX_JUNIT_BYTES = 50 * 1024 * 1024
MAX_RUNS = 8  # per submission; every run settles at least one exercise, so 7 suffice
# read once: later runs use these texts even if a submission rewrites files on disk
_CHECKS_SOURCE = Path(checks.__file__).read_text(encoding="utf-8")
_CONFTEST_SOURCE = (Path(__file__).parent / "grading" / "folder_conftest.py").read_text(encoding="utf-8")
_UTIL_SOURCE = resources.facade_source()


@dataclass
class Limits:
    """Time and memory limits of one grading run (seconds, MiB)."""

    cell_timeout: float = 30.0
    setup_timeout: float = 240.0
    startup_timeout: float = 90.0
    total_timeout: float = 600.0
    memory_mb: int = 6144


@dataclass
class Result:
    status: str
    message: str

    @property
    def score(self) -> int:
        return int(self.status == "passed")


GRADER = Result("grader-error", "")  # sentinel: the run broke before any student code ran


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


# --------------------------------------------------------------------------- one run
def _clean_env(folder: Path, limits: Limits) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST", "TUMORSEG_GRADE", "JPY_", "JUPYTER_"))}
    env.update({
        "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow", "PYTHONHASHSEED": "0",
        "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1", "CUDA_VISIBLE_DEVICES": "",
        "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1",
        "JUPYTER_RUNTIME_DIR": str(folder / "runtime"),
        checks.OUTPUT_ENV: str(folder / "_outputs"),
        "TUMORSEG_GRADE_CONF": json.dumps({"timeouts": {
            "prelude": limits.setup_timeout, "setup": limits.setup_timeout, "pre": limits.setup_timeout,
            "student": limits.cell_timeout, "check": limits.cell_timeout}}),
    })
    return env


def _read_limited(path: Path, limit: int) -> bytes | None:
    try:
        if not path.is_file() or path.stat().st_size > limit:
            return None
        return path.read_bytes()
    except OSError:
        return None


def _parse_junit(data: bytes) -> list[Item]:
    items: list[Item] = []
    root = ET.fromstring(data)
    for case in root.iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        items.append(Item(props.get("role", "?"), props.get("exercise", ""),
                          props.get("outcome"), props.get("ename", "") or ""))
    return items


def prepare_folder(folder: Path, instructor: nbformat.NotebookNode, sources: dict[str, str],
                   exercises: list[str]) -> None:
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


def run_once(instructor: nbformat.NotebookNode, sources: dict[str, str], exercises: list[str],
             limits: Limits, keep: Path | None = None) -> Run:
    """Grade ``exercises`` of one submission in one kernel; see the module docstring."""
    run = Run(list(exercises))
    folder = Path(tempfile.mkdtemp(prefix="tumorseg-grade-"))
    started = time.monotonic()
    try:
        prepare_folder(folder, instructor, sources, exercises)
        junit = folder / "junit.xml"
        log = folder / "sandbox.log"
        cmd = [
            sys.executable, "-m", "tumorseg.course.grading.sandbox",
            "--timeout", str(limits.total_timeout), "--memory-mb", str(limits.memory_mb),
            "--cwd", str(folder), "--log", str(log), "--",
            sys.executable, "-m", "pytest", "grading.ipynb", "-c", "pytest.ini",
            "--rootdir", str(folder), "-p", "no:cacheprovider", "-q", "--tb=line",
            "--nbval-lax", "--nbval-current-env",
            f"--nbval-cell-timeout={limits.setup_timeout}",
            f"--nbval-kernel-startup-timeout={limits.startup_timeout}",
            f"--junitxml={junit}",
        ]
        proc = subprocess.Popen(cmd, cwd=str(folder), env=_clean_env(folder, limits),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            run.status = proc.wait(timeout=limits.total_timeout + 60)
        except subprocess.TimeoutExpired:
            proc.terminate()  # the sandbox kills its descendants on SIGTERM
            try:
                run.status = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                run.status = proc.wait()
        run.outer_timeout = run.status == 124
        data = _read_limited(junit, MAX_JUNIT_BYTES)
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
        for ex in exercises:
            raw = _read_limited(folder / "_outputs" / f"{ex}.json", MAX_RECORD_BYTES)
            if raw is not None:
                try:
                    run.records[ex] = json.loads(raw)
                except (ValueError, RecursionError):
                    run.records[ex] = None
        run.log = (_read_limited(log, 10 * 1024 * 1024) or b"")[-4000:].decode("utf-8", "replace")
    finally:
        run.seconds = time.monotonic() - started
        if keep is not None:
            shutil.copytree(folder, keep / f"run-{'-'.join(exercises)}-{int(time.time() * 1000)}",
                            dirs_exist_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
    return run


# --------------------------------------------------------------------------- judging
def _contaminated_before(run: Run, exercise: str) -> bool:
    """Could an earlier exercise of this run have caused ``exercise``'s failure?"""
    position = run.index("student", exercise)
    first_student = min((i for i, it in enumerate(run.items) if it.role == "student"),
                        default=position)
    for i, it in enumerate(run.items[:position]):
        if it.role == "student" and it.exercise != exercise:
            record = run.records.get(it.exercise)
            if not isinstance(record, dict) or record.get("changed") is not False:
                return True
        if it.role in TRUSTED and i > first_student and it.outcome != "ok":
            return True
    return False


def judge(run: Run, exercise: str, clean: bool, limits: Limits) -> Result | None:
    """The result of one exercise in one run, or None when it must be regraded elsewhere.

    ``clean`` means no student code ran before this exercise's cell in this run; then the
    answer is never None (but may be :data:`GRADER` when the run broke before student code)."""
    fn = checks.FUNCTIONS[exercise]
    if not run.junit_found:  # pytest itself was killed: blame the cell that was running
        role, culprit = run.progress[-1] if run.progress else ("", "")
        if role in ("student", "check"):
            if culprit != exercise:
                return None
            if run.outer_timeout:
                return Result("timeout", f"Grading UNQ_{exercise} took longer than the total "
                                         f"limit of {limits.total_timeout:.0f} s.")
            return Result("error", f"The grading process was killed while your UNQ_{exercise} "
                                   "code ran.")
        if not any(r == "student" for r, _ in run.progress):
            return GRADER if clean else None
        return None
    position = run.index("student", exercise)
    for it in run.items[:position]:
        if it.role in TRUSTED and it.outcome != "ok" and (clean or it.role == "prelude"):
            return GRADER if clean else None
    student, check = run.item("student", exercise), run.item("check", exercise)
    record = run.records.get(exercise)
    if student is not None and student.outcome == "skipped":  # the student's own NBVAL_SKIP
        student.outcome = "ok"
    if student is None or student.outcome in NOT_RUN:
        return GRADER if clean else None
    # a crash or a hang can be set off by any earlier code (threads, timers): regrade alone
    crashed = {student.outcome, check.outcome if check else None} & {"timeout", "kernel-died"}
    if student.outcome == "timeout":
        result = Result("timeout", f"Your UNQ_{exercise} cell did not finish within "
                                   f"{limits.cell_timeout:.0f} s.")
    elif student.outcome == "kernel-died":
        result = Result("error", f"The Python kernel died while your UNQ_{exercise} cell ran "
                                 "(os._exit, a crash, or more memory than the limit).")
    elif check is None or check.outcome in NOT_RUN:
        if not clean:
            return None
        result = Result("error", f"The kernel stopped after your UNQ_{exercise} cell ran, before "
                                 "the graded check could run.")
    elif check.outcome == "timeout":
        result = Result("timeout", f"`{fn}` did not return within {limits.cell_timeout:.0f} s on "
                                   "the hidden checks (an endless loop?).")
    elif check.outcome == "kernel-died":
        result = Result("error", f"The Python kernel died while the hidden checks ran `{fn}` "
                                 "(os._exit, a crash, or more memory than the limit).")
    elif record is not None and isinstance(record, dict) and record.get("defined") is False \
            and student.outcome == "exception":
        result = Result("error", f"Your UNQ_{exercise} cell raised {student.ename or 'an exception'}, "
                                 f"so `{fn}` was not defined.")
    elif record is not None:
        status, message = reference.judge_record(exercise, record)
        if status == "passed" and check.outcome != "ok":
            status, message = "failed", (
                f"`{fn}` returned the right results, but the graded check's output was altered "
                "(printing around the grader or patching output functions is not allowed).")
        result = Result(status, message)
    elif student.outcome == "exception":
        result = Result("error", f"Your UNQ_{exercise} cell raised {student.ename or 'an exception'}.")
    else:
        result = Result("failed", "The graded check could not run on your code (did your cell "
                                  "change or remove the grader's objects?).")
    if result.status != "passed" and not clean and (crashed or _contaminated_before(run, exercise)):
        return None
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
        return any(r.status == "grader-error" for r in self.results.values())


def grade_submission(path: Path, instructor: nbformat.NotebookNode, limits: Limits,
                     max_bytes: int = nbtools.DEFAULT_MAX_BYTES, keep: Path | None = None,
                     log: Any = None) -> Graded:
    """Grade one notebook; never raises for anything inside the submission."""
    started = time.monotonic()
    sub = nbtools.read_submission(path, max_bytes)
    results: dict[str, Result] = {}
    runs = 0
    if sub.fatal:
        results = {ex: Result("error", sub.fatal) for ex in checks.EXERCISES}
        return Graded(path.name, results, time.monotonic() - started, 0)
    for ex, problem in sub.problems.items():
        results[ex] = Result("missing", problem)
    pending = [ex for ex in checks.EXERCISES if ex in sub.sources]
    isolate, grader_failures = False, 0
    while pending:
        batch = pending[:1] if isolate else list(pending)
        run = run_once(instructor, sub.sources, batch, limits, keep)
        runs += 1
        settled = 0
        broken = False
        for i, ex in enumerate(batch):
            result = judge(run, ex, clean=(i == 0), limits=limits)
            if result is GRADER:
                broken = True
                break
            if result is None and (len(batch) == 1 or runs >= MAX_RUNS):
                result = Result("error", f"The grading run failed after your UNQ_{ex} cell ran.")
            if result is not None:
                results[ex] = result
                settled += 1
        if broken:
            grader_failures += 1
            if log is not None:
                print(f"[grade] {path.name}: grading run broke before student code "
                      f"(status {run.status}); log tail:\n{run.log[-1500:]}", file=log)
            if grader_failures >= 2:
                for ex in pending:
                    if ex not in results:
                        results[ex] = Result("grader-error", "The grader could not run this exercise "
                                             "(kernel or setup failure, retried once); the "
                                             "instructor has been told. This is not a zero.")
        pending = [ex for ex in pending if ex not in results]
        isolate = settled == 0 and not broken
    return Graded(path.name, {ex: results[ex] for ex in checks.EXERCISES},
                  time.monotonic() - started, runs)


# --------------------------------------------------------------------------- batch + CLI
def _report_names(paths: list[Path]) -> list[str]:
    names, seen = [], {}
    for p in paths:
        stem = p.stem or "submission"
        count = seen.get(stem, 0)
        seen[stem] = count + 1
        names.append(stem if count == 0 else f"{stem}-{count + 1}")
    return names


def grade_batch(paths: list[Path], out: Path, jobs: int = 2, limits: Limits | None = None,
                instructor_path: Path = INSTRUCTOR, keep: Path | None = None,
                progress: bool = True) -> list[Graded]:
    """Grade many notebooks (``jobs`` at a time) and write results.csv and one JSON each."""
    limits = limits or Limits()
    instructor = nbtools.read_instructor(instructor_path)  # also computes the expected results
    out.mkdir(parents=True, exist_ok=True)
    names = _report_names(paths)
    lock = threading.Lock()
    graded: list[Graded | None] = [None] * len(paths)
    try:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(paths), desc="grading", unit="nb", disable=not progress)
    except ImportError:  # pragma: no cover
        bar = None

    def work(index: int) -> None:
        g = grade_submission(paths[index], instructor, limits, keep=keep, log=sys.stderr)
        g.name = paths[index].name
        record = {
            "submission": paths[index].name,
            "total": None if g.grader_error else sum(r.score for r in g.results.values()),
            "max": len(checks.EXERCISES),
            "exercises": {ex: {"score": None if r.status == "grader-error" else r.score,
                               "status": r.status, "message": r.message}
                          for ex, r in g.results.items()},
            "seconds": round(g.seconds, 1),
        }
        write_text(out / f"{names[index]}.json", json.dumps(record, indent=2) + "\n")
        with lock:
            graded[index] = g
            if bar is not None:
                bar.update(1)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for future in [pool.submit(work, i) for i in range(len(paths))]:
            future.result()
    if bar is not None:
        bar.close()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["submission", *checks.EXERCISES, "total"])
    for g in graded:
        assert g is not None
        cells = ["" if g.results[ex].status == "grader-error" else g.results[ex].score
                 for ex in checks.EXERCISES]
        total = "" if g.grader_error else sum(r.score for r in g.results.values())
        writer.writerow([g.name, *cells, total])
    write_text(out / "results.csv", buffer.getvalue())
    return [g for g in graded if g is not None]


def _expand(inputs: list[str]) -> list[Path]:
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            paths.extend(sorted(q for q in p.glob("*.ipynb") if q.is_file()))
        else:
            paths.append(p)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tumorseg grade",
        description="Autograde student notebooks (six UNQ_Cn exercises) with nbval and hidden checks.")
    parser.add_argument("submissions", nargs="+", help="notebooks, or folders of .ipynb files")
    parser.add_argument("--out", required=True, type=Path, help="folder for results.csv and <name>.json")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks graded at once (default 2)")
    parser.add_argument("--source", "--instructor", dest="instructor", type=Path, default=INSTRUCTOR,
                        help="instructor notebook with the expected outputs and checks "
                        "(default: the one shipped in the package)")
    parser.add_argument("--cell-timeout", type=float, default=Limits.cell_timeout,
                        help="seconds for a student cell and for a graded check (default 30)")
    parser.add_argument("--total-timeout", type=float, default=Limits.total_timeout,
                        help="seconds for one whole grading run (default 600)")
    parser.add_argument("--memory-mb", type=int, default=Limits.memory_mb,
                        help="address-space limit of the kernel in MiB (default 6144)")
    parser.add_argument("--keep", type=Path, help="copy every grading folder here (debugging)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    paths = _expand(args.submissions)
    missing = [p for p in paths if not p.exists()]
    if not paths or missing:
        parser.error(f"no such submission: {missing[0] if missing else args.submissions[0]}")
    if not args.instructor.is_file():
        parser.error(f"instructor notebook not found: {args.instructor}")
    limits = Limits(cell_timeout=args.cell_timeout, total_timeout=args.total_timeout,
                    memory_mb=args.memory_mb)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    graded = grade_batch(paths, args.out, args.jobs, limits, args.instructor, args.keep,
                         progress=not args.quiet)
    for g in graded:
        line = " ".join(f"{ex}:{g.results[ex].status}" for ex in checks.EXERCISES)
        total = "?" if g.grader_error else sum(r.score for r in g.results.values())
        print(f"{g.name}: {total}/6 in {g.seconds:.0f} s ({g.runs} run(s))  {line}")
    errors = sum(g.grader_error for g in graded)
    if errors:
        print(f"{errors} submission(s) had grader errors: regrade them (see messages above).",
              file=sys.stderr)
    print(f"results: {args.out / 'results.csv'}")
    return 1 if errors else 0

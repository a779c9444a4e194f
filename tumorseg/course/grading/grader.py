"""``tumorseg grade``: grade student notebooks with nbval, in a sandbox and in parallel.

    tumorseg grade SUBMISSION.ipynb [MORE ...] --out DIR [--jobs N] [--fresh] [--no-sandbox]
                   [--library-answers keep|zero]

The orchestrator: each submission flows one way through stages that each take the previous
stage's record and return the next; no stage imports this module or a later stage.

1. read the submission (:func:`.nbtools.read_submission`): the graded cells of the exercises of
   :data:`tumorseg.course.exercises.REGISTRY`, found by id, then by header line; a missing,
   duplicated or re-headed cell leaves that exercise ``missing``, an unreadable file leaves all
   of them ``error``;
2. build and run the grading notebook in the sandbox (:mod:`.running`): only those cells'
   *source*, spliced into a reduced copy of the instructor notebook, run by
   ``pytest --nbval-lax`` inside bubblewrap (:mod:`.isolation`) under the runner of
   :mod:`.sandbox` (memory, CPU and file-size limits, every leftover process killed); returns a
   :class:`.records.Run`;
3. judge each exercise (:mod:`.judging`) from that Run alone: ``passed`` only when nbval matched
   its verdict line *and* the grader's own comparison of the raw results passed; exercises whose
   result earlier code may have caused are run again (stage 2) in a fresh kernel;
4. flag library answers (:mod:`.flagging`): a graded cell that imports or calls the package's
   own implementation of its exercise is flagged, and ``--library-answers zero`` scores it 0;
5. write the records (:mod:`.reports`): ``DIR/<name>.json`` (score, status, message and flags
   per exercise), the student's feedback page ``DIR/<name>.html`` (:mod:`.pages`) and the row
   of ``DIR/results.csv`` (submission, C1..C6 as 0/1, total, flags, sandbox; blank where a
   grader error left no score), merged by submission (:mod:`.results`).

Once the batch is done, ``DIR/summary.csv`` and ``DIR/summary.html`` summarise every report in
DIR (:func:`.pages.write_summary`).  The exit status is 1 when any grader-error occurred (each
is retried once first), 2 when the sandbox is unavailable, else 0.  The command line is
``grade_main`` in :mod:`.cli`.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tumorseg.batch import Shard
from tumorseg.course.exercises import REGISTRY

from . import isolation, nbtools, pages, reports, results
from .flagging import flag_library_answers
from .judging import judge
from .records import (
    INSTRUCTOR,
    LIBRARY_ANSWERS,
    MAX_RUNS,
    NO_SANDBOX,
    NOT_RUN,
    STATUSES,
    Graded,
    Item,
    Limits,
    Outcome,
    Regrade,
    Result,
    Run,
    RunBroken,
    Setup,
    Status,
)
from .running import prepare_folder, run_once

#: the message of an exercise whose runs broke twice before any student code ran
GRADER_ERROR_MESSAGE = (
    "The grader could not run this exercise (kernel or setup failure, retried once); "
    "the instructor has been told. This is not a zero."
)

__all__ = [
    "INSTRUCTOR",
    "LIBRARY_ANSWERS",
    "NO_SANDBOX",
    "NOT_RUN",
    "STATUSES",
    "Graded",
    "Item",
    "Limits",
    "Outcome",
    "Regrade",
    "Result",
    "Run",
    "RunBroken",
    "Setup",
    "Status",
    "flag_library_answers",
    "grade_batch",
    "grade_submission",
    "judge",
    "prepare_folder",
    "run_once",
]


def _run_and_judge(
    path: Path, setup: Setup, sources: dict[str, str], pending: list[str], log: Any
) -> tuple[dict[str, Result], int]:
    """Stages 2 and 3 until every exercise of ``pending`` is settled: run them in one kernel
    (:func:`.running.run_once`), judge each (:func:`.judging.judge`), and run again, in a
    fresh kernel, those the judge sent back; returns the results and the number of runs."""
    results: dict[str, Result] = {}
    runs, isolate, grader_failures = 0, False, 0
    while pending:
        batch = pending[:1] if isolate else list(pending)
        run = run_once(setup, sources, batch)
        runs += 1
        settled, broken = 0, False
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
                    results.setdefault(ex, Result(Status.GRADER_ERROR, GRADER_ERROR_MESSAGE))
        pending = [ex for ex in pending if ex not in results]
        isolate = settled == 0 and not broken
    return results, runs


def grade_submission(
    path: Path, setup: Setup, max_bytes: int = nbtools.DEFAULT_MAX_BYTES, log: Any = None
) -> Graded:
    """Grade one notebook through the stages (read, run and judge, flag); never raises for
    anything inside the submission."""
    started = time.monotonic()
    sub = nbtools.read_submission(path, max_bytes)  # stage 1
    if sub.fatal:
        results = {ex: Result(Status.ERROR, sub.fatal) for ex in REGISTRY}
        return Graded(path.name, results, time.monotonic() - started, 0)
    results = {ex: Result(Status.MISSING, problem) for ex, problem in sub.problems.items()}
    pending = [ex for ex in REGISTRY if ex in sub.sources]
    judged, runs = _run_and_judge(path, setup, sub.sources, pending, log)  # stages 2 and 3
    results.update(judged)
    final = {  # stage 4
        ex: flag_library_answers(results[ex], ex, sub.sources.get(ex, ""), setup.library_answers)
        for ex in REGISTRY
    }
    return Graded(path.name, final, time.monotonic() - started, runs)


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
    names = reports.report_names(paths)
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
            reports.write(out, names[index], keys[index], g, paths[index], label)  # stage 5
            with lock:
                graded[index] = g
                if bar is not None:
                    bar.update(1)

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for future in [pool.submit(work, i) for i in chosen]:
                future.result()
        if bar is not None:
            bar.close()
    pages.write_summary(out)
    return [g for g in graded if g is not None]

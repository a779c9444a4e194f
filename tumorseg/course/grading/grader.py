"""``tumorseg grade``: grade student notebooks with nbval, in a sandbox and in parallel.

    tumorseg grade SUBMISSION.ipynb [MORE ...] --out DIR [--jobs N] [--fresh] [--no-sandbox]
                   [--library-answers keep|zero]

The orchestrator: each submission flows one way through stages that each take the previous
stage's record and return the next; :func:`grade_one` calls them in order, and no stage imports
this module or a later stage.

1. read the submission (:func:`.nbtools.read_submission`): the graded cells of the exercises of
   :data:`tumorseg.course.exercises.REGISTRY`, found by id, then by header line; a missing,
   duplicated or re-headed cell leaves that exercise ``missing``, an unreadable file leaves all
   of them ``error``; returns a :class:`.nbtools.Submission`;
2. build and run the grading notebook in the sandbox (:func:`.running.run_once`): only those
   cells' *source*, spliced into a reduced copy of the instructor notebook, run by
   ``pytest --nbval-lax`` inside bubblewrap (:mod:`.isolation`) under the runner of
   :mod:`.sandbox` (memory, CPU and file-size limits, every leftover process killed); returns a
   :class:`.records.Run`;
3. judge each exercise (:func:`.judging.judge_run`) from that Run, the previous
   :class:`.records.Judged` and the answer keys computed once per batch
   (:func:`.hidden.reference.answer_keys`): ``passed`` only when nbval matched its verdict line
   *and* the grader's own comparison of the raw results passed.  Exercises whose result earlier
   code may have caused are left pending and run again (stage 2, then 3) in a fresh kernel:
   the one loop of the pipeline, which most submissions never take;
4. flag library answers (:func:`.flagging.flag_submission`): a graded cell that imports or
   calls the package's own implementation of its exercise is flagged, and
   ``--library-answers zero`` scores it 0; the results become a :class:`.records.Graded`;
5. write the records (:func:`.reports.write`): ``DIR/<name>.json`` (score, status, message and
   flags per exercise), the student's feedback page ``DIR/<name>.html`` (:mod:`.pages`) and the
   row of ``DIR/results.csv`` (submission, C1..C6 as 0/1, total, flags, sandbox; blank where a
   grader error left no score), merged by submission (:mod:`.results`).

Before the first submission, the batch reads the instructor notebook, computes the answer keys
and prepares the sandbox once (:func:`grade_batch`).
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

from . import isolation, nbtools, pages, reports, results
from .flagging import flag_library_answers, flag_submission
from .hidden import reference
from .judging import GRADER_ERROR_MESSAGE, judge, judge_run
from .records import (
    INSTRUCTOR,
    LIBRARY_ANSWERS,
    NO_SANDBOX,
    NOT_RUN,
    STATUSES,
    Graded,
    Item,
    Judged,
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

__all__ = [
    "GRADER_ERROR_MESSAGE",
    "INSTRUCTOR",
    "LIBRARY_ANSWERS",
    "NO_SANDBOX",
    "NOT_RUN",
    "STATUSES",
    "Graded",
    "Item",
    "Judged",
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
    "grade_one",
    "grade_submission",
    "judge",
    "prepare_folder",
    "run_once",
]


def grade_submission(
    path: Path, setup: Setup, max_bytes: int = nbtools.DEFAULT_MAX_BYTES, log: Any = None
) -> Graded:
    """Grade one notebook through stages 1 to 4 (read, run and judge, flag); never raises for
    anything inside the submission.  Each stage is called here and only here, in order; stages
    2 and 3 again only for the exercises stage 3 left pending."""
    started = time.monotonic()
    sub = nbtools.read_submission(path, max_bytes)  # stage 1
    judged = Judged(dict(sub.settled), list(sub.sources), list(sub.sources))
    while judged.batch:
        run = run_once(setup, sub.sources, judged.batch)  # stage 2
        judged = judge_run(run, judged, setup.limits, setup.keys)  # stage 3
        if judged.broken and log is not None:
            print(
                f"[grade] {path.name}: grading run broke before student code "
                f"(status {run.status}); log tail:\n{run.log[-1500:]}",
                file=log,
            )
    final = flag_submission(judged.results, sub.sources, setup.library_answers)  # stage 4
    return Graded(path.name, final, time.monotonic() - started, judged.runs)


def grade_one(
    path: Path, setup: Setup, out: Path, name: str, key: str, sandbox: str, log: Any = None
) -> Graded:
    """One submission's whole path: stages 1 to 4 (:func:`grade_submission`), then stage 5
    writes its report ``out/name.json``, its feedback page and its row ``key`` of
    ``out/results.csv`` (:func:`.reports.write`)."""
    graded = grade_submission(path, setup, log=log)
    reports.write(out, name, key, graded, path, sandbox)  # stage 5
    return graded


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
            keys=reference.answer_keys(),
        )
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(chosen), desc="grading", unit="nb", disable=not progress)
        except ImportError:  # pragma: no cover
            bar = None

        def work(index: int) -> None:
            g = grade_one(paths[index], setup, out, names[index], keys[index], label, sys.stderr)
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

"""Stage 3 of ``tumorseg grade``: judge each exercise of one grading run.

:func:`judge_run` takes the :class:`.records.Run` stage 2 left and the :class:`.records.Judged`
record so far, and returns the next one: the exercises it settled, and those to run again.
:func:`judge` reads only what it is given: the Run (the JUnit items, the raw records of the
graded checks, decoded once per run by :func:`.checks.decode_records`, the progress log), the
limits and the exercise's answer key (:func:`.hidden.reference.answer_key`, computed once per
batch), and compares the raw results with :mod:`.hidden.judge` (never inside the sandbox).  An exercise is ``passed`` only when
nbval matched its verdict line *and* that comparison passed.  A result that earlier code of
the run may have caused comes back as :class:`.records.Regrade` (the orchestrator grades it
again in a fresh kernel); a run that broke before student code as :class:`.records.RunBroken`.
"""

from __future__ import annotations

from typing import Any

from tumorseg.course.exercises import REGISTRY

from . import checks
from .hidden.judge import judge_record, judge_records
from .records import (
    MAX_RUNS,
    NOT_RUN,
    TRUSTED,
    Item,
    Judged,
    Limits,
    Outcome,
    Regrade,
    Result,
    Run,
    RunBroken,
    Status,
)

#: the message of an exercise whose runs broke twice before any student code ran
GRADER_ERROR_MESSAGE = (
    "The grader could not run this exercise (kernel or setup failure, retried once); "
    "the instructor has been told. This is not a zero."
)


def _item(run: Run, role: str, exercise: str) -> Item | None:
    """The run's item of ``role`` for ``exercise`` (None: it has none)."""
    for it in run.items:
        if it.role == role and it.exercise == exercise:
            return it
    return None


def _index(run: Run, role: str, exercise: str) -> int:
    """The position of that item among the run's items (their number when it has none)."""
    for i, it in enumerate(run.items):
        if it.role == role and it.exercise == exercise:
            return i
    return len(run.items)


def _contaminated_before(run: Run, exercise: str) -> bool:
    """Could an earlier exercise of this run have caused ``exercise``'s failure?"""
    position = _index(run, "student", exercise)
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
    run: Run,
    exercise: str,
    student: Item,
    check: Item | None,
    limits: Limits,
    score: tuple[str, str] | None = None,
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
        status, message = score if score is not None else judge_record(exercise, record)
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


def judge(
    run: Run,
    exercise: str,
    clean: bool,
    limits: Limits,
    score: tuple[str, str] | None = None,
) -> Outcome:
    """The outcome of one exercise in one run.

    ``clean`` means no student code ran before this exercise's cell in this run; then the
    outcome is never :class:`Regrade` (but :class:`RunBroken` when the run broke before any
    student code).  ``score``: the exercise's :func:`.hidden.judge.judge_record` when it was
    computed already (:func:`judge_run`); else it is computed when needed."""
    if not run.junit_found:
        return _judge_killed(run, exercise, clean, limits)
    position = _index(run, "student", exercise)
    for it in run.items[:position]:
        if it.role in TRUSTED and it.outcome != "ok" and (clean or it.role == "prelude"):
            return RunBroken() if clean else Regrade()
    student, check = _item(run, "student", exercise), _item(run, "check", exercise)
    if student is not None and student.outcome == "skipped":  # the student's own NBVAL_SKIP
        student.outcome = "ok"
    if student is None or student.outcome in NOT_RUN:
        return RunBroken() if clean else Regrade()
    result = _judge_items(run, exercise, student, check, limits, score)
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


def judge_run(
    run: Run, judged: Judged, limits: Limits, keys: dict[str, Any] | None = None
) -> Judged:
    """Stage 3: judge the exercises of ``judged.batch`` in ``run`` (the first one ``clean``) and
    return the next record.  An exercise sent back (:class:`Regrade`) stays pending, or is an
    error when it ran alone or the runs reached :data:`.records.MAX_RUNS`; a run that broke
    before student code settles nothing, and the second such run settles every pending
    exercise as a grader error.  The next ``batch``: the first pending exercise alone when this
    run settled none (and did not break), else all of them.  ``keys``: the answer keys of the
    batch (:attr:`.records.Setup.keys`); with them, the run's raw records are decoded once
    (:func:`.checks.decode_records`) and scored at once (:func:`.hidden.judge.judge_records`)
    before the exercises are judged; None computes each score when it is needed."""
    scores: dict[str, tuple[str, str]] = {}
    if keys:  # the run's records read once, then scored at once
        gave_up = {ex: keys[ex].gave_up for ex in run.records if ex in keys}
        scores = judge_records(run.records, keys, checks.decode_records(run.records, gave_up))
    results, runs = dict(judged.results), judged.runs + 1
    settled, broken = 0, False
    for i, ex in enumerate(judged.batch):
        outcome = judge(run, ex, i == 0, limits, scores.get(ex))
        if isinstance(outcome, RunBroken):
            broken = True
            break
        if isinstance(outcome, Regrade) and (len(judged.batch) == 1 or runs >= MAX_RUNS):
            outcome = Result(Status.ERROR, f"The grading run failed after your UNQ_{ex} cell ran.")
        if isinstance(outcome, Result):
            results[ex] = outcome
            settled += 1
    failures = judged.failures + int(broken)
    if broken and failures >= 2:
        for ex in judged.pending:
            results.setdefault(ex, Result(Status.GRADER_ERROR, GRADER_ERROR_MESSAGE))
    pending = [ex for ex in judged.pending if ex not in results]
    batch = pending[:1] if settled == 0 and not broken else pending
    return Judged(results, list(batch), pending, runs, failures, broken)

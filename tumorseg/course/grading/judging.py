"""Stage 3 of ``tumorseg grade``: judge each exercise of one grading run.

:func:`judge` reads only the :class:`.records.Run` it is given (the JUnit items, the raw
records of the graded checks, the progress log) and the limits, and compares the raw results
with :mod:`.hidden.judge` (never inside the sandbox).  An exercise is ``passed`` only when
nbval matched its verdict line *and* that comparison passed.  A result that earlier code of
the run may have caused comes back as :class:`.records.Regrade` (the orchestrator grades it
again in a fresh kernel); a run that broke before student code as :class:`.records.RunBroken`.
"""

from __future__ import annotations

from tumorseg.course.exercises import REGISTRY

from .hidden.judge import judge_record
from .records import (
    NOT_RUN,
    TRUSTED,
    Item,
    Limits,
    Outcome,
    Regrade,
    Result,
    Run,
    RunBroken,
    Status,
)


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

"""The grader's judgement of one graded check: a kernel's raw results against the references.

:func:`judge_record` reads the raw results a kernel wrote (untrusted JSON, decoded once per run
by :func:`..checks.decode_records`), compares them with the exercise's answer key
(:func:`.reference.answer_key`, computed once per batch) and decides ``passed`` / ``failed`` / ``error`` with
a message for the student: which hidden checks failed and how, then the exercise's diagnosis of
the first failure (what was expected, what came back, the hint; ``Exercise.diagnose``, built
on the helpers of :mod:`tumorseg.course.feedback` that the public tests use) and the exception
and failing line when the function raised.  It never shows a hidden input.

Like the references, it lives in the ``hidden`` folder: only the grader process, outside the
sandbox, imports it.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from tumorseg.course import feedback
from tumorseg.course.exercises import REGISTRY

from .. import checks
from .reference import Key, answer_key


def _same(found: Any, want: Any, atol: float = feedback.ATOL) -> str | None:
    """None when the value structures agree within ``atol``, else the problem."""
    if want is None or found is None:
        return None if found is want else "wrong result"
    if isinstance(want, tuple):
        if not isinstance(found, tuple) or len(found) != len(want):
            return "wrong structure"
        for f, w in zip(found, want):
            problem = _same(f, w, atol)
            if problem:
                return problem
        return None
    if found.shape != want.shape:
        return "wrong shape"
    if not np.all(np.isfinite(found)) or not np.allclose(found, want, rtol=0.0, atol=atol):
        return "wrong values"
    return None


def _diagnosis(exercise: str, index: int, found: Any, want: Any, key: Key) -> str | None:
    """The exercise's own diagnosis of one hidden check's values (types already accepted)."""
    ex = REGISTRY[exercise]
    case = copy.deepcopy(key.cases[index])
    return ex.diagnose(ex, found, want, case, f"hidden check {index + 1}")


def _check_problem(exercise: str, index: int, kind: str, found: Any, key: Key) -> str | None:
    """Why one hidden check failed (type, shape or values), in the student's words, or None;
    ``kind`` and ``found`` are its decoded result (:func:`..checks.decode_records`)."""
    if kind == "type":
        return f"`{REGISTRY[exercise].function}` {found} on hidden check {index + 1}."
    unreadable = f"unreadable result on hidden check {index + 1}"
    if kind != "values":
        return unreadable
    try:
        verdict = _same(found, key.values[index], feedback.ATOL)
    except Exception:  # noqa: BLE001 - malformed (possibly forged) JSON
        return unreadable
    if verdict is None:
        return None
    try:
        return (
            _diagnosis(exercise, index, found, key.values[index], key)
            or f"{verdict} on hidden check {index + 1}"
        )
    except Exception:  # noqa: BLE001 - an odd result the diagnosis cannot read
        return f"{verdict} on hidden check {index + 1}"


def _symbolic_problem(exercise: str, kind: str, found: Any, want: Any) -> str | None:
    """Why one model.fit case failed, or None (``kind``, ``found``: as for :func:`_check_problem`)."""
    name = REGISTRY[exercise].function
    if kind == "type":
        return f"{name} returned {found} inside model.fit; expected a tensor. {feedback.KERAS_HINT}"
    if kind != "values":
        return UNREADABLE_SYMBOLIC
    if _same(found, want, 1e-4) is None:
        return None
    if found.shape != want.shape:
        return (
            f"{name} gives shape {found.shape} inside model.fit (a batch of 2, `axis` given), "
            f"expected {want.shape}: pass `axis` to every ops.sum."
        )
    return f"{name} gives other values inside model.fit than on numpy arrays. {feedback.KERAS_HINT}"


def _summary(name: str, failures: list[tuple[int, str]], total: int) -> str:
    """``failed 4 of 5 hidden checks (1, 2 and 4: wrong result; 3: raised ValueError)``."""
    kinds: dict[str, list[int]] = {}
    for index, kind in failures:
        kinds.setdefault(kind, []).append(index + 1)

    def numbers(items: list[int]) -> str:
        text = ", ".join(map(str, items))
        return (
            text.rsplit(", ", 1)[0] + " and " + text.rsplit(", ", 1)[1] if len(items) > 1 else text
        )

    detail = "; ".join(f"{numbers(idx)}: {kind}" for kind, idx in kinds.items())
    return f"`{name}` failed {len(failures)} of {total} hidden checks ({detail})."


def _exception_text(exercise: str, found: dict[str, Any], index: int, symbolic: bool) -> str:
    ename = str(found.get("raised", "an exception"))[:60]
    message, line = str(found.get("message", ""))[:300], str(found.get("line", ""))[:200]
    name = REGISTRY[exercise].function
    if symbolic:
        return feedback.symbolic_failure(name, ename, message, line)
    return f"Hidden check {index + 1}: " + feedback.describe_exception(name, ename, message, line)


UNREADABLE_SYMBOLIC = "The grader could not read the results of your function inside model.fit."


def _judge_symbolic(
    exercise: str, record: dict[str, Any], decoded: list[tuple[str, Any]], key: Key
) -> str | None:
    """The problem of the model.fit cases of a Dice exercise, or None."""
    if not REGISTRY[exercise].symbolic:
        return None
    results = record.get("symbolic")
    if not isinstance(results, list) or len(results) != len(key.symbolic):
        return UNREADABLE_SYMBOLIC
    for index, (kind, found) in enumerate(decoded):
        if kind == "raised":
            return _exception_text(exercise, found, index, True)
        try:
            problem = _symbolic_problem(exercise, kind, found, key.symbolic[index])
        except Exception:  # noqa: BLE001 - malformed (possibly forged) JSON
            problem = UNREADABLE_SYMBOLIC
        if problem:
            return problem
    return None


def judge_record(
    exercise: str, record: Any, key: Key | None = None, decoded: dict[str, Any] | None = None
) -> tuple[str, str]:
    """Score the raw results written by a kernel: ``(status, message)``.

    ``status`` is ``passed``, ``failed`` (wrong type, shape or values, or the function does not
    work inside model.fit) or ``error`` (the function is undefined or raised on some hidden
    case).  The message lists every failing hidden check in order, then the diagnosis of the
    first one, and the first exception when that was not the first failure.  ``key`` (the
    exercise's answer key) and ``decoded`` (this record as :func:`..checks.decode_records`
    reads it) are computed here when not given."""
    name = REGISTRY[exercise].function
    key = key if key is not None else answer_key(exercise)
    want = key.values
    if not isinstance(record, dict) or record.get("exercise") != exercise:
        return "failed", "The grader could not read the results of your function."
    if record.get("defined") is not True:
        return "error", f"`{name}` is not defined after your UNQ_{exercise} cell ran."
    results = record.get("results")
    if not isinstance(results, list) or len(results) != len(want):
        return "failed", "The grader could not read the results of your function."
    if decoded is None:
        decoded = checks.decode_records({exercise: record}, {exercise: key.gave_up})[exercise]
    failures: list[tuple[int, str]] = []
    details: dict[int, str] = {}
    for index, (kind, found) in enumerate(decoded["results"]):
        if kind == "raised":
            failures.append((index, f"raised {str(found.get('raised', 'an exception'))[:60]}"))
            details[index] = _exception_text(exercise, found, index, False)
            continue
        problem = _check_problem(exercise, index, kind, found, key)
        if problem:  # every diagnosis names its hidden check
            failures.append((index, "wrong result"))
            details[index] = problem
    symbolic = _judge_symbolic(exercise, record, decoded["symbolic"], key)
    if not failures:
        if symbolic:
            return "failed", (
                f"`{name}` passed all {len(want)} hidden checks on numpy arrays, but "
                f"not inside model.fit (symbolic tensors): {symbolic}"
            )
        return "passed", f"`{name}` passed all {len(want)} hidden checks."
    raised = [i for i, kind in failures if kind.startswith("raised")]
    parts = [_summary(name, failures, len(want)), details[failures[0][0]]]
    if raised and raised[0] != failures[0][0]:
        parts.append(details[raised[0]])
    if symbolic:
        parts.append(f"It also fails inside model.fit. {feedback.KERAS_HINT}")
    message = "\n".join(part[:600] for part in parts)
    return ("error" if raised else "failed"), message


def judge_records(
    records: dict[str, Any], keys: dict[str, Key], decoded: dict[str, Any]
) -> dict[str, tuple[str, str]]:
    """:func:`judge_record` of every record a run left (those that are None left out), with the
    exercises' answer keys and the records as :func:`..checks.decode_records` read them."""
    return {
        exercise: judge_record(exercise, record, keys.get(exercise), decoded.get(exercise))
        for exercise, record in records.items()
        if record is not None
    }

"""The grader-side half of the graded checks: reference results and the comparison that scores.

Nothing here runs inside a grading kernel or is readable from the sandbox (the whole
``hidden`` folder stays out of it).  The reference implementations are plain numpy (float64)
and are written independently of the notebook's solutions; each exercise's record names its
own (``Exercise.reference``, resolved by :func:`reference_of`).  :func:`expected` runs it on
the hidden cases of :mod:`..checks` with the same seeding the kernel uses, and
:func:`expected_symbolic` on the model.fit cases of the exercises that run on symbolic tensors.

:func:`judge_record` reads the raw results a kernel wrote (untrusted JSON) and decides
``passed`` / ``failed`` / ``error`` with a message for the student: which hidden checks
failed and how, then the exercise's diagnosis of the first failure (what was expected, what
came back, the hint; ``Exercise.diagnose`` in :mod:`tumorseg.course.feedback`, the helpers the
public tests use) and the exception and failing line when the function raised.  It never shows
a hidden input.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

from tumorseg.course import feedback
from tumorseg.course.exercises import REGISTRY, Exercise

from .. import checks


def ref_get_sub_volume(
    image: np.ndarray,
    label: np.ndarray,
    orig_x: int = 240,
    orig_y: int = 240,
    orig_z: int = 155,
    output_x: int = 160,
    output_y: int = 160,
    output_z: int = 16,
    num_classes: int = 4,
    max_tries: int = 1000,
    background_threshold: float = 0.95,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Reference sampler: image (X, Y, Z, C), label (X, Y, Z) -> X (C, x, y, z), y (K-1, x, y, z).

    Corners are drawn x, then y, then z with ``np.random.randint`` on every try."""
    for _ in range(max_tries):
        sx = np.random.randint(0, orig_x - output_x + 1)
        sy = np.random.randint(0, orig_y - output_y + 1)
        sz = np.random.randint(0, orig_z - output_z + 1)
        window = (slice(sx, sx + output_x), slice(sy, sy + output_y), slice(sz, sz + output_z))
        lab = label[window]
        if np.mean(lab == 0) < background_threshold:
            x = np.moveaxis(np.array(image[window], dtype=np.float64), -1, 0)
            y = np.stack([(lab == k).astype(np.float64) for k in range(1, num_classes)])
            return x, y
    return None


def ref_standardize(image: np.ndarray) -> np.ndarray:
    """Reference: every (channel, z) slice of (C, X, Y, Z) to mean 0 and std 1 (constant -> 0)."""
    image = np.asarray(image, dtype=np.float64)
    mean = image.mean(axis=(1, 2), keepdims=True)
    std = image.std(axis=(1, 2), keepdims=True)
    return (image - mean) / np.where(std == 0, 1.0, std)


def ref_single_class_dice(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    axis: tuple[int, ...] = (0, 1, 2),
    epsilon: float = 0.00001,
) -> np.float64:
    """Reference Dice of one class; y_true, y_pred: (X, Y, Z)."""
    t, p = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    return np.float64(
        (2 * np.sum(t * p, axis=axis) + epsilon)
        / (np.sum(t, axis=axis) + np.sum(p, axis=axis) + epsilon)
    )


def ref_dice(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    axis: tuple[int, ...] = (1, 2, 3),
    epsilon: float = 0.00001,
) -> np.float64:
    """Reference mean Dice over classes; y_true, y_pred: (C, X, Y, Z)."""
    t, p = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    per_class = (2 * np.sum(t * p, axis=axis) + epsilon) / (
        np.sum(t, axis=axis) + np.sum(p, axis=axis) + epsilon
    )
    return np.float64(np.mean(per_class))


def ref_soft_dice_loss(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    axis: tuple[int, ...] = (1, 2, 3),
    epsilon: float = 0.00001,
) -> np.float64:
    """Reference soft Dice loss; y_true, y_pred: (C, X, Y, Z)."""
    t, p = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    per_class = (2 * np.sum(t * p, axis=axis) + epsilon) / (
        np.sum(t**2, axis=axis) + np.sum(p**2, axis=axis) + epsilon
    )
    return np.float64(1.0 - np.mean(per_class))


def ref_sens_spec(
    pred: np.ndarray, label: np.ndarray, class_num: int
) -> tuple[np.float64, np.float64]:
    """Reference sensitivity and specificity of class ``class_num``; pred, label: (C, X, Y, Z)."""
    p, t = np.asarray(pred)[class_num] == 1, np.asarray(label)[class_num] == 1
    tp, tn = np.sum(p & t), np.sum(~p & ~t)
    fp, fn = np.sum(p & ~t), np.sum(~p & t)
    return np.float64(tp / (tp + fn)), np.float64(tn / (tn + fp))


def reference_of(exercise: Exercise) -> Callable[..., Any]:
    """The reference implementation an exercise's record names (``"module:function"``)."""
    if callable(exercise.reference):
        return exercise.reference
    module, _, name = exercise.reference.partition(":")
    return getattr(importlib.import_module(module), name)


_GLOBAL_RNG = threading.Lock()  # the reference sampler draws from numpy's global generator


@cache
def expected(exercise: str) -> tuple[dict[str, Any], ...]:
    """Canonical reference results of one exercise's hidden cases (seeded like the kernel)."""
    out = []
    reference = reference_of(REGISTRY[exercise])
    with _GLOBAL_RNG:
        for args, kwargs, seed in checks.cases(exercise):
            if seed is not None:
                np.random.seed(seed)
            out.append({"value": checks.canonical(reference(*args, **kwargs))})
    return tuple(out)


def expected_digest(exercise: str) -> str:
    """What the in-kernel check compares with (see :func:`checks.fingerprint`)."""
    return checks.fingerprint(exercise, list(expected(exercise)))


@cache
def expected_symbolic(exercise: str) -> tuple[dict[str, Any], ...]:
    """Canonical reference results of the model.fit cases (:func:`checks.symbolic_cases`),
    computed in float64 on the float32 inputs the traced call sees."""
    out = []
    reference = reference_of(REGISTRY[exercise])
    for args, kwargs, _ in checks.symbolic_cases(exercise):
        args32 = tuple(np.asarray(a, dtype=np.float32).astype(np.float64) for a in args)
        value = np.asarray(reference(*args32, **kwargs), dtype=np.float64)
        out.append({"value": checks.canonical(value)})
    return tuple(out)


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


def _diagnosis(exercise: str, index: int, found: Any, want: Any) -> str | None:
    """The exercise's own diagnosis of one hidden check's values (types already accepted)."""
    ex = REGISTRY[exercise]
    return ex.diagnose(ex, found, want, checks.cases(exercise)[index], f"hidden check {index + 1}")


def _check_problem(
    exercise: str, index: int, found: Any, reference: dict[str, Any], symbolic: bool = False
) -> str | None:
    """Why one hidden check failed (type, shape or values), in the student's words, or None."""
    gave_up = not symbolic and index in checks.gave_up_cases(exercise)
    problem = checks.type_problem(exercise, found["value"], gave_up) if not symbolic else None
    if problem:
        return f"`{REGISTRY[exercise].function}` {problem} on hidden check {index + 1}."
    if symbolic:
        raw = found["value"]
        if not checks.is_array_payload(raw) or raw.get("t") not in (
            "tensor",
            "numpy.ndarray",
            "numpy.float32",
            "numpy.float64",
        ):
            return (
                f"{REGISTRY[exercise].function} returned {checks.describe_payload(raw)} inside "
                f"model.fit; expected a tensor. {feedback.KERAS_HINT}"
            )
    found_values, want_values = checks.values(found["value"]), checks.values(reference["value"])
    verdict = _same(found_values, want_values, 1e-4 if symbolic else feedback.ATOL)
    if verdict is None:
        return None
    if symbolic:
        if found_values.shape != want_values.shape:
            return (
                f"{REGISTRY[exercise].function} gives shape {found_values.shape} inside model.fit "
                f"(a batch of 2, `axis` given), expected {want_values.shape}: pass `axis` to "
                "every ops.sum."
            )
        return (
            f"{REGISTRY[exercise].function} gives other values inside model.fit than on numpy "
            f"arrays. {feedback.KERAS_HINT}"
        )
    try:
        return (
            _diagnosis(exercise, index, found_values, want_values)
            or f"{verdict} on hidden check {index + 1}"
        )
    except Exception:  # noqa: BLE001 - an odd result the diagnosis cannot read
        return f"{verdict} on hidden check {index + 1}"


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


def _judge_symbolic(exercise: str, record: dict[str, Any]) -> str | None:
    """The problem of the model.fit cases of a Dice exercise, or None."""
    if not REGISTRY[exercise].symbolic:
        return None
    results, want = record.get("symbolic"), expected_symbolic(exercise)
    if not isinstance(results, list) or len(results) != len(want):
        return "The grader could not read the results of your function inside model.fit."
    for index, (found, reference) in enumerate(zip(results, want)):
        try:
            if not isinstance(found, dict) or "value" not in found:
                return _exception_text(
                    exercise, found if isinstance(found, dict) else {}, index, True
                )
            problem = _check_problem(exercise, index, found, reference, symbolic=True)
        except Exception:  # noqa: BLE001 - malformed (possibly forged) JSON
            problem = "The grader could not read the results of your function inside model.fit."
        if problem:
            return problem
    return None


def judge_record(exercise: str, record: Any) -> tuple[str, str]:
    """Score the raw results written by a kernel: ``(status, message)``.

    ``status`` is ``passed``, ``failed`` (wrong type, shape or values, or the function does not
    work inside model.fit) or ``error`` (the function is undefined or raised on some hidden
    case).  The message lists every failing hidden check in order, then the diagnosis of the
    first one, and the first exception when that was not the first failure."""
    name = REGISTRY[exercise].function
    want = expected(exercise)
    if not isinstance(record, dict) or record.get("exercise") != exercise:
        return "failed", "The grader could not read the results of your function."
    if record.get("defined") is not True:
        return "error", f"`{name}` is not defined after your UNQ_{exercise} cell ran."
    results = record.get("results")
    if not isinstance(results, list) or len(results) != len(want):
        return "failed", "The grader could not read the results of your function."
    failures: list[tuple[int, str]] = []
    details: dict[int, str] = {}
    for index, (found, reference) in enumerate(zip(results, want)):
        try:
            if not isinstance(found, dict) or "value" not in found:
                found = found if isinstance(found, dict) else {}
                failures.append((index, f"raised {str(found.get('raised', 'an exception'))[:60]}"))
                details[index] = _exception_text(exercise, found, index, False)
                continue
            problem = _check_problem(exercise, index, found, reference)
        except Exception:  # noqa: BLE001 - malformed (possibly forged) JSON
            problem = f"unreadable result on hidden check {index + 1}"
        if problem:  # every diagnosis names its hidden check
            failures.append((index, "wrong result"))
            details[index] = problem
    symbolic = _judge_symbolic(exercise, record)
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

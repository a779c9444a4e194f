"""The grader-side half of the graded checks: reference results and the comparison that scores.

Nothing here runs inside a grading kernel.  The reference implementations are plain numpy
(float64) and are written independently of the notebook's solutions; :func:`expected` runs
them on the hidden cases of :mod:`.checks` with the same seeding the kernel uses.

:func:`judge_record` reads the raw results a kernel wrote (untrusted JSON) and decides
``passed`` / ``failed`` / ``error`` with a short message for the student that names the check
number and the kind of problem, never the hidden inputs or the expected numbers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

from . import checks


def ref_get_sub_volume(image: np.ndarray, label: np.ndarray, orig_x: int = 240,
                       orig_y: int = 240, orig_z: int = 155, output_x: int = 160,
                       output_y: int = 160, output_z: int = 16, num_classes: int = 4,
                       max_tries: int = 1000, background_threshold: float = 0.95
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


def ref_single_class_dice(y_true: np.ndarray, y_pred: np.ndarray, axis: tuple[int, ...] = (0, 1, 2),
                          epsilon: float = 0.00001) -> np.float64:
    """Reference Dice of one class; y_true, y_pred: (X, Y, Z)."""
    t, p = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    return np.float64((2 * np.sum(t * p, axis=axis) + epsilon)
                      / (np.sum(t, axis=axis) + np.sum(p, axis=axis) + epsilon))


def ref_dice(y_true: np.ndarray, y_pred: np.ndarray, axis: tuple[int, ...] = (1, 2, 3),
             epsilon: float = 0.00001) -> np.float64:
    """Reference mean Dice over classes; y_true, y_pred: (C, X, Y, Z)."""
    t, p = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    per_class = (2 * np.sum(t * p, axis=axis) + epsilon) / (
        np.sum(t, axis=axis) + np.sum(p, axis=axis) + epsilon)
    return np.float64(np.mean(per_class))


def ref_soft_dice_loss(y_true: np.ndarray, y_pred: np.ndarray, axis: tuple[int, ...] = (1, 2, 3),
                       epsilon: float = 0.00001) -> np.float64:
    """Reference soft Dice loss; y_true, y_pred: (C, X, Y, Z)."""
    t, p = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    per_class = (2 * np.sum(t * p, axis=axis) + epsilon) / (
        np.sum(t ** 2, axis=axis) + np.sum(p ** 2, axis=axis) + epsilon)
    return np.float64(1.0 - np.mean(per_class))


def ref_sens_spec(pred: np.ndarray, label: np.ndarray, class_num: int) -> tuple[np.float64, np.float64]:
    """Reference sensitivity and specificity of class ``class_num``; pred, label: (C, X, Y, Z)."""
    p, t = np.asarray(pred)[class_num] == 1, np.asarray(label)[class_num] == 1
    tp, tn = np.sum(p & t), np.sum(~p & ~t)
    fp, fn = np.sum(p & ~t), np.sum(~p & t)
    return np.float64(tp / (tp + fn)), np.float64(tn / (tn + fp))


REFERENCES: dict[str, Callable[..., Any]] = {
    "C1": ref_get_sub_volume, "C2": ref_standardize, "C3": ref_single_class_dice,
    "C4": ref_dice, "C5": ref_soft_dice_loss, "C6": ref_sens_spec,
}


_GLOBAL_RNG = threading.Lock()  # the reference sampler draws from numpy's global generator


@cache
def expected(exercise: str) -> tuple[dict[str, Any], ...]:
    """Canonical reference results of one exercise's hidden cases (seeded like the kernel)."""
    out = []
    with _GLOBAL_RNG:
        for args, kwargs, seed in checks.cases(exercise):
            if seed is not None:
                np.random.seed(seed)
            out.append({"value": checks.canonical(REFERENCES[exercise](*args, **kwargs))})
    return tuple(out)


def expected_digest(exercise: str) -> str:
    """What the in-kernel check compares with (see :func:`checks.fingerprint`)."""
    return checks.fingerprint(exercise, list(expected(exercise)))


def _same(found: Any, want: Any) -> str | None:
    """None when the value structures agree within :data:`checks.ATOL`, else the problem."""
    if want is None or found is None:
        return None if found is want else "wrong result"
    if isinstance(want, tuple):
        if not isinstance(found, tuple) or len(found) != len(want):
            return "wrong structure"
        for f, w in zip(found, want):
            problem = _same(f, w)
            if problem:
                return problem
        return None
    if found.shape != want.shape:
        return "wrong shape"
    if not np.all(np.isfinite(found)) or not np.allclose(found, want, rtol=0.0, atol=checks.ATOL):
        return "wrong values"
    return None


def judge_record(exercise: str, record: Any) -> tuple[str, str]:
    """Score the raw results written by a kernel: ``(status, message)``.

    ``status`` is ``passed``, ``failed`` (wrong type, shape or values) or ``error`` (the
    function is undefined or raised on some hidden case)."""
    name = checks.FUNCTIONS[exercise]
    want = expected(exercise)
    if not isinstance(record, dict) or record.get("exercise") != exercise:
        return "failed", "The grader could not read the results of your function."
    if record.get("defined") is not True:
        return "error", f"`{name}` is not defined after your UNQ_{exercise} cell ran."
    results = record.get("results")
    if not isinstance(results, list) or len(results) != len(want):
        return "failed", "The grader could not read the results of your function."
    gave_up = checks.gave_up_cases(exercise)
    raised: list[str] = []
    problems: list[str] = []
    for index, (found, reference) in enumerate(zip(results, want)):
        label = f"hidden check {index + 1}"
        try:
            if not isinstance(found, dict) or "value" not in found:
                ename = str(found.get("raised", "an exception")) if isinstance(found, dict) else "?"
                raised.append(f"{label}: raised {ename[:60]}")
                continue
            problem = checks.type_problem(exercise, found["value"], index in gave_up)
            if problem is None:
                problem = _same(checks.values(found["value"]), checks.values(reference["value"]))
        except Exception:  # noqa: BLE001 - malformed (possibly forged) JSON
            problem = "unreadable result"
        if problem:
            problems.append(f"{label}: {problem}")
    total = len(want)
    if raised:
        detail = "; ".join((raised + problems)[:3])
        return "error", f"`{name}` raised an exception on {len(raised)} of {total} hidden checks ({detail})."
    if problems:
        detail = "; ".join(problems[:3])
        return "failed", f"`{name}` failed {len(problems)} of {total} hidden checks ({detail})."
    return "passed", f"`{name}` passed all {total} hidden checks."

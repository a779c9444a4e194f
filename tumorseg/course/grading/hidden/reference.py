"""The grader-side references: one reference implementation per exercise, and its results.

Nothing here runs inside a grading kernel or is readable from the sandbox (the whole
``hidden`` folder stays out of it).  The reference implementations are plain numpy (float64)
and are written independently of the notebook's solutions.  :data:`REFERENCES` maps each
exercise id of :data:`tumorseg.course.exercises.REGISTRY` to its own: the public records never
name them.  :func:`expected` runs it on the hidden cases of :mod:`..checks` with the same
seeding the kernel uses, and :func:`expected_symbolic` on the model.fit cases of the exercises
that run on symbolic tensors; :func:`answer_key` puts what :mod:`.judge` compares a kernel's
results with into one record per exercise, computed once per batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from tumorseg.course.exercises import REGISTRY

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


#: exercise id -> its reference implementation
REFERENCES: dict[str, Callable[..., Any]] = {
    "C1": ref_get_sub_volume,
    "C2": ref_standardize,
    "C3": ref_single_class_dice,
    "C4": ref_dice,
    "C5": ref_soft_dice_loss,
    "C6": ref_sens_spec,
}


_GLOBAL_RNG = threading.Lock()  # the reference sampler draws from numpy's global generator


@cache
def expected(exercise: str) -> tuple[dict[str, Any], ...]:
    """Canonical reference results of one exercise's hidden cases (seeded like the kernel)."""
    out = []
    reference = REFERENCES[exercise]
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
    reference = REFERENCES[exercise]
    for args, kwargs, _ in checks.symbolic_cases(exercise):
        args32 = tuple(np.asarray(a, dtype=np.float32).astype(np.float64) for a in args)
        value = np.asarray(reference(*args32, **kwargs), dtype=np.float64)
        out.append({"value": checks.canonical(value)})
    return tuple(out)


@dataclass(frozen=True)
class Key:
    """What the judge needs of one exercise, computed before any submission is graded: the
    reference values of each hidden case (:func:`checks.values` of :func:`expected`) and of
    each model.fit case (:func:`expected_symbolic`; empty when the exercise has none), the
    cases where a sampler must give up (:func:`checks.gave_up_cases`) and the hidden cases
    themselves (a failure's diagnosis shows what went in; copy one before use)."""

    values: tuple[Any, ...]
    symbolic: tuple[Any, ...]
    gave_up: frozenset[int]
    cases: tuple[Any, ...]


def answer_key(exercise: str) -> Key:
    """The :class:`Key` of one exercise."""
    symbolic = expected_symbolic(exercise) if REGISTRY[exercise].symbolic else ()
    return Key(
        tuple(checks.values(result["value"]) for result in expected(exercise)),
        tuple(checks.values(result["value"]) for result in symbolic),
        frozenset(checks.gave_up_cases(exercise)),
        tuple(checks.cases(exercise)),
    )


def answer_keys() -> dict[str, Key]:
    """The :class:`Key` of every exercise of the registry (once per batch)."""
    return {exercise: answer_key(exercise) for exercise in REGISTRY}

"""Public tests for the six graded exercises of the course notebook.

Each ``test_<exercise>(fn)`` takes the student's function, prints ``All tests passed`` when
every check holds, and otherwise raises an :class:`AssertionError` whose message says what
was wrong and how to fix it.  The error is raised from one small, clean frame, so the
notebook shows the message and a two-frame traceback, never this module's internals or the
expected toy values.  An exception raised *inside* the student's function (for example a
``TypeError`` from a ``None`` placeholder that was not replaced) becomes an error message
naming the exception and the failing line.

The Dice exercises (single-class and multi-class Dice, soft Dice loss) are also run the way
``model.fit`` runs them: inside a traced function on symbolic float32 tensors of the Keras
backend in use (:func:`tumorseg.course.exercises.traced_call`), so a numpy-only solution
fails here instead of in training.

Each test reads its exercise's record (:data:`tumorseg.course.exercises.REGISTRY`: function
name, signature, hint) and phrases its failures with :mod:`tumorseg.course.feedback`, the
helpers the autograder uses for its feedback on hidden checks.  The autograder uses further
hidden cases; passing these tests is necessary, not sufficient.

Nothing here imports TensorFlow at import time: tensors are read with ``np.asarray``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import io
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from tumorseg.course.exercises import REGISTRY, traced_call
from tumorseg.course.feedback import (
    PLACEHOLDER_HINT,
    describe_exception,
    patch_problem,
    replay_corners,
    scalar_problem,
    standardize_problem,
    symbolic_failure,
    value_problem,
)

PASSED = "All tests passed"


# --------------------------------------------------------------------------- helpers


def _fail(message: str | None) -> None:
    if message:
        raise AssertionError(message)


def _failing_line(exc: BaseException, fn: Callable) -> str:
    """The line of the student's own code where ``exc`` was raised (else the deepest line)."""
    frames = traceback.extract_tb(exc.__traceback__)
    own = getattr(getattr(fn, "__code__", None), "co_filename", None)
    where = [f for f in frames if f.filename == own] or frames[-1:]
    return (where[-1].line or "") if where else ""


def _call(fn: Callable, name: str, *args: Any, **kwargs: Any) -> Any:
    """Call the student's ``fn``; turn any exception it raises into a helpful AssertionError."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - everything a student's code may raise
        message = describe_exception(name, type(exc).__name__, str(exc), _failing_line(exc, fn))
    raise AssertionError(message)


def _check_traced(
    fn: Callable,
    name: str,
    args: tuple[np.ndarray, ...],
    kwargs: dict[str, Any],
    expected: np.ndarray,
    what: str,
) -> None:
    """Run ``fn`` the way model.fit does (a traced function, symbolic float32 tensors) and
    compare its result with ``expected`` (float32 precision)."""
    try:
        value = np.asarray(traced_call(fn, args, kwargs))
    except Exception as exc:  # noqa: BLE001 - whatever the tracing raises
        message = symbolic_failure(name, type(exc).__name__, str(exc), _failing_line(exc, fn))
    else:
        if value.shape != expected.shape:
            message = (
                f"{what} has shape {value.shape} inside model.fit; expected "
                f"{expected.shape}. Pass `axis` to every ops.sum."
            )
        else:
            message = next(
                (
                    value_problem(
                        float(f), float(e), f"{what} inside model.fit", rtol=1e-5, atol=1e-6
                    )
                    for f, e in zip(value.ravel(), expected.ravel())
                    if value_problem(float(f), float(e), "", rtol=1e-5, atol=1e-6)
                ),
                None,
            )
    _fail(message)


def _check_signature(fn: Callable, name: str, defaults: Mapping[str, Any]) -> None:
    """The first line of a graded function must stay as given (names and defaults)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins and the like
        _fail(f"{name} must be a plain Python function")
    missing = [p for p in defaults if p not in params]
    if missing:
        _fail(f"{name} lost its parameter(s) {missing}; do not edit the function's first line")
    for param, default in defaults.items():
        found = params[param].default
        if default is inspect.Parameter.empty:
            continue
        if found is inspect.Parameter.empty or found != default:
            shown = "no default" if found is inspect.Parameter.empty else repr(found)
            _fail(
                f"{name}: parameter {param!r} should default to {default!r} (found {shown}); "
                "do not edit the function's first line"
            )


def _array(value: Any, what: str) -> np.ndarray:
    """``value`` as a numpy array, or an AssertionError that says what came back instead."""
    if value is None:
        _fail(f"{what} is None. {PLACEHOLDER_HINT}")
    try:
        return np.asarray(value)
    except Exception as exc:  # noqa: BLE001
        message = f"{what} could not be read as an array ({type(value).__name__}: {exc})"
    raise AssertionError(message)


def _scalar64(value: Any, what: str) -> np.float64:
    """A Dice-style result: one number, float64 (the test inputs are float64)."""
    arr = _array(value, what)
    _fail(scalar_problem(arr.shape, arr.dtype.name, what))
    return np.float64(arr)


def _close(found: float, expected: float, what: str, hint: str = "") -> None:
    _fail(value_problem(found, expected, what, hint))


def _public_test(body: Callable[[Callable], None]) -> Callable[[Callable], None]:
    """Make ``body`` a public test: print ``All tests passed`` when it returns, else raise its
    message from this one clean frame (IPython hides frames marked ``__tracebackhide__``; the
    last frame is always shown, so it is this short one)."""

    @functools.wraps(body)
    def test(fn: Callable) -> None:
        __tracebackhide__ = True  # noqa: F841 - read by IPython and pytest
        try:
            body(fn)
        except AssertionError as exc:
            message = str(exc)
        else:
            print(PASSED)
            return
        raise AssertionError(message) from None

    test.__test__ = False  # a public test is not a pytest test (it takes the student's function)
    return test


@contextlib.contextmanager
def _saved_global_rng():
    """Run with np.random seeded by the test, then give the notebook its old state back."""
    state = np.random.get_state()
    try:
        yield
    finally:
        np.random.set_state(state)


# --------------------------------------------------------------- exercise 1: get_sub_volume


def _toy_volume() -> tuple[np.ndarray, np.ndarray]:
    """The notebook's 4x4x3 toy case: image = i*j*k (one channel), label = k."""
    i, j, k = np.meshgrid(np.arange(4), np.arange(4), np.arange(3), indexing="ij")
    image = (i * j * k).astype(np.float64)[..., np.newaxis]
    label = k.astype(np.float64)
    return image, label


@_public_test
def test_get_sub_volume(get_sub_volume: Callable) -> None:
    """Check ``get_sub_volume`` against replayed random draws, shapes, copies and the give-up path."""
    ex = REGISTRY["C1"]
    name = ex.function
    _check_signature(get_sub_volume, name, ex.signature)
    toy_args = dict(orig_x=4, orig_y=4, orig_z=3, output_x=2, output_y=2, output_z=2, num_classes=3)
    image, label = _toy_volume()
    with _saved_global_rng():
        # 1. The notebook's case: seed 3, three consecutive calls.
        np.random.seed(3)
        corners = replay_corners(label, (2, 2, 2), 0.95, 1000, 3)
        np.random.seed(3)
        results = []
        for n, corner in enumerate(corners, start=1):
            results.append(_call(get_sub_volume, name, image, label, **toy_args))
            _fail(
                patch_problem(
                    results[-1],
                    image,
                    label,
                    corner,
                    (2, 2, 2),
                    3,
                    f"call {n} on the toy volume after np.random.seed(3)",
                )
            )
        first = results[0][0][0]
        if not (
            np.array_equal(first[:, :, 0], [[0, 2], [0, 3]])
            and np.array_equal(first[:, :, 1], [[0, 4], [0, 6]])
        ):
            _fail("the first toy sample differs from the notebook's expected output")

        # 2. A bigger volume with a small tumor: many calls, strict '<' threshold.
        rng = np.random.default_rng(0)
        big_image = rng.normal(size=(12, 10, 8, 2))
        big_label = np.zeros((12, 10, 8))
        big_label[3:9, 2:8, 2:6] = rng.integers(0, 4, size=(6, 6, 4))
        big_label[5:7, 4:6, 3:5] = 3
        args = dict(
            orig_x=12,
            orig_y=10,
            orig_z=8,
            output_x=4,
            output_y=5,
            output_z=2,
            num_classes=4,
            background_threshold=0.75,
        )
        np.random.seed(11)
        corners = replay_corners(big_label, (4, 5, 2), 0.75, 1000, 8)
        np.random.seed(11)
        results = []
        for n, corner in enumerate(corners, start=1):
            results.append(_call(get_sub_volume, name, big_image, big_label, **args))
            what = f"call {n} on a 12x10x8 volume (background_threshold=0.75)"
            if corner is not None:
                _fail(patch_problem(results[-1], big_image, big_label, corner, (4, 5, 2), 4, what))
        # X must be a copy: writing into it must not change the image.
        X = results[0][0]
        before = big_image.copy()
        X[...] = -1.0
        if not np.array_equal(big_image, before):
            _fail("writing into X changed the original image: X must be a copy (np.copy)")

        # 3. The give-up path: no window has enough tumor.
        empty_label = np.zeros((6, 6, 4))
        np.random.seed(5)
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            res = _call(
                get_sub_volume,
                name,
                big_image[:6, :6, :4],
                empty_label,
                orig_x=6,
                orig_y=6,
                orig_z=4,
                output_x=3,
                output_y=3,
                output_z=2,
                max_tries=7,
            )
        printed = buffer.getvalue()
        if res is not None:
            _fail("with an all-background label get_sub_volume must give up and return None")
        if "Tried 7 times to find a sub-volume. Giving up..." not in printed:
            _fail(
                "after max_tries=7 failed tries get_sub_volume should print "
                "'Tried 7 times to find a sub-volume. Giving up...'; it printed "
                f"{printed.strip()!r}. Count every try (tries += 1 inside the loop)."
            )
        state_after = np.random.get_state()[1].copy()
        np.random.seed(5)
        for _ in range(7):
            np.random.randint(0, 4)
            np.random.randint(0, 4)
            np.random.randint(0, 3)
        if not np.array_equal(state_after, np.random.get_state()[1]):
            _fail("get_sub_volume should draw exactly three random numbers per try")


# ------------------------------------------------------------------ exercise 2: standardize


@_public_test
def test_standardize(standardize: Callable) -> None:
    """Check per-(channel, z) standardization, constant slices, dtypes and that the input is kept."""
    ex = REGISTRY["C2"]
    name = ex.function
    _check_signature(standardize, name, ex.signature)
    rng = np.random.default_rng(1)
    image = rng.normal(size=(3, 8, 7, 4))
    image *= rng.uniform(0.5, 40.0, size=(3, 1, 1, 4))
    image += rng.uniform(-100.0, 300.0, size=(3, 1, 1, 4))
    image[0, :, :, 0] = 5.0  # a constant slice first in the loop
    image[2, :, :, 3] = 0.0  # and an all-zero one (background) last
    original = image.copy()

    out = _array(_call(standardize, name, image), "standardize(image)")
    if out.shape == image.shape and not np.array_equal(image, original):
        _fail("standardize changed its input in place; write into a new array instead")
    _fail(standardize_problem(out, image, "standardize(image)"))
    # Integer input must not be truncated.
    ints = rng.integers(0, 1000, size=(2, 5, 5, 3)).astype(np.int16)
    out = _array(_call(standardize, name, ints), "standardize(int16 image)")
    if out.dtype != np.float64 or abs(float(out[0, :, :, 0].std()) - 1.0) > 1e-9:
        _fail(
            "with an integer image standardize must still return float64 slices of std 1 "
            "(start from np.zeros(image.shape), not np.zeros_like(image))"
        )


# ------------------------------------------------------------------------- Dice test data


def _eye_pred() -> np.ndarray:
    return np.eye(2)[:, :, np.newaxis]  # (2, 2, 1)


def _label_a() -> np.ndarray:
    return np.array([[1.0, 1.0], [0.0, 0.0]])[:, :, np.newaxis]


def _label_b() -> np.ndarray:
    return np.array([[1.0, 1.0], [0.0, 1.0]])[:, :, np.newaxis]


def _dice_per_class(
    t: np.ndarray, p: np.ndarray, axis: tuple[int, ...], eps: float, squares: bool = False
) -> np.ndarray:
    """(2 sum(t p) + eps) / (sum(t) + sum(p) + eps) over ``axis`` (squared sums for the loss)."""
    power = 2 if squares else 1
    num = 2 * np.sum(t * p, axis=axis) + eps
    return num / (np.sum(t**power, axis=axis) + np.sum(p**power, axis=axis) + eps)


def _dice_np(t: np.ndarray, p: np.ndarray, axis: tuple[int, ...], eps: float) -> np.float64:
    return np.float64(np.mean(_dice_per_class(t, p, axis, eps)))


def _masks(seed: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """A binary ground truth and a soft prediction of ``shape``."""
    rng = np.random.default_rng(seed)
    return (rng.random(shape) > 0.5).astype(float), np.round(rng.random(shape), 2)


def _check_in_model_fit(
    fn: Callable,
    name: str,
    one: tuple[int, ...],
    batch_axis: tuple[int, ...],
    reduce: Callable[[np.ndarray], np.ndarray],
    squares: bool = False,
) -> None:
    """``fn`` on symbolic tensors: one sample of shape ``one`` with the default ``axis``, and a
    batch of two with ``axis=batch_axis``; ``reduce`` turns per-class Dice into the result."""
    default_axis = tuple(range(len(one) - 3, len(one)))
    t, p = _masks(5, one)
    _check_traced(
        fn,
        name,
        (t, p),
        {},
        reduce(_dice_per_class(t, p, default_axis, 1e-5, squares)),
        f"{name} on a {'x'.join(map(str, one))} sample",
    )
    t, p = _masks(6, (2, *one))
    _check_traced(
        fn,
        name,
        (t, p),
        {"axis": batch_axis},
        reduce(_dice_per_class(t, p, batch_axis, 1e-5, squares)),
        f"{name} on a batch of 2 with axis={batch_axis}",
    )


# ------------------------------------------------ exercise 3: single_class_dice_coefficient


@_public_test
def test_single_class_dice_coefficient(single_class_dice_coefficient: Callable) -> None:
    """Check the one-class Dice: notebook values, a 3-D case, empty masks, the default epsilon,
    ``axis`` on a batch, and the same inside model.fit (symbolic tensors)."""
    ex = REGISTRY["C3"]
    name, fn, hint = ex.function, single_class_dice_coefficient, ex.hint
    _check_signature(fn, name, ex.signature)
    for label, expected, case in ((_label_a(), 0.6, 1), (_label_b(), 0.8333333333333334, 2)):
        value = _scalar64(
            _call(fn, name, label, _eye_pred(), epsilon=1), f"{name} for test case {case}"
        )
        _close(value, expected, f"{name}, test case {case} (epsilon=1)", hint)

    t, p = _masks(2, (4, 3, 5))
    value = _scalar64(_call(fn, name, t, p), f"{name} on a 4x3x5 mask")
    _close(value, _dice_np(t, p, (0, 1, 2), 1e-5), f"{name} on a 4x3x5 mask", hint)

    empty = np.zeros((3, 3, 2))
    value = _scalar64(_call(fn, name, empty, empty.copy()), f"{name} with two empty masks")
    _close(
        value,
        1.0,
        f"{name} with two empty masks (default epsilon)",
        "Two empty masks agree perfectly: epsilon / epsilon = 1.",
    )
    full = np.ones((3, 3, 2))
    value = _scalar64(_call(fn, name, full, empty), f"{name} with an empty prediction")
    if not value < 1e-4:
        _fail(f"{name} with an empty prediction of a full mask should be about 0, got {value:.6f}")

    # `axis` must be honoured: a batch of two masks reduced over (1, 2, 3) gives two values.
    t, p = _masks(3, (2, 4, 3, 5))
    found = _array(_call(fn, name, t, p, axis=(1, 2, 3)), f"{name} with axis=(1, 2, 3)")
    if found.shape != (2,):
        _fail(
            f"{name} on a batch of 2 masks with axis=(1, 2, 3) has shape {found.shape}, "
            "expected (2,): one Dice value per mask. Pass `axis` to every ops.sum."
        )
    for f, e in zip(found, _dice_per_class(t, p, (1, 2, 3), 1e-5)):
        _close(float(f), float(e), f"{name} with axis=(1, 2, 3)", hint)
    _check_in_model_fit(fn, name, (4, 3, 5), (1, 2, 3), lambda per: per)


# -------------------------------------------------------------- exercise 4: dice_coefficient


def _two_class(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    return np.stack([first, second])  # (2, 2, 2, 1)


@_public_test
def test_dice_coefficient(dice_coefficient: Callable) -> None:
    """Check the multi-class Dice: notebook values, per-class mean, empty classes, ``axis``,
    and the same inside model.fit (symbolic tensors)."""
    ex = REGISTRY["C4"]
    name, hint = ex.function, ex.hint
    _check_signature(dice_coefficient, name, ex.signature)
    cases = (
        (_label_a()[np.newaxis], _eye_pred()[np.newaxis], 0.6),
        (_label_b()[np.newaxis], _eye_pred()[np.newaxis], 0.8333333333333334),
        (
            _two_class(_label_a(), _label_b()),
            _two_class(_eye_pred(), _eye_pred()),
            0.7166666666666667,
        ),
    )
    for case, (label, pred, expected) in enumerate(cases, start=1):
        value = _scalar64(
            _call(dice_coefficient, name, label, pred, epsilon=1), f"{name} for test case {case}"
        )
        _close(value, expected, f"{name}, test case {case} (epsilon=1)", hint)

    # An empty class counts as a perfect match (1.0) and is averaged like the others.
    label = _two_class(_label_a(), np.zeros((2, 2, 1)))
    pred = _two_class(_eye_pred(), np.zeros((2, 2, 1)))
    value = _scalar64(_call(dice_coefficient, name, label, pred), f"{name} with an empty class")
    _close(
        value,
        _dice_np(label, pred, (1, 2, 3), 1e-5),
        f"{name} with one class empty in both masks (default epsilon)",
        hint,
    )

    # `axis` must be honoured: a batch (B, classes, X, Y, Z) reduced over (2, 3, 4).
    rng = np.random.default_rng(3)
    t = (rng.random((2, 3, 4, 4, 2)) > 0.6).astype(float)
    p = (rng.random((2, 3, 4, 4, 2)) > 0.5).astype(float)
    value = _scalar64(
        _call(dice_coefficient, name, t, p, axis=(2, 3, 4)), f"{name} with axis=(2, 3, 4)"
    )
    _close(
        value,
        _dice_np(t, p, (2, 3, 4), 1e-5),
        f"{name} with axis=(2, 3, 4)",
        "Pass `axis` to every sum instead of hard-coding the axes.",
    )
    _check_in_model_fit(dice_coefficient, name, (3, 4, 4, 2), (2, 3, 4), np.mean)


# ---------------------------------------------------------------- exercise 5: soft_dice_loss


@_public_test
def test_soft_dice_loss(soft_dice_loss: Callable) -> None:
    """Check the soft Dice loss: the six notebook values, soft inputs, empty masks, and the
    same inside model.fit (symbolic tensors)."""
    ex = REGISTRY["C5"]
    name, hint = ex.function, ex.hint
    _check_signature(soft_dice_loss, name, ex.signature)
    half_eye = 0.5 * _eye_pred()
    soft_eye = _eye_pred()
    soft_eye[0, 1, 0] = 0.8
    block_6 = np.array([[[1.0, 1.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]])
    cases = (
        (_label_a()[None], _eye_pred()[None], 0.4),
        (_label_a()[None], half_eye[None], 0.4285714285714286),
        (_label_b()[None], _eye_pred()[None], 0.16666666666666663),
        (_label_b()[None], soft_eye[None], 0.006024096385542355),
        (_two_class(_label_a(), _label_b()), _two_class(half_eye, soft_eye), 0.21729776247848553),
        (
            np.array(
                [
                    [[[1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 0.0]]],
                    [[[0.0, 0.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 0.0]]],
                ]
            ),
            np.stack([block_6, block_6]),
            0.4375,
        ),
    )
    for case, (label, pred, expected) in enumerate(cases, start=1):
        value = _scalar64(
            _call(soft_dice_loss, name, label, pred, epsilon=1), f"{name} for test case {case}"
        )
        _close(value, expected, f"{name}, test case {case} (epsilon=1)", hint)

    rng = np.random.default_rng(4)
    q = (rng.random((3, 4, 3, 2)) > 0.5).astype(float)
    p = rng.random((3, 4, 3, 2))
    value = _scalar64(_call(soft_dice_loss, name, q, p), f"{name} on soft predictions")
    expected = 1 - np.mean(_dice_per_class(q, p, (1, 2, 3), 1e-5, squares=True))
    _close(
        value,
        expected,
        f"{name} on random soft predictions",
        "Square the predictions and the labels in the denominator.",
    )

    empty = np.zeros((2, 3, 3, 2))
    value = _scalar64(_call(soft_dice_loss, name, empty, empty.copy()), f"{name} with empty masks")
    _close(
        value,
        0.0,
        f"{name} with two empty masks (default epsilon)",
        "Two empty masks agree perfectly, so the loss is 0.",
    )
    _check_in_model_fit(
        soft_dice_loss, name, (3, 4, 4, 2), (2, 3, 4), lambda per: 1 - np.mean(per), squares=True
    )


# ------------------------------------------------------- exercise 6: compute_class_sens_spec


@_public_test
def test_compute_class_sens_spec(compute_class_sens_spec: Callable) -> None:
    """Check sensitivity/specificity values, their np.float64 type and the use of class_num."""
    ex = REGISTRY["C6"]
    name = ex.function
    _check_signature(compute_class_sens_spec, name, ex.signature)
    y_test = [1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    preds_test = [1, 1, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    cases = (
        (_eye_pred()[None], _label_a()[None], 0, (0.5, 0.5)),
        (_eye_pred()[None], _label_b()[None], 0, (0.6666666666666666, 1.0)),
        (np.array([preds_test]), np.array([y_test]), 0, (0.2857142857142857, 0.42857142857142855)),
        # class_num must pick the class: class 1 here is case 1, class 0 is case 2.
        (_two_class(_eye_pred(), _eye_pred()), _two_class(_label_b(), _label_a()), 1, (0.5, 0.5)),
    )
    for case, (pred, label, class_num, expected) in enumerate(cases, start=1):
        result = _call(compute_class_sens_spec, name, pred, label, class_num)
        what = f"{name}, test case {case} (class_num={class_num})"
        if not isinstance(result, tuple) or len(result) != 2:
            _fail(
                f"{what} must return a tuple (sensitivity, specificity); got {result!r}. "
                f"{PLACEHOLDER_HINT}"
            )
        for label_name, value, want in zip(("sensitivity", "specificity"), result, expected):
            if value is None:
                _fail(f"{what}: {label_name} is None. {PLACEHOLDER_HINT}")
            if type(value) is not np.float64:
                _fail(
                    f"{what}: {label_name} has type {type(value).__name__}, expected "
                    "numpy.float64 (count with np.sum and divide the counts)"
                )
            _close(float(value), want, f"{what}: {label_name}", ex.hint)


__all__ = [
    "PASSED",
    "test_compute_class_sens_spec",
    "test_dice_coefficient",
    "test_get_sub_volume",
    "test_single_class_dice_coefficient",
    "test_soft_dice_loss",
    "test_standardize",
]

"""The graded exercises of the course notebook: one record per exercise, in notebook order.

An :class:`Exercise` holds everything the public side of the course knows about one
exercise: the function the student writes and its signature, the public test the notebook
calls, the hidden cases the autograder runs, the kind of result and how a wrong one is
explained, the hint, whether ``model.fit`` runs it on symbolic tensors and the package
functions that already implement it (its *library twins*).

:data:`REGISTRY` maps ``"C1"`` .. ``"C6"`` to the records.  The public tests
(:mod:`tumorseg.course.public_tests`), the in-kernel checks and the grader
(:mod:`tumorseg.course.grading`) and the release all read it; adding an exercise means adding
one record here, its reference implementation on the grader's hidden side
(:data:`tumorseg.course.grading.hidden.reference.REFERENCES`) and its cells in the notebook.

This is the public half: it imports numpy, the hidden inputs (:mod:`tumorseg.course.cases`)
and the feedback helpers (:mod:`tumorseg.course.feedback`), and knows nothing of the reference
solutions, which the hidden side keeps by exercise id.  The grading kernel imports this module
before any student code runs.
"""

from __future__ import annotations

import builtins
import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tumorseg.course import cases, feedback
from tumorseg.course.cases import Case

__all__ = [
    "ARRAY64",
    "PAIR64",
    "REGISTRY",
    "REQUIRED",
    "SCALAR64",
    "SUB_VOLUME",
    "Case",
    "Exercise",
    "diagnose_standardized",
    "diagnose_sub_volume",
    "diagnose_values",
    "grade_id",
    "header",
    "public_test_id",
    "traced_call",
    "unq_id",
]

#: the default of a parameter that has none
REQUIRED = inspect.Parameter.empty
# Kinds of result (``Exercise.result``): the type rules of the in-kernel check.
#: a tuple (X, y) of numpy arrays, or None where no window qualifies (the give-up cases)
SUB_VOLUME = "sub_volume"
#: a float64 numpy array
ARRAY64 = "array64"
#: one float64 number (a float, np.float64, 0-d array or tensor)
SCALAR64 = "scalar64"
#: a tuple of two np.float64 numbers, named by ``Exercise.result_names``
PAIR64 = "pair64"
KINDS = (SUB_VOLUME, ARRAY64, SCALAR64, PAIR64)

Diagnosis = Callable[["Exercise", Any, Any, Case, str], "str | None"]


# --------------------------------------------------------------------------- diagnoses
# ``Exercise.diagnose``: (exercise, found, want, case, what) -> message or None, where ``found``
# and ``want`` are the student's and the reference's values (types already accepted) and
# ``case`` is the hidden ``(args, kwargs, seed)``.


def diagnose_values(exercise: Exercise, found: Any, want: Any, case: Case, what: str) -> str | None:
    """Scalars, or a tuple of named scalars (``exercise.result_names``), against the reference."""
    parts = exercise.result_names if isinstance(want, tuple) else ("",)
    founds, wants = (found, want) if isinstance(want, tuple) else ((found,), (want,))
    for part, f, w in zip(parts, founds, wants):
        problem = feedback.value_problem(
            float(f),
            float(w),
            f"{exercise.function} on {what} {part}".rstrip(),
            exercise.hint,
            rtol=0.0,
            atol=feedback.ATOL,
        )
        if problem:
            return problem
    return None


def diagnose_standardized(
    exercise: Exercise, found: Any, want: Any, case: Case, what: str
) -> str | None:
    """A standardized image (C, X, Y, Z) against its input (the hidden case's first argument)."""
    return feedback.standardize_problem(
        found, np.asarray(case[0][0]), f"{exercise.function} on {what}"
    )


def diagnose_sub_volume(
    exercise: Exercise, found: Any, want: Any, case: Case, what: str
) -> str | None:
    """A sampled ``(X, y)`` against the window that the case's seed must pick (replayed)."""
    args, kwargs, seed = case
    options = {**exercise.default_values(), **kwargs}
    out = (options["output_x"], options["output_y"], options["output_z"])
    corner = feedback.replay_corners(
        args[1],
        out,
        options["background_threshold"],
        options["max_tries"],
        1,
        rng=np.random.RandomState(seed),
    )[0]
    return feedback.patch_problem(
        found, args[0], args[1], corner, out, options["num_classes"], what
    )


@dataclass(frozen=True)
class Exercise:
    """One graded exercise of the notebook (cells ``unq-cN``, ``test-cN``, ``grade-cN``)."""

    #: "C1" .. : the ``UNQ_C1`` header, the cell ids and the report's column
    id: str
    #: the function the student writes
    function: str
    #: its parameters in order, each with its default (:data:`REQUIRED`: none)
    signature: Mapping[str, Any]
    #: the name of its public test in :mod:`tumorseg.course.public_tests`
    public_test: str
    #: the kind of result (:data:`KINDS`): the type rules of the graded check
    result: str
    #: builds the hidden cases ``(args, kwargs, seed)`` (fresh lists; see :mod:`.cases`)
    hidden_cases: Callable[[], list[Case]]
    #: how a wrong value on a hidden check is explained (a ``diagnose_*`` function above)
    diagnose: Diagnosis = diagnose_values
    #: the formula, told whenever a value is wrong ("" for none)
    hint: str = ""
    #: names of the parts of a tuple result, e.g. ("sensitivity", "specificity")
    result_names: tuple[str, ...] = ()
    #: shape of one sample of the model.fit cases; None: not run on symbolic tensors
    symbolic_shape: tuple[int, ...] | None = None
    #: package functions that implement the exercise ("tumorseg.x.y.function"); a graded cell
    #: that imports or calls one of them (through ``tumorseg`` or ``util``) is flagged
    twins: tuple[str, ...] = field(default=())
    #: what a passed exercise is worth in the LMS export (``tumorseg grade --export``)
    points: float = 1

    def __post_init__(self) -> None:
        if self.result not in KINDS:
            raise ValueError(f"{self.id}: unknown result kind {self.result!r} (one of {KINDS})")

    @property
    def symbolic(self) -> bool:
        """Whether ``model.fit`` runs the function on symbolic tensors (the Dice exercises)."""
        return self.symbolic_shape is not None

    def default_values(self) -> dict[str, Any]:
        """The parameters that have a default, with it."""
        return {k: v for k, v in self.signature.items() if v is not REQUIRED}

    @property
    def twin_names(self) -> frozenset[str]:
        """The bare function names of :attr:`twins` (how a cell may spell them)."""
        return frozenset(t.rsplit(".", 1)[-1] for t in self.twins)


# --------------------------------------------------------------------------- notebook cells
def header(exercise: str) -> str:
    """The first line of a graded cell, e.g. ``# UNQ_C1 (UNIQUE CELL IDENTIFIER, DO NOT EDIT)``."""
    return f"# UNQ_{exercise} (UNIQUE CELL IDENTIFIER, DO NOT EDIT)"


def unq_id(exercise: str) -> str:
    """The id of the graded cell the student fills in, e.g. ``unq-c1``."""
    return f"unq-{exercise.lower()}"


def public_test_id(exercise: str) -> str:
    """The id of the cell that runs the exercise's public test, e.g. ``test-c1``."""
    return f"test-{exercise.lower()}"


def grade_id(exercise: str) -> str:
    """The id of the instructor-only graded check cell, e.g. ``grade-c1``."""
    return f"grade-{exercise.lower()}"


# --------------------------------------------------------------------------- the six exercises
def _dice_signature(axis: tuple[int, ...]) -> dict[str, Any]:
    """``(y_true, y_pred, axis=axis, epsilon=0.00001)``."""
    return {"y_true": REQUIRED, "y_pred": REQUIRED, "axis": axis, "epsilon": 0.00001}


REGISTRY: dict[str, Exercise] = {
    ex.id: ex
    for ex in (
        Exercise(
            id="C1",
            function="get_sub_volume",
            signature={
                "image": REQUIRED,
                "label": REQUIRED,
                "orig_x": 240,
                "orig_y": 240,
                "orig_z": 155,
                "output_x": 160,
                "output_y": 160,
                "output_z": 16,
                "num_classes": 4,
                "max_tries": 1000,
                "background_threshold": 0.95,
            },
            public_test="test_get_sub_volume",
            result=SUB_VOLUME,
            result_names=("X", "y"),
            hidden_cases=cases.sub_volume_cases,
            diagnose=diagnose_sub_volume,
            twins=("tumorseg.patches.sample_patch", "tumorseg.patches.sampling.sample_patch"),
        ),
        Exercise(
            id="C2",
            function="standardize",
            signature={"image": REQUIRED},
            public_test="test_standardize",
            result=ARRAY64,
            hidden_cases=cases.standardize_cases,
            diagnose=diagnose_standardized,
            twins=(
                "tumorseg.patches.standardize_patch",
                "tumorseg.patches.standardize.standardize_patch",
            ),
        ),
        Exercise(
            id="C3",
            function="single_class_dice_coefficient",
            signature=_dice_signature((0, 1, 2)),
            public_test="test_single_class_dice_coefficient",
            result=SCALAR64,
            hidden_cases=cases.single_class_dice_cases,
            hint="Dice = (2 * sum(p * t) + epsilon) / (sum(p) + sum(t) + epsilon), every sum "
            "over `axis` (ops.sum(..., axis=axis)); add epsilon to both the numerator and the "
            "denominator.",
            symbolic_shape=(5, 4, 3),
            twins=("tumorseg.model.losses.dice_class", "tumorseg.metrics.core.dice"),
        ),
        Exercise(
            id="C4",
            function="dice_coefficient",
            signature=_dice_signature((1, 2, 3)),
            public_test="test_dice_coefficient",
            result=SCALAR64,
            hidden_cases=cases.dice_cases,
            hint="Sum over `axis` (one value per class), divide, then take the mean over classes "
            "(ops.mean); add epsilon to both the numerator and the denominator.",
            symbolic_shape=(3, 4, 3, 2),
            twins=("tumorseg.model.losses.dice_coefficient",),
        ),
        Exercise(
            id="C5",
            function="soft_dice_loss",
            signature=_dice_signature((1, 2, 3)),
            public_test="test_soft_dice_loss",
            result=SCALAR64,
            hidden_cases=cases.soft_dice_loss_cases,
            hint="loss = 1 - mean over classes of (2*sum(p*q) + eps) / (sum(p**2) + sum(q**2) "
            "+ eps), sums over `axis`.",
            symbolic_shape=(2, 5, 3, 2),
            twins=("tumorseg.model.losses.soft_dice_loss", "tumorseg.model.losses.dice_bce_loss"),
        ),
        Exercise(
            id="C6",
            function="compute_class_sens_spec",
            signature={"pred": REQUIRED, "label": REQUIRED, "class_num": REQUIRED},
            public_test="test_compute_class_sens_spec",
            result=PAIR64,
            result_names=("sensitivity", "specificity"),
            hidden_cases=cases.sens_spec_cases,
            hint="sensitivity = tp / (tp + fn), specificity = tn / (tn + fp), on pred[class_num] "
            "and label[class_num].",
            twins=(
                "tumorseg.metrics.core.class_sens_spec",
                "tumorseg.metrics.core.sensitivity_specificity",
                "tumorseg.metrics.core.sens_spec_table",
            ),
        ),
    )
}


# --------------------------------------------------------------------------- symbolic calls
# pristine references: the grading kernel imports this module before any student code runs
_import_module = importlib.import_module
_asarray = np.asarray
_float32 = np.float32
_callable = builtins.callable
_getattr = builtins.getattr


def traced_call(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call ``fn(*args, **kwargs)`` the way ``model.fit`` calls a loss or metric: inside a
    traced (compiled) function, on symbolic float32 tensors of the Keras backend in use
    (TensorFlow: ``tf.function``; JAX: ``jax.jit``; PyTorch: tensors that require a gradient;
    the numpy backend has no symbolic tensors).  Returns the backend's result tensor."""
    backend = _import_module("keras").backend.backend()
    arrays = [_asarray(a, dtype=_float32) for a in args]
    if backend == "tensorflow":
        tf = _import_module("tensorflow")
        specs = [tf.TensorSpec(a.shape, tf.float32) for a in arrays]
        traced = tf.function(lambda *xs: fn(*xs, **kwargs), input_signature=specs, autograph=False)
        # a concrete function: traced once, and no "frequent retracing" warning on stdout
        return traced.get_concrete_function()(*[tf.constant(a) for a in arrays])
    if backend == "jax":
        return _import_module("jax").jit(lambda *xs: fn(*xs, **kwargs))(*arrays)
    if backend == "torch":
        torch = _import_module("torch")
        result = fn(*[torch.tensor(a, requires_grad=True) for a in arrays], **kwargs)
        return result.detach() if _callable(_getattr(result, "detach", None)) else result
    return fn(*arrays, **kwargs)

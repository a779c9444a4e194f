"""Hidden cases of the six graded exercises and the in-kernel half of every graded check.

This module is self-contained (numpy and the standard library; Keras and its backend only
inside :func:`traced_call`, imported when it runs): the grader writes a copy of it into each
grading folder and the grading kernel imports that copy *before* any student code runs, so
the references below (``_asarray``, ``_seed``, ``_write`` ...) are the pristine objects even
if a student later replaces ``print`` or numpy functions.

What lives here is not secret: the hidden *inputs* and the type rules.  The expected *results*
never enter a grading folder or a kernel.  A graded check cell only knows a digest of the
expected results, rounded to :data:`DECIMALS` decimals, and prints one verdict line::

    UNQ_C3 graded check: passed

nbval compares that line with the stored one.  The check also writes the student's raw results
(JSON, never pickle) to ``$TUMORSEG_GRADER_OUTPUTS/<exercise>.json``; the grader process then
compares them itself with :mod:`tumorseg.course.grading.reference` after every process of the
run is gone, so a student who forges the verdict line still gains nothing.

The Dice exercises also run on the model.fit cases of :func:`symbolic_cases` through
:func:`traced_call` (symbolic tensors, as in training).  Those results go into the raw record
only, not into the digest, and the grader judges them.  An exception is recorded with its
type, message and the failing line of the student's code.

Conventions: ``Case = (args, kwargs, seed)``; a case's seed is passed to ``np.random.seed``
right before the call (``get_sub_volume`` draws its corners from numpy's global generator).
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import importlib
import io
import json
import os
import sys
import traceback
from typing import Any

import numpy as np

EXERCISES: tuple[str, ...] = ("C1", "C2", "C3", "C4", "C5", "C6")
FUNCTIONS: dict[str, str] = {
    "C1": "get_sub_volume",
    "C2": "standardize",
    "C3": "single_class_dice_coefficient",
    "C4": "dice_coefficient",
    "C5": "soft_dice_loss",
    "C6": "compute_class_sens_spec",
}
#: decimals kept by the in-kernel digest; every expected value lies at least
#: :data:`MARGIN` away from a rounding boundary (a unit test checks it)
DECIMALS = 3
MARGIN = 2e-5
#: absolute tolerance of the grader-side comparison (< MARGIN, so both halves agree)
ATOL = 1e-5
#: the environment variable naming the folder for raw results (set only when grading)
OUTPUT_ENV = "TUMORSEG_GRADER_OUTPUTS"
#: results larger than this are not serialised (the check fails them as "too large")
MAX_ELEMENTS = 100_000

Case = tuple[tuple[Any, ...], dict[str, Any], "int | None"]

# --------------------------------------------------------------------------- pristine references
_asarray = np.asarray
_ndarray = np.ndarray
_round = np.round
_seed = np.random.seed
_RandomState = np.random.RandomState
_geterr = np.geterr
_float64 = np.float64
_float32 = np.float32
_type = builtins.type
_len = builtins.len
_id = builtins.id
_getattr = builtins.getattr
_callable = builtins.callable
_sorted = builtins.sorted
_repr = builtins.repr
_open = builtins.open
_str = builtins.str
_import_module = importlib.import_module
_extract_tb = traceback.extract_tb
_redirect_stdout = contextlib.redirect_stdout
_redirect_stderr = contextlib.redirect_stderr
_StringIO = io.StringIO
_dumps = json.dumps
_sha256 = hashlib.sha256
_environ_get = os.environ.get
_path_join = os.path.join
_replace = os.replace
_modules = sys.modules
_stdout = sys.stdout
_write = sys.stdout.write
_flush = sys.stdout.flush

_SCALAR_TYPES = (float, np.float64, np.float32, np.float16)
_TENSOR_PACKAGES = ("tensorflow", "keras", "jax", "jaxlib", "torch")


# --------------------------------------------------------------------------- hidden cases
def _c1_scan(
    rng: np.random.RandomState,
    shape: tuple[int, int, int],
    channels: int,
    box: tuple[slice, slice, slice],
    num_classes: int,
) -> tuple[np.ndarray, np.ndarray]:
    """A scan whose voxel values are distinct integers (so a wrong window is visible) and a
    label map that is background except for random tumor classes inside ``box``."""
    size = int(np.prod(shape)) * channels
    image = rng.permutation(size).astype(np.float64).reshape(*shape, channels)
    label = np.zeros(shape, dtype=np.float64)
    label[box] = rng.randint(1, num_classes, size=label[box].shape)
    return image, label


def _c1_cases() -> list[Case]:
    rng = _RandomState(7101)
    cases: list[Case] = []
    img, lab = _c1_scan(rng, (12, 10, 7), 2, (slice(6, 12), slice(0, 5), slice(2, 7)), 4)
    cases.append(
        (
            (img, lab),
            dict(
                orig_x=12,
                orig_y=10,
                orig_z=7,
                output_x=5,
                output_y=4,
                output_z=3,
                num_classes=4,
                background_threshold=0.8,
            ),
            5,
        )
    )
    img, lab = _c1_scan(rng, (9, 11, 6), 3, (slice(0, 4), slice(5, 11), slice(0, 3)), 3)
    cases.append(
        (
            (img, lab),
            dict(orig_x=9, orig_y=11, orig_z=6, output_x=4, output_y=6, output_z=2, num_classes=3),
            23,
        )
    )
    img, lab = _c1_scan(rng, (8, 8, 5), 1, (slice(2, 8), slice(4, 8), slice(1, 5)), 4)
    cases.append(
        (
            (img, lab),
            dict(
                orig_x=8,
                orig_y=8,
                orig_z=5,
                output_x=8,
                output_y=3,
                output_z=5,
                num_classes=4,
                background_threshold=0.7,
            ),
            101,
        )
    )
    img, lab = _c1_scan(rng, (7, 6, 6), 2, (slice(0, 7), slice(0, 3), slice(3, 6)), 5)
    cases.append(
        (
            (img, lab),
            dict(
                orig_x=7,
                orig_y=6,
                orig_z=6,
                output_x=3,
                output_y=3,
                output_z=3,
                num_classes=5,
                max_tries=50,
                background_threshold=0.5,
            ),
            77,
        )
    )
    # the give-up path: an all-background label, a small max_tries
    img, _ = _c1_scan(rng, (6, 6, 4), 2, (slice(0, 0), slice(0, 0), slice(0, 0)), 4)
    cases.append(
        (
            (img, np.zeros((6, 6, 4))),
            dict(orig_x=6, orig_y=6, orig_z=4, output_x=3, output_y=3, output_z=2, max_tries=9),
            7,
        )
    )
    return cases


def _c2_image(rng: np.random.RandomState, shape: tuple[int, int, int, int]) -> np.ndarray:
    """Each (channel, z) slice is a shuffled, scaled and shifted copy of {-3, -1, 1, 3}: its
    standardized values are +-3/sqrt(5) and +-1/sqrt(5), far from any rounding boundary."""
    c, x, y, z = shape
    assert (x * y) % 4 == 0
    image = np.empty(shape)
    for ci in range(c):
        for zi in range(z):
            values = np.repeat([-3.0, -1.0, 1.0, 3.0], x * y // 4)
            scale, shift = rng.uniform(0.5, 40.0), rng.uniform(-100.0, 300.0)
            image[ci, :, :, zi] = (rng.permutation(values) * scale + shift).reshape(x, y)
    return image


def _c2_cases() -> list[Case]:
    rng = _RandomState(7102)
    cases: list[Case] = [((_c2_image(rng, (2, 4, 3, 3)),), {}, None)]
    flat = _c2_image(rng, (3, 2, 4, 5))
    flat[1, :, :, 2] = 7.5  # constant slices: centered only, so all zeros
    flat[0, :, :, 4] = 0.0
    cases.append(((flat,), {}, None))
    ints = np.zeros((1, 4, 4, 2), dtype=np.int32)
    ints[0, :, :, 0] = rng.permutation(np.repeat([2, 6, 10, 14], 4)).reshape(4, 4)
    ints[0, :, :, 1] = rng.permutation(np.repeat([-9, -3, 3, 9], 4)).reshape(4, 4)
    cases.append(((ints,), {}, None))  # integer input, float64 output
    cases.append(((_c2_image(rng, (2, 1, 4, 2)),), {}, None))  # dim_x == 1
    return cases


def _binary(rng: np.random.RandomState, shape: tuple[int, ...], p: float) -> np.ndarray:
    return (rng.random_sample(shape) < p).astype(np.float64)


def _soft(rng: np.random.RandomState, shape: tuple[int, ...]) -> np.ndarray:
    return np.round(rng.random_sample(shape), 2)


def _c3_cases() -> list[Case]:
    rng = _RandomState(7103)
    return [
        ((_binary(rng, (4, 3, 5), 0.5), _soft(rng, (4, 3, 5))), {}, None),
        ((_binary(rng, (3, 3, 2), 0.4), _binary(rng, (3, 3, 2), 0.6)), dict(epsilon=1.0), None),
        ((np.zeros((2, 2, 2)), np.zeros((2, 2, 2))), dict(epsilon=0.5), None),
        ((np.ones((3, 2, 2)), np.zeros((3, 2, 2))), {}, None),
        (
            (_binary(rng, (5, 2, 3), 0.3), _binary(rng, (5, 2, 3), 0.3)),
            dict(axis=(0, 1, 2), epsilon=0.01),
            None,
        ),
    ]


def _c4_cases() -> list[Case]:
    rng = _RandomState(7104)
    empty_class = _binary(rng, (3, 2, 2, 3), 0.5)
    empty_pred = _binary(rng, (3, 2, 2, 3), 0.5)
    empty_class[1] = 0.0
    empty_pred[1] = 0.0
    return [
        ((_binary(rng, (3, 4, 4, 2), 0.5), _binary(rng, (3, 4, 4, 2), 0.5)), {}, None),
        ((_binary(rng, (2, 3, 5, 4), 0.3), _soft(rng, (2, 3, 5, 4))), dict(epsilon=1.0), None),
        ((empty_class, empty_pred), {}, None),
        (
            (_binary(rng, (4, 2, 3, 2), 0.6), _soft(rng, (4, 2, 3, 2))),
            dict(axis=(1, 2, 3), epsilon=0.1),
            None,
        ),
    ]


def _c5_cases() -> list[Case]:
    rng = _RandomState(7105)
    same = _binary(rng, (2, 3, 3, 2), 0.5)
    return [
        ((_binary(rng, (3, 4, 3, 2), 0.5), _soft(rng, (3, 4, 3, 2))), {}, None),
        ((_soft(rng, (2, 5, 2, 3)), _soft(rng, (2, 5, 2, 3))), dict(epsilon=1.0), None),
        ((same, same.copy()), {}, None),
        ((_binary(rng, (4, 2, 2, 3), 0.4), _soft(rng, (4, 2, 2, 3))), dict(epsilon=0.1), None),
    ]


def _c6_cases() -> list[Case]:
    rng = _RandomState(7106)
    pred, label = _binary(rng, (3, 4, 4, 3), 0.5), _binary(rng, (3, 4, 4, 3), 0.4)
    p2, l2 = _binary(rng, (2, 5, 3, 2), 0.6), _binary(rng, (2, 5, 3, 2), 0.5)
    p3 = _binary(rng, (2, 6, 2, 2), 0.5).astype(np.int64)
    l3 = _binary(rng, (2, 6, 2, 2), 0.5).astype(np.int64)
    return [
        ((pred, label, 0), {}, None),
        ((pred, label, 2), {}, None),
        ((p2, l2), dict(class_num=1), None),
        ((p3, l3, 0), {}, None),
    ]


_CASE_BUILDERS = {
    "C1": _c1_cases,
    "C2": _c2_cases,
    "C3": _c3_cases,
    "C4": _c4_cases,
    "C5": _c5_cases,
    "C6": _c6_cases,
}


def cases(exercise: str) -> list[Case]:
    """The hidden cases of one exercise, freshly built (callers may mutate them)."""
    return _CASE_BUILDERS[exercise]()


#: exercises that model.fit calls on symbolic tensors, and the shapes of their model.fit cases:
#: one sample with the default ``axis``, then a batch of two with ``axis`` over its last three
SYMBOLIC: dict[str, tuple[int, ...]] = {"C3": (5, 4, 3), "C4": (3, 4, 3, 2), "C5": (2, 5, 3, 2)}


def symbolic_cases(exercise: str) -> list[Case]:
    """The hidden model.fit cases of a Dice exercise (:data:`SYMBOLIC`), run through
    :func:`traced_call`; their results are judged outside (not part of the digest)."""
    shape = SYMBOLIC[exercise]
    rng = _RandomState(7200 + EXERCISES.index(exercise))
    batch_axis = tuple(range(len(shape) - 2, len(shape) + 1))
    return [
        ((_binary(rng, shape, 0.5), _soft(rng, shape)), {}, None),
        ((_binary(rng, (2, *shape), 0.4), _soft(rng, (2, *shape))), {"axis": batch_axis}, None),
    ]


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


# --------------------------------------------------------------------------- canonical results
def canonical(value: Any, depth: int = 0) -> dict[str, Any]:
    """A JSON-safe description of a returned value, with *exact* types.

    Arrays (and tensors, read through ``np.asarray``) become ``{"t", "dtype", "shape", "data"}``
    only when the conversion gives a genuine ``np.ndarray`` of booleans or numbers, so objects
    with a doctored ``__eq__`` or ``__float__`` are reported by type name and never compared.
    """
    t = _type(value)
    if value is None:
        return {"t": "None"}
    if t is tuple or t is list:
        if depth >= 3 or _len(value) > 8:
            return {"t": t.__name__, "too_big": True}
        return {"t": t.__name__, "items": [canonical(v, depth + 1) for v in value]}
    if t is bool or t is int or t is float:
        return {"t": t.__name__, "data": value}
    module = _getattr(t, "__module__", "") or ""
    if t is _ndarray or (t in _SCALAR_TYPES and t is not float):
        name = "numpy.ndarray" if t is _ndarray else "numpy." + t.__name__
    elif module.split(".")[0] in _TENSOR_PACKAGES:
        name = "tensor"
    else:
        return {"t": "other", "name": f"{module}.{_getattr(t, '__qualname__', '?')}"}
    try:
        arr = _asarray(value)
    except Exception:  # noqa: BLE001 - a tensor that cannot be read is just "other"
        return {"t": "other", "name": name}
    if _type(arr) is not _ndarray or arr.dtype.kind not in "biuf":
        return {"t": "other", "name": name}
    if arr.size > MAX_ELEMENTS:
        return {"t": name, "too_big": True}
    return {
        "t": name,
        "dtype": arr.dtype.name,
        "shape": list(arr.shape),
        "data": arr.ravel().tolist(),
    }


def is_array_payload(raw: Any) -> bool:
    """True when ``raw`` is an encoded array: a dict with ``data``, ``shape`` and ``dtype``."""
    return isinstance(raw, dict) and "data" in raw and "shape" in raw and "dtype" in raw


def _scalar_problem(raw: Any, need_type: str | None = None) -> str | None:
    """None when ``raw`` is one float64 number (a float, np.float64, 0-d array or tensor)."""
    t = raw.get("t") if isinstance(raw, dict) else None
    if need_type is not None and t != need_type:
        return f"returned {describe_payload(raw)}, expected {need_type}"
    if t not in ("float", "numpy.float64", "numpy.ndarray", "tensor"):
        return f"returned {describe_payload(raw)}, expected a single float64 number"
    if t != "float" and (
        not is_array_payload(raw) or raw["shape"] != [] or raw["dtype"] != "float64"
    ):
        if is_array_payload(raw) and raw["shape"] != []:
            return "returned an array with several values, expected a single number"
        return f"returned {describe_payload(raw)}, expected a single float64 number"
    return None


def describe_payload(raw: Any) -> str:
    """A few words on what an encoded return value was, e.g. "an array of dtype int64"."""
    if not isinstance(raw, dict):
        return "something unreadable"
    t = raw.get("t")
    if t == "other":
        return f"an object of type {str(raw.get('name', '?'))[:60]}"
    if is_array_payload(raw) and t in ("numpy.ndarray", "tensor"):
        return f"{'a tensor' if t == 'tensor' else 'an array'} of dtype {raw['dtype']}"
    return str(t)[:60]


def type_problem(exercise: str, raw: Any, gave_up: bool = False) -> str | None:
    """Why a canonical result has the wrong type or structure, or None when it is acceptable.

    ``gave_up`` is True for the case of ``get_sub_volume`` where no window qualifies."""
    if not isinstance(raw, dict):
        return "unreadable result"
    t = raw.get("t")
    if exercise == "C1":
        if gave_up:
            return (
                None
                if t == "None"
                else f"returned {describe_payload(raw)} although no window qualifies (expected None)"
            )
        if t != "tuple" or _len(raw.get("items", ())) != 2:
            return f"returned {describe_payload(raw)}, expected a tuple (X, y)"
        for part, item in zip(("X", "y"), raw["items"]):
            if not (
                isinstance(item, dict)
                and item.get("t") == "numpy.ndarray"
                and is_array_payload(item)
            ):
                return f"{part} is {describe_payload(item)}, expected a numpy array"
        return None
    if exercise == "C2":
        if t != "numpy.ndarray" or not is_array_payload(raw):
            return f"returned {describe_payload(raw)}, expected a numpy array"
        if raw["dtype"] != "float64":
            return f"returned an array of dtype {raw['dtype']}, expected float64"
        return None
    if exercise in ("C3", "C4", "C5"):
        return _scalar_problem(raw)
    if exercise == "C6":
        if t != "tuple" or _len(raw.get("items", ())) != 2:
            return f"returned {describe_payload(raw)}, expected a tuple (sensitivity, specificity)"
        for item in raw["items"]:
            problem = _scalar_problem(item, need_type="numpy.float64")
            if problem:
                return problem
        return None
    raise KeyError(exercise)


def values(raw: dict[str, Any]) -> Any:
    """The numbers of an accepted canonical result: None, a float64 array or a tuple of them."""
    t = raw["t"]
    if t == "None":
        return None
    if t in ("tuple", "list"):
        return tuple(values(item) for item in raw["items"])
    if t in ("float", "int", "bool"):
        return _asarray(float(raw["data"]), dtype=_float64)
    return _asarray(raw["data"], dtype=_float64).reshape(raw["shape"])


def _rounded(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, tuple):
        return [_rounded(v) for v in value]
    # + 0.0 turns -0.0 into 0.0; repr keeps the text exact and platform independent
    return [list(value.shape), [_repr(float(v)) for v in (_round(value, DECIMALS) + 0.0).ravel()]]


def fingerprint(exercise: str, results: list[dict[str, Any]]) -> str:
    """Digest of a list of per-case results (``{"raised": name}`` or ``{"value": canonical}``):
    wrong types, exceptions and values rounded to :data:`DECIMALS` decimals all count."""
    parts: list[Any] = []
    gave_up = gave_up_cases(exercise)
    for index, result in enumerate(results):
        if not isinstance(result, dict) or "value" not in result:
            parts.append("raised")
            continue
        if type_problem(exercise, result["value"], index in gave_up):
            parts.append("type")
            continue
        parts.append(_rounded(values(result["value"])))
    return _sha256(_dumps([exercise, parts]).encode()).hexdigest()[:20]


def gave_up_cases(exercise: str) -> set[int]:
    """Indices of the cases where ``get_sub_volume`` must give up (all-background label)."""
    if exercise != "C1":
        return set()
    return {i for i, (args, _, _) in enumerate(cases("C1")) if not np.any(args[1])}


# --------------------------------------------------------------------------- in-kernel check
def _raised(exc: BaseException, fn: Any) -> dict[str, str]:
    """What the grader tells about an exception: its type, message and the failing line of
    the student's own code (the deepest line when the student's frames are unknown)."""
    record = {
        "raised": _getattr(_type(exc), "__name__", "Exception")[:60],
        "message": "",
        "line": "",
    }
    try:
        record["message"] = _str(exc)[:300]
        own = _getattr(_getattr(fn, "__code__", None), "co_filename", None)
        frames = _extract_tb(exc.__traceback__)
        where = [f for f in frames if f.filename == own] or frames[-1:]
        record["line"] = (where[-1].line or "")[:200] if where else ""
    except Exception:  # noqa: BLE001 - a student's exception may refuse to be printed
        pass
    return record


def call_student(exercise: str, fn: Any, symbolic: bool = False) -> list[dict[str, Any]]:
    """Run ``fn`` on every hidden case (``symbolic``: the model.fit cases, through
    :func:`traced_call`): seed right before the call, swallow what it prints."""
    results: list[dict[str, Any]] = []
    for args, kwargs, seed in symbolic_cases(exercise) if symbolic else cases(exercise):
        sink = _StringIO()
        try:
            with _redirect_stdout(sink), _redirect_stderr(sink):
                if seed is not None:
                    _seed(seed)
                value = traced_call(fn, args, kwargs) if symbolic else fn(*args, **kwargs)
            results.append({"value": canonical(value)})
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - KeyboardInterrupt still stops us
            results.append(_raised(exc, fn))
    return results


_STATE_MODULES = (
    "builtins",
    "numpy",
    "numpy.random",
    "math",
    "io",
    "contextlib",
    "keras",
    "keras.ops",
    "keras.utils",
    "tensorflow",
)
#: names the kernel itself rebinds on every execution (ipykernel forwards input() per request)
_VOLATILE = frozenset({"input", "raw_input", "getpass"})
_before: dict[str, dict[str, str]] = {}


def state_token() -> dict[str, str]:
    """Identity fingerprints of the modules a later exercise relies on (monkeypatch detector)."""
    token: dict[str, str] = {}
    for name in _STATE_MODULES:
        module = _modules.get(name)
        if module is None:
            continue
        items = _sorted(
            (k, _id(v))
            for k, v in _getattr(module, "__dict__", {}).items()
            if not k.startswith("_") and k not in _VOLATILE
        )
        token[name] = _sha256(_repr(items).encode()).hexdigest()
    token["streams"] = _repr((_id(sys.stdout), _id(sys.stderr), _sorted(_geterr().items())))
    keras = _modules.get("keras")
    if keras is not None:
        try:
            token["floatx"] = _repr(keras.config.floatx())
        except Exception:  # noqa: BLE001
            token["floatx"] = "?"
    return token


def mark_before(exercise: str) -> None:
    """Remember the module state right before the student's cell for ``exercise`` runs."""
    _before[exercise] = state_token()


def _changed(old: dict[str, str] | None, new: dict[str, str]) -> list[str]:
    """Names of the module states that differ (everything when there is no "before")."""
    if old is None:
        return ["?"]
    return [key for key in old if key in new and old[key] != new[key]]


def check(exercise: str, fn: Any, expect: str) -> None:
    """The graded check of one exercise; prints exactly one verdict line.

    ``expect`` is the digest of the reference results (see :func:`fingerprint`)."""
    defined = _callable(fn)
    results = call_student(exercise, fn) if defined else []
    passed = defined and fingerprint(exercise, results) == expect
    changed = _changed(_before.get(exercise), state_token())
    # after the state token: tracing may load parts of TensorFlow lazily
    symbolic = call_student(exercise, fn, symbolic=True) if defined and exercise in SYMBOLIC else []
    record = {
        "exercise": exercise,
        "defined": defined,
        "results": results,
        "symbolic": symbolic,
        "changed": bool(changed),
        "changed_modules": changed,
    }
    folder = _environ_get(OUTPUT_ENV)
    if folder:
        path = _path_join(folder, f"{exercise}.json")
        with _open(path + ".part", "w", encoding="utf-8") as fh:
            fh.write(_dumps(record))
        _replace(path + ".part", path)
    _write(verdict(exercise, passed) + "\n")
    _flush()


def verdict(exercise: str, passed: bool) -> str:
    """The one line a graded check prints."""
    return f"UNQ_{exercise} graded check: {'passed' if passed else 'failed'}"

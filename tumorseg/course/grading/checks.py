"""The in-kernel half of every graded check: run the student's function on the hidden cases.

It imports numpy, the standard library and the public exercise records (``exercises``,
``cases``, ``feedback``); Keras only inside :func:`traced_call`.  The grader copies it into each
grading folder and the kernel imports it *before* any student code runs, so its references
(``_asarray``, ``_seed``, ``_write`` ...) stay pristine even if a student replaces ``print``.

Not secret here: the hidden *inputs* and the type rules.  The expected *results* never enter a
grading folder or a kernel: a check cell knows only their digest (rounded to :data:`DECIMALS`
decimals) and prints one verdict line (``UNQ_C3 graded check: passed``) that nbval compares
with the stored one.  The raw results also go (JSON, never pickle) to
``$TUMORSEG_GRADER_OUTPUTS/<exercise>.json``; the grader decodes them (:func:`decode_records`)
and compares them itself (``hidden.judge``) once the run is gone, so a forged verdict gains
nothing.  The Dice exercises also run on the model.fit cases of :func:`symbolic_cases` through
:func:`traced_call` (raw record only, not the digest).  An exception is recorded with its type,
message and the student's failing line.

Conventions: ``Case = (args, kwargs, seed)``; a case's seed is passed to ``np.random.seed``
right before the call (``get_sub_volume`` draws its corners from numpy's global generator).
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import io
import json
import os
import sys
import traceback
from typing import Any

import numpy as np

from tumorseg.course.cases import Case, binary, soft
from tumorseg.course.exercises import (
    PAIR64,
    REGISTRY,
    SCALAR64,
    SUB_VOLUME,
    Exercise,
    traced_call,
)

#: decimals of the in-kernel digest; each expected value is MARGIN from a rounding boundary
DECIMALS = 3
MARGIN = 2e-5
#: the environment variable naming the folder for raw results (set only when grading)
OUTPUT_ENV = "TUMORSEG_GRADER_OUTPUTS"
#: results larger than this are not serialised (the check fails them as "too large")
MAX_ELEMENTS = 100_000

# pristine references, grouped by where they come from
_asarray, _ndarray, _round, _seed = np.asarray, np.ndarray, np.round, np.random.seed
_RandomState, _geterr, _float64 = np.random.RandomState, np.geterr, np.float64
_type, _len, _id, _getattr = builtins.type, builtins.len, builtins.id, builtins.getattr
_callable, _sorted, _repr = builtins.callable, builtins.sorted, builtins.repr
_open, _str, _extract_tb = builtins.open, builtins.str, traceback.extract_tb
_redirect_stdout, _redirect_stderr = contextlib.redirect_stdout, contextlib.redirect_stderr
_StringIO, _dumps, _sha256 = io.StringIO, json.dumps, hashlib.sha256
_environ_get, _path_join, _replace = os.environ.get, os.path.join, os.replace
_modules, _stdout, _write, _flush = sys.modules, sys.stdout, sys.stdout.write, sys.stdout.flush

_SCALAR_TYPES = (float, np.float64, np.float32, np.float16)
_TENSOR_PACKAGES = ("tensorflow", "keras", "jax", "jaxlib", "torch")


def cases(exercise: str) -> list[Case]:
    """The hidden cases of one exercise, freshly built (callers may mutate them)."""
    return REGISTRY[exercise].hidden_cases()


def symbolic_cases(exercise: str) -> list[Case]:
    """The hidden model.fit cases of an exercise that runs on symbolic tensors
    (``Exercise.symbolic_shape``): one sample with the default ``axis``, then a batch of two
    with ``axis`` over its last three axes.  Run through :func:`traced_call`; their results are
    judged outside (not part of the digest)."""
    shape = REGISTRY[exercise].symbolic_shape
    if shape is None:
        raise KeyError(f"{exercise} does not run on symbolic tensors")
    rng = _RandomState(7200 + list(REGISTRY).index(exercise))
    batch_axis = tuple(range(len(shape) - 2, len(shape) + 1))
    return [
        ((binary(rng, shape, 0.5), soft(rng, shape)), {}, None),
        ((binary(rng, (2, *shape), 0.4), soft(rng, (2, *shape))), {"axis": batch_axis}, None),
    ]


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


def _tuple_problem(exercise: Exercise, raw: dict[str, Any]) -> str | None:
    """None when ``raw`` is a tuple with one item per ``exercise.result_names``."""
    names = exercise.result_names
    if raw.get("t") != "tuple" or _len(raw.get("items", ())) != _len(names):
        return f"returned {describe_payload(raw)}, expected a tuple ({', '.join(names)})"
    return None


def _sub_volume_problem(exercise: Exercise, raw: dict[str, Any], gave_up: bool) -> str | None:
    """A tuple (X, y) of numpy arrays, or None on a give-up case."""
    if gave_up:
        if raw.get("t") == "None":
            return None
        return f"returned {describe_payload(raw)} although no window qualifies (expected None)"
    problem = _tuple_problem(exercise, raw)
    if problem:
        return problem
    for part, item in zip(exercise.result_names, raw["items"]):
        if not (
            isinstance(item, dict) and item.get("t") == "numpy.ndarray" and is_array_payload(item)
        ):
            return f"{part} is {describe_payload(item)}, expected a numpy array"
    return None


def type_problem(exercise: str, raw: Any, gave_up: bool = False) -> str | None:
    """Why a canonical result has the wrong type or structure for the exercise's kind of result
    (``Exercise.result``), or None when it is acceptable.

    ``gave_up`` is True for a case where no window qualifies (:func:`gave_up_cases`)."""
    ex = REGISTRY[exercise]
    if not isinstance(raw, dict):
        return "unreadable result"
    if ex.result == SUB_VOLUME:
        return _sub_volume_problem(ex, raw, gave_up)
    if ex.result == SCALAR64:
        return _scalar_problem(raw)
    if ex.result == PAIR64:
        problem = _tuple_problem(ex, raw)
        for item in [] if problem else raw["items"]:
            problem = problem or _scalar_problem(item, need_type="numpy.float64")
        return problem
    # ARRAY64
    if raw.get("t") != "numpy.ndarray" or not is_array_payload(raw):
        return f"returned {describe_payload(raw)}, expected a numpy array"
    if raw["dtype"] != "float64":
        return f"returned an array of dtype {raw['dtype']}, expected float64"
    return None


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


_SYMBOLIC_TYPES = ("tensor", "numpy.ndarray", "numpy.float32", "numpy.float64")


def _decode(exercise: str, found: Any, gave_up: bool, symbolic: bool) -> tuple[str, Any]:
    """``("raised", rec)``, ``("type", why)``, ``("values", v)`` or ``("unreadable", None)``."""
    if not isinstance(found, dict) or "value" not in found:
        return "raised", found if isinstance(found, dict) else {}
    raw = found["value"]
    try:
        if symbolic and (not is_array_payload(raw) or raw.get("t") not in _SYMBOLIC_TYPES):
            return "type", describe_payload(raw)
        problem = None if symbolic else type_problem(exercise, raw, gave_up)
        return ("type", problem) if problem else ("values", values(raw))
    except Exception:  # noqa: BLE001 - malformed (possibly forged) JSON
        return "unreadable", None


def decode_records(records: dict[str, Any], gave_up: dict[str, Any]) -> dict[str, Any]:
    """The grader's one reading of a run's raw records (untrusted JSON): per exercise, its hidden
    and model.fit cases by :func:`_decode`; ``gave_up``: exercise -> :func:`gave_up_cases`."""
    out: dict[str, Any] = {}
    for ex, record in records.items():
        rec = record if isinstance(record, dict) else {}
        out[ex] = {
            part: [
                _decode(ex, found, i in gave_up.get(ex, ()), part == "symbolic")
                for i, found in enumerate(rec[part] if isinstance(rec.get(part), list) else [])
            ]
            for part in ("results", "symbolic")
        }
    return out


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
    """Indices of the cases where a sampler (``SUB_VOLUME``) must give up: all-background label."""
    if REGISTRY[exercise].result != SUB_VOLUME:
        return set()
    return {i for i, (args, _, _) in enumerate(cases(exercise)) if not np.any(args[1])}


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


_STATE_MODULES = tuple(
    "builtins numpy numpy.random math io contextlib keras keras.ops keras.utils tensorflow".split()
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
    symbolic = (
        call_student(exercise, fn, symbolic=True) if defined and REGISTRY[exercise].symbolic else []
    )
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

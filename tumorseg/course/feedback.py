"""Feedback on a graded function's result, shared by the public tests and the autograder.

Each ``*_problem`` function returns the message for the student, or None when the value is
right; :func:`describe_exception` and :func:`symbolic_failure` phrase an exception raised by
the student's function.  The exercise records (:mod:`tumorseg.course.exercises`) adapt them to
one hidden check of an exercise (``Exercise.diagnose``).

Both halves of the course build their messages here: :mod:`tumorseg.course.public_tests` (the
students' immediate feedback) and the autograder's judge on hidden checks.  It imports only
numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: absolute tolerance of the grader-side comparison of values (below the digest's margin,
#: ``tumorseg.course.grading.checks.MARGIN``, so both halves of a check agree)
ATOL = 1e-5
#: what to do when a Dice function fails on symbolic tensors
KERAS_HINT = (
    "Hint: use keras.ops (imported as ops), not numpy: this function runs inside "
    "model.fit, on symbolic tensors."
)
#: what to do when a placeholder was left in place
PLACEHOLDER_HINT = (
    "Hint: every `None` between '### START CODE HERE' and '### END CODE HERE' "
    "must be replaced by your code."
)


def describe_exception(name: str, ename: str, message: str, line: str = "") -> str:
    """What to tell a student whose function ``name`` raised ``ename: message`` at ``line``."""
    text = f"{name} raised {ename}: {message}".rstrip(": ")
    if line:
        text += f"\n  failing line: {line.strip()}"
    if "NoneType" in message or "None" in line.split("#")[0]:
        text += f"\n{PLACEHOLDER_HINT}"
    elif "high <= " in message:
        text += (
            "\nHint: np.random.randint(low, high) never returns `high` and needs high > low: "
            "draw each corner with np.random.randint(0, orig - output + 1)."
        )
    return text


def symbolic_failure(name: str, ename: str, message: str, line: str = "") -> str:
    """What to tell a student whose function fails on symbolic tensors (inside model.fit)."""
    text = (
        f"{name} does not work on symbolic tensors, the way model.fit calls it: "
        f"{ename}: {message[:200]}"
    )
    if line:
        text += f"\n  failing line: {line.strip()}"
    return f"{text}\n{KERAS_HINT}"


def scalar_problem(shape: Sequence[int], dtype: str, what: str) -> str | None:
    """A Dice-style result must be one float64 number (the inputs are float64)."""
    if tuple(shape) != ():
        return (
            f"{what} has shape {tuple(shape)}; a single number is expected. "
            "Average the per-class values with keras.ops.mean (and sum over `axis` only)."
        )
    if dtype != "float64":
        return (
            f"{what} has dtype {dtype}; with float64 inputs the result must stay float64 "
            "(do not cast the inputs or the result)."
        )
    return None


def value_problem(
    found: float, expected: float, what: str, hint: str = "", rtol: float = 1e-6, atol: float = 1e-9
) -> str | None:
    """``found`` must be close to ``expected``; NaN and infinity are named as such."""
    if np.isfinite(found) and np.isclose(found, expected, rtol=rtol, atol=atol):
        return None
    if not np.isfinite(found):
        return (
            f"{what}: expected {expected:.6f}, got {found}: a division by zero? Add epsilon "
            f"to the numerator and the denominator. {hint}"
        ).rstrip()
    return f"{what}: expected {expected:.6f}, got {found:.6f}. {hint}".rstrip()


def patch_problem(
    result: Any,
    image: np.ndarray,
    label: np.ndarray,
    corner: tuple[int, int, int] | None,
    out: Sequence[int],
    num_classes: int,
    what: str,
) -> str | None:
    """``get_sub_volume``'s result for one call whose window must start at ``corner`` (None:
    no window qualifies, so the result must be None)."""
    if corner is None:
        if result is not None:
            return (
                f"with an all-background label get_sub_volume must give up and return None ({what})"
            )
        return None
    if result is None:
        return (
            f"get_sub_volume returned None for {what}, although a valid sub-volume exists. "
            "Did you fill in every None between the markers, and does the loop return "
            "(X, y) as soon as the background ratio is below the threshold?"
        )
    if not isinstance(result, tuple) or len(result) != 2:
        return f"get_sub_volume must return a tuple (X, y); got {type(result).__name__}"
    X, y = (np.asarray(v) for v in result)
    channels = image.shape[-1]
    if X.shape != (channels, *out):
        return (
            f"X has shape {X.shape} for {what}; expected {(channels, *out)} "
            "(channels first: move the last axis to the front with np.moveaxis)"
        )
    if y.shape != (num_classes - 1, *out):
        return (
            f"y has shape {y.shape} for {what}; expected {(num_classes - 1, *out)}: one-hot "
            "with num_classes classes, classes moved to the front, background class dropped"
        )
    sx, sy, sz = corner
    window = (slice(sx, sx + out[0]), slice(sy, sy + out[1]), slice(sz, sz + out[2]))
    if not np.array_equal(X, np.moveaxis(image[window], -1, 0)):
        return (
            f"X holds the wrong voxels for {what}. Draw the corner with three calls "
            "np.random.randint(0, orig - output + 1) in the order x, y, z, once per try, and "
            "slice image[start_x:start_x + output_x, start_y:..., start_z:..., :]"
        )
    expected_y = np.stack([label[window] == c for c in range(1, num_classes)]).astype(float)
    if not np.array_equal(y, expected_y):
        return (
            f"y is not the one-hot label of the sampled window for {what} "
            "(classes first, background class 0 removed)"
        )
    return None


def standardize_problem(out: np.ndarray, image: np.ndarray, what: str) -> str | None:
    """``standardize``'s result for ``image`` (C, X, Y, Z): every (channel, z) slice centred
    and scaled to std 1, constant slices all zeros."""
    if out.shape != image.shape:
        return f"{what} has shape {out.shape}; expected the input's {image.shape}"
    if out.dtype != np.float64:
        return f"{what} has dtype {out.dtype}; expected float64"
    if not np.all(np.isfinite(out)):
        bad = tuple(int(a) for a in np.argwhere(~np.isfinite(out))[0])
        return (
            f"{what} holds NaN/inf (first at index {bad}); a constant slice has std 0: "
            "only divide by the std when it is not zero"
        )
    slices = [(c, z) for c in range(image.shape[0]) for z in range(image.shape[3])]
    # ordinary slices first, so a wrong formula is reported as such; constant slices last
    slices.sort(key=lambda cz: image[cz[0], :, :, cz[1]].std() == 0)
    for c, z in slices:
        sl = image[c, :, :, z].astype(np.float64)
        centered = sl - sl.mean()
        expected = centered / sl.std() if sl.std() != 0 else centered
        if np.allclose(out[c, :, :, z], expected, atol=1e-9):
            continue
        if sl.std() == 0:
            return (
                f"slice (channel {c}, z {z}) of {what} is constant, so it should come out as "
                "all zeros (centered, not divided); make sure you do not reuse the result "
                "of a previous slice"
            )
        return (
            f"slice (channel {c}, z {z}) of {what} is not standardized: expected mean 0 and "
            f"std 1, got mean {out[c, :, :, z].mean():.3f} and std "
            f"{out[c, :, :, z].std():.3f}. Use that slice's own mean and std."
        )
    return None


def replay_corners(
    label: np.ndarray,
    out: Sequence[int],
    threshold: float,
    max_tries: int,
    n_calls: int,
    rng: Any = np.random,
) -> list[tuple[int, int, int] | None]:
    """The corners ``get_sub_volume`` must pick in ``n_calls`` calls, by replaying the random
    draws (x, y, z per try) of ``rng`` (numpy's global generator by default)."""
    corners: list[tuple[int, int, int] | None] = []
    size = int(np.prod(out))
    for _ in range(n_calls):
        found = None
        for _try in range(max_tries):
            sx, sy, sz = (rng.randint(0, label.shape[a] - out[a] + 1) for a in range(3))
            window = label[sx : sx + out[0], sy : sy + out[1], sz : sz + out[2]]
            if np.count_nonzero(window == 0) / size < threshold:
                found = (sx, sy, sz)
                break
        corners.append(found)
    return corners

"""The hidden inputs of the six graded checks, one builder per exercise.

Each builder returns a fresh list of cases ``(args, kwargs, seed)`` (callers may mutate
them); a case's seed is passed to ``np.random.seed`` right before the call
(``get_sub_volume`` draws its corners from numpy's global generator).  The builders are named
by their exercise's record (``Exercise.hidden_cases`` in :mod:`tumorseg.course.exercises`).

The inputs are not secret: the grading kernel runs the student's function on them, so the
function sees them anyway.  What stays hidden is the reference implementation and the expected
results (:mod:`tumorseg.course.grading.hidden`).  numpy and the standard library only: the
grading kernel imports this module before any student code runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Case = tuple[tuple[Any, ...], dict[str, Any], "int | None"]

_RandomState = np.random.RandomState  # pristine: captured before any student code runs


def _scan(
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


def sub_volume_cases() -> list[Case]:
    """``get_sub_volume``: four scans with a tumour box, then an all-background give-up case."""
    rng = _RandomState(7101)
    cases: list[Case] = []
    img, lab = _scan(rng, (12, 10, 7), 2, (slice(6, 12), slice(0, 5), slice(2, 7)), 4)
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
    img, lab = _scan(rng, (9, 11, 6), 3, (slice(0, 4), slice(5, 11), slice(0, 3)), 3)
    cases.append(
        (
            (img, lab),
            dict(orig_x=9, orig_y=11, orig_z=6, output_x=4, output_y=6, output_z=2, num_classes=3),
            23,
        )
    )
    img, lab = _scan(rng, (8, 8, 5), 1, (slice(2, 8), slice(4, 8), slice(1, 5)), 4)
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
    img, lab = _scan(rng, (7, 6, 6), 2, (slice(0, 7), slice(0, 3), slice(3, 6)), 5)
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
    img, _ = _scan(rng, (6, 6, 4), 2, (slice(0, 0), slice(0, 0), slice(0, 0)), 4)
    cases.append(
        (
            (img, np.zeros((6, 6, 4))),
            dict(orig_x=6, orig_y=6, orig_z=4, output_x=3, output_y=3, output_z=2, max_tries=9),
            7,
        )
    )
    return cases


def _slice_image(rng: np.random.RandomState, shape: tuple[int, int, int, int]) -> np.ndarray:
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


def standardize_cases() -> list[Case]:
    """``standardize``: ordinary, constant-slice, integer and ``dim_x == 1`` images."""
    rng = _RandomState(7102)
    cases: list[Case] = [((_slice_image(rng, (2, 4, 3, 3)),), {}, None)]
    flat = _slice_image(rng, (3, 2, 4, 5))
    flat[1, :, :, 2] = 7.5  # constant slices: centered only, so all zeros
    flat[0, :, :, 4] = 0.0
    cases.append(((flat,), {}, None))
    ints = np.zeros((1, 4, 4, 2), dtype=np.int32)
    ints[0, :, :, 0] = rng.permutation(np.repeat([2, 6, 10, 14], 4)).reshape(4, 4)
    ints[0, :, :, 1] = rng.permutation(np.repeat([-9, -3, 3, 9], 4)).reshape(4, 4)
    cases.append(((ints,), {}, None))  # integer input, float64 output
    cases.append(((_slice_image(rng, (2, 1, 4, 2)),), {}, None))  # dim_x == 1
    return cases


def binary(rng: np.random.RandomState, shape: tuple[int, ...], p: float) -> np.ndarray:
    """A float64 mask of ``shape`` with ones at rate ``p``."""
    return (rng.random_sample(shape) < p).astype(np.float64)


def soft(rng: np.random.RandomState, shape: tuple[int, ...]) -> np.ndarray:
    """Probabilities of ``shape``, rounded to two decimals."""
    return np.round(rng.random_sample(shape), 2)


def single_class_dice_cases() -> list[Case]:
    """``single_class_dice_coefficient``: soft, binary, empty and full masks; ``axis``."""
    rng = _RandomState(7103)
    return [
        ((binary(rng, (4, 3, 5), 0.5), soft(rng, (4, 3, 5))), {}, None),
        ((binary(rng, (3, 3, 2), 0.4), binary(rng, (3, 3, 2), 0.6)), dict(epsilon=1.0), None),
        ((np.zeros((2, 2, 2)), np.zeros((2, 2, 2))), dict(epsilon=0.5), None),
        ((np.ones((3, 2, 2)), np.zeros((3, 2, 2))), {}, None),
        (
            (binary(rng, (5, 2, 3), 0.3), binary(rng, (5, 2, 3), 0.3)),
            dict(axis=(0, 1, 2), epsilon=0.01),
            None,
        ),
    ]


def dice_cases() -> list[Case]:
    """``dice_coefficient``: binary, soft, an empty class and ``axis`` over a batch."""
    rng = _RandomState(7104)
    empty_class = binary(rng, (3, 2, 2, 3), 0.5)
    empty_pred = binary(rng, (3, 2, 2, 3), 0.5)
    empty_class[1] = 0.0
    empty_pred[1] = 0.0
    return [
        ((binary(rng, (3, 4, 4, 2), 0.5), binary(rng, (3, 4, 4, 2), 0.5)), {}, None),
        ((binary(rng, (2, 3, 5, 4), 0.3), soft(rng, (2, 3, 5, 4))), dict(epsilon=1.0), None),
        ((empty_class, empty_pred), {}, None),
        (
            (binary(rng, (4, 2, 3, 2), 0.6), soft(rng, (4, 2, 3, 2))),
            dict(axis=(1, 2, 3), epsilon=0.1),
            None,
        ),
    ]


def soft_dice_loss_cases() -> list[Case]:
    """``soft_dice_loss``: binary, soft, identical masks and another epsilon."""
    rng = _RandomState(7105)
    same = binary(rng, (2, 3, 3, 2), 0.5)
    return [
        ((binary(rng, (3, 4, 3, 2), 0.5), soft(rng, (3, 4, 3, 2))), {}, None),
        ((soft(rng, (2, 5, 2, 3)), soft(rng, (2, 5, 2, 3))), dict(epsilon=1.0), None),
        ((same, same.copy()), {}, None),
        ((binary(rng, (4, 2, 2, 3), 0.4), soft(rng, (4, 2, 2, 3))), dict(epsilon=0.1), None),
    ]


def sens_spec_cases() -> list[Case]:
    """``compute_class_sens_spec``: two classes of one pair, ``class_num`` by keyword, ints."""
    rng = _RandomState(7106)
    pred, label = binary(rng, (3, 4, 4, 3), 0.5), binary(rng, (3, 4, 4, 3), 0.4)
    p2, l2 = binary(rng, (2, 5, 3, 2), 0.6), binary(rng, (2, 5, 3, 2), 0.5)
    p3 = binary(rng, (2, 6, 2, 2), 0.5).astype(np.int64)
    l3 = binary(rng, (2, 6, 2, 2), 0.5).astype(np.int64)
    return [
        ((pred, label, 0), {}, None),
        ((pred, label, 2), {}, None),
        ((p2, l2), dict(class_num=1), None),
        ((p3, l3, 0), {}, None),
    ]

"""Losses and metrics for the 3D U-Net, written for ONE sample and wrapped per sample.

Every function here takes one sample's ``y_true, y_pred: (classes, X, Y, Z)`` and reduces
over ``axis=(1, 2, 3)`` (the spatial axes), exactly like the course exercises.  Keras hands a
loss the whole batch ``(B, classes, X, Y, Z)``; :func:`per_sample` maps a one-sample function
over the batch axis and averages, so the reduction axes mean what they say.

The one exception is :func:`batch_dice_bce_loss` (nnU-Net's choice for BraTS): it takes the
whole batch and sums each class over the batch and the spatial axes together, so a patch
without a region adds no noisy per-sample Dice of its own (``tumorseg train --loss batch``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from keras import ops

EPSILON = 1e-5


def dice_coefficient(
    y_true: Any, y_pred: Any, axis: tuple[int, ...] = (1, 2, 3), epsilon: float = EPSILON
) -> Any:
    """Mean soft Dice over classes for one sample.

    y_true, y_pred: ``(classes, X, Y, Z)`` in [0, 1]; the sums run over ``axis`` (spatial),
    giving one Dice per class, ``(2 Σ p·y + ε) / (Σ p + Σ y + ε)``, then the mean over classes.
    Returns a scalar tensor.
    """
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    num = 2.0 * ops.sum(y_true * y_pred, axis=axis) + epsilon
    den = ops.sum(y_true, axis=axis) + ops.sum(y_pred, axis=axis) + epsilon
    return ops.mean(num / den)


def soft_dice_loss(
    y_true: Any, y_pred: Any, axis: tuple[int, ...] = (1, 2, 3), epsilon: float = EPSILON
) -> Any:
    """Soft Dice loss for one sample: ``1 - mean_c (2 Σ p·q + ε) / (Σ p² + Σ q² + ε)``.

    y_true, y_pred: ``(classes, X, Y, Z)``; sums over ``axis`` (spatial). Returns a scalar tensor.
    """
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    num = 2.0 * ops.sum(y_true * y_pred, axis=axis) + epsilon
    den = ops.sum(y_true**2, axis=axis) + ops.sum(y_pred**2, axis=axis) + epsilon
    return 1.0 - ops.mean(num / den)


def dice_bce_loss(
    y_true: Any, y_pred: Any, axis: tuple[int, ...] = (1, 2, 3), epsilon: float = EPSILON
) -> Any:
    """Training loss for one sample: soft Dice loss plus mean binary cross-entropy.

    y_true, y_pred: ``(classes, X, Y, Z)`` sigmoid probabilities.  The BCE term gives every
    voxel a gradient, which lets rare classes (non-enhancing tumor) leave the all-on state.
    Returns a scalar tensor.
    """
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    p = ops.clip(y_pred, 1e-6, 1.0 - 1e-6)
    bce = -ops.mean(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))
    return soft_dice_loss(y_true, y_pred, axis=axis, epsilon=epsilon) + bce


def dice_class(index: int, name: str | None = None) -> Callable:
    """A one-sample metric: soft Dice of class ``index`` of ``(classes, X, Y, Z)``."""

    def metric(y_true: Any, y_pred: Any) -> Any:
        """Soft Dice of one class of ``(classes, X, Y, Z)`` tensors."""
        y_true = ops.cast(y_true[index], "float32")
        y_pred = ops.cast(y_pred[index], "float32")
        num = 2.0 * ops.sum(y_true * y_pred) + EPSILON
        return num / (ops.sum(y_true) + ops.sum(y_pred) + EPSILON)

    metric.__name__ = name or f"dice_{index}"
    return metric


def per_sample(fn: Callable) -> Callable:
    """Wrap a one-sample loss/metric ``fn(y_true, y_pred)`` on ``(classes, X, Y, Z)`` for batches.

    The wrapper takes ``(B, classes, X, Y, Z)`` tensors, applies ``fn`` to each sample
    (``keras.ops.vectorized_map``) and returns the mean over the batch.  The wrapper keeps
    ``fn.__name__`` so Keras logs it under the same name.  Already-wrapped functions are
    returned unchanged.
    """
    if getattr(fn, "takes_batch", False):
        return fn

    @functools.wraps(fn)
    def wrapped(y_true: Any, y_pred: Any) -> Any:
        y_true = ops.cast(y_true, "float32")
        y_pred = ops.cast(y_pred, "float32")
        pairs = ops.stack([y_true, y_pred], axis=1)  # (B, 2, classes, X, Y, Z)
        values = ops.vectorized_map(lambda s: fn(s[0], s[1]), pairs)
        return ops.mean(values)

    wrapped.takes_batch = True
    return wrapped


def batch_dice_bce_loss(y_true: Any, y_pred: Any, epsilon: float = EPSILON) -> Any:
    """Training loss for a whole batch: batch soft Dice loss plus mean binary cross-entropy.

    y_true, y_pred: ``(B, classes, X, Y, Z)`` sigmoid probabilities.  The Dice sums of each class
    run over the batch and the spatial axes ``(0, 2, 3, 4)`` together (one Dice per class for
    the batch, then their mean), unlike ``per_sample(dice_bce_loss)``, which averages one Dice
    per sample and class.  The cross-entropy is the mean over all voxels, which is the same
    either way.  Returns a scalar tensor.
    """
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    axes = (0, 2, 3, 4)
    num = 2.0 * ops.sum(y_true * y_pred, axis=axes) + epsilon
    den = ops.sum(y_true**2, axis=axes) + ops.sum(y_pred**2, axis=axes) + epsilon
    p = ops.clip(y_pred, 1e-6, 1.0 - 1e-6)
    bce = -ops.mean(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))
    return 1.0 - ops.mean(num / den) + bce


batch_dice_bce_loss.takes_batch = True

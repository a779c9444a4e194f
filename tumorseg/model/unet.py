"""The course's 3D U-Net (Çiçek et al. 2016 style), channels-first at the boundary.

Topology matches the original course exactly (16,318,307 parameters at the defaults): ``depth``
encoder levels of two 3x3x3 ReLU convolutions (``n_base_filters·2^d`` then twice that), 2x2x2
max-pooling between levels, a decoder of up-sampling + skip concatenation + two convolutions of the
skip's width, and a 1x1x1 convolution to ``n_labels`` sigmoid maps.

The model takes and returns channels-first tensors, ``(B, 4, X, Y, Z) -> (B, 3, X, Y, Z)``, but
computes channels-last inside (a ``Permute`` at each end): channels-first 3D convolutions are several
times slower on a CPU.  Weights do not depend on the spatial size, so a model built with
``input_shape=(4, None, None, None)`` accepts any size divisible by ``2**(depth-1)`` and can take
the weights of a fixed-size one (``model.set_weights(other.get_weights())``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
from keras import layers

from tumorseg.contract import INPUT_SHAPE
from tumorseg.model.losses import per_sample


def _conv_block(x, n_filters: int, batch_normalization: bool, name: str):
    """3x3x3 'same' convolution (+ BatchNorm) + ReLU on a channels-last tensor."""
    x = layers.Conv3D(n_filters, (3, 3, 3), padding="same", name=f"{name}_conv")(x)
    if batch_normalization:
        x = layers.BatchNormalization(axis=-1, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def unet_model_3d(
    loss_function: Callable | str,
    input_shape: Sequence[int | None] = INPUT_SHAPE,
    pool_size: Sequence[int] = (2, 2, 2),
    n_labels: int = 3,
    initial_learning_rate: float = 1e-5,
    deconvolution: bool = False,
    depth: int = 4,
    n_base_filters: int = 32,
    metrics: Sequence[Callable | str] = (),
    batch_normalization: bool = False,
    activation_name: str = "sigmoid",
    *,
    output_bias: float = 0.0,
) -> keras.Model:
    """Build and compile the course's 3D U-Net.

    loss_function: a loss written for ONE sample, ``f(y_true, y_pred)`` on ``(classes, X, Y, Z)``
        reducing over ``axis=(1, 2, 3)``; it is applied to each sample of the batch
        ``(B, classes, X, Y, Z)`` and averaged (see ``tumorseg.model.losses.per_sample``).
        A Keras loss name (str) or ``keras.losses.Loss`` instance is passed through unchanged.
    input_shape: ``(channels, X, Y, Z)``, channels first; spatial sizes may be ``None`` (any size
        divisible by ``pool_size**(depth-1)`` is accepted then).
    metrics: one-sample metric functions (wrapped like the loss) or Keras metric names.
    batch_normalization: add BatchNormalization after every 3x3x3 convolution.
    output_bias: initial bias of the final 1x1x1 convolution (e.g. -2.0 starts every class
        mostly "off", which helps rare classes learn); 0.0: no bias, as in the original course.
    Returns a compiled ``keras.Model``: ``(B, C, X, Y, Z) -> (B, n_labels, X, Y, Z)``, float32
    output even under a mixed-precision policy; optimizer ``Adam(learning_rate=initial_learning_rate)``.
    """
    input_shape = tuple(input_shape)
    if len(input_shape) != 4:
        raise ValueError(f"input_shape must be (channels, X, Y, Z), got {input_shape}")
    factor = [p ** (depth - 1) for p in pool_size]
    for size, f in zip(input_shape[1:], factor):
        if size is not None and size % f:
            raise ValueError(
                f"spatial size {input_shape[1:]} must be divisible by {tuple(factor)} "
                f"(pool_size**(depth-1)) for depth={depth}"
            )

    inputs = keras.Input(shape=input_shape, name="image")  # (B, C, X, Y, Z)
    x = layers.Permute((2, 3, 4, 1), name="to_channels_last")(inputs)

    skips = []
    for d in range(depth):
        n = n_base_filters * 2**d
        x = _conv_block(x, n, batch_normalization, f"enc{d}a")
        x = _conv_block(x, n * 2, batch_normalization, f"enc{d}b")
        skips.append(x)
        if d < depth - 1:
            x = layers.MaxPooling3D(pool_size=tuple(pool_size), name=f"pool{d}")(x)

    for d in range(depth - 2, -1, -1):
        if deconvolution:
            x = layers.Conv3DTranspose(
                x.shape[-1], kernel_size=tuple(pool_size), strides=tuple(pool_size), name=f"up{d}"
            )(x)
        else:
            x = layers.UpSampling3D(size=tuple(pool_size), name=f"up{d}")(x)
        x = layers.Concatenate(axis=-1, name=f"concat{d}")([x, skips[d]])
        n = skips[d].shape[-1]
        x = _conv_block(x, n, batch_normalization, f"dec{d}a")
        x = _conv_block(x, n, batch_normalization, f"dec{d}b")

    x = layers.Conv3D(
        n_labels,
        (1, 1, 1),
        name="logits",
        bias_initializer=keras.initializers.Constant(output_bias),
    )(x)
    x = layers.Activation(activation_name, dtype="float32", name="probabilities")(x)
    outputs = layers.Permute((4, 1, 2, 3), dtype="float32", name="to_channels_first")(x)

    model = keras.Model(inputs, outputs, name="unet_3d")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=initial_learning_rate),
        loss=_wrap(loss_function),
        metrics=[_wrap(m) for m in metrics],
    )
    return model


def _wrap(fn):
    """Per-sample wrapper for plain callables; strings and Keras objects pass through."""
    if isinstance(fn, str) or isinstance(fn, (keras.losses.Loss, keras.metrics.Metric)):
        return fn
    return per_sample(fn)

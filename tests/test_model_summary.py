"""unet_summary: one line per U-Net level and the parameter count."""

from __future__ import annotations

import keras
import pytest

from tumorseg.model import unet_model_3d, unet_summary


def test_summary_lists_levels_filters_and_parameters():
    model = unet_model_3d(
        "binary_crossentropy", input_shape=(4, 16, 16, 8), depth=3, n_base_filters=4
    )
    lines = unet_summary(model).splitlines()
    assert lines[0] == "unet_3d: input (4, 16, 16, 8) -> output (3, 16, 16, 8) (channels first)"
    assert lines[2].split() == ["0", "16x16x8", "4", "->", "8", "8", "->", "8"]
    assert lines[3].split() == ["1", "8x8x4", "8", "->", "16", "16", "->", "16"]
    assert lines[4].split() == ["2", "4x4x2", "16", "->", "32", "(bottom)"]
    assert lines[5] == (
        f"11 convolutions (3x3x3, and 1x1x1 to the output maps), "
        f"{model.count_params():,d} parameters ({model.count_params():,d} trainable)"
    )
    assert len(lines) == 6


def test_summary_of_an_any_size_model_and_of_other_models():
    model = unet_model_3d(
        "binary_crossentropy", input_shape=(4, None, None, None), depth=2, n_base_filters=2
    )
    assert "any size" in unet_summary(model).splitlines()[2]
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="not built by unet_model_3d"):
        unet_summary(other)

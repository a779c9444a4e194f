"""The 3D U-Net builder, its per-sample losses and load_pretrained."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from tumorseg.model import (
    batch_dice_bce_loss,
    dice_bce_loss,
    dice_coefficient,
    load_pretrained,
    per_sample,
    soft_dice_loss,
    unet_model_3d,
)


@pytest.mark.parametrize("base,params", [(32, 16_318_307), (16, 4_081_075), (8, 1_021_019)])
def test_parameter_counts_match_original(base, params):
    model = unet_model_3d(soft_dice_loss, n_base_filters=base)
    assert model.count_params() == params
    assert sum(isinstance(layer, keras.layers.Conv3D) for layer in model.layers) == 15


def test_channels_first_io_with_permute_inside():
    model = unet_model_3d(soft_dice_loss, input_shape=(4, 16, 16, 8), n_base_filters=8)
    assert model.input_shape == (None, 4, 16, 16, 8)
    assert model.output_shape == (None, 3, 16, 16, 8)
    assert isinstance(model.layers[1], keras.layers.Permute)
    assert isinstance(model.layers[-1], keras.layers.Permute)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv3D)]
    assert all(c.data_format == "channels_last" for c in convs)
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert np.isclose(float(model.optimizer.learning_rate), 1e-5)
    x = np.random.default_rng(0).normal(size=(2, 4, 16, 16, 8)).astype(np.float32)
    y = model.predict(x, verbose=0)
    assert y.shape == (2, 3, 16, 16, 8) and np.all((y > 0) & (y < 1))


def test_batch_normalization_flag_adds_batchnorm():
    plain = unet_model_3d(soft_dice_loss, input_shape=(4, 16, 16, 8), n_base_filters=8)
    bn = unet_model_3d(
        soft_dice_loss, input_shape=(4, 16, 16, 8), n_base_filters=8, batch_normalization=True
    )
    count = lambda m: sum(isinstance(la, keras.layers.BatchNormalization) for la in m.layers)  # noqa: E731
    assert count(plain) == 0 and count(bn) == 14
    assert bn.count_params() > plain.count_params()


def test_any_divisible_spatial_size_and_rejects_others():
    odd = unet_model_3d(soft_dice_loss, input_shape=(4, 24, 40, 8), n_base_filters=8)
    assert odd.predict(np.zeros((1, 4, 24, 40, 8), np.float32), verbose=0).shape == (
        1,
        3,
        24,
        40,
        8,
    )
    free = unet_model_3d(soft_dice_loss, input_shape=(4, None, None, None), n_base_filters=8)
    free.set_weights(odd.get_weights())
    x = np.random.default_rng(1).normal(size=(1, 4, 24, 40, 8)).astype(np.float32)
    np.testing.assert_allclose(free.predict(x, verbose=0), odd.predict(x, verbose=0), atol=1e-5)
    assert free.predict(x[:, :, :8, :16], verbose=0).shape == (1, 3, 8, 16, 8)
    with pytest.raises(ValueError, match="divisible"):
        unet_model_3d(soft_dice_loss, input_shape=(4, 20, 16, 8), n_base_filters=8)


def test_deconvolution_and_output_bias():
    model = unet_model_3d(
        soft_dice_loss,
        input_shape=(4, 16, 16, 8),
        n_base_filters=8,
        deconvolution=True,
        output_bias=-2.0,
    )
    assert any(isinstance(la, keras.layers.Conv3DTranspose) for la in model.layers)
    np.testing.assert_allclose(model.get_layer("logits").bias.numpy(), -2.0)


def _np_dice(t, p, eps=1e-5):
    return np.mean((2 * (t * p).sum((1, 2, 3)) + eps) / (t.sum((1, 2, 3)) + p.sum((1, 2, 3)) + eps))


def test_one_sample_losses_match_formulas():
    rng = np.random.default_rng(2)
    t = (rng.random((3, 4, 5, 2)) > 0.6).astype(np.float32)
    p = rng.random((3, 4, 5, 2)).astype(np.float32)
    assert np.isclose(float(dice_coefficient(t, p)), _np_dice(t, p), atol=1e-6)
    num = 2 * (t * p).sum((1, 2, 3)) + 1e-5
    den = (t**2).sum((1, 2, 3)) + (p**2).sum((1, 2, 3)) + 1e-5
    assert np.isclose(float(soft_dice_loss(t, p)), 1 - np.mean(num / den), atol=1e-6)
    bce = -np.mean(t * np.log(p) + (1 - t) * np.log(1 - p))
    assert np.isclose(float(dice_bce_loss(t, p)), 1 - np.mean(num / den) + bce, atol=1e-5)


def test_batch_dice_loss_sums_the_batch_and_is_left_unwrapped():
    rng = np.random.default_rng(4)
    t = (rng.random((2, 3, 6, 5, 4)) > 0.7).astype(np.float32)
    p = rng.random((2, 3, 6, 5, 4)).astype(np.float32)
    t[1, 2] = 0  # the second patch has no region 2: the batch Dice still sees the first's
    num = 2 * (t * p).sum((0, 2, 3, 4)) + 1e-5
    den = (t**2).sum((0, 2, 3, 4)) + (p**2).sum((0, 2, 3, 4)) + 1e-5
    bce = -np.mean(t * np.log(p) + (1 - t) * np.log(1 - p))
    expected = 1 - np.mean(num / den) + bce
    assert np.isclose(float(batch_dice_bce_loss(t, p)), expected, atol=1e-5)
    assert per_sample(batch_dice_bce_loss) is batch_dice_bce_loss
    # with one sample it is the per-sample loss; with two it is not (the empty region)
    assert np.isclose(
        float(batch_dice_bce_loss(t[:1], p[:1])), float(dice_bce_loss(t[0], p[0])), atol=1e-5
    )
    assert not np.isclose(
        float(batch_dice_bce_loss(t, p)), float(per_sample(dice_bce_loss)(t, p)), atol=1e-3
    )


def test_per_sample_wrapper_equals_manual_per_sample_mean():
    rng = np.random.default_rng(3)
    t = (rng.random((3, 3, 8, 8, 4)) > 0.7).astype(np.float32)
    p = rng.random((3, 3, 8, 8, 4)).astype(np.float32)
    t[:, 0] = 0  # class 0 absent and faintly predicted: its own Dice is ~0 per sample, while
    p[:, 0] = 0.001  # the original's sum over (classes, X, Y) hides it among the other classes
    wrapped = per_sample(dice_coefficient)
    assert wrapped.__name__ == "dice_coefficient" and per_sample(wrapped) is wrapped
    manual = np.mean([_np_dice(t[i], p[i]) for i in range(3)])
    assert np.isclose(float(wrapped(t, p)), manual, atol=1e-6)
    quirk = float(dice_coefficient(t, p))  # the original: axes (1,2,3) of the batch
    assert not np.isclose(quirk, manual, atol=1e-3)
    # and the compiled model uses it: evaluate() == manual per-sample mean of its predictions
    model = unet_model_3d(
        dice_coefficient, input_shape=(4, 8, 8, 8), n_base_filters=8, metrics=[soft_dice_loss]
    )
    x = rng.normal(size=(3, 4, 8, 8, 8)).astype(np.float32)
    y = (rng.random((3, 3, 8, 8, 8)) > 0.5).astype(np.float32)
    pred = model.predict(x, verbose=0)
    loss, metric = model.evaluate(x, y, batch_size=3, verbose=0)
    assert np.isclose(loss, np.mean([_np_dice(y[i], pred[i]) for i in range(3)]), atol=1e-5)
    assert np.isclose(
        metric, np.mean([float(soft_dice_loss(y[i], pred[i])) for i in range(3)]), atol=1e-5
    )


def test_load_pretrained_round_trip_and_missing_files(tmp_path):
    config = {"n_base_filters": 8, "input_shape": [4, 16, 16, 8]}
    model = unet_model_3d(soft_dice_loss, **config)
    model.save_weights(tmp_path / "m.weights.h5")
    with pytest.raises(FileNotFoundError, match="m.json"):
        load_pretrained(tmp_path / "m.weights.h5")
    (tmp_path / "m.json").write_text(json.dumps({"config": config, "standardize": "brain"}))
    loaded, manifest = load_pretrained(tmp_path / "m.weights.h5")
    assert manifest["standardize"] == "brain"
    x = np.random.default_rng(4).normal(size=(1, 4, 16, 16, 8)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    free, _ = load_pretrained(tmp_path / "m.weights.h5", input_shape=(4, None, None, None))
    assert free.predict(x[:, :, :8], verbose=0).shape == (1, 3, 8, 16, 8)
    with pytest.raises(FileNotFoundError, match="nothing.weights.h5"):
        load_pretrained(tmp_path / "nothing.weights.h5")


def test_shipped_weights_load():
    model, manifest = load_pretrained()  # the model shipped inside the package: two members
    assert len(model.members) == len(manifest["members"]) == 2
    assert model.count_params() == 2 * 4_081_075
    first, _ = load_pretrained(ensemble=False)  # what the course notebook loads
    assert first.count_params() == 4_081_075
    assert manifest["config"]["n_base_filters"] == 16
    assert manifest["standardize"] in ("brain", "slice")
    # the real patients it was fine-tuned on are named, and no validation patient is among them
    real = manifest["real_data"]
    valid = real["valid_patients_never_trained_on"]
    assert len(real["train_patients"]) == 20 and len(valid) == 7
    assert set(real["train_patients"]).isdisjoint(valid)
    trained = set(manifest["data"]["train_cases"])
    assert {f"R0_{p}" for p in real["train_patients"]} <= trained
    assert not any(p in case for p in valid for case in trained)
    # its per-patient figures on every validation patient, and the previous model's, are kept
    record = manifest["evaluation"]["real_valid"]
    assert set(record["per_case"]) == set(valid) == set(record["previous_model"]["per_case"])
    assert record["options"]["both_empty"] == "brats" and record["n"] == 7
    # the options chosen on the validation patients are recorded for predict/evaluate
    assert manifest["tta"] in ("none", "x", "xyz") and 0.0 < manifest["threshold"] < 1.0
    assert set(manifest["postprocess"]) == {"min_component", "keep_fraction", "min_enhancing"}
    # ... and whole-scan prediction reads them from the manifest the model carries
    from tumorseg.inference import InferenceSettings, resolve_settings

    settings = resolve_settings(model)
    assert settings == InferenceSettings.from_manifest(manifest)
    assert (settings.tta.value, settings.threshold) == (manifest["tta"], manifest["threshold"])
    assert settings.postprocess.to_dict() == manifest["postprocess"]
    assert model.threshold == manifest["threshold"]  # what the course notebook reads
    # it learnt the BraTS regions, and every consumer reads that kind from the manifest
    assert manifest["outputs"] == settings.outputs.value == "regions"

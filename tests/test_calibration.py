"""Per-region calibration by shifting the output bias (``scripts/shift_output_bias.py``)."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest


@pytest.fixture()
def shift_script(repo_root):
    from conftest import load_file_module

    return load_file_module(repo_root / "scripts" / "shift_output_bias.py", "shift_output_bias")


def test_logit_shift_moves_the_boundary_to_the_equivalent_threshold(shift_script):
    for t in (0.2, 0.35, 0.5, 0.7):
        b = shift_script.logit_shift(t)
        # sigmoid(logit(t) + b) is exactly 0.5
        assert 1.0 / (1.0 + math.exp(-(math.log(t / (1 - t)) + b))) == pytest.approx(0.5)
    assert shift_script.logit_shift(0.5) == 0.0
    with pytest.raises(ValueError, match="in \\(0, 1\\)"):
        shift_script.logit_shift(1.0)


@pytest.mark.slow
def test_shifted_model_is_on_where_the_original_passes_its_region_thresholds(
    tmp_path, batch_weights, shift_script
):
    import keras

    from tumorseg.model import dice_bce_loss, unet_model_3d

    source = tmp_path / "m.weights.h5"
    shutil.copyfile(batch_weights, source)
    manifest = json.loads(batch_weights.with_name("tiny.json").read_text())
    (tmp_path / "m.json").write_text(json.dumps({**manifest, "outputs": "regions"}))
    out = tmp_path / "shifted.weights.h5"
    thresholds = (0.4, 0.3, 0.6)
    argv = [str(source), str(out), "--equivalent-threshold", *map(str, thresholds)]
    assert shift_script.main(argv) == 0
    record = json.loads((tmp_path / "shifted.json").read_text())["output_bias_shift"]
    assert record["equivalent_threshold"] == pytest.approx(list(thresholds))
    twice = [str(out), str(tmp_path / "twice.weights.h5"), *argv[2:]]
    with pytest.raises(SystemExit):  # already shifted: refused, nothing written
        shift_script.main(twice)
    assert not (tmp_path / "twice.weights.h5").exists()
    assert shift_script.main([*twice, "--again"]) == 0
    chain = json.loads((tmp_path / "twice.json").read_text())["output_bias_shift"]
    assert chain["previous"] == record

    def predict(weights):
        keras.utils.set_random_seed(0)
        model = unet_model_3d(dice_bce_loss, input_shape=(4, None, None, None), n_base_filters=4)
        model.load_weights(weights)
        x = np.random.default_rng(1).normal(size=(1, 4, 16, 16, 8)).astype(np.float32)
        return np.asarray(model.predict_on_batch(x), np.float64)[0]

    before, after = predict(source), predict(out)
    logit = np.log(before / (1 - before))
    shifted = np.log(after / (1 - after))
    for channel, t in enumerate(thresholds):
        # every logit moved by the channel's shift: the map at 0.5 is the original's at t
        assert np.allclose(shifted[channel] - logit[channel], math.log((1 - t) / t), atol=1e-3)
        confident = np.abs(before[channel] - t) > 1e-3
        assert np.array_equal((after[channel] > 0.5)[confident], (before[channel] > t)[confident])
    with pytest.raises(SystemExit):  # a class model has no region thresholds
        (tmp_path / "m.json").write_text(json.dumps({**manifest, "outputs": "classes"}))
        shift_script.main(argv)

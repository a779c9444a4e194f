"""Data-parallel training on 2 forced host devices (JAX on the CPU) equals single-device
training, and its weights load and predict the same under TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

HERE = Path(__file__).parent

pytest.importorskip("jax")


def _weights(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dp")
    env = dict(os.environ, KERAS_BACKEND="jax", XLA_FLAGS="--xla_force_host_platform_device_count=2",
               PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(HERE / "_dp_job.py"), str(out)], env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.slow
def test_two_devices_equal_one_device_with_the_same_global_batch(runs):
    dp = json.loads((runs / "dp" / "model.json").read_text())
    single = json.loads((runs / "single" / "model.json").read_text())
    assert dp["distribution"] == {"backend": "jax", "devices": 2, "hosts": 1, "global_batch": 2,
                                  "device_kind": "cpu"}
    assert single["distribution"]["devices"] == 1
    assert dp["training"]["batch_size"] == 2 and dp["training"]["devices"] == 2
    assert dp["steps"] == 3 and dp["config"] == {"n_base_filters": 8, "input_shape": [4, 16, 16, 8]}
    assert dp["timings"]["seconds_per_step"] > 0 and dp["timings"]["patches_per_second"] > 0
    # validation of 3 patches (padded to 4 on two devices) scores the same
    assert dp["validation_patch_dice"] == pytest.approx(single["validation_patch_dice"], abs=1e-6)
    assert dp["validation_patch_dice"]["patches"] == 3

    a, b = _weights(runs / "dp" / "model.weights.h5"), _weights(runs / "single" / "model.weights.h5")
    first = _weights(runs / "dp" / "snapshot_1.weights.h5")
    assert a.keys() == b.keys() and len(a) == 32
    diff = max(float(np.abs(a[k] - b[k]).max()) for k in a)
    moved = max(float(np.abs(a[k] - first[k]).max()) for k in a)
    assert diff < 1e-4, diff  # same steps, same batches: only the order of float sums differs
    assert moved > 100 * diff, (moved, diff)  # steps 2 and 3 really changed the weights


@pytest.mark.slow
def test_weights_trained_under_jax_predict_the_same_under_tensorflow(runs):
    import keras

    from tumorseg.model import load_pretrained

    assert keras.backend.backend() == "tensorflow"
    model, manifest = load_pretrained(runs / "dp" / "model.weights.h5")
    assert manifest["distribution"]["backend"] == "jax"
    saved = np.load(runs / "jax_pred.npz")
    pred = model.predict(saved["x"], verbose=0)
    assert pred.shape == (1, 3, 16, 16, 8)
    np.testing.assert_allclose(pred, saved["pred"], atol=1e-5)

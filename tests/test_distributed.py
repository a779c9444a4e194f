"""Data-parallel training on 2 forced host devices (JAX on the CPU) equals single-device
training, and its weights load and predict the same under TensorFlow."""

from __future__ import annotations

import json
import os
import socket
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
        f.visititems(
            lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None
        )
    return out


def _env(**extra: str) -> dict[str, str]:
    return dict(
        os.environ,
        KERAS_BACKEND="jax",
        **extra,
        PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dp")
    env = _env(XLA_FLAGS="--xla_force_host_platform_device_count=2")
    proc = subprocess.run(
        [sys.executable, str(HERE / "_dp_job.py"), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


@pytest.mark.slow
def test_two_devices_equal_one_device_with_the_same_global_batch(runs):
    dp = json.loads((runs / "dp" / "model.json").read_text())
    single = json.loads((runs / "single" / "model.json").read_text())
    assert dp["distribution"] == {
        "backend": "jax",
        "devices": 2,
        "hosts": 1,
        "global_batch": 2,
        "device_kind": "cpu",
    }
    assert single["distribution"]["devices"] == 1
    assert dp["training"]["batch_size"] == 2 and dp["training"]["devices"] == 2
    assert dp["steps"] == 3 and dp["config"] == {"n_base_filters": 8, "input_shape": [4, 16, 16, 8]}
    assert dp["timings"]["seconds_per_step"] > 0 and dp["timings"]["patches_per_second"] > 0
    # validation of 3 patches (padded to 4 on two devices) scores the same
    assert dp["validation_patch_dice"] == pytest.approx(single["validation_patch_dice"], abs=1e-6)
    assert dp["validation_patch_dice"]["patches"] == 3

    a, b = (
        _weights(runs / "dp" / "model.weights.h5"),
        _weights(runs / "single" / "model.weights.h5"),
    )
    first = _weights(runs / "dp" / "snapshot_1.weights.h5")
    assert len(a) == 32
    diff, moved = _max_diff(a, b), _max_diff(a, first)
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


@pytest.mark.slow
def test_two_hosts_on_localhost_equal_one_device(runs):
    """Two processes with one CPU device each, joined by keras.distribution.initialize through
    the KERAS_DISTRIBUTION_* variables on 127.0.0.1; each loads only its row of every batch."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE / "_dp_job.py"), str(runs), "--hosts"],
            env=_env(
                KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{port}",
                KERAS_DISTRIBUTION_NUM_PROCESSES="2",
                KERAS_DISTRIBUTION_PROCESS_ID=str(i),
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        errors = [p.communicate(timeout=600)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], errors[0][-2000:] + errors[1][-2000:]
    manifest = json.loads((runs / "hosts" / "model.json").read_text())
    assert manifest["distribution"]["hosts"] == 2 and manifest["distribution"]["devices"] == 2
    hosts = _weights(runs / "hosts" / "model.weights.h5")
    single = _weights(runs / "single" / "model.weights.h5")
    diff = _max_diff(hosts, single)
    assert (
        diff < 1e-4
        and _max_diff(hosts, _weights(runs / "hosts" / "snapshot_1.weights.h5")) > 100 * diff
    )

"""Trains the same tiny run data-parallel on 2 devices and on 1, under JAX; run by test_distributed.

usage: KERAS_BACKEND=jax XLA_FLAGS=--xla_force_host_platform_device_count=2 python _dp_job.py OUT
Writes OUT/dp and OUT/single (weights + manifests) and OUT/jax_pred.npz (the data-parallel
model's prediction of a fixed input, for the TensorFlow comparison).

usage: KERAS_BACKEND=jax KERAS_DISTRIBUTION_...=... python _dp_job.py OUT --hosts
One process of a multi-host run of the same training, into OUT/hosts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from tumorseg.train import MemoryBatches, TrainConfig, train

SHAPE = (16, 16, 8)


def tiny_data(n: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``x (n, 4, *SHAPE)`` standardized-like images and ``y (n, 3, *SHAPE)`` labels with a blob."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4, *SHAPE)).astype(np.float32)
    y = np.zeros((n, 3, *SHAPE), np.float32)
    y[:, 0, 4:12, 4:12, 2:6] = 1
    y[:, 2, 6:10, 6:10, 3:5] = 1
    x[:, 1] += 2 * y[:, 0]
    return x, y


BASE = TrainConfig(
    out="",
    steps=3,
    batch_size=2,
    seed=1,
    n_base_filters=8,
    patch_size=SHAPE,
    lr=1e-3,
    warmup=1,
    checkpoint_every=100,
    snapshot_steps=(1,),
    workers=1,
)


def hosts(out: Path) -> None:
    from tumorseg.train.distribute import initialize_hosts

    assert initialize_hosts()
    x, y = tiny_data()
    cfg = BASE.replace(out=str(out / "hosts"))
    train(cfg, MemoryBatches(x, y, cfg.batch_size, cfg.seed), None, verbose=False)


def main(out: Path) -> None:
    x, y = tiny_data()
    base = BASE
    valid = lambda: [(x[:3], y[:3])]  # noqa: E731 - 3 patches: padded to 4 on 2 devices
    for name, devices in (("dp", 2), ("single", 1)):
        cfg = base.replace(out=str(out / name), devices=devices)
        train(
            cfg,
            MemoryBatches(x, y, cfg.batch_size, cfg.seed),
            valid,
            data={"source": "tiny"},
            verbose=False,
        )
    from tumorseg.model import load_pretrained

    model, _ = load_pretrained(out / "dp" / "model.weights.h5")
    probe = np.random.default_rng(5).normal(size=(1, 4, *SHAPE)).astype(np.float32)
    np.savez(out / "jax_pred.npz", x=probe, pred=np.asarray(model.predict(probe, verbose=0)))


if __name__ == "__main__":
    (hosts if sys.argv[2:] == ["--hosts"] else main)(Path(sys.argv[1]))

"""Training loop: a 2-step CLI run writes weights + manifest + CSV and resumes."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tumorseg.train.loop import (
    MemoryBatches,
    hard_dice_per_class,
    learning_rate_at,
    main,
)

sys.path.insert(0, str(Path(__file__).parent))
from test_patches import make_fake_msd  # noqa: E402


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from tumorseg.patches import build_patch_store

    root = make_fake_msd(tmp_path_factory.mktemp("train") / "data", n_cases=3)
    build_patch_store(root, root / "processed", per_case=1, seed=0, verbose=False)
    return root / "processed"


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_two_steps_write_weights_manifest_log_and_resume(store, tmp_path):
    out = tmp_path / "run"
    args = ["--data", str(store), "--out", str(out), "--n-base-filters", "8", "--seed", "3",
            "--checkpoint-every", "1"]
    assert main([*args, "--steps", "2"]) == 0
    manifest = json.loads((out / "model.json").read_text())
    assert manifest["config"] == {"n_base_filters": 8, "input_shape": [4, 160, 160, 16]}
    assert manifest["steps"] == 2 and manifest["standardize"] == "brain"
    cfg = json.loads((store / "config.json").read_text())
    assert manifest["data"]["train_cases"] == cfg["train_cases"]
    assert manifest["data"]["valid_cases"] == cfg["valid_cases"]
    assert set(manifest["validation_patch_dice"]) >= {"edema", "non_enhancing", "enhancing"}
    assert manifest["git_commit"] and manifest["train_seconds"] > 0
    rows = _rows(out / "log.csv")
    assert [r["step"] for r in rows if r["lr"]] == ["1", "2"]
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    assert json.loads((out / "checkpoint" / "state.json").read_text())["step"] == 2

    from tumorseg.model import load_pretrained

    model, _ = load_pretrained(out / "model.weights.h5")
    assert model.count_params() == 1_021_019
    assert (out / "model.weights.h5").stat().st_size < 6_000_000  # weights only, no Adam moments

    assert main([*args, "--steps", "3", "--resume"]) == 0
    rows = _rows(out / "log.csv")
    assert [r["step"] for r in rows if r["lr"]] == ["1", "2", "3"]
    assert json.loads((out / "model.json").read_text())["steps"] == 3
    # the resumed step used the schedule's step-3 learning rate, i.e. it continued, not restarted
    assert np.isclose(float(rows[2]["lr"]), learning_rate_at(2, 3, 3e-4), rtol=1e-2)


def test_memory_batches_are_a_function_of_step():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 4, 8, 8, 4)).astype(np.float32)
    y = (rng.random((6, 3, 8, 8, 4)) > 0.5).astype(np.float32)
    a, b = MemoryBatches(x, y, 2, seed=5), MemoryBatches(x, y, 2, seed=5)
    for s in (0, 4, 7):
        np.testing.assert_array_equal(a.batch(s)[0], b.batch(s)[0])
    assert not np.array_equal(a.batch(0)[0], a.batch(1)[0])
    xb, yb = a.batch(3)
    assert xb.shape == (2, 4, 8, 8, 4) and yb.shape == (2, 3, 8, 8, 4)


def test_hard_dice_conventions_and_schedule():
    t = np.zeros((1, 3, 4, 4, 2))
    p = np.zeros((1, 3, 4, 4, 2))
    t[0, 0, :2] = 1
    p[0, 0, :1] = 0.9
    p[0, 1, 0, 0, 0] = 0.7  # predicted but absent
    d = hard_dice_per_class(p, t)
    assert np.isclose(d[0, 0], 2 * 8 / (8 + 16)) and d[0, 1] == 0 and d[0, 2] == 1
    assert learning_rate_at(0, 100, 1e-3) < learning_rate_at(49, 100, 1e-3)
    assert np.isclose(learning_rate_at(50, 100, 1e-3), 1e-3)
    assert np.isclose(learning_rate_at(100, 100, 1e-3), 5e-5)
    assert np.isclose(learning_rate_at(60, 10**6, 1e-3, progress=1.0), 5e-5)

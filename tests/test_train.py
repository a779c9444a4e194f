"""Training: the CLI writes weights + manifest + CSV and resumes; config, batches, input workers."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tumorseg.metrics import hard_dice_per_class
from tumorseg.train.cli import main
from tumorseg.train.config import TrainConfig
from tumorseg.train.data import MemoryBatches, Prefetcher, StoreBatches
from tumorseg.train.loop import learning_rate_at

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
    args = [
        "--data",
        str(store),
        "--out",
        str(out),
        "--n-base-filters",
        "8",
        "--seed",
        "3",
        "--checkpoint-every",
        "1",
    ]
    assert main([*args, "--steps", "2", "--snapshot-steps", "1"]) == 0
    manifest = json.loads((out / "model.json").read_text())
    assert manifest["config"] == {"n_base_filters": 8, "input_shape": [4, 160, 160, 16]}
    assert manifest["steps"] == 2 and manifest["standardize"] == "brain"
    assert manifest["loss"] == "soft Dice + binary cross-entropy, per sample"
    cfg = json.loads((store / "config.json").read_text())
    assert manifest["data"]["train_cases"] == cfg["train_cases"]
    assert manifest["data"]["valid_cases"] == cfg["valid_cases"]
    assert set(manifest["validation_patch_dice"]) >= {"edema", "non_enhancing", "enhancing"}
    assert manifest["git_commit"] and manifest["train_seconds"] > 0
    assert (
        manifest["distribution"]["devices"] == 1 and manifest["distribution"]["global_batch"] == 1
    )
    assert TrainConfig(**manifest["training"]).seed == 3  # the manifest rebuilds the config
    rows = _rows(out / "log.csv")
    assert [r["step"] for r in rows if r["lr"]] == ["1", "2"]
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    assert json.loads((out / "checkpoint" / "state.json").read_text())["step"] == 2

    from tumorseg.model import load_pretrained

    model, _ = load_pretrained(out / "model.weights.h5")
    assert model.count_params() == 1_021_019
    snap, snap_manifest = load_pretrained(out / "snapshot_1.weights.h5")  # with its own manifest
    assert snap_manifest["steps"] == 1 and snap_manifest["data"] == manifest["data"]
    assert not np.array_equal(snap.get_weights()[0], model.get_weights()[0])
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


def _tiny_store(folder: Path, n: int = 6, dim=(16, 16, 8)) -> Path:
    """A patch store of ``n`` random ``dim`` patches with a config.json, as `tumorseg patches` writes."""
    from tumorseg.patches.store import write_patch_h5

    rng = np.random.default_rng(0)
    (folder / "train").mkdir(parents=True)
    names = []
    for i in range(n):
        x = np.zeros((4, *dim), np.float32)
        x[:, 2:-2, 2:-2] = rng.uniform(10, 200, size=(4, dim[0] - 4, dim[1] - 4, dim[2]))
        lab = rng.integers(0, 4, size=dim)
        names.append(f"c{i}.nii.gz_0_x0_y0_z0.h5")
        write_patch_h5(
            folder / "train" / names[-1], x, (lab[..., None] == np.arange(4)).astype(np.float32)
        )
    cfg = {
        "train": names,
        "valid": [],
        "train_cases": [f"c{i}" for i in range(n)],
        "valid_cases": [],
        "seed": 0,
        "patch_size": list(dim),
    }
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def test_train_config_is_frozen_checked_and_round_trips():
    import dataclasses

    cfg = TrainConfig(out="o", batch_size=4, patch_size=[16, 16, 8], snapshot_steps=[5])
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.steps = 3
    assert cfg.model_config() == {"n_base_filters": 16, "input_shape": [4, 16, 16, 8]}
    again = TrainConfig(**json.loads(json.dumps(cfg.asdict())))
    assert again == cfg and again.patch_size == (16, 16, 8) and again.snapshot_steps == (5,)
    assert cfg.replace(devices=2).devices == 2 and cfg.devices is None
    with pytest.raises(ValueError, match="batch_size must be >= 1.*standardize must be"):
        TrainConfig(out="o", batch_size=0, standardize="volume")
    with pytest.raises(ValueError):
        TrainConfig(out="o", augment="wild")


def test_clip_norm_is_checked_parsed_and_recorded():
    from tumorseg.train.cli import config_from_args, parser

    base = ["--data", "d", "--out", "o"]
    assert config_from_args(parser().parse_args(base), {}).clip_norm is None
    cfg = config_from_args(parser().parse_args([*base, "--clip-norm", "12"]), {})
    assert cfg.clip_norm == 12.0 and cfg.asdict()["clip_norm"] == 12.0  # the manifest's training
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="clip_norm must be > 0"):
            TrainConfig(out="o", clip_norm=bad)


def test_loss_reduction_is_checked_parsed_compiled_and_recorded():
    from tumorseg.model import batch_dice_bce_loss
    from tumorseg.train.cli import config_from_args, parser
    from tumorseg.train.config import LOSS_NAMES
    from tumorseg.train.loop import build_model

    base = ["--data", "d", "--out", "o"]
    assert config_from_args(parser().parse_args(base), {}).loss == "sample"
    cfg = config_from_args(parser().parse_args([*base, "--loss", "batch"]), {})
    assert cfg.loss == "batch" and cfg.asdict()["loss"] == "batch"
    assert LOSS_NAMES["batch"].endswith("batch Dice")
    with pytest.raises(ValueError):
        TrainConfig(out="o", loss="voxel")
    with pytest.raises(SystemExit):
        parser().parse_args([*base, "--loss", "voxel"])
    model = build_model(cfg.replace(n_base_filters=4, patch_size=(16, 16, 8), precision="float32"))
    assert model.loss is batch_dice_bce_loss


def test_clip_norm_shrinks_a_real_training_step():
    """One Adam step from the same weights on the same batch: with the gradients clipped to a
    tiny global norm, the weights move far less than without clipping."""
    import keras

    from tumorseg.train.loop import build_model, train_step

    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 4, 16, 16, 8)).astype(np.float32)
    y = (rng.random((1, 3, 16, 16, 8)) > 0.7).astype(np.float32)
    moved = {}
    for clip in (None, 1e-9):
        keras.utils.set_random_seed(0)
        cfg = TrainConfig(out="o", n_base_filters=4, patch_size=(16, 16, 8), clip_norm=clip)
        model = build_model(cfg)
        assert model.optimizer.global_clipnorm == clip
        before = model.get_weights()
        train_step(model, x, y, 1e-3)
        after = model.get_weights()
        moved[clip] = max(float(np.abs(a - b).max()) for a, b in zip(after, before))
    assert moved[None] > 5e-4  # Adam's first step moves a weight by about the learning rate
    assert moved[1e-9] < 0.01 * moved[None], moved


def test_store_batches_split_by_rows_and_match_across_worker_kinds(tmp_path):
    from tumorseg.patches import VolumeDataGenerator

    store = _tiny_store(tmp_path / "store")
    names = json.loads((store / "config.json").read_text())["train"]
    src = StoreBatches(store / "train", names, batch_size=4, seed=2, dim=(16, 16, 8))
    x, y = src.batch(5)
    assert x.shape == (4, 4, 16, 16, 8) and y.shape == (4, 3, 16, 16, 8) and x.dtype == np.float32
    # two hosts' rows put together are the global batch (each sample has its own draws)
    x0, y0 = src.batch(5, slice(0, 2))
    x1, y1 = src.batch(5, slice(2, 4))
    np.testing.assert_array_equal(np.concatenate([x0, x1]), x)
    np.testing.assert_array_equal(np.concatenate([y0, y1]), y)
    assert not np.array_equal(src.batch(6)[0], x)
    # threads and spawned processes deliver the same batches, in order
    got = {}
    for processes in (False, True):
        feed = Prefetcher(src, range(2, 5), workers=2, processes=processes)
        try:
            got[processes] = [feed.get(s) for s in range(2, 5)]
        finally:
            feed.close()
        assert feed.patches == 12 and feed.worker_rate() > 0
    for (a, b), (c, d) in zip(got[False], got[True]):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    # unaugmented, a store batch is what the generator gives, with its default ("brain") standardization
    plain = StoreBatches(
        store / "train", names, batch_size=1, seed=0, level="none", dim=(16, 16, 8)
    )
    gen = VolumeDataGenerator(names, store / "train", dim=(16, 16, 8), shuffle=False, verbose=0)
    assert gen.standardize == "brain"
    from tumorseg.patches.augment import epoch_order

    first = int(epoch_order(0, 0, len(names))[0])
    np.testing.assert_array_equal(plain.batch(0)[0], gen[first][0])


def test_cli_reports_user_errors_with_exit_2(tmp_path, capsys):
    def status(*argv: str) -> int:
        with pytest.raises(SystemExit) as info:
            main(["--out", str(tmp_path / "o"), *argv])
        return info.value.code

    assert status("--data", str(tmp_path / "none")) == 2
    assert "build the patch store with `tumorseg patches" in capsys.readouterr().err
    store = _tiny_store(tmp_path / "store")
    assert status("--data", str(store), "--devices", "2") == 2
    err = capsys.readouterr().err
    assert err.startswith("tumorseg train: error: ") and "needs the JAX backend" in err
    assert status("--data", str(store), "--batch-size", "9") == 2
    assert "fewer than one batch" in capsys.readouterr().err
    missing = tmp_path / "nowhere.weights.h5"
    assert status("--data", str(store), "--init-weights", str(missing)) == 2
    err = capsys.readouterr().err
    assert err.startswith("tumorseg train: error: ") and f"{missing}: no such weights file" in err
    not_weights = tmp_path / "notes.weights.h5"
    not_weights.write_text("not an HDF5 file")
    assert status("--data", str(store), "--init-weights", str(not_weights), "--steps", "1") == 2
    err = capsys.readouterr().err
    assert f"{not_weights}: cannot load these weights" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "model.json").exists()


@pytest.mark.parametrize(
    ("flags", "accelerator", "chosen"),
    [
        ((), False, "float32"),  # Apple Silicon, no /proc/cpuinfo flags
        (("avx2",), False, "float32"),  # AVX2-only AMD/Intel: bf16 is emulated
        (("avx2", "avx512f"), False, "float32"),  # AVX512 without BF16 (Skylake-X)
        (("avx2", "avx512f", "avx512_bf16"), False, "bf16"),
        (("avx2", "amx_tile", "amx_bf16"), False, "bf16"),  # Sapphire Rapids
        (("avx2",), True, "bf16"),  # a GPU trains
    ],
)
def test_auto_precision_follows_native_bf16(flags, accelerator, chosen):
    from tumorseg.train.config import choose_precision

    assert choose_precision("auto", flags, accelerator) == chosen
    assert choose_precision("float32", ("avx512_bf16",), True) == "float32"  # explicit is kept
    assert choose_precision("bf16", (), False) == "bf16"
    with pytest.raises(ValueError):
        choose_precision("fp16", flags, accelerator)


def test_cli_precision_flags():
    from tumorseg.train.cli import parser

    base = ["--data", "d", "--out", "o"]
    assert parser().parse_args(base).precision == "auto"
    assert parser().parse_args([*base, "--bf16"]).precision == "bf16"  # the old flag
    assert parser().parse_args([*base, "--precision", "float32"]).precision == "float32"
    with pytest.raises(SystemExit):
        parser().parse_args([*base, "--precision", "fp16"])


@pytest.mark.parametrize(
    ("flags", "chosen", "policy"),
    [(("avx2",), "float32", "float32"), (("avx512_bf16",), "bf16", "mixed_bfloat16")],
)
def test_manifest_records_the_precision_chosen_and_the_cpu_flags(
    monkeypatch, tmp_path, flags, chosen, policy
):
    from tumorseg import hardware
    from tumorseg.train import loop

    cpu = hardware.CpuInfo("Test CPU", flags, 2, "x86_64")
    monkeypatch.setattr(loop, "cpu_info", lambda: cpu)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, 16, 16, 8)).astype("float32")
    y = (rng.random((2, 3, 16, 16, 8)) > 0.7).astype("float32")
    cfg = TrainConfig(
        out=str(tmp_path / "run"),
        steps=1,
        n_base_filters=2,
        patch_size=(16, 16, 8),
        precision="auto",
        workers=1,
        warmup=1,
    )
    manifest = loop.train(cfg, MemoryBatches(x, y, 1), verbose=False)
    assert manifest["precision"] == policy
    choice = manifest["precision_choice"]
    assert choice["requested"] == "auto" and choice["accelerator"] is False
    assert choice["chosen"] == manifest["training"]["precision"] == chosen
    assert choice["cpu"] == {
        "model": "Test CPU",
        "flags": list(flags),
        "cores": 2,
        "machine": "x86_64",
    }
    assert json.loads((tmp_path / "run" / "model.json").read_text())["precision_choice"] == choice

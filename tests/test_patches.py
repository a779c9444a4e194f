"""Patch store, sampling and standardization."""

from __future__ import annotations

import json
import os

import h5py
import nibabel as nib
import numpy as np
import pytest

from tumorseg.data import DataError
from tumorseg.patches import sample_patch, standardize_patch
from tumorseg.patches.cli import main
from tumorseg.patches.store import NAME_RE, build_patch_store, split_cases


def make_fake_msd(root, n_cases=5, shape=(168, 170, 22), seed=0):
    """A tiny MSD-layout dataset: noisy 'brain' box with a 3-class spherical tumor per case."""
    rng = np.random.default_rng(seed)
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    entries = []
    X, Y, Z = shape
    g = np.indices(shape)
    for i in range(n_cases):
        name = f"BRATS_{i + 1:03d}"
        image = np.zeros((*shape, 4), np.float32)
        image[8:-8, 8:-8, 2:-2] = rng.uniform(50, 150, size=(X - 16, Y - 16, Z - 4, 4))
        c = np.array([X // 2 + rng.integers(-10, 10), Y // 2 + rng.integers(-10, 10), Z // 2])
        r = np.sqrt(((g - c[:, None, None, None]) ** 2).sum(0))
        label = np.zeros(shape, np.uint8)
        label[r < 30] = 1
        label[r < 18] = 3
        label[r < 10] = 2
        image[label == 3, 2] += 300
        aff = np.eye(4)
        nib.save(nib.Nifti1Image(image.astype(np.int16), aff), root / "imagesTr" / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(label, aff), root / "labelsTr" / f"{name}.nii.gz")
        entries.append({"image": f"./imagesTr/{name}.nii.gz", "label": f"./labelsTr/{name}.nii.gz"})
    (root / "dataset.json").write_text(json.dumps({"training": entries, "numTraining": n_cases}))
    return root


@pytest.fixture(scope="module")
def fake_data(tmp_path_factory):
    return make_fake_msd(tmp_path_factory.mktemp("fake") / "data")


def test_standardize_slice_matches_per_slice_formula():
    rng = np.random.default_rng(0)
    x = rng.normal(5, 3, size=(4, 6, 7, 5))
    x[1, :, :, 2] = 7.0  # a constant slice: centred only
    out = standardize_patch(x, "slice")
    assert out.dtype == np.float32 and out.shape == x.shape
    for c in range(4):
        for z in range(5):
            s = x[c, :, :, z]
            want = (s - s.mean()) / (s.std() if s.std() > 0 else 1.0)
            np.testing.assert_allclose(out[c, :, :, z], want, atol=1e-5)
    assert np.all(out[1, :, :, 2] == 0)


def test_standardize_brain_uses_nonzero_voxels_and_keeps_background():
    rng = np.random.default_rng(1)
    x = np.zeros((4, 8, 8, 4))
    x[:, 2:6, 2:6, :] = rng.normal(100, 20, size=(4, 4, 4, 4))
    x[3] = 0.0  # an empty channel stays empty
    out = standardize_patch(x, "brain")
    assert np.all(out[:, :2] == 0) and np.all(out[3] == 0)
    for c in range(3):
        v = out[c][x[c] != 0]
        assert abs(v.mean()) < 1e-5 and abs(v.std() - 1) < 1e-4
    # brain mode statistics are over the whole channel, not per slice
    slice_means = [out[0, 2:6, 2:6, z].mean() for z in range(4)]
    assert np.ptp(slice_means) > 1e-3
    with pytest.raises(ValueError):
        standardize_patch(x, "nope")


def test_sample_patch_meets_tumor_fraction_and_layout():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(40, 30, 20, 4)).astype(np.float32)
    label = np.zeros((40, 30, 20), np.uint8)
    label[10:20, 5:15, 12:18] = 2
    p = sample_patch(image, label, (16, 16, 8), min_tumor=0.2, rng=rng)
    assert p is not None and p.tumor_fraction >= 0.2
    x0, y0, z0 = p.corner
    assert p.x.shape == (4, 16, 16, 8) and p.y.shape == (16, 16, 8, 4)
    np.testing.assert_array_equal(
        p.x, np.moveaxis(image[x0 : x0 + 16, y0 : y0 + 16, z0 : z0 + 8], -1, 0)
    )
    np.testing.assert_array_equal(p.y.argmax(-1), label[x0 : x0 + 16, y0 : y0 + 16, z0 : z0 + 8])
    assert np.all(p.y.sum(-1) == 1)
    # impossible fraction -> None
    assert sample_patch(image, label, (16, 16, 8), min_tumor=0.99, rng=rng, max_tries=20) is None


def test_split_is_by_case_and_reproducible():
    ids = [f"c{i}" for i in range(10)]
    tr, va = split_cases(ids, 0.2, seed=3)
    assert len(va) == 2 and set(tr) | set(va) == set(ids) and not set(tr) & set(va)
    assert split_cases(ids, 0.2, seed=3) == (tr, va)
    assert split_cases(["a", "b"], 0.2, 0)[1] and split_cases(["a"], 0.2, 0) == (["a"], [])


def test_patch_store_format_split_and_rerun(fake_data, tmp_path, capsys):
    out = tmp_path / "processed"
    assert (
        main(["--data", str(fake_data), "--out", str(out), "--per-case", "2", "--seed", "1"]) == 0
    )
    cfg = json.loads((out / "config.json").read_text())
    assert len(cfg["train"]) == 8 and len(cfg["valid"]) == 2
    cases = {part: {NAME_RE.match(n)["case"] for n in cfg[part]} for part in ("train", "valid")}
    assert not cases["train"] & cases["valid"]
    assert cases["valid"] == set(cfg["valid_cases"])
    for part in ("train", "valid"):
        assert sorted(os.listdir(out / part)) == sorted(cfg[part])  # no temp files left
    name = cfg["train"][0]
    m = NAME_RE.match(name)
    sx, sy, sz = (int(m[i]) for i in (3, 4, 5))
    with h5py.File(out / "train" / name, "r") as f:
        x, y = f["x"][()], f["y"][()]
    assert x.shape == (4, 160, 160, 16) and y.shape == (160, 160, 16, 4)
    assert np.all(y.sum(-1) == 1) and (1 - y[..., 0].mean()) >= 0.05
    # x holds raw intensities at the named corner
    img = nib.load(fake_data / "imagesTr" / f"{m['case']}.nii.gz").get_fdata()
    np.testing.assert_array_equal(
        x, np.moveaxis(img[sx : sx + 160, sy : sy + 160, sz : sz + 16], -1, 0)
    )
    # rerun: nothing rewritten, same config
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "train").iterdir()}
    cfg2 = build_patch_store(fake_data, out, per_case=2, seed=1, verbose=False)
    assert cfg2 == cfg
    assert {p: p.stat().st_mtime_ns for p in (out / "train").iterdir()} == mtimes
    # a truncated file is detected and replaced on rerun
    victim = out / "train" / name
    victim.write_bytes(victim.read_bytes()[:1000])
    cfg3 = build_patch_store(fake_data, out, per_case=2, seed=1, verbose=False)
    assert cfg3 == cfg
    with h5py.File(victim, "r") as f:
        assert f["x"].shape == (4, 160, 160, 16)


def _fake_store(root, seed, train_cases, valid_cases):
    cfg = {
        "seed": seed,
        "train_cases": train_cases,
        "valid_cases": valid_cases,
        "train": [],
        "valid": [],
        "source": {"release": "tumorseg synth synth-v9 --randomize"},
    }
    for part, cases in (("train", train_cases), ("valid", valid_cases)):
        (root / part).mkdir(parents=True)
        for case in cases:
            name = f"{case}.nii.gz_0_x1_y2_z3.h5"
            (root / part / name).write_text(f"{root.name}/{part}/{case}")
            cfg[part].append(name)
    (root / "config.json").write_text(json.dumps(cfg))
    return root


def test_merged_store_keeps_the_held_out_cases_and_prefixes_the_others(tmp_path):
    from tumorseg.patches.store import merge_stores

    a = _fake_store(tmp_path / "a", 11, ["BRATS_001", "BRATS_002"], ["BRATS_003"])
    b = _fake_store(tmp_path / "b", 12, ["BRATS_001"], ["BRATS_003"])
    cfg = merge_stores(tmp_path / "m", a, [b])
    assert cfg["valid"] == ["BRATS_003.nii.gz_0_x1_y2_z3.h5"]  # only the held store's valid
    assert cfg["valid_cases"] == ["BRATS_003"]
    assert cfg["train_cases"] == ["BRATS_001", "BRATS_002", "R12_BRATS_001", "R12_BRATS_003"]
    contents = {n: (tmp_path / "m" / "train" / n).read_text() for n in cfg["train"]}
    assert contents["R12_BRATS_003.nii.gz_0_x1_y2_z3.h5"] == "b/valid/BRATS_003"
    assert contents["BRATS_001.nii.gz_0_x1_y2_z3.h5"] == "a/train/BRATS_001"
    assert len(contents) == 4
    assert json.loads((tmp_path / "m" / "config.json").read_text()) == cfg
    with pytest.raises(DataError, match="same seed"):
        merge_stores(tmp_path / "n", a, [b, _fake_store(tmp_path / "c", 12, ["X"], [])])
    with pytest.raises(DataError, match="build the patch store"):
        merge_stores(tmp_path / "n", a, [tmp_path / "nothing"])


def test_background_patches_cover_the_brain_away_from_the_tumor():
    from tumorseg.patches.sampling import sample_background_patch

    shape = (200, 200, 60)
    image = np.zeros((*shape, 4), np.float32)
    image[20:180, 30:190, 5:55] = 100.0  # the 'brain'
    label = np.zeros(shape, np.uint8)
    label[90:110, 90:110, 40:50] = 1  # a small tumor high up
    rng = np.random.default_rng(0)
    patches = [sample_background_patch(image, label, rng=rng) for _ in range(40)]
    corners = np.array([p.corner for p in patches])
    assert all(p.x.shape == (4, 160, 160, 16) and p.y.shape == (160, 160, 16, 4) for p in patches)
    # every patch holds brain, z corners spread over the brain, many without any tumor
    assert all((p.x != 0).mean() >= 0.1 for p in patches)
    assert corners[:, 2].min() < 15 and corners[:, 2].max() > 30
    assert sum(p.tumor_fraction == 0 for p in patches) >= 10
    # the labels are the volume's at the corner
    p = patches[0]
    x0, y0, z0 = p.corner
    np.testing.assert_array_equal(p.y.argmax(-1), label[x0 : x0 + 160, y0 : y0 + 160, z0 : z0 + 16])
    # no slab with enough brain: None
    assert sample_background_patch(np.zeros_like(image), label, rng=rng) is None


def test_store_with_background_patches_and_no_valid_split(fake_data, tmp_path):
    out = tmp_path / "real"
    args = ["--data", str(fake_data), "--out", str(out), "--per-case", "2", "--background", "3"]
    assert main([*args, "--valid-fraction", "0"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["valid"] == [] and cfg["valid_cases"] == [] and len(cfg["train_cases"]) == 5
    assert len(cfg["train"]) == 5 * 5 and cfg["background"] == 3
    ks = sorted({int(NAME_RE.match(n)["k"]) for n in cfg["train"]})
    assert ks == [0, 1, 2, 3, 4]
    # a rerun keeps every patch
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "train").iterdir()}
    assert (
        build_patch_store(fake_data, out, 2, valid_fraction=0, background=3, verbose=False) == cfg
    )
    assert {p: p.stat().st_mtime_ns for p in (out / "train").iterdir()} == mtimes


def test_focused_patches_centre_on_the_rare_classes():
    from tumorseg.patches.sampling import sample_class_patch

    shape = (200, 200, 60)
    image = np.full((*shape, 4), 100.0, np.float32)
    label = np.zeros(shape, np.uint8)
    label[40:120, 40:120, 10:50] = 1  # a large edema
    label[150:154, 150:154, 50:53] = 3  # a tiny enhancing spot far from it
    rng = np.random.default_rng(0)
    patches = [sample_class_patch(image, label, (2, 3), rng=rng) for _ in range(30)]
    # only class 3 is present among (2, 3): every patch holds the whole spot
    assert all(p.y[..., 3].sum() == 4 * 4 * 3 for p in patches)
    assert all(p.x.shape == (4, 160, 160, 16) for p in patches)
    x0, y0, z0 = patches[0].corner
    np.testing.assert_array_equal(
        patches[0].y.argmax(-1), label[x0 : x0 + 160, y0 : y0 + 160, z0 : z0 + 16]
    )
    # corners vary (the jitter), and a random tumor patch would rarely hold the spot
    assert len({p.corner for p in patches}) > 5
    assert sample_class_patch(image, np.where(label == 3, 0, label), (2, 3), rng=rng) is None


def test_store_with_focused_patches_numbers_them_last(fake_data, tmp_path):
    out = tmp_path / "focus"
    args = ["--data", str(fake_data), "--out", str(out), "--per-case", "1"]
    assert main([*args, "--background", "1", "--focus", "2", "--valid-fraction", "0"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert len(cfg["train"]) == 5 * 4 and cfg["focus"] == 2
    for name in cfg["train"]:
        if int(NAME_RE.match(name)["k"]) >= 2:  # the focused ones hold necrosis or enhancing
            with h5py.File(out / "train" / name) as f:
                assert f["y"][..., 2:].sum() > 0


def test_patches_refuses_impossible_options(fake_data, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--data", str(fake_data), "--out", str(tmp_path / "o"), "--valid-fraction", "1"])
    assert stop.value.code == 2
    assert "--valid-fraction" in capsys.readouterr().err


def test_patch_size_option_builds_deeper_patches_that_merge_only_with_their_kind(
    fake_data, tmp_path, capsys
):
    from tumorseg.patches.store import merge_stores

    out = tmp_path / "deep"
    args = ["--data", str(fake_data), "--out", str(out), "--per-case", "1"]
    assert main([*args, "--patch-size", "64", "64", "8", "--valid-fraction", "0"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["patch_size"] == [64, 64, 8]
    for name in cfg["train"]:
        with h5py.File(out / "train" / name) as f:
            assert f["x"].shape == (4, 64, 64, 8) and f["y"].shape == (64, 64, 8, 4)
    course = tmp_path / "course"
    assert main(["--data", str(fake_data), "--out", str(course), "--per-case", "1"]) == 0
    with pytest.raises(DataError, match="patch sizes differ"):
        merge_stores(tmp_path / "m", course, [out])
    with pytest.raises(SystemExit) as stop:
        main([*args, "--patch-size", "64", "64", "20"])
    assert stop.value.code == 2 and "multiple of 8" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:  # deeper than the scans (22 slices)
        main([*args, "--out", str(tmp_path / "too-deep"), "--patch-size", "64", "64", "32"])
    assert stop.value.code == 2 and "larger than the volume" in capsys.readouterr().err

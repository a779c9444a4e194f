"""VolumeDataGenerator on the real course files and on broken ones."""

from __future__ import annotations

import os

import h5py
import keras
import numpy as np
import pytest

from tumorseg.data import DataError
from tumorseg.patches import VolumeDataGenerator, standardize_patch
from tumorseg.patches.store import write_patch_h5


def _write(path, x, y):
    with h5py.File(path, "w") as f:
        f["x"], f["y"] = x, y


def test_reads_real_course_files(real_brats, capsys):
    folder = real_brats / "train"
    ids = sorted(os.listdir(folder))[:4]
    gen = VolumeDataGenerator(
        ids, str(folder) + "/", batch_size=2, shuffle=False, verbose=1, standardize="slice"
    )
    assert isinstance(gen, keras.utils.PyDataset) and len(gen) == 2
    x, y = gen[0]
    assert "Training on:" in capsys.readouterr().out
    assert x.shape == (2, 4, 160, 160, 16) and x.dtype == np.float32
    assert y.shape == (2, 3, 160, 160, 16) and y.dtype == np.float32
    with h5py.File(folder / ids[0], "r") as f:
        raw_x, raw_y = f["x"][()], f["y"][()]
    np.testing.assert_array_equal(y[0], np.moveaxis(raw_y, 3, 0)[1:])
    np.testing.assert_allclose(x[0], standardize_patch(raw_x, "slice"), atol=1e-5)
    sl = x[0, 0, :, :, 5]
    assert abs(sl.mean()) < 1e-4 and abs(sl.std() - 1) < 1e-3
    # no trailing slash, brain mode, raw mode
    gb = VolumeDataGenerator(
        ids, folder, batch_size=1, shuffle=False, verbose=0, standardize="brain"
    )
    xb, _ = gb[0]
    assert np.all(xb[0][raw_x == 0] == 0)
    gr = VolumeDataGenerator(ids, folder, batch_size=1, shuffle=False, verbose=0, standardize=None)
    np.testing.assert_allclose(gr[0][0][0], raw_x.astype(np.float32))


def test_len_shuffle_and_augment(tmp_path):
    rng = np.random.default_rng(0)
    dim = (16, 16, 8)
    names = []
    for i in range(5):
        x = np.zeros((4, *dim), np.float32)
        x[:, 2:14, 2:14] = rng.uniform(10, 20, size=(4, 12, 12, 8)) + i * 100
        lab = rng.integers(0, 4, size=dim)
        y = (lab[..., None] == np.arange(4)).astype(np.float32)
        names.append(f"p{i}.h5")
        write_patch_h5(tmp_path / names[-1], x, y)
    gen = VolumeDataGenerator(
        names, tmp_path, batch_size=2, dim=dim, verbose=0, seed=0, standardize=None
    )
    assert len(gen) == 2  # floor(5 / 2)
    orders = set()
    for _ in range(6):
        orders.add(tuple(gen.indexes))
        gen.on_epoch_end()
    assert len(orders) > 1
    aug = VolumeDataGenerator(
        names,
        tmp_path,
        batch_size=1,
        dim=dim,
        verbose=0,
        seed=1,
        shuffle=False,
        standardize=None,
        augment=True,
    )
    plain = VolumeDataGenerator(
        names, tmp_path, batch_size=1, dim=dim, verbose=0, shuffle=False, standardize=None
    )
    xa, ya = aug[0]
    xp, yp = plain[0]
    assert xa.shape == xp.shape and ya.shape == yp.shape
    assert not np.allclose(xa, xp)  # intensities were scaled/shifted
    assert sorted(np.unique(ya)) == [0.0, 1.0] and ya.sum() == yp.sum()  # labels only moved
    # background stays 0 (up to the flips): same count of zero voxels per channel
    assert np.array_equal((xa == 0).sum(axis=(2, 3, 4)), (xp == 0).sum(axis=(2, 3, 4)))


def test_truncated_or_foreign_h5_raises_dataerror_naming_file(tmp_path):
    good = tmp_path / "good.h5"
    x = np.zeros((4, 160, 160, 16), np.float32)
    y = np.zeros((160, 160, 16, 4), np.float32)
    y[..., 0] = 1
    write_patch_h5(good, x, y)
    trunc = tmp_path / "trunc.h5"
    trunc.write_bytes(good.read_bytes()[:5000])
    foreign = tmp_path / "foreign.h5"
    _write(foreign, np.zeros(3), np.zeros(3))
    nox = tmp_path / "nox.h5"
    with h5py.File(nox, "w") as f:
        f["image"] = np.zeros(2)
    notes = tmp_path / "notes.h5"
    notes.write_text("not an h5 file")
    for bad in (trunc, foreign, nox, notes):
        gen = VolumeDataGenerator([bad.name], tmp_path, verbose=0, shuffle=False)
        with pytest.raises(DataError, match=bad.name):
            gen[0]
    assert VolumeDataGenerator(["good.h5"], tmp_path, verbose=0)[0][0].shape == (1, 4, 160, 160, 16)


def test_strong_augmentation_standardizes_after_the_raw_changes(tmp_path):
    rng = np.random.default_rng(2)
    dim = (16, 16, 8)
    x = np.zeros((4, *dim), np.float32)
    x[:, 2:14, 2:14] = rng.uniform(100, 900, size=(4, 12, 12, 8))
    y = np.zeros((*dim, 4), np.float32)
    y[..., 0] = 1
    write_patch_h5(tmp_path / "p.h5", x, y)
    gen = VolumeDataGenerator(
        ["p.h5"],
        tmp_path,
        dim=dim,
        verbose=0,
        seed=3,
        shuffle=False,
        standardize="brain",
        augment="strong",
    )
    outs = [gen.load("p.h5", rng=np.random.default_rng(k))[0] for k in range(8)]
    plain = standardize_patch(x, "brain")
    for out in outs:
        assert np.isfinite(out).all() and out.shape == x.shape
        assert np.count_nonzero(out) == np.count_nonzero(x)  # background stays 0 (flipped)
    assert any(not np.allclose(o, plain, atol=0.05) for o in outs)
    with pytest.raises(ValueError):
        VolumeDataGenerator(["p.h5"], tmp_path, dim=dim, verbose=0, augment="wild")

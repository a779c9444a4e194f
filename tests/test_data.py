"""Data layer: load_case, open_dataset (MSD and BraTS layouts) and DataError on bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tumorseg.data import (
    Case,
    DataError,
    Dataset,
    load_case,
    load_image,
    open_dataset,
    save_label_map,
)
from tumorseg.data.io import find_nifti

SHAPE = (12, 10, 8)


def _save(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(path))
    return path


def _case_arrays(seed: int = 0, shape=SHAPE) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.uniform(0, 1000, size=shape + (4,)).astype(np.float32)
    label = np.zeros(shape, np.uint8)
    label[2:6, 2:6, 2:6] = 1
    label[3:5, 3:5, 3:5] = 2
    label[4, 4, 4] = 3
    return image, label


def _msd(root: Path, n: int = 2) -> Path:
    training = []
    for i in range(1, n + 1):
        image, label = _case_arrays(i)
        _save(root / "imagesTr" / f"BRATS_{i:03d}.nii.gz", image)
        _save(root / "labelsTr" / f"BRATS_{i:03d}.nii.gz", label)
        training.append(
            {
                "image": f"./imagesTr/BRATS_{i:03d}.nii.gz",
                "label": f"./labelsTr/BRATS_{i:03d}.nii.gz",
            }
        )
    (root / "dataset.json").write_text(json.dumps({"name": "t", "training": training}))
    return root


def _brats(root: Path, n: int = 2) -> Path:
    for i in range(n):
        cid = f"BraTS2021_{i:05d}"
        image, label = _case_arrays(10 + i)
        for c, suffix in enumerate(("flair", "t1", "t1ce", "t2")):
            _save(root / cid / f"{cid}_{suffix}.nii.gz", image[..., c])
        raw = np.select([label == 1, label == 2, label == 3], [2, 1, 4], 0).astype(np.uint8)
        _save(root / cid / f"{cid}_seg.nii.gz", raw)
    (root / "name_mapping.csv").write_text("a,b\n")
    return root


def _raises_naming(path: Path, fn, *args) -> str:
    with pytest.raises(DataError) as info:
        fn(*args)
    msg = str(info.value)
    assert str(path) in msg, msg
    return msg


# ---------------------------------------------------------------- load_case


def test_load_case_returns_float64_arrays_as_stored(tmp_path):
    image, label = _case_arrays()
    ip = _save(tmp_path / "img.nii.gz", image)
    lp = _save(tmp_path / "lab.nii.gz", label)
    x, y = load_case(ip, lp)
    assert x.shape == SHAPE + (4,) and y.shape == SHAPE
    assert x.dtype == np.float64 and y.dtype == np.float64
    np.testing.assert_allclose(x, image.astype(np.float64))
    np.testing.assert_array_equal(y, label)
    assert isinstance(DataError("x"), ValueError)


def test_load_case_accepts_the_full_brats_size(tmp_path):
    shape = (240, 240, 155)
    image = np.zeros(shape + (4,), np.uint8)
    image[100, 120, 70] = [1, 2, 3, 4]
    label = np.zeros(shape, np.uint8)
    label[100, 120, 70] = 3
    x, y = load_case(_save(tmp_path / "i.nii.gz", image), _save(tmp_path / "l.nii.gz", label))
    assert x.shape == (240, 240, 155, 4) and y.shape == (240, 240, 155)
    assert x[100, 120, 70].tolist() == [1, 2, 3, 4] and y[100, 120, 70] == 3


def test_missing_files(tmp_path):
    image, label = _case_arrays()
    ip = _save(tmp_path / "img.nii.gz", image)
    lp = _save(tmp_path / "lab.nii.gz", label)
    msg = _raises_naming(tmp_path / "nope.nii.gz", load_case, tmp_path / "nope.nii.gz", lp)
    assert "not found" in msg
    msg = _raises_naming(tmp_path / "gone.nii.gz", load_case, ip, tmp_path / "gone.nii.gz")
    assert "label" in msg and "not found" in msg


def test_corrupt_gzip_truncated_and_garbage(tmp_path):
    image, label = _case_arrays()
    ip = _save(tmp_path / "img.nii.gz", image)
    lp = _save(tmp_path / "lab.nii.gz", label)
    blob = ip.read_bytes()
    trunc = tmp_path / "trunc.nii.gz"
    trunc.write_bytes(blob[: len(blob) // 2])
    msg = _raises_naming(trunc, load_case, trunc, lp)
    assert "gzip" in msg or "NIfTI" in msg
    garbage = tmp_path / "garbage.nii.gz"
    garbage.write_bytes(b"this is not gzip at all" * 50)
    assert "gzip" in _raises_naming(garbage, load_case, garbage, lp)


def test_corrupt_nifti_inside_valid_gzip(tmp_path):
    _, label = _case_arrays()
    lp = _save(tmp_path / "lab.nii.gz", label)
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(gzip.compress(b"\x00" * 400))  # valid gzip, no NIfTI header
    msg = _raises_naming(bad, load_case, bad, lp)
    assert "NIfTI" in msg
    bad2 = tmp_path / "bad2.nii"
    bad2.write_bytes(b"\x01" * 100)  # too short for a header
    _raises_naming(bad2, load_case, bad2, lp)


def test_wrong_ndim_and_channels(tmp_path):
    image, label = _case_arrays()
    lp = _save(tmp_path / "lab.nii.gz", label)
    three_d = _save(tmp_path / "flair_only.nii.gz", image[..., 0])
    msg = _raises_naming(three_d, load_case, three_d, lp)
    assert "dimension" in msg and "4" in msg
    two_ch = _save(tmp_path / "two.nii.gz", image[..., :2])
    msg = _raises_naming(two_ch, load_case, two_ch, lp)
    assert "channel" in msg
    ip = _save(tmp_path / "img.nii.gz", image)
    lab4 = _save(tmp_path / "lab4.nii.gz", np.stack([label] * 2, axis=-1))
    msg = _raises_naming(lab4, load_case, ip, lab4)
    assert "dimension" in msg


def test_shape_mismatch(tmp_path):
    image, _ = _case_arrays()
    _, other = _case_arrays(shape=(12, 10, 9))
    ip = _save(tmp_path / "img.nii.gz", image)
    lp = _save(tmp_path / "lab.nii.gz", other)
    msg = _raises_naming(lp, load_case, ip, lp)
    assert "(12, 10, 9)" in msg and "(12, 10, 8)" in msg


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_image_and_label(tmp_path, bad):
    image, label = _case_arrays()
    image[1, 2, 3, 2] = bad
    ip = _save(tmp_path / "img.nii.gz", image)
    lp = _save(tmp_path / "lab.nii.gz", label)
    msg = _raises_naming(ip, load_case, ip, lp)
    assert "NaN or infinite" in msg and "1 NaN" in msg
    good = _save(tmp_path / "good.nii.gz", _case_arrays()[0])
    flabel = label.astype(np.float32)
    flabel[0, 0, 0] = bad
    lp2 = _save(tmp_path / "flab.nii.gz", flabel)
    _raises_naming(lp2, load_case, good, lp2)


@pytest.mark.parametrize("value", [4, 7, 255])
def test_label_values_outside_range(tmp_path, value):
    image, label = _case_arrays()
    label[0, 0, 0] = value
    ip = _save(tmp_path / "img.nii.gz", image)
    lp = _save(tmp_path / "lab.nii.gz", label)
    msg = _raises_naming(lp, load_case, ip, lp)
    assert str(value) in msg


def test_fractional_label_rejected(tmp_path):
    image, label = _case_arrays()
    flabel = label.astype(np.float32)
    flabel[0, 0, 0] = 0.5
    ip = _save(tmp_path / "img.nii.gz", image)
    lp = _save(tmp_path / "lab.nii.gz", flabel)
    assert "0.5" in _raises_naming(lp, load_case, ip, lp)


# ---------------------------------------------------------------- open_dataset: MSD


def test_open_msd_dataset_and_load(tmp_path):
    root = _msd(tmp_path / "Task01_BrainTumour", n=3)
    (root / "imagesTr" / "._BRATS_001.nii.gz").write_bytes(b"\x00\x05\x16\x07")  # AppleDouble
    ds = open_dataset(root)
    assert isinstance(ds, Dataset) and ds.layout == "msd" and len(ds) == 3
    assert ds.ids == ["BRATS_001", "BRATS_002", "BRATS_003"]
    case = ds[1]
    assert isinstance(case, Case) and ds["BRATS_002"] is case
    assert case.image_paths == (root / "imagesTr" / "BRATS_002.nii.gz",)
    x, y = case.load()
    ref_x, ref_y = _case_arrays(2)
    np.testing.assert_allclose(x, ref_x)
    np.testing.assert_array_equal(y, ref_y)
    assert [c.id for c in ds] == ds.ids and len(ds[:2]) == 2


def test_open_msd_from_parent_folder_and_without_json(tmp_path):
    _msd(tmp_path / "dest" / "Task01_BrainTumour")
    assert open_dataset(tmp_path / "dest").ids == ["BRATS_001", "BRATS_002"]
    root = tmp_path / "dest" / "Task01_BrainTumour"
    (root / "dataset.json").unlink()
    (root / "imagesTr" / "._BRATS_001.nii.gz").write_bytes(b"junk")
    ds = open_dataset(root)
    assert ds.ids == ["BRATS_001", "BRATS_002"]


def test_msd_missing_listed_file(tmp_path):
    root = _msd(tmp_path / "d")
    missing = root / "labelsTr" / "BRATS_002.nii.gz"
    missing.unlink()
    msg = _raises_naming(missing, open_dataset, root)
    assert "not found" in msg


def test_msd_bad_dataset_json(tmp_path):
    root = _msd(tmp_path / "d")
    (root / "dataset.json").write_text("{not json")
    _raises_naming(root / "dataset.json", open_dataset, root)
    (root / "dataset.json").write_text(json.dumps({"name": "x"}))
    assert "training" in _raises_naming(root / "dataset.json", open_dataset, root)


def test_msd_case_load_validates(tmp_path):
    root = _msd(tmp_path / "d")
    image, label = _case_arrays()
    label[1, 1, 1] = 9
    _save(root / "labelsTr" / "BRATS_001.nii.gz", label)
    ds = open_dataset(root)
    _raises_naming(root / "labelsTr" / "BRATS_001.nii.gz", ds[0].load)


@pytest.mark.parametrize("layout", ["msd", "brats"])
def test_case_load_with_spacing_reads_each_file_once(tmp_path, monkeypatch, layout):
    """The voxel size comes from the label file's header, read with its data: one nibabel
    load per file of the case."""
    root = _msd(tmp_path / "d") if layout == "msd" else _brats(tmp_path / "b")
    case = open_dataset(root)[0]
    img = nib.load(str(case.label_path))
    img.header.set_zooms((1.2, 0.9, 2.0))
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header), case.label_path)
    opened: list[str] = []
    real_load = nib.load
    monkeypatch.setattr(nib, "load", lambda path, *a, **k: opened.append(path) or real_load(path))
    image, label, spacing = case.load_with_spacing()
    assert spacing == pytest.approx((1.2, 0.9, 2.0))
    assert sorted(opened) == sorted(str(p) for p in case.paths)
    x, y = case.load()
    np.testing.assert_array_equal(x, image)
    np.testing.assert_array_equal(y, label)


# ---------------------------------------------------------------- open_dataset: BraTS


def test_open_brats_stacks_and_remaps(tmp_path):
    root = _brats(tmp_path / "MICCAI_BraTS2021")
    ds = open_dataset(root)
    assert ds.layout == "brats" and ds.ids == ["BraTS2021_00000", "BraTS2021_00001"]
    case = ds[0]
    assert [p.name.split("_")[-1] for p in case.image_paths] == [
        "flair.nii.gz",
        "t1.nii.gz",
        "t1ce.nii.gz",
        "t2.nii.gz",
    ]
    x, y = case.load()
    ref_x, ref_y = _case_arrays(10)
    assert x.shape == SHAPE + (4,) and x.dtype == np.float64 and y.dtype == np.float64
    np.testing.assert_allclose(x, ref_x)  # channel order FLAIR, T1, T1Gd, T2
    np.testing.assert_array_equal(y, ref_y)  # raw 2 -> 1, 1 -> 2, 4 -> 3


def test_nii_gz_wins_over_nii_for_discovery_and_load_image(tmp_path):
    """One rule picks between ``x.nii.gz`` and ``x.nii``: the dataset and the predict reader
    read the same FLAIR file."""
    root = _brats(tmp_path / "b", n=1)
    folder = root / "BraTS2021_00000"
    gz = folder / "BraTS2021_00000_flair.nii.gz"
    _save(folder / "BraTS2021_00000_flair.nii", np.full(SHAPE, 7.0, np.float32))  # a stale copy
    _save(folder / "._BraTS2021_00000_flair.nii.gz", np.full(SHAPE, 9.0, np.float32))  # hidden
    assert find_nifti(folder, "*_flair") == gz
    case = open_dataset(root)[0]
    assert case.image_paths[0] == gz
    image, reference = load_image(folder)
    np.testing.assert_array_equal(image, case.load()[0])
    np.testing.assert_allclose(image[..., 0], _case_arrays(10)[0][..., 0])
    assert reference.get_filename() == str(gz)
    gz.unlink()  # without the .nii.gz both fall back to the .nii
    assert open_dataset(root)[0].image_paths[0].name == "BraTS2021_00000_flair.nii"
    assert (load_image(folder)[0][..., 0] == 7.0).all()


def test_load_image_reads_msd_files_and_save_label_map_keeps_the_grid(tmp_path):
    image, _ = _case_arrays(3)
    affine = np.diag([1.0, 1.2, 1.5, 1.0])
    path = tmp_path / "case.nii.gz"
    nib.save(nib.Nifti1Image(image, affine), str(path))
    loaded, reference = load_image(path)
    np.testing.assert_allclose(loaded, image)
    labels = np.zeros(SHAPE, np.uint8)
    labels[1:3, 2:4, 3:5] = 3
    out = save_label_map(labels, reference, tmp_path / "seg.nii.gz")
    seg = nib.load(str(out))
    assert seg.get_data_dtype() == np.uint8 and seg.shape == SHAPE
    np.testing.assert_array_equal(np.asarray(seg.dataobj), labels)
    np.testing.assert_allclose(seg.affine, affine)
    _raises_naming(tmp_path / "nothing.nii.gz", load_image, tmp_path / "nothing.nii.gz")


def test_brats_raw_label_3_rejected(tmp_path):
    root = _brats(tmp_path / "b", n=1)
    seg = root / "BraTS2021_00000" / "BraTS2021_00000_seg.nii.gz"
    raw = np.zeros(SHAPE, np.uint8)
    raw[0, 0, 0] = 3  # 3 is not a BraTS code
    _save(seg, raw)
    msg = _raises_naming(seg, open_dataset(root)[0].load)
    assert "3" in msg and "BraTS" in msg


def test_brats_missing_modality_and_mismatched_shape(tmp_path):
    root = _brats(tmp_path / "b", n=1)
    folder = root / "BraTS2021_00000"
    t1ce = folder / "BraTS2021_00000_t1ce.nii.gz"
    _save(t1ce, np.zeros((12, 10, 7), np.float32))
    msg = _raises_naming(t1ce, open_dataset(root)[0].load)
    assert "T1Gd" in msg
    t1ce.unlink()
    msg = _raises_naming(t1ce, open_dataset, root)
    assert "missing" in msg


def test_unknown_layout_and_missing_root(tmp_path):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("hi")
    msg = _raises_naming(tmp_path / "stuff", open_dataset, tmp_path / "stuff")
    assert "unknown dataset layout" in msg
    msg = _raises_naming(tmp_path / "absent", open_dataset, tmp_path / "absent")
    assert "not found" in msg

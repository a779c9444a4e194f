"""``tumorseg score``: saved label maps scored against label folders and dataset folders, on
made-up label maps and on predictions written by ``tumorseg predict``."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from tumorseg.cli import main as tumorseg
from tumorseg.data import DataError
from tumorseg.errors import USER_ERROR
from tumorseg.inference.score import score_folder, score_labels, summary
from tumorseg.metrics import HD95_EMPTY, dice, hd95

SPACING = (1.0, 1.0, 2.0)


def _save(path, labels, spacing=SPACING):
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(labels.astype(np.uint8), np.diag([*spacing, 1.0])), path)
    return path


def _truth() -> np.ndarray:
    """(16, 16, 12) label map: an edema box around a non-enhancing core with an enhancing rim."""
    t = np.zeros((16, 16, 12), np.uint8)
    t[3:13, 3:13, 2:10] = 1
    t[5:11, 5:11, 4:8] = 3
    t[6:10, 6:10, 5:7] = 2
    return t


def test_score_labels_hand_case():
    truth = _truth()
    pred = truth.copy()
    pred[pred == 3] = 2  # enhancing called non-enhancing: WT and TC right, ET missed
    row = score_labels(pred, truth, SPACING)
    assert row["WT_dice"] == 1.0 and row["TC_dice"] == 1.0 and row["TC_hd95"] == 0.0
    assert row["ET_dice"] == 0.0 and row["ET_hd95"] == HD95_EMPTY
    et = int((truth == 3).sum())
    assert row["enhancing_sensitivity"] == 0.0
    assert row["non_enhancing_sensitivity"] == 1.0
    n_net = int((truth == 2).sum())
    assert row["non_enhancing_specificity"] == pytest.approx(1 - et / (truth.size - n_net))
    assert row["edema_sensitivity"] == 1.0 and row["edema_specificity"] == 1.0
    assert set(row) == {
        *(
            f"{r}_{m}"
            for r in ("WT", "TC", "ET")
            for m in ("dice", "hd95", "sensitivity", "specificity")
        ),
        *(
            f"{c}_{m}"
            for c in ("edema", "non_enhancing", "enhancing")
            for m in ("sensitivity", "specificity")
        ),
    }


def test_score_folder_on_made_up_maps(tmp_path):
    truth = _truth()
    no_et = truth.copy()
    no_et[no_et == 3] = 2  # a case without enhancing tumour in truth or prediction
    shifted = np.roll(truth, 2, axis=0)  # every region 2 voxels off along x
    _save(tmp_path / "labels" / "A.nii.gz", truth)
    _save(tmp_path / "labels" / "B.nii.gz", truth)
    _save(tmp_path / "labels" / "C.nii.gz", no_et)
    _save(tmp_path / "pred" / "A.nii.gz", truth)
    _save(tmp_path / "pred" / "B.nii", shifted)  # uncompressed is fine too
    _save(tmp_path / "pred" / "C.nii.gz", no_et)

    table = score_folder(tmp_path / "pred", tmp_path / "labels")
    assert table["case"].tolist() == ["A", "B", "C"]
    a, b, c = (table.iloc[i] for i in range(3))
    assert a["WT_dice"] == 1.0 and a["ET_hd95"] == 0.0
    assert b["WT_dice"] == pytest.approx(float(dice(shifted > 0, truth > 0)))
    assert b["WT_hd95"] == pytest.approx(float(hd95(shifted > 0, truth > 0, SPACING)))
    assert b["WT_hd95"] == pytest.approx(2.0)  # the shift is along x, spacing 1 mm
    # BraTS: the both-empty ET of C is perfect and counts in the means, over 3 cases
    assert c["ET_dice"] == 1.0 and c["ET_hd95"] == 0.0 and c["TC_dice"] == 1.0
    stats = summary(table)
    assert stats.loc["ET", "dice_mean"] == pytest.approx((2.0 + b["ET_dice"]) / 3)
    assert stats.loc["WT", "dice_mean"] == pytest.approx((2.0 + b["WT_dice"]) / 3)
    assert stats.loc["ET", "n"] == 3
    # both_empty="nan": C's ET is NaN and left out of the ET means, taken over 2 cases
    nan = score_folder(tmp_path / "pred", tmp_path / "labels", both_empty="nan")
    assert math.isnan(nan.iloc[2]["ET_dice"]) and math.isnan(nan.iloc[2]["ET_hd95"])
    nan_stats = summary(nan)
    assert nan_stats.loc["ET", "dice_mean"] == pytest.approx((1.0 + b["ET_dice"]) / 2)
    assert (nan_stats.loc["ET", "n"], nan_stats.loc["WT", "n"]) == (2, 3)


def test_score_cli_writes_csv_and_json(tmp_path, capsys):
    truth = _truth()
    for cid in ("A", "B"):
        _save(tmp_path / "labels" / f"{cid}.nii.gz", truth)
    pred = truth.copy()
    pred[pred == 3] = 0
    _save(tmp_path / "pred" / "A.nii.gz", pred)
    args = ["score", "--pred", str(tmp_path / "pred"), "--labels", str(tmp_path / "labels")]
    assert tumorseg([*args, "--out", str(tmp_path / "s.csv")]) == 0
    out = capsys.readouterr().out
    assert "1 labelled case(s) without a prediction" in out and "dice_mean" in out
    table = pd.read_csv(tmp_path / "s.csv")
    assert table["case"].tolist() == ["A"]
    assert table.loc[0, "ET_dice"] == 0.0
    assert table.loc[0, "ET_hd95"] == pytest.approx(HD95_EMPTY, abs=1e-3)

    assert tumorseg([*args, "--out", str(tmp_path / "s.json")]) == 0
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["cases"][0]["case"] == "A" and doc["cases"][0]["ET_hd95"] == HD95_EMPTY
    assert doc["summary"]["ET"]["dice_mean"] == 0.0
    assert doc["summary"]["ET"]["dice_std"] == 0.0


def test_score_against_a_brats_dataset_folder(tmp_path):
    """A BraTS 2020/2021 folder: labels in raw codes (1 NCR/NET, 2 edema, 4 ET) are remapped."""
    truth = _truth()
    raw = np.select([truth == 1, truth == 2, truth == 3], [2, 1, 4], 0)
    folder = tmp_path / "brats" / "BraTS2021_00001"
    for suffix in ("flair", "t1", "t1ce", "t2"):
        _save(folder / f"BraTS2021_00001_{suffix}.nii.gz", np.ones_like(truth))
    _save(folder / "BraTS2021_00001_seg.nii.gz", raw)
    _save(tmp_path / "pred" / "BraTS2021_00001.nii.gz", truth)
    table = score_folder(tmp_path / "pred", tmp_path / "brats")
    assert table["case"].tolist() == ["BraTS2021_00001"]
    for region in ("WT", "TC", "ET"):
        assert table.loc[0, f"{region}_dice"] == 1.0 and table.loc[0, f"{region}_hd95"] == 0.0


def _mismatch(tmp_path, name: str) -> tuple[object, str]:
    """A labels folder with case A, a prediction folder with one problem; (pred dir, file)."""
    truth = _truth()
    _save(tmp_path / "labels" / "A.nii.gz", truth)
    pred_dir = tmp_path / name
    if name == "orphan":
        path = _save(pred_dir / "Z.nii.gz", truth)
    elif name == "shape":
        path = _save(pred_dir / "A.nii.gz", truth[:-1])
    elif name == "spacing":
        path = _save(pred_dir / "A.nii.gz", truth, spacing=(1.0, 1.0, 1.0))
    else:  # raw BraTS codes in a prediction
        path = _save(pred_dir / "A.nii.gz", np.where(truth == 3, 4, truth))
    return pred_dir, str(path)


@pytest.mark.parametrize(
    "name, needle",
    [
        ("orphan", "no label for case 'Z'"),
        ("shape", "differs from the label's (16, 16, 12)"),
        ("spacing", "voxel size"),
        ("codes", "outside {0, 1, 2, 3}"),
    ],
)
def test_mismatched_case_names_the_file_and_the_fix(tmp_path, name, needle):
    pred_dir, path = _mismatch(tmp_path, name)
    if name == "orphan":  # matching fails before any case is scored
        with pytest.raises(DataError) as info:
            score_folder(pred_dir, tmp_path / "labels")
        message = str(info.value)
    else:  # a case that cannot be scored keeps its row, with the reason and no scores
        table = score_folder(pred_dir, tmp_path / "labels")
        assert table["case"].tolist() == ["A"] and np.isnan(table.loc[0, "WT_dice"])
        message = table.loc[0, "error"]
    assert message.startswith(path) and needle in message


def test_missing_prediction_or_folder_is_a_user_error(tmp_path, capsys):
    _save(tmp_path / "labels" / "A.nii.gz", _truth())
    _save(tmp_path / "pred" / "A.nii.gz", _truth())
    with pytest.raises(DataError, match=r"B\.nii\.gz: no prediction for case 'B'"):
        score_folder(tmp_path / "pred", tmp_path / "labels", cases=["A", "B"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as info:
        tumorseg(["score", "--pred", str(tmp_path / "empty"), "--labels", str(tmp_path / "pred")])
    assert info.value.code == USER_ERROR
    err = capsys.readouterr().err
    assert "tumorseg score: error: " in err and "holds no .nii.gz/.nii label map" in err
    with pytest.raises(DataError, match="labels folder not found"):
        score_folder(tmp_path / "pred", tmp_path / "nothing")


@pytest.mark.slow
def test_score_predictions_written_by_tumorseg_predict(sample_data, tmp_path, capsys):
    """`tumorseg predict` (the shipped model) on one sample case, then `tumorseg score` against
    the dataset folder: the row equals the metrics of the saved map against the label file."""
    import nibabel as nib

    from tumorseg.inference.score import score_file

    case = "BRATS_001"
    pred = tmp_path / "pred" / f"{case}.nii.gz"
    image = sample_data / "imagesTr" / f"{case}.nii.gz"
    assert tumorseg(["predict", str(image), "--out", str(pred)]) == 0
    out_csv = tmp_path / "scores.csv"
    args = ["score", "--pred", str(pred.parent), "--labels", str(sample_data)]
    assert tumorseg([*args, "--out", str(out_csv)]) == 0
    assert f"{len(list((sample_data / 'labelsTr').glob('*.nii.gz'))) - 1} labelled" in (
        capsys.readouterr().out
    )
    table = pd.read_csv(out_csv)
    assert table["case"].tolist() == [case]
    labels = np.asarray(nib.load(str(pred)).dataobj)
    truth = np.asarray(nib.load(str(sample_data / "labelsTr" / f"{case}.nii.gz")).dataobj)
    assert labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 1, 2, 3}
    assert table.loc[0, "WT_dice"] == pytest.approx(float(dice(labels > 0, truth > 0)), abs=1e-5)
    assert table.loc[0, "WT_dice"] > 0.5  # the shipped model finds the tumour
    expected = score_file(pred, sample_data / "labelsTr" / f"{case}.nii.gz")
    for key, value in expected.items():
        assert table.loc[0, key] == pytest.approx(value, rel=1e-5, nan_ok=True)
    # the same labels folder, given directly, scores the same
    again = score_folder(pred.parent, sample_data / "labelsTr")
    assert again.loc[0, "ET_hd95"] == pytest.approx(expected["ET_hd95"])

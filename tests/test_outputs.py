"""Results other tools can read (issue 33): label codings in and out, saved probabilities, the
uncertainty map and per-case doubt, scans at another spacing, the QU-BraTS score, --version."""

from __future__ import annotations

import json
import math

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from tumorseg.cli import main as tumorseg
from tumorseg.contract import probabilities_to_labels
from tumorseg.inference.outputs import SaveOptions, run_case, side_paths, write_outputs
from tumorseg.inference.postprocess import Postprocess
from tumorseg.inference.predict import predict_volume
from tumorseg.inference.score import score_folder
from tumorseg.inference.settings import InferenceSettings
from tumorseg.inference.spacing import (
    SpacingWarning,
    model_spacing,
    resize,
    scaled_rules,
)
from tumorseg.inference.uncertainty import (
    QC_COLUMNS,
    auroc,
    decode_probabilities,
    encode_probabilities,
    load_probabilities,
    qc_table,
    ranking_quality,
    update_qc,
    voxel_uncertainty,
)
from tumorseg.labels import LabelCoding, coding_fit, edema_outer_share, from_coding, to_coding
from tumorseg.metrics.qu_brats import filtered_curves, qu_brats_score

CODES = {
    LabelCoding.MSD: {0, 1, 2, 3},
    LabelCoding.BRATS2021: {0, 1, 2, 4},
    LabelCoding.BRATS2023: {0, 1, 2, 3},
}


def _glioma(shape=(20, 20, 14)) -> np.ndarray:
    """Course-coded nested boxes: edema outside, non-enhancing core, enhancing rim inside."""
    t = np.zeros(shape, np.uint8)
    t[3:17, 3:17, 2:12] = 1
    t[6:14, 6:14, 4:10] = 3
    t[8:12, 8:12, 5:9] = 2
    return t


def _save(path, labels, spacing=(1.0, 1.0, 1.0)):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(labels.astype(np.uint8), np.diag([*spacing, 1.0])), path)
    return path


# ----------------------------------------------------------------------------- codings
@pytest.mark.parametrize("coding", list(LabelCoding))
def test_every_coding_round_trips_and_holds_its_own_codes(coding):
    course = _glioma()
    coded = to_coding(course, coding)
    assert set(np.unique(coded).tolist()) == CODES[coding]
    assert np.array_equal(from_coding(coded, coding), course)
    assert edema_outer_share(course) == 1.0 and coding_fit(course, LabelCoding.MSD) is None
    if coding is LabelCoding.BRATS2021:
        assert coded[10, 10, 6] == 1 and coded[3, 3, 2] == 2 and coded[6, 6, 4] == 4
    with pytest.raises(ValueError, match="not in the"):
        from_coding(np.array([5]), coding)


def test_a_brats2023_map_read_as_msd_is_warned_with_the_right_suggestion(tmp_path, capsys):
    truth = _glioma()
    _save(tmp_path / "labels" / "A.nii.gz", truth)
    _save(tmp_path / "pred" / "A.nii.gz", to_coding(truth, LabelCoding.BRATS2023))

    table = score_folder(tmp_path / "pred", tmp_path / "labels")
    row = table.iloc[0]
    assert row["label_coding"] == "msd" and row["coding_fits"] == "brats2023"
    assert row["edema_outer_share"] < 0.5 and row["TC_dice"] < 0.9
    err = capsys.readouterr().err
    assert "warning" in err and "--label-coding brats2023" in err

    right = score_folder(tmp_path / "pred", tmp_path / "labels", coding="brats2023").iloc[0]
    assert right["coding_fits"] == "" and right["edema_outer_share"] == 1.0
    assert (right["WT_dice"], right["TC_dice"], right["ET_dice"]) == (1.0, 1.0, 1.0)
    assert "warning" not in capsys.readouterr().err


def test_predict_writes_each_coding_and_score_reads_it_back(batch_weights, tmp_path, capsys):
    """Round trip on a real layout (an MSD folder): the tiny model's maps written in each
    coding hold that coding's codes, and score in the same coding gives the msd figures."""
    from conftest import write_tiny_dataset

    data = write_tiny_dataset(tmp_path / "data", n=2)
    figures = {}
    for coding in LabelCoding:
        out = tmp_path / coding.value
        argv = ["predict", str(data), "--out", str(out), "--weights", str(batch_weights)]
        assert tumorseg([*argv, "--label-coding", coding.value]) == 0
        assert f"label coding {coding.value}" in capsys.readouterr().out
        codes = set()
        for path in sorted(out.glob("*.nii.gz")):
            codes |= set(np.unique(np.asarray(nib.load(path).dataobj)).tolist())
        assert codes <= CODES[coding]
        record = json.loads((out / "run.json").read_text())
        assert record["outputs"]["label_coding"] == coding.value
        csv = tmp_path / f"{coding.value}.csv"
        argv = ["score", "--pred", str(out), "--labels", str(data), "--out", str(csv)]
        assert tumorseg([*argv, "--label-coding", coding.value]) in (0, 1)
        assert f"label coding {coding.value}" in capsys.readouterr().out
        table = pd.read_csv(csv)
        assert (table["label_coding"] == coding.value).all()
        figures[coding] = table[["WT_dice", "TC_dice", "ET_dice"]].to_numpy()
    for coding in LabelCoding:
        np.testing.assert_array_equal(figures[coding], figures[LabelCoding.MSD])


def test_a_real_brats2023_map_is_warned_about_and_reads_right_in_its_coding(
    real_scans, tmp_path, capsys
):
    from tumorseg.data import load_label_map

    case = real_scans / "valid" / "Brats18_CBICA_AOZ_1"
    truth, spacing = load_label_map(case / "Brats18_CBICA_AOZ_1_seg.nii.gz", brats_codes=True)
    _save(tmp_path / "labels" / "AOZ.nii.gz", truth, spacing)
    _save(tmp_path / "pred" / "AOZ.nii.gz", to_coding(truth, "brats2023"), spacing)
    wrong = score_folder(tmp_path / "pred", tmp_path / "labels").iloc[0]
    assert wrong["coding_fits"] == "brats2023" and wrong["TC_dice"] < 0.9
    assert "--label-coding brats2023" in capsys.readouterr().err
    right = score_folder(tmp_path / "pred", tmp_path / "labels", coding="brats2023").iloc[0]
    assert right["coding_fits"] == "" and right["TC_dice"] == 1.0


# ----------------------------------------------------------------------------- a fake model
class FakeRegions:
    """A region model that needs no weights: WT/TC/ET probabilities are sigmoids of the local
    mean FLAIR minus 0, 1 and 2 (smooth, nested); carries a manifest like a real one."""

    def __init__(self, postprocess=None, spacing=None):
        self.manifest = {"outputs": "regions", "threshold": 0.5, "standardize": "none"}
        if postprocess:
            self.manifest["postprocess"] = postprocess
        if spacing:
            self.manifest["spacing"] = spacing

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        from scipy import ndimage as ndi

        # a 7-voxel neighbourhood, like a network's receptive field: it sees more mm on a
        # coarser grid, so the grid matters
        flair = ndi.uniform_filter(batch[:, 0], size=(1, 7, 7, 7), mode="constant")
        out = np.stack([flair - 0.0, flair - 1.0, flair - 2.0], axis=1)
        return (1.0 / (1.0 + np.exp(-3.0 * out))).astype(np.float32)


def _blob_image(shape=(32, 30, 24), spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    """(X, Y, Z, 4) image: a smooth bright ball (FLAIR up to 3.5) in a nonzero brain box, plus
    a small bright speck the clean-up removes."""
    grid = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij")
    centre = [n * s * 0.45 for n, s in zip(shape, spacing)]
    r = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre)))
    flair = 3.5 * np.exp(-((r / 7.0) ** 2)) - 0.4
    image = np.zeros((*shape, 4), np.float32)
    brain = tuple(slice(1, n - 1) for n in shape)
    image[brain] = np.repeat(flair[..., None], 4, axis=-1)[brain] + 2.0
    image[..., 0][brain] = flair[brain]
    corner = tuple(slice(n - 6, n - 3) for n in shape)
    image[(*corner, 0)] = 20.0  # a small "tumour" apart: the clean-up's min_component removes it
    return image


# ----------------------------------------------------------------------------- probabilities
def test_encoded_probabilities_keep_every_voxel_on_its_side_of_the_threshold():
    t = 0.5
    probs = np.array([0.0, 0.499, 0.5, 0.5 + 1e-7, 0.501, 127.5 / 255, 128 / 255, 1.0])
    probs = probs.reshape(1, -1, 1, 1).repeat(3, axis=0)
    codes = encode_probabilities(probs, t)
    assert codes.dtype == np.uint8 and codes.shape == (8, 1, 1, 3)
    decoded = np.moveaxis(decode_probabilities(codes), -1, 0)
    np.testing.assert_array_equal(decoded > t, probs > t)
    assert np.abs(decoded - probs).max() <= 1 / 255
    for threshold in (0.3, 0.4, 0.45, 0.6):
        rng = np.random.default_rng(0)
        p = rng.uniform(size=(3, 40, 40, 4)).astype(np.float32)
        p[0, 0, 0, :] = threshold
        d = np.moveaxis(decode_probabilities(encode_probabilities(p, threshold)), -1, 0)
        np.testing.assert_array_equal(d > threshold, p > threshold)


def test_saved_probabilities_give_the_map_before_clean_up_voxel_for_voxel(tmp_path):
    model = FakeRegions(postprocess={"min_component": 1000})
    image = _blob_image()
    result = run_case(image, (1.0, 1.0, 1.0), model)
    before = probabilities_to_labels(result.probs, 0.5, "regions")
    assert (before != result.labels).any()  # the clean-up removed the speck
    reference = nib.Nifti1Image(np.zeros(image.shape[:3], np.float32), np.diag([1, 1, 1, 1.0]))
    options = SaveOptions("brats2021", probabilities=True, uncertainty=True)
    written = write_outputs(result, reference, tmp_path / "seg.nii.gz", options, 0.5, False)
    probs_path, unc_path = side_paths(tmp_path / "seg.nii.gz", folder=False)
    assert written == [tmp_path / "seg.nii.gz", probs_path, unc_path]
    assert probs_path.name == "seg_probabilities.nii.gz"
    saved = load_probabilities(probs_path)
    assert saved.shape == result.probs.shape
    np.testing.assert_array_equal(probabilities_to_labels(saved, 0.5, "regions"), before)
    shown = nib.load(probs_path).get_fdata()  # other tools see 0..1 through the header slope
    assert 0.0 <= shown.min() and shown.max() <= 1.0 + 1e-6
    unc = np.asarray(nib.load(unc_path).dataobj)
    assert unc.shape == (*image.shape[:3], 3) and unc.max() <= 100 and unc.max() > 50
    mapped = np.asarray(nib.load(tmp_path / "seg.nii.gz").dataobj)
    np.testing.assert_array_equal(from_coding(mapped, "brats2021"), result.labels)


def test_folder_predict_writes_side_folders_qc_and_score_still_reads_it(
    batch_weights, tiny_data, tmp_path, capsys
):
    out = tmp_path / "out"
    argv = ["predict", str(tiny_data), "--out", str(out), "--weights", str(batch_weights)]
    assert tumorseg([*argv, "--save-probabilities", "--save-uncertainty"]) == 0
    ids = sorted(p.name for p in out.glob("*.nii.gz"))
    assert sorted(p.name for p in (out / "probabilities").glob("*.nii.gz")) == ids
    assert sorted(p.name for p in (out / "uncertainty").glob("*.nii.gz")) == ids
    qc = pd.read_csv(out / "qc.csv")
    assert list(qc.columns) == ["case", *QC_COLUMNS] and len(qc) == len(ids)
    assert qc["doubt"].is_monotonic_decreasing
    assert "check first" in capsys.readouterr().out
    for name in ids:  # no clean-up in the tiny manifest: the map is the thresholded probabilities
        saved = load_probabilities(out / "probabilities" / name)
        labels = np.asarray(nib.load(out / name).dataobj)
        np.testing.assert_array_equal(probabilities_to_labels(saved, 0.5, "classes"), labels)
        assert nib.load(out / "probabilities" / name).shape == (*labels.shape, 3)
    csv = tmp_path / "s.csv"
    argv = ["score", "--pred", str(out), "--labels", str(tiny_data), "--out", str(csv)]
    assert tumorseg([*argv, "--uncertainty", str(out / "uncertainty")]) == 0
    assert "QU-BraTS" in capsys.readouterr().out
    table = pd.read_csv(csv)
    assert len(table) == len(ids) and table["WT_qu_score"].between(0, 1).all()


# ----------------------------------------------------------------------------- uncertainty, qc
def test_voxel_uncertainty_is_entropy_on_the_qu_brats_scale():
    probs = np.array([0.0, 1.0, 0.5, 0.11, 0.89]).reshape(1, 5, 1, 1)
    unc = voxel_uncertainty(probs)[..., 0].ravel()
    assert unc.tolist() == [0, 0, 100, 50, 50]


def test_the_check_first_list_puts_the_most_doubtful_first_and_updates_by_case(tmp_path):
    path = tmp_path / "qc.csv"
    row = dict.fromkeys(QC_COLUMNS, 0.0)
    update_qc(path, [{**row, "case": "a", "doubt": 0.1}, {**row, "case": "b", "doubt": 0.5}])
    update_qc(path, [{**row, "case": "a", "doubt": 0.9}, {**row, "case": "c", "doubt": 0.2}])
    assert pd.read_csv(path)["case"].tolist() == ["a", "b", "c"]
    assert qc_table([{**row, "case": "x", "doubt": 0.3}])["case"].tolist() == ["x"]


def test_ranking_quality_on_a_made_up_table():
    table = pd.DataFrame(
        {
            "WT_dice": [0.9, 0.8, 0.5, 0.95],
            "TC_dice": [0.9, 0.7, 0.9, 0.9],
            "ET_dice": [0.85, 0.4, 0.9, 0.9],
            "doubt": [0.1, 0.5, 0.3, 0.12],
            "error": ["", "", "", ""],
        }
    )
    q = ranking_quality(table)  # worst Dice 0.85, 0.4, 0.5, 0.9: failed are cases 2 and 3
    assert q["failed"] == 2 and q["auroc"] == 1.0 and q["spearman"] == pytest.approx(0.8)
    assert auroc([0.2, 0.2], [True, False]) == 0.5 and math.isnan(auroc([1.0], [True]))


# ----------------------------------------------------------------------------- QU-BraTS
def test_qu_brats_score_matches_a_hand_computed_case():
    truth = np.array([1, 1, 1, 0, 0, 0, 0, 0], bool)
    pred = np.array([1, 1, 0, 1, 0, 0, 0, 0], bool)
    unc = np.array([10, 60, 90, 80, 0, 0, 30, 100])
    curves = filtered_curves(pred, truth, unc)
    np.testing.assert_allclose(curves["dice"], [1, 1, 1, 1, 2 / 3])
    np.testing.assert_allclose(curves["ftp"], [1, 0.5, 0.5, 0, 0])
    np.testing.assert_allclose(curves["ftn"], [0.5, 0.5, 0.25, 0.25, 0])
    figures = qu_brats_score(pred, truth, unc)
    assert figures["dice_auc"] == pytest.approx(0.75 + 0.25 * (1 + 2 / 3) / 2)
    assert figures["ftp_auc"] == pytest.approx(0.375)
    assert figures["ftn_auc"] == pytest.approx(0.3125)
    assert figures["score"] == pytest.approx((0.9583333 + 0.625 + 0.6875) / 3)


# ----------------------------------------------------------------------------- spacing
def test_a_1mm_scan_gives_the_map_it_gave_before_voxel_for_voxel():
    model = FakeRegions(postprocess={"min_component": 1000})
    image = _blob_image()
    settings = InferenceSettings.from_manifest(model.manifest)
    before = probabilities_to_labels(
        predict_volume(image, model, settings=settings), 0.5, "regions"
    )
    after = run_case(image, (1.0, 1.0, 1.0), model).labels
    np.testing.assert_array_equal(after, before)
    assert model_spacing(model) == (1.0, 1.0, 1.0)


def test_another_spacing_is_resampled_and_comes_back_on_the_input_grid():
    model = FakeRegions()
    fine = _blob_image((36, 36, 30))
    thick = fine[:, :, ::3]  # every third slice: 1 x 1 x 3 mm
    resampled = run_case(thick, (1.0, 1.0, 3.0), model)
    plain = run_case(thick, (1.0, 1.0, 3.0), model, resample=False)
    assert resampled.labels.shape == plain.labels.shape == thick.shape[:3]
    assert (resampled.labels != plain.labels).any()
    truth = run_case(fine, (1.0, 1.0, 1.0), model).labels[:, :, ::3]
    err = [(r.labels != truth).mean() for r in (resampled, plain)]
    assert err[0] < err[1]  # resampling is closer to the 1 mm map on the thick grid
    with pytest.warns(SpacingWarning, match="thicker than 6"):
        run_case(thick[:, :, ::3], (1.0, 1.0, 9.0), model)


def test_resize_keeps_the_extent_and_the_rules_keep_their_volume():
    vol = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    assert resize(vol, (4, 6, 8)).shape == (4, 6, 8)
    assert resize(resize(vol, (2, 3, 12)), (2, 3, 4)).shape == (2, 3, 4)
    rules = Postprocess(min_component=1000, keep_fraction=0.1, min_enhancing=300)
    assert scaled_rules(rules, (1.0, 1.0, 1.0)) == rules
    assert scaled_rules(rules, (1.0, 1.0, 3.0)) == Postprocess(333, 0.1, 100)
    assert scaled_rules(rules, (2.0, 2.0, 2.0)) == Postprocess(125, 0.1, 38)


# ----------------------------------------------------------------------------- --version
def test_version_names_the_package_and_the_shipped_model(capsys):
    from tumorseg import __version__

    assert tumorseg(["--version"]) == 0
    out = capsys.readouterr().out
    assert f"tumorseg {__version__}" in out and "model_pretrained.weights.h5@" in out

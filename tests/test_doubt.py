"""Issue 33, the rest: the passes' disagreement in the per-case doubt, qc.csv from
``evaluate --save`` and its merge over shards, and ``predict --report`` (a report without
labels, most doubtful case first)."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from test_browser import chromium, offline_page  # noqa: F401  (the browser fixture)
from test_outputs import FakeRegions, _blob_image

from tumorseg.cli import main as tumorseg
from tumorseg.inference.outputs import run_case
from tumorseg.inference.postprocess import Mirror, mirrored
from tumorseg.inference.predict import predict_volume, predict_volume_spread
from tumorseg.inference.spacing import predict_probabilities
from tumorseg.inference.uncertainty import (
    QC_COLUMNS,
    case_doubt,
    pass_disagreement,
    update_qc,
)
from tumorseg.model.ensemble import Ensemble
from tumorseg.viz.doubt_report import doubt_picture, doubt_slice
from tumorseg.viz.report import UNCERTAINTY_INDEX0


class Squared(FakeRegions):
    """A second "member" that disagrees with FakeRegions: its probabilities squared."""

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return super().__call__(batch) ** 2


def _pair(postprocess=None) -> Ensemble:
    manifest = {"outputs": "regions", "threshold": 0.5, "standardize": "none", "tta": "x"}
    if postprocess:
        manifest["postprocess"] = postprocess
    return Ensemble([FakeRegions(), Squared()], manifest)


# ----------------------------------------------------------------------------- disagreement
def test_mirrored_spread_is_the_range_of_the_passes_beside_the_same_mean():
    def lopsided(batch: np.ndarray) -> np.ndarray:  # depends on the position along X
        ramp = np.linspace(0.0, 1.0, batch.shape[2], dtype=np.float32)[None, None, :, None, None]
        return batch[:, :1] * ramp

    batch = np.ones((1, 2, 5, 3, 4), np.float32)
    plain = mirrored(lopsided, Mirror.X)(batch)
    both = mirrored(lopsided, Mirror.X, spread=True)(batch)
    assert both.shape == (1, 2, 5, 3, 4)
    np.testing.assert_array_equal(both[:, :1], plain)  # the mean is unchanged, bit for bit
    ramp = np.linspace(0.0, 1.0, 5)
    np.testing.assert_allclose(both[0, 1, :, 0, 0], np.abs(ramp - ramp[::-1]), atol=1e-6)
    one = mirrored(lopsided, Mirror.NONE, spread=True)(batch)  # one pass: nothing disagrees
    np.testing.assert_array_equal(one[:, 1:], 0.0)


def test_spread_keeps_the_probabilities_and_measures_the_members_difference():
    image = _blob_image()
    model = _pair(postprocess={"min_component": 1000})
    probs, ranges = predict_volume_spread(image, model)
    np.testing.assert_array_equal(probs, predict_volume(image, model))  # clean-up and all
    # FakeRegions is mirror-symmetric, so the two passes differ by the members alone
    a = predict_volume(image, FakeRegions(), tta="none")
    b = predict_volume(image, Squared(), tta="none")
    np.testing.assert_allclose(ranges, np.abs(a - b), atol=1e-5)
    assert predict_volume_spread(image, FakeRegions(), tta="none")[1] is None  # one pass


def test_the_doubt_holds_the_disagreement_and_the_map_does_not_change():
    image = _blob_image()
    model = _pair()
    with_spread = run_case(image, (1.0, 1.0, 1.0), model)
    without = run_case(image, (1.0, 1.0, 1.0), model, spread=False)
    np.testing.assert_array_equal(with_spread.labels, without.labels)
    np.testing.assert_array_equal(with_spread.probs, without.probs)
    assert all(math.isnan(without.doubt[f"disagree_{r}"]) for r in ("WT", "TC", "ET"))
    values = [with_spread.doubt[f"disagree_{r}"] for r in ("WT", "TC", "ET")]
    assert all(0.0 < v < 1.0 for v in values)
    assert list(with_spread.doubt) == list(QC_COLUMNS)
    thick = image[:, :, ::3]  # resampled in and out: the ranges come back on the input grid
    probs, ranges = predict_probabilities(thick, (1.0, 1.0, 3.0), model)
    assert ranges.shape == probs.shape == (3, *thick.shape[:3])


def test_pass_disagreement_by_hand():
    labels = np.zeros((4, 1, 1), np.uint8)
    labels[:2] = 1  # edema: WT only
    labels[2] = 3  # enhancing: WT, TC, ET
    ranges = np.zeros((3, 4, 1, 1), np.float32)
    ranges[0, :, 0, 0] = [0.2, 0.4, 0.6, 0.9]  # the 4th voxel is background: not counted
    ranges[2, 2] = 0.5
    row = pass_disagreement(ranges, labels)
    assert row == pytest.approx({"disagree_WT": 0.4, "disagree_TC": 0.0, "disagree_ET": 0.5})
    assert math.isnan(pass_disagreement(None, labels)["disagree_WT"])
    probs = np.stack([labels > 0, labels == 3, labels == 3]).astype(np.float32)
    doubt = case_doubt(probs, labels, ranges=ranges)
    assert doubt["disagree_WT"] == pytest.approx(0.4) and doubt["doubt"] == 0.0


# ----------------------------------------------------------------------------- qc.csv
def _qc(table: pd.DataFrame) -> pd.DataFrame:
    return table[["case", *QC_COLUMNS]].sort_values("case").reset_index(drop=True)


@pytest.mark.slow
def test_sharded_evaluate_save_writes_qc_lists_that_merge_into_one(
    batch_weights, tiny_data, tmp_path, capsys
):
    save = tmp_path / "save"
    tables = []
    for shard in ("0/2", "1/2"):
        out = tmp_path / f"t{shard[0]}.csv"
        argv = ["evaluate", "--data", str(tiny_data), "--weights", str(batch_weights)]
        assert tumorseg([*argv, "--save", str(save), "--out", str(out), "--shard", shard]) == 0
        tables.append(pd.read_csv(out, dtype={"case": str}))
    assert "check first" in capsys.readouterr().out
    parts = sorted(p.name for p in save.glob("qc*.csv"))
    assert parts == ["qc-shard-0-of-2.csv", "qc-shard-1-of-2.csv"]
    assert tumorseg(["merge", "--out", str(save), str(save)]) == 0
    merged = pd.read_csv(save / "qc.csv", dtype={"case": str})
    assert list(merged.columns) == ["case", *QC_COLUMNS]
    assert merged["doubt"].is_monotonic_decreasing and len(merged) == 5
    pd.testing.assert_frame_equal(
        _qc(merged), _qc(pd.concat(tables)), check_exact=False, atol=1e-4, check_dtype=False
    )


def test_merge_takes_qc_files_or_folders_and_refuses_overlaps(tmp_path, capsys):
    row = dict.fromkeys(QC_COLUMNS, 0.0)
    a, b = tmp_path / "a", tmp_path / "b"
    update_qc(a / "qc-shard-0-of-2.csv", [{**row, "case": "x", "doubt": 0.1}])
    update_qc(b / "qc-shard-1-of-2.csv", [{**row, "case": "y", "doubt": 0.7}])
    assert tumorseg(["merge", "--out", str(tmp_path / "m.csv"), str(a), str(b)]) == 0
    assert pd.read_csv(tmp_path / "m.csv")["case"].tolist() == ["y", "x"]
    files = [str(a / "qc-shard-0-of-2.csv"), str(b / "qc-shard-1-of-2.csv")]
    assert tumorseg(["merge", "--out", str(tmp_path / "m2"), *files]) == 0
    assert (tmp_path / "m2" / "qc.csv").read_text() == (tmp_path / "m.csv").read_text()
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        tumorseg(["merge", "--out", str(tmp_path / "m3.csv"), str(a), *files])
    assert stop.value.code == 2 and "also in" in capsys.readouterr().err
    # one shared folder: the shards' lists and the qc.csv of an unsharded finishing pass
    update_qc(a / "qc-shard-1-of-2.csv", [{**row, "case": "y", "doubt": 0.7}])
    update_qc(a / "qc.csv", [{**row, "case": "z", "doubt": 0.4}])
    for _ in range(2):  # merging again reads the merged qc.csv too: the same list
        assert tumorseg(["merge", "--out", str(a), str(a)]) == 0
        assert pd.read_csv(a / "qc.csv")["case"].tolist() == ["y", "z", "x"]


# ----------------------------------------------------------------------------- the report
def test_the_picture_shows_the_most_uncertain_slice_in_colour():
    labels = np.zeros((20, 20, 6), np.uint8)
    labels[5:15, 5:15, 1:5] = 1
    uncertainty = np.zeros((20, 20, 6, 3), np.uint8)
    uncertainty[4:16, 4:16, 3, 1] = 80
    assert doubt_slice(uncertainty, labels) == 3
    assert doubt_slice(np.zeros_like(uncertainty), labels) == 1  # none: the most tumour
    image = np.ones((20, 20, 6, 4), np.float32)
    picture = doubt_picture(image, labels, uncertainty, 3)
    assert picture.shape[1] > 4 * picture.shape[0] * 0.9  # four panels side by side
    assert (picture == UNCERTAINTY_INDEX0 + 7).any()  # 80 is the 8th step of 10


def test_predict_report_lists_the_cases_most_doubtful_first(batch_weights, tiny_data, tmp_path):
    out, report = tmp_path / "out", tmp_path / "report"
    argv = ["predict", str(tiny_data), "--out", str(out), "--weights", str(batch_weights)]
    assert tumorseg([*argv, "--report", str(report)]) == 0
    page = (report / "index.html").read_text()
    qc = pd.read_csv(out / "qc.csv", dtype={"case": str})
    assert re.findall(r'data-case="([^"]+)"', page) == qc["case"].tolist()
    assert len(list((report / "img").glob("*.png"))) == len(qc) == 5
    assert "<script" not in page and "http" not in page
    assert "most doubtful first" in page
    # a resumed run skips the existing maps: it keeps the pictures drawn here before
    assert tumorseg([*argv, "--report", str(report)]) == 0
    page = (report / "index.html").read_text()
    assert page.count("<figure>") == 5 and "no picture" not in page
    assert len(list((report / "img").glob("*.png"))) == 5
    assert tumorseg([*argv, "--report", str(tmp_path / "new")]) == 0  # none drawn there
    assert (tmp_path / "new" / "index.html").read_text().count('note">no picture') == 5


def test_predict_report_of_one_case(batch_weights, tiny_data, tmp_path):
    image = sorted((tiny_data / "imagesTr").glob("*.nii.gz"))[0]
    seg, report = tmp_path / "seg.nii.gz", tmp_path / "report"
    argv = ["predict", str(image), "--out", str(seg), "--weights", str(batch_weights)]
    assert tumorseg([*argv, "--report", str(report)]) == 0
    page = (report / "index.html").read_text()
    assert re.findall(r'data-case="([^"]+)"', page) == ["seg"]
    assert len(list((report / "img").glob("doubt-seg-*.png"))) == 1


@pytest.mark.slow
def test_predict_report_in_chromium(chromium, batch_weights, tiny_data, tmp_path):  # noqa: F811
    out, report = tmp_path / "out", tmp_path / "report"
    argv = ["predict", str(tiny_data), "--out", str(out), "--weights", str(batch_weights)]
    assert tumorseg([*argv, "--report", str(report)]) == 0
    with offline_page(chromium) as (page, problems):
        page.goto((report / "index.html").as_uri(), wait_until="load")
        images = page.evaluate("() => [...document.images].map(i => [i.complete, i.naturalWidth])")
        first = page.locator("tr.case").first.get_attribute("data-case")
    assert problems == []
    assert len(images) == 5 and all(done and width > 0 for done, width in images)
    assert first == pd.read_csv(out / "qc.csv", dtype={"case": str})["case"][0]

"""The visual report of ``tumorseg evaluate --report`` and ``tumorseg score --report``: the
pictures (slice of most disagreement, far false positives, colours), the page (order, failed
cases, self-contained), its size, and the page in Chromium (as the course's browser test runs it).

The evaluate runs use a stub model (a threshold on two standardized channels, no TensorFlow)
put in place of ``load_model``, so each case's errors are known in advance.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_browser import chromium, offline_page  # noqa: F401  (the browser fixture)

from tumorseg.inference.score import ScoredCase, score_folder
from tumorseg.viz.labeled import CLASS_COLORS
from tumorseg.viz.report import (
    ERROR_COLORS,
    GREY_LEVELS,
    MAX_PANEL_PX,
    PANELS,
    UNCERTAINTY_INDEX0,
    CaseReport,
    disagreement_slice,
    far_false_positive,
    order_worst_first,
    png_bytes,
    slice_picture,
)

SHAPE = (48, 40, 20)
#: The cases of the stub dataset: how the stub's prediction departs from the label.
CASES = {
    "BRATS_001": "exact",
    "BRATS_002": "far false positive",
    "BRATS_003": "shifted",  # the lowest WT Dice
    "BRATS_004": "half missed",
}


def _truth() -> np.ndarray:
    """(48, 40, 20) label map: an edema box around an enhancing core."""
    t = np.zeros(SHAPE, np.uint8)
    t[14:30, 12:28, 6:14] = 1
    t[18:26, 16:24, 8:12] = 3
    return t


def _prediction(kind: str) -> np.ndarray:
    pred = _truth()
    if kind == "far false positive":
        pred[38:44, 32:37, 2:5] = 1
        pred[14:18] = 0  # and the most disagreement on another slice
    elif kind == "shifted":
        pred = np.roll(pred, 9, axis=0)
    elif kind == "half missed":
        pred[14:22] = 0
    return pred


def _image(pred: np.ndarray, seed: int) -> np.ndarray:
    """(X, Y, Z, 4) brain of smooth random intensities; T2 is bright where ``pred`` has tumour
    and T1Gd where it has enhancing tumour, so the stub model predicts ``pred``."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    image = ndimage.gaussian_filter(rng.uniform(50, 150, (*SHAPE, 4)), (2, 2, 2, 0))
    image[:3], image[-3:], image[:, :3], image[:, -3:] = 0, 0, 0, 0
    image[..., 3] += 400 * (pred > 0)
    image[..., 2] += 400 * (pred == 3)
    return image


class StubModel:
    """(B, 4, x, y, z) standardized -> (B, 3, x, y, z): edema where T2 is bright, enhancing where
    T1Gd is too; no spatial context.  Probabilities 0.8 there and 0.02 elsewhere, so the voxel
    uncertainty is 72 in the tumour and 14 around it (``voxel_uncertainty``)."""

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        tumour, enhancing = batch[:, 3] > 1.0, batch[:, 2] > 1.0
        out = np.full((batch.shape[0], 3, *batch.shape[2:]), 0.02, np.float32)
        out[:, 0] += 0.78 * (tumour & ~enhancing)
        out[:, 2] += 0.78 * (tumour & enhancing)
        return out


def _dataset(root: Path) -> Path:
    """An MSD folder of the ``CASES``, 1 x 1 x 2 mm voxels."""
    import nibabel as nib

    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    for sub in ("imagesTr", "labelsTr"):
        (root / sub).mkdir(parents=True)
    for i, (case, kind) in enumerate(CASES.items()):
        image = _image(_prediction(kind), seed=i)
        nib.save(
            nib.Nifti1Image(image.astype(np.float32), affine), root / "imagesTr" / f"{case}.nii.gz"
        )
        nib.save(nib.Nifti1Image(_truth(), affine), root / "labelsTr" / f"{case}.nii.gz")
    return root


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """``tumorseg evaluate --data <the 4 CASES> --out CSV --report DIR`` with the stub model;
    yields (report folder, CSV table, what the command printed)."""
    import contextlib

    from tumorseg.inference import cli
    from tumorseg.inference.settings import InferenceSettings

    root = tmp_path_factory.mktemp("evaluate")
    data = _dataset(root / "data")

    def load_model(parser, args):
        return StubModel(), InferenceSettings(standardize="brain")

    saved, cli.load_model = cli.load_model, load_model
    out = io.StringIO()
    try:
        args = [
            "--data",
            str(data),
            "--out",
            str(root / "scores.csv"),
            "--report",
            str(root / "report"),
            "--no-resample",  # the stub model predicts on the 1 x 1 x 2 mm grid as it is
        ]
        with contextlib.redirect_stdout(out):
            assert cli.evaluate_main(args) == 0
    finally:
        cli.load_model = saved
    return root / "report", pd.read_csv(root / "scores.csv"), out.getvalue()


# ----------------------------------------------------------------------------- the pictures


def test_disagreement_slice_and_far_false_positive():
    truth = _truth()
    pred = truth.copy()
    pred[14:30, 12:28, 10] = 0  # slice 10 loses its tumour
    assert disagreement_slice(truth, pred) == 10
    bigger = truth.copy()
    bigger[10:34, 12:28, 9] = 1
    assert disagreement_slice(bigger, bigger) == 9  # no disagreement: the slice with most tumour
    assert far_false_positive(truth, truth) is None

    far = far_false_positive(truth, _prediction("far false positive"), (1.0, 1.0, 2.0))
    assert far is not None and far.voxels == 6 * 5 * 3 and far.z == 2
    assert far.box == (slice(38, 44), slice(32, 37))
    # nearest labelled voxel (29, 27, 6) from (38, 32, 4): sqrt(9² + 5² + 4²) mm
    assert far.distance_mm == pytest.approx(np.sqrt(81 + 25 + 16))

    near = truth.copy()
    near[34:37, 12:15, 8:10] = 1  # 5 voxels past the edema: 5 mm, not far
    assert far_false_positive(truth, near) is None
    assert far_false_positive(truth, near, far_mm=4.0).voxels == 18
    touching = truth.copy()
    touching[30:45, 20, 8] = 1  # reaches far, but is part of the labelled tumour's component
    assert far_false_positive(truth, touching) is None
    assert far_false_positive(np.zeros(SHAPE), near) is None  # no labelled tumour: no "far"


def test_slice_picture_outlines_classes_and_fills_errors():
    truth = _truth()
    pred = _prediction("half missed")
    pred[40:44, 4:8, 10] = 3  # a false positive, enhancing
    image = _image(truth, seed=0)
    picture = slice_picture(image, truth, pred, z=10, mark=(slice(40, 44), slice(4, 8)))
    width = (picture.shape[1] + 2) // len(PANELS)  # panels of equal width, 2-pixel gaps
    panels = [picture[:, i * width : (i + 1) * width - 2] for i in range(len(PANELS))]
    assert picture.shape[0] <= MAX_PANEL_PX and picture.dtype == np.uint8
    edema, enhancing = GREY_LEVELS, GREY_LEVELS + 2
    missed, false_positive = GREY_LEVELS + 3, GREY_LEVELS + 4
    for (_, overlay), panel in zip(PANELS[:4], panels):
        present = set(np.unique(panel).tolist())
        assert {edema, enhancing} <= present, overlay
        assert not present & {missed, false_positive}, overlay
    errors = panels[4]
    # the missed half is 8 x 16 voxels, filled; the false positive 4 x 4
    assert (errors == missed).sum() == 8 * 16 - 16 - 2 * 7  # less the white outline
    assert (errors == false_positive).sum() == 16
    assert (errors == GREY_LEVELS - 1).sum() >= 2 * (16 + 16) - 4 + 4 * 8  # outline + frame

    from PIL import Image

    decoded = Image.open(io.BytesIO(png_bytes(picture)))
    assert decoded.mode == "P" and decoded.size == picture.shape[::-1]
    rgb = np.asarray(decoded.convert("RGB"))
    pal = {**CLASS_COLORS, **{GREY_LEVELS + 3 + i: c for i, c in enumerate(ERROR_COLORS.values())}}
    assert tuple(rgb[picture == edema][0]) == CLASS_COLORS[1]
    assert tuple(rgb[picture == false_positive][0]) == pal[false_positive]


def test_slice_picture_without_image_and_subsampled():
    truth = np.zeros((512, 384, 4), np.uint8)  # shown rotated: 384 rows, 512 columns
    truth[100:200, 100:150, 1] = 2
    picture = slice_picture(None, truth, truth, 1)
    assert picture.shape == (192, 5 * 256 + 4 * 2)  # the whole slice, every 2nd pixel
    assert set(np.unique(picture).tolist()) == {0, GREY_LEVELS - 1, GREY_LEVELS + 1}


# ----------------------------------------------------------------------------- the page


def test_order_worst_first_puts_failed_cases_first_and_no_tumour_last():
    table = pd.DataFrame(
        {
            "case": ["a", "b", "c", "d", "e"],
            "WT_dice": [0.9, np.nan, 0.2, np.nan, 0.5],
            "error": [np.nan, "", np.nan, "unreadable file", np.nan],
        }
    )
    assert order_worst_first(table)["case"].tolist() == ["d", "c", "e", "a", "b"]
    without_errors = table.drop(columns="error")
    assert order_worst_first(without_errors)["case"].tolist() == ["c", "e", "a", "b", "d"]


def _page(report: Path) -> tuple[str, list[str], list[str]]:
    """The page's text, the ``data-case`` of its case rows in order, and its ``src`` links."""
    page = (report / "index.html").read_text()
    return (
        page,
        re.findall(r'<tr class="case" data-case="([^"]+)"', page),
        re.findall(r'src="([^"]+)"', page),
    )


def test_evaluate_report_page(evaluated):
    report, table, printed = evaluated
    assert f"wrote {report / 'index.html'}" in printed
    page, order, sources = _page(report)
    worst = table.loc[table["WT_dice"].idxmin(), "case"]
    assert worst == "BRATS_003" and order[0] == worst
    assert order == table.sort_values("WT_dice")["case"].tolist()
    # one picture per case, a second one for the far false positive on another slice
    names = [s.removeprefix("img/") for s in sources]
    assert sorted(names) == sorted(p.name for p in (report / "img").iterdir())
    assert [n.split("-")[1] for n in names] == [
        c for c in order for _ in range(1 + (c == "BRATS_002"))
    ]
    assert [n for n in names if "BRATS_002" in n] == [
        "0001-BRATS_002-z6.png",
        "0001-BRATS_002-z2.png",
    ]
    assert "far false positive: 90 voxels" in page
    # evaluate knows the probabilities: a sixth panel, the uncertainty, beside the errors, and
    # the doubt figures (the stub's 0.8 in the tumour: uncertainty 72, 0.02 around it: 14)
    from PIL import Image

    picture = np.asarray(Image.open(report / "img" / names[0]))  # BRATS_003, shifted
    width = (picture.shape[1] + 2) // (len(PANELS) + 1)
    errors, uncertainty = (picture[:, i * width : (i + 1) * width - 2] for i in (4, 5))
    assert (errors == GREY_LEVELS + 3).any() and not (errors >= UNCERTAINTY_INDEX0).any()
    shown = set(np.unique(uncertainty[uncertainty >= UNCERTAINTY_INDEX0]).tolist())
    assert shown == {UNCERTAINTY_INDEX0 + 0, UNCERTAINTY_INDEX0 + 6}
    assert "FLAIR · errors, FLAIR · uncertainty." in page
    row = page[page.index('data-case="BRATS_003"') :].split("</tr>\n")[0]
    doubt = table.set_index("case").loc["BRATS_003", "doubt"]
    assert f"<td>doubt (1 - lowest expected Dice)</td><td colspan=4>{doubt:.3f}</td>" in row
    # self-contained: nothing but the pictures beside it; the options of the run
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")
    assert "4 case(s): 4 scored, 0 failed." in page and "<dt>tta</dt><dd>none</dd>" in page
    assert not list(report.glob(".*")) and not list((report / "img").glob(".*"))  # no temp file


def test_score_report_shows_failed_cases_first_and_replaces_old_pictures(tmp_path, capsys):
    import nibabel as nib

    from tumorseg.inference.cli import score_main

    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    for case, kind in CASES.items():
        for folder, labels in (("labels", _truth()), ("pred", _prediction(kind))):
            (tmp_path / folder).mkdir(exist_ok=True)
            nib.save(nib.Nifti1Image(labels, affine), tmp_path / folder / f"{case}.nii.gz")
    report = tmp_path / "report"
    (report / "img").mkdir(parents=True)
    (report / "img" / "0009-old-z1.png").write_bytes(b"old")
    args = ["--pred", str(tmp_path / "pred"), "--labels", str(tmp_path / "labels")]
    assert score_main([*args, "--report", str(report)]) == 0
    assert "index.html" in capsys.readouterr().out
    page, order, sources = _page(report)
    assert order[0] == "BRATS_003" and len(sources) == 5  # bare label maps: panels on black
    assert "FLAIR · uncertainty" not in page  # no probabilities: five panels, no doubt
    assert not (report / "img" / "0009-old-z1.png").exists()

    # with saved uncertainty maps (score --uncertainty), the pictures get the sixth panel
    (tmp_path / "unc").mkdir()
    high = np.where(_truth() > 0, 90, 5).astype(np.uint8)
    for case in CASES:
        nib.save(nib.Nifti1Image(high, affine), tmp_path / "unc" / f"{case}.nii.gz")
    unc_args = [*args, "--uncertainty", str(tmp_path / "unc"), "--report", str(tmp_path / "r2")]
    assert score_main(unc_args) == 0
    page, _, sources = _page(tmp_path / "r2")
    assert "FLAIR · errors, FLAIR · uncertainty." in page
    from PIL import Image

    picture = np.asarray(Image.open(tmp_path / "r2" / sources[0]))
    assert (picture >= UNCERTAINTY_INDEX0).any()  # the map's colours are drawn

    # a prediction on another grid is a failed case: a row saying so, first, and no picture
    nib.save(nib.Nifti1Image(_truth()[:40], affine), tmp_path / "labels" / "BRATS_000.nii.gz")
    nib.save(nib.Nifti1Image(_truth(), affine), tmp_path / "pred" / "BRATS_000.nii.gz")
    assert score_main([*args, "--report", str(report)]) == 1
    page, order, sources = _page(report)
    assert order == ["BRATS_000", "BRATS_003", "BRATS_004", "BRATS_002", "BRATS_001"]
    assert "5 case(s): 4 scored, 1 failed." in page and len(sources) == 5
    assert re.search(
        r'data-case="BRATS_000">.*?failed: [^<]*BRATS_000.nii.gz: prediction shape', page
    )

    # the hook sees each scored case once, without an image
    pictures: list[ScoredCase] = []
    score_folder(tmp_path / "pred", tmp_path / "labels", on_case=pictures.append)
    assert [p.case for p in pictures] == list(CASES) and pictures[0].image is None


def test_an_unreadable_image_leaves_the_picture_on_black(tmp_path):
    from tumorseg.data import DataError

    def unreadable(case: str) -> np.ndarray:
        raise DataError(f"{case}.nii.gz: not a NIfTI file")

    writer = CaseReport(tmp_path, {}, image_source=unreadable)
    truth = _truth()
    writer.add(ScoredCase("A", {}, _prediction("shifted"), truth, (1.0, 1.0, 2.0)))
    (picture,) = writer.pictures["A"]
    assert "image not shown: A.nii.gz: not a NIfTI file" in picture.caption
    assert (picture.height, picture.width) == (SHAPE[1], 5 * SHAPE[0] + 4 * 2)  # whole slice


def test_report_of_100_sample_cases_stays_under_20_mb(sample_data, tmp_path):
    """Per-case bytes of a full-size (240 x 240 x 155) sample case with two pictures (its worst
    slice and a far false positive), each with the uncertainty panel, times 100, with the page,
    is under 20 MB."""
    from scipy import ndimage

    from tumorseg.data import open_dataset
    from tumorseg.inference.uncertainty import voxel_uncertainty

    image, truth = open_dataset(sample_data)["BRATS_001"].load()
    pred = np.roll(truth, 4, axis=0)
    pred[60:70, 60:70, 40:46] = 1  # far from the tumour, inside the brain
    soft = ndimage.gaussian_filter((pred > 0).astype(np.float32), 2.0)  # uncertain at the rim
    uncertainty = voxel_uncertainty(np.stack([soft, soft, soft]))
    writer = CaseReport(tmp_path, {})
    writer.add(ScoredCase("BRATS_001", {}, pred, truth, (1.0, 1.0, 1.0), image, uncertainty))
    pictures = list((tmp_path / "img").iterdir())
    assert len(pictures) == 2
    per_case = sum(p.stat().st_size for p in pictures)
    page = writer.write(pd.DataFrame([{"case": "BRATS_001", "WT_dice": 0.5}])).stat().st_size
    print(f"per case {per_case / 1e3:.0f} kB of pictures, {page / 1e3:.1f} kB of page")
    assert 100 * (per_case + page) < 20e6 / 2  # half the budget: real scans are noisier


# ----------------------------------------------------------------------------- the browser


@pytest.mark.slow
def test_evaluate_report_in_chromium(chromium, evaluated):  # noqa: F811
    report, table, _ = evaluated
    with offline_page(chromium) as (page, problems):
        page.goto((report / "index.html").as_uri(), wait_until="load")
        images = page.evaluate(
            "() => [...document.images].map(i => [i.getAttribute('src'), i.complete, "
            "i.naturalWidth, i.closest('tr.case').dataset.case])"
        )
        first = page.locator("tr.case").first
        first_case = first.get_attribute("data-case")
        first_text = first.inner_text()
    assert problems == []
    assert len(images) == 5
    assert "pass disagreement WT" in first_text  # the doubt figures beside the pictures
    assert all(complete and width > 0 for _, complete, width, _ in images), images
    worst = table.loc[table["WT_dice"].idxmin()]
    assert first_case == worst["case"] == "BRATS_003"
    assert f"{worst['WT_dice']:.3f}" in first_text
    assert [case for *_, case in images][0] == first_case  # its picture is in the first row

"""Metrics on hand-computable masks: Dice, HD95 (with spacing), sens/spec, BraTS regions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tumorseg.metrics import (
    HD95_EMPTY,
    BothEmpty,
    class_sens_spec,
    dice,
    hd95,
    region_scores,
    sens_spec_table,
    sensitivity_specificity,
)


def cube(shape=(30, 30, 30), lo=(8, 8, 8), size=10):
    m = np.zeros(shape, bool)
    m[tuple(slice(a, a + size) for a in lo)] = True
    return m


def test_dice_hand_case():
    pred = np.zeros((4, 4, 4), bool)
    truth = np.zeros((4, 4, 4), bool)
    pred[0, 0, :2] = True  # 2 voxels
    truth[0, 0, 1:4] = True  # 3 voxels, 1 shared
    assert dice(pred, truth) == pytest.approx(2 * 1 / 5)
    assert isinstance(dice(pred, truth), np.float64)
    assert dice(truth, truth) == 1.0


def test_dice_empty_conventions():
    # BraTS: a region absent from both masks scores 1 (the default); the named option
    # both_empty="nan" (nnU-Net's generic evaluation, MONAI, MedPy) gives NaN.
    empty = np.zeros((5, 5, 5), bool)
    full = cube((5, 5, 5), (1, 1, 1), 2)
    assert dice(empty, empty) == 1.0
    assert dice(empty, empty, both_empty=BothEmpty.BRATS) == 1.0
    assert math.isnan(dice(empty, empty, both_empty="nan"))
    assert dice(empty, full) == 0.0
    assert dice(full, empty) == 0.0
    with pytest.raises(ValueError, match="both_empty"):
        dice(empty, empty, both_empty="perfect")


def test_dice_accepts_int_masks_and_rejects_shape_mismatch():
    a = np.array([[[0, 2, 3]]])
    b = np.array([[[1, 1, 0]]])
    assert dice(a, b) == pytest.approx(2 * 1 / 4)
    with pytest.raises(ValueError, match="shape"):
        dice(np.zeros((2, 2, 2)), np.zeros((2, 2, 3)))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_hd95_offset_cubes(k):
    a = cube(lo=(8, 8, 8))
    b = cube(lo=(8 + k, 8, 8))
    assert hd95(a, b) == pytest.approx(k)
    assert hd95(b, a) == pytest.approx(k)


def test_hd95_anisotropic_spacing_scales_distance():
    a = cube(lo=(8, 8, 8))
    b = cube(lo=(10, 8, 8))  # shifted 2 voxels along x
    assert hd95(a, b, spacing=(2.5, 1.0, 1.0)) == pytest.approx(5.0)
    # spacing along an axis without offset does not change it
    assert hd95(a, b, spacing=(1.0, 3.0, 0.5)) == pytest.approx(2.0)


def test_hd95_single_voxels_euclidean():
    a = np.zeros((10, 10, 10), bool)
    b = np.zeros((10, 10, 10), bool)
    a[1, 1, 1] = True
    b[4, 5, 1] = True  # offset (3, 4, 0)
    assert hd95(a, b) == pytest.approx(5.0)
    assert hd95(a, b, spacing=(1.0, 2.0, 1.0)) == pytest.approx(math.sqrt(9 + 64))


def test_hd95_is_a_percentile_not_the_max():
    truth = cube(shape=(60, 40, 40), lo=(5, 5, 5), size=25)
    pred = truth.copy()
    pred[55, 30, 30] = True  # one outlier voxel ~24 voxels away from the surface
    assert hd95(pred, truth) == pytest.approx(0.0)
    pred[:] = False
    pred[55, 30, 30] = True  # now the outlier is the whole prediction
    assert hd95(pred, truth) > 20


def test_hd95_empty_conventions():
    # BraTS: the diagonal of the 240 x 240 x 155 mm volume for a region missing from exactly
    # one mask, 0 when both are empty (NaN under both_empty="nan").
    empty = np.zeros((6, 6, 6), bool)
    full = cube((6, 6, 6), (1, 1, 1), 3)
    assert hd95(empty, empty) == 0.0
    assert math.isnan(hd95(empty, empty, both_empty="nan"))
    assert HD95_EMPTY == pytest.approx(np.sqrt(240**2 + 240**2 + 155**2), abs=1e-4)
    assert round(HD95_EMPTY, 2) == 373.13
    assert hd95(empty, full) == HD95_EMPTY
    assert hd95(full, empty) == HD95_EMPTY


def _line(n: int, *segments: tuple[int, int]) -> np.ndarray:
    """A (1, n, 1) mask, True on the half-open y ranges ``segments``: one voxel thick, so every
    voxel is a surface voxel and the surface distances can be listed by hand."""
    m = np.zeros((1, n, 1), bool)
    for a, b in segments:
        m[0, a:b, 0] = True
    return m


def test_hd95_pools_both_directions_line_blob():
    # truth: y = 0..94 (95 voxels).  pred: the same plus a false-positive blob y = 150..155
    # (6 voxels, 6/101 = 5.9 % of the prediction's surface: just over the 5 % cut-off).
    truth = _line(200, (0, 95))
    pred = _line(200, (0, 95), (150, 156))
    # pred -> truth: 95 zeros, then 56, 57, ..., 61 (distance to y = 94).
    # truth -> pred: 95 zeros.
    # pooled: 196 distances, 190 zeros then 56..61; 95th percentile at rank 0.95 * 195 =
    # 185.25, between two zeros -> 0.0.
    assert hd95(pred, truth) == 0.0
    assert hd95(truth, pred) == 0.0
    # The larger directed percentile (the old rule) would be 56: rank 0.95 * 100 = 95 of the
    # pred -> truth list, the blob's nearest voxel.
    directed = np.array([0.0] * 95 + [56, 57, 58, 59, 60, 61])
    assert np.percentile(directed, 95) == 56.0

    # A larger blob (12 voxels) reaches into the pooled top 5 %: 202 distances, 190 zeros
    # then 56..67; rank 0.95 * 201 = 190.95 -> 56 + 0.95 * (57 - 56) = 56.95.
    pred = _line(200, (0, 95), (150, 162))
    assert hd95(pred, truth) == pytest.approx(56.95)
    # spacing scales every distance alike
    assert hd95(pred, truth, spacing=(1.0, 2.0, 1.0)) == pytest.approx(113.9)


def test_hd95_pools_both_directions_cube_blob():
    # truth: a 10^3 cube, x 2..11, y, z 3..12: 10^3 - 8^3 = 488 surface voxels.
    # pred: the cube plus a 3^3 false-positive blob at x 51..53, y, z 6..8: 26 surface voxels
    # (all but its centre), 26 / 514 = 5.06 % of the prediction's surface.
    truth = np.zeros((56, 16, 16), bool)
    truth[2:12, 3:13, 3:13] = True
    pred = truth.copy()
    pred[51:54, 6:9, 6:9] = True
    # pred -> truth: 488 zeros, then the blob's face x = 51 at 51 - 11 = 40 (9 voxels) and
    # farther ones.  Directed 95th percentile: rank 0.95 * 513 = 487.35, between the last
    # zero and 40 -> 0.35 * 40 = 14 mm, what the old max-of-directed rule returned.
    # truth -> pred: 488 zeros.  Pooled: 1002 distances, 976 zeros (97.4 %) -> 0.0.
    assert hd95(pred, truth) == 0.0
    assert hd95(truth, pred) == 0.0
    # Cross-check by brute force: surfaces from explicit face-neighbour tests, distances from
    # every surface voxel to every other one.
    d_pt, d_tp = _directed_distances(pred, truth), _directed_distances(truth, pred)
    assert (len(d_pt), len(d_tp)) == (514, 488)
    assert (np.sort(d_pt)[488:497] == 40.0).all() and (d_tp == 0).all()
    assert np.percentile(d_pt, 95) == pytest.approx(14.0)  # the old rule's answer
    assert np.percentile(np.concatenate([d_pt, d_tp]), 95) == 0.0


def _directed_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance from each surface voxel of ``a`` to the nearest surface voxel of ``b``."""
    from scipy.spatial.distance import cdist

    def surface(m):
        padded = np.pad(m, 1)
        inner = np.ones_like(m)
        for axis in range(3):
            for shift in (-1, 1):
                inner &= np.roll(padded, shift, axis)[1:-1, 1:-1, 1:-1]
        return np.argwhere(m & ~inner)

    return cdist(surface(a), surface(b)).min(axis=1)


def test_hd95_masks_touching_the_border():
    a = np.ones((5, 6, 7), bool)
    assert hd95(a, a) == 0.0
    b = a.copy()
    b[0] = False  # the x=0 face moves in by one voxel
    assert hd95(a, b) == pytest.approx(1.0)


def test_hd95_rejects_wrong_spacing_length():
    a = cube()
    with pytest.raises(ValueError, match="spacing"):
        hd95(a, a, spacing=(1.0, 1.0))


def test_sensitivity_specificity_hand_case():
    pred = np.array([1, 1, 0, 0, 1])
    truth = np.array([1, 0, 1, 0, 0])
    # tp=1 fn=1 fp=2 tn=1
    sens, spec = sensitivity_specificity(pred, truth)
    assert sens == pytest.approx(0.5)
    assert spec == pytest.approx(1 / 3)
    assert isinstance(sens, np.float64) and isinstance(spec, np.float64)


def test_sensitivity_undefined_is_nan():
    sens, spec = sensitivity_specificity(np.array([0, 1]), np.array([0, 0]))
    assert math.isnan(sens)
    assert spec == pytest.approx(0.5)


def test_class_sens_spec_picks_the_channel():
    pred = np.zeros((3, 2, 2, 1))
    label = np.zeros((3, 2, 2, 1))
    label[1, 0, :, 0] = 1  # 2 positives in class 1
    pred[1, 0, 0, 0] = 1  # 1 found
    pred[1, 1, 1, 0] = 1  # 1 false positive
    sens, spec = class_sens_spec(pred, label, 1)
    assert (sens, spec) == (pytest.approx(0.5), pytest.approx(0.5))
    assert math.isnan(class_sens_spec(pred, label, 0)[0])


def test_sens_spec_table_layout_and_rounding():
    rng = np.random.default_rng(0)
    label = (rng.random((3, 7, 5, 3)) > 0.5).astype(float)
    pred = (rng.random((3, 7, 5, 3)) > 0.5).astype(float)
    table = sens_spec_table(pred, label)
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["Edema", "Non-Enhancing Tumor", "Enhancing Tumor"]
    assert list(table.index) == ["Sensitivity", "Specificity"]
    for i, name in enumerate(table.columns):
        sens, spec = class_sens_spec(pred, label, i)
        assert table.loc["Sensitivity", name] == round(float(sens), 4)
        assert table.loc["Specificity", name] == round(float(spec), 4)
    values = table.to_numpy() * 1e4
    assert np.allclose(values, np.round(values), atol=1e-6)


def test_region_scores_perfect_and_mislabeled():
    true = np.zeros((20, 20, 20), np.uint8)
    true[5:15, 5:15, 5:15] = 1
    true[8:12, 8:12, 8:12] = 3
    perfect = region_scores(true, true)
    assert list(perfect.index) == ["WT", "TC", "ET"]
    assert list(perfect.columns) == ["dice", "hd95", "sensitivity", "specificity"]
    assert (perfect["dice"] == 1.0).all()
    assert (perfect["hd95"] == 0.0).all()

    pred = true.copy()
    pred[pred == 1] = 2  # edema called non-enhancing: WT right, TC too big
    pred[pred == 3] = 0  # enhancing missed
    scores = region_scores(pred, true.astype(np.float64), spacing=(1.0, 1.0, 2.0))
    assert scores.loc["WT", "dice"] == pytest.approx(2 * 936 / (936 + 1000))
    tc_true = 64
    assert scores.loc["TC", "dice"] == pytest.approx(0.0)  # pred TC is the shell, no overlap
    assert scores.loc["TC", "sensitivity"] == pytest.approx(0.0)
    assert scores.loc["TC", "specificity"] == pytest.approx(1 - 936 / (8000 - tc_true))
    assert scores.loc["ET", "dice"] == 0.0
    assert scores.loc["ET", "hd95"] == pytest.approx(HD95_EMPTY)
    assert scores.loc["WT", "sensitivity"] == pytest.approx(936 / 1000)


def test_region_scores_region_absent_from_both():
    # No enhancing tumour in either map: BraTS scores ET as perfect (Dice 1, HD95 0);
    # both_empty="nan" reports NaN instead.
    true = np.zeros((12, 12, 12), np.uint8)
    true[3:9, 3:9, 3:9] = 1
    true[5:7, 5:7, 5:7] = 2
    scores = region_scores(true, true)
    assert scores.loc["WT", "dice"] == 1.0 and scores.loc["TC", "hd95"] == 0.0
    assert (scores.loc["ET", "dice"], scores.loc["ET", "hd95"]) == (1.0, 0.0)
    nan = region_scores(true, true, both_empty="nan")
    assert math.isnan(nan.loc["ET", "dice"]) and math.isnan(nan.loc["ET", "hd95"])
    # a spurious ET on an empty label: Dice 0 and the BraTS penalty
    pred = true.copy()
    pred[5, 5, 5] = 3
    spurious = region_scores(pred, true)
    assert spurious.loc["ET", "dice"] == 0.0 and spurious.loc["ET", "hd95"] == HD95_EMPTY

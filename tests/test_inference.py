"""Whole-scan inference: tiling/stitching exactness, borders, standardization, predict_and_viz,
label-map rule, and the predict/evaluate CLIs (tiny models only)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from tumorseg.inference import (
    InferenceSettings,
    Mirror,
    Postprocess,
    brain_bbox,
    plan_tiles,
    predict_volume,
    probabilities_to_labels,
    resolve_settings,
)
from tumorseg.inference.postprocess import apply_to_probabilities
from tumorseg.inference.predict import (
    MAX_TILE_VOXELS,
    SLAB_DEPTH,
    gaussian_weight,
    paste_region,
    prepare_region,
    sliding_window,
    trim_tile,
)
from tumorseg.patches import standardize_patch
from tumorseg.viz import predict_and_viz

RNG_W = np.random.default_rng(42).normal(size=(3, 4))
RNG_B = np.array([-0.3, 0.1, 0.4])


class PointwiseModel:
    """A numpy 'model': sigmoid of a fixed linear map of the channels at each voxel.

    (B, 4, x, y, z) -> (B, 3, x, y, z); no spatial context, so any correct tiling reproduces
    it exactly. Records the batch shapes it sees.
    """

    def __init__(self, manifest=None):
        self.calls = []
        if manifest is not None:
            self.manifest = manifest  # as load_pretrained attaches it

    def __call__(self, batch):
        self.calls.append(batch.shape)
        assert all(s % 8 == 0 for s in batch.shape[2:]), "the U-Net needs sizes divisible by 8"
        return pointwise(batch)


def pointwise(batch: np.ndarray) -> np.ndarray:
    z = np.einsum("kc,bcxyz->bkxyz", RNG_W, batch) + RNG_B[None, :, None, None, None]
    return 1.0 / (1.0 + np.exp(-z))


def pointwise_reference(x_cf: np.ndarray) -> np.ndarray:
    """The pointwise model applied to a whole (4, X, Y, Z) volume of any size."""
    return pointwise(x_cf[None])[0]


def make_image(shape=(37, 29, 23), box=((3, 30), (5, 26), (2, 20)), seed=0) -> np.ndarray:
    """Random positive intensities inside ``box``, zero outside: (X, Y, Z, 4)."""
    rng = np.random.default_rng(seed)
    image = np.zeros((*shape, 4))
    region = tuple(slice(a, b) for a, b in box)
    image[region] = rng.uniform(10, 500, size=(*image[region].shape[:3], 4))
    # some zero voxels inside the brain too, as in real scans
    image[region][rng.random(image[region].shape[:3]) < 0.05] = 0
    return image


def expected_brain_mode(image: np.ndarray, box) -> np.ndarray:
    """Pointwise model on the brain-standardized image, zero outside the bounding box."""
    x = standardize_patch(np.moveaxis(image, -1, 0), "brain")
    full = pointwise_reference(x).astype(np.float32)
    out = np.zeros_like(full)
    region = (slice(None), *(slice(a, b) for a, b in box))
    out[region] = full[region]
    return out


def test_brain_bbox():
    image = make_image()
    assert brain_bbox(image) == (slice(3, 30), slice(5, 26), slice(2, 20))
    assert brain_bbox(np.zeros((4, 4, 4, 4))) is None


@pytest.mark.parametrize(
    "tile, overlap, batch_size",
    [
        (None, 0.25, 2),  # whole crop in one pass
        ((8, 8, 8), 0.0, 1),  # many tiles, no overlap
        ((8, 16, 8), 0.5, 3),  # overlapping tiles, ragged last batch
        ((24, 8, 16), 0.3, 4),
    ],
)
def test_tiling_reproduces_whole_volume(tile, overlap, batch_size):
    box = ((3, 30), (5, 26), (2, 20))
    image = make_image(box=box)
    model = PointwiseModel()
    probs = predict_volume(image, model, overlap=overlap, batch_size=batch_size, tile=tile)
    assert probs.shape == (3, 37, 29, 23)
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs, expected_brain_mode(image, box), rtol=1e-5, atol=1e-6)
    assert all(shape[0] <= batch_size for shape in model.calls)
    if tile is not None:
        assert len(model.calls) > 1


def test_prepare_region_crops_pads_and_paste_region_puts_back():
    box_ = ((0, 13), (4, 9), (1, 6))  # touches the image's low x border, narrower than the tile
    image = make_image(shape=(13, 10, 7), box=box_, seed=3)
    box = brain_bbox(image)
    work, origin = prepare_region(image, box, (16, 8, 8), "none")
    assert work.shape == (4, 16, 8, 8) and work.dtype == np.float32
    assert origin == (-1, 3, 0)  # widened symmetrically, reaching outside the image
    cf = np.moveaxis(image, -1, 0).astype(np.float32)
    np.testing.assert_array_equal(work[:, 1:14, 1:7, 0:7], cf[:, :, 4:10, :])
    assert (work[:, 0] == 0).all() and (work[:, 14:] == 0).all() and (work[..., 7] == 0).all()
    back = paste_region(work, box, origin, image.shape[:3])
    np.testing.assert_array_equal(back, cf)  # everything outside the box was zero already
    brain, _ = prepare_region(image, box, (16, 8, 8), "brain")
    np.testing.assert_array_equal(brain, standardize_patch(work, "brain"))


@pytest.mark.parametrize(
    "tile, overlap", [((24, 16, 16), 0.0), ((8, 8, 8), 0.5), ((16, 8, 8), 0.2)]
)
def test_sliding_window_is_pure_and_blends_to_the_direct_result(tile, overlap):
    work = np.random.default_rng(5).normal(size=(4, 24, 16, 16)).astype(np.float32)
    before = work.copy()
    size, starts = plan_tiles(work.shape[1:], tile, overlap)
    seen = []

    def predict(batch):
        seen.append(batch.shape[0])
        return pointwise(batch).astype(np.float32)

    out = sliding_window(work, predict, size, starts, batch_size=3)
    np.testing.assert_array_equal(work, before)
    assert out.shape == (3, 24, 16, 16) and out.dtype == np.float32
    np.testing.assert_allclose(out, pointwise_reference(work), rtol=1e-5, atol=1e-6)
    assert sum(seen) == np.prod([len(s) for s in starts]) and max(seen) <= 3


def test_brain_touching_odd_borders_is_padded_and_cropped():
    # brain fills the whole odd-sized image: the working region reaches outside it
    shape = (13, 10, 7)
    box = ((0, 13), (0, 10), (0, 7))
    image = make_image(shape=shape, box=box, seed=1)
    model = PointwiseModel()
    probs = predict_volume(image, model, tile=(8, 8, 8), overlap=0.5)
    np.testing.assert_allclose(probs, expected_brain_mode(image, box), rtol=1e-5, atol=1e-6)
    probs_one = predict_volume(image, PointwiseModel())
    np.testing.assert_allclose(probs_one, probs, rtol=1e-5, atol=1e-6)


def test_outside_the_brain_is_zero_and_empty_image_gives_zeros():
    image = make_image()
    probs = predict_volume(image, PointwiseModel())
    assert (probs[:, :3] == 0).all() and (probs[:, 30:] == 0).all()
    assert (probs[:, :, :, 20:] == 0).all()
    assert (probs[:, 3:30, 5:26, 2:20] > 0).all()  # sigmoid is never exactly 0 inside
    empty = predict_volume(np.zeros((9, 9, 9, 4)), PointwiseModel())
    assert empty.shape == (3, 9, 9, 9) and not empty.any()


@pytest.mark.parametrize(
    "rules",
    [
        Postprocess(min_component=40),
        Postprocess(keep_fraction=0.5, min_enhancing=10**6),
    ],
)
def test_the_clean_up_of_the_brain_box_equals_that_of_the_whole_volume(rules):
    """predict_volume cleans up only the brain's bounding box (less memory than the whole
    scan): the same probabilities as cleaning up the whole pasted volume."""
    image = make_image()
    raw = predict_volume(image, PointwiseModel(), postprocess=Postprocess.NONE)
    assert probabilities_to_labels(raw)[3:30, 5:26, 2:20].any()  # something to clean up
    cleaned = predict_volume(image, PointwiseModel(), postprocess=rules)
    expected = apply_to_probabilities(raw, rules)
    assert not np.array_equal(expected, raw)  # the rules change something
    np.testing.assert_array_equal(cleaned, expected)


def test_slice_mode_uses_the_training_standardization():
    # brain fills an image whose size is a tile multiple: the working region is the image itself
    box = ((0, 16), (0, 16), (0, 8))
    image = make_image(shape=(16, 16, 8), box=box, seed=2)
    expected = pointwise_reference(standardize_patch(np.moveaxis(image, -1, 0), "slice"))
    got = predict_volume(image, PointwiseModel(), standardize="slice")
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # and the mode is read from the model's manifest when not given
    got_attr = predict_volume(image, PointwiseModel({"standardize": "slice"}))
    np.testing.assert_allclose(got_attr, expected, rtol=1e-5, atol=1e-6)
    with np.errstate(over="ignore"):  # raw intensities saturate the sigmoid
        raw = predict_volume(image, PointwiseModel(), standardize="none")
        raw_expected = pointwise_reference(np.moveaxis(image, -1, 0))
    np.testing.assert_allclose(raw, raw_expected, rtol=1e-5, atol=1e-5)
    assert not np.allclose(raw, got)


def test_settings_come_from_the_call_else_the_models_manifest_else_the_defaults():
    assert resolve_settings(object()) == InferenceSettings() == InferenceSettings.from_manifest({})
    model = PointwiseModel({"standardize": "slice", "tta": "x", "threshold": 0.4, "steps": 9})
    from_model = resolve_settings(model)
    assert (from_model.standardize, from_model.tta, from_model.threshold) == (
        "slice",
        Mirror.X,
        0.4,
    )
    assert from_model.postprocess == Postprocess.NONE  # absent from the manifest
    # a change of None keeps the value (an unset flag); a given settings record wins
    assert resolve_settings(model, tta=None, threshold=0.6) == from_model.override(threshold=0.6)
    given = InferenceSettings(threshold=0.3)
    assert resolve_settings(model, given, tta="xyz") == InferenceSettings(threshold=0.3, tta="xyz")


def test_settings_normalise_the_manifests_json_and_refuse_what_cannot_run():
    record = {"min_component": 20, "keep_fraction": 0.1, "min_enhancing": 0}
    settings = InferenceSettings.from_manifest(
        {"tta": "xyz", "postprocess": record, "standardize": None, "threshold": 1}
    )
    assert settings.tta is Mirror.XYZ and settings.postprocess == Postprocess(**record)
    assert settings.standardize == InferenceSettings().standardize and settings.threshold == 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.threshold = 0.2  # type: ignore[misc]
    for bad in ({"standardize": "z-score"}, {"threshold": 1.5}, {"tta": "y"}, {"postprocess": 3}):
        with pytest.raises(ValueError):
            InferenceSettings.from_manifest(bad)


def test_one_standardization_default_matches_the_shipped_model():
    from tumorseg.model.pretrained import manifest_path
    from tumorseg.resources import pretrained_weights

    shipped = json.loads(manifest_path(pretrained_weights()).read_text())["standardize"]
    assert resolve_settings(object()).standardize == shipped
    x = np.random.default_rng(2).uniform(0, 900, (4, 6, 5, 3)).astype(np.float32)
    x[:, :2] = 0  # background, which only "brain" keeps at exactly 0
    np.testing.assert_array_equal(standardize_patch(x), standardize_patch(x, shipped))


def test_plan_tiles_covers_region():
    size = (141, 170, 139)
    for tile, overlap in [((64, 64, 64), 0.25), ((160, 160, 16), 0.0), (None, 0.5)]:
        ts, starts = plan_tiles(size, tile, overlap, max_voxels=1_000_000)
        assert all(t % 8 == 0 for t in ts)
        assert np.prod(ts) <= 1_000_000 or tile is not None
        for s, t, st in zip(size, ts, starts):
            covered = np.zeros(max(s, t), bool)
            for a in st:
                covered[a : a + t] = True
            assert covered.all() and st[-1] + t == max(s, t) and st[0] == 0
    # whole region in one tile when it fits; shrunk to the region when the tile is larger
    assert plan_tiles((141, 170, 139), None, 0.25, max_voxels=4_000_000)[0] == (144, 176, 144)
    # the default budget (MAX_TILE_VOXELS) splits such a crop into a few large tiles
    ts, _ = plan_tiles((141, 170, 139), None, 0.0)
    assert np.prod(ts) <= MAX_TILE_VOXELS and max(ts) >= 64
    assert plan_tiles((20, 20, 20), (160, 160, 160), 0.25) == ((24, 24, 24), [[0], [0], [0]])
    with pytest.raises(ValueError):
        plan_tiles((20, 20, 20), None, 1.0)


def test_plan_tiles_cuts_axial_slabs_when_the_whole_crop_does_not_fit():
    """A BraTS brain crop over the budget goes through as slabs of the crop's whole x-y extent
    and SLAB_DEPTH (the training patches') slices; a grid of tiles when a slab is too big."""
    ts, starts = plan_tiles((149, 178, 138), None, 0.1, max_voxels=600_000)
    assert ts == (152, 184, SLAB_DEPTH) and SLAB_DEPTH == 16
    assert starts[:2] == [[0], [0]] and len(starts[2]) == 10 and starts[2][-1] == 138 - 16
    assert all(b - a < 16 for a, b in zip(starts[2], starts[2][1:]))  # they overlap
    ts, starts = plan_tiles((149, 178, 138), None, 0.1, max_voxels=300_000)
    assert np.prod(ts) <= 300_000 and len(starts[0]) * len(starts[1]) > 1


def test_trim_tile_keeps_the_brain_and_a_margin_inside_the_tile():
    mask = np.zeros((64, 48, 32), bool)
    mask[20:25, 10:12, 3:5] = True
    tile = (64, 48, 32)
    # x: 5 voxels + 2 x 8 margin -> 24, centred; y and z: pushed back inside the tile
    assert trim_tile(mask, (0, 0, 0), tile, margin=8) == ((10, 0, 0), (24, 24, 24))
    assert trim_tile(mask, (0, 0, 0), tile, margin=0) == ((18, 7, 0), (8, 8, 8))
    assert trim_tile(mask, (0, 0, 16), (64, 48, 16)) is None  # no brain in that tile
    mask[:] = True  # the brain fills the tile: nothing to trim
    assert trim_tile(mask, (0, 0, 16), (64, 48, 16)) == ((0, 0, 16), (64, 48, 16))
    rng = np.random.default_rng(0)
    for _ in range(20):  # always inside the tile, multiples of 8, the brain and margin kept
        mask = np.zeros((64, 48, 32), bool)
        lo = rng.integers(0, [60, 44, 28])
        hi = lo + rng.integers(1, 5, 3)
        mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
        (sx, sy, sz), size = trim_tile(mask, (0, 0, 0), tile, margin=4)
        for a, n, t, low, high in zip((sx, sy, sz), size, tile, lo, hi):
            assert n % 8 == 0 and 0 <= a and a + n <= t
            assert a <= max(low - 4, 0) and a + n >= min(high + 4, t)


def test_sliding_window_trims_tiles_to_the_mask_and_skips_empty_ones():
    rng = np.random.default_rng(7)
    mask = np.zeros((64, 48, 48), bool)
    mask[4:30, 6:40, 2:20] = True
    work = rng.normal(size=(4, 64, 48, 48)).astype(np.float32) * mask
    size, starts = plan_tiles(work.shape[1:], (64, 48, 16), 0.0)
    seen = []

    def predict(batch):
        seen.append(batch.shape)
        return pointwise(batch).astype(np.float32)

    out = sliding_window(work, predict, size, starts, batch_size=2, mask=mask, margin=0)
    # slab z 0-16 trimmed to 32x40x16, slab 16-32 to 32x40x8 (a batch each: other sizes),
    # slab 32-48 holds no brain and is skipped
    assert seen == [(1, 4, 32, 40, 16), (1, 4, 32, 40, 8)]
    reference = pointwise_reference(work)
    np.testing.assert_allclose(out[:, mask], reference[:, mask], rtol=1e-5, atol=1e-6)
    assert (out[..., 32:] == 0).all() and (out[:, 40:] == 0).all()  # not predicted: 0


def test_gaussian_weight_peaks_in_the_centre():
    w = gaussian_weight((16, 8, 24))
    assert w.shape == (16, 8, 24) and w.dtype == np.float32
    assert w.max() == pytest.approx(1.0) and w.min() >= 1e-6
    np.testing.assert_allclose(w, w[::-1, ::-1, ::-1], rtol=1e-6)
    assert w[8, 4, 12] > w[0, 4, 12] > w[0, 0, 0]


def test_probabilities_to_labels_rule():
    probs = np.zeros((3, 4, 1, 1), np.float32)
    probs[:, 0, 0, 0] = [0.2, 0.4, 0.5]  # nothing above 0.5 -> background
    probs[:, 1, 0, 0] = [0.9, 0.6, 0.1]  # edema wins
    probs[:, 2, 0, 0] = [0.6, 0.1, 0.7]  # enhancing wins
    probs[:, 3, 0, 0] = [0.1, 0.55, 0.3]  # non-enhancing
    labels = probabilities_to_labels(probs, 0.5)
    assert labels.dtype == np.uint8
    assert labels[:, 0, 0].tolist() == [0, 1, 3, 2]
    assert probabilities_to_labels(probs, 0.15)[:, 0, 0].tolist() == [3, 1, 3, 2]


# --- Keras models (tiny) -------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras_pointwise():
    """A fixed-size (4, 8, 8, 8) Keras model computing what PointwiseModel computes."""
    keras = pytest.importorskip("keras")
    from keras import layers

    inp = keras.Input((4, 8, 8, 8))
    x = layers.Permute((2, 3, 4, 1))(inp)
    conv = layers.Conv3D(3, 1, activation="sigmoid")
    x = conv(x)
    out = layers.Permute((4, 1, 2, 3))(x)
    model = keras.Model(inp, out)
    conv.set_weights([RNG_W.T.reshape(1, 1, 1, 4, 3).astype("float32"), RNG_B.astype("float32")])
    return model


def test_fixed_size_keras_model_is_wrapped(keras_pointwise):
    box = ((3, 30), (5, 26), (2, 20))
    image = make_image(box=box)
    probs = predict_volume(image, keras_pointwise, tile=(16, 24, 8), overlap=0.25)
    np.testing.assert_allclose(probs, expected_brain_mode(image, box), rtol=1e-4, atol=1e-5)
    from tumorseg.inference.predict import _flexible

    wrapper = _flexible(keras_pointwise, 4, (16, 24, 8))
    assert wrapper is not keras_pointwise and wrapper.input_shape == (None, 4, None, None, None)
    assert _flexible(keras_pointwise, 4, (32, 8, 8)) is wrapper  # built once per model
    assert _flexible(keras_pointwise, 4, (8, 8, 8)) is keras_pointwise  # its own size
    assert _flexible(keras_pointwise, 4, None) is wrapper  # any size (trimmed tiles)


@pytest.fixture(scope="module")
def tiny_unet():
    pytest.importorskip("keras")
    import keras

    from tumorseg.model import soft_dice_loss, unet_model_3d

    keras.utils.set_random_seed(0)
    return unet_model_3d(soft_dice_loss, input_shape=(4, None, None, None), n_base_filters=4)


def test_unet_single_tile_equals_direct_call(tiny_unet):
    box = ((0, 24), (0, 16), (0, 16))
    image = make_image(shape=(24, 16, 16), box=box, seed=3)
    x = standardize_patch(np.moveaxis(image, -1, 0), "brain")
    expected = np.asarray(tiny_unet.predict_on_batch(x[None]))[0]
    probs = predict_volume(image, tiny_unet)
    assert probs.shape == (3, 24, 16, 16) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, expected, rtol=1e-4, atol=1e-5)
    # overlapping tiles with a model that has context: close to, but not the same as, one pass
    tiled = predict_volume(image, tiny_unet, tile=(16, 8, 8), overlap=0.5)
    assert np.abs(tiled - expected).mean() < 0.05


@pytest.fixture
def no_show(monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setattr(plt, "show", lambda *a, **k: None)
    yield
    plt.close("all")


def test_predict_and_viz_is_the_one_hot_of_the_label_rule(no_show):
    box = ((3, 30), (5, 26), (2, 20))
    image = make_image(box=box)
    label = np.zeros(image.shape[:3])
    label[10:20, 10:20, 5:15] = 1
    label[12:16, 12:16, 8:12] = 3
    model = PointwiseModel()
    probs = predict_volume(image, model)
    on = probs > 0.5
    # voxels where several classes are on and the most probable is not the highest label: the
    # rule decides them (the highest class on would give another label there)
    highest_on = np.max(on * np.arange(1, 4)[:, None, None, None], axis=0)
    assert (highest_on != probabilities_to_labels(probs, 0.5)).sum() > 10
    pred = predict_and_viz(image, label, model, 0.5, loc=(15, 15, 10))
    assert pred.shape == (37, 29, 23, 4) and pred.dtype == np.float32
    assert set(np.unique(pred)) <= {0.0, 1.0}
    np.testing.assert_array_equal(pred.sum(axis=-1), 1.0)
    np.testing.assert_array_equal(np.argmax(pred, axis=-1), probabilities_to_labels(probs, 0.5))
    assert not np.array_equal(pred[..., 0], (label == 0).astype(np.float32))
    pred_hi = predict_and_viz(image, label, model, 0.8)
    assert pred_hi[..., 1:].sum() < pred[..., 1:].sum()
    np.testing.assert_array_equal(np.argmax(pred_hi, axis=-1), probabilities_to_labels(probs, 0.8))


def test_notebook_whole_scan_scores_equal_evaluate(tmp_path, no_show):
    """The notebook's section 6 (predict_and_viz, its label map, region_scores) and
    ``tumorseg evaluate`` give the same WT/TC/ET scores on the same case and threshold, with the
    model's mirroring and post-processing applied by both, and with the same setting changed
    in both (``tta="none"``, as the notebook runs it)."""
    import nibabel as nib

    from tumorseg.inference.evaluate import evaluate
    from tumorseg.metrics import region_scores

    image = make_image(shape=(40, 32, 24), box=((2, 38), (2, 30), (1, 23)), seed=7)
    label = np.zeros(image.shape[:3])
    label[8:30, 8:24, 4:18] = 1
    label[12:22, 12:20, 6:14] = 2
    label[14:18, 14:18, 8:12] = 3
    data = write_dataset(tmp_path, image, label)
    postprocess = {"min_component": 20, "keep_fraction": 0.0, "min_enhancing": 0}
    # the model's spacing is the case's, so evaluate predicts on its grid as the notebook does
    manifest = {"tta": "x", "postprocess": postprocess, "spacing": [1.2, 0.9, 2.0]}
    model = PointwiseModel(manifest)
    threshold = 0.45

    image_disk = nib.load(data / "imagesTr" / "BRATS_001.nii.gz").get_fdata()
    label_disk = nib.load(data / "labelsTr" / "BRATS_001.nii.gz").get_fdata()
    spacing = nib.load(data / "labelsTr" / "BRATS_001.nii.gz").header.get_zooms()[:3]
    voxels_seen = {}
    for changes in ({}, {"tta": "none"}):  # the manifest's mirroring, then a changed setting
        row = evaluate(data, model, threshold=threshold, **changes).iloc[0]
        model.calls.clear()
        pred = predict_and_viz(image_disk, label_disk, model, threshold, **changes)
        voxels_seen[changes.get("tta", "x")] = sum(np.prod(shape) for shape in model.calls)
        table = region_scores(np.argmax(pred, axis=-1), label_disk, spacing)
        assert 0.0 < row["WT_dice"] < 1.0 and row["WT_hd95"] > 0.0  # real, imperfect
        for region in ("WT", "TC", "ET"):
            for measure in ("dice", "hd95", "sensitivity", "specificity"):
                assert table.loc[region, measure] == pytest.approx(
                    row[f"{region}_{measure}"], abs=1e-9, nan_ok=True
                ), (region, measure, changes)
    assert voxels_seen["x"] == 2 * voxels_seen["none"]  # tta="none" reached the prediction


# --- CLIs ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory, tiny_unet):
    folder = tmp_path_factory.mktemp("weights")
    weights = folder / "tiny.weights.h5"
    tiny_unet.save_weights(weights)
    config = {"input_shape": [4, 160, 160, 16], "n_base_filters": 4}
    (folder / "tiny.json").write_text(json.dumps({"config": config, "standardize": "brain"}))
    return weights


def write_case(folder, image, label=None, affine=None):
    import nibabel as nib

    affine = np.diag([1.2, 0.9, 2.0, 1.0]) if affine is None else affine
    affine[:3, 3] = [-90.0, 120.0, -30.0]
    img = nib.Nifti1Image(image.astype(np.float32), affine)
    img.header.set_xyzt_units("mm", "sec")
    path = folder / "case.nii.gz"
    nib.save(img, path)
    if label is not None:
        nib.save(nib.Nifti1Image(label.astype(np.uint8), affine), folder / "label.nii.gz")
    return path, affine


def write_dataset(tmp_path, image, label, names=("BRATS_001",)):
    """An MSD-style folder ``tmp_path/ds`` (imagesTr/, labelsTr/) with the same case under each
    name (``write_case``'s affine); returns the folder."""
    data = tmp_path / "ds"
    (data / "imagesTr").mkdir(parents=True)
    (data / "labelsTr").mkdir()
    for name in names:
        write_case(tmp_path, image, label)
        (tmp_path / "case.nii.gz").rename(data / "imagesTr" / f"{name}.nii.gz")
        (tmp_path / "label.nii.gz").rename(data / "labelsTr" / f"{name}.nii.gz")
    return data


def test_predict_cli_writes_aligned_label_map(tmp_path, tiny_weights, tiny_unet):
    import nibabel as nib

    from tumorseg.inference.cli import predict_main as main

    image = make_image(shape=(30, 26, 20), box=((2, 28), (3, 24), (1, 19)), seed=4)
    case, affine = write_case(tmp_path, image)
    out = tmp_path / "out" / "seg.nii.gz"
    # the case is at 1.2 x 0.9 x 2 mm: resampled to the model's 1 mm and back by default ...
    assert main([str(case), "--weights", str(tiny_weights), "--out", str(out)]) == 0
    resampled = nib.load(out)
    assert resampled.shape == (30, 26, 20)
    np.testing.assert_allclose(resampled.affine, affine)
    # ... and on its own grid with --no-resample, where it is predict_volume's map
    argv = [str(case), "--weights", str(tiny_weights), "--out", str(out), "--no-resample"]
    assert main(argv) == 0
    seg = nib.load(out)
    assert seg.shape == (30, 26, 20)
    assert seg.get_data_dtype() == np.uint8
    np.testing.assert_allclose(seg.affine, affine)
    assert seg.header.get_zooms() == pytest.approx((1.2, 0.9, 2.0))
    assert seg.header.get_xyzt_units() == ("mm", "sec")
    data = np.asarray(seg.dataobj)
    expected = probabilities_to_labels(predict_volume(image.astype(np.float32), tiny_unet), 0.5)
    assert np.mean(data == expected) > 0.999
    assert set(np.unique(data)) <= {0, 1, 2, 3}
    assert [p.name for p in out.parent.iterdir()] == ["seg.nii.gz"]  # no temp file left


def test_predict_cli_reports_bad_input(tmp_path, tiny_weights, capsys):
    from tumorseg.inference.cli import predict_main as main

    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "missing.nii.gz"), "--weights", str(tiny_weights), "--out", "x.nii"])
    assert exc.value.code == 2
    assert "missing.nii.gz" in capsys.readouterr().err
    image = make_image(shape=(16, 16, 8), box=((2, 14), (2, 14), (1, 7)), seed=3)
    case, _ = write_case(tmp_path, image)
    with pytest.raises(SystemExit) as exc:
        main([str(case), "--weights", str(tiny_weights), "--out", "x.nii", "--threshold", "1.5"])
    assert exc.value.code == 2
    assert "threshold must be in [0, 1], got 1.5" in capsys.readouterr().err


def test_model_flags_override_the_manifests_settings():
    import argparse

    from tumorseg.inference.cli import add_model_options, settings_from_args

    parser = argparse.ArgumentParser()
    add_model_options(parser)
    rules = {"min_component": 20, "keep_fraction": 0.1, "min_enhancing": 5}
    manifest = {"standardize": "slice", "threshold": 0.4, "tta": "x", "postprocess": rules}
    as_recorded = settings_from_args(parser.parse_args([]), manifest)
    assert as_recorded == InferenceSettings("slice", 0.4, Mirror.X, Postprocess(**rules))
    flags = ["--tta", "xyz", "--no-postprocess", "--threshold", "0.3", "--standardize", "brain"]
    assert settings_from_args(parser.parse_args(flags), manifest) == InferenceSettings(
        "brain", 0.3, Mirror.XYZ, Postprocess.NONE
    )
    with_tumour = {**manifest, "tumour_tta": "xz"}
    assert settings_from_args(parser.parse_args([]), with_tumour).tumour_tta is Mirror.XZ
    off = settings_from_args(parser.parse_args(["--tumour-tta", "none"]), with_tumour)
    assert off.tumour_tta is Mirror.NONE and off.tta is Mirror.X
    from tumorseg.inference.cli import settings_record

    assert settings_record(off)["tumour_tta"] == "none"
    assert (
        settings_record(settings_from_args(parser.parse_args([]), with_tumour))["tumour_tta"]
        == "xz"
    )


def test_evaluate_cli_writes_csv(tmp_path, tiny_weights, capsys):
    import pandas as pd

    from tumorseg.inference.cli import evaluate_main as main

    image = make_image(shape=(24, 24, 16), box=((2, 22), (2, 22), (1, 15)), seed=5)
    label = np.zeros(image.shape[:3])
    label[8:16, 8:16, 4:12] = 1
    label[10:14, 10:14, 6:10] = 3
    data = write_dataset(tmp_path, image, label, ("BRATS_001", "BRATS_002"))
    out = tmp_path / "scores.csv"
    args = ["--data", str(data), "--weights", str(tiny_weights), "--out", str(out)]
    assert main([*args, "--cases", "BRATS_002"]) == 0
    table = pd.read_csv(out)
    assert table["case"].tolist() == ["BRATS_002"]
    for col in ("WT_dice", "TC_hd95", "ET_dice", "edema_sensitivity", "enhancing_specificity"):
        assert col in table.columns
    assert ((table["WT_dice"] >= 0) & (table["WT_dice"] <= 1)).all()
    with pytest.raises(SystemExit) as exc:
        main([*args, "--cases", "BRATS_999"])
    assert exc.value.code == 2
    assert "BRATS_999" in capsys.readouterr().err


def test_tile_budget_follows_free_memory(monkeypatch):
    import psutil

    from tumorseg.inference import predict as P

    class Mem:
        available = 2**30  # 1 GiB

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Mem)
    small = P.auto_max_voxels(None)
    assert small == int(0.5 * Mem.available / P.BYTES_PER_VOXEL_16)
    assert small < P.MAX_TILE_VOXELS

    class Conv:
        filters = 32

    class Wide:
        layers = [object(), Conv()]

    assert P.auto_max_voxels(Wide()) == max(P.MIN_TILE_VOXELS, small // 2)
    Mem.available = 64 * 2**30
    assert P.auto_max_voxels(None) == P.MAX_TILE_VOXELS
    # with little memory a BraTS-sized crop is split into several tiles that fit the budget
    Mem.available = 3 * 2**30
    budget = P.auto_max_voxels(None)
    tile, starts = plan_tiles((147, 176, 152), None, 0.25, budget)
    assert np.prod(tile) <= budget and np.prod([len(s) for s in starts]) > 1


def test_predict_cli_accepts_a_brats_case_folder(tmp_path, tiny_weights, tiny_unet):
    import nibabel as nib

    from tumorseg.data import load_image
    from tumorseg.inference.cli import predict_main as main

    image = make_image(shape=(24, 20, 16), box=((2, 22), (2, 18), (1, 15)), seed=6)
    affine = np.diag([1.0, 1.0, 1.5, 1.0])
    folder = tmp_path / "BraTS2021_00001"
    folder.mkdir()
    for c, suffix in enumerate(("flair", "t1", "t1ce", "t2")):
        nib.save(
            nib.Nifti1Image(image[..., c].astype(np.float32), affine),
            folder / f"{folder.name}_{suffix}.nii.gz",
        )
    stacked, reference = load_image(folder)
    np.testing.assert_allclose(stacked, image.astype(np.float32))
    out = tmp_path / "seg.nii"
    assert main([str(folder), "--weights", str(tiny_weights), "--out", str(out)]) == 0
    seg = nib.load(out)
    assert seg.shape == (24, 20, 16)
    np.testing.assert_allclose(seg.affine, affine)


def test_predict_cli_rejects_a_single_channel_file(tmp_path, tiny_weights, capsys):
    import nibabel as nib

    from tumorseg.inference.cli import predict_main as main

    path = tmp_path / "t1.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((8, 8, 8), np.float32), np.eye(4)), path)
    with pytest.raises(SystemExit) as exc:
        main([str(path), "--weights", str(tiny_weights), "--out", str(tmp_path / "o.nii.gz")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "t1.nii.gz" in err and "dimension" in err
    assert not (tmp_path / "o.nii.gz").exists()

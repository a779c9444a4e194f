"""Training-time augmentation (tumorseg.patches.augment): one module for generator and training."""

from __future__ import annotations

import numpy as np
import pytest

from tumorseg.patches.augment import Augment, augment, augment_raw, epoch_order


def _patch(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A raw (4, 24, 20, 8) patch with a zero background border and a (3, ...) label map."""
    rng = np.random.default_rng(seed)
    x = np.zeros((4, 24, 20, 8), np.float32)
    x[:, 3:-3, 3:-3, :] = rng.uniform(100, 900, size=(4, 18, 14, 8))
    y = np.zeros((3, 24, 20, 8), np.float32)
    y[0, 5:9, 4:8, 2:5] = 1
    return x, y


def test_augment_raw_keeps_background_and_is_reproducible():
    x, _ = _patch()
    outs = [augment_raw(x, np.random.default_rng([4, k])) for k in range(12)]
    for out in outs:
        assert out.dtype == np.float32 and out.shape == x.shape
        assert np.all(out[x == 0] == 0) and np.all(out[x != 0] > 0)
    assert not all(np.allclose(o, x) for o in outs)  # something changed
    again = augment_raw(x, np.random.default_rng([4, 0]))
    np.testing.assert_array_equal(again, outs[0])
    np.testing.assert_array_equal(x, _patch()[0])  # input untouched


def test_augment_none_returns_copies():
    x, y = _patch()
    ax, ay = augment(x, y, x != 0, np.random.default_rng(0), Augment.NONE)
    np.testing.assert_array_equal(ax, x)
    assert ax is not x and ay is not y


@pytest.mark.parametrize("level", [Augment.FLIP, Augment.STRONG, "strong"])
def test_augment_flips_image_and_labels_together(level):
    x, y = _patch(1)
    seen = set()
    for k in range(16):
        ax, ay = augment(x, y, x != 0, np.random.default_rng(k), level)
        assert ax.flags.c_contiguous and ay.flags.c_contiguous
        # the labels moved exactly as one of the four X/Y flips; the image's brain mask too
        for fx in (False, True):
            for fy in (False, True):
                ref_y, ref_b = y, x != 0
                if fx:
                    ref_y, ref_b = np.flip(ref_y, 1), np.flip(ref_b, 1)
                if fy:
                    ref_y, ref_b = np.flip(ref_y, 2), np.flip(ref_b, 2)
                if np.array_equal(ay, ref_y) and np.array_equal(ax != 0, ref_b):
                    seen.add((fx, fy))
    assert seen == {(False, False), (False, True), (True, False), (True, True)}


def test_strong_jitter_is_wider_than_flip():
    x = np.ones((4, 8, 8, 4), np.float32)
    y = np.zeros((3, 8, 8, 4), np.float32)

    def spread(level):
        vals = [
            augment(x, y, x != 0, np.random.default_rng(k), level)[0][:, 0, 0, 0] for k in range(64)
        ]
        return np.ptp(np.concatenate(vals))

    assert spread(Augment.FLIP) <= 0.2 * 1.1 + 0.2 + 1e-6
    assert spread(Augment.STRONG) > spread(Augment.FLIP) * 1.5


def test_epoch_order_is_a_reproducible_permutation():
    a = epoch_order(3, 0, 10)
    assert sorted(a.tolist()) == list(range(10))
    np.testing.assert_array_equal(a, epoch_order(3, 0, 10))
    assert not np.array_equal(a, epoch_order(3, 1, 10))


def test_spatial_moves_image_brain_and_labels_together():
    from tumorseg.patches.augment import rotate_scale

    x = np.zeros((4, 40, 40, 4), np.float32)
    x[:, 4:36, 4:36] = 1.0  # the brain
    x[:, 20:30, 12:18] = 5.0  # a bright lesion, labelled
    y = np.zeros((3, 40, 40, 4), np.float32)
    y[2, 20:30, 12:18] = 1
    changed = 0
    for k in range(40):
        ax, ay, ab = rotate_scale(x, y, x != 0, np.random.default_rng([7, k]))
        assert ax.shape == x.shape and ay.shape == y.shape and ax.dtype == np.float32
        assert set(np.unique(ay)) <= {0.0, 1.0}  # nearest neighbour: labels stay binary
        assert np.all(ax[~ab] == 0)  # outside the moved brain the image is 0
        if ay is y:
            continue
        changed += 1
        lesion = ay[2] > 0
        assert lesion.any() and np.all(ay[:2] == 0)
        # the labelled voxels are where the bright lesion went (up to interpolated edges)
        assert np.mean(ax[0][lesion] > 2.5) > 0.9
        # and an area close to the original's times the drawn in-plane scale squared
        assert 0.5 < lesion.sum() / y[2].sum() < 1.7
    assert 5 < changed < 30  # about half of the draws move the patch (two draws of p 0.3)
    again = rotate_scale(x, y, x != 0, np.random.default_rng([7, 3]))
    np.testing.assert_array_equal(
        again[1], rotate_scale(x, y, x != 0, np.random.default_rng([7, 3]))[1]
    )


def test_spatial_level_runs_through_load_sample_like_strong(tmp_path):
    from tumorseg.patches.reader import load_sample
    from tumorseg.patches.store import write_patch_h5

    x, y = _patch(2)
    onehot = np.concatenate([1 - y.max(axis=0, keepdims=True), y])  # background first
    write_patch_h5(tmp_path / "p.h5", x, np.moveaxis(onehot, 0, -1))
    dim = x.shape[1:]
    for level in (Augment.STRONG, Augment.SPATIAL, Augment.DOMAIN):
        ax, ay = load_sample(tmp_path / "p.h5", np.random.default_rng(1), dim=dim, level=level)
        assert ax.shape == x.shape and ay.shape == y.shape
        assert Augment(level).raw
    assert not Augment.FLIP.raw and not Augment.NONE.raw


def _smoothness(ch: np.ndarray) -> float:
    """Mean absolute in-plane gradient of a channel's brain voxels (lower: blurrier)."""
    gx = np.abs(np.diff(ch, axis=0))[:, 3:-3]
    return float(gx[gx > 0].mean())


def test_domain_level_draws_low_resolution_blur_and_noise_on_every_channel():
    from tumorseg.patches.augment import P_BLUR_ALL, P_LOWRES, augment_domain

    x, _ = _patch(3)
    changed, smoother = 0, 0
    n = 200
    for k in range(n):
        out = augment_domain(x, np.random.default_rng([9, k]))
        assert out.dtype == np.float32 and out.shape == x.shape
        assert np.all(out[x == 0] == 0) and np.all(out[x != 0] > 0)
        if not np.array_equal(out, x):
            changed += 1
        # low resolution and blur act on all four channels at once
        smooth = [_smoothness(out[c]) < 0.8 * _smoothness(x[c]) for c in range(4)]
        assert all(smooth) or not any(smooth)
        smoother += all(smooth)
    # at least one of the three draws: 1 - (1-0.25)(1-0.25)(1-0.15) = 0.52
    assert 0.4 * n < changed < 0.65 * n
    p_smooth = 1 - (1 - P_LOWRES) * (1 - P_BLUR_ALL)
    assert 0.7 * p_smooth * n < smoother < 1.3 * p_smooth * n
    np.testing.assert_array_equal(
        augment_domain(x, np.random.default_rng([9, 1])),
        augment_domain(x, np.random.default_rng([9, 1])),
    )


def test_adjust_contrast_stays_in_the_channel_range_and_spares_background():
    from tumorseg.patches.augment import adjust_contrast

    x, _ = _patch(4)
    x = (x - 500) / 200  # standardized-like, background stays where x was 0
    brain = np.abs(x) < 2.4
    brain[:, :3] = False
    stretched = 0
    for k in range(100):
        out = adjust_contrast(x, brain, np.random.default_rng([5, k]))
        np.testing.assert_array_equal(out[~brain], x[~brain])
        stretched += not np.allclose(out, x)
        for c in range(4):
            # contrast clips to the previous range; brightness may widen it by at most 1.3x
            bound = 1.3 * np.abs(x[c][brain[c]]).max() + 1e-5
            assert np.abs(out[c][brain[c]]).max() <= bound
    assert 20 < stretched < 70  # per channel p 0.15 + 0.15, four channels


def test_every_level_records_its_draws_for_the_manifest():
    from tumorseg.patches.augment import PROBABILITIES

    assert set(PROBABILITIES) == {a.value for a in Augment}
    domain = PROBABILITIES["domain"]
    for draw in ("low_resolution_xy", "blur_all_channels", "multiplicative_noise", "contrast"):
        assert draw in domain
    assert domain["low_resolution_xy"]["factor"] == [1.0, 2.0]
    assert set(PROBABILITIES["spatial"]) < set(domain)
    assert Augment.DOMAIN.raw and Augment.DOMAIN.spatial and not Augment.STRONG.spatial

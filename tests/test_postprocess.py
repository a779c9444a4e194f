"""Whole-scan post-processing rules and test-time mirroring."""

from __future__ import annotations

import numpy as np
import pytest

from tumorseg.contract import probabilities_to_labels
from tumorseg.inference import Mirror, Postprocess, postprocess_labels, predict_volume
from tumorseg.inference.postprocess import apply_to_probabilities, mirrored


def _scan() -> np.ndarray:
    """A label map: a 10x10x10 tumour (edema around a 4^3 enhancing core), a 3x3x3 edema blob
    far away, and a 6x6x6 edema blob (216 voxels)."""
    labels = np.zeros((40, 40, 30), np.uint8)
    labels[5:15, 5:15, 5:15] = 1
    labels[8:12, 8:12, 8:12] = 3
    labels[30:33, 30:33, 20:23] = 1
    labels[30:36, 5:11, 20:26] = 1
    return labels


def test_no_rule_changes_nothing():
    labels = _scan()
    assert not Postprocess().active
    np.testing.assert_array_equal(postprocess_labels(labels, Postprocess()), labels)


def test_small_components_are_dropped():
    out = postprocess_labels(_scan(), Postprocess(min_component=100))
    assert out[31, 31, 21] == 0  # 27 voxels: gone
    assert out[32, 7, 22] == 1  # 216 voxels: kept
    assert (out[5:15, 5:15, 5:15] > 0).all()


def test_keep_fraction_of_the_largest():
    out = postprocess_labels(_scan(), Postprocess(keep_fraction=1.0))
    assert int((out > 0).sum()) == 1000  # only the main tumour
    out = postprocess_labels(_scan(), Postprocess(keep_fraction=0.2))  # >= 200 voxels
    assert int((out > 0).sum()) == 1000 + 216


def test_tiny_enhancing_region_becomes_non_enhancing():
    labels = _scan()
    out = postprocess_labels(labels, Postprocess(min_enhancing=100))
    assert (out == 3).sum() == 0 and (out == 2).sum() == 64
    out = postprocess_labels(labels, Postprocess(min_enhancing=64))  # 64 is not < 64
    assert (out == 3).sum() == 64


def test_probabilities_follow_the_label_rules():
    rng = np.random.default_rng(0)
    labels = _scan()
    probs = rng.uniform(0.0, 0.4, (3, *labels.shape)).astype(np.float32)
    for c in (1, 2, 3):
        probs[c - 1][labels == c] = rng.uniform(0.6, 1.0, int((labels == c).sum()))
    assert np.array_equal(probabilities_to_labels(probs), labels)
    for rules in (
        Postprocess(min_component=100),
        Postprocess(keep_fraction=1.0, min_enhancing=100),
    ):
        cleaned = apply_to_probabilities(probs, rules)
        expected = postprocess_labels(labels, rules)
        np.testing.assert_array_equal(probabilities_to_labels(cleaned), expected)


def test_bad_rules_and_records_are_refused():
    with pytest.raises(ValueError):
        Postprocess(keep_fraction=2.0)
    with pytest.raises(ValueError, match="unknown"):
        Postprocess.from_record({"min_size": 3})
    assert Postprocess.from_record(None) == Postprocess.NONE
    rules = Postprocess(min_component=5, keep_fraction=0.1, min_enhancing=7)
    assert Postprocess.from_record(rules.to_dict()) == rules


def test_mirroring_averages_the_flipped_passes():
    def lopsided(batch: np.ndarray) -> np.ndarray:
        # a "model" that depends on position along X: output = input * ramp over X
        ramp = np.linspace(0.0, 1.0, batch.shape[2], dtype=np.float32)[None, None, :, None, None]
        return batch[:, :1] * ramp

    batch = np.ones((1, 2, 5, 3, 4), np.float32)
    assert len(Mirror.XYZ.flips) == 8 and Mirror.X.flips == [(), (0,)]
    out = mirrored(lopsided, Mirror.X)(batch)
    np.testing.assert_allclose(out, 0.5)  # ramp + reversed ramp, halved
    assert mirrored(lopsided, Mirror.NONE) is lopsided


def test_predict_volume_applies_the_models_recorded_rules():
    labels = _scan()
    image = np.ones((*labels.shape, 4), np.float32)
    image[..., 0] = labels + 1  # channel 0 carries the answer

    class Echo:
        """A 'model' whose probabilities are the labels written into channel 0, with the
        manifest that load_pretrained would attach."""

        manifest = {"postprocess": {"min_component": 100}, "tta": "xyz"}

        def __call__(self, batch):
            codes = batch[:, 0]
            return np.stack([(codes == c + 2) for c in range(3)], axis=1).astype(np.float32)

    model = Echo()
    kept = predict_volume(image, model, standardize="none")
    np.testing.assert_array_equal(
        probabilities_to_labels(kept), postprocess_labels(labels, Postprocess(min_component=100))
    )
    raw = predict_volume(image, model, standardize="none", postprocess=Postprocess.NONE, tta="none")
    np.testing.assert_array_equal(probabilities_to_labels(raw), labels)

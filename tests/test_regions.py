"""Region outputs: a model trained on the nested BraTS regions (WT, TC, ET) instead of the classes
is trained, labelled, cleaned up and scored through the same code path, picked by its manifest."""

from __future__ import annotations

import numpy as np
import pytest

from tumorseg.contract import Outputs, classes_to_regions, probabilities_to_labels, targets_for
from tumorseg.inference import InferenceSettings, Postprocess, postprocess_labels
from tumorseg.inference.evaluate import CasePrediction, score_prediction
from tumorseg.inference.postprocess import apply_to_probabilities
from tumorseg.labels import REGIONS
from tumorseg.train.config import TrainConfig
from tumorseg.train.loop import evaluate_batches


def _labels() -> np.ndarray:
    """Edema around a necrotic core with an enhancing rim, a far edema blob, a tiny ET blob."""
    labels = np.zeros((40, 40, 30), np.uint8)
    labels[5:17, 5:17, 5:17] = 1
    labels[7:15, 7:15, 7:15] = 3
    labels[9:13, 9:13, 9:13] = 2
    labels[30:36, 5:11, 20:26] = 1
    labels[31:33, 31:33, 21:23] = 3
    return labels


def _one_hot(labels: np.ndarray) -> np.ndarray:
    """(3, X, Y, Z) class masks (edema, non-enhancing, enhancing) as float32."""
    return np.stack([labels == c for c in (1, 2, 3)]).astype(np.float32)


def _region_probs(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Region probabilities that are on (0.6-1) inside each region and off (0-0.4) outside."""
    rng = np.random.default_rng(seed)
    probs = rng.uniform(0.0, 0.4, (3, *labels.shape)).astype(np.float32)
    for r, members in enumerate(REGIONS.values()):
        inside = np.isin(labels, members)
        probs[r][inside] = rng.uniform(0.6, 1.0, int(inside.sum()))
    return probs


def test_class_targets_become_the_nested_regions():
    labels = _labels()
    regions = classes_to_regions(_one_hot(labels))
    for r, members in enumerate(REGIONS.values()):
        np.testing.assert_array_equal(regions[r], np.isin(labels, members))
    assert regions.dtype == np.float32
    # nested: ET inside TC inside WT
    assert (regions[2] <= regions[1]).all() and (regions[1] <= regions[0]).all()
    # a batch converts sample by sample; classes pass through unchanged
    batch = np.stack([_one_hot(labels), _one_hot(labels[::-1])])
    np.testing.assert_array_equal(
        targets_for(batch, Outputs.REGIONS)[1], classes_to_regions(batch[1])
    )
    assert targets_for(batch, "classes") is batch
    with pytest.raises(ValueError, match="3 class channels"):
        classes_to_regions(np.zeros((4, 2, 2, 2)))


def test_regions_turn_back_into_the_label_map():
    labels = _labels()
    probs = _region_probs(labels)
    np.testing.assert_array_equal(probabilities_to_labels(probs, 0.5, Outputs.REGIONS), labels)
    # the same probabilities read as classes give another map: the kind matters
    assert not np.array_equal(probabilities_to_labels(probs, 0.5), labels)
    # the innermost region that is on decides, as in nnU-Net's BraTS conversion
    voxel = np.array([0.1, 0.2, 0.9], np.float32)[:, None, None, None]
    assert probabilities_to_labels(voxel, 0.5, "regions")[0, 0, 0] == 3
    with pytest.raises(ValueError):
        probabilities_to_labels(probs, 0.5, "channels")


@pytest.mark.parametrize(
    "rules",
    [
        Postprocess(min_component=100),
        Postprocess(keep_fraction=1.0),
        Postprocess(min_component=10, min_enhancing=100),
    ],
)
def test_the_clean_up_follows_the_label_rules_for_regions(rules):
    labels = _labels()
    probs = _region_probs(labels, seed=1)
    cleaned = apply_to_probabilities(probs, rules, 0.5, Outputs.REGIONS)
    np.testing.assert_array_equal(
        probabilities_to_labels(cleaned, 0.5, Outputs.REGIONS), postprocess_labels(labels, rules)
    )


def test_the_manifest_names_the_kind_and_scoring_uses_it():
    assert InferenceSettings().outputs is Outputs.CLASSES  # a manifest without the key
    settings = InferenceSettings.from_manifest({"outputs": "regions", "threshold": 0.4})
    assert settings.outputs is Outputs.REGIONS
    with pytest.raises(ValueError):
        InferenceSettings.from_manifest({"outputs": "logits"})
    labels = _labels()
    pred = CasePrediction("c", _region_probs(labels), labels, (1.0, 1.0, 1.0), 0.0)
    row = score_prediction(pred, Postprocess.NONE, 0.5, outputs=settings.outputs)
    assert row["WT_dice"] == row["TC_dice"] == row["ET_dice"] == 1.0
    wrong = score_prediction(pred, Postprocess.NONE, 0.5)  # read as classes
    assert wrong["TC_dice"] < 0.9


def test_training_validation_scores_the_region_targets():
    labels = _labels()[:, :, :16]
    x = np.zeros((1, 4, *labels.shape), np.float32)
    y = _one_hot(labels)[None]

    class Oracle:
        """Predicts the region targets exactly."""

        def predict(self, batch, batch_size, verbose):
            return classes_to_regions(y[0])[None]

    scores = evaluate_batches(Oracle(), [(x, y)], outputs=Outputs.REGIONS)
    assert (scores["WT"], scores["TC"], scores["ET"], scores["patches"]) == (1.0, 1.0, 1.0, 1)
    as_classes = evaluate_batches(Oracle(), [(x, y)])
    assert as_classes["mean"] < 1.0
    assert TrainConfig(out="o", outputs="regions").outputs == "regions"
    with pytest.raises(ValueError):
        TrainConfig(out="o", outputs="both")

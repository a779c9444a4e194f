"""Whole-scan inference: ``predict_volume`` (crop, standardize, tile, blend, mirror, clean up)
run with a model's ``InferenceSettings``, and the one label rule ``probabilities_to_labels``
(defined with the contract, ``tumorseg.contract``, and handed on here).

Importing this package does not import TensorFlow or matplotlib; models are only touched when
called.  The course's plotting wrapper ``predict_and_viz`` lives in ``tumorseg.viz``.
CLIs (all in tumorseg.inference.cli): ``tumorseg predict`` (library side of a dataset folder in
tumorseg.inference.batch), ``tumorseg evaluate`` (library side in tumorseg.inference.evaluate)
and ``tumorseg score`` (library side in tumorseg.inference.score: saved label maps scored
against labels); their ``--shard`` and ``tumorseg merge`` are in tumorseg.batch.
"""

from tumorseg.contract import probabilities_to_labels
from tumorseg.inference.postprocess import Mirror, Postprocess, postprocess_labels
from tumorseg.inference.predict import brain_bbox, plan_tiles, predict_volume
from tumorseg.inference.settings import InferenceSettings, resolve_settings

__all__ = [
    "InferenceSettings",
    "resolve_settings",
    "Mirror",
    "Postprocess",
    "postprocess_labels",
    "brain_bbox",
    "plan_tiles",
    "predict_volume",
    "probabilities_to_labels",
]

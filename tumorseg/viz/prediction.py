"""The course's whole-scan view: segment a scan and plot ground truth against prediction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tumorseg.contract import probabilities_to_labels
from tumorseg.inference.predict import predict_volume
from tumorseg.inference.settings import resolve_settings
from tumorseg.labels import N_CLASSES


def predict_and_viz(
    image: np.ndarray,
    label: np.ndarray,
    model: Any,
    threshold: float,
    loc: Sequence[int] = (100, 100, 50),
    **changes: Any,
) -> np.ndarray:
    """Segment a whole scan, plot ground truth against prediction, return the prediction.

    The course's signature and return layout.  The label map is the one ``tumorseg predict``
    writes: probabilities from ``predict_volume`` (standardized, mirrored and cleaned up as the
    model's manifest says), then ``probabilities_to_labels`` with the model's output kind (for
    a class model: background where no class is above ``threshold``, else the most probable
    class).  CHANGES.md lists how this differs from
    the original course's helper.

    Args:
        image: (X, Y, Z, 4) raw intensities, as ``load_case`` returns (240x240x155 in BraTS).
        label: (X, Y, Z) ground-truth labels 0..3 (0 background, 1 edema, 2 non-enhancing
            tumor, 3 enhancing tumor).
        model: channels-first model ``(B, 4, x, y, z) -> (B, 3, x, y, z)`` probabilities.
        threshold: probability above which a class is reported.
        loc: (x, y, z) voxel whose sagittal (x), coronal (y) and axial (z) planes are
            shown (clamped to the volume).
        **changes: inference settings to change from the manifest's, by field name, as
            ``evaluate`` takes them (e.g. ``tta="none"``: one pass, no mirroring).

    Returns:
        (X, Y, Z, 4) float32 one-hot label map: channel 0 the predicted background, channels
        1-3 edema, non-enhancing and enhancing tumor; exactly one channel is 1.0 per voxel, so
        ``np.argmax(pred, axis=-1)`` is the label map.
    """
    import matplotlib.pyplot as plt

    from tumorseg.viz.labeled import get_labeled_image
    from tumorseg.viz.plots import plot_prediction_views

    image = np.asarray(image)
    label = np.asarray(label)
    if label.shape != image.shape[:3]:
        raise ValueError(f"label shape {label.shape} does not match image shape {image.shape[:3]}")
    settings = resolve_settings(model, threshold=threshold, **changes)
    probs = predict_volume(image, model, settings=settings)
    labels = probabilities_to_labels(probs, settings.threshold, settings.outputs)
    del probs
    pred = np.eye(N_CLASSES + 1, dtype=np.float32)[labels]  # the probabilities are freed by now
    del labels

    truth_rgb = get_labeled_image(image, label)
    pred_rgb = get_labeled_image(image, pred, is_categorical=True)
    plot_prediction_views(truth_rgb, pred_rgb, tuple(loc))  # loc is clamped to the volume
    plt.show()
    return pred

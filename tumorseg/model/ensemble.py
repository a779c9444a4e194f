"""An ensemble of trained models of one output kind, run as one model.

The shipped manifest may list ``"members"``: weights files (relative to the manifest's folder),
each with its own manifest beside it.  ``load_pretrained`` then returns an :class:`Ensemble`:
``predict_on_batch`` averages every member's probabilities, and whole-scan prediction
(``tumorseg.inference.predict.predict_volume``) spreads its mirror passes over the members
(``tumorseg.inference.postprocess.mirrored``), so that two members with left-right mirroring
cost the two passes one model with mirroring costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tumorseg.contract import THRESHOLD


class Ensemble:
    """Several models ``(B, C, X, Y, Z) -> (B, K, X, Y, Z)`` that predict as their mean.

    members: the models (Keras models or callables), all with the same output channels;
    manifest: the ensemble's manifest (its settings are the ones whole-scan prediction reads).
    """

    def __init__(self, members: Sequence[Any], manifest: dict | None = None):
        if not members:
            raise ValueError("an Ensemble needs at least one member")
        self.members = list(members)
        self.manifest = dict(manifest or {})
        self.threshold = float(self.manifest.get("threshold", THRESHOLD))
        self.name = "ensemble_" + "_".join(
            str(getattr(m, "name", i)) for i, m in enumerate(members)
        )

    @property
    def input_shape(self) -> Any:
        return self.members[0].input_shape

    @property
    def output_shape(self) -> Any:
        return self.members[0].output_shape

    @property
    def layers(self) -> list:
        """The first member's layers (what the tile budget reads its filter count from)."""
        return list(getattr(self.members[0], "layers", []))

    def count_params(self) -> int:
        """Parameters of all members together."""
        return sum(int(m.count_params()) for m in self.members)

    def predict_on_batch(self, batch: np.ndarray) -> np.ndarray:
        """The mean of the members' probabilities for ``batch (B, C, X, Y, Z)``: (B, K, X, Y, Z)."""
        total = None
        for m in self.members:
            out = m.predict_on_batch(batch) if hasattr(m, "predict_on_batch") else m(batch)
            out = np.asarray(out, np.float32)
            total = out if total is None else total + out
        return total / len(self.members)

    def predict(self, batch: np.ndarray, **kwargs: Any) -> np.ndarray:
        """``predict_on_batch`` (Keras' ``predict`` signature; ``kwargs`` are ignored)."""
        return self.predict_on_batch(np.asarray(batch))

    __call__ = predict_on_batch

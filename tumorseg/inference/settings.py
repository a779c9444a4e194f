"""``InferenceSettings``: how a model's whole scans are predicted and labelled, frozen.

A trained model's manifest records them (its ``standardize``, ``threshold``, ``tta`` and
``postprocess`` keys); ``load_pretrained`` attaches the manifest to the model it rebuilds
(``model.manifest``), and :func:`resolve_settings` reads them back from there, so
``predict_volume(image, model)`` predicts the way the model was meant to run.  A call or a
command line changes some of them (``InferenceSettings.override``; ``tumorseg predict`` and
``tumorseg evaluate`` take flags), as ``tumorseg train`` builds a ``TrainConfig`` from its flags.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tumorseg.contract import (
    DEFAULT_OUTPUTS,
    DEFAULT_STANDARDIZE,
    RAW,
    STANDARDIZE_MODES,
    THRESHOLD,
    Outputs,
)
from tumorseg.inference.postprocess import Mirror, Postprocess


@dataclass(frozen=True)
class InferenceSettings:
    """The settings of whole-scan prediction; each field is the manifest key of that name.

    standardize: the intensity standardization the model was trained with (one of
        ``STANDARDIZE_MODES``, or ``RAW`` for raw intensities).
    threshold: a class is present in a voxel above it (``probabilities_to_labels``); the
        post-processing assumes the same.
    tta: test-time mirroring (``Mirror``; its value, e.g. "x", is accepted).
    outputs: what the model's channels stand for (``Outputs``: classes or regions; its value
        is accepted); it picks ``probabilities_to_labels``' rule.
    postprocess: whole-scan clean-up rules (``Postprocess``; its dict is accepted).
    tumour_tta: more mirroring where the tumour is: the passes of this ``Mirror`` that ``tta``
        has not made run only on the part of each tile around the voxels ``tta``'s passes found
        tumour in, and are averaged in there (``predict_volume``); ``none``: no more passes.
        A manifest may give it per inference precision (``load_pretrained`` picks one).
    """

    standardize: str = DEFAULT_STANDARDIZE
    threshold: float = THRESHOLD
    tta: Mirror = Mirror.NONE
    postprocess: Postprocess = Postprocess()
    outputs: Outputs = DEFAULT_OUTPUTS
    tumour_tta: Mirror = Mirror.NONE

    def __post_init__(self) -> None:
        # normalise the manifest's JSON values; frozen, so via object
        object.__setattr__(self, "threshold", float(self.threshold))
        object.__setattr__(self, "tta", Mirror(self.tta))
        object.__setattr__(self, "tumour_tta", Mirror(self.tumour_tta))
        object.__setattr__(self, "outputs", Outputs(self.outputs))
        object.__setattr__(self, "postprocess", Postprocess.from_record(self.postprocess))
        if self.standardize not in (*STANDARDIZE_MODES, RAW):
            raise ValueError(
                f"standardize must be one of {(*STANDARDIZE_MODES, RAW)}, got {self.standardize!r}"
            )
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any] | None) -> InferenceSettings:
        """The settings a manifest records; a key it lacks (or holds as null) takes the default,
        and the manifest's other keys are ignored.  None: all defaults.  A ``tumour_tta`` given
        per inference precision takes its ``"float32"`` entry here (``load_pretrained`` resolves
        it for the precision it loads, ``tumorseg.model.pretrained.for_precision``, before the
        model's settings are read)."""
        names = {f.name for f in dataclasses.fields(cls)}
        found = {k: v for k, v in (manifest or {}).items() if k in names and v is not None}
        if isinstance(found.get("tumour_tta"), Mapping):  # per inference precision
            found["tumour_tta"] = found["tumour_tta"].get("float32", Mirror.NONE.value)
        return cls(**found)

    def override(self, **changes: Any) -> InferenceSettings:
        """A copy with ``changes`` (fields by name) applied; a change of None keeps the value,
        as an unset command-line flag does."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def resolve_settings(
    model: Any, settings: InferenceSettings | None = None, **changes: Any
) -> InferenceSettings:
    """The settings one call runs with: ``settings``, or else those of the manifest attached to
    ``model`` (``model.manifest``; the defaults for a model without one), with ``changes``
    applied as :meth:`InferenceSettings.override` applies them."""
    if settings is None:
        settings = InferenceSettings.from_manifest(getattr(model, "manifest", None))
    return settings.override(**changes)

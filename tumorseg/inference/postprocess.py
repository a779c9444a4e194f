"""Whole-scan post-processing of a label map, and test-time mirroring.

A model that looks at one tile at a time can mark isolated blobs of normal anatomy as tumour
far from the real lesion.  ``Postprocess`` names the clean-up rules a whole-scan prediction
gets, all on the label map (0 background, 1 edema, 2 non-enhancing, 3 enhancing):

* ``min_component``: whole-tumour (labels > 0) connected components (26-connectivity) with
  fewer voxels are set to background;
* ``keep_fraction``: of what is left, only components with at least this fraction of the
  largest component's voxels are kept (1.0 keeps the largest alone; 0 keeps all);
* ``min_enhancing``: when the whole scan holds fewer enhancing voxels than this, they are
  relabelled non-enhancing (2), the BraTS practice for a few spurious enhancing voxels.

``Mirror`` names the test-time augmentation: the prediction averaged over mirrored copies of
the input (nnU-Net's mirroring).  Both are recorded in a model's manifest (``"postprocess"``,
``"tta"``) and are fields of its ``InferenceSettings`` (:mod:`tumorseg.inference.settings`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from tumorseg.contract import DEFAULT_OUTPUTS, THRESHOLD, Outputs, probabilities_to_labels

#: Label of the enhancing tumour and of what a too-small enhancing region becomes.
ENHANCING, NON_ENHANCING = 3, 2


@dataclass(frozen=True)
class Postprocess:
    """Clean-up rules of a whole-scan label map (see the module docstring); the defaults do
    nothing (``Postprocess.NONE``)."""

    min_component: int = 0
    keep_fraction: float = 0.0
    min_enhancing: int = 0

    def __post_init__(self) -> None:
        if self.min_component < 0 or self.min_enhancing < 0:
            raise ValueError(f"{self}: sizes must be >= 0 voxels")
        if not 0.0 <= self.keep_fraction <= 1.0:
            raise ValueError(f"{self}: keep_fraction must be in [0, 1]")

    @property
    def active(self) -> bool:
        """True when some rule can change a label map."""
        return self != Postprocess()

    def to_dict(self) -> dict[str, float]:
        """The rules as a JSON-ready dict (the manifest's ``"postprocess"``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_record(cls, record: Any) -> Postprocess:
        """From a manifest record: a dict of the fields, or None/{} for no post-processing.
        ValueError naming the unknown keys otherwise."""
        if record is None:
            return cls()
        if isinstance(record, Postprocess):
            return record
        if not isinstance(record, Mapping):
            raise ValueError(f"postprocess record must be a dict of rules, got {record!r}")
        unknown = set(record) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown post-processing rules {sorted(unknown)} in {record}")
        return cls(**record)


Postprocess.NONE = Postprocess()  # type: ignore[attr-defined]


class Mirror(str, Enum):
    """Test-time mirroring: NONE (one pass), X (also left-right mirrored, 2 passes), XY and XZ
    (every combination of mirroring those two axes, 4 passes), XYZ (all 8 combinations of
    mirroring X, Y and Z, nnU-Net's default)."""

    NONE = "none"
    X = "x"
    XY = "xy"
    XZ = "xz"
    XYZ = "xyz"

    @property
    def flips(self) -> list[tuple[int, ...]]:
        """Spatial axes (0 X, 1 Y, 2 Z) to mirror, one tuple per pass (``()``: as is), in the
        order of a binary count over the mirror's axes, so X's passes begin every other's."""
        if self is Mirror.NONE:
            return [()]
        axes = ["xyz".index(c) for c in self.value]
        return [tuple(a for i, a in enumerate(axes) if m >> i & 1) for m in range(2 ** len(axes))]


def pass_count(predictors: int, mirror: Mirror) -> int:
    """How many forward passes ``mirrored`` makes per batch for ``predictors`` models (the
    members of an ensemble) and ``mirror``: ``max(len(mirror.flips), predictors)``."""
    return max(len(Mirror(mirror).flips), int(predictors))


def pass_plan(predictors: int, mirror: Mirror) -> list[tuple[int, tuple[int, ...]]]:
    """``(predictor, flip)`` of each pass ``mirrored`` makes: pass ``k`` runs predictor
    ``k % predictors`` on flip ``k % len(flips)``."""
    flips = Mirror(mirror).flips
    return [(k % predictors, flips[k % len(flips)]) for k in range(pass_count(predictors, mirror))]


def extra_passes(
    predictors: int, mirror: Mirror, done: Mirror
) -> list[tuple[int, tuple[int, ...]]]:
    """The passes of ``mirror`` (``pass_plan``) that ``done``'s passes have not made, in order;
    none for ``Mirror.NONE``."""
    if Mirror(mirror) is Mirror.NONE:
        return []
    made = set(pass_plan(predictors, done))
    return [p for p in pass_plan(predictors, mirror) if p not in made]


def mirrored(
    predict: Callable[[np.ndarray], np.ndarray] | Sequence[Callable[[np.ndarray], np.ndarray]],
    mirror: Mirror,
    spread: bool = False,
    passes: Sequence[tuple[int, tuple[int, ...]]] | None = None,
) -> Callable:
    """``predict`` (batch ``(B, C, X, Y, Z)`` -> ``(B, K, X, Y, Z)``) averaged over the mirrored
    copies of ``mirror``: each pass flips the batch's spatial axes, predicts, flips back.

    ``predict`` may be a sequence of predictors (the members of an ensemble): the passes are
    then spread over them, ``pass_count`` passes in all, pass ``k`` running predictor
    ``k % n`` on flip ``k % len(flips)`` (``pass_plan``).  Two members with ``Mirror.X`` thus
    cost two passes: the first member sees the scan as is, the second mirrored left-right.

    spread: also return the passes' disagreement: the output is then (B, 2K, X, Y, Z), the
    mean of the passes (channels 0..K-1, the same values as without ``spread``) followed by
    the range of the passes per channel (largest minus smallest probability; for two passes
    their absolute difference).  With a single pass the range is 0.
    passes: run these ``(predictor, flip)`` passes instead of ``mirror``'s (e.g.
    ``extra_passes``); at least one.
    """
    predicts = [predict] if callable(predict) else list(predict)
    plan = list(passes) if passes is not None else pass_plan(len(predicts), mirror)
    if not plan:
        raise ValueError("mirrored needs at least one pass")
    if plan == [(0, ())] and len(predicts) == 1 and not spread:
        return predicts[0]
    runs = [(predicts[m], axes) for m, axes in plan]

    def run(batch: np.ndarray) -> np.ndarray:
        total = low = high = None
        for fn, axes in runs:
            spatial = tuple(2 + a for a in axes)
            out = fn(np.ascontiguousarray(np.flip(batch, spatial)) if axes else batch)
            out = np.flip(out, spatial) if axes else out
            total = out.astype(np.float32) if total is None else total + out
            if spread:
                low = total.copy() if low is None else np.minimum(low, out)
                high = total.copy() if high is None else np.maximum(high, out)
        mean = total / len(runs)
        return np.concatenate([mean, high - low], axis=1) if spread else mean

    return run


def postprocess_labels(labels: np.ndarray, rules: Postprocess) -> np.ndarray:
    """Apply ``rules`` to a label map.

    Args:
        labels: (X, Y, Z) integer label map with values 0..3.
        rules: the clean-up rules (``Postprocess``).

    Returns:
        A new (X, Y, Z) label map of the same dtype; unchanged copy when no rule is active.
    """
    out = np.array(labels, copy=True)
    keep = tumour_to_keep(out > 0, rules)
    out[~keep] = 0
    if rules.min_enhancing and 0 < int((out == ENHANCING).sum()) < rules.min_enhancing:
        out[out == ENHANCING] = NON_ENHANCING
    return out


def tumour_to_keep(tumour: np.ndarray, rules: Postprocess) -> np.ndarray:
    """(X, Y, Z) bool: the voxels of the ``tumour`` mask that survive the component rules
    (``min_component``, then ``keep_fraction`` of the largest remaining component)."""
    tumour = np.asarray(tumour, bool)
    if not (rules.min_component or rules.keep_fraction) or not tumour.any():
        return tumour
    components, n = ndi.label(tumour, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(components.ravel(), minlength=n + 1)
    sizes[0] = 0
    kept = sizes >= max(rules.min_component, 1)
    if rules.keep_fraction and kept.any():
        kept &= sizes >= rules.keep_fraction * sizes[kept].max()
    kept[0] = False
    return kept[components]


def apply_to_probabilities(
    probs: np.ndarray,
    rules: Postprocess,
    threshold: float = THRESHOLD,
    outputs: Outputs | str = DEFAULT_OUTPUTS,
) -> np.ndarray:
    """Post-process the model's probabilities so that
    ``probabilities_to_labels(out, threshold, outputs)`` equals ``postprocess_labels`` of the
    unprocessed labels.

    probs: (3, X, Y, Z) probabilities of ``outputs`` kind (classes: edema, non-enhancing,
    enhancing; regions: WT, TC, ET).  Voxels removed from the tumour get probability 0 in
    every channel; a too-small enhancing region's voxels get the enhancing probability moved
    to channel 1 (non-enhancing, or the tumour core), so they become non-enhancing.  Returns a
    new float32 array.
    """
    out = np.array(probs, dtype=np.float32, copy=True)
    if not rules.active:
        return out
    labels = probabilities_to_labels(out, threshold, outputs)
    removed = ~tumour_to_keep(labels > 0, rules)
    out[:, removed] = 0.0
    labels[removed] = 0  # all-zero probabilities: background, no second argmax needed
    enhancing = labels == ENHANCING
    if rules.min_enhancing and 0 < int(enhancing.sum()) < rules.min_enhancing:
        ne, en = NON_ENHANCING - 1, ENHANCING - 1
        out[ne, enhancing] = np.maximum(out[ne, enhancing], out[en, enhancing]) + 1e-6
        out[en, enhancing] = 0.0
    return out

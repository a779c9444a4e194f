"""Segmentation metrics: Dice, sensitivity/specificity, HD95 and the BraTS regions.

Pure numpy/scipy (no TensorFlow import), so they are cheap to import and to test.

Conventions (used everywhere below; this is the one place they are written down):

- masks are boolean arrays of one shape; any nonzero value counts as ``True``;
- ``hd95`` pools the surface distances of both directions (prediction -> truth and
  truth -> prediction) and takes their 95th percentile, as MedPy and the BraTS scorer
  (``brats-evaluation``) do;
- empty masks, as the BraTS challenge scores them (and nnU-Net's BraTS scripts,
  ``evaluate_BraTS_case``):

  - a region present in exactly one of prediction and truth (missed or spurious): Dice 0.0,
    HD95 373.13 mm (``HD95_EMPTY``, the diagonal of the 240x240x155 mm BraTS volume);
  - a region absent from both: Dice 1.0 and HD95 0.0 (``BothEmpty.BRATS``, the default of
    ``dice``, ``hd95``, ``region_scores``, ``hard_dice_per_class``, ``score_labels`` and
    ``tumorseg evaluate``/``score``).  The named option ``both_empty="nan"``
    (``BothEmpty.NAN``) gives NaN instead, left out of means over cases: the convention of
    nnU-Net's generic evaluation, MONAI and MedPy, not of BraTS;

- sensitivity is NaN when the truth has no positive voxel, specificity is NaN when it has
  no negative voxel (the ratio is undefined; no warning is raised).

BraTS regions on label maps ``0`` background, ``1`` edema, ``2`` non-enhancing tumor,
``3`` enhancing tumor: whole tumor WT = {1, 2, 3}, tumor core TC = {2, 3},
enhancing tumor ET = {3}.
"""

from __future__ import annotations

from tumorseg.metrics.core import (
    BOTH_EMPTY_MODES,
    HD95_EMPTY,
    REGIONS,
    BothEmpty,
    class_sens_spec,
    dice,
    hard_dice_per_class,
    hd95,
    region_scores,
    sens_spec_table,
    sensitivity_specificity,
)

__all__ = [
    "BOTH_EMPTY_MODES",
    "BothEmpty",
    "HD95_EMPTY",
    "REGIONS",
    "class_sens_spec",
    "dice",
    "hard_dice_per_class",
    "hd95",
    "region_scores",
    "sens_spec_table",
    "sensitivity_specificity",
]

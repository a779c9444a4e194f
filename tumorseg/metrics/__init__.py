"""Segmentation metrics: Dice, sensitivity/specificity, HD95 and the BraTS regions.

Pure numpy/scipy (no TensorFlow import), so they are cheap to import and to test.

Conventions (used everywhere below; this is the one place they are written down):

- masks are boolean arrays of one shape; any nonzero value counts as ``True``;
- ``hd95`` pools the surface distances of both directions (prediction -> truth and
  truth -> prediction) and takes their 95th percentile, as MedPy and the BraTS scorer
  (``brats-evaluation``) do;
- empty masks, as BraTS scores them:

  - a region present in exactly one of prediction and truth: Dice 0.0, HD95 373.0 mm
    (``HD95_EMPTY``, the BraTS penalty, about the diagonal of the 240x240x155 mm volume);
  - a region absent from both: Dice and HD95 are NaN, so the region is reported for the
    case but left out of means over cases (pandas' ``mean``/``median`` skip NaN, as does
    ``tumorseg evaluate``'s summary).  The named option ``both_empty="perfect"`` of
    ``dice``, ``hd95`` and ``region_scores`` gives the older values instead (Dice 1.0,
    HD95 0.0), which count such a case as perfect;

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

"""Segmentation metrics: Dice, sensitivity/specificity, HD95 and the BraTS regions.

Pure numpy/scipy (no TensorFlow import), so they are cheap to import and to test.

Conventions (used everywhere below, and in BraTS scoring):

- masks are boolean arrays of one shape; any nonzero value counts as ``True``;
- ``dice``: both masks empty -> 1.0, exactly one empty -> 0.0;
- ``hd95``: both empty -> 0.0, exactly one empty -> 373.13 mm (the BraTS penalty, the
  diagonal of the 240x240x155 mm BraTS volume);
- sensitivity is NaN when the truth has no positive voxel, specificity is NaN when it has
  no negative voxel (the ratio is undefined; no warning is raised).

BraTS regions on label maps ``0`` background, ``1`` edema, ``2`` non-enhancing tumor,
``3`` enhancing tumor: whole tumor WT = {1, 2, 3}, tumor core TC = {2, 3},
enhancing tumor ET = {3}.
"""

from __future__ import annotations

from tumorseg.metrics.core import (
    HD95_EMPTY,
    REGIONS,
    class_sens_spec,
    dice,
    hd95,
    region_scores,
    sens_spec_table,
    sensitivity_specificity,
)

__all__ = [
    "HD95_EMPTY",
    "REGIONS",
    "class_sens_spec",
    "dice",
    "hd95",
    "region_scores",
    "sens_spec_table",
    "sensitivity_specificity",
]

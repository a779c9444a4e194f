"""Scans at another voxel spacing than the model's: resample in, predict, resample back.

The model was trained at the spacing its manifest records (``"spacing"``, mm along X, Y, Z;
``MODEL_SPACING`` when it records none: BraTS is distributed at 1 mm isotropic).  A scan whose
header gives another spacing (clinical scans: often 1 x 1 x 3-5 mm, or 2 mm) is resampled to
the model's spacing (linear, per channel), predicted there, and its probabilities are resampled
(linear) back onto the scan's own grid, where they are thresholded into labels: the map always
has the input's shape and affine.  A scan at the model's spacing (within ``SPACING_RTOL``) is
predicted as it is, so its map is what it was before, voxel for voxel.  Slices thicker than
``THICK_SLICE_MM`` get a warning: the model has never seen anything like them.

The clean-up's sizes are voxel counts at the model's spacing; on another grid they are scaled
by the voxel volumes (``scaled_rules``), so a rule means the same millilitres everywhere.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from tumorseg.inference.postprocess import Postprocess
from tumorseg.inference.predict import predict_volume_spread

#: The model's spacing in mm (X, Y, Z) when its manifest records none.
MODEL_SPACING: tuple[float, float, float] = (1.0, 1.0, 1.0)
#: Relative tolerance under which a scan's spacing counts as the model's.
SPACING_RTOL = 1e-3
#: Slices (any axis) thicker than this, in mm, are warned about.
THICK_SLICE_MM = 6.0


class SpacingWarning(UserWarning):
    """A scan's spacing is far from anything the model was trained on."""


def model_spacing(model: Any = None, manifest: dict | None = None) -> tuple[float, float, float]:
    """The spacing (mm, X, Y, Z) the model was trained at: its manifest's ``"spacing"`` (the
    ``manifest`` given, else ``model.manifest``), ``MODEL_SPACING`` when none is recorded."""
    if manifest is None:
        manifest = getattr(model, "manifest", None) or {}
    value = manifest.get("spacing") or MODEL_SPACING
    if isinstance(value, int | float):
        value = (value, value, value)
    x, y, z = (float(v) for v in value)
    return x, y, z


def header_spacing(reference: Any) -> tuple[float, float, float]:
    """Voxel size in mm along X, Y, Z from a ``nibabel`` image's header."""
    zooms = reference.header.get_zooms()
    return float(zooms[0]), float(zooms[1]), float(zooms[2])


def needs_resampling(spacing: Sequence[float], target: Sequence[float]) -> bool:
    """True when ``spacing`` differs from ``target`` by more than ``SPACING_RTOL`` on an axis."""
    return not np.allclose(spacing, target, rtol=SPACING_RTOL, atol=0.0)


def check_spacing(spacing: Sequence[float], source: object = "the scan") -> None:
    """Warn (``SpacingWarning``) when a voxel side is thicker than ``THICK_SLICE_MM``."""
    thick = max(float(s) for s in spacing)
    if thick > THICK_SLICE_MM:
        warnings.warn(
            f"{source}: voxel size {tuple(round(float(s), 3) for s in spacing)} mm has sides "
            f"thicker than {THICK_SLICE_MM:g} mm; the model was trained on 1 mm scans, so its "
            f"map may be poor there. Check it, or use a scan with thinner slices.",
            SpacingWarning,
            stacklevel=2,
        )


def resampled_shape(
    shape: Sequence[int], spacing: Sequence[float], target: Sequence[float]
) -> tuple[int, int, int]:
    """The (X, Y, Z) shape covering the same extent at ``target`` spacing (at least 1)."""
    x, y, z = (max(1, round(n * s / t)) for n, s, t in zip(shape, spacing, target))
    return int(x), int(y), int(z)


def resize(volume: np.ndarray, shape: Sequence[int], order: int = 1) -> np.ndarray:
    """Resample the three spatial axes of ``volume`` (X, Y, Z) or (K, X, Y, Z) onto ``shape``
    (X, Y, Z) covering the same extent (voxel edges aligned: ``grid_mode``), spline ``order``
    (1: linear); float32."""
    from scipy import ndimage as ndi

    volume = np.asarray(volume, np.float32)
    if volume.ndim == 4:
        return np.stack([resize(v, shape, order) for v in volume])
    zoom = [t / s for t, s in zip(shape, volume.shape)]
    out = ndi.zoom(volume, zoom, order=order, grid_mode=True, mode="grid-constant")
    if out.shape != tuple(shape):  # rounding in zoom: pad or cut the last voxel
        fixed = np.zeros(tuple(shape), np.float32)
        common = tuple(slice(0, min(a, b)) for a, b in zip(out.shape, shape))
        fixed[common] = out[common]
        out = fixed
    return out


def predict_probabilities(
    image: np.ndarray,
    spacing: Sequence[float],
    model: Any,
    settings: Any = None,
    resample: bool = True,
    source: object = "the scan",
    spread: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The model's probabilities on the scan's grid, before clean-up, and its passes'
    disagreement.

    Args:
        image: (X, Y, Z, C) raw intensities, channels last.
        spacing: its voxel size in mm (X, Y, Z), from its header.
        model, settings: as ``predict_volume`` takes them (the settings' clean-up is not
            applied here).
        resample: resample a scan whose spacing differs from ``model_spacing(model)`` (False:
            predict it on its own grid, as if it were at the model's spacing).
        source: how warnings name the scan.
        spread: also measure the disagreement of the passes (mirror passes, ensemble members).

    Returns:
        ``(probs, ranges)``: (K, X, Y, Z) float32 probabilities on the scan's grid,
        ``predict_volume``'s, directly when no resampling is needed, else predicted on the
        resampled image and resampled back; ranges: ``predict_volume_spread``'s disagreement on
        the same grid (resampled the same way), None without ``spread`` or with a single pass.
    """
    check_spacing(spacing, source)
    target = model_spacing(model)
    options = {"settings": settings, "postprocess": Postprocess.NONE, "spread": spread}
    if not resample or not needs_resampling(spacing, target):
        return predict_volume_spread(image, model, **options)
    shape = resampled_shape(image.shape[:3], spacing, target)
    moved = np.moveaxis(resize(np.moveaxis(image, -1, 0), shape), 0, -1)
    probs, ranges = predict_volume_spread(moved, model, **options)
    del moved
    probs = np.clip(resize(probs, image.shape[:3]), 0.0, 1.0)
    if ranges is not None:
        ranges = np.clip(resize(ranges, image.shape[:3]), 0.0, 1.0)
    return probs, ranges


def scaled_rules(
    rules: Postprocess, spacing: Sequence[float], target: Sequence[float] = MODEL_SPACING
) -> Postprocess:
    """``rules`` with their voxel counts (``min_component``, ``min_enhancing``) scaled from
    voxels of ``target`` spacing to voxels of ``spacing``, so they keep their volume in mm^3;
    unchanged when the spacings match (``needs_resampling``)."""
    if not rules.active or not needs_resampling(spacing, target):
        return rules
    factor = math.prod(float(t) for t in target) / math.prod(float(s) for s in spacing)
    return Postprocess(
        min_component=int(round(rules.min_component * factor)),
        keep_fraction=rules.keep_fraction,
        min_enhancing=int(round(rules.min_enhancing * factor)),
    )

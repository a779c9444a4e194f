"""Whole-scan prediction: crop to the brain, standardize, tile, batch, blend, put back.

The model is fully convolutional, so a tile need not be 160x160x16: by default the whole
cropped brain goes through in one pass when it fits ``MAX_TILE_VOXELS``; otherwise it is cut
into overlapping axial slabs as deep as the training patches (``SLAB_DEPTH`` slices, the
brain's whole x-y extent; a BraTS brain crop: about ten), or into a few large tiles when a slab
does not fit.  Each tile is trimmed to the bounding box of the brain it holds, plus
``TRIM_MARGIN`` voxels of background (a slab near the top of the head is much smaller than one
through its middle), and overlapping tiles are blended with a Gaussian weight (nnU-Net style),
so tile borders, which see less context, count less.
"""

from __future__ import annotations

import functools
import itertools
import math
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from tumorseg.contract import N_CLASSES, PATCH_SIZE, RAW
from tumorseg.inference.postprocess import (
    apply_to_probabilities,
    extra_passes,
    mirrored,
    pass_count,
)
from tumorseg.inference.settings import InferenceSettings, resolve_settings
from tumorseg.patches.standardize import standardize_patch

#: Largest tile, in voxels, run in one forward pass when ``tile`` is not given.  About 0.9 GiB
#: of activations at n_base_filters=16 with oneDNN (0.6 GiB without), so a whole-scan
#: prediction keeps the course notebook within 3 GB on a laptop; a 240x240x155 brain crop
#: (3.3-4 M voxels) runs as about ten slabs of 16 slices (0.4-0.5 M voxels each before
#: trimming; ``benchmarks/bench_inference.py``).  The tile is made smaller still when the free memory is
#: short (see ``auto_max_voxels``); pass ``tile=`` for bigger ones.
MAX_TILE_VOXELS = 600_000

#: Smallest automatic tile budget, in voxels (about 64x64x64).
MIN_TILE_VOXELS = 250_000

#: Measured peak memory of one U-Net forward pass per input voxel with n_base_filters=16
#: (about 4 GiB for a 144x176x144 tile, TF 2.21 CPU); it scales with the filter count.
BYTES_PER_VOXEL_16 = 1200

#: Spatial sizes given to the model are multiples of this (2**(depth-1) for the course U-Net).
DIVISOR = 8

#: Depth (z slices) of the axial slabs a brain is cut into when it does not fit one tile: the
#: depth of the training patches.
SLAB_DEPTH = PATCH_SIZE[2]

#: Background voxels kept on each side of the brain when a tile is trimmed to the brain it
#: holds (``trim_tile``); beyond them the model sees its zero padding instead of more background.
#: 0 and 8 scored the same on the real validation patients (mean Dice within 0.002); 0 is about
#: 10 % faster.
TRIM_MARGIN = 0

#: ``tumour_tta``: a voxel is tumour for the extra passes where the first passes' mean of any
#: channel is above this (low, so a faint core or rim is in; far specks only widen a box).
TUMOUR_LEVEL = 0.1

#: ``tumour_tta``: each tile of the extra passes is trimmed to the tumour voxels it holds plus
#: this many voxels of context per side; their mean is averaged in within ``TUMOUR_BLEND``
#: voxels of those voxels (well inside the trimmed tile, away from its zero-padded edge).
TUMOUR_CONTEXT = 16
TUMOUR_BLEND = 4


def brain_bbox(image: np.ndarray) -> tuple[slice, slice, slice] | None:
    """Bounding box of the voxels that are nonzero in any channel.

    Args:
        image: (X, Y, Z, C) intensities.

    Returns:
        Three slices ``(sx, sy, sz)`` such that ``image[sx, sy, sz]`` holds every nonzero voxel,
        or ``None`` when the image is all zero.
    """
    return mask_bbox(np.any(image != 0, axis=-1))


def mask_bbox(mask: np.ndarray) -> tuple[slice, slice, slice] | None:
    """Bounding box of the True voxels of an (X, Y, Z) mask as three slices; None if none."""
    if not mask.any():
        return None
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return box[0], box[1], box[2]


def _round_up(n: int, k: int = DIVISOR) -> int:
    return max(k, -(-n // k) * k)


def _tile_size(size: int, n: int, overlap: float) -> int:
    """Tile length (multiple of DIVISOR) so that ``n`` tiles overlapping by ``overlap`` cover ``size``."""
    return _round_up(math.ceil(size / (n - (n - 1) * overlap)))


def auto_max_voxels(model: Any = None) -> int:
    """Voxels one forward pass may hold: ``MAX_TILE_VOXELS``, or less when free memory is short.

    Half the available memory (``psutil``) divided by the estimated bytes per voxel of a
    forward pass (``BYTES_PER_VOXEL_16`` scaled by the model's first convolution's filter count
    over 16), clipped to ``[MIN_TILE_VOXELS, MAX_TILE_VOXELS]``.  ``predict_volume`` sizes the
    tiles and caps the batch (tiles x batch) with it.
    """
    filters = 16
    for layer in getattr(model, "layers", ()):
        if isinstance(getattr(layer, "filters", None), int):
            filters = layer.filters
            break
    try:
        import psutil

        available = psutil.virtual_memory().available
    except (ImportError, OSError):
        return MAX_TILE_VOXELS
    per_voxel = BYTES_PER_VOXEL_16 * max(filters, 1) / 16
    return int(min(MAX_TILE_VOXELS, max(MIN_TILE_VOXELS, 0.5 * available / per_voxel)))


def plan_tiles(
    size: Sequence[int],
    tile: Sequence[int] | None = None,
    overlap: float = 0.25,
    max_voxels: int | None = None,
) -> tuple[tuple[int, int, int], list[list[int]]]:
    """Choose the tile size and the tile start positions along each axis.

    Args:
        size: (X, Y, Z) of the region to cover (the brain crop).
        tile: requested tile size; each entry is rounded up to a multiple of 8 and shrunk to the
            region (rounded up to 8).  ``None``: the whole region when it has at most
            ``max_voxels`` voxels; otherwise axial slabs of the region's whole x-y extent and
            ``SLAB_DEPTH`` slices when one fits ``max_voxels``; otherwise the region is split,
            largest axis first, into the fewest overlapping tiles that fit.
        overlap: fraction of a tile shared with its neighbour along an axis with several tiles.
        max_voxels: tile budget for ``tile=None`` (default ``MAX_TILE_VOXELS``).

    Returns:
        ``(tile_size, starts)``: ``tile_size`` (TX, TY, TZ); ``starts[a]`` the tile offsets along
        axis ``a``, from 0 to ``max(size[a], tile_size[a]) - tile_size[a]``.
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    size = [int(s) for s in size]
    if max_voxels is None:
        max_voxels = MAX_TILE_VOXELS
    if tile is None:
        n = [1, 1, 1]
        ts = [_tile_size(s, 1, overlap) for s in size]
        slab = [ts[0], ts[1], min(ts[2], SLAB_DEPTH)]
        if math.prod(ts) > max_voxels and math.prod(slab) <= max_voxels:
            ts = slab
        while math.prod(ts) > max_voxels and max(ts) > DIVISOR:
            a = int(np.argmax(ts))
            n[a] += 1
            ts[a] = _tile_size(size[a], n[a], overlap)
    else:
        if len(tile) != 3:
            raise ValueError(f"tile must be (TX, TY, TZ), got {tile}")
        ts = [min(_round_up(int(t)), _round_up(s)) for t, s in zip(tile, size)]
    starts = []
    for s, t in zip(size, ts):
        if t >= s:
            starts.append([0])
            continue
        step = max(1, int(t * (1.0 - overlap)))
        count = math.ceil((s - t) / step) + 1
        starts.append(sorted({int(round(v)) for v in np.linspace(0, s - t, count)}))
    return (ts[0], ts[1], ts[2]), starts


def gaussian_weight(tile: Sequence[int], sigma_scale: float = 0.125) -> np.ndarray:
    """Separable Gaussian importance map of a tile, peak 1 at the centre, floor 1e-6.

    Args:
        tile: (TX, TY, TZ).
        sigma_scale: sigma as a fraction of the tile length per axis (nnU-Net uses 1/8).

    Returns:
        (TX, TY, TZ) float32 weights.
    """
    axes = []
    for t in tile:
        c = (t - 1) / 2.0
        sigma = max(t * sigma_scale, 1e-3)
        axes.append(np.exp(-0.5 * ((np.arange(t) - c) / sigma) ** 2))
    w = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    return np.maximum(w / w.max(), 1e-6).astype(np.float32)


def _flexible(model: Any, n_channels: int, tile: tuple[int, int, int] | None) -> Any:
    """``model`` itself, or a wrapper accepting ``tile`` (``None``: any size) when it was built
    for one fixed size.

    A Keras functional model built for one input size (e.g. ``contract.INPUT_SHAPE``) rejects other
    sizes (its input spec); running its graph (``model.call``) on a new
    ``Input((C, None, None, None))`` gives a model that shares its layers and weights and
    accepts any size.
    """
    try:
        shape = model.input_shape
    except (AttributeError, ValueError):
        return model
    if not isinstance(shape, tuple) or len(shape) != 5:
        return model
    if tile is not None and all(s is None or s == t for s, t in zip(shape[2:], tile)):
        return model
    if all(s is None for s in shape[2:]):
        return model
    try:
        return _ANY_SIZE[model]
    except (KeyError, TypeError):
        pass
    import keras

    inp = keras.Input(shape=(n_channels, None, None, None), name="any_size_image")
    wrapper = keras.Model(inp, model.call(inp), name=f"{model.name}_any_size")
    try:  # reuse it (and its compiled predict function) on the next call
        _ANY_SIZE[model] = wrapper
    except TypeError:
        pass
    return wrapper


#: Any-size wrappers of fixed-size models, kept only as long as the model lives.
_ANY_SIZE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _run(model: Any, batch: np.ndarray) -> np.ndarray:
    if hasattr(model, "predict_on_batch"):
        out = model.predict_on_batch(batch)
    else:  # a plain callable (tests, custom wrappers)
        out = model(batch)
    return np.asarray(out, dtype=np.float32)


def predict_volume(
    image: np.ndarray,
    model: Any,
    overlap: float = 0.1,
    batch_size: int = 2,
    tile: Sequence[int] | None = None,
    settings: InferenceSettings | None = None,
    **changes: Any,
) -> np.ndarray:
    """Class probabilities for a whole scan.

    Steps: plan the tiles over the bounding box of the nonzero (brain) voxels (``plan_tiles``);
    cut that box out, extended with background to the tile grid (``cut_region``), and
    standardize it exactly as training did; trim each tile to the brain it holds, run the tiles
    through the model ``batch_size`` at a time (mirrored as ``settings.tta`` says) and blend
    overlapping tiles with a Gaussian weight (``sliding_window``); clean up the brain's box as
    ``settings.postprocess`` says and paste it into a zero volume (``paste_region``).

    Args:
        image: (X, Y, Z, C) raw intensities, channels last as ``load_case`` returns them
            (C = 4: FLAIR, T1, T1Gd, T2); any X, Y, Z.
        model: channels-first model ``(B, C, x, y, z) -> (B, K, x, y, z)`` probabilities, e.g. from
            ``unet_model_3d``/``load_pretrained``; a fixed-input-size Keras model is wrapped to
            accept other sizes.  Any callable returning an array also works.  An
            ``Ensemble`` (a manifest with ``members``) spreads the mirror passes over its
            members (``mirrored``): ``max(passes, members)`` forward passes per tile.
        overlap: fraction of a tile shared with its neighbour where an axis needs several tiles
            (ignored where one tile covers the axis).  The default 0.1 blends the seams of the
            slabs; more overlap costs time.
        batch_size: tiles per forward pass (capped so a batch fits ``auto_max_voxels``).
        tile: (TX, TY, TZ) tile size (rounded up to multiples of 8); ``None`` chooses the whole
            brain crop in one pass when it fits the budget of ``auto_max_voxels`` (at most
            ``MAX_TILE_VOXELS`` voxels, less when free memory is short), else axial slabs of
            ``SLAB_DEPTH`` slices (as deep as the training patches) across the crop's x-y
            extent, else a few large tiles (``plan_tiles``).
        settings: the ``InferenceSettings``; ``None``: those of the model's manifest
            (``resolve_settings``; ``load_pretrained`` attaches it), else the defaults.
            ``standardize`` must be what the model was trained with; ``tta`` averages the
            tiles' predictions over mirrored copies (2 or 8 passes); ``postprocess`` changes the
            returned probabilities so that ``probabilities_to_labels(probs, threshold)`` is the
            cleaned label map (``apply_to_probabilities``).
        **changes: settings to change for this call, by field name (``standardize``, ``tta``,
            ``postprocess``, ``threshold``), e.g. ``tta="none", postprocess=Postprocess.NONE``;
            None keeps the setting.

    Returns:
        (K, X, Y, Z) float32 probabilities (K = 3: edema, non-enhancing, enhancing); voxels
        outside the brain's bounding box are 0.
    """
    return _predict(image, model, overlap, batch_size, tile, settings, False, **changes)[0]


def predict_volume_spread(
    image: np.ndarray, model: Any, *, spread: bool = True, **options: Any
) -> tuple[np.ndarray, np.ndarray | None]:
    """``predict_volume``'s probabilities (K, X, Y, Z), the same values, and the disagreement of
    its passes (mirror passes and ensemble members, ``mirrored(..., spread=True)``): (K, X, Y, Z)
    float32, per channel the range of the passes' probabilities (for two passes their absolute
    difference), blended over tiles as the probabilities are; 0 outside the brain's box.  The
    disagreement is None when ``spread`` is False (it is then not computed) or when the
    settings and the model make a single pass (nothing to disagree).  The clean-up of the
    settings changes the probabilities only.  ``options``: ``predict_volume``'s arguments
    after ``model``, by name."""
    return _predict(image, model, spread=spread, **options)


def _predict(
    image: np.ndarray,
    model: Any,
    overlap: float = 0.1,
    batch_size: int = 2,
    tile: Sequence[int] | None = None,
    settings: InferenceSettings | None = None,
    spread: bool = False,
    **changes: Any,
) -> tuple[np.ndarray, np.ndarray | None]:
    """``predict_volume`` (see there), with the passes' disagreement when ``spread`` and there
    are several passes (else None)."""
    image = np.asarray(image)
    if image.ndim != 4:
        raise ValueError(f"expected an image (X, Y, Z, C), got shape {image.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    settings = resolve_settings(model, settings, **changes)
    members = getattr(model, "members", None) or [model]  # an Ensemble's, or the model
    spread = spread and pass_count(len(members), settings.tta) > 1
    box = brain_bbox(image)
    if box is None:
        empty = np.zeros((_n_outputs(model), *image.shape[:3]), np.float32)
        return empty, (np.zeros_like(empty) if spread else None)

    size = [s.stop - s.start for s in box]
    budget = auto_max_voxels(model)
    tile_size, starts = plan_tiles(size, tile, overlap, budget if tile is None else None)
    # batch as many tiles as the memory budget allows, up to batch_size
    batch_size = max(1, min(batch_size, budget // math.prod(tile_size)))
    region, origin = cut_region(image, box, tile_size)
    brain = np.any(region != 0, axis=0)
    work = _standardized(region, settings.standardize)
    del region  # the raw copy (when standardized): not kept through the model's passes
    # trimmed tiles come in several sizes; an ensemble's members share the mirror passes
    nets = [_flexible(m, image.shape[-1], None) for m in members]
    predictors = [functools.partial(_run, net) for net in nets]
    run = mirrored(predictors, settings.tta, spread)
    probs = sliding_window(work, run, tile_size, starts, batch_size, mask=brain)
    more = extra_passes(len(nets), settings.tumour_tta, settings.tta)
    if more:
        first = probs.shape[0] // 2 if spread else probs.shape[0]
        tumour = brain & (probs[:first].max(axis=0) > TUMOUR_LEVEL)
        done = pass_count(len(nets), settings.tta)
        extra = mirrored(predictors, settings.tumour_tta, passes=more)
        add_tumour_passes(
            probs[:first], work, extra, (done, len(more)), tumour, (tile_size, starts, batch_size)
        )
    del work, brain  # the model's input: the clean-up and the paste need only the output
    ranges = None
    if spread:  # the mean's channels, then their ranges (mirrored)
        half = probs.shape[0] // 2
        ranges = paste_region(probs[half:], box, origin, image.shape[:3])
        probs = probs[:half]
    rules = settings.postprocess
    if rules.active:  # in the brain's box: outside it every class is 0, so nothing changes there
        inner = tuple(slice(b.start - o, b.stop - o) for b, o in zip(box, origin))
        probs = apply_to_probabilities(
            probs[(slice(None), *inner)], rules, settings.threshold, settings.outputs
        )
        origin = (box[0].start, box[1].start, box[2].start)
    return paste_region(probs, box, origin, image.shape[:3]), ranges


def cut_region(
    image: np.ndarray, box: tuple[slice, slice, slice], tile_size: Sequence[int]
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Cut the model's region out of a scan, as raw intensities: crop and extend with background.

    Args:
        image: (X, Y, Z, C) raw intensities.
        box: the region to cover, e.g. ``brain_bbox(image)``.
        tile_size: (TX, TY, TZ); the region is widened symmetrically to at least this size
            along each axis, and whatever then lies outside the image is zero (background),
            like the image's own border.

    Returns:
        ``(region, origin)``: region (C, EX, EY, EZ) float32 channels-first, ``EX = max(box
        size, TX)`` ...; origin the image coordinates of ``region[:, 0, 0, 0]`` (may be
        negative).
    """
    size = [s.stop - s.start for s in box]
    extent = [max(s, int(t)) for s, t in zip(size, tile_size)]
    origin = tuple(b.start - (e - s) // 2 for b, e, s in zip(box, extent, size))
    region = np.zeros((image.shape[-1], *extent), np.float32)
    src, dst = [], []
    for o, e, dim in zip(origin, extent, image.shape[:3]):
        lo, hi = max(o, 0), min(o + e, dim)
        src.append(slice(lo, hi))
        dst.append(slice(lo - o, hi - o))
    region[(slice(None), *dst)] = np.moveaxis(image[tuple(src)], -1, 0)
    return region, (origin[0], origin[1], origin[2])


def prepare_region(
    image: np.ndarray, box: tuple[slice, slice, slice], tile_size: Sequence[int], mode: str
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Cut the model's input out of a scan: ``cut_region``, then standardize.

    Args:
        image, box, tile_size: as for ``cut_region``.
        mode: ``standardize_patch`` mode, or "none" for raw intensities.

    Returns:
        ``(work, origin)``: the standardized region (C, EX, EY, EZ) float32 and its origin, as
        ``cut_region`` returns them.
    """
    work, origin = cut_region(image, box, tile_size)
    return _standardized(work, mode), origin


def _standardized(region: np.ndarray, mode: str) -> np.ndarray:
    if mode == RAW:
        return region
    return standardize_patch(region, mode).astype(np.float32, copy=False)


def trim_tile(
    mask: np.ndarray,
    corner: Sequence[int],
    tile_size: Sequence[int],
    margin: int = TRIM_MARGIN,
) -> tuple[tuple[int, int, int], tuple[int, int, int]] | None:
    """The part of a tile worth predicting: the brain it holds, with some background around.

    Args:
        mask: (EX, EY, EZ) bool, True on brain voxels (nonzero input).
        corner: the tile's first voxel (i, j, k) in ``mask``.
        tile_size: (TX, TY, TZ), multiples of ``DIVISOR``.
        margin: background voxels kept on each side of the brain's bounding box in the tile.

    Returns:
        ``(start, size)`` of a box inside the tile: the bounding box of ``mask`` in the tile,
        widened by ``margin`` per side and then to a multiple of ``DIVISOR`` (about its centre,
        kept inside the tile); ``None`` when the tile holds no brain voxel.
    """
    box = mask_bbox(mask[_slices(corner, tile_size)])
    if box is None:
        return None
    start, size = [], []
    for c, t, hit in zip(corner, tile_size, box):
        t = int(t)
        length = min(_round_up(hit.stop - hit.start + 2 * margin), t)
        lo = min(max((hit.start + hit.stop - length) // 2, 0), t - length)
        start.append(int(c) + lo)
        size.append(length)
    return (start[0], start[1], start[2]), (size[0], size[1], size[2])


def sliding_window(
    work: np.ndarray,
    predict: Callable[[np.ndarray], np.ndarray],
    tile_size: Sequence[int],
    starts: Sequence[Sequence[int]],
    batch_size: int = 1,
    mask: np.ndarray | None = None,
    margin: int = TRIM_MARGIN,
) -> np.ndarray:
    """Run ``predict`` over overlapping tiles of ``work`` and blend them into one map.

    Args:
        work: (C, EX, EY, EZ) model input (``prepare_region``); not modified.
        predict: maps a batch (B, C, x, y, z) to (B, K, x, y, z) float32; x, y, z are the tile
            size, or smaller where ``mask`` trims a tile.
        tile_size: (TX, TY, TZ), at most ``work``'s spatial size.
        starts: tile offsets per axis (``plan_tiles``); tiles must cover ``work``.
        batch_size: tiles per ``predict`` call (tiles of one size go together).
        mask: (EX, EY, EZ) bool brain mask, or ``None``.  When given, each tile is trimmed to
            the brain it holds (``trim_tile`` with ``margin``) and a tile with no brain voxel is
            skipped; voxels that no trimmed tile covers get probability 0.
        margin: background kept around the brain in a trimmed tile.

    Returns:
        (K, EX, EY, EZ) float32: one tile's output where a single tile covers ``work``, else the
        Gaussian-weighted mean (``gaussian_weight`` of the whole tile, cut to the trimmed part)
        of the tiles covering each voxel.
    """
    tile = tuple(int(t) for t in tile_size)
    extent = work.shape[1:]
    corners = [(i, j, k) for i in starts[0] for j in starts[1] for k in starts[2]]
    # (corner, start, size) of each part to predict: whole tiles, or trimmed to the brain
    parts = []
    for corner in corners:
        box = (corner, tile) if mask is None else trim_tile(mask, corner, tile, margin)
        if box is not None:
            parts.append((corner, *box))
    single = len(corners) == 1
    weight = None if single else gaussian_weight(tile)
    acc: np.ndarray | None = None
    wsum = None if single else np.zeros(extent, np.float32)
    batches = list(_same_size_batches(parts, batch_size))
    for batch in _progress(batches):
        pred = predict(np.stack([work[(slice(None), *_slices(a, n))] for _, a, n in batch]))
        if acc is None:
            acc = np.zeros((pred.shape[1], *extent), np.float32)
        for (corner, start, size), p in zip(batch, pred):
            region = _slices(start, size)
            if single:
                acc[(slice(None), *region)] = p
                continue
            w = weight[_slices([a - c for a, c in zip(start, corner)], size)]
            acc[(slice(None), *region)] += p * w
            wsum[region] += w
    if acc is None:  # no tile held a brain voxel
        return np.zeros((N_CLASSES, *extent), np.float32)
    if not single:
        np.divide(acc, wsum, out=acc, where=wsum > 0)
    return acc


def add_tumour_passes(
    probs: np.ndarray,
    work: np.ndarray,
    predict: Callable[[np.ndarray], np.ndarray],
    counts: tuple[int, int],
    tumour: np.ndarray,
    plan: tuple[Sequence[int], Sequence[Sequence[int]], int],
) -> None:
    """Average more passes into ``probs`` where the tumour is, in place.

    probs: (K, EX, EY, EZ) mean of the first ``counts[0]`` passes over ``work`` (C, EX, EY, EZ);
    predict: the mean of ``counts[1]`` more passes of a batch (``mirrored(..., passes=)``);
    tumour: (EX, EY, EZ) bool, where the first passes found tumour (nothing to do if empty);
    plan: ``(tile_size, starts, batch_size)`` of the first passes.  Each tile is trimmed to the
    tumour it holds plus ``TUMOUR_CONTEXT`` voxels (``sliding_window`` with the tumour as its
    mask); inside each tile's box of the tumour widened by ``TUMOUR_BLEND`` voxels (to a
    multiple of 8, ``trim_tile``) the result is the mean of all ``sum(counts)`` passes,
    elsewhere ``probs`` is unchanged.
    """
    if not tumour.any():
        return
    tile_size, starts, batch_size = plan
    extra = sliding_window(
        work, predict, tile_size, starts, batch_size, mask=tumour, margin=TUMOUR_CONTEXT
    )
    blend = np.zeros(tumour.shape, bool)
    for corner in itertools.product(*starts):
        box = trim_tile(tumour, corner, tile_size, TUMOUR_BLEND)
        if box is not None:
            blend[_slices(*box)] = True
    done, more = counts
    total = done + more
    probs[:, blend] = (done * probs[:, blend] + more * extra[:, blend]) / total


def _same_size_batches(parts: list, size: int) -> Iterator[list]:
    """Consecutive runs of ``parts`` ((corner, start, size) triples) of one tile size, at most
    ``size`` long: a batch stacks tiles of one shape."""
    batch: list = []
    for part in parts:
        if batch and (len(batch) == size or part[2] != batch[0][2]):
            yield batch
            batch = []
        batch.append(part)
    if batch:
        yield batch


def _slices(start: Sequence[int], size: Sequence[int]) -> tuple[slice, slice, slice]:
    return tuple(slice(int(a), int(a) + int(n)) for a, n in zip(start, size))  # type: ignore[return-value]


def paste_region(
    probs: np.ndarray,
    box: tuple[slice, slice, slice],
    origin: Sequence[int],
    shape: Sequence[int],
) -> np.ndarray:
    """Put the ``box`` part of ``probs`` (K, EX, EY, EZ), whose voxel 0 sits at ``origin``,
    into a zero volume (K, X, Y, Z) of spatial ``shape``; returns float32."""
    out = np.zeros((probs.shape[0], *shape), np.float32)
    inner = tuple(slice(b.start - o, b.stop - o) for b, o in zip(box, origin))
    out[(slice(None), *box)] = probs[(slice(None), *inner)]
    return out


def _n_outputs(model: Any) -> int:
    shape = getattr(model, "output_shape", None)
    if isinstance(shape, tuple) and len(shape) == 5 and shape[1]:
        return int(shape[1])
    return N_CLASSES


def _progress(batches: list[list]) -> Iterator[list]:
    if len(batches) < 2:
        return iter(batches)
    from tqdm.auto import tqdm

    return tqdm(batches, desc="predict", unit="batch", leave=False)

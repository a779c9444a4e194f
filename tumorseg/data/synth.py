"""Synthetic MSD Task01-style brain-tumour dataset (``tumorseg synth``).

Every case is a deformed MNI ICBM152 2009a brain (see ``anatomy``) with a glioma drawn into
it (see ``tumor``), rendered as the four MSD Task01 modalities FLAIR, T1w, T1Gd (t1gd) and
T2w, with scanner effects: a smooth multiplicative bias field, Rician noise and a random
global intensity scale per modality.  Output follows the MSD layout exactly::

    OUT/imagesTr/BRATS_001.nii.gz   (240, 240, 155, 4) int16, identity affine, 1 mm voxels
    OUT/labelsTr/BRATS_001.nii.gz   (240, 240, 155) uint8, 0 bg / 1 edema / 2 non-enh / 3 enh
    OUT/dataset.json                MSD keys; the description says the data are synthetic

A case depends only on (seed, index): ``np.random.default_rng([seed, index])``.  Randomized
cases (``--randomize``) have their own stream, and so has each hard-case kind (``--hard``,
see ``HardCase``): with kinds K_0 .. K_{n-1}, case ``index`` is of kind K_{index mod n}.
Writes are atomic, and a rerun skips the cases that are already valid.
"""

from __future__ import annotations

import functools
import gzip
import json
import multiprocessing
import os
import struct
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi
from threadpoolctl import threadpool_limits

from tumorseg.atomic import write_bytes
from tumorseg.data.anatomy import (
    COARSE,
    CROP,
    GRID,
    coarse_nodes,
    coarse_shape,
    crop_shape,
    load_atlas,
    mass_effect,
    random_warp,
    sample_atlas,
    upsample,
)
from tumorseg.data.tumor import (
    CSF,
    GM,
    WM,
    HardCase,
    TumorSpec,
    add_satellites,
    draw_tumor,
    hard_spec,
    random_spec,
    smooth_noise,
)
from tumorseg.labels import CLASS_KEYS, MSD_MODALITY_NAMES

VERSION = "synth-v9"  # bump when the output changes: a rerun then regenerates old cases
REGIONS = ("csf", "gm", "wm", *CLASS_KEYS)
GZIP_LEVEL = 4  # level 6 saves ~1 % of size for ~30 % more time

DATASET_JSON = {
    "name": "BRATS",
    "description": (
        "SYNTHETIC gliomas for teaching, in the layout of the Medical Segmentation Decathlon "
        "Task01_BrainTumour. These are NOT patient scans: each case is the MNI ICBM152 2009a "
        "symmetric template (Fonov et al., NeuroImage 2011 and 2009; Copyright (C) 1993-2004 "
        "Louis Collins, McConnell Brain Imaging Centre, Montreal Neurological Institute, McGill "
        "University), randomly deformed, with a simulated tumour and MRI contrasts, made by "
        "tumorseg synth."
    ),
    "reference": "tumorseg synthetic data; anatomy: MNI ICBM152 2009a (Fonov et al. 2011)",
    "licence": "CC-BY-SA 4.0 (synthetic data); MNI ICBM152 notice in tumorseg/data/mni/NOTICE.txt",
    "release": "tumorseg synth " + VERSION,
    "tensorImageSize": "4D",
    "modality": {str(i): name for i, name in enumerate(MSD_MODALITY_NAMES)},
    # spelled exactly as in the real MSD Task01 dataset.json ("tumor", then "tumour")
    "labels": {
        "0": "background",
        "1": "edema",
        "2": "non-enhancing tumor",
        "3": "enhancing tumour",
    },
}


@dataclass
class SynthCase:
    """One synthetic case.

    image: (240, 240, 155, 4) float32, channels FLAIR, T1w, T1Gd, T2w; integer-valued
        (exactly what is stored as int16), 0 outside the brain.
    label: (240, 240, 155) uint8, 0 background / 1 edema / 2 non-enhancing / 3 enhancing.
    tissue: (240, 240, 155) uint8 healthy anatomy under the tumour, 0 outside / 1 CSF /
        2 GM / 3 WM (for tests and analysis; not written to disk).
    contrasts: healthy tissue ("csf", "gm", "wm": relative to white matter) and tumour
        ("edema", "non_enhancing", "enhancing": z-scores over healthy brain) contrasts, each (4,).
    """

    image: np.ndarray
    label: np.ndarray
    tissue: np.ndarray
    contrasts: dict[str, np.ndarray]


def case_name(index: int) -> str:
    """MSD file stem of the case with 0-based ``index``: 0 -> 'BRATS_001'."""
    return f"BRATS_{index + 1:03d}"


def random_contrasts(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Course-style per-case contrasts, each (4,) over FLAIR, T1w, T1Gd, T2w.

    "csf", "gm", "wm": healthy-tissue intensities relative to white matter (wm = 1); the
    contrast of each tissue to white matter varies by about +-30-50 % from case to case.
    "edema", "non_enhancing", "enhancing": wanted tumour intensities in healthy-tissue SD units (z-scores
    over the healthy brain), drawn around what real BraTS scans show; rendering clamps them
    so the BraTS orderings hold.
    """
    u = rng.uniform
    c = {"wm": np.ones(4, np.float32)}
    c["gm"] = np.array([u(1.08, 1.32), u(0.86, 0.95), u(0.82, 0.93), u(1.12, 1.42)], np.float32)
    c["csf"] = np.array([u(0.2, 0.55), u(0.2, 0.5), u(0.2, 0.5), u(2.0, 3.2)], np.float32)
    c["edema"] = np.array([u(1.8, 3.4), u(-0.3, 0.1), u(-0.95, -0.4), u(0.6, 1.8)], np.float32)
    c["non_enhancing"] = np.array(
        [u(0.9, 2.0), u(-0.5, 0.0), u(-0.85, -0.35), u(0.4, 1.4)], np.float32
    )
    c["enhancing"] = np.array([u(0.7, 1.9), u(-0.5, 0.0), u(1.4, 2.6), u(0.4, 1.3)], np.float32)
    return c


def random_contrasts_wide(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Domain-randomized per-case contrasts: the keys and units of ``random_contrasts``, drawn
    from wide ranges in which the usual orderings often break (faint or very bright edema,
    faint to strong enhancement, necrosis from dark to isointense, low grey/white contrast).
    """
    u = rng.uniform

    def draw(*ranges: tuple[float, float]) -> np.ndarray:
        return np.array([u(lo, hi) for lo, hi in ranges], np.float32)

    c = {"wm": np.ones(4, np.float32)}
    c["gm"] = draw((0.85, 1.5), (0.6, 1.05), (0.6, 1.05), (0.9, 1.6))
    c["csf"] = draw((0.1, 0.9), (0.1, 0.7), (0.1, 0.8), (1.3, 3.5))
    c["edema"] = draw((0.3, 4.0), (-1.5, 0.5), (-1.5, 0.5), (0.3, 3.0))
    c["non_enhancing"] = draw((-0.5, 3.0), (-2.5, 0.3), (-2.5, 0.3), (0.0, 3.5))
    c["enhancing"] = draw((-0.5, 2.5), (-1.5, 0.5), (0.3, 4.5), (-0.5, 2.0))
    return c


@dataclass(frozen=True)
class Style:
    """How one case looks: its contrasts and scanner effects, drawn per case.

    Per-modality fields are (4,) arrays over FLAIR, T1w, T1Gd, T2w.
    contrasts: as ``random_contrasts``; ordered: clamp tumour intensities so the BraTS
    orderings hold; sharpen: exponent on the tissue probabilities (partial volume);
    het_gain: scale of the tumour-intensity heterogeneity; show_through: fraction of the
    healthy anatomy visible through edema; enh_patchy: 0 uniform to 1 patchy enhancement;
    tex_amp, grain_amp: fine multiplicative texture; bias_sd: log-SD of the bias field;
    noise_frac: Rician noise SD over the mean brain intensity; vessel_amp: cortical vessels on
    T1Gd (healthy SD units); blur_sd: in-plane Gaussian blur (mm); thickness: slice thickness
    along z (mm, resampled back to 1 mm); gamma: intensity gamma; scale: mean brain intensity.
    """

    contrasts: dict[str, np.ndarray]
    ordered: bool
    sharpen: float
    het_gain: float
    show_through: np.ndarray
    enh_patchy: float
    tex_amp: float
    grain_amp: np.ndarray
    bias_sd: np.ndarray
    noise_frac: np.ndarray
    vessel_amp: float
    blur_sd: np.ndarray
    thickness: np.ndarray
    gamma: np.ndarray
    scale: np.ndarray


def course_style(rng: np.random.Generator) -> Style:
    """The course's sample-data look: BraTS-like contrasts and mild scanner effects."""
    u = rng.uniform
    return Style(
        contrasts=random_contrasts(rng),
        ordered=True,
        sharpen=u(1.3, 2.0),
        het_gain=1.0,
        show_through=np.array([0.3, 0.15, 0.15, 0.3], np.float32),
        enh_patchy=0.0,
        tex_amp=u(0.015, 0.035),
        grain_amp=u(0.016, 0.036) * np.array([1.0, 0.6, 0.9, 0.8], np.float32),
        bias_sd=u(0.05, 0.12, size=4),
        noise_frac=u(0.003, 0.007) * np.array([1.0, 0.6, 0.9, 0.9]),
        vessel_amp=u(1.0, 4.0),
        blur_sd=np.zeros(4),
        thickness=np.ones(4, int),
        gamma=np.ones(4),
        scale=u(260.0, 600.0, size=4),
    )


def randomized_style(rng: np.random.Generator) -> Style:
    """A domain-randomized look (for training data): wide contrasts, orderings kept in only
    30 % of cases, and strong, varied scanner effects (bias, noise, grain, blur, thick slices,
    gamma)."""
    u = rng.uniform
    return Style(
        contrasts=random_contrasts_wide(rng),
        ordered=bool(rng.random() < 0.3),
        sharpen=u(0.8, 2.2),
        het_gain=u(0.4, 2.0),
        show_through=u(0.05, 0.6, size=4),
        enh_patchy=u(0.0, 1.0) if rng.random() < 0.6 else 0.0,
        tex_amp=u(0.01, 0.06),
        grain_amp=u(0.0, 0.05, size=4),
        bias_sd=u(0.03, 0.35, size=4),
        noise_frac=u(0.002, 0.035) * u(0.5, 1.2, size=4),
        vessel_amp=u(0.0, 5.0),
        blur_sd=u(0.0, 1.0, size=4) * (rng.random(4) < 0.5),
        thickness=rng.choice([1, 1, 2, 3, 4, 5], size=4),
        gamma=np.exp(u(-0.5, 0.5, size=4)),
        scale=u(200.0, 1500.0, size=4),
    )


def hard_style(rng: np.random.Generator, style: Style, kind: HardCase) -> Style:
    """``style`` (a randomized look) with the tumour contrasts of hard-case ``kind``.

    THIN_RIM: clearly enhancing rim (T1Gd +1.5 to +4.5 SD) around dark necrosis (T1Gd -2.5
    to -0.3 SD).  LOW_GRADE: faint enhancement (T1Gd +0.3 to +1.2 SD) and a non-enhancing
    tumour bright on FLAIR and T2, dark on T1, not enhancing on T1Gd.  SMALL: unchanged.
    """
    u = rng.uniform
    con = {k: v.copy() for k, v in style.contrasts.items()}
    if kind is HardCase.THIN_RIM:
        con["enhancing"][2] = u(1.5, 4.5)
        con["non_enhancing"][2] = u(-2.5, -0.3)
    elif kind is HardCase.LOW_GRADE:
        con["enhancing"][2] = u(0.3, 1.2)
        con["non_enhancing"] = np.array(
            [u(1.0, 3.0), u(-2.0, -0.3), u(-1.5, 0.0), u(1.0, 3.5)], np.float32
        )
    return replace(style, contrasts=con)


def hard_kind(kinds: Sequence[HardCase], index: int) -> HardCase | None:
    """The hard-case kind of case ``index`` when the dataset cycles through ``kinds``
    (None when ``kinds`` is empty: an ordinary case)."""
    return kinds[int(index) % len(kinds)] if len(kinds) else None


def order_tumor_z(m: int, z: dict[str, float], tz: dict[str, float]) -> dict[str, float]:
    """Clamp tumour z-scores ``z`` (edema/core/enh) of modality ``m`` against the measured
    healthy tissue z-scores ``tz`` (csf/gm/wm) so the BraTS orderings hold with a margin.
    """
    z = dict(z)
    lo = tz["csf"] + 0.6  # CSF darkest (FLAIR, T1, T1Gd)
    if m == 0:  # FLAIR: edema > core > GM > WM
        z["non_enhancing"] = max(z["non_enhancing"], tz["gm"] + 0.4)
        z["edema"] = max(z["edema"], z["non_enhancing"] + 0.45)
        z["enhancing"] = max(z["enhancing"], lo)
    elif m == 1:  # T1: WM > GM > tumour
        for r in ("edema", "non_enhancing", "enhancing"):
            z[r] = max(min(z[r], tz["gm"] - 0.08), lo)
    elif m == 2:  # T1Gd: enh > WM > GM > core
        z["enhancing"] = max(z["enhancing"], tz["wm"] + 0.8)
        z["non_enhancing"] = max(min(z["non_enhancing"], tz["gm"] - 0.2), lo)
        z["edema"] = max(z["edema"], lo)
    else:  # T2: CSF > edema > GM
        z["edema"] = min(max(z["edema"], tz["gm"] + 0.4), tz["csf"] - 0.4)
    return z


def visible_tumor_z(m: int, z: dict[str, float], tz: dict[str, float]) -> dict[str, float]:
    """The only clamps of a randomized case: edema at least +0.3 SD over white matter on FLAIR,
    and enhancement at least +0.3 SD over white matter on T1Gd (faint, but there)."""
    z = dict(z)
    if m == 0:
        z["edema"] = max(z["edema"], tz["wm"] + 0.3)
    elif m == 2:
        z["enhancing"] = max(z["enhancing"], tz["wm"] + 0.3)
    return z


# Orderings of region means (higher, lower) per modality that involve a tumour region.
ORDER_PAIRS = {
    0: [("edema", "non_enhancing"), ("non_enhancing", "gm"), ("enhancing", "csf")],
    1: [
        ("gm", "edema"),
        ("gm", "non_enhancing"),
        ("gm", "enhancing"),
        ("edema", "csf"),
        ("non_enhancing", "csf"),
        ("enhancing", "csf"),
    ],
    2: [("enhancing", "wm"), ("gm", "non_enhancing"), ("edema", "csf"), ("non_enhancing", "csf")],
    3: [("csf", "edema"), ("edema", "gm")],
}
_LABEL_OF = {key: v for v, key in enumerate(CLASS_KEYS, start=1)}


def _enforce_order(
    m: int,
    sub: np.ndarray,
    lab_b: np.ndarray,
    soft: dict[str, np.ndarray],
    mult_b: np.ndarray,
    tz: dict[str, float],
    mean_h: float,
    sd_h: float,
    margin: float = 0.2,
) -> None:
    """Shift tumour-region intensities in ``sub`` (the tumour box, in place) until the
    measured region means keep the BraTS orderings of modality ``m`` by ``margin`` SD.

    Partial-volume blending at region borders moves the measured means away from the wanted
    ones, so the wanted z-scores alone do not guarantee the orderings.
    """
    tissue_mean = {t: mean_h + sd_h * tz[t] for t in ("csf", "gm", "wm")}
    for _ in range(4):
        means = dict(tissue_mean)
        for r, v in _LABEL_OF.items():
            sel = lab_b == v
            means[r] = float(sub[sel].mean()) if sel.any() else np.nan
        changed = False
        for hi, lo in ORDER_PAIRS[m]:
            gap = means[hi] - means[lo] - margin * sd_h
            if not gap < 0:  # also skips NaN
                continue
            r, sign = (hi, 1.0) if hi in _LABEL_OF else (lo, -1.0)
            sel = lab_b == _LABEL_OF[r]
            weight = float((soft[r] * mult_b)[sel].mean())
            sub += soft[r] * mult_b * (sign * (-gap) * 1.1 / weight)
            means[r] += sign * (-gap) * 1.1
            changed = True
        if not changed:
            return


# ----------------------------------------------------------------------------- anatomy


@dataclass
class Anatomy:
    """One deformed brain in the output box ``CROP`` (shape ``crop_shape()``).

    bidx: flat indices of the brain voxels in the box; tissue: (X, Y, Z) uint8 map, 0 outside
    / CSF / GM / WM; tis1: the tissue codes at ``bidx``; csf, gm, wm: tissue probabilities at
    ``bidx`` (1D float32, summing to <= 1); spec: the tumour to draw, centred in the box.
    """

    bidx: np.ndarray
    tissue: np.ndarray
    tis1: np.ndarray
    csf: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    spec: TumorSpec


@functools.lru_cache(maxsize=1)
def periventricular_seeds() -> np.ndarray:
    """(N, 3) atlas tumour seeds (``Atlas.seeds``) 3-10 mm from a lateral ventricle: CSF
    (grey + white matter probability under 0.3) more than 20 mm inside the brain."""
    atlas = load_atlas()
    brain = atlas.brain[::2, ::2, ::2] > 0.5
    csf = brain & (atlas.gm[::2, ::2, ::2] + atlas.wm[::2, ::2, ::2] < 0.3)
    ventricle = csf & (ndi.distance_transform_edt(brain) * 2.0 > 20.0)
    dist = ndi.distance_transform_edt(~ventricle) * 2.0  # mm
    idx = np.minimum(np.rint(atlas.seeds / 2.0).astype(int), np.array(dist.shape) - 1)
    d = dist[idx[:, 0], idx[:, 1], idx[:, 2]]
    return atlas.seeds[(d >= 3.0) & (d <= 10.0)]


def _anatomy(rng: np.random.Generator, randomize: bool, hard: HardCase | None = None) -> Anatomy:
    """Warp the atlas into the box (with the mass effect of a tumour drawn at a random
    white-matter seed) and keep ``Z_MARGIN`` empty slices at each end of the volume.
    A hard case draws its tumour with ``hard_spec``; a SMALL one sits beside a ventricle in
    half the cases."""
    atlas = load_atlas()
    shp = crop_shape()
    origin = np.array([s.start for s in CROP], np.float32)
    q, lin = random_warp(rng, atlas, z_shift=rng.uniform(9.0, 13.0))
    nodes = coarse_nodes()
    seeds = atlas.seeds
    if hard is HardCase.SMALL and rng.random() < 0.5:
        seeds = periventricular_seeds()
    target = seeds[rng.integers(len(seeds))]
    k = np.argmin(((q - target[:, None, None, None].astype(np.float32)) ** 2).sum(0))
    centre = nodes.reshape(3, -1)[:, k]  # output-grid voxel coordinates
    if hard is None:
        spec = random_spec(rng, centre - origin, wide=randomize)
    else:
        spec = hard_spec(rng, centre - origin, hard)
    push = mass_effect(nodes, centre, rng.uniform(0.45, 0.8) * spec.r_core, 2.2 * spec.r_core + 12)
    q += np.einsum("ij,j...->i...", lin, push).astype(np.float32)
    maps = sample_atlas(atlas, q, shp)
    del q, push, nodes
    brain = maps["brain"] > 0.5
    z0 = CROP[2].start
    brain[..., : max(Z_MARGIN - z0, 0)] = False
    brain[..., GRID[2] - Z_MARGIN - z0 :] = False
    bidx = np.flatnonzero(brain)
    gm = maps["gm"].reshape(-1)[bidx]
    wm = maps["wm"].reshape(-1)[bidx]
    del maps
    tot = gm + wm
    over = tot > 1.0
    gm[over] /= tot[over]
    wm[over] /= tot[over]
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0)
    tis1 = np.where((csf >= gm) & (csf >= wm), CSF, np.where(gm >= wm, GM, WM)).astype(np.uint8)
    tissue = np.zeros(shp, np.uint8)
    tissue.reshape(-1)[bidx] = tis1
    return Anatomy(bidx, tissue, tis1, csf, gm, wm, spec)


def _tumor_labels(
    rng: np.random.Generator, anat: Anatomy, randomize: bool, hard: HardCase | None = None
) -> np.ndarray:
    """(X, Y, Z) uint8 labels of the box: the main tumour and, for randomized cases, sometimes
    a second focus, satellite edema islands, no enhancement or no necrosis.  A hard case
    keeps its one tumour as drawn (satellite edema islands sometimes, never for SMALL)."""
    label = draw_tumor(rng, anat.spec, anat.tissue)
    if not randomize:
        return label
    if hard is not None:
        if hard is not HardCase.SMALL and rng.random() < 0.3:
            label = add_satellites(rng, label, anat.tissue, anat.spec, int(rng.integers(1, 4)))
        return label
    if rng.random() < 0.2:  # multifocal: a smaller second tumour 25-60 mm away, in white matter
        wm = np.argwhere(anat.tissue[::3, ::3, ::3] == WM) * 3
        dist = np.linalg.norm(wm - anat.spec.centre, axis=1)
        near = wm[(dist > 25.0) & (dist < 60.0)]
        if len(near):
            centre = near[rng.integers(len(near))].astype(np.float32)
            spec2 = random_spec(rng, centre, wide=True, wt_scale=rng.uniform(0.1, 0.4))
            second = draw_tumor(rng, spec2, anat.tissue)
            label = np.where(label == 0, second, label)
    if rng.random() < 0.3:
        label = add_satellites(rng, label, anat.tissue, anat.spec, int(rng.integers(1, 4)))
    variant = rng.random()
    if variant < 0.08:  # non-enhancing tumour only
        label[label == 3] = 2
    elif variant < 0.18:  # solid enhancing tumour without necrosis
        label[label == 2] = 3
    return label


# ----------------------------------------------------------------------------- rendering


def _render_modality(
    m: int,
    rng: np.random.Generator,
    style: Style,
    anat: Anatomy,
    probs: list[np.ndarray],
    tumor: dict,
    fields: dict,
) -> np.ndarray:
    """Intensities of the brain voxels (1D, at ``anat.bidx``) of modality ``m``, before
    noise: tissue mixture x bias x grain, with the tumour regions set in healthy-SD units."""
    shp = anat.tissue.shape
    con = style.contrasts
    bias_coarse = ndi.gaussian_filter(
        rng.standard_normal(fields["tex_coarse"].shape).astype(np.float32), 4.0
    )
    bias_coarse *= style.bias_sd[m] / (bias_coarse.std() + 1e-6)
    mult = upsample(np.exp(bias_coarse + style.tex_amp * fields["tex_coarse"]), shp).reshape(-1)[
        anat.bidx
    ]
    grain = upsample(rng.standard_normal(coarse_shape(shp, 2.0)).astype(np.float32), shp)
    mult *= 1.0 + style.grain_amp[m] * grain.reshape(-1)[anat.bidx]
    del grain
    img = probs[0] * con["csf"][m] + probs[1] * con["gm"][m] + probs[2] * con["wm"][m]
    img *= mult
    hs, tis_hs = fields["hs"], fields["tis_hs"]
    vals = img[hs]  # healthy-tissue statistics decide where the tumour intensities go
    mean_h, sd_h = float(vals.mean()), float(vals.std())
    if m == 2:
        img += fields["vessel"] * (style.vessel_amp * sd_h)
    tz = {
        t: (float(vals[tis_hs == code].mean()) - mean_h) / sd_h
        for t, code in (("csf", CSF), ("gm", GM), ("wm", WM))
    }
    wanted = {r: float(con[r][m]) for r in _LABEL_OF}
    z = order_tumor_z(m, wanted, tz) if style.ordered else visible_tumor_z(m, wanted, tz)
    bp, soft, het = tumor["bp"], tumor["soft"], tumor["het"]
    sub = img[bp]
    healthy = sub.copy()
    sub *= 1.0 - tumor["total"]
    mult_b = mult[bp] / float(mult[hs].mean())
    for r in _LABEL_OF:
        tumor["used"][r][m] = z[r]
        level = z[r]
        if r == "enhancing" and m == 2 and style.enh_patchy > 0:  # patchy: parts fade to the core
            level = z["non_enhancing"] + (z["enhancing"] - z["non_enhancing"]) * tumor["patch"]
        val = mean_h + sd_h * (level + style.het_gain * HET_AMP[r][m] * het[r])
        if r == "edema":  # some anatomy shows through the edema
            val = val + style.show_through[m] * (healthy - mean_h - sd_h * tz["wm"])
        sub += soft[r] * val * mult_b
    if style.ordered:
        _enforce_order(m, sub, tumor["lab_b"], soft, mult_b, tz, mean_h, sd_h)
    img[bp] = sub
    return img


def _tumor_fields(rng: np.random.Generator, anat: Anatomy, label: np.ndarray) -> dict:
    """Per-region soft masks and heterogeneity fields over the tumour's bounding box, as
    positions ``bp`` into the 1D brain arrays."""
    shp = label.shape
    idx = np.argwhere(label > 0)
    lo = np.maximum(idx.min(0) - 3, 0)
    hi = np.minimum(idx.max(0) + 4, shp)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    pos = np.full(shp, -1, np.int32)
    pos.reshape(-1)[anat.bidx] = np.arange(anat.bidx.size, dtype=np.int32)
    box_pos = pos[box]
    del pos
    inb = box_pos >= 0
    lab_b3 = label[box]
    soft = {
        r: ndi.uniform_filter((lab_b3 == v).astype(np.float32), 3)[inb]
        for r, v in _LABEL_OF.items()
    }
    het = {
        r: smooth_noise(rng, lab_b3.shape, st)[inb]
        for r, st in (("edema", 6.0), ("non_enhancing", 5.0), ("enhancing", 4.0))
    }
    patch = np.clip(0.4 - 0.6 * smooth_noise(rng, lab_b3.shape, 5.0)[inb], 0.0, 1.0)
    return {
        "bp": box_pos[inb],
        "lab_b": lab_b3[inb],
        "soft": soft,
        "het": het,
        "total": soft["edema"] + soft["non_enhancing"] + soft["enhancing"],
        "patch": patch,
        "used": {r: np.zeros(4, np.float32) for r in _LABEL_OF},
    }


def _scanner(
    m: int, rng: np.random.Generator, style: Style, plane: np.ndarray, brain: np.ndarray
) -> None:
    """Acquisition effects on one modality's box ``plane`` (X, Y, Z), in place: in-plane blur
    and thick slices, Rician noise, gamma and the scanner's intensity scale; 0 outside the brain.
    """
    mean_h = float(plane[brain].mean())
    if style.blur_sd[m] > 0:
        ndi.gaussian_filter(plane, (style.blur_sd[m], style.blur_sd[m], 0), output=plane)
    if style.thickness[m] > 1:
        plane[...] = thick_slices(
            plane, int(style.thickness[m]), int(rng.integers(style.thickness[m]))
        )
    plane[~brain] = 0.0
    # Rician noise: magnitude of a complex signal with Gaussian noise in both parts
    sigma = style.noise_frac[m] * mean_h
    img = plane[brain]
    n1 = rng.standard_normal(img.size, dtype=np.float32)
    n1 *= sigma
    img += n1
    np.square(img, out=img)
    rng.standard_normal(img.size, dtype=np.float32, out=n1)
    n1 *= sigma
    np.square(n1, out=n1)
    img += n1
    np.sqrt(img, out=img)
    if style.gamma[m] != 1.0:
        top = float(img.max()) + 1e-6
        img = top * (img / top) ** style.gamma[m]
    img *= style.scale[m] / float(img.mean())
    np.rint(img, out=img)
    np.clip(img, 0, 32767, out=img)
    plane[brain] = img


def thick_slices(vol: np.ndarray, t: int, phase: int) -> np.ndarray:
    """``vol`` (X, Y, Z) as if acquired in slices ``t`` mm thick along z starting at ``phase``,
    then linearly resampled back to 1 mm: a t-slice box average sampled every t slices."""
    avg = ndi.uniform_filter1d(vol, t, axis=2, mode="nearest")
    low = avg[..., phase::t]
    f = np.clip((np.arange(vol.shape[2]) - phase) / t, 0, low.shape[2] - 1)
    i0 = np.minimum(np.floor(f).astype(int), max(low.shape[2] - 2, 0))
    w = (f - i0).astype(np.float32)
    i1 = np.minimum(i0 + 1, low.shape[2] - 1)
    return low[..., i0] * (1.0 - w) + low[..., i1] * w


# Tumour heterogeneity amplitude per region and modality, in healthy-SD units.
HET_AMP = {
    "edema": np.array([0.45, 0.1, 0.2, 0.65]),
    "non_enhancing": np.array([0.5, 0.15, 0.4, 1.0]),
    "enhancing": np.array([0.5, 0.15, 1.0, 0.5]),
}
Z_MARGIN = 5  # empty slices kept at the bottom and the top of every volume, as in BraTS


def synthesize_case(
    seed: int, index: int, randomize: bool = False, hard: HardCase | None = None
) -> SynthCase:
    """Generate case ``index`` of the dataset with ``seed`` (deterministic; ~2-4 s, ~0.7 GB peak).

    randomize: draw the case's look with ``randomized_style`` and a wider range of tumour
        shapes (domain randomization, for training data) instead of the course's look.
    hard: make a hard case of this kind (``HardCase``; needs ``randomize``), from its own
        random stream: (seed, index, kind) decide it.
    Returns a ``SynthCase`` with image (240, 240, 155, 4) float32, label and tissue
    (240, 240, 155) uint8.  Top-level and picklable, so it can be mapped over indices in a
    process pool.  BLAS runs on one thread here: a threaded matrix product may sum in another
    order, so the bytes would otherwise depend on the thread count and the CPU kernel.
    """
    if hard is not None and not randomize:
        raise ValueError(f"hard case {hard.value!r} needs randomize=True (--randomize)")
    with threadpool_limits(limits=1, user_api="blas"):
        return _synthesize_case(seed, index, randomize, hard)


def _synthesize_case(
    seed: int, index: int, randomize: bool, hard: HardCase | None = None
) -> SynthCase:
    words = [int(seed), int(index)] + ([RANDOMIZED_STREAM] if randomize else [])
    if hard is not None:
        words.append(HARD_STREAMS[hard])
    rng = np.random.default_rng(words)
    anat = _anatomy(rng, randomize, hard)
    label = _tumor_labels(rng, anat, randomize, hard)
    style = randomized_style(rng) if randomize else course_style(rng)
    if hard is not None:
        style = hard_style(rng, style, hard)
    shp = anat.tissue.shape
    lab1 = label.reshape(-1)[anat.bidx]
    probs = [anat.csf**style.sharpen, anat.gm**style.sharpen, anat.wm**style.sharpen]
    norm = probs[0] + probs[1] + probs[2] + 1e-6
    for p_ in probs:
        p_ /= norm
    del norm
    tumor = _tumor_fields(rng, anat, label)
    tex_coarse = ndi.gaussian_filter(
        rng.standard_normal(coarse_shape(shp, COARSE)).astype(np.float32), 0.8
    )
    tex_coarse /= tex_coarse.std()
    # cortical vessels for T1Gd: curves where a smooth random surface crosses the sulcal
    # CSF/GM border, outside the tumour (real T1Gd shows such bright spots and lines)
    vfield = upsample(rng.standard_normal(coarse_shape(shp, 3.0)).astype(np.float32), shp).reshape(
        -1
    )[anat.bidx]
    vfield /= vfield.std() + 1e-6
    border = np.clip(1.0 - np.abs(probs[0] - 0.5) * 2.5, 0.0, 1.0)
    hs = np.flatnonzero(lab1 == 0)[::7]  # a subsample of the healthy brain for statistics
    fields = {
        "tex_coarse": tex_coarse,
        "hs": hs,
        "tis_hs": anat.tis1[hs],
        "vessel": np.clip(1.0 - np.abs(vfield) / 0.2, 0.0, 1.0) * border * (lab1 == 0),
    }
    del vfield, border
    image = np.zeros(GRID + (4,), np.float32)
    out_box = image[CROP]
    brain = anat.tissue > 0
    plane = np.zeros(shp, np.float32)
    for m in range(4):
        plane.reshape(-1)[anat.bidx] = _render_modality(m, rng, style, anat, probs, tumor, fields)
        _scanner(m, rng, style, plane, brain)
        out_box[..., m] = plane
    con = dict(style.contrasts)
    con.update(tumor["used"])
    full_label = np.zeros(GRID, np.uint8)
    full_label[CROP] = label
    full_tissue = np.zeros(GRID, np.uint8)
    full_tissue[CROP] = anat.tissue
    full_label[full_tissue == 0] = 0
    return SynthCase(image=image, label=full_label, tissue=full_tissue, contrasts=con)


RANDOMIZED_STREAM = 1  # extra seed word of randomized cases: their own random stream
# one more seed word per hard-case kind: each kind has its own stream (never renumber)
HARD_STREAMS = {HardCase.THIN_RIM: 11, HardCase.LOW_GRADE: 12, HardCase.SMALL: 13}


# ----------------------------------------------------------------------------- writing


def _descrip(seed: int, index: int, randomize: bool = False, hard: HardCase | None = None) -> str:
    kind = " randomized" if randomize else ""
    if hard is not None:
        kind += f" hard={hard.value}"
    return f"tumorseg {VERSION}{kind} seed={seed} case={index}"


def _nifti_bytes(data: np.ndarray, descrip: str) -> bytes:
    img = nib.Nifti1Image(data, np.eye(4))
    hdr = img.header
    hdr.set_xyzt_units("mm", "sec")
    hdr.set_qform(np.eye(4), code=1)
    hdr.set_sform(np.eye(4), code=1)
    hdr["descrip"] = descrip.encode()[:79]
    return img.to_bytes()


def _gz(raw: bytes) -> bytes:
    return gzip.compress(raw, compresslevel=GZIP_LEVEL, mtime=0)


def write_case(
    case: SynthCase,
    out: Path,
    seed: int,
    index: int,
    randomize: bool = False,
    hard: HardCase | None = None,
) -> tuple[Path, Path]:
    """Write ``case`` as OUT/imagesTr/BRATS_xxx.nii.gz (int16) and labelsTr/... (uint8); the
    headers' description tags seed, index and kind (``case_is_valid`` reads it)."""
    out = Path(out)
    name = case_name(index) + ".nii.gz"
    img_path, lab_path = out / "imagesTr" / name, out / "labelsTr" / name
    img_path.parent.mkdir(parents=True, exist_ok=True)
    lab_path.parent.mkdir(parents=True, exist_ok=True)
    tag = _descrip(seed, index, randomize, hard)
    write_bytes(lab_path, _gz(_nifti_bytes(case.label, tag)))
    write_bytes(img_path, _gz(_nifti_bytes(case.image.astype(np.int16), tag)))
    return img_path, lab_path


def _file_ok(path: Path, shape: tuple[int, ...], dtype: type, tag: str) -> bool:
    """Cheap check: header shape/dtype/tag right and the gzip trailer's size matches."""
    try:
        hdr = nib.load(str(path)).header
        if tuple(hdr.get_data_shape()) != shape or hdr.get_data_dtype() != np.dtype(dtype):
            return False
        if hdr["descrip"].item().decode(errors="replace").strip() != tag:
            return False
        offset = max(int(hdr.get_data_offset()), int(hdr["vox_offset"]), 352)
        expected = offset + int(np.prod(shape)) * np.dtype(dtype).itemsize
        with open(path, "rb") as f:
            f.seek(-4, os.SEEK_END)
            (isize,) = struct.unpack("<I", f.read(4))
        return isize == expected % 2**32
    except (OSError, ValueError, EOFError, zlib.error, nib.filebasedimages.ImageFileError):
        return False


def case_is_valid(
    out: Path, seed: int, index: int, randomize: bool = False, hard: HardCase | None = None
) -> bool:
    """True when both files of case ``index`` exist, are complete and come from this seed,
    generator version and kind (course, randomized, or randomized hard case of kind ``hard``)."""
    name = case_name(index) + ".nii.gz"
    tag = _descrip(seed, index, randomize, hard)
    out = Path(out)
    return _file_ok(out / "labelsTr" / name, GRID, np.uint8, tag) and _file_ok(
        out / "imagesTr" / name, GRID + (4,), np.int16, tag
    )


def _make_case(
    out: str, seed: int, index: int, randomize: bool = False, hard: HardCase | None = None
) -> bool:
    """Generate and write one case unless a valid one is there; True when it was generated."""
    if case_is_valid(Path(out), seed, index, randomize, hard):
        return False
    case = synthesize_case(seed, index, randomize, hard)
    write_case(case, Path(out), seed, index, randomize, hard)
    return True


def write_dataset_json(
    out: Path, cases: int, randomize: bool = False, hard: Sequence[HardCase] = ()
) -> Path:
    """Write OUT/dataset.json (MSD keys) listing ``cases`` training cases, atomically; its
    "release" names the generator version and options, and with ``hard`` kinds the extra key
    "hardCases" maps each case name to its kind."""
    meta = dict(DATASET_JSON)
    if randomize:
        meta["release"] += " --randomize"
    if len(hard):
        meta["release"] += " --hard " + " ".join(k.value for k in hard)
        meta["hardCases"] = {case_name(i): hard_kind(hard, i).value for i in range(int(cases))}
    meta["numTraining"] = int(cases)
    meta["numTest"] = 0
    meta["training"] = [
        {"image": f"./imagesTr/{case_name(i)}.nii.gz", "label": f"./labelsTr/{case_name(i)}.nii.gz"}
        for i in range(cases)
    ]
    meta["test"] = []
    path = Path(out) / "dataset.json"
    write_bytes(path, (json.dumps(meta, indent=4) + "\n").encode())
    return path


def build_dataset(
    out: str | Path,
    cases: int = 10,
    seed: int = 0,
    jobs: int = 1,
    progress: bool = True,
    randomize: bool = False,
    hard: Sequence[HardCase] = (),
) -> list[Path]:
    """Build (or complete) the synthetic dataset in ``out``; returns the image paths.

    randomize: domain-randomized cases (``synthesize_case(..., randomize=True)``), for
    training data; the default is the course's look.
    hard: hard-case kinds (needs ``randomize``); case ``i`` is of kind ``hard[i % len(hard)]``.
    Valid cases already there are kept; missing, partial or stale ones are regenerated.
    ``jobs`` > 1 uses that many processes (about 0.7 GB of memory each).
    dataset.json is written last.
    """
    from tqdm.auto import tqdm

    hard = tuple(HardCase(k) for k in hard)
    if hard and not randomize:
        raise ValueError("hard cases need randomize=True (tumorseg synth --randomize --hard ...)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    indices = list(range(int(cases)))
    made = 0
    bar = tqdm(total=len(indices), desc="synth cases", unit="case", disable=not progress)
    if jobs <= 1:
        for i in indices:
            made += _make_case(str(out), seed, i, randomize, hard_kind(hard, i))
            bar.update(1)
    else:
        # Fresh "spawn" workers (safe even if the caller has TensorFlow loaded), each with a
        # single BLAS thread so that `jobs` processes do not oversubscribe the cores.
        single = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
        saved = {k: os.environ.get(k) for k in single}
        os.environ.update({k: "1" for k in single})
        try:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
                futs = [
                    pool.submit(_make_case, str(out), seed, i, randomize, hard_kind(hard, i))
                    for i in indices
                ]
                for fut in futs:
                    made += fut.result()
                    bar.update(1)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    bar.close()
    write_dataset_json(out, len(indices), randomize, hard)
    if progress:
        print(f"{out}: {len(indices)} cases ({made} generated, {len(indices) - made} kept)")
    return [out / "imagesTr" / f"{case_name(i)}.nii.gz" for i in indices]


__all__ = [
    "HardCase",
    "SynthCase",
    "Style",
    "build_dataset",
    "case_is_valid",
    "course_style",
    "hard_kind",
    "hard_style",
    "random_contrasts",
    "random_contrasts_wide",
    "randomized_style",
    "synthesize_case",
    "write_case",
    "CSF",
    "GM",
    "WM",
]

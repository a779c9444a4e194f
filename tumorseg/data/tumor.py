"""Synthetic glioma shapes: an enhancing rim with septa, a necrotic / non-enhancing core, edema.

Label convention (MSD Task01): 0 background, 1 edema, 2 non-enhancing tumour (necrosis
included), 3 enhancing tumour.  Everything works on a box around the tumour centre, in output
voxels (1 mm), so its cost does not depend on the brain size.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
from scipy import ndimage as ndi

from tumorseg.data.anatomy import smooth_noise, upsample

CSF, GM, WM = 1, 2, 3  # tissue codes of the tissue map (0 = outside the brain)
WT_RANGE_VOX = (20_000, 250_000)  # whole-tumour volume bounds, 1 mm voxels (20-250 cm^3)
SMALL_WT_VOX = (3_000, 20_000)  # whole-tumour volume bounds of a HardCase.SMALL lesion
THIN_RIM_VOX = (1.0, 3.0)  # enhancing-rim thickness of a HardCase.THIN_RIM tumour, voxels
LOW_GRADE_MAX_ENH = 0.04  # most enhancing tumour of a HardCase.LOW_GRADE core, fraction


class HardCase(Enum):
    """Hard-case kinds of randomized training data (``tumorseg synth --randomize --hard``).

    THIN_RIM: a necrotic core (2) wrapped in an enhancing rim (3) of 1-3 voxels, edema (1)
        around, bright enhancement on T1Gd.
    LOW_GRADE: a low-grade-glioma-like tumour: a large non-enhancing core (2) in wide edema,
        no enhancement in half the cases and small faint nodules (under 4 % of the core) else.
    SMALL: a small lesion, whole tumour of 3,000-20,000 voxels, half of them beside a ventricle.
    """

    THIN_RIM = "thin-rim"
    LOW_GRADE = "low-grade"
    SMALL = "small"


@dataclass
class TumorSpec:
    """Random size and shape parameters of one tumour (lengths in mm = voxels)."""

    centre: np.ndarray  # (3,) output-grid voxel coordinates
    r_core: float  # mean radius of the tumour core (labels 2 + 3)
    core_target: float  # target core volume, voxels
    wt_target: float  # target whole-tumour volume, voxels
    rim: float  # mean enhancing-rim thickness as a fraction of r_core
    chambers: int  # number of necrotic chambers (separated by enhancing septa)
    septum: float  # septum thickness, mm
    nonenh_extra: bool  # add non-enhancing tumour outside the rim
    nodular: bool  # mostly non-enhancing solid core with enhancing nodules instead of a rim
    hard: HardCase | None = None  # a hard-case kind, drawn by its own rule in ``draw_tumor``
    wt_max: float | None = None  # whole-tumour cap, voxels (None: WT_RANGE_VOX's)


def random_spec(
    rng: np.random.Generator, centre: np.ndarray, wide: bool = False, wt_scale: float = 1.0
) -> TumorSpec:
    """Draw a tumour.

    Course (``wide=False``): whole tumour 120-245 cm^3 (log-uniform), core 12-38 % of it.
    Wide (domain randomization): whole tumour 15-245 cm^3, core 6-55 % of it, rims from thin
    to thick, a third of the cores solid and non-enhancing with enhancing nodules.
    wt_scale: multiplies the whole-tumour volume (e.g. for a second, smaller focus).
    """
    lo, hi = (15_000, 245_000) if wide else (120_000, 245_000)
    wt = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) * wt_scale
    wt = max(wt, 6_000.0)
    core = wt * (rng.uniform(0.06, 0.55) if wide else rng.uniform(0.12, 0.38))
    r_core = float(np.cbrt(3 * core / (4 * np.pi)))
    rim = rng.uniform(0.08, 0.5) if wide else rng.uniform(0.12, 0.35)
    return TumorSpec(
        centre=np.asarray(centre, np.float32),
        r_core=r_core,
        core_target=core,
        wt_target=wt,
        rim=float(max(rim, 3.5 / r_core)),
        chambers=int(rng.integers(1, 5)),
        septum=float(rng.uniform(1.5, 3.0)),
        nonenh_extra=bool(rng.random() < 0.5),
        nodular=bool(rng.random() < (0.33 if wide else 0.25)),
    )


def hard_spec(rng: np.random.Generator, centre: np.ndarray, kind: HardCase) -> TumorSpec:
    """Draw a tumour of hard-case ``kind`` (see ``HardCase``) centred at ``centre`` (3,).

    THIN_RIM: whole tumour 40-200 cm^3, core 15-40 % of it, one necrotic chamber.
    LOW_GRADE: whole tumour 40-200 cm^3, core 35-70 % of it, always with infiltrative
    non-enhancing tumour beyond the core (THIN_RIM: never).  SMALL: whole tumour log-uniform in
    ``SMALL_WT_VOX`` (capped there), core 25-50 % of it, the usual rim and chamber draw.
    """
    u = rng.uniform
    if kind is HardCase.SMALL:
        lo, hi = SMALL_WT_VOX
        wt = float(np.exp(u(np.log(lo), np.log(0.9 * hi))))
        core = wt * u(0.25, 0.5)
    else:
        wt = float(np.exp(u(np.log(40_000), np.log(200_000))))
        core = wt * (u(0.35, 0.7) if kind is HardCase.LOW_GRADE else u(0.15, 0.4))
    r_core = float(np.cbrt(3 * core / (4 * np.pi)))
    return TumorSpec(
        centre=np.asarray(centre, np.float32),
        r_core=r_core,
        core_target=core,
        wt_target=wt,
        rim=float(max(u(0.12, 0.35), 3.5 / r_core)),
        chambers=1 if kind is HardCase.THIN_RIM else int(rng.integers(1, 3)),
        septum=float(u(1.5, 3.0)),
        nonenh_extra=kind is HardCase.LOW_GRADE
        or (kind is HardCase.SMALL and bool(rng.random() < 0.3)),
        nodular=kind is HardCase.SMALL and bool(rng.random() < 0.3),
        hard=kind,
        wt_max=float(SMALL_WT_VOX[1]) if kind is HardCase.SMALL else None,
    )


def add_satellites(
    rng: np.random.Generator, label: np.ndarray, tissue: np.ndarray, spec: TumorSpec, n: int
) -> np.ndarray:
    """``label`` (X, Y, Z) uint8 with ``n`` satellite edema islands (label 1) added, each an
    irregular blob of 4-10 mm radius, 10-30 mm beyond the tumour core, in grey or white
    matter where there is no tumour yet."""
    out = label.copy()
    for _ in range(n):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        c = spec.centre + direction * (spec.r_core + rng.uniform(10.0, 30.0))
        r = rng.uniform(4.0, 10.0)
        half = int(np.ceil(r * 1.6)) + 1
        lo = np.maximum(np.floor(c).astype(int) - half, 0)
        hi = np.minimum(np.floor(c).astype(int) + half + 1, label.shape)
        if np.any(hi - lo < 3):
            continue
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        grids = np.ogrid[tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))]
        dist = np.sqrt(sum((g.astype(np.float32) - ci) ** 2 for g, ci in zip(grids, c)))
        blob = dist / r * (1.0 + 0.3 * smooth_noise(rng, dist.shape, 4.0)) < 1.0
        blob &= (tissue[box] == GM) | (tissue[box] == WM)
        out[box][blob & (out[box] == 0)] = 1
    return out


def tumor_box(spec: TumorSpec, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """Box (slices into an array of ``shape``) that holds the tumour and its edema."""
    half = spec.r_core * 1.3 + 34
    lo = np.maximum(np.floor(spec.centre - half).astype(int), 0)
    hi = np.minimum(np.ceil(spec.centre + half).astype(int) + 1, shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return (q * np.sign(np.diag(r))).astype(np.float32)


def draw_tumor(rng: np.random.Generator, spec: TumorSpec, tissue: np.ndarray) -> np.ndarray:
    """Label map for a tumour described by ``spec`` in a brain with tissue map ``tissue``.

    tissue: (X, Y, Z) uint8, 0 outside / 1 CSF / 2 GM / 3 WM.  Returns (X, Y, Z) uint8 labels.
    The core (2 + 3) is an irregular, anisotropic blob; the enhancing rim (3) is thick and
    of uneven thickness, with septa splitting the inside into necrotic chambers (2) (or, in
    "nodular" tumours, a solid non-enhancing core with enhancing nodules); edema
    (1) grows from the core along white matter, slowly into grey matter, never into CSF.
    A hard case (``spec.hard``) draws the inside of its core by its own rule (``_thin_rim``,
    ``_low_grade``) and keeps the whole tumour under ``spec.wt_max``.
    """
    box = tumor_box(spec, tissue.shape)
    tis = tissue[box]
    bshape = tis.shape
    brain = tis > 0
    origin = np.array([s.start for s in box], np.float32)
    c = spec.centre - origin
    grids = np.ogrid[tuple(slice(0, n) for n in bshape)]
    d = [g.astype(np.float32) - ci for g, ci in zip(grids, c)]
    d[2] = d[2] * 1.15  # slightly flatter in z, like the real cases

    # irregular, anisotropic core
    rot = _random_rotation(rng)
    axes = rng.uniform(0.8, 1.25, size=3).astype(np.float32)
    axes /= np.cbrt(axes.prod())
    dist2 = np.zeros(bshape, np.float32)
    for i in range(3):
        comp = (rot[i, 0] * d[0] + rot[i, 1] * d[1] + rot[i, 2] * d[2]) / axes[i]
        dist2 += comp * comp
    lobes = smooth_noise(rng, bshape, 10.0)
    fine = smooth_noise(rng, bshape, 4.0)
    r_n = np.sqrt(dist2) / spec.r_core * (1.0 + 0.28 * lobes + 0.06 * fine)
    # rescale so that the core (r_n < 1) has the wanted volume
    k = int(min(spec.core_target, r_n.size - 1))
    r_n /= float(np.partition(r_n.ravel(), k)[k])
    # the core stops at CSF (ventricles, sulci), which the mass effect has pushed aside
    core = _largest_component((r_n < 1.0) & brain & (tis != CSF))
    if spec.hard is HardCase.THIN_RIM:
        label = _thin_rim(rng, core)
    elif spec.hard is HardCase.LOW_GRADE:
        label = _low_grade(rng, core)
    else:
        label = _rim_and_chambers(rng, spec, core, r_n, d, fine)

    if spec.nonenh_extra:  # infiltrative non-enhancing tumour next to the rim
        patchy = smooth_noise(rng, bshape, 7.0)
        extra = (r_n >= 1.0) & (r_n < 1.3) & (patchy > 0.6) & (tis != CSF) & brain
        label[extra] = 2

    n_core = float((label > 0).sum())
    cap = 0.98 * WT_RANGE_VOX[1] if spec.wt_max is None else spec.wt_max
    limit = cap - n_core
    edema = _grow_edema(
        rng, label > 0, tis, min(max(spec.wt_target - n_core, 0.8 * n_core), limit), limit
    )
    label[edema & (label == 0)] = 1
    # drop specks: keep only the tumour component that holds the core
    label[~_largest_component(label > 0)] = 0
    out = np.zeros(tissue.shape, np.uint8)
    out[box] = label
    return out


def _rim_and_chambers(
    rng: np.random.Generator,
    spec: TumorSpec,
    core: np.ndarray,
    r_n: np.ndarray,
    d: list[np.ndarray],
    fine: np.ndarray,
) -> np.ndarray:
    """Labels (X, Y, Z) uint8 of the tumour box inside ``core``: an uneven enhancing rim (3)
    with septa around necrotic chambers (2), or a nodular core; 0 outside ``core``.

    r_n: normalized core radius (core at < 1); d: per-axis offsets from the centre; fine:
    small-scale noise of the box.
    """
    bshape = core.shape
    # necrotic chambers: inside the (uneven) rim, split by septa between Voronoi cells
    thick = smooth_noise(rng, bshape, 6.0)
    inner = r_n < 1.0 - spec.rim * np.clip(1.0 + 0.45 * thick, 0.35, 2.0)
    open_inner = inner & core
    if spec.chambers > 1:
        seeds = rng.normal(size=(spec.chambers, 3))
        seeds *= (
            rng.uniform(0.2, 0.6, size=(spec.chambers, 1))
            * spec.r_core
            / np.linalg.norm(seeds, axis=1, keepdims=True)
        )
        first = np.full(bshape, np.inf, np.float32)  # nearest and second-nearest seed
        second = np.full(bshape, np.inf, np.float32)
        for sd in seeds:
            dist = np.sqrt(sum((dk - sk) ** 2 for dk, sk in zip(d, sd))).astype(np.float32)
            np.minimum(second, np.maximum(first, dist), out=second)
            np.minimum(first, dist, out=first)
        inner &= (second - first + 0.8 * fine) > spec.septum
        del first, second
    necrosis = inner & core
    if necrosis.sum() < 0.12 * core.sum():  # septa ate the core: fewer walls
        necrosis = open_inner
    if necrosis.sum() < 400:  # guarantee label 2
        necrosis = (r_n < 0.55) & core

    label = np.zeros(bshape, np.uint8)
    label[core] = 3
    label[necrosis] = 2
    if (
        spec.nodular and core.any()
    ):  # solid non-enhancing tumour; a few enhancing nodules (12-30 % of it)
        nod = smooth_noise(rng, bshape, 6.0)
        q = float(np.quantile(nod[core], 1.0 - rng.uniform(0.12, 0.3)))
        label[core] = 2
        label[core & (nod > q)] = 3
    return label


def _thin_rim(rng: np.random.Generator, core: np.ndarray) -> np.ndarray:
    """Labels (X, Y, Z) uint8 inside the bool ``core`` (X, Y, Z): an enhancing rim (3) whose
    thickness varies smoothly within ``THIN_RIM_VOX`` voxels around one necrotic core (2)."""
    depth = ndi.distance_transform_edt(core)  # 1 on the core's outer layer
    lo, hi = THIN_RIM_VOX
    thick = lo + (hi - lo) * np.clip(0.5 + 0.35 * smooth_noise(rng, core.shape, 8.0), 0.0, 1.0)
    label = np.zeros(core.shape, np.uint8)
    label[core] = 2
    label[core & (depth <= thick)] = 3
    return label


def _low_grade(rng: np.random.Generator, core: np.ndarray) -> np.ndarray:
    """Labels (X, Y, Z) uint8 inside the bool ``core`` (X, Y, Z): solid non-enhancing tumour
    (2); in half the cases a few small enhancing nodules (3), 0.5 % to ``LOW_GRADE_MAX_ENH``
    of the core."""
    label = np.zeros(core.shape, np.uint8)
    label[core] = 2
    nod = smooth_noise(rng, core.shape, 5.0)
    if rng.random() < 0.5 and core.any():
        q = float(np.quantile(nod[core], 1.0 - rng.uniform(0.005, LOW_GRADE_MAX_ENH)))
        label[core & (nod > q)] = 3
    return label


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a 3D bool ``mask`` (all False if empty)."""
    lab, n = ndi.label(mask, structure=np.ones((3, 3, 3), bool))
    if n <= 1:
        return mask.copy() if n == 1 else mask
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == int(sizes.argmax())


def _grow_edema(
    rng: np.random.Generator, core: np.ndarray, tis: np.ndarray, target: float, limit: float
) -> np.ndarray:
    """Edema mask grown from ``core`` at half resolution: fast along WM, slow into GM, not CSF.

    core, tis: (X, Y, Z) arrays of the tumour box; target: wanted edema volume in voxels;
    limit: hard upper bound on it.  Returns a (X, Y, Z) bool mask disjoint from ``core``.
    """
    core_h = core[::2, ::2, ::2]
    tis_h = tis[::2, ::2, ::2]
    wm_h, gm_h = tis_h == WM, tis_h == GM
    big = 1000.0
    arrival = np.full(core_h.shape, big, np.float32)
    arrival[core_h] = 0
    cur = core_h.copy()
    # grey matter is entered by a random 45 % of its front voxels per step, white matter by
    # all; z grows on every other step, which keeps the edema about as compact as in
    # real cases (extents of 50-100 mm)
    inplane = ndi.generate_binary_structure(3, 1).copy()
    inplane[1, 1, 0] = inplane[1, 1, 2] = False
    full_st = ndi.generate_binary_structure(3, 1)
    count, it, stop, idle = 0.0, 0, 1, 0
    while count < target and it < 60:
        it += 1
        ring = ndi.binary_dilation(cur, structure=full_st if it % 2 else inplane) & ~cur
        gate = rng.random(gm_h.shape, dtype=np.float32) < 0.45
        add = ring & (wm_h | (gm_h & gate))
        if not add.any():
            idle += 1
            if idle > 3:
                break
            continue
        idle = 0
        arrival[add] = it
        cur |= add
        count += 8.0 * add.sum()
        stop = it
    arrival[arrival >= big] = stop + 3
    full = upsample(arrival, core.shape)
    wobble = smooth_noise(rng, core.shape, 5.0)
    full += 0.9 * wobble
    allowed = ((tis == WM) | (tis == GM)) & ~core
    thr = stop + 0.2
    edema = (full <= thr) & allowed
    while edema.sum() > limit:
        thr -= 0.5
        edema = (full <= thr) & allowed
    return edema

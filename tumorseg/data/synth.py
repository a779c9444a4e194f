"""Synthetic MSD Task01-style brain-tumour dataset (``tumorseg synth``).

Every case is a deformed MNI ICBM152 2009a brain (see ``anatomy``) with a glioma drawn into
it (see ``tumor``), rendered as the four MSD Task01 modalities FLAIR, T1w, T1Gd (t1gd) and
T2w, with scanner effects: a smooth multiplicative bias field, Rician noise and a random
global intensity scale per modality.  Output follows the MSD layout exactly::

    OUT/imagesTr/BRATS_001.nii.gz   (240, 240, 155, 4) int16, identity affine, 1 mm voxels
    OUT/labelsTr/BRATS_001.nii.gz   (240, 240, 155) uint8, 0 bg / 1 edema / 2 non-enh / 3 enh
    OUT/dataset.json                MSD keys; the description says the data are synthetic

A case depends only on (seed, index): ``np.random.default_rng([seed, index])``.
Writes are atomic, and a rerun skips the cases that are already valid.
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import os
import struct
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
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
from tumorseg.data.tumor import CSF, GM, WM, draw_tumor, random_spec, smooth_noise, tumor_box

VERSION = "synth-v8"  # bump when the output changes: a rerun then regenerates old cases
MODALITIES = ("FLAIR", "T1w", "t1gd", "T2w")
REGIONS = ("csf", "gm", "wm", "edema", "core", "enh")
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
    "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
    "labels": {"0": "background", "1": "edema", "2": "non-enhancing tumor",
               "3": "enhancing tumour"},
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
        ("edema", "core", "enh": z-scores over healthy brain) contrasts, each (4,).
    """

    image: np.ndarray
    label: np.ndarray
    tissue: np.ndarray
    contrasts: dict[str, np.ndarray]


def case_name(index: int) -> str:
    """MSD file stem of the case with 0-based ``index``: 0 -> 'BRATS_001'."""
    return f"BRATS_{index + 1:03d}"


def random_contrasts(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random per-case contrasts, each (4,) over FLAIR, T1w, T1Gd, T2w.

    "csf", "gm", "wm": healthy-tissue intensities relative to white matter (wm = 1); the
    contrast of each tissue to white matter varies by about +-30-50 % from case to case.
    "edema", "core", "enh": wanted tumour intensities in healthy-tissue SD units (z-scores
    over the healthy brain), drawn around what real BraTS scans show; ``synthesize_case``
    clamps them so the BraTS orderings hold.
    """
    u = rng.uniform
    c = {"wm": np.ones(4, np.float32)}
    c["gm"] = np.array([u(1.08, 1.32), u(0.86, 0.95), u(0.82, 0.93), u(1.12, 1.42)], np.float32)
    c["csf"] = np.array([u(0.2, 0.55), u(0.2, 0.5), u(0.2, 0.5), u(2.0, 3.2)], np.float32)
    c["edema"] = np.array([u(1.8, 3.4), u(-0.3, 0.1), u(-0.95, -0.4), u(0.6, 1.8)], np.float32)
    c["core"] = np.array([u(0.9, 2.0), u(-0.5, 0.0), u(-0.85, -0.35), u(0.4, 1.4)], np.float32)
    c["enh"] = np.array([u(0.7, 1.9), u(-0.5, 0.0), u(1.4, 2.6), u(0.4, 1.3)], np.float32)
    return c


def order_tumor_z(m: int, z: dict[str, float], tz: dict[str, float]) -> dict[str, float]:
    """Clamp tumour z-scores ``z`` (edema/core/enh) of modality ``m`` against the measured
    healthy tissue z-scores ``tz`` (csf/gm/wm) so the BraTS orderings hold with a margin.
    """
    z = dict(z)
    lo = tz["csf"] + 0.6  # CSF darkest (FLAIR, T1, T1Gd)
    if m == 0:  # FLAIR: edema > core > GM > WM
        z["core"] = max(z["core"], tz["gm"] + 0.4)
        z["edema"] = max(z["edema"], z["core"] + 0.45)
        z["enh"] = max(z["enh"], lo)
    elif m == 1:  # T1: WM > GM > tumour
        for r in ("edema", "core", "enh"):
            z[r] = max(min(z[r], tz["gm"] - 0.08), lo)
    elif m == 2:  # T1Gd: enh > WM > GM > core
        z["enh"] = max(z["enh"], tz["wm"] + 0.8)
        z["core"] = max(min(z["core"], tz["gm"] - 0.2), lo)
        z["edema"] = max(z["edema"], lo)
    else:  # T2: CSF > edema > GM
        z["edema"] = min(max(z["edema"], tz["gm"] + 0.4), tz["csf"] - 0.4)
    return z


# Orderings of region means (higher, lower) per modality that involve a tumour region.
ORDER_PAIRS = {
    0: [("edema", "core"), ("core", "gm"), ("enh", "csf")],
    1: [("gm", "edema"), ("gm", "core"), ("gm", "enh"), ("edema", "csf"), ("core", "csf"),
        ("enh", "csf")],
    2: [("enh", "wm"), ("gm", "core"), ("edema", "csf"), ("core", "csf")],
    3: [("csf", "edema"), ("edema", "gm")],
}
_LABEL_OF = {"edema": 1, "core": 2, "enh": 3}


def _enforce_order(m: int, sub: np.ndarray, lab_b: np.ndarray, soft: dict[str, np.ndarray],
                   mult_b: np.ndarray, tz: dict[str, float], mean_h: float, sd_h: float,
                   margin: float = 0.2) -> None:
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


def synthesize_case(seed: int, index: int) -> SynthCase:
    """Generate case ``index`` of the dataset with ``seed`` (deterministic; ~2-4 s, ~0.7 GB peak).

    Returns a ``SynthCase`` with image (240, 240, 155, 4) float32, label and tissue
    (240, 240, 155) uint8.  Top-level and picklable, so it can be mapped over indices in a
    process pool.  BLAS runs on one thread here: a threaded matrix product may sum in another
    order, so the bytes would otherwise depend on the thread count and the CPU kernel.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _synthesize_case(seed, index)


def _synthesize_case(seed: int, index: int) -> SynthCase:
    rng = np.random.default_rng([int(seed), int(index)])
    atlas = load_atlas()
    shp = crop_shape()
    origin = np.array([s.start for s in CROP], np.float32)

    # --- anatomy: random warp + mass effect around the tumour centre
    q, lin = random_warp(rng, atlas)
    nodes = coarse_nodes()
    target = atlas.seeds[rng.integers(len(atlas.seeds))]
    k = np.argmin(((q - target[:, None, None, None].astype(np.float32)) ** 2).sum(0))
    centre = nodes.reshape(3, -1)[:, k]  # output-grid voxel coordinates
    spec = random_spec(rng, centre - origin)
    push = mass_effect(nodes, centre, rng.uniform(0.45, 0.8) * spec.r_core,
                       2.2 * spec.r_core + 12)
    q += np.einsum("ij,j...->i...", lin, push).astype(np.float32)
    maps = sample_atlas(atlas, q, shp)
    del q, push, nodes
    # Everything per voxel is computed on the brain voxels only, as 1D arrays (~1/3 of the box).
    brain = maps["brain"] > 0.5
    bidx = np.flatnonzero(brain)
    gm = maps["gm"].reshape(-1)[bidx]
    wm = maps["wm"].reshape(-1)[bidx]
    del maps
    tot = gm + wm
    over = tot > 1.0
    gm[over] /= tot[over]
    wm[over] /= tot[over]
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0)
    del tot, over
    tis1 = np.where((csf >= gm) & (csf >= wm), CSF, np.where(gm >= wm, GM, WM)).astype(np.uint8)
    tissue = np.zeros(shp, np.uint8)
    tissue.reshape(-1)[bidx] = tis1

    # --- tumour
    label = draw_tumor(rng, spec, tissue)
    lab1 = label.reshape(-1)[bidx]

    # --- contrasts and rendering
    con = random_contrasts(rng)
    # sharpen the atlas' blurry tissue probabilities a little: crisper gyri, like one subject
    gamma = rng.uniform(1.3, 2.0)
    probs = [csf**gamma, gm**gamma, wm**gamma]
    norm = probs[0] + probs[1] + probs[2] + 1e-6
    for p_ in probs:
        p_ /= norm
    del norm, csf, gm, wm
    # the tumour box, as positions into the 1D brain arrays
    box = tumor_box(spec, shp)
    pos = np.full(shp, -1, np.int32)
    pos.reshape(-1)[bidx] = np.arange(bidx.size, dtype=np.int32)
    box_pos = pos[box]
    del pos
    inb = box_pos >= 0
    bp = box_pos[inb]
    lab_b3 = label[box]
    lab_b = lab_b3[inb]
    soft = {r: ndi.uniform_filter((lab_b3 == v).astype(np.float32), 3)[inb]
            for r, v in (("edema", 1), ("core", 2), ("enh", 3))}
    total = soft["edema"] + soft["core"] + soft["enh"]
    het = {r: smooth_noise(rng, lab_b3.shape, st)[inb]
           for r, st in (("edema", 6.0), ("core", 5.0), ("enh", 4.0))}
    del box_pos, inb, lab_b3
    het_amp = {"edema": np.array([0.45, 0.1, 0.2, 0.65]), "core": np.array([0.5, 0.15, 0.4, 1.0]),
               "enh": np.array([0.5, 0.15, 1.0, 0.5])}  # in healthy-SD units
    tex_coarse = ndi.gaussian_filter(
        rng.standard_normal(coarse_shape(shp, COARSE)).astype(np.float32), 0.8)
    tex_coarse /= tex_coarse.std()
    tex_amp = rng.uniform(0.015, 0.035)
    noise_frac = rng.uniform(0.003, 0.007)
    grain_amp = rng.uniform(0.008, 0.018) * 2.0  # linear upsampling halves the variance
    # cortical vessels for T1Gd: curves where a smooth random surface crosses the sulcal
    # CSF/GM border, outside the tumour (real T1Gd shows such bright spots and lines)
    vfield = upsample(rng.standard_normal(coarse_shape(shp, 3.0)).astype(np.float32),
                      shp).reshape(-1)[bidx]
    vfield /= vfield.std() + 1e-6
    border = np.clip(1.0 - np.abs(probs[0] - 0.5) * 2.5, 0.0, 1.0)
    vessel = np.clip(1.0 - np.abs(vfield) / 0.2, 0.0, 1.0) * border * (lab1 == 0)
    vessel_amp = rng.uniform(1.0, 4.0)
    del vfield, border
    # a subsample of the healthy brain for statistics
    hs = np.flatnonzero(lab1 == 0)[::7]
    tis_hs = tis1[hs]
    image = np.zeros(GRID + (4,), np.float32)
    out_box = image[CROP]
    plane = np.zeros(shp, np.float32)
    used = {r: np.zeros(4, np.float32) for r in ("edema", "core", "enh")}
    for m in range(4):
        bias_coarse = ndi.gaussian_filter(
            rng.standard_normal(tex_coarse.shape).astype(np.float32), 4.0)
        bias_coarse *= rng.uniform(0.05, 0.12) / (bias_coarse.std() + 1e-6)
        mult = upsample(np.exp(bias_coarse + tex_amp * tex_coarse), shp).reshape(-1)[bidx]
        # fine, spatially correlated grain (~2 mm), like resampled scanner noise and anatomy
        grain = upsample(rng.standard_normal(coarse_shape(shp, 2.0)).astype(np.float32), shp)
        mult *= 1.0 + grain_amp * (1.0, 0.6, 0.9, 0.8)[m] * grain.reshape(-1)[bidx]
        del grain
        img = probs[0] * con["csf"][m] + probs[1] * con["gm"][m] + probs[2] * con["wm"][m]
        img *= mult
        # healthy-tissue statistics decide where the tumour intensities go
        vals = img[hs]
        mean_h, sd_h = float(vals.mean()), float(vals.std())
        if m == 2:
            img += vessel * (vessel_amp * sd_h)
        tz = {t: (float(vals[tis_hs == code].mean()) - mean_h) / sd_h
              for t, code in (("csf", CSF), ("gm", GM), ("wm", WM))}
        z = order_tumor_z(m, {r: float(con[r][m]) for r in used}, tz)
        sub = img[bp]
        healthy = sub.copy()
        sub *= 1.0 - total
        mult_b = mult[bp] / float(mult[hs].mean())
        for r in used:
            used[r][m] = z[r]
            val = mean_h + sd_h * (z[r] + het_amp[r][m] * het[r])
            if r == "edema":  # some anatomy shows through the edema
                val = val + (0.3, 0.15, 0.15, 0.3)[m] * (healthy - mean_h - sd_h * tz["wm"])
            sub += soft[r] * val * mult_b
        _enforce_order(m, sub, lab_b, soft, mult_b, tz, mean_h, sd_h)
        img[bp] = sub
        del healthy, mult, mult_b, vals, sub
        # Rician noise: magnitude of a complex signal with Gaussian noise in both parts
        sigma = noise_frac * mean_h * (1.0, 0.6, 0.9, 0.9)[m]
        n1 = rng.standard_normal(img.size, dtype=np.float32)
        n1 *= sigma
        img += n1
        np.square(img, out=img)
        rng.standard_normal(img.size, dtype=np.float32, out=n1)
        n1 *= sigma
        np.square(n1, out=n1)
        img += n1
        np.sqrt(img, out=img)
        del n1
        img *= rng.uniform(260.0, 600.0) / mean_h  # global scanner scale per modality
        np.rint(img, out=img)
        np.clip(img, 0, 32767, out=img)
        plane.reshape(-1)[bidx] = img
        out_box[..., m] = plane
        del img
    con.update(used)
    full_label = np.zeros(GRID, np.uint8)
    full_label[CROP] = label
    full_tissue = np.zeros(GRID, np.uint8)
    full_tissue[CROP] = tissue
    full_label[full_tissue == 0] = 0
    return SynthCase(image=image, label=full_label, tissue=full_tissue, contrasts=con)


# ----------------------------------------------------------------------------- writing


def _descrip(seed: int, index: int) -> str:
    return f"tumorseg {VERSION} seed={seed} case={index}"


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


def write_case(case: SynthCase, out: Path, seed: int, index: int) -> tuple[Path, Path]:
    """Write ``case`` as OUT/imagesTr/BRATS_xxx.nii.gz (int16) and labelsTr/... (uint8)."""
    out = Path(out)
    name = case_name(index) + ".nii.gz"
    img_path, lab_path = out / "imagesTr" / name, out / "labelsTr" / name
    img_path.parent.mkdir(parents=True, exist_ok=True)
    lab_path.parent.mkdir(parents=True, exist_ok=True)
    tag = _descrip(seed, index)
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


def case_is_valid(out: Path, seed: int, index: int) -> bool:
    """True when both files of case ``index`` exist, are complete and come from this seed/version."""
    name = case_name(index) + ".nii.gz"
    tag = _descrip(seed, index)
    out = Path(out)
    return (_file_ok(out / "labelsTr" / name, GRID, np.uint8, tag)
            and _file_ok(out / "imagesTr" / name, GRID + (4,), np.int16, tag))


def _make_case(out: str, seed: int, index: int) -> bool:
    """Generate and write one case unless a valid one is there; True when it was generated."""
    if case_is_valid(Path(out), seed, index):
        return False
    write_case(synthesize_case(seed, index), Path(out), seed, index)
    return True


def write_dataset_json(out: Path, cases: int) -> Path:
    """Write OUT/dataset.json (MSD keys) listing ``cases`` training cases, atomically."""
    meta = dict(DATASET_JSON)
    meta["numTraining"] = int(cases)
    meta["numTest"] = 0
    meta["training"] = [{"image": f"./imagesTr/{case_name(i)}.nii.gz",
                         "label": f"./labelsTr/{case_name(i)}.nii.gz"} for i in range(cases)]
    meta["test"] = []
    path = Path(out) / "dataset.json"
    write_bytes(path, (json.dumps(meta, indent=4) + "\n").encode())
    return path


def build_dataset(out: str | Path, cases: int = 10, seed: int = 0, jobs: int = 1,
                  progress: bool = True) -> list[Path]:
    """Build (or complete) the synthetic dataset in ``out``; returns the image paths.

    Valid cases already there are kept; missing, partial or stale ones are regenerated.
    ``jobs`` > 1 uses that many processes (about 0.7 GB of memory each).
    dataset.json is written last.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    indices = list(range(int(cases)))
    made = 0
    bar = tqdm(total=len(indices), desc="synth cases", unit="case", disable=not progress)
    if jobs <= 1:
        for i in indices:
            made += _make_case(str(out), seed, i)
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
                for fut in [pool.submit(_make_case, str(out), seed, i) for i in indices]:
                    made += fut.result()
                    bar.update(1)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    bar.close()
    write_dataset_json(out, len(indices))
    if progress:
        print(f"{out}: {len(indices)} cases ({made} generated, {len(indices) - made} kept)")
    return [out / "imagesTr" / f"{case_name(i)}.nii.gz" for i in indices]


def main(argv: list[str] | None = None) -> int:
    """``tumorseg synth --out DIR --cases N --seed S [--jobs J]``."""
    p = argparse.ArgumentParser(prog="tumorseg synth", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="data/BraTS-Data", help="output folder (MSD layout)")
    p.add_argument("--cases", type=int, default=10, help="number of cases (default 10)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--jobs", type=int, default=1,
                   help="worker processes (default 1; each needs about 0.7 GB)")
    a = p.parse_args(argv)
    if a.cases < 1:
        p.error("--cases must be at least 1")
    build_dataset(a.out, cases=a.cases, seed=a.seed, jobs=a.jobs)
    return 0


__all__ = ["SynthCase", "build_dataset", "case_is_valid", "main", "random_contrasts",
           "synthesize_case", "write_case", "CSF", "GM", "WM"]

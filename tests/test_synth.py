"""Synthetic MSD Task01 dataset: determinism, layout, labels, contrasts, reruns, atomicity.

The ten cases of the default dataset (seed 0, indices 0..9) are generated once per session
and reduced to small summaries; a two-case dataset is written once through the CLI.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

from tumorseg.data import synth, tumor
from tumorseg.data.cli import synth_main as main
from tumorseg.data.synth import GRID, HardCase, build_dataset, case_is_valid, synthesize_case

N_CASES = 10
MODS = ("FLAIR", "T1", "T1Gd", "T2")


def _digest(a: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest()


def _summary(case: synth.SynthCase) -> dict:
    im, lab, tis = case.image, case.label, case.tissue
    healthy = {t: (lab == 0) & (tis == code) for t, code in (("csf", 1), ("gm", 2), ("wm", 3))}
    means = {}
    for m in range(4):
        ch = im[..., m]
        means[m] = {t: float(ch[sel].mean()) for t, sel in healthy.items()}
        for r, v in (("edema", 1), ("non_enhancing", 2), ("enhancing", 3)):
            sel = lab == v
            means[m][r] = float(ch[sel].mean()) if sel.any() else float("nan")
    brain = tis > 0
    return {
        "image_sha": _digest(im),
        "label_sha": _digest(lab),
        "shapes": (im.shape, lab.shape, tis.shape),
        "dtypes": (im.dtype, lab.dtype, tis.dtype),
        "label_values": set(np.unique(lab).tolist()),
        "counts": np.bincount(lab.ravel(), minlength=4),
        "means": means,
        "nonzero_outside": int(np.count_nonzero(im[~brain])),
        "label_outside": int(np.count_nonzero(lab[~brain])),
        "brain_nonzero_frac": float((im[brain].max(axis=-1) > 0).mean()),
        "integer_valued": bool(np.all(im == np.rint(im))),
        "max": float(im.max()),
        "brain_slices": np.flatnonzero(brain.any(axis=(0, 1))),
        "label_slices": np.flatnonzero((lab > 0).any(axis=(0, 1))),
    }


@pytest.fixture(scope="session")
def summaries() -> list[dict]:
    """Summaries of the default dataset's cases (seed 0, indices 0..9)."""
    return [_summary(synthesize_case(0, i)) for i in range(N_CASES)]


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Path:
    """A two-case dataset written by the CLI entry point."""
    out = tmp_path_factory.mktemp("synth") / "BraTS-Data"
    assert main(["--out", str(out), "--cases", "2", "--seed", "0"]) == 0
    return out


# ----------------------------------------------------------------------------- cases


def test_shapes_and_dtypes(summaries):
    for s in summaries:
        assert s["shapes"] == (GRID + (4,), GRID, GRID)
        assert s["dtypes"] == (np.float32, np.uint8, np.uint8)
        assert s["integer_valued"] and 0 < s["max"] < 32767


def test_every_case_has_all_three_labels(summaries):
    for i, s in enumerate(summaries):
        assert s["label_values"] == {0, 1, 2, 3}, f"case {i}: {s['label_values']}"
        assert s["counts"][1:].min() > 500, f"case {i}: {s['counts']}"


def test_whole_tumor_volume_in_range(summaries):
    for i, s in enumerate(summaries):
        wt_cm3 = s["counts"][1:].sum() / 1000.0
        assert 20.0 <= wt_cm3 <= 250.0, f"case {i}: whole tumour {wt_cm3:.1f} cm^3"


def test_zero_outside_brain(summaries):
    for s in summaries:
        assert s["nonzero_outside"] == 0
        assert s["label_outside"] == 0
        assert s["brain_nonzero_frac"] > 0.99


@pytest.mark.parametrize("m", range(4), ids=MODS)
def test_intensity_orderings(summaries, m):
    for i, s in enumerate(summaries):
        g = s["means"][m]
        tumour = (g["edema"], g["non_enhancing"], g["enhancing"])
        others = (g["gm"], g["wm"]) + tumour
        msg = f"case {i} {MODS[m]}: " + ", ".join(f"{k} {v:.0f}" for k, v in g.items())
        if m == 0:
            assert g["edema"] > g["non_enhancing"] > g["gm"] > g["wm"], msg
            assert g["csf"] < min(others), msg
        elif m == 1:
            assert g["wm"] > g["gm"] > max(tumour), msg
            assert g["csf"] < min(others), msg
        elif m == 2:
            assert g["enhancing"] > g["wm"] > g["gm"] > g["non_enhancing"], msg
            assert g["csf"] < min(others), msg
        else:
            assert g["csf"] > g["edema"] > g["gm"] > g["wm"], msg


def test_contrasts_and_scale_vary_between_cases(summaries):
    gm_wm = np.array(
        [[s["means"][m]["gm"] / s["means"][m]["wm"] for m in range(4)] for s in summaries]
    )
    wm = np.array([[s["means"][m]["wm"] for m in range(4)] for s in summaries])
    # GM/WM contrast spreads widely across cases, and so does the global intensity scale
    assert np.all(np.ptp(np.abs(gm_wm - 1.0), axis=0) > 0.3 * np.abs(gm_wm - 1.0).mean(axis=0))
    assert np.all(wm.max(axis=0) / wm.min(axis=0) > 1.3)


def test_deterministic_per_seed_and_index(summaries):
    again = synthesize_case(0, 1)
    assert _digest(again.image) == summaries[1]["image_sha"]
    assert _digest(again.label) == summaries[1]["label_sha"]
    # every case differs, and another seed gives another case 1
    assert len({s["image_sha"] for s in summaries}) == N_CASES
    other = synthesize_case(1, 1)
    assert _digest(other.image) != summaries[1]["image_sha"]


def test_empty_slices_above_and_below_the_brain(summaries):
    # like real BraTS volumes: at least 5 empty slices at each end, and no label in them
    for i, s in enumerate(summaries):
        lo, hi = s["brain_slices"].min(), s["brain_slices"].max()
        assert lo >= 5 and hi <= GRID[2] - 6, f"case {i}: brain on slices {lo}..{hi}"
        assert s["label_slices"].min() >= 5 and s["label_slices"].max() <= GRID[2] - 6


# ----------------------------------------------------------------------------- randomized


N_RANDOM = 6


@pytest.fixture(scope="session")
def randomized() -> list[dict]:
    """Summaries and drawn tumour z-scores of randomized cases (seed 3)."""
    out = []
    for i in range(N_RANDOM):
        case = synthesize_case(3, i, randomize=True)
        summary = _summary(case)
        summary["z"] = {
            r: case.contrasts[r].copy() for r in ("edema", "non_enhancing", "enhancing")
        }
        out.append(summary)
    return out


def test_randomized_cases_are_valid_and_deterministic(randomized):
    for i, s in enumerate(randomized):
        assert s["shapes"] == (GRID + (4,), GRID, GRID)
        assert s["label_values"] <= {0, 1, 2, 3} and s["counts"][1] > 0, f"case {i}"
        assert s["nonzero_outside"] == 0 and s["label_outside"] == 0
        assert s["integer_valued"] and 0 < s["max"] < 32767
        assert s["brain_slices"].min() >= 5 and s["brain_slices"].max() <= GRID[2] - 6
    again = synthesize_case(3, 0, randomize=True)
    assert _digest(again.image) == randomized[0]["image_sha"]
    # a randomized case is not the course case of the same seed and index
    assert _digest(synthesize_case(3, 0).image) != randomized[0]["image_sha"]


def test_randomized_contrasts_are_wider_than_the_course(summaries, randomized):
    course_edema = np.array([s["means"][0]["edema"] / s["means"][0]["wm"] for s in summaries])
    rand_edema = np.array([s["means"][0]["edema"] / s["means"][0]["wm"] for s in randomized])
    # FLAIR edema/WM ratio: the randomized cases reach fainter edema than any course case
    assert rand_edema.min() < course_edema.min()
    # tumour volumes vary more (small tumours too)
    wt = np.array([s["counts"][1:].sum() for s in randomized])
    course_wt = np.array([s["counts"][1:].sum() for s in summaries])
    assert wt.min() < course_wt.min()


def test_randomized_files_are_tagged(tmp_path):
    out = tmp_path / "rand"
    build_dataset(out, cases=1, seed=3, progress=False, randomize=True)
    assert case_is_valid(out, 3, 0, randomize=True)
    assert not case_is_valid(out, 3, 0)  # a course build would regenerate it
    assert "--randomize" in json.loads((out / "dataset.json").read_text())["release"]


# ----------------------------------------------------------------------------- hard cases

HARD_SEED = 5


@pytest.fixture(scope="session")
def hard_cases() -> dict[HardCase, dict]:
    """Labels, digest and contrasts of case 0 of each hard-case kind (seed ``HARD_SEED``)."""
    out = {}
    for kind in HardCase:
        case = synthesize_case(HARD_SEED, 0, randomize=True, hard=kind)
        out[kind] = {
            "label": case.label,
            "image_sha": _digest(case.image),
            "label_sha": _digest(case.label),
            "counts": np.bincount(case.label.ravel(), minlength=4),
            "outside": int(np.count_nonzero(case.image[case.tissue == 0])),
        }
    return out


def test_hard_cases_differ_and_stay_in_the_brain(hard_cases):
    assert len({h["label_sha"] for h in hard_cases.values()}) == len(HardCase)
    for kind, h in hard_cases.items():
        assert h["outside"] == 0, kind
        assert h["counts"][1] > 0, f"{kind}: no edema"


def test_thin_rim_wraps_a_necrotic_core(hard_cases):
    lab = hard_cases[HardCase.THIN_RIM]["label"]
    n = hard_cases[HardCase.THIN_RIM]["counts"]
    assert n[2] > 2000 and n[3] > 1000, f"necrotic core and rim: {n}"
    enh = lab == 3
    # the rim is thin: enhancing voxels lie within 3 voxels of the core's outside ...
    depth = ndi.distance_transform_edt(lab >= 2)
    assert np.percentile(depth[enh], 95) <= 3.0
    # ... and mostly within 3 voxels of the necrosis they wrap
    to_necrosis = ndi.distance_transform_edt(lab != 2)
    assert (to_necrosis[enh] <= 3.0).mean() > 0.85


def test_low_grade_has_little_enhancement(hard_cases):
    n = hard_cases[HardCase.LOW_GRADE]["counts"]
    wt = n[1:].sum()
    assert n[3] <= tumor.LOW_GRADE_MAX_ENH * wt, f"enhancing {n[3]} of {wt}"
    assert n[2] > 0.2 * wt, f"non-enhancing {n[2]} of {wt}: not a large non-enhancing tumour"


def test_hard_style_makes_low_grade_enhancement_faint():
    rng = np.random.default_rng(0)
    style = synth.randomized_style(rng)
    low = synth.hard_style(rng, style, HardCase.LOW_GRADE)
    rim = synth.hard_style(rng, style, HardCase.THIN_RIM)
    assert 0.3 <= low.contrasts["enhancing"][2] <= 1.2
    assert rim.contrasts["enhancing"][2] >= 1.5
    assert (
        synth.hard_style(rng, style, HardCase.SMALL).contrasts["enhancing"][2]
        == (style.contrasts["enhancing"][2])
    )
    assert style.contrasts["enhancing"][2] != low.contrasts["enhancing"][2]  # a copy changed


def test_small_lesion_volume(hard_cases):
    n = hard_cases[HardCase.SMALL]["counts"]
    lo, hi = tumor.SMALL_WT_VOX
    assert lo / 3 <= n[1:].sum() <= hi, n
    assert n[2] + n[3] > 0


def test_hard_kinds_cycle_and_need_randomize():
    kinds = (HardCase.THIN_RIM, HardCase.LOW_GRADE, HardCase.SMALL)
    assert [synth.hard_kind(kinds, i) for i in range(4)] == [*kinds, HardCase.THIN_RIM]
    assert synth.hard_kind((), 3) is None
    with pytest.raises(ValueError, match="randomize"):
        synthesize_case(0, 0, hard=HardCase.SMALL)


def test_hard_files_are_tagged_and_deterministic(tmp_path, hard_cases):
    out = tmp_path / "hard"
    build_dataset(out, cases=1, seed=HARD_SEED, progress=False, randomize=True, hard=["small"])
    assert case_is_valid(out, HARD_SEED, 0, randomize=True, hard=HardCase.SMALL)
    # a plain randomized build or another kind would regenerate the case
    assert not case_is_valid(out, HARD_SEED, 0, randomize=True)
    assert not case_is_valid(out, HARD_SEED, 0, randomize=True, hard=HardCase.THIN_RIM)
    lab = np.asarray(nib.load(str(out / "labelsTr" / "BRATS_001.nii.gz")).dataobj)
    assert _digest(lab) == hard_cases[HardCase.SMALL]["label_sha"]
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["release"].endswith("--randomize --hard small")
    assert meta["hardCases"] == {"BRATS_001": "small"}


def test_cli_names_the_hard_kinds(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for kind in HardCase:
        assert kind.value in text
    with pytest.raises(SystemExit) as exc:
        main(["--out", "unused", "--hard", "small"])  # without --randomize
    assert exc.value.code == 2
    assert "--hard needs --randomize" in capsys.readouterr().err


# ----------------------------------------------------------------------------- files


def test_msd_layout_and_dataset_json(built, summaries):
    meta = json.loads((built / "dataset.json").read_text())
    for key in (
        "name",
        "description",
        "reference",
        "licence",
        "release",
        "tensorImageSize",
        "modality",
        "labels",
        "numTraining",
        "numTest",
        "training",
        "test",
    ):
        assert key in meta
    assert meta["tensorImageSize"] == "4D"
    assert meta["modality"] == {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}
    assert meta["labels"] == {
        "0": "background",
        "1": "edema",
        "2": "non-enhancing tumor",
        "3": "enhancing tumour",
    }
    assert meta["numTraining"] == 2 and meta["numTest"] == 0 and meta["test"] == []
    assert meta["training"] == [
        {"image": f"./imagesTr/BRATS_00{i}.nii.gz", "label": f"./labelsTr/BRATS_00{i}.nii.gz"}
        for i in (1, 2)
    ]
    assert "SYNTHETIC" in meta["description"] and "MNI ICBM152 2009a" in meta["description"]
    for i, entry in enumerate(meta["training"]):
        img = nib.load(str(built / entry["image"]))
        lab = nib.load(str(built / entry["label"]))
        assert img.shape == GRID + (4,) and lab.shape == GRID
        assert np.array_equal(img.affine, np.eye(4)) and np.array_equal(lab.affine, np.eye(4))
        assert img.header.get_zooms()[:3] == (1.0, 1.0, 1.0)
        assert lab.get_data_dtype() == np.uint8
        assert (built / entry["image"]).stat().st_size <= 12 * 1024 * 1024
        # what is on disk is exactly what synthesize_case returns
        data = np.asarray(img.dataobj)
        assert _digest(data.astype(np.float32)) == summaries[i]["image_sha"]
        assert _digest(np.asarray(lab.dataobj)) == summaries[i]["label_sha"]
    leftovers = [p for p in built.rglob("*") if "tmp" in p.name]
    assert leftovers == []


def test_rerun_skips_valid_and_repairs_broken(built, monkeypatch):
    img1 = built / "imagesTr" / "BRATS_001.nii.gz"
    img2 = built / "imagesTr" / "BRATS_002.nii.gz"
    lab2 = built / "labelsTr" / "BRATS_002.nii.gz"
    good = img2.read_bytes()
    mtime1 = img1.stat().st_mtime_ns

    calls = []
    real = synth.synthesize_case

    def counting(seed, index, randomize=False, hard=None):
        calls.append(index)
        return real(seed, index, randomize, hard)

    monkeypatch.setattr(synth, "synthesize_case", counting)
    build_dataset(built, cases=2, seed=0, progress=False)
    assert calls == [] and img1.stat().st_mtime_ns == mtime1

    img2.write_bytes(good[: len(good) // 2])  # truncated, as by a killed copy
    assert not case_is_valid(built, 0, 1)
    build_dataset(built, cases=2, seed=0, progress=False)
    assert calls == [1]
    assert img2.read_bytes() == good and img1.stat().st_mtime_ns == mtime1

    lab2.write_bytes(b"not a nifti file")
    build_dataset(built, cases=2, seed=0, progress=False)
    assert calls == [1, 1] and case_is_valid(built, 0, 1)
    # a different seed makes every existing case stale
    assert not case_is_valid(built, 7, 0)
    assert [p for p in built.rglob("*") if "tmp" in p.name] == []


def _build_in_subprocess(out: Path, blas_threads: int, jobs: int) -> bytes:
    """Build the two-case dataset in a fresh interpreter with ``blas_threads`` BLAS threads on
    OpenBLAS's Haswell kernels (where a threaded matrix product rounds differently); returns
    the bytes of every file written."""
    env = dict(
        os.environ,
        OPENBLAS_NUM_THREADS=str(blas_threads),
        OMP_NUM_THREADS=str(blas_threads),
        OPENBLAS_CORETYPE="Haswell",
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tumorseg.cli",
            "synth",
            "--out",
            str(out),
            "--cases",
            "2",
            "--seed",
            "0",
            "--jobs",
            str(jobs),
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    return b"".join(
        (out / sub / f"BRATS_00{i}.nii.gz").read_bytes()
        for sub in ("imagesTr", "labelsTr")
        for i in (1, 2)
    )


@pytest.mark.slow
def test_same_files_whatever_the_blas_threads_and_jobs(tmp_path):
    one = _build_in_subprocess(tmp_path / "t1j1", blas_threads=1, jobs=1)
    assert _build_in_subprocess(tmp_path / "t2j1", blas_threads=2, jobs=1) == one, (
        "2 BLAS threads give other bytes than 1"
    )
    assert _build_in_subprocess(tmp_path / "t2j2", blas_threads=2, jobs=2) == one, (
        "--jobs 2 gives other bytes than --jobs 1"
    )

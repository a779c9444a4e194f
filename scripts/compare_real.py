"""Compare synthetic cases with the real BraTS patches in ../shared/real-brats/train.

Both sides are cut into 160x160x16 patches (real: the stored course patches; synthetic:
random patches with >= 5 % tumour, as the course samples them).  For every patch and
modality the intensities are expressed in healthy-tissue units, z = (x - mean_h) / sd_h,
with mean_h, sd_h over the nonzero (brain) voxels labelled 0.  The table prints, per region
(edema, non-enhancing core, enhancing) and modality, the mean z and the within-region SD
of z (uniformity), the fine-scale texture of healthy tissue,
std(x - gaussian_filter(x, (1, 1, 0))) / std(x) over healthy brain eroded by 2 voxels,
the tumour and brain fractions per patch, the mean z of every region after plain
per-channel standardization over the brain (what the model sees), and the distance between
the real and synthetic histograms of z per region and modality (Wasserstein-1, in healthy
SD units: 0 = identical distributions; 0.3 ~ a shift of the mean by 0.3 SD).

Usage: python scripts/compare_real.py [--data DIR | --cases N --seed S] [--patches K] [--quick]
``--quick``: a smoke run (1 case of the sample data when built, 1 patch, 2 real patches; without
the real patches it compares the synthetic patch with itself).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "real-brats" / "train"
MODS = ("FLAIR", "T1", "T1Gd", "T2")
REGIONS = ("edema", "non_enhancing", "enhancing")


def patch_stats(x: np.ndarray, lab: np.ndarray) -> dict[str, np.ndarray]:
    """Statistics of one patch.  x: (4, X, Y, Z) raw intensities; lab: (X, Y, Z) in {0..3}.

    Returns arrays of shape (4,) or (3, 4) keyed by statistic name (NaN where a region is
    smaller than 50 voxels).
    """
    brain = x.sum(0) > 0
    healthy = brain & (lab == 0)
    core_h = ndi.binary_erosion(healthy, iterations=2)
    zvals = [[None] * 4 for _ in range(4)]  # region (healthy, edema, core, enh) x modality
    zmean = np.full((3, 4), np.nan)
    zsd = np.full((3, 4), np.nan)
    bz = np.full((4, 4), np.nan)
    tex = np.zeros(4)
    for c in range(4):
        xc = x[c].astype(np.float32)
        m, s = xc[healthy].mean(), xc[healthy].std() + 1e-6
        mb, sb = xc[brain].mean(), xc[brain].std() + 1e-6
        zvals[0][c] = ((xc[healthy] - m) / s)[::16]
        for k in range(1, 4):
            sel = lab == k
            if sel.sum() >= 50:
                z = (xc[sel] - m) / s
                zmean[k - 1, c], zsd[k - 1, c] = z.mean(), z.std()
                zvals[k][c] = z[::4]
        for k in range(4):
            sel = (lab == k) & brain
            if sel.sum() >= 50:
                bz[k, c] = (xc[sel].mean() - mb) / sb
        hf = xc - ndi.gaussian_filter(xc, (1, 1, 0))
        tex[c] = hf[core_h].std() / (xc[core_h].std() + 1e-6)
    return {
        "zmean": zmean,
        "zsd": zsd,
        "tex": tex,
        "bz": bz,
        "zvals": zvals,
        "tumor": np.array([(lab > 0).mean()]),
        "brain": np.array([brain.mean()]),
    }


def real_patches(limit: int | None = None):
    """The stored real course patches: (x (4, 160, 160, 16), label (160, 160, 16)) each."""
    import h5py

    for f in sorted(REAL.glob("*.h5"))[:limit]:
        with h5py.File(f, "r") as h:
            yield h["x"][:], np.argmax(h["y"][:], axis=-1)


def synth_patches(cases: list[tuple[np.ndarray, np.ndarray]], per_case: int, seed: int = 0):
    """Random 160x160x16 patches with >= 5 % tumour.  cases: [(image (X,Y,Z,4), label)]."""
    rng = np.random.default_rng(seed)
    for image, label in cases:
        got, tries = 0, 0
        while got < per_case and tries < 1000:
            tries += 1
            sx, sy = rng.integers(0, image.shape[0] - 160 + 1, size=2)
            sz = rng.integers(0, image.shape[2] - 16 + 1)
            lab = label[sx : sx + 160, sy : sy + 160, sz : sz + 16]
            if (lab > 0).mean() < 0.05:
                continue
            got += 1
            x = np.moveaxis(image[sx : sx + 160, sy : sy + 160, sz : sz + 16], -1, 0)
            yield x, lab


def summarize(stats: list[dict]) -> dict:
    """Average the per-patch statistics; pool the z samples per region and modality."""
    out = {k: np.nanmean(np.stack([s[k] for s in stats]), axis=0) for k in stats[0] if k != "zvals"}
    out["zvals"] = [
        [
            np.concatenate(
                [s["zvals"][r][c] for s in stats if s["zvals"][r][c] is not None] or [np.zeros(0)]
            )
            for c in range(4)
        ]
        for r in range(4)
    ]
    return out


def load_synth(args) -> list[tuple[np.ndarray, np.ndarray]]:
    if args.data:
        sys.path.insert(0, str(ROOT))
        import nibabel as nib

        out = []
        names = sorted((Path(args.data) / "imagesTr").glob("*.nii.gz"))[: args.cases]
        for p in names:
            img = np.asarray(nib.load(str(p)).dataobj, dtype=np.float32)
            lab = np.asarray(nib.load(str(p.parent.parent / "labelsTr" / p.name)).dataobj)
            out.append((img, lab))
        return out
    from tumorseg.data.synth import synthesize_case

    return [(c.image, c.label) for c in (synthesize_case(args.seed, i) for i in range(args.cases))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="synthetic MSD folder to read (default: generate in memory)")
    p.add_argument("--cases", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--patches", type=int, default=5, help="synthetic patches per case")
    p.add_argument("--quick", action="store_true", help="a tiny smoke run (figures meaningless)")
    args = p.parse_args(argv)
    if args.quick:
        args.cases, args.patches = 1, 1
        sample = ROOT / "data" / "BraTS-Data"
        args.data = args.data or (str(sample) if (sample / "imagesTr").is_dir() else None)
    if not REAL.is_dir() and not args.quick:
        print(f"real patches not found at {REAL}", file=sys.stderr)
        return 1
    syn = summarize([patch_stats(x, y) for x, y in synth_patches(load_synth(args), args.patches)])
    if REAL.is_dir():
        real = summarize([patch_stats(x, y) for x, y in real_patches(2 if args.quick else None)])
    else:
        print(f"real patches not found at {REAL}: comparing the synthetic patches with themselves")
        real = syn
    print("mean z in healthy-tissue SD units (real / synthetic); [within-region SD of z]")
    print(f"{'region':<8}" + "".join(f"{m:>24}" for m in MODS))
    for r, name in enumerate(REGIONS):
        cells = [
            f"{real['zmean'][r, c]:+5.2f}/{syn['zmean'][r, c]:+5.2f} "
            f"[{real['zsd'][r, c]:.2f}/{syn['zsd'][r, c]:.2f}]"
            for c in range(4)
        ]
        print(f"{name:<8}" + "".join(f"{c:>24}" for c in cells))
    print("\nmean z after per-channel standardization over the brain (real / synthetic)")
    for r, name in enumerate(("healthy",) + REGIONS):
        cells = [f"{real['bz'][r, c]:+5.2f}/{syn['bz'][r, c]:+5.2f}" for c in range(4)]
        print(f"{name:<8}" + "".join(f"{c:>22}" for c in cells))
    from scipy.stats import wasserstein_distance

    print("\nhistogram distance of z, real vs synthetic (Wasserstein-1, healthy SD units)")
    for r, name in enumerate(("healthy",) + REGIONS):
        cells = []
        for c in range(4):
            a, b = real["zvals"][r][c], syn["zvals"][r][c]
            cells.append(f"{wasserstein_distance(a, b):.2f}" if a.size and b.size else "n/a")
        print(f"{name:<8}" + "".join(f"{c:>22}" for c in cells))
    print("\nfine-scale texture of healthy tissue (real / synthetic)")
    print(f"{'':<8}" + "".join(f"{real['tex'][c]:>13.2f}/{syn['tex'][c]:.2f}" for c in range(4)))
    print(
        f"\ntumour fraction per patch: real {real['tumor'][0]:.3f}  synthetic {syn['tumor'][0]:.3f}"
    )
    print(
        f"brain fraction per patch:  real {real['brain'][0]:.3f}  synthetic {syn['brain'][0]:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

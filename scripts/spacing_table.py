"""Spacing ablation: real scans made coarser, predicted with and without resampling.

Each case of a BraTS folder (e.g. ``valid/``) is written again at a coarser grid by keeping
every k-th voxel along each axis (``--grid 1 1 3``: every third slice, 1 x 1 x 3 mm; ``--grid
2 2 2``: every second voxel, 2 mm), with the header spacing set to match and the label map
subsampled the same way (nearest), as MSD-layout folders ``OUT/<grid>/imagesTr|labelsTr``.
Then ``tumorseg evaluate`` runs on each grid at its defaults (resampling to the model's spacing)
and with ``--no-resample``; scores are on the coarse (input) grid.  Per-patient and mean Dice /
HD95 are printed as a Markdown table and written to ``OUT/spacing_table.json``.

    python scripts/spacing_table.py --data ../shared/real-brats-scans/valid --out runs/spacing
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
from tqdm import tqdm

from tumorseg.data.discover import open_dataset

REGIONS = ("WT", "TC", "ET")


def write_grid(data: Path, out: Path, step: tuple[int, int, int], limit: int | None = None) -> Path:
    """Write every case of ``data`` (the first ``limit``) subsampled by ``step`` (X, Y, Z) into
    ``out`` (MSD dirs)."""
    (out / "imagesTr").mkdir(parents=True, exist_ok=True)
    (out / "labelsTr").mkdir(parents=True, exist_ok=True)
    sx, sy, sz = step
    affine = np.diag([float(sx), float(sy), float(sz), 1.0])
    for case in tqdm(list(open_dataset(data))[:limit], desc=f"grid {sx}x{sy}x{sz}", unit="case"):
        target = out / "imagesTr" / f"{case.id}.nii.gz"
        if target.exists():
            continue
        image, label = case.load()
        image = np.ascontiguousarray(image[::sx, ::sy, ::sz]).astype(np.float32)
        label = np.ascontiguousarray(label[::sx, ::sy, ::sz]).astype(np.uint8)
        nib.save(nib.Nifti1Image(label, affine), out / "labelsTr" / target.name)
        nib.save(nib.Nifti1Image(image, affine), target)
    return out


def evaluate(folder: Path, table: Path, resample: bool) -> dict:
    """Run ``tumorseg evaluate`` on ``folder`` (``--no-resample`` unless ``resample``)."""
    if not table.exists():
        cmd = [
            sys.executable,
            "-m",
            "tumorseg",
            "evaluate",
            "--data",
            str(folder),
            "--out",
            str(table),
        ]
        if not resample:
            cmd.append("--no-resample")
        subprocess.run(cmd, check=True)
    return json.loads(table.read_text())


def rows(result: dict) -> dict[str, dict[str, float]]:
    """Per case: WT/TC/ET Dice and HD95 from an evaluate table."""
    keys = [f"{r}_{m}" for r in REGIONS for m in ("dice", "hd95")]
    return {
        c["case"]: {k: float(c[k]) for k in keys} for c in result["cases"] if not c.get("error")
    }


def fmt(scores: dict[str, float]) -> str:
    dice = "/".join(f"{scores[f'{r}_dice']:.3f}" for r in REGIONS)
    return f"{dice} ({scores['TC_hd95']:.1f}/{scores['ET_hd95']:.1f})"


def quick() -> int:
    """Write the coarse grids of the first sample case (``make data``) and print their shapes."""
    data = Path(__file__).resolve().parents[1] / "data" / "BraTS-Data"
    with tempfile.TemporaryDirectory(prefix="spacing-") as tmp:
        for step in ((1, 1, 3), (2, 2, 2)):
            folder = write_grid(data, Path(tmp) / "x".join(map(str, step)), step, limit=1)
            image = nib.load(next((folder / "imagesTr").iterdir()))
            print(folder.name, image.shape, nib.affines.voxel_sizes(image.affine))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--quick", action="store_true", help="write one sample case's grids only")
    ap.add_argument("--grids", nargs="+", default=["1x1x3", "2x2x2"])
    args = ap.parse_args(argv)
    if args.quick:
        return quick()
    if args.data is None or args.out is None:
        ap.error("--data and --out are required")
    results: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for grid in args.grids:
        step = tuple(int(v) for v in grid.split("x"))
        folder = write_grid(args.data, args.out / grid, step)  # type: ignore[arg-type]
        for resample in (False, True):
            name = f"{grid}_{'resampled' if resample else 'as-is'}"
            results[name] = rows(evaluate(folder, args.out / f"{name}.json", resample))
    (args.out / "spacing_table.json").write_text(json.dumps(results, indent=1))
    cases = sorted(next(iter(results.values())))
    print("| case | " + " | ".join(results) + " |")
    print("|---" * (len(results) + 1) + "|")
    for case in cases:
        print(
            f"| {case} | " + " | ".join(fmt(r[case]) for r in results.values() if case in r) + " |"
        )
    means = {
        n: {k: float(np.mean([c[k] for c in r.values()])) for k in next(iter(r.values()))}
        for n, r in results.items()
    }
    print("| **mean** | " + " | ".join(fmt(m) for m in means.values()) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Per-region threshold sweep on saved region probabilities (an ablation, chosen on valid/).

Reads ``PROBS/probabilities/<case>.nii.gz`` (written by ``tumorseg evaluate --save PROBS
--save-probabilities``: uint8 (X, Y, Z, 3), WT/TC/ET, value/255) and the cases' label maps,
and prints each region's Dice per case and mean for each threshold, with the nested-region
rule of ``probabilities_to_labels`` (a voxel is ET when ET is on, TC when TC or ET is on, WT
when any is on).  The whole-scan clean-up is not applied here, so compare thresholds with each
other, then confirm a choice with ``tumorseg evaluate --threshold``.

    python scripts/threshold_sweep.py --data ../shared/real-brats-scans/valid --probs runs/probs_pair
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

from tumorseg.data.discover import open_dataset
from tumorseg.metrics.core import dice

REGIONS = ("WT", "TC", "ET")
TRUTH_CODES = {"WT": (1, 2, 3), "TC": (2, 3), "ET": (3,)}


def region_masks(probs: np.ndarray, thresholds: dict[str, float]) -> dict[str, np.ndarray]:
    """Nested predicted regions from ``probs`` (X, Y, Z, 3) at per-region thresholds."""
    et = probs[..., 2] > thresholds["ET"]
    tc = (probs[..., 1] > thresholds["TC"]) | et
    wt = (probs[..., 0] > thresholds["WT"]) | tc
    return {"WT": wt, "TC": tc, "ET": et}


def quick() -> int:
    """The sweep on the first case of the sample data (``make data``), with probabilities made up
    from its label: 0.8 inside each region, 0.2 outside."""
    data = Path(__file__).resolve().parents[1] / "data" / "BraTS-Data"
    case = open_dataset(data)[0]
    _, label = case.load()
    probs = np.stack([np.isin(label, TRUTH_CODES[r]) for r in REGIONS], axis=-1)
    codes = np.where(probs, 204, 51).astype(np.uint8)
    with tempfile.TemporaryDirectory(prefix="sweep-") as tmp:
        (Path(tmp) / "probabilities").mkdir()
        nib.save(
            nib.Nifti1Image(codes, np.eye(4)), Path(tmp) / "probabilities" / f"{case.id}.nii.gz"
        )
        return main(["--data", str(data), "--probs", tmp, "--thresholds", "0.1", "0.5", "0.9"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path)
    ap.add_argument("--probs", type=Path)
    ap.add_argument("--quick", action="store_true", help="one sample case, made-up probabilities")
    ap.add_argument(
        "--thresholds", type=float, nargs="+", default=[0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6]
    )
    args = ap.parse_args(argv)
    if args.quick:
        return quick()
    if args.data is None or args.probs is None:
        ap.error("--data and --probs are required")
    scores: dict[str, dict[float, list[float]]] = {
        r: {t: [] for t in args.thresholds} for r in REGIONS
    }
    names = []
    for case in open_dataset(args.data):
        path = args.probs / "probabilities" / f"{case.id}.nii.gz"
        if not path.exists():
            continue
        names.append(case.id)
        probs = np.asarray(nib.load(path).dataobj.get_unscaled()).astype(np.float32) / 255.0
        _, label = case.load()
        for t in args.thresholds:
            masks = region_masks(probs, dict.fromkeys(REGIONS, t))
            for r in REGIONS:
                truth = np.isin(label, TRUTH_CODES[r])
                scores[r][t].append(float(dice(masks[r], truth)))
    print("cases:", ", ".join(names))
    for r in REGIONS:
        print(f"\n{r}: threshold | mean | per case")
        for t in args.thresholds:
            vals = scores[r][t]
            print(f"  {t:.2f} | {np.mean(vals):.4f} | " + " ".join(f"{v:.3f}" for v in vals))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

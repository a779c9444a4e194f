"""``tumorseg predict`` on one real scan: a candidate model's seconds against a baseline's.

Times the whole command (start-up, model load, prediction, clean-up, writing the map) as a
user runs it, for ``--weights`` (default: the shipped model) and ``--baseline`` (a
``.weights.h5`` with its manifest, e.g. the previous shipped model taken from git), alternating
the two, ``--runs`` times each, once per TensorFlow CPU code path (oneDNN on, and off with
``TF_ENABLE_ONEDNN_OPTS=0``).  Prints min / median seconds of each and the ratio of the
medians (issue U's target: at most 1.25).

Usage: python benchmarks/bench_predict_ratio.py --baseline OLD.weights.h5 [--case DIR]
    [--weights NEW.weights.h5] [--runs 3] [--paths on off]
Without ``--case`` it takes the first case of ../shared/real-brats-scans/valid, else the sample
data's last case; without ``--baseline`` it times the shipped model alone.  ``--quick``: a smoke
run, one pass on the oneDNN path of a tiny made-up scan, the shipped model against itself.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tumorseg.hardware import CODE_PATHS  # noqa: E402
from tumorseg.resources import pretrained_weights  # noqa: E402


def default_case() -> Path:
    """A real validation case when ../shared is beside the checkout, else a sample case."""
    real = ROOT.parent / "shared" / "real-brats-scans" / "valid"
    if real.is_dir():
        return sorted(p for p in real.iterdir() if p.is_dir())[0]
    images = sorted((ROOT / "data" / "BraTS-Data" / "imagesTr").glob("*.nii.gz"))
    if not images:
        sys.exit("no case: pass --case, or run `make data` first")
    return images[-1]


def time_predict(case: Path, weights: Path, onednn: str, out: Path) -> float:
    """Seconds of one ``tumorseg predict CASE --out OUT --weights W`` in a fresh process."""
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "TF_CPP_MIN_LOG_LEVEL": "2"}
    cmd = [sys.executable, "-m", "tumorseg", "predict", str(case), "--out", str(out)]
    cmd += ["--weights", str(weights), "--overwrite"]
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_predict_ratio", description=__doc__.splitlines()[0])
    p.add_argument("--case", type=Path, default=None)
    p.add_argument("--weights", type=Path, default=pretrained_weights())
    p.add_argument("--baseline", type=Path, default=None)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--paths", nargs="+", choices=["on", "off"], default=["on", "off"])
    p.add_argument("--quick", action="store_true", help="smoke run on a tiny made-up scan")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_predict_ratio-") as tmp:
        if args.quick:
            args.case, args.baseline = tiny_case(Path(tmp)), args.weights
            args.runs, args.paths = 1, ["on"]
        return run(args)


def tiny_case(folder: Path) -> Path:
    """A 32x32x16 four-channel scan with a bright blob, as one MSD-style NIfTI file."""
    import nibabel as nib
    import numpy as np

    image = np.zeros((32, 32, 16, 4), np.float32)
    image[4:28, 4:28, 2:14] = 100.0
    image[12:20, 12:20, 6:10] = 300.0
    path = folder / "tiny.nii.gz"
    nib.save(nib.Nifti1Image(image, np.eye(4)), path)
    return path


def run(args: argparse.Namespace) -> int:
    """Time the models of ``args`` on its case, per code path; print the figures."""
    case = args.case or default_case()
    models = {"candidate": args.weights}
    if args.baseline is not None:
        models["baseline"] = args.baseline
    print(f"case {case.name}; {args.runs} runs each, alternating; seconds of the whole command")
    with tempfile.TemporaryDirectory(prefix="bench_predict_ratio-") as tmp:
        for path in args.paths:
            onednn = CODE_PATHS[f"oneDNN {path}"]
            times: dict[str, list[float]] = {k: [] for k in models}
            for _ in range(args.runs):
                for name, weights in models.items():
                    out = Path(tmp) / f"{name}.nii.gz"
                    times[name].append(time_predict(case, weights, onednn, out))
            medians = {k: statistics.median(v) for k, v in times.items()}
            for name, t in times.items():
                print(
                    f"oneDNN {path:3s} {name:9s} min {min(t):6.1f} s  median {medians[name]:6.1f} s"
                    f"  ({', '.join(f'{v:.1f}' for v in t)})"
                )
            if "baseline" in medians:
                ratio = medians["candidate"] / medians["baseline"]
                print(f"oneDNN {path:3s} ratio candidate / baseline (medians): {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How a model does on data it never saw: real patches, held-out synthetic patches and scans.

Prints, for the shipped model (or ``--weights``), loaded through ``load_pretrained`` with its
training standardization:

* per-class patch Dice (edema, non-enhancing, enhancing; hard, threshold 0.5, mean over
  patches) on every ``--patches DIR`` of course h5 patches, e.g. ``../shared/real-brats/train``
  (real, never trained on; the default when it exists) or the valid split of a randomized patch store;
* whole-scan WT/TC/ET Dice on the cases of ``--scans DIR`` (default: the course's seed-0
  synthetic cases in data/BraTS-Data, which no shipped model was trained on).

Usage::

    .venv/bin/python benchmarks/bench_realism.py --patches ../shared/real-brats/train
    .venv/bin/python benchmarks/bench_realism.py --weights runs/x/model.weights.h5 \\
        --patches runs/rand/processed/valid --scans data/BraTS-Data --json runs/x/figures.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def patch_dice(model, folder: Path, mode: str) -> dict[str, float]:
    """Mean hard Dice per class over the ``*.h5`` patches of ``folder``."""
    from tumorseg.patches import VolumeDataGenerator
    from tumorseg.train import evaluate_batches

    ids = sorted(p.name for p in folder.glob("*.h5"))
    if not ids:
        raise SystemExit(f"{folder}: no .h5 patches")
    gen = VolumeDataGenerator(ids, folder, batch_size=1, shuffle=False, verbose=0, standardize=mode)
    return evaluate_batches(model, (gen[i] for i in range(len(gen))))


def scan_dice(model, data: Path) -> dict[str, float]:
    """Mean WT/TC/ET Dice over the whole cases of the dataset ``data``."""
    from tumorseg.inference.evaluate import evaluate

    table = evaluate(data, model)
    return {r: float(table[f"{r}_dice"].mean()) for r in ("WT", "TC", "ET")} | {"cases": len(table)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--weights", default=None, help="a .weights.h5 with its manifest (default: shipped)"
    )
    p.add_argument("--patches", action="append", default=[], help="folder of course h5 patches")
    p.add_argument(
        "--scans",
        default=str(ROOT / "data" / "BraTS-Data"),
        help="dataset of whole cases ('' to skip)",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = p.parse_args(argv)
    real = ROOT.parent / "shared" / "real-brats" / "train"
    if not args.patches and real.is_dir():
        args.patches = [str(real)]

    from tumorseg.model import load_pretrained

    model, manifest = load_pretrained(*([args.weights] if args.weights else []))
    mode = manifest.get("standardize", "brain")
    print(
        f"model: {args.weights or 'shipped'}; {manifest.get('steps')} steps; "
        f"standardize={mode}; data: {manifest.get('data', {}).get('source', '?')}"
    )
    figures: dict = {"weights": args.weights or "shipped", "patches": {}, "scans": {}}
    for folder in args.patches:
        t = time.perf_counter()
        r = figures["patches"][folder] = patch_dice(model, Path(folder), mode)
        print(
            f"  patches {folder}: edema {r['edema']:.3f}  non-enhancing {r['non_enhancing']:.3f}"
            f"  enhancing {r['enhancing']:.3f}  mean {r['mean']:.3f}  ({r['patches']} patches, "
            f"{time.perf_counter() - t:.0f} s)"
        )
    if args.scans and (Path(args.scans) / "dataset.json").is_file():
        t = time.perf_counter()
        r = figures["scans"][args.scans] = scan_dice(model, Path(args.scans))
        print(
            f"  whole scans {args.scans}: WT {r['WT']:.3f}  TC {r['TC']:.3f}  ET {r['ET']:.3f}"
            f"  ({r['cases']} cases, {time.perf_counter() - t:.0f} s)"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

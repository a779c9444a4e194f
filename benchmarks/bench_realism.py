"""How a model does on data it never saw: real patches, held-out synthetic patches and scans.

Prints, for the shipped model (or ``--weights``), loaded through ``load_pretrained`` with its
training standardization:

* per-class patch Dice (edema, non-enhancing, enhancing; of the label map that
  ``probabilities_to_labels`` gives at threshold 0.5 with the model's output kind, so a class
  model and a region model are measured alike; mean over patches) on every ``--patches DIR`` of course h5 patches, e.g. ``../shared/real-brats/train``
  (real, never trained on; the default when it exists) or the valid split of a randomized patch store;
* whole-scan WT/TC/ET Dice and WT HD95, per case and as the mean over cases, on every
  ``--scans DIR`` (MSD or BraTS layout; default: the course's seed-0 synthetic cases in
  data/BraTS-Data, which no shipped model was trained on, and the real validation patients of
  ``../shared/real-brats-scans/valid`` when present), three ways: as predicted, with the
  manifest's post-processing, and with post-processing plus left-right test-time mirroring,
  each with its seconds per scan.

Usage::

    .venv/bin/python benchmarks/bench_realism.py --patches ../shared/real-brats/train
    .venv/bin/python benchmarks/bench_realism.py --weights runs/x/model.weights.h5 \\
        --patches runs/rand/processed/valid --scans data/BraTS-Data --json runs/x/figures.json
    .venv/bin/python benchmarks/bench_realism.py --patches '' \
        --scans ../shared/real-brats-scans/valid
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pandas as pd

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tumorseg.quiet import import_backend  # noqa: E402

# Keras and TensorFlow without the runtime's start-up lines, before tumorseg.model imports them
import_backend()


def patch_dice(model, folder: Path, mode: str, outputs: str) -> dict[str, float]:
    """Mean hard Dice per class over the ``*.h5`` patches of ``folder``: each patch's label map
    (``probabilities_to_labels`` at 0.5 with the model's ``outputs`` kind) against its labels."""
    import numpy as np

    from tumorseg.contract import probabilities_to_labels
    from tumorseg.labels import CLASS_KEYS
    from tumorseg.metrics import hard_dice_per_class
    from tumorseg.patches import VolumeDataGenerator

    ids = sorted(p.name for p in folder.glob("*.h5"))
    if not ids:
        raise SystemExit(f"{folder}: no .h5 patches")
    gen = VolumeDataGenerator(ids, folder, batch_size=1, shuffle=False, verbose=0, standardize=mode)
    scores = []
    for i in range(len(gen)):
        x, y = gen[i]
        for probs, truth in zip(np.asarray(model.predict(x, verbose=0)), y):
            labels = probabilities_to_labels(probs, 0.5, outputs)
            masks = np.stack([labels == c for c in (1, 2, 3)]).astype(np.float32)
            scores.append(hard_dice_per_class(masks[None], truth[None])[0])
    s = np.asarray(scores)
    out = {key: float(s[:, c].mean()) for c, key in enumerate(CLASS_KEYS)}
    return out | {"mean": float(s.mean()), "patches": len(s)}


#: The whole-scan variants scored: (name, tta, post-processing from the manifest or none).
VARIANTS = (("plain", "none", False), ("post", "none", True), ("tta-x+post", "x", True))


def scan_scores(model, manifest: dict, data: Path, cases: list[str] | None) -> dict:
    """Per-case and mean WT/TC/ET Dice and WT HD95 of the dataset ``data`` (MSD or BraTS
    layout) for each of ``VARIANTS``: the manifest's post-processing off and on, and with
    left-right test-time mirroring, at the manifest's threshold; with each variant's seconds
    per scan."""
    from tumorseg.inference import InferenceSettings, Postprocess
    from tumorseg.inference.evaluate import predict_cases, score_prediction

    settings = InferenceSettings.from_manifest(manifest)
    rules, threshold = settings.postprocess, settings.threshold
    out: dict = {}
    for tta in sorted({v[1] for v in VARIANTS}):
        for pred in predict_cases(data, model, cases, tta=tta):
            for name, _, post in (v for v in VARIANTS if v[1] == tta):
                clean = rules if post else Postprocess.NONE
                row = score_prediction(pred, clean, threshold, outputs=settings.outputs)
                out.setdefault(name, {})[pred.case] = {
                    k: float(row[k])
                    for k in ("WT_dice", "TC_dice", "ET_dice", "WT_hd95", "seconds")
                }
    summary = {}
    for name, per_case in out.items():
        table = pd.DataFrame.from_dict(per_case, orient="index")
        summary[name] = {
            "WT": table.WT_dice.mean(),
            "TC": table.TC_dice.mean(),
            "ET": table.ET_dice.mean(),
            "WT_hd95_median": table.WT_hd95.median(),
            "seconds_per_scan": table.seconds.mean(),
            "cases": len(table),
            "per_case": per_case,
        }
    return summary


def print_scans(data: str, summary: dict) -> None:
    """Per-case rows and the means of ``scan_scores``."""
    for name, r in summary.items():
        print(
            f"  whole scans {data} [{name}]: WT {r['WT']:.3f}  TC {r['TC']:.3f}  ET {r['ET']:.3f}"
            f"  median WT HD95 {r['WT_hd95_median']:.1f} mm  ({r['cases']} cases, "
            f"{r['seconds_per_scan']:.1f} s/scan)"
        )
        for case, c in r["per_case"].items():
            print(
                f"      {case:<24} WT {c['WT_dice']:.3f}  TC {c['TC_dice']:.3f}  "
                f"ET {c['ET_dice']:.3f}  WT HD95 {c['WT_hd95']:.1f}"
            )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--weights", default=None, help="a .weights.h5 with its manifest (default: shipped)"
    )
    p.add_argument("--patches", action="append", default=[], help="folder of course h5 patches")
    p.add_argument(
        "--scans",
        action="append",
        default=None,
        help="dataset of whole cases, MSD or BraTS layout (repeatable; default: the course's "
        "data/BraTS-Data and, when present, ../shared/real-brats-scans/valid; '' to skip)",
    )
    p.add_argument("--cases", nargs="*", default=None, help="case ids of --scans (default: all)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = p.parse_args(argv)
    real = ROOT.parent / "shared" / "real-brats" / "train"
    if not args.patches and real.is_dir():
        args.patches = [str(real)]
    if args.scans is None:
        real_scans = ROOT.parent / "shared" / "real-brats-scans" / "valid"
        args.scans = [str(ROOT / "data" / "BraTS-Data")] + [str(real_scans)] * real_scans.is_dir()
    args.scans = [s for s in args.scans if s]
    args.patches = [f for f in args.patches if f]

    from tumorseg.inference import resolve_settings
    from tumorseg.model import load_pretrained

    model, manifest = load_pretrained(*([args.weights] if args.weights else []))
    settings = resolve_settings(model)
    mode, outputs = settings.standardize, settings.outputs
    print(
        f"model: {args.weights or 'shipped'}; {manifest.get('steps')} steps; "
        f"standardize={mode}; data: {manifest.get('data', {}).get('source', '?')}"
    )
    figures: dict = {"weights": args.weights or "shipped", "patches": {}, "scans": {}}
    for folder in args.patches:
        t = time.perf_counter()
        r = figures["patches"][folder] = patch_dice(model, Path(folder), mode, outputs)
        print(
            f"  patches {folder}: edema {r['edema']:.3f}  non-enhancing {r['non_enhancing']:.3f}"
            f"  enhancing {r['enhancing']:.3f}  mean {r['mean']:.3f}  ({r['patches']} patches, "
            f"{time.perf_counter() - t:.0f} s)"
        )
    for scans in args.scans:
        summary = figures["scans"][scans] = scan_scores(model, manifest, Path(scans), args.cases)
        print_scans(scans, summary)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

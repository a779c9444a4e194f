"""3D U-Net: parameter counts, CPU step/predict times, peak memory, shipped model's patch Dice.

Prints
* parameters at n_base_filters 32 / 16 / 8 (the original's 16,318,307 at 32);
* seconds per training step (batch 1, 160x160x16, Dice+BCE) and per predicted patch, base 16,
  float32 on this CPU (median of a few steps after a warm-up);
* peak resident memory of this process;
* the shipped model's (``load_pretrained()``) mean patch Dice per class at threshold
  0.5 with its training standardization, on ../shared/real-brats/train (real, never trained on)
  and on the valid split of the local synthetic patch store.
Timings are wall-clock; other processes sharing the CPU make them noisy.

Usage: python benchmarks/bench_model.py [--quick]
``--quick``: a smoke run (timings of a base-4 U-Net, one call each; the shipped model's Dice on
2 patches per folder; figures meaningless).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tumorseg.quiet import import_backend  # noqa: E402

# Keras and TensorFlow without the runtime's start-up lines, before tumorseg.model imports them
import_backend()

from tumorseg.inference import resolve_settings  # noqa: E402
from tumorseg.model import dice_bce_loss, load_pretrained, unet_model_3d  # noqa: E402
from tumorseg.patches import VolumeDataGenerator  # noqa: E402
from tumorseg.resources import pretrained_weights  # noqa: E402
from tumorseg.train import evaluate_batches  # noqa: E402


def _median_seconds(fn, n: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of ``fn()`` over ``n`` calls after one warm-up call."""
    fn()  # warm-up (tracing, allocation)
    wall, cpu = [], []
    for _ in range(n):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return float(np.median(wall)), float(np.median(cpu))


def _patch_dice(model, folder: Path, ids: list[str], mode: str) -> str:
    """Mean patch Dice per output channel (classes or regions, as the model's manifest says)
    of ``model`` on the patches ``ids`` of ``folder``."""
    gen = VolumeDataGenerator(ids, folder, batch_size=2, shuffle=False, verbose=0, standardize=mode)
    outputs = resolve_settings(model).outputs
    r = evaluate_batches(model, (gen[i] for i in range(len(gen))), outputs=outputs)
    channels = "  ".join(f"{k} {v:.3f}" for k, v in r.items() if k not in ("mean", "patches"))
    return f"{channels}  mean {r['mean']:.3f}  ({r['patches']} patches)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a tiny smoke run (figures meaningless)")
    args = p.parse_args(argv)
    base, calls, n_patches = (4, 1, 2) if args.quick else (16, 3, None)
    for filters in (32, 16, 8):
        model = unet_model_3d(dice_bce_loss, n_base_filters=filters)
        print(f"parameters, n_base_filters={filters:2d}: {model.count_params():,}")
    model = unet_model_3d(dice_bce_loss, n_base_filters=base, initial_learning_rate=1e-4)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 4, 160, 160, 16)).astype(np.float32)
    y = (rng.random((1, 3, 160, 160, 16)) > 0.9).astype(np.float32)
    step = _median_seconds(lambda: model.train_on_batch(x, y), calls)
    pred = _median_seconds(lambda: model.predict(x, verbose=0), calls)
    print(
        f"base {base}, float32, batch 1: {step[0]:.2f} s/training step ({step[1]:.2f} CPU-s), "
        f"{pred[0]:.2f} s/predicted patch ({pred[1]:.2f} CPU-s); load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )

    weights = pretrained_weights()
    if weights.is_file():
        shipped, manifest = load_pretrained(weights)
        mode = resolve_settings(shipped).standardize
        print(
            f"shipped model: {manifest.get('steps')} steps on "
            f"{manifest.get('data', {}).get('source', '?')}; standardize={mode}"
        )
        real = ROOT.parent / "shared" / "real-brats" / "train"
        if real.is_dir():
            print(
                f"  real BraTS patches      : "
                f"{_patch_dice(shipped, real, sorted(os.listdir(real))[:n_patches], mode)}"
            )
        store = ROOT / "data" / "BraTS-Data" / "processed"
        if (store / "config.json").is_file():
            valid = json.loads((store / "config.json").read_text())["valid"][:n_patches]
            if valid:
                print(
                    f"  synthetic valid patches : {_patch_dice(shipped, store / 'valid', valid, mode)}"
                )
    else:
        print(f"shipped model: {weights} not found")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train the shipped model on a GPU machine (JAX backend) from synthetic data only.

Used by scripts/gpu_train.sh.  Steps, all in one process tree:

1. synthesize training cases ``synthesize_case(seed, i)`` for ``i < --cases`` in a process pool
   and sample ``--per-case`` 160x160x16 patches (>= 5 % tumor) from each, in memory;
2. the same for ``--valid-cases`` validation cases of a DIFFERENT seed (default: the course's
   sample-data seed 0, so the notebook's cases are never trained on);
3. ``tumorseg.train.train`` with ``MemoryBatches`` (brain standardization after a per-patch
   per-channel gamma; per batch flips and intensity jitter), Dice+BCE, optional mixed_bfloat16, for ``--steps`` steps or
   until ``--max-seconds``;
4. copy ``model.weights.h5``, ``model.json``, ``log.csv`` and snapshots to ``--out``.

Real BraTS data is never read here.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tumorseg.patches.sampling import sample_patch  # noqa: E402
from tumorseg.patches.standardize import standardize_patch  # noqa: E402


def _case_patches(args):
    """Worker: synthesize one case, sample its patches and standardize them ("brain" mode).

    Training patches (``gamma=True``) get a random per-channel gamma (0.7-1.4) on the raw
    intensities first, a contrast change that standardization does not undo.
    Returns ``(index, xs (C, X, Y, Z) float32, ys (3, X, Y, Z) uint8 without background)``.
    """
    seed, index, per_case, small, gamma = args
    from tumorseg.data.synth import synthesize_case

    case = synthesize_case(seed, index)
    image, label = case.image, case.label
    rng = np.random.default_rng([seed, index, 99])
    xs, ys = [], []
    for _ in range(per_case):
        p = sample_patch(image, label, (160, 160, 16), 0.05, rng)
        if p is None:
            break
        x = p.x.astype(np.float32)
        if gamma:
            peak = x.reshape(x.shape[0], -1).max(1).reshape(-1, 1, 1, 1) + 1e-6
            g = rng.uniform(0.7, 1.4, size=(x.shape[0], 1, 1, 1)).astype(np.float32)
            x = peak * (x / peak) ** g
        x = standardize_patch(x, "brain")
        y = np.moveaxis(p.y, 3, 0)[1:].astype(np.uint8)
        if small:  # tiny local dry-run: crop to 32x32x16 around the centre
            x, y = x[:, 64:96, 64:96], y[:, 64:96, 64:96]
        xs.append(np.ascontiguousarray(x))
        ys.append(np.ascontiguousarray(y))
    return index, xs, ys


def make_patches(seed, indices, per_case, jobs, small=False, gamma=False, desc=""):
    """Patches of the cases ``indices`` of ``seed``: ``(x (N, 4, ...), y (N, 3, ...), indices)``."""
    t = time.time()
    xs, ys, names = [], [], []
    work = [(seed, i, per_case, small, gamma) for i in indices]
    ctx = multiprocessing.get_context("spawn")  # no fork after a DL backend is loaded
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        for index, px, py in pool.map(_case_patches, work):
            xs += px
            ys += py
            names.append(index)
    print(f"{desc}: {len(xs)} patches from {len(names)} cases (seed {seed}) "
          f"in {time.time() - t:.0f} s", flush=True)
    return np.stack(xs), np.stack(ys), names


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--work", default="/tmp/gpu_run")
    p.add_argument("--cases", type=int, default=64)
    p.add_argument("--seed", type=int, default=7, help="synthetic seed of the training cases")
    p.add_argument("--valid-seed", type=int, default=0)
    p.add_argument("--valid-cases", type=int, default=4)
    p.add_argument("--per-case", type=int, default=8)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--max-seconds", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--n-base-filters", type=int, default=16)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--snapshots", type=int, nargs="*", default=[], help="extra weight copies at steps")
    p.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    p.add_argument("--prefetch", type=int, default=8, help="batch-preparing threads")
    p.add_argument("--small", action="store_true", help="local dry run: 32x32x16 patches")
    p.add_argument("--init", default=None, help="fine-tune from these .weights.h5")
    args = p.parse_args(argv)
    t0 = time.time()
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    if work.exists() and work.resolve() != out.resolve():
        shutil.rmtree(work)

    xv, yv, vnames = make_patches(args.valid_seed, range(args.valid_cases), 4, args.jobs,
                                  args.small, False, "valid")
    xt, yt, tnames = make_patches(args.seed, range(args.cases), args.per_case, args.jobs,
                                  args.small, True, "train")
    print(f"tumor fraction train {float((yt.max(1) > 0).mean()):.3f} "
          f"valid {float((yv.max(1) > 0).mean()):.3f}", flush=True)
    xv_std = xv
    yv = yv.astype(np.float32)

    def valid():
        return [(xv_std[i : i + 8], yv[i : i + 8]) for i in range(0, len(xv_std), 8)]

    import keras

    from tumorseg.train import MemoryBatches, train

    source = MemoryBatches(xt, yt.astype(np.float32), args.batch_size, args.seed)
    spatial = list(xt.shape[2:])
    config = {"n_base_filters": args.n_base_filters, "input_shape": [4, 160, 160, 16]}
    run_config = dict(config, input_shape=[4, *spatial])
    extra = {
        "standardize": "brain",
        "augment": "per patch: per-channel gamma 0.7-1.4 on raw intensities; per batch: flips "
                   "x/y, per-channel scale 0.9-1.1 and shift +-0.1 after standardization",
        "data": {
            "source": "synthetic only (tumorseg.data.synth.synthesize_case); no real data",
            "train_seed": args.seed, "train_cases": [int(i) for i in tnames],
            "valid_seed": args.valid_seed, "valid_cases": [int(i) for i in vnames],
            "per_case": args.per_case, "train_patches": int(len(xt)),
            "valid_patches": int(len(xv)),
        },
        "device": os.environ.get("TUMORSEG_DEVICE", "unknown"),
        "data_seconds": round(time.time() - t0, 1),
    }
    snaps = sorted(args.snapshots)

    manifest = train(
        source, work, args.steps, run_config, seed=args.seed, lr=args.lr, bf16=args.bf16,
        valid=valid, eval_every=args.eval_every, checkpoint_every=10**9,
        max_seconds=args.max_seconds, manifest_extra=extra, prefetch=args.prefetch,
        snapshot_steps=snaps, init_weights=args.init,
    )
    manifest["config"] = config
    manifest["total_seconds"] = round(time.time() - t0, 1)
    (work / "model.json").write_text(json.dumps(manifest, indent=1))
    for f in ["model.weights.h5", "model.json", "log.csv"] + [
        f"snapshot_{s}.weights.h5" for s in snaps
    ]:
        if (work / f).is_file() and work.resolve() != out.resolve():
            shutil.copy(work / f, out / f)
    print(f"done in {time.time() - t0:.0f} s; backend {keras.backend.backend()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

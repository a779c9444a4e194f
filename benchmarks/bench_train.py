"""Training throughput: patches/s the input workers deliver from the store vs patches/s a step consumes.

1. Input: ``StoreBatches`` (the patch store built by `make patches`, 160x160x16) read, standardized
   and augmented through the ``Prefetcher`` that ``tumorseg train`` uses, with 1, 2 and 4 threads
   and 2 spawned processes (start-up excluded), at the "flip" and "strong" augmentation levels, 2 passes over the
   32 training patches (the first warms the page cache), batch 1.
2. Consumption: ``train`` itself for a few steps (U-Net base 16, batch 1, float32 and mixed
   bfloat16) on the current backend (``KERAS_BACKEND``, TensorFlow under `make bench`); the
   first step compiles, the figure is the median of the rest.
3. The GPU figure recorded by the shipped model's manifest (no GPU was used by this benchmark).

usage: python benchmarks/bench_train.py [--steps N] [--base N] [--quick]
``--quick``: a smoke run (3 patches, 1 thread, "flip" only, 2 float32 steps of a base-4 U-Net).
Timings are wall-clock on a machine shared with other processes: treat them as rough.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tumorseg.model.pretrained import manifest_path  # noqa: E402
from tumorseg.resources import pretrained_weights  # noqa: E402
from tumorseg.train.config import TrainConfig  # noqa: E402
from tumorseg.train.data import Prefetcher, StoreBatches  # noqa: E402

STORE = ROOT / "data" / "BraTS-Data" / "processed"
#: Input feeds timed: (workers, processes instead of threads).
FEEDS = ((1, False), (2, False), (4, False), (2, True))


def input_rate(src: StoreBatches, workers: int, processes: bool, steps: int) -> float:
    """Patches per wall second the prefetcher delivers when nothing waits on the device: counted
    from the first batch on (worker start-up excluded), best of 2 passes."""
    best = 0.0
    for _ in range(2):
        feed = Prefetcher(src, range(steps), workers, processes)
        try:
            feed.get(0)
            t = time.perf_counter()
            n = sum(len(feed.get(s)[0]) for s in range(1, steps))
        finally:
            feed.close()
        best = max(best, n / (time.perf_counter() - t))
    return best


def step_rate(names: list[str], base: int, bf16: bool, steps: int) -> dict:
    """The timings of a short ``train`` run (base ``base``, batch 1) on the current backend."""
    from tumorseg.train.loop import train

    src = StoreBatches(STORE / "train", names, batch_size=1, seed=0)
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(
            out=out, steps=steps, n_base_filters=base, bf16=bf16, workers=2, checkpoint_every=10**6
        )
        manifest = train(cfg, src, None, verbose=False)
    return manifest["timings"] | {"device": manifest["distribution"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=4, help="training steps per precision")
    p.add_argument("--base", type=int, default=16, help="n_base_filters of the U-Net")
    p.add_argument("--quick", action="store_true", help="a tiny smoke run (figures meaningless)")
    args = p.parse_args(argv)
    if not (STORE / "config.json").is_file():
        print(f"no patch store at {STORE}: run `make patches` first")
        return 1
    names = json.loads((STORE / "config.json").read_text())["train"]
    levels, feeds, precisions = ("flip", "strong"), FEEDS, (False, True)
    if args.quick:
        names, args.steps, args.base = names[:3], 2, 4
        levels, feeds, precisions = ("flip",), FEEDS[:1], (False,)
    print(
        f"input from {STORE} ({len(names)} patches, 160x160x16, 13 MB each), batch 1, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    produced = {}
    for level in levels:
        src = StoreBatches(STORE / "train", names, batch_size=1, seed=0, level=level)
        for workers, processes in feeds:
            rate = input_rate(src, workers, processes, len(names))
            kind = "processes" if processes else "threads"
            produced[level] = max(produced.get(level, 0.0), rate)
            print(f"  augment {level:6s} {workers} {kind:9s}: {rate:6.1f} patches/s from the store")

    import keras

    print(
        f"\ntraining steps ({keras.backend.backend()} backend, U-Net base {args.base}, batch 1, "
        f"{args.steps} steps; the first compiles):"
    )
    for bf16 in precisions:
        t = step_rate(names, args.base, bf16, args.steps)
        used = t["patches_per_second"]
        print(
            f"  {'mixed_bfloat16' if bf16 else 'float32':14s}: {t['seconds_per_step']:.2f} s/step "
            f"(first {t['first_step_seconds']:.1f} s) = {used:.2f} patches/s consumed; the "
            f"steps waited {t['input']['wait_seconds']:.2f} s for input in all; "
            f"{t['device']['devices']} {t['device']['device_kind']} device(s)"
        )
        print(
            f"    input headroom: the store delivers {produced['flip'] / used:.0f}x what "
            f"the steps consume"
        )

    shipped = json.loads(manifest_path(pretrained_weights()).read_text())
    batch = shipped.get("batch_size") or shipped.get("distribution", {}).get("global_batch")
    rate = shipped["steps"] * batch / shipped["train_seconds"]
    print(
        f"\nGPU: not measured here (this machine has none). The shipped model's manifest "
        f"records {shipped['steps']} steps of batch {batch} in {shipped['train_seconds']:.0f} s "
        f"on {shipped['machine']}, {shipped['precision']}, base "
        f"{shipped['config']['n_base_filters']}: {rate:.0f} patches/s consumed; feeding that "
        f"from the store takes about {rate / max(produced[levels[-1]], 1e-9):.1f}x this "
        f"machine's best '{levels[-1]}' input rate (--workers N --processes on a many-core host)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

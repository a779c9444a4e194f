"""Training throughput: patches/s the input workers deliver from the store vs patches/s a step consumes.

1. Input: ``StoreBatches`` (the patch store built by `make patches`, 160x160x16) read, standardized
   and augmented through the ``Prefetcher`` that ``tumorseg train`` uses, with 1, 2 and 4 threads
   and 2 spawned processes (start-up excluded), at the "flip" and "strong" augmentation levels, 2 passes over the
   32 training patches (the first warms the page cache), batch 1.
2. Consumption: ``train`` itself for a few steps (U-Net base 16, batch 1, float32 and mixed
   bfloat16) on the current backend (``KERAS_BACKEND``, TensorFlow under `make bench`), each
   in its own child process, on both of TensorFlow's CPU code paths (oneDNN on, and off with
   ``TF_ENABLE_ONEDNN_OPTS=0``: the Eigen path of CPUs without oneDNN), side by side: s/step
   (the first step compiles, the figure is the median of the rest) and the child's peak RSS.
3. The training rate recorded by the shipped model's manifest, on the machine it names.

usage: python benchmarks/bench_train.py [--steps N] [--base N] [--quick]
       python benchmarks/bench_train.py --child {float32,bf16}   (one measurement, as JSON)
``--quick``: a smoke run (3 patches, 1 thread, "flip" only, 2 float32 steps of a base-4 U-Net,
on both code paths).
Timings are wall-clock on a machine shared with other processes: treat them as rough.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tumorseg.quiet import import_backend  # noqa: E402

# Keras and TensorFlow without the runtime's start-up lines, before tumorseg.train imports them;
# spawned input workers re-run these imports, so they stay quiet too
import_backend()

from tumorseg.hardware import CODE_PATHS, onednn_env  # noqa: E402
from tumorseg.model.pretrained import manifest_path  # noqa: E402
from tumorseg.resources import pretrained_weights  # noqa: E402
from tumorseg.train.config import POLICIES, Precision, TrainConfig  # noqa: E402
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


def step_rate(names: list[str], base: int, precision: str, steps: int) -> dict:
    """The timings of a short ``train`` run (base ``base``, batch 1) on the current backend,
    with this process's peak RSS in GiB (``peak_rss_gib``)."""
    from tumorseg.train.loop import train

    src = StoreBatches(STORE / "train", names, batch_size=1, seed=0)
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(
            out=out,
            steps=steps,
            n_base_filters=base,
            precision=precision,
            workers=2,
            checkpoint_every=10**6,
        )
        manifest = train(cfg, src, None, verbose=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB on Linux
    return manifest["timings"] | {"device": manifest["distribution"], "peak_rss_gib": peak}


def step_rate_in_child(precision: str, onednn: str, args: argparse.Namespace) -> dict:
    """:func:`step_rate` in a fresh process with ``TF_ENABLE_ONEDNN_OPTS=onednn`` (TensorFlow
    reads it on import, and the peak RSS must be this measurement's own)."""
    argv = [sys.executable, __file__, "--child", precision, "--steps", str(args.steps)]
    with onednn_env(onednn):
        out = subprocess.run(
            [*argv, "--base", str(args.base)], capture_output=True, text=True, check=True
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def print_steps(args: argparse.Namespace, produced: float, precisions: tuple[str, ...]) -> None:
    """Each of ``precisions`` on each code path (children): one row per precision, paths side
    by side; ``produced``: the store's best input rate (patches/s), for the headroom line."""
    import keras

    print(
        f"\ntraining steps ({keras.backend.backend()} backend, U-Net base {args.base}, batch 1, "
        f"{args.steps} steps, each run in its own process; the first step compiles):"
    )
    print(f"  {'precision':14s}" + "".join(f"  {path:>34s}" for path in CODE_PATHS))
    for precision in precisions:
        runs = [step_rate_in_child(precision, value, args) for value in CODE_PATHS.values()]
        cells = [
            f"{t['seconds_per_step']:.2f} s/step {t['peak_rss_gib']:.2f} GiB "
            f"(1st {t['first_step_seconds']:.0f} s)"
            for t in runs
        ]
        print(f"  {POLICIES[precision]:14s}" + "".join(f"  {c:>34s}" for c in cells))
        used = runs[0]["patches_per_second"]
        print(
            f"    input headroom ({next(iter(CODE_PATHS))}): the store delivers "
            f"{produced / used:.0f}x what the steps consume; they waited "
            f"{runs[0]['input']['wait_seconds']:.2f} s for input in all"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=4, help="training steps per precision")
    p.add_argument("--base", type=int, default=16, help="n_base_filters of the U-Net")
    p.add_argument(
        "--child",
        choices=(Precision.FLOAT32.value, Precision.BF16.value),
        help="only time the steps in this precision; print the timings as JSON",
    )
    p.add_argument("--quick", action="store_true", help="a tiny smoke run (figures meaningless)")
    args = p.parse_args(argv)
    if not (STORE / "config.json").is_file():
        print(f"no patch store at {STORE}: run `make patches` first")
        return 1
    names = json.loads((STORE / "config.json").read_text())["train"]
    if args.child:
        print(json.dumps(step_rate(names, args.base, args.child, args.steps)))
        return 0
    levels, feeds = ("flip", "strong"), FEEDS
    precisions = (Precision.FLOAT32.value, Precision.BF16.value)
    if args.quick:
        names, args.steps, args.base = names[:3], 2, 4
        levels, feeds, precisions = ("flip",), FEEDS[:1], precisions[:1]
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

    print_steps(args, produced["flip"], precisions)

    shipped = json.loads(manifest_path(pretrained_weights()).read_text())
    batch = shipped.get("batch_size") or shipped.get("distribution", {}).get("global_batch")
    rate = shipped["steps"] * batch / shipped["train_seconds"]
    print(
        f"\nshipped model (its manifest, not measured here): {shipped['steps']} steps of batch "
        f"{batch} in {shipped['train_seconds']:.0f} s on {shipped['machine']}, "
        f"{shipped['precision']}, base {shipped['config']['n_base_filters']}: {rate:.2f} "
        f"patches/s consumed, {rate / max(produced[levels[-1]], 1e-9):.2f}x this machine's best "
        f"'{levels[-1]}' input rate (--workers N --processes feed faster hosts)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""VolumeDataGenerator throughput from local disk (target >= 50 patches/s).

Reads the patch store built by `make patches` (data/BraTS-Data/processed/train, float32 files);
without it, a temporary store of random patches.  Prints patches/s for batch_size 1 read in a
plain loop, then through Keras' PyDataset with worker threads, for "slice" and "brain"
standardization, plus the same for the real float64 course files in ../shared/real-brats when
present.  Each figure is the best of 3 passes over the files (the first pass warms the page
cache: "from local disk" here means a warm OS cache, as during training).
Timings are wall-clock; other processes sharing the CPU make them noisy.

Usage: python benchmarks/bench_generator.py [--quick]
``--quick``: a smoke run (2 patches, one pass, 2 workers; figures meaningless).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tumorseg.quiet import import_backend  # noqa: E402

# Keras and TensorFlow without the runtime's start-up lines, before the generator imports them
import_backend()

from tumorseg.patches import VolumeDataGenerator  # noqa: E402
from tumorseg.patches.store import write_patch_h5  # noqa: E402


def _rate_loop(gen, passes: int = 3) -> tuple[float, float]:
    """Best patches/s over ``passes`` passes: (per wall second, per CPU second of this process)."""
    best, best_cpu = 0.0, 0.0
    for _ in range(passes):
        t, c = time.perf_counter(), time.process_time()
        n = 0
        for i in range(len(gen)):
            x, _ = gen[i]
            n += len(x)
        best = max(best, n / (time.perf_counter() - t))
        best_cpu = max(best_cpu, n / max(time.process_time() - c, 1e-9))
    return best, best_cpu


def _rate_workers(ids, folder, mode, workers, passes: int = 3) -> float:
    gen = VolumeDataGenerator(
        ids,
        folder,
        batch_size=1,
        verbose=0,
        standardize=mode,
        workers=workers,
        use_multiprocessing=False,
        max_queue_size=8,
    )
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    best = 0.0
    adapter = PyDatasetAdapter(gen, shuffle=False)
    for _ in range(passes):
        t = time.perf_counter()
        n = sum(len(x) for x, _ in adapter.get_numpy_iterator())
        best = max(best, n / (time.perf_counter() - t))
        adapter.on_epoch_end()
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a tiny smoke run (figures meaningless)")
    args = p.parse_args(argv)
    n_ids, passes, workers = (2, 1, 2) if args.quick else (32, 3, 4)
    folder = ROOT / "data" / "BraTS-Data" / "processed" / "train"
    tmp = None
    if folder.is_dir() and len(os.listdir(folder)) >= 8:
        ids = sorted(os.listdir(folder))[:n_ids]
        print(f"patch store: {folder} ({len(ids)} float32 patches)")
    else:
        tmp = tempfile.TemporaryDirectory()
        folder = Path(tmp.name)
        rng = np.random.default_rng(0)
        ids = []
        for i in range(min(16, n_ids)):
            x = (rng.random((4, 160, 160, 16)) * 500).astype(np.float32)
            lab = rng.integers(0, 4, (160, 160, 16))
            write_patch_h5(
                folder / f"p{i}.h5", x, (lab[..., None] == np.arange(4)).astype(np.float32)
            )
            ids.append(f"p{i}.h5")
        print(f"patch store: none built; {len(ids)} random float32 patches in a temp folder")
    for mode in ("slice", "brain"):
        gen = VolumeDataGenerator(
            ids, folder, batch_size=1, shuffle=False, verbose=0, standardize=mode
        )
        wall, cpu = _rate_loop(gen, passes)
        print(
            f"  {mode:5s} standardization, 1 thread : {wall:6.1f} patches/s "
            f"({cpu:.1f} per CPU-second: what one free core delivers)"
        )
        rate = _rate_workers(ids, folder, mode, workers, passes)
        print(
            f"  {mode:5s} standardization, {workers} workers: {rate:6.1f}"
            " patches/s (PyDataset workers, as model.fit uses them)"
        )
    real = ROOT.parent / "shared" / "real-brats" / "train"
    if real.is_dir():
        rids = sorted(os.listdir(real))[: n_ids if args.quick else None]
        gen = VolumeDataGenerator(rids, real, batch_size=1, shuffle=False, verbose=0)
        wall, cpu = _rate_loop(gen, passes)
        rate = _rate_workers(rids, real, "slice", workers, passes)
        print(
            f"real course files (float64, {len(rids)}): {wall:6.1f} patches/s, 1 thread "
            f"({cpu:.1f} per CPU-second); {rate:6.1f} with {workers} workers"
        )
    print(
        f"(target >= 50 patches/s; {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}: other processes share them)"
    )
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Batch throughput: scans per hour and submissions per hour for one worker, and a local
sharded run (N processes) against one unsharded run.

1. ``tumorseg predict DATA --out DIR`` in one process (the model loaded once): wall time, the
   time of each scan, scans per hour (from the median scan, i.e. without the start-up, and
   over the whole run), and the resident memory after each scan (it should stay flat from the
   first scan to the last) and at its peak.
2. The same cases as N shards (``--shard i/N``), N processes started together writing into one
   folder: wall time of the whole, and each process's wall time and peak memory; the maps are
   checked to equal those of the unsharded run voxel for voxel.
3. ``tumorseg grade`` on correct submissions (the instructor notebook without its grader
   cells), ``--jobs 2``, in the sandbox when it is available: submissions per hour.

Each process is measured by ``os.wait4`` (its own peak RSS) and by a hook it runs around each
map it writes (``--worker``, internal).  Figures are wall-clock on whatever CPU runs this;
other work sharing it (a training run, tests) makes them slower and noisier: measure on a
quiet machine.

Usage: python benchmarks/bench_batch.py [--data DIR] [--cases N] [--shards N] [--crop S]
           [--weights W] [--grade N]
``--crop S``: centre-crop each case to at most S voxels per axis first (a quicker run).
``--quick``: a smoke run in this process on two 40-voxel crops (or random cases), shards run
one after the other; figures meaningless.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402

SAMPLE = ROOT / "data" / "BraTS-Data"


def _rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


# --------------------------------------------------------------------------- the data
def _copy_volume(src: Path, dst: Path, crop: int | None) -> None:
    """``src`` as ``dst``: a link (crop None), or centre-cropped to at most ``crop`` voxels per
    spatial axis (any channels kept)."""
    import nibabel as nib

    dst.parent.mkdir(parents=True, exist_ok=True)
    if crop is None:
        dst.symlink_to(Path(src).resolve())
        return
    img = nib.load(str(src))
    box = tuple(
        slice(max(0, (s - crop) // 2), max(0, (s - crop) // 2) + min(s, crop))
        for s in img.shape[:3]
    )
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[box], img.affine, img.header), str(dst))


def crop_dataset(data: Path, out: Path, cases: int, crop: int | None) -> Path:
    """The first ``cases`` cases of ``data`` in ``out``, in the same layout, each file
    centre-cropped to at most ``crop`` voxels per axis (None: whole; the files are then linked,
    not copied).  An MSD folder gives an MSD folder (``dataset.json``, ``imagesTr/``,
    ``labelsTr/``); a BraTS folder gives BraTS case folders (``<case>/<case>_{flair,t1,t1ce,t2,
    seg}.nii.gz``, the files' own names), which ``tumorseg predict`` reads as such."""
    from tumorseg.data import open_dataset

    training = []
    for case in list(open_dataset(data))[:cases]:
        if case.layout == "brats":  # its four modality files and its seg file, as they are
            for src in case.paths:
                _copy_volume(src, out / case.id / Path(src).name, crop)
            continue
        name = f"{case.id}.nii.gz"
        for kind, src in (("imagesTr", case.image_paths[0]), ("labelsTr", case.label_path)):
            _copy_volume(src, out / kind / name, crop)
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    if training:
        (out / "dataset.json").write_text(json.dumps({"training": training}))
    return out


def random_dataset(out: Path, cases: int, size: int = 40) -> Path:
    """``cases`` random cases of ``size``^3 voxels in MSD layout (when no sample data)."""
    import nibabel as nib

    rng = np.random.default_rng(0)
    training = []
    for i in range(cases):
        name = f"RAND_{i:03d}.nii.gz"
        image = np.zeros((size, size, size, 4), np.float32)
        image[4:-4, 4:-4, 4:-4] = rng.uniform(10, 500, (size - 8, size - 8, size - 8, 4))
        for kind, arr in (("imagesTr", image), ("labelsTr", np.zeros(image.shape[:3], np.uint8))):
            (out / kind).mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(arr, np.eye(4)), str(out / kind / name))
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    (out / "dataset.json").write_text(json.dumps({"training": training}))
    return out


# --------------------------------------------------------------------------- one worker
def _hooked_save(log: list[dict]):
    """``save_label_map`` of the batch module, wrapped to log time and RSS after each map."""
    from tumorseg.inference import batch

    original = batch.save_label_map

    def save(labels, reference, out):
        path = original(labels, reference, out)
        log.append({"case": Path(out).name, "t": time.perf_counter(), "rss_mib": _rss_mib()})
        return path

    batch.save_label_map = save
    return original


def worker(argv: list[str]) -> int:
    """``--worker predict ARGS...``: run ``tumorseg predict ARGS`` in this process, hooked;
    print one JSON line: start-up seconds, per-map times and RSS, peak RSS."""
    start = time.perf_counter()
    from tumorseg.cli import main

    log: list[dict] = []
    _hooked_save(log)
    loop_start = time.perf_counter()
    status = main(argv)
    times = [e["t"] for e in log]
    record = {
        "status": status,
        "import_seconds": round(loop_start - start, 2),
        "seconds": round(time.perf_counter() - start, 2),
        "per_scan": [round(b - a, 2) for a, b in zip([loop_start, *times], times)],
        "rss_mib": [round(e["rss_mib"]) for e in log],
        "peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print("BENCH " + json.dumps(record))
    return 0


def _start(args: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "predict", *args]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True
    )


def _finish(proc: subprocess.Popen, started: float) -> dict:
    """Wait for a worker: its JSON record, its wall time and its peak RSS (``os.wait4``)."""
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    line = next((x for x in out.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"worker failed (exit {proc.returncode}): {out[-2000:]}")
    record = json.loads(line[len("BENCH ") :])
    record.update(
        wall=round(time.perf_counter() - started, 2), peak_mib=round(usage.ru_maxrss / 1024)
    )
    return record


def _per_hour(seconds: float, items: int) -> float:
    return 3600.0 * items / seconds if seconds > 0 else float("nan")


def _report_unsharded(rec: dict, cases: int) -> None:
    per = rec["per_scan"]
    steady = statistics.median(per[1:]) if len(per) > 1 else per[0]
    print(
        f"unsharded, 1 process: {cases} scans in {rec['wall']:.1f} s wall (start-up "
        f"{rec['import_seconds']:.1f} s of imports, then the model load and the first scan "
        f"{per[0]:.1f} s); median scan {steady:.1f} s"
    )
    print(
        f"  scans per hour: {_per_hour(steady, 1):.0f} steady (median scan), "
        f"{_per_hour(rec['wall'], cases):.0f} over the whole run"
    )
    rss = rec["rss_mib"]
    print(
        f"  memory: RSS after each scan {rss} MiB (first {rss[0]}, last {rss[-1]}, "
        f"growth after the first {rss[-1] - rss[0]:+d} MiB); peak {rec['peak_mib']} MiB"
    )


def _compare(a: Path, b: Path) -> bool:
    import nibabel as nib

    names = sorted(p.name for p in a.glob("*.nii.gz"))
    if names != sorted(p.name for p in b.glob("*.nii.gz")):
        return False
    return all(
        np.array_equal(np.asarray(nib.load(a / n).dataobj), np.asarray(nib.load(b / n).dataobj))
        for n in names
    )


def bench_predict(data: Path, tmp: Path, shards: int, weights: list[str], cases: int) -> bool:
    from tumorseg.batch import FAILURES_CSV

    whole, parts = tmp / "whole", tmp / "sharded"
    started = time.perf_counter()
    rec = _finish(_start([str(data), "--out", str(whole), *weights]), started)
    if len(rec["per_scan"]) != cases:  # the worker's stderr is not shown: say why here
        failures = whole / FAILURES_CSV
        why = f"; {failures}:\n{failures.read_text()}" if failures.is_file() else ""
        raise RuntimeError(
            f"tumorseg predict {data} wrote {len(rec['per_scan'])} of {cases} maps "
            f"(exit {rec['status']}){why}"
        )
    _report_unsharded(rec, cases)
    started = time.perf_counter()
    procs = [
        _start([str(data), "--out", str(parts), "--shard", f"{i}/{shards}", *weights])
        for i in range(shards)
    ]
    records = [_finish(p, started) for p in procs]
    wall = time.perf_counter() - started
    print(
        f"{shards} shards, {shards} processes at once on {os.cpu_count()} CPUs: {cases} scans in "
        f"{wall:.1f} s wall ({rec['wall'] / wall:.2f}x the unsharded run's speed; "
        f"{_per_hour(wall, cases):.0f} scans per hour)"
    )
    for i, r in enumerate(records):
        print(
            f"  shard {i}/{shards}: {len(r['per_scan'])} scans, {r['wall']:.1f} s wall, "
            f"peak RSS {r['peak_mib']} MiB"
        )
    same = _compare(whole, parts)
    print(f"  the sharded maps equal the unsharded ones voxel for voxel: {'yes' if same else 'NO'}")
    return same


def bench_grade(tmp: Path, count: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_grader import _submission  # a correct student file

    from tumorseg.course.grading import grader, isolation

    try:
        isolation.check_available()
        sandbox = True
    except isolation.SandboxUnavailable as exc:
        print(f"grade: the sandbox is unavailable ({exc}); grading with --no-sandbox")
        sandbox = False
    paths = []
    for i in range(count):
        paths.append(tmp / f"student_{i}.ipynb")
        _submission(paths[-1])
    start = time.perf_counter()
    graded = grader.grade_batch(paths, tmp / "grades", jobs=2, progress=False, sandbox=sandbox)
    seconds = time.perf_counter() - start
    points = sum(g.total or 0 for g in graded)
    print(
        f"grade, --jobs 2{'' if sandbox else ', --no-sandbox'}: {count} correct submissions in "
        f"{seconds:.1f} s ({points}/{6 * count} points): "
        f"{_per_hour(seconds, count):.0f} submissions per hour"
    )


# --------------------------------------------------------------------------- quick
def quick(tmp: Path) -> int:
    """In this process: two small cases, unsharded and as 2 shards; checks the maps agree."""
    from tumorseg.batch import Shard
    from tumorseg.inference.batch import predict_folder
    from tumorseg.model import load_pretrained

    if (SAMPLE / "dataset.json").is_file():
        data = crop_dataset(SAMPLE, tmp / "data", 2, 40)
    else:
        data = random_dataset(tmp / "data", 2)
    model, _ = load_pretrained(input_shape=(4, None, None, None))
    start = time.perf_counter()
    tally = predict_folder(data, tmp / "whole", model)  # the manifest's settings
    print(f"quick: unsharded {tally.line()} in {time.perf_counter() - start:.1f} s")
    for i in range(2):
        tally = predict_folder(data, tmp / "sharded", model, shard=Shard(i, 2))
        print(f"quick: shard {i}/2 {tally.line()}")
    same = _compare(tmp / "whole", tmp / "sharded")
    print(f"quick: sharded maps equal the unsharded ones: {'yes' if same else 'NO'}")
    return 0 if same else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:2] == ["--worker", "predict"]:
        return worker(["predict", *argv[2:]])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=SAMPLE, help="MSD/BraTS dataset folder")
    p.add_argument("--cases", type=int, default=6, help="its first N cases (default 6)")
    p.add_argument("--shards", type=int, default=3, help="processes of the sharded run")
    p.add_argument("--crop", type=int, default=None, help="centre-crop cases to S voxels/axis")
    p.add_argument("--weights", default=None, help="model (default: the shipped one)")
    p.add_argument("--grade", type=int, default=4, help="submissions to grade (0: none)")
    p.add_argument("--quick", action="store_true", help="a smoke run in this process")
    args = p.parse_args(argv)
    print(f"CPUs: {os.cpu_count()} (timings are noisy when other jobs share them)")
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp_name:
        tmp = Path(tmp_name)
        if args.quick:
            return quick(tmp)
        from tumorseg.data import open_dataset

        data = crop_dataset(args.data, tmp / "data", args.cases, args.crop)
        cases = len(open_dataset(data))  # fewer than --cases when the folder has fewer
        weights = ["--weights", args.weights] if args.weights else []
        crop = f", cropped to {args.crop} voxels/axis" if args.crop else ""
        print(f"data: the first {cases} cases of {args.data}{crop}")
        same = bench_predict(data, tmp, args.shards, weights, cases)
        if args.grade:
            bench_grade(tmp, args.grade)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

"""Size and time of the visual report (``tumorseg score --report``) on a whole dataset.

For every case of ``--data`` (MSD or BraTS layout; default the course's sample data) a
prediction with known errors is written: the label shifted 3 voxels along X, its enhancing
tumour called non-enhancing in every third case, and a 6x6x4 false-positive blob at the
tumour's mirror image across the midline (a far false positive, so the case gets its second
picture) in every ``--far-every``-th case (default every case: the largest report).  Then
``tumorseg score --pred ... --labels DATA --report OUT/report`` runs, and the report folder's
size, its pictures and the seconds per case are printed.

Usage::

    .venv/bin/tumorseg synth --out /tmp/synth100 --cases 100 --seed 7
    .venv/bin/python benchmarks/bench_report.py --data /tmp/synth100 --out /tmp/bench-report
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def flawed_prediction(label: np.ndarray, index: int, far_every: int) -> np.ndarray:
    """(X, Y, Z) uint8 prediction of the ``index``-th case with the errors described above."""
    pred = np.roll(label.astype(np.uint8), 3, axis=0)
    if index % 3 == 2:
        pred[pred == 3] = 2
    tumour = np.argwhere(label > 0)
    if far_every and index % far_every == 0 and len(tumour):
        x, y, z = tumour.mean(axis=0).round().astype(int)
        x = label.shape[0] - 1 - x  # the other hemisphere
        pred[x - 3 : x + 3, y - 3 : y + 3, z - 2 : z + 2] = 1
    return pred


def write_predictions(data: Path, out: Path, far_every: int, limit: int | None = None) -> int:
    """Write ``out/<case>.nii.gz`` for every case of ``data`` (its first ``limit`` when given);
    returns the number of cases."""
    import nibabel as nib

    from tumorseg.data import load_label_map, open_dataset

    out.mkdir(parents=True, exist_ok=True)
    dataset = list(open_dataset(data))[:limit]
    for i, case in enumerate(dataset):
        label, spacing = load_label_map(case.label_path, case.layout == "brats")
        affine = np.diag([*spacing, 1.0])
        pred = flawed_prediction(label, i, far_every)
        nib.save(nib.Nifti1Image(pred, affine), out / f"{case.id}.nii.gz")
    return len(dataset)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "BraTS-Data")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "bench-report")
    ap.add_argument("--far-every", type=int, default=1, help="far false positive every Nth case")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 cases, a temporary --out")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_report-") as tmp:
        if args.quick:
            args.out = Path(tmp)
        run(args.data, args.out, args.far_every, 2 if args.quick else None)
    return 0


def run(data: Path, out: Path, far_every: int, limit: int | None) -> None:
    """Write the flawed predictions, score them with ``--report`` and print the figures."""
    from tumorseg.inference.cli import score_main

    n = write_predictions(data, out / "pred", far_every, limit)
    report = out / "report"
    start, cpu = time.perf_counter(), time.process_time()
    argv = ["--pred", str(out / "pred"), "--labels", str(data), "--report", str(report)]
    with contextlib.redirect_stdout(io.StringIO()):
        score_main(argv)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    pictures = sorted((report / "img").glob("*.png"))
    total = sum(p.stat().st_size for p in report.rglob("*") if p.is_file())
    sizes = np.array([p.stat().st_size for p in pictures])
    print(
        f"{n} cases, {len(pictures)} pictures: report folder {total / 1e6:.2f} MB "
        f"(index.html {(report / 'index.html').stat().st_size / 1e3:.0f} kB; pictures "
        f"{sizes.mean() / 1e3:.1f} kB mean, {sizes.max() / 1e3:.1f} kB max); score --report "
        f"{seconds / n:.2f} s per case wall, {cpu / n:.2f} s CPU"
    )


if __name__ == "__main__":
    sys.exit(main())

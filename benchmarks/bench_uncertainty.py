"""What the uncertainty costs: ``tumorseg predict`` on one real scan with and without it.

Issue 33's target: prediction with the uncertainty saved costs at most 10 % more time than
without it, on one real scan, measured in one run.  One process loads the model (the shipped
pair, its manifest's settings) and the scan once, then runs three configurations, alternating,
``--runs`` times each after one untimed warm-up of each:

- ``plain``: what ``predict`` did before issue 33: the probabilities (no spread of the passes),
  the clean-up and labels, the label map written;
- ``default``: ``predict`` without options today (``outputs.run_case``: the passes' spread, the
  voxel uncertainty and the case's doubt computed; the label map written);
- ``saved``: ``predict --save-probabilities --save-uncertainty``: as ``default``, and the
  probabilities and the uncertainty map written beside the map.

Prints, per configuration, the median wall seconds and the median CPU seconds of the process
(``time.process_time``: all its threads; the better figure on a shared core), and the ratios of
the medians to ``plain``.

Usage: python benchmarks/bench_uncertainty.py [--case DIR_OR_NIFTI] [--runs 3]
Without ``--case``: ../shared/real-brats-scans/valid/Brats18_CBICA_AOZ_1, else the first
sample case.  ``--quick``: a smoke run, one pass each without warm-up, on a 48 x 48 x 32 crop of
the first sample case.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: The real scan of issue 33's measurements.
REAL_CASE = ROOT.parent / "shared" / "real-brats-scans" / "valid" / "Brats18_CBICA_AOZ_1"
SAMPLE = ROOT / "data" / "BraTS-Data"
#: The configurations, in the order they alternate.
CONFIGS = ("plain", "default", "saved")


def sample_image(crop: bool) -> tuple[Any, Any]:
    """The first sample case's image (X, Y, Z, 4) and its NIfTI reference; with ``crop``, a
    48 x 48 x 32 box around the volume's centre (on a reference of that shape)."""
    import nibabel as nib
    import numpy as np

    from tumorseg.data import open_dataset

    if not (SAMPLE / "dataset.json").is_file():
        sys.exit(f"no sample data at {SAMPLE}: run `make data`, or pass --case")
    case = next(iter(open_dataset(SAMPLE)))
    image, _, spacing = case.load_with_spacing()
    if crop:
        cx, cy, cz = (s // 2 for s in image.shape[:3])
        image = image[cx - 24 : cx + 24, cy - 24 : cy + 24, cz - 16 : cz + 16]
    affine = nib.affines.from_matvec(np.diag(spacing))
    return image, nib.Nifti1Image(image[..., 0].astype("float32"), affine)


def configurations(image: Any, reference: Any, model: Any, out: Path) -> dict[str, Callable]:
    """One callable per ``CONFIGS`` name: predict ``image`` and write its outputs into ``out``."""
    from tumorseg.data import save_label_map
    from tumorseg.inference.outputs import SaveOptions, label_probabilities, run_case, write_outputs
    from tumorseg.inference.settings import resolve_settings
    from tumorseg.inference.spacing import header_spacing, model_spacing, predict_probabilities

    settings = resolve_settings(model, None)
    spacing = header_spacing(reference)

    def plain() -> None:
        probs, _ = predict_probabilities(image, spacing, model, settings, spread=False)
        labels = label_probabilities(probs, settings, spacing, model_spacing(model))
        save_label_map(labels, reference, out / "plain.nii.gz")

    def with_doubt(options: SaveOptions, name: str) -> Callable[[], None]:
        def run() -> None:
            result = run_case(image, spacing, model, settings)
            write_outputs(result, reference, out / name, options, settings.threshold, False)

        return run

    return {
        "plain": plain,
        "default": with_doubt(SaveOptions(), "default.nii.gz"),
        "saved": with_doubt(SaveOptions(probabilities=True, uncertainty=True), "saved.nii.gz"),
    }


def timed(run: Callable[[], None]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_uncertainty", description=__doc__.splitlines()[0])
    p.add_argument("--case", type=Path, default=None, help="a case folder or 4-channel NIfTI")
    p.add_argument("--runs", type=int, default=3, help="timed runs of each configuration")
    p.add_argument("--quick", action="store_true", help="smoke run on a crop of a sample case")
    args = p.parse_args(argv)

    from tumorseg.quiet import import_backend

    import_backend()  # TensorFlow without its start-up lines
    from tumorseg.data import load_image
    from tumorseg.model import load_pretrained

    if args.quick:
        (image, reference), name, runs, warm = sample_image(crop=True), "sample crop", 1, False
    elif args.case is not None or REAL_CASE.is_dir():
        case = args.case or REAL_CASE
        (image, reference), name, runs, warm = load_image(case), case.name, args.runs, True
    else:
        (image, reference), name, runs, warm = sample_image(crop=False), "sample", args.runs, True
    model, _ = load_pretrained(input_shape=(4, None, None, None))
    print(f"case {name} {image.shape[:3]}; shipped model; {runs} run(s) each, alternating")
    with tempfile.TemporaryDirectory(prefix="bench_uncertainty-") as tmp:
        runners = configurations(image, reference, model, Path(tmp))
        if warm:
            for run in runners.values():
                run()
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in CONFIGS}
        for _ in range(runs):
            for key in CONFIGS:
                times[key].append(timed(runners[key]))
    medians = {
        k: (statistics.median(w for w, _ in t), statistics.median(c for _, c in t))
        for k, t in times.items()
    }
    base_wall, base_cpu = medians["plain"]
    for key in CONFIGS:
        wall, cpu = medians[key]
        print(
            f"{key:8s} median {wall:7.2f} s wall ({wall / base_wall:.3f} x plain), "
            f"{cpu:7.2f} CPU s ({cpu / base_cpu:.3f} x plain)"
        )
    ratio = medians["saved"][1] / base_cpu
    print(f"saved / plain, CPU medians: {ratio:.3f} (issue 33 target: at most 1.10)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

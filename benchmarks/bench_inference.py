"""Whole-scan inference: ``predict_volume`` against the original course's stitcher.

The ORIGINAL algorithm (re-implemented below from its description): zero-pad the scan to a
320x320x160 grid, cut it into 2x2x10 = 40 tiles of 160x160x16, run ``model.predict`` once per
tile (batch 1) on RAW intensities (no standardization), paste the outputs back and crop to the
scan.  Both run the same model and weights (the shipped ``tumorseg/model/weights/model_pretrained.weights.h5``
when present, else a randomly initialised n_base_filters=16 U-Net with a fixed seed, whose
Dice means nothing).  Prints both times, the ratio (target >= 5x; both without test-time mirroring, and
ours once more with the manifest's mirroring and clean-up), the WT/TC/ET Dice of both
at threshold 0.5 (same label rule for both), and the peak RSS during each.  Each runs in its
own child process, once per TensorFlow CPU code path (oneDNN on, and off with
``TF_ENABLE_ONEDNN_OPTS=0``: the Eigen path of CPUs without oneDNN); the two paths are printed
side by side.

Usage: python benchmarks/bench_inference.py [--data DIR] [--case ID] [--weights W] [--quick]
``--quick``: a smoke run on a 64x64x32 crop around the tumour, both algorithms in this process
(figures meaningless).
Timings are wall-clock on whatever CPU runs this; other processes sharing it add noise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402

from tumorseg.quiet import import_backend  # noqa: E402

# Keras and TensorFlow without the runtime's start-up lines, before tumorseg.model imports them
# (``describe`` does, here; the spawned children re-run these imports, so they stay quiet too)
import_backend()

from tumorseg.hardware import CODE_PATHS, onednn_env  # noqa: E402
from tumorseg.resources import pretrained_weights  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def original_stitcher(image: np.ndarray, model) -> np.ndarray:
    """The original course's whole-scan prediction, minus its plotting and uint8 truncation.

    image: (240, 240, 155, 4) raw intensities.  Returns (3, X, Y, Z) float32 probabilities.
    """
    grid = np.zeros((3, 320, 320, 160), np.float32)
    for x in range(0, image.shape[0], 160):
        for y in range(0, image.shape[1], 160):
            for z in range(0, image.shape[2], 16):
                patch = np.zeros((4, 160, 160, 16), np.float32)
                part = np.moveaxis(image[x : x + 160, y : y + 160, z : z + 16], 3, 0)
                patch[:, : part.shape[1], : part.shape[2], : part.shape[3]] = part
                pred = model.predict(patch[None], verbose=0)
                grid[:, x : x + 160, y : y + 160, z : z + 16] += pred[0]
    return grid[:, : image.shape[0], : image.shape[1], : image.shape[2]]


def load_model(weights: Path):
    """(fixed 160x160x16 model for the original, any-size model for ours, description)."""
    import keras

    from tumorseg.inference import resolve_settings
    from tumorseg.model import dice_bce_loss, load_pretrained, unet_model_3d

    if weights.is_file():
        fixed, manifest = load_pretrained(weights)
        anysize, _ = load_pretrained(weights, input_shape=(4, None, None, None))
        mode = resolve_settings(anysize).standardize
        base = manifest.get("config", {}).get("n_base_filters", 32)
        return fixed, anysize, mode, f"{weights.name} (n_base_filters={base}, standardize={mode})"
    keras.utils.set_random_seed(0)
    anysize = unet_model_3d(dice_bce_loss, input_shape=(4, None, None, None), n_base_filters=16)
    fixed = unet_model_3d(dice_bce_loss, input_shape=(4, 160, 160, 16), n_base_filters=16)
    fixed.set_weights(anysize.get_weights())
    return (
        fixed,
        anysize,
        "brain",
        "RANDOM init, seed 0, n_base_filters=16 (no weights file: Dice meaningless)",
    )


def describe(weights: Path) -> tuple[str, str]:
    """One line naming the model the children will load (from its manifest), and its output
    kind (``Outputs`` value)."""
    from tumorseg.inference import InferenceSettings

    if not weights.is_file():
        random = "RANDOM init, seed 0, n_base_filters=16 (no weights file: Dice meaningless)"
        return random, InferenceSettings().outputs.value
    from tumorseg.resources import manifest_path

    manifest = json.loads(manifest_path(weights).read_text())
    base = manifest.get("config", {}).get("n_base_filters", 32)
    settings = InferenceSettings.from_manifest(manifest)
    line = f"{weights.name} (n_base_filters={base}, standardize={settings.standardize}"
    return f"{line}, outputs={settings.outputs.value})", settings.outputs.value


#: Wall-time speed-up over the original stitcher that predict_volume must reach on every path.
TARGET = 5.0

#: Size of the crop a --quick run predicts, (X, Y, Z) voxels.
QUICK_CROP = (64, 64, 32)


def _load_case(data: str, case_id: str | None, quick: bool = False):
    """(case, image (X, Y, Z, 4), label (X, Y, Z)); ``quick``: a ``QUICK_CROP`` crop centred
    on the tumour."""
    from tumorseg.data import open_dataset

    dataset = open_dataset(data)
    case = dataset[case_id] if case_id else dataset[len(dataset) - 1]
    image, label = case.load()
    if quick:
        centre = np.argwhere(label > 0).mean(0) if label.any() else np.array(label.shape) / 2
        lo = [
            min(max(int(c) - s // 2, 0), max(n - s, 0))
            for c, s, n in zip(centre, QUICK_CROP, label.shape)
        ]
        box = tuple(slice(a, a + s) for a, s in zip(lo, QUICK_CROP))
        image, label = image[box], label[box]
    return case, image, label


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB on Linux


def run_ours(data: str, case_id: str | None, weights: str, quick: bool = False) -> dict:
    """Child process: predict_volume as the original ran (no mirroring, no clean-up) twice (the
    first call traces/compiles), then once more with the manifest's mirroring and clean-up
    (``mirrored``), all timed."""
    from tumorseg.inference import Mirror, Postprocess, predict_volume, resolve_settings

    _, image, _ = _load_case(data, case_id, quick)
    _, anysize, mode, _ = load_model(Path(weights))
    rss_before = _peak_rss_gib()
    times = []
    for _ in range(2):
        w0, c0 = time.perf_counter(), time.process_time()
        probs = predict_volume(
            image, anysize, standardize=mode, tta=Mirror.NONE, postprocess=Postprocess.NONE
        )
        times.append((time.perf_counter() - w0, time.process_time() - c0))
    w0 = time.perf_counter()
    predict_volume(image, anysize, standardize=mode)
    mirrored = (time.perf_counter() - w0, resolve_settings(anysize).tta.value)
    return {
        "probs": probs,
        "times": times,
        "mirrored": mirrored,
        "rss_before": rss_before,
        "rss_peak": _peak_rss_gib(),
    }


def run_original(data: str, case_id: str | None, weights: str, quick: bool = False) -> dict:
    """Child process: the original stitcher once, after a one-tile warm-up."""
    _, image, _ = _load_case(data, case_id, quick)
    fixed, _, _, _ = load_model(Path(weights))
    fixed.predict(np.zeros((1, 4, 160, 160, 16), np.float32), verbose=0)
    rss_before = _peak_rss_gib()
    w0, c0 = time.perf_counter(), time.process_time()
    probs = original_stitcher(image, fixed)
    times = [(time.perf_counter() - w0, time.process_time() - c0)]
    return {"probs": probs, "times": times, "rss_before": rss_before, "rss_peak": _peak_rss_gib()}


def _in_child(fn, *args, quick: bool = False) -> dict:
    """Run ``fn`` in a fresh process, so each algorithm's peak memory is its own (``quick``:
    in this one)."""
    if quick:
        return fn(*args, quick)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(fn, *args).result()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT / "data" / "BraTS-Data"))
    parser.add_argument("--case", default=None, help="case id (default: the last case)")
    parser.add_argument("--weights", default=str(pretrained_weights()))
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run on a small crop")
    args = parser.parse_args(argv)

    from tumorseg.inference import plan_tiles
    from tumorseg.inference.predict import auto_max_voxels, brain_bbox

    if not Path(args.data).is_dir():
        print(f"no dataset at {args.data}; run `make data` first")
        return 1
    case, image, label = _load_case(args.data, args.case, args.quick)
    desc, outputs = describe(Path(args.weights))
    box = brain_bbox(image)
    crop = [s.stop - s.start for s in box]
    tile, starts = plan_tiles(crop, None, 0.1, auto_max_voxels())
    print(f"case {case.id} {image.shape}; model: {desc}")
    print(f"brain crop {tuple(crop)} -> tile {tile} x {int(np.prod([len(s) for s in starts]))}")
    print(f"CPU: {os.cpu_count()} logical cores; wall times are noisy when the CPU is shared")

    runs = {}
    # --quick runs in this process, whose TensorFlow path is already fixed: one column
    paths = {"this process": None} if args.quick else CODE_PATHS
    for path, value in paths.items():
        with onednn_env(value) if value else contextlib.nullcontext():
            runs[path] = (
                _in_child(run_ours, args.data, args.case, args.weights, quick=args.quick),
                _in_child(run_original, args.data, args.case, args.weights, quick=args.quick),
            )
    print(f"{'':19s}" + "".join(f"{path:>36s}" for path in runs))
    speedups = print_times(runs)
    scored = print_scores(runs, label, tuple(float(z) for z in _zooms(case.label_path)), outputs)
    ok = min(speedups) >= TARGET and scored
    print("RESULT:", "OK" if ok else "BELOW TARGET", "(both paths)")
    return 0


def print_times(runs: dict[str, tuple[dict, dict]]) -> list[float]:
    """Wall/CPU seconds, wall speed-up and peak RSS of both algorithms, one column per code
    path; returns the wall speed-up of each path."""
    rows = {
        "predict_volume": [],
        "original stitcher": [],
        "speed-up": [],
        "with mirroring": [],
        "peak RSS": [],
    }
    speedups = []
    for ours, orig in runs.values():
        (w_cold, _), (w_ours, c_ours) = ours["times"]
        w_orig, c_orig = orig["times"][0]
        speedups.append(w_orig / w_ours)
        rows["predict_volume"].append(f"wall {w_ours:5.1f} s cpu {c_ours:5.1f} (1st {w_cold:.0f})")
        rows["original stitcher"].append(f"wall {w_orig:5.1f} s cpu {c_orig:5.1f} s")
        rows["speed-up"].append(f"wall {w_orig / w_ours:5.2f} x cpu {c_orig / c_ours:5.2f} x")
        w_tta, tta = ours["mirrored"]
        rows["with mirroring"].append(f"tta {tta}: wall {w_tta:5.1f} s, {w_orig / w_tta:5.2f} x")
        rows["peak RSS"].append(f"ours {ours['rss_peak']:.2f} / orig {orig['rss_peak']:.2f} GiB")
    for name, cells in rows.items():
        print(f"{name + ':':19s}" + "".join(f"{cell:>36s}" for cell in cells))
    print(
        f"(original: 40 model.predict of batch 1, no mirroring; predict_volume likewise without "
        f"mirroring or clean-up; target speed-up >= {TARGET:g}x; peak RSS of each child)"
    )
    return speedups


def print_scores(
    runs: dict[str, tuple[dict, dict]], label: np.ndarray, spacing: tuple, outputs: str
) -> bool:
    """WT/TC/ET Dice and HD95 of both algorithms on each code path (labels by the model's
    ``outputs`` kind); returns whether ours scores at least the original's mean Dice on every
    path."""
    from tumorseg.inference import probabilities_to_labels
    from tumorseg.metrics import region_scores

    print("Dice at threshold 0.5 (WT / TC / ET), same label rule for both:")
    ok = True
    for path, (ours, orig) in runs.items():
        dices = {}
        for name, res in (("ours", ours), ("original", orig)):
            labels = probabilities_to_labels(res["probs"], 0.5, outputs)
            scores = region_scores(labels, label, spacing)
            d = scores["dice"]
            dices[name] = d.mean()
            print(
                f"  {path:<10} {name:<9} {d['WT']:.4f} / {d['TC']:.4f} / {d['ET']:.4f}"
                f"   HD95 WT/TC/ET {scores['hd95']['WT']:.1f} / {scores['hd95']['TC']:.1f} / "
                f"{scores['hd95']['ET']:.1f} mm"
            )
        ok = ok and dices["ours"] >= dices["original"]
    return ok


def _zooms(path: Path) -> tuple[float, float, float]:
    import nibabel as nib

    return nib.load(str(path)).header.get_zooms()[:3]


if __name__ == "__main__":
    sys.exit(main())

"""Command lines of the inference stage: ``tumorseg predict``, ``tumorseg evaluate`` and
``tumorseg score``.

``predict`` segments one case and writes a NIfTI label map aligned with the input: uint8
(X, Y, Z) with 0 background, 1 edema, 2 non-enhancing tumor, 3 enhancing tumor (rule:
``probabilities_to_labels``), saved with the input's affine and header so it overlays the scan
in 3D Slicer or ITK-SNAP.  ``evaluate`` scores a model on whole cases
(:mod:`tumorseg.inference.evaluate`); ``score`` scores saved label maps against labels
(:mod:`tumorseg.inference.score`), writing the per-case table (CSV, or JSON with the summary)
and printing the summary as ``evaluate`` does.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from tumorseg.data import DataError, load_image, save_label_map
from tumorseg.errors import fail
from tumorseg.inference.postprocess import Mirror, Postprocess
from tumorseg.inference.settings import InferenceSettings
from tumorseg.labels import CLASS_NAMES
from tumorseg.metrics import BOTH_EMPTY_MODES
from tumorseg.patches.standardize import MODES


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--weights``, ``--threshold``, ``--standardize``, ``--tta`` and ``--no-postprocess``,
    shared by predict and evaluate."""
    parser.add_argument(
        "--weights",
        default=None,
        help="*.weights.h5 with its JSON manifest beside it (default: the model shipped in the "
        "package)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="a voxel is background unless some class probability exceeds it; otherwise it "
        "takes its most probable class (default: the manifest's threshold, else 0.5)",
    )
    parser.add_argument(
        "--standardize",
        choices=MODES,
        default=None,
        help="override the standardization recorded in the manifest",
    )
    parser.add_argument(
        "--tta",
        choices=[m.value for m in Mirror],
        default=None,
        help="test-time mirroring: none, x (2 passes) or xyz (8 passes); default: the "
        "manifest's choice",
    )
    parser.add_argument(
        "--no-postprocess",
        action="store_true",
        help="skip the whole-scan clean-up recorded in the manifest (small components, "
        "a tiny enhancing region)",
    )


def add_both_empty_option(parser: argparse.ArgumentParser) -> None:
    """``--both-empty``, shared by evaluate and score."""
    parser.add_argument(
        "--both-empty",
        choices=BOTH_EMPTY_MODES,
        default=BOTH_EMPTY_MODES[0],
        help="Dice/HD95 of a region absent from both maps: brats (1 / 0 mm, as the BraTS "
        "challenge scores it; the default) or nan (left out of means: the convention of "
        "nnU-Net's generic evaluation, MONAI and MedPy)",
    )


def settings_from_args(args: argparse.Namespace, manifest: dict) -> InferenceSettings:
    """The manifest's ``InferenceSettings`` with the flags that are set (``add_model_options``)
    applied."""
    return InferenceSettings.from_manifest(manifest).override(
        standardize=args.standardize,
        threshold=args.threshold,
        tta=args.tta,
        postprocess=Postprocess.NONE if args.no_postprocess else None,
    )


def load_model(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[Any, InferenceSettings]:
    """The model of ``args.weights`` for any input size, and the settings to run it with
    (``settings_from_args``).  A missing file or an impossible setting (a threshold outside
    [0, 1]) is a user error (``tumorseg.errors.fail``) with its message."""
    from tumorseg.model import load_pretrained

    try:
        model, manifest = load_pretrained(args.weights, input_shape=(4, None, None, None))
        return model, settings_from_args(args, manifest)
    except (FileNotFoundError, ValueError) as exc:
        fail(parser.prog, exc)


def predict_main(argv: list[str] | None = None) -> int:
    """``tumorseg predict CASE --weights W --out SEG.nii.gz [--threshold 0.5]``."""
    parser = argparse.ArgumentParser(
        prog="tumorseg predict",
        description="Segment one case; write a uint8 label map (0 background, 1 edema, "
        "2 non-enhancing, 3 enhancing) aligned with the input.",
    )
    parser.add_argument(
        "case", help="4-channel NIfTI (X,Y,Z,4), or a BraTS case folder (*_flair, *_t1, ...)"
    )
    parser.add_argument("--out", required=True, help="output label map, .nii.gz or .nii")
    add_model_options(parser)
    args = parser.parse_args(argv)

    from tumorseg.contract import probabilities_to_labels
    from tumorseg.inference.predict import predict_volume

    try:
        image, reference = load_image(args.case)
    except DataError as exc:
        fail(parser.prog, exc)
    model, settings = load_model(parser, args)
    start = time.perf_counter()
    probs = predict_volume(image, model, settings=settings)
    labels = probabilities_to_labels(probs, settings.threshold)
    out = save_label_map(labels, reference, args.out)
    counts = np.bincount(labels.ravel(), minlength=len(CLASS_NAMES) + 1)
    voxels = ", ".join(f"{name} {n}" for name, n in zip(CLASS_NAMES, counts[1:]))
    print(f"wrote {out}  ({time.perf_counter() - start:.1f} s; voxels: {voxels})")
    return 0


def evaluate_main(argv: list[str] | None = None) -> int:
    """``tumorseg evaluate --data DIR --weights W [--out CSV] [--cases ID ...]``."""
    parser = argparse.ArgumentParser(
        prog="tumorseg evaluate",
        description="Score a model on whole cases: BraTS WT/TC/ET Dice and HD95 (mm), "
        "per-class sensitivity/specificity; one CSV row per case and a summary table.",
    )
    parser.add_argument("--data", required=True, help="MSD or BraTS dataset folder")
    parser.add_argument("--out", default=None, help="per-case CSV (default: print only)")
    parser.add_argument("--cases", nargs="+", default=None, help="case ids (default: all)")
    add_model_options(parser)
    add_both_empty_option(parser)
    parser.add_argument(
        "--compare-record",
        action="store_true",
        help="also print, for the cases the model's manifest records (its 'evaluation' "
        "record), the recorded figures and the previous model's beside this run's",
    )
    args = parser.parse_args(argv)

    import pandas as pd

    from tumorseg.atomic import write_text
    from tumorseg.inference.evaluate import evaluate
    from tumorseg.inference.score import summary

    model, settings = load_model(parser, args)
    try:
        table = evaluate(args.data, model, args.cases, settings, both_empty=args.both_empty)
    except (DataError, KeyError) as exc:
        fail(parser.prog, exc)
    if args.out:
        print(f"wrote {write_text(args.out, table.to_csv(index=False, float_format='%.6g'))}")
    with pd.option_context("display.width", 120, "display.precision", 4):
        rules = settings.postprocess
        print(
            f"{len(table)} case(s), threshold {settings.threshold}, tta {settings.tta.value}, "
            f"postprocess {rules.to_dict() if rules.active else 'none'}, "
            f"both-empty {args.both_empty}; n: cases each mean is taken over"
        )
        print(summary(table).to_string())
        if args.compare_record:
            print_record_comparison(table, args.weights)
    return 0


def print_record_comparison(table: Any, weights: str | None) -> None:
    """Print ``compare_with_record`` of ``table`` against the manifest beside ``weights``
    (default: the shipped model's), or say that it records none of these cases."""
    import json

    from tumorseg.inference.record import compare_with_record
    from tumorseg.model.pretrained import manifest_path
    from tumorseg.resources import pretrained_weights

    manifest = manifest_path(weights or pretrained_weights())
    record = json.loads(manifest.read_text()).get("evaluation") or {}
    frame = compare_with_record(table, record)
    if frame.empty:
        print(f"{manifest}: its evaluation record holds none of these cases")
        return
    print(f"beside {manifest}'s evaluation record ({record.get('set', 'no description')}):")
    print(frame.round(4).to_string())


def score_main(argv: list[str] | None = None) -> int:
    """``tumorseg score --pred DIR --labels DIR [--out CSV|JSON] [--cases ID ...]``."""
    parser = argparse.ArgumentParser(
        prog="tumorseg score",
        description="Score saved label maps (<case>.nii.gz, codes 0 background, 1 edema, "
        "2 non-enhancing, 3 enhancing, as `tumorseg predict` writes them) against a dataset's "
        "labels: BraTS WT/TC/ET Dice and HD95 (mm), sensitivity/specificity; one row per case "
        "and a summary table.",
    )
    parser.add_argument("--pred", required=True, help="folder of predicted <case>.nii.gz maps")
    parser.add_argument(
        "--labels",
        required=True,
        help="folder of <case>.nii.gz label maps, or an MSD/BraTS dataset folder",
    )
    parser.add_argument(
        "--out", default=None, help="per-case table: .csv, or .json with the summary"
    )
    parser.add_argument("--cases", nargs="+", default=None, help="case ids (default: all preds)")
    add_both_empty_option(parser)
    args = parser.parse_args(argv)

    import pandas as pd

    from tumorseg.inference.score import score_folder, summary, write_table

    try:
        table = score_folder(args.pred, args.labels, args.cases, args.both_empty)
    except DataError as exc:
        fail(parser.prog, exc)
    stats = summary(table)
    if args.out:
        print(f"wrote {write_table(args.out, table, stats)}")
    unscored = table.attrs.get("unscored", [])
    if unscored:
        print(f"{len(unscored)} labelled case(s) without a prediction, not scored")
    with pd.option_context("display.width", 120, "display.precision", 4):
        print(
            f"{len(table)} case(s) scored, both-empty {args.both_empty}; n: cases each mean is taken over"
        )
        print(stats.to_string())
    return 0

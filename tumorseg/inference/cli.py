"""Command lines of the inference stage: ``tumorseg predict``, ``tumorseg evaluate`` and
``tumorseg score``.

``predict`` segments one case and writes a NIfTI label map aligned with the input: uint8
(X, Y, Z) with 0 background, 1 edema, 2 non-enhancing tumor, 3 enhancing tumor (rule:
``probabilities_to_labels``), saved with the input's affine and header so it overlays the scan
in 3D Slicer or ITK-SNAP; given a dataset folder it segments every case into a folder,
resumably, past broken cases (:mod:`tumorseg.inference.batch`).  ``evaluate`` scores a model on
whole cases (:mod:`tumorseg.inference.evaluate`); ``score`` scores saved label maps against
labels (:mod:`tumorseg.inference.score`), writing the per-case table (CSV, or JSON with the
summary) and printing the summary as ``evaluate`` does.

Batch runs take ``--shard I/N`` (:mod:`tumorseg.batch`).  Exit status: 0; 1 when the run ended
but some case failed (named on stderr, in ``failures.csv`` or the table's ``error`` column); 2
on a user error, before any output is written.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from tumorseg.batch.cli import add_shard_option
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
        help="a channel is on above it (probabilities_to_labels: a class model labels a voxel "
        "with its most probable class that is on, a region model with the innermost region "
        "that is on; background when none is); default: the manifest's threshold, else 0.5",
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


def add_report_option(parser: argparse.ArgumentParser) -> None:
    """``--report DIR``, shared by evaluate and score (see ``tumorseg.viz.report``)."""
    parser.add_argument(
        "--report",
        metavar="DIR",
        default=None,
        help="also write a visual report there: DIR/index.html (opens offline) with one row per "
        "case, worst WT Dice first, and a picture of each case's worst slice (DIR/img/)",
    )


def open_report(prog: str, args: argparse.Namespace, images: Any, **settings: Any) -> Any:
    """The ``tumorseg.viz.report.CaseReport`` of ``--report DIR``, or None without it: the
    command line's options and ``settings`` in its summary, the scans of ``images`` (a dataset
    or its folder; ``dataset_images``) in its pictures.  Raises DataError for a bad folder."""
    if not args.report:
        return None
    from tumorseg.viz.report import CaseReport, dataset_images

    return CaseReport(args.report, {**vars(args), **settings}, dataset_images(images), title=prog)


def settings_record(settings: InferenceSettings) -> dict[str, Any]:
    """``settings`` as the JSON of a run record (the manifest's keys)."""
    return {
        "standardize": settings.standardize,
        "threshold": settings.threshold,
        "tta": settings.tta.value,
        "postprocess": settings.postprocess.to_dict(),
    }


def predict_main(argv: list[str] | None = None) -> int:
    """``tumorseg predict CASE --out SEG.nii.gz`` or ``tumorseg predict DATA --out DIR
    [--shard I/N] [--overwrite]``."""
    parser = argparse.ArgumentParser(
        prog="tumorseg predict",
        description="Segment one case, or every case of a dataset folder; write uint8 label "
        "maps (0 background, 1 edema, 2 non-enhancing, 3 enhancing) aligned with the input.",
    )
    parser.add_argument(
        "source",
        metavar="case",
        help="one case: a 4-channel NIfTI (X,Y,Z,4) or a BraTS case folder (*_flair, *_t1, "
        "...); or a dataset folder (MSD, BraTS, a folder of 4-channel NIfTIs) for every case",
    )
    parser.add_argument(
        "--out",
        required=True,
        help="one case: the label map, .nii.gz or .nii; a dataset: the folder for "
        "<case>.nii.gz (with failures.csv and run.json)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="a dataset: predict the cases whose map exists too (default: skip them, so a "
        "rerun resumes)",
    )
    add_shard_option(parser)
    add_model_options(parser)
    args = parser.parse_args(argv)

    from tumorseg.inference.batch import Target, plan_output, segment

    try:
        target = plan_output(args.source, args.out)
    except DataError as exc:
        fail(parser.prog, exc)
    if target is Target.FOLDER:
        return _predict_folder(parser, args)
    if not args.shard.whole:
        fail(parser.prog, f"--shard {args.shard}: {args.source} is one case; shard a dataset")
    try:
        image, reference = load_image(args.source)
    except DataError as exc:
        fail(parser.prog, exc)
    model, settings = load_model(parser, args)
    start = time.perf_counter()
    labels = segment(image, model, settings)
    out = save_label_map(labels, reference, args.out)
    counts = np.bincount(labels.ravel(), minlength=len(CLASS_NAMES) + 1)
    voxels = ", ".join(f"{name} {n}" for name, n in zip(CLASS_NAMES, counts[1:]))
    print(f"wrote {out}  ({time.perf_counter() - start:.1f} s; voxels: {voxels})")
    return 0


def _predict_folder(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``predict DATA --out DIR``: every case of this shard; 1 when some case failed."""
    import sys
    from pathlib import Path

    from tumorseg.batch import FAILURES_CSV, run_record
    from tumorseg.data import open_dataset
    from tumorseg.inference.batch import predict_folder
    from tumorseg.model.pretrained import model_record

    try:
        dataset = open_dataset(args.source, strict=False)
    except DataError as exc:
        fail(parser.prog, exc)
    model, settings = load_model(parser, args)
    described = {**model_record(args.weights), "settings": settings_record(settings)}
    record = run_record(parser.prog, vars(args), args.shard, described)
    tally = predict_folder(dataset, args.out, model, settings, args.shard, args.overwrite, record)
    print(tally.line())
    if tally.failures:
        print(f"failed cases: {Path(args.out) / FAILURES_CSV}", file=sys.stderr)
    return 1 if tally.failures else 0


def evaluate_main(argv: list[str] | None = None) -> int:
    """``tumorseg evaluate --data DIR [--weights W] [--out CSV|JSON] [--cases ID ...]
    [--save DIR] [--shard I/N]``; exit status 1 when some case could not be scored."""
    parser = argparse.ArgumentParser(
        prog="tumorseg evaluate",
        description="Score a model on whole cases: BraTS WT/TC/ET Dice and HD95 (mm), "
        "per-class sensitivity/specificity; one row per case (sorted by case id; a case that "
        "cannot be read gets an error column instead of scores) and a summary table.",
    )
    parser.add_argument("--data", required=True, help="MSD or BraTS dataset folder")
    parser.add_argument(
        "--out", default=None, help="per-case table: .csv, or .json with the summary"
    )
    parser.add_argument("--cases", nargs="+", default=None, help="case ids (default: all)")
    parser.add_argument(
        "--save",
        default=None,
        help="folder to keep the scored label maps in (<case>.nii.gz, with run.json), for "
        "`tumorseg score` to rescore without predicting again",
    )
    add_shard_option(parser)
    add_model_options(parser)
    add_both_empty_option(parser)
    parser.add_argument(
        "--compare-record",
        action="store_true",
        help="also print, for the cases the model's manifest records (its 'evaluation' "
        "record), the recorded figures and the previous model's beside this run's",
    )
    add_report_option(parser)
    args = parser.parse_args(argv)

    import pandas as pd

    from tumorseg.data import open_dataset
    from tumorseg.inference.evaluate import evaluate
    from tumorseg.inference.score import count_line, failed_cases, summary, write_table

    try:
        dataset = open_dataset(args.data, strict=False)
        cases = args.shard.select(args.cases or dataset.ids)
        for case in cases:
            dataset[case]  # an unknown id is a user error, before the model loads
    except (DataError, KeyError) as exc:
        fail(parser.prog, exc)
    model, settings = load_model(parser, args)
    saving = _SaveRecord(parser.prog, args, settings) if args.save else None
    report = open_report(parser.prog, args, dataset, **settings_record(settings))
    on_case = report.add if report else None
    table = evaluate(dataset, model, cases, settings, args.both_empty, args.save, on_case)
    if saving:
        saving.finish(table)
    if args.out:
        print(f"wrote {write_table(args.out, table, summary(table))}")
    if report:
        print(f"wrote {report.write(table)}")
    with pd.option_context("display.width", 120, "display.precision", 4):
        rules = settings.postprocess
        print(
            f"{count_line(table)}; threshold {settings.threshold}, tta {settings.tta.value}, "
            f"postprocess {rules.to_dict() if rules.active else 'none'}, "
            f"both-empty {args.both_empty}; n: cases each mean is taken over"
        )
        print(summary(table).to_string())
        if args.compare_record:
            print_record_comparison(table, args.weights)
    return 1 if failed_cases(table) else 0


class _SaveRecord:
    """The run record of ``evaluate --save DIR``: written when the run starts, and again with
    the outcome (cases scored, cases failed) when it ends."""

    def __init__(self, prog: str, args: argparse.Namespace, settings: InferenceSettings):
        from tumorseg.batch import run_record, write_run_record
        from tumorseg.model.pretrained import model_record

        described = {**model_record(args.weights), "settings": settings_record(settings)}
        self.folder, self.shard = args.save, args.shard
        self.record = run_record(prog, vars(args), args.shard, described)
        write_run_record(self.folder, self.record, self.shard)

    def finish(self, table: Any) -> None:
        from tumorseg.batch import finish_record, write_run_record
        from tumorseg.inference.score import failed_cases

        failed = failed_cases(table)
        outcome = {"scored": len(table) - len(failed), "failed": failed}
        write_run_record(self.folder, finish_record(self.record, outcome), self.shard)


def print_record_comparison(table: Any, weights: str | None) -> None:
    """Print ``compare_with_record`` of ``table`` against each per-case record of the
    manifest's ``evaluation`` beside ``weights`` (default: the shipped model's), or say that
    none holds these cases."""
    import json

    from tumorseg.inference.record import compare_with_record
    from tumorseg.model.pretrained import manifest_path
    from tumorseg.resources import pretrained_weights

    manifest = manifest_path(weights or pretrained_weights())
    evaluation = json.loads(manifest.read_text()).get("evaluation") or {}
    records = {k: r for k, r in evaluation.items() if isinstance(r, dict) and "per_case" in r}
    shown = 0
    for name, record in records.items():
        frame = compare_with_record(table, record)
        if frame.empty:
            continue
        shown += 1
        print(f"beside {manifest}'s evaluation record {name!r} ({record.get('set', '')}):")
        print(frame.round(4).to_string())
    if not shown:
        print(f"{manifest}: its evaluation records hold none of these cases")


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
    add_shard_option(parser)
    add_both_empty_option(parser)
    add_report_option(parser)
    args = parser.parse_args(argv)

    import pandas as pd

    from tumorseg.inference.score import (
        count_line,
        failed_cases,
        score_folder,
        summary,
        write_table,
    )

    try:
        report = open_report(parser.prog, args, args.labels)
        on_case = report.add if report else None
        table = score_folder(
            args.pred, args.labels, args.cases, args.both_empty, args.shard, on_case
        )
    except DataError as exc:
        fail(parser.prog, exc)
    stats = summary(table)
    if args.out:
        print(f"wrote {write_table(args.out, table, stats)}")
    if report:
        print(f"wrote {report.write(table)}")
    unscored = table.attrs.get("unscored", [])
    if unscored:
        print(f"{len(unscored)} labelled case(s) without a prediction, not scored")
    with pd.option_context("display.width", 120, "display.precision", 4):
        print(
            f"{count_line(table)}, both-empty {args.both_empty}; n: cases each mean is taken over"
        )
        print(stats.to_string())
    return 1 if failed_cases(table) else 0

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
from tumorseg.data import DataError, load_image
from tumorseg.errors import fail
from tumorseg.inference.postprocess import Mirror, Postprocess
from tumorseg.inference.settings import InferenceSettings
from tumorseg.labels import CLASS_NAMES
from tumorseg.metrics import BOTH_EMPTY_MODES
from tumorseg.patches.standardize import MODES


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--weights``, ``--threshold``, ``--standardize``, ``--tta``, ``--no-postprocess``,
    ``--precision`` and ``--single-model``, shared by predict and evaluate."""
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
        help="test-time mirroring: none, x (2 passes), xy or xz (4) or xyz (8 passes); "
        "default: the manifest's choice",
    )
    parser.add_argument(
        "--tumour-tta",
        choices=[m.value for m in Mirror],
        default=None,
        help="more mirroring where the tumour is: the passes of this mirroring that --tta has "
        "not made run only around the voxels the first passes found tumour in (none: no more "
        "passes); default: the manifest's choice",
    )
    parser.add_argument(
        "--no-postprocess",
        action="store_true",
        help="skip the whole-scan clean-up recorded in the manifest (small components, "
        "a tiny enhancing region)",
    )
    parser.add_argument(
        "--precision",
        choices=["auto", "float32", "bf16"],
        default=None,
        help="arithmetic of the forward passes: auto (bfloat16 where the CPU computes it "
        "natively, AVX512-BF16 or AMX; else float32), float32 or bf16; default: the manifest's "
        "inference_precision, else float32",
    )
    parser.add_argument(
        "--single-model",
        action="store_true",
        help="run only the first member of an ensemble model (the manifest's members)",
    )


def add_label_coding_option(parser: argparse.ArgumentParser, what: str) -> None:
    """``--label-coding``, shared by predict, evaluate (for --save) and score (for --pred)."""
    from tumorseg.labels import DEFAULT_CODING, LabelCoding

    parser.add_argument(
        "--label-coding",
        choices=[c.value for c in LabelCoding],
        default=DEFAULT_CODING.value,
        help=f"label coding of {what}: msd (the course's and MSD Task01's: 1 edema, "
        "2 non-enhancing, 3 enhancing; the default), brats2021 (BraTS 2018-2021: 1 necrosis/"
        "non-enhancing, 2 edema, 4 enhancing) or brats2023 (BraTS 2023+: 1 necrosis, 2 edema, "
        "3 enhancing)",
    )


def add_output_options(parser: argparse.ArgumentParser, where: str) -> None:
    """``--label-coding``, ``--save-probabilities``, ``--save-uncertainty`` and
    ``--no-resample``, shared by predict and evaluate (``where``: which maps they concern)."""
    add_label_coding_option(parser, f"the label maps written{where}")
    parser.add_argument(
        "--save-probabilities",
        action="store_true",
        help="also write the region probabilities (WT, TC, ET) the map is thresholded from "
        "(after mirroring, before clean-up) on the input's grid: uint8 (X,Y,Z,3), value/255 "
        "(header slope 1/255), each voxel on its side of the threshold, so thresholding them "
        "gives the map before clean-up exactly; one case: <stem>_probabilities.nii.gz beside the "
        f"map; a folder: DIR/probabilities/<case>.nii.gz{where}",
    )
    parser.add_argument(
        "--save-uncertainty",
        action="store_true",
        help="also write a voxel uncertainty map: uint8 (X,Y,Z,3), WT/TC/ET, the binary "
        "entropy of each probability x 100 (0 certain .. 100 at p=0.5, the QU-BraTS scale); one "
        "case: <stem>_uncertainty.nii.gz beside the map; a folder: "
        f"DIR/uncertainty/<case>.nii.gz{where}",
    )
    parser.add_argument(
        "--no-resample",
        action="store_true",
        help="predict a scan on its own grid even when its header's voxel size differs from the "
        "model's (the manifest's 'spacing', 1 mm); by default such a scan is resampled (linear) "
        "to the model's spacing and its probabilities back onto the input's grid",
    )


def save_options(args: argparse.Namespace) -> Any:
    """The ``SaveOptions`` of ``add_output_options``' flags."""
    from tumorseg.inference.outputs import SaveOptions

    return SaveOptions(args.label_coding, args.save_probabilities, args.save_uncertainty)


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
        tumour_tta=args.tumour_tta,
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
        model, manifest = load_pretrained(
            args.weights,
            input_shape=(4, None, None, None),
            ensemble=not getattr(args, "single_model", False),
            precision=getattr(args, "precision", None),
        )
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


def open_doubt_report(prog: str, args: argparse.Namespace, **settings: Any) -> Any:
    """The ``tumorseg.viz.doubt_report.DoubtReport`` of ``predict --report DIR``, or None
    without it; a shard's goes to ``DIR/shard-I-of-N`` (shards may share DIR)."""
    if not args.report:
        return None
    from pathlib import Path

    from tumorseg.viz.doubt_report import DoubtReport

    folder = Path(args.report)
    if not args.shard.whole:
        folder = folder / f"shard-{args.shard.index}-of-{args.shard.count}"
    return DoubtReport(folder, {**vars(args), **settings}, title=prog)


def tumour_note(settings: InferenceSettings) -> str:
    """``" (+ xz around the tumour)"`` when the settings add mirror passes there, else ``""``."""
    extra = settings.tumour_tta
    return "" if extra is Mirror.NONE else f" (+ {extra.value} around the tumour)"


def settings_record(settings: InferenceSettings) -> dict[str, Any]:
    """``settings`` as the JSON of a run record (the manifest's keys)."""
    return {
        "standardize": settings.standardize,
        "threshold": settings.threshold,
        "tta": settings.tta.value,
        "tumour_tta": settings.tumour_tta.value,
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
    add_output_options(parser, "")
    parser.add_argument(
        "--report",
        metavar="DIR",
        default=None,
        help="also write a report without labels there: DIR/index.html (opens offline) with "
        "one row per case, most doubtful first (the order of qc.csv), each with its doubt "
        "figures and a picture (DIR/img/) of its most uncertain slice: the scan, the predicted "
        "map and the uncertainty map; a shard's goes to DIR/shard-I-of-N",
    )
    args = parser.parse_args(argv)

    from tumorseg.inference.batch import Target, plan_output

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
    from tumorseg.inference.outputs import run_case, write_outputs
    from tumorseg.inference.spacing import header_spacing

    options = save_options(args)
    start = time.perf_counter()
    spacing = header_spacing(reference)
    result = run_case(image, spacing, model, settings, not args.no_resample, args.source)
    out, *more = write_outputs(result, reference, args.out, options, settings.threshold, False)
    counts = np.bincount(result.labels.ravel(), minlength=len(CLASS_NAMES) + 1)
    voxels = ", ".join(f"{name} {n}" for name, n in zip(CLASS_NAMES, counts[1:]))
    print(
        f"wrote {out}  ({time.perf_counter() - start:.1f} s; label coding "
        f"{options.coding.value}; voxels: {voxels}; doubt {result.doubt['doubt']:.3f})"
    )
    for path in more:
        print(f"wrote {path}")
    if args.report:
        _report_one_case(parser.prog, args, image, result, settings)
    return 0


def _report_one_case(
    prog: str, args: argparse.Namespace, image: np.ndarray, result: Any, settings: Any
) -> None:
    """``predict CASE --out SEG.nii.gz --report DIR``: the report of the one case, named by
    the map's stem."""
    from pathlib import Path

    from tumorseg.inference.uncertainty import qc_table

    report = open_doubt_report(prog, args, **settings_record(settings))
    stem = Path(args.out).name.split(".nii")[0]
    report.add(stem, image, result.labels, result.uncertainty)
    print(f"wrote {report.write(qc_table([{'case': stem, **result.doubt}]))}")


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
    options = save_options(args)
    described = {**model_record(args.weights), "settings": settings_record(settings)}
    record = run_record(parser.prog, vars(args), args.shard, described)
    record["outputs"] = options.record()
    report = open_doubt_report(parser.prog, args, **settings_record(settings))
    tally = predict_folder(
        dataset,
        args.out,
        model,
        settings,
        args.shard,
        args.overwrite,
        record,
        options=options,
        resample=not args.no_resample,
        on_case=(lambda c, im, r: report.add(c, im, r.labels, r.uncertainty)) if report else None,
    )
    from tumorseg.batch import read_failures
    from tumorseg.inference.batch import qc_path

    qc = qc_path(args.out, args.shard)
    if qc.is_file():
        print(f"check first: {qc} (one row per case, most doubtful first)")
    if report:
        from tumorseg.inference.uncertainty import read_qc

        print(f"wrote {report.write(read_qc(qc), read_failures(args.out))}")
    print(f"{tally.line()}; label coding {options.coding.value}")
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
        help="folder to keep the scored label maps in (<case>.nii.gz, with run.json and the "
        "check-first list qc.csv, most doubtful case first), for `tumorseg score` to rescore "
        "without predicting again",
    )
    add_shard_option(parser)
    add_model_options(parser)
    add_output_options(parser, " (with --save)")
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
    from tumorseg.inference.uncertainty import ranking_line

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
    table = evaluate(
        dataset,
        model,
        cases,
        settings,
        args.both_empty,
        args.save,
        on_case,
        save_options(args),
        not args.no_resample,
    )
    if saving:
        saving.finish(table)
    if args.out:
        print(f"wrote {write_table(args.out, table, summary(table))}")
    if report:
        print(f"wrote {report.write(table)}")
    with pd.option_context("display.width", 120, "display.precision", 4):
        rules = settings.postprocess
        coding = f", label coding {args.label_coding}" if args.save else ""
        print(
            f"{count_line(table)}; threshold {settings.threshold}, tta {settings.tta.value}"
            f"{tumour_note(settings)}, "
            f"postprocess {rules.to_dict() if rules.active else 'none'}, "
            f"both-empty {args.both_empty}{coding}; n: cases each mean is taken over"
        )
        print(summary(table).to_string())
        print(ranking_line(table))
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
        self.record["outputs"] = save_options(args).record()
        write_run_record(self.folder, self.record, self.shard)

    def finish(self, table: Any) -> None:
        """Write the outcome into the run record, and the scored cases' doubt into the
        check-first list (``qc.csv``, or ``qc-shard-I-of-N.csv``), as a folder predict does."""
        from tumorseg.batch import finish_record, write_run_record
        from tumorseg.inference.batch import qc_path
        from tumorseg.inference.score import failed_cases
        from tumorseg.inference.uncertainty import qc_rows, update_qc

        failed = failed_cases(table)
        outcome = {"scored": len(table) - len(failed), "failed": failed}
        write_run_record(self.folder, finish_record(self.record, outcome), self.shard)
        rows = qc_rows(table)
        if rows:
            print(f"check first: {update_qc(qc_path(self.folder, self.shard), rows)}")


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
    add_label_coding_option(
        parser,
        "the --pred maps (the labels follow their dataset's layout); each map is checked: one "
        "whose edema code lies mostly inside its other tumour codes is warned about, naming the "
        "coding that fits, and the table's label_coding, edema_outer_share and coding_fits "
        "columns record it",
    )
    parser.add_argument(
        "--uncertainty",
        metavar="DIR",
        default=None,
        help="also score voxel uncertainty maps DIR/<case>.nii.gz ((X,Y,Z,3) WT/TC/ET or "
        "(X,Y,Z), 0 certain .. 100; `predict --save-uncertainty` writes PRED/uncertainty/) with "
        "the QU-BraTS score per region: the mean of the area under the filtered Dice curve, "
        "1 - that of the filtered true-positive ratio and 1 - that of the filtered true-negative "
        "ratio over uncertainty thresholds 0, 25, 50, 75, 100 (columns <R>_qu_*)",
    )
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
            args.pred,
            args.labels,
            args.cases,
            args.both_empty,
            args.shard,
            on_case,
            args.label_coding,
            args.uncertainty,
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
        doubtful = int((table.get("coding_fits", pd.Series(dtype=str)).fillna("") != "").sum())
        warned = f", {doubtful} case(s) fit another coding (see coding_fits)" if doubtful else ""
        print(
            f"{count_line(table)}, label coding {args.label_coding}{warned}, both-empty "
            f"{args.both_empty}; n: cases each mean is taken over"
        )
        print(stats.to_string())
        if args.uncertainty:
            scored = table[table["error"].fillna("") == ""]
            means = {r: scored[f"{r}_qu_score"].mean() for r in ("WT", "TC", "ET")}
            print(
                "QU-BraTS uncertainty score (mean over cases): "
                + ", ".join(f"{r} {v:.4f}" for r, v in means.items())
            )
    return 1 if failed_cases(table) else 0

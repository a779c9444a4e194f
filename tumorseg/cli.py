"""Command-line entry point: ``tumorseg <command> [options]``.

Each command's argument parsing lives in the ``cli`` module of the stage it drives, as a
function ``(argv) -> int`` (``main`` where the module has one command, ``<command>_main`` where
it has several); library modules hold none.  This module dispatches, importing the command's
module lazily so ``tumorseg --help`` is fast.

User errors are reported one way by every command, through ``fail`` (:mod:`tumorseg.errors`,
where the exit statuses are described).  A ``DataError`` that a command does not handle itself
is reported the same way here.
"""

from __future__ import annotations

import enum
import importlib
import sys

from tumorseg.errors import DataError, fail

__all__ = ["BACKEND_COMMANDS", "COMMANDS", "main"]

#: Commands that load the deep-learning backend; ``main`` imports it quietly first
#: (``tumorseg.quiet.import_backend``), so TensorFlow's C++ start-up lines stay off stderr.
BACKEND_COMMANDS = frozenset({"train", "predict", "evaluate"})

#: command -> (module, function in it taking ``argv`` and returning the exit status, help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "synth": ("tumorseg.data.cli", "synth_main", "build the synthetic MSD-style sample dataset"),
    "download": (
        "tumorseg.data.cli",
        "download_main",
        "download MSD Task01_BrainTumour (real data)",
    ),
    "overview": ("tumorseg.viz.cli", "main", "render an overview PNG of a few cases"),
    "patches": (
        "tumorseg.patches.cli",
        "main",
        "sample 160x160x16 training patches into h5 files",
    ),
    "train": ("tumorseg.train.cli", "main", "train the 3D U-Net on a patch store"),
    "predict": (
        "tumorseg.inference.cli",
        "predict_main",
        "segment one case, or every case of a dataset, into NIfTI label maps",
    ),
    "evaluate": (
        "tumorseg.inference.cli",
        "evaluate_main",
        "score a model on whole cases (Dice, HD95, ...)",
    ),
    "score": (
        "tumorseg.inference.cli",
        "score_main",
        "score saved label maps against a dataset's labels",
    ),
    "merge": (
        "tumorseg.cli",
        "merge_main",
        "merge the outputs of --shard runs (evaluate/score tables, grade folders)",
    ),
    "release": (
        "tumorseg.course.cli",
        "release_main",
        "generate the student notebook from the instructor one",
    ),
    "grade": ("tumorseg.course.grading.cli", "grade_main", "autograde student notebooks"),
    "hardware": (
        "tumorseg.cli",
        "hardware_main",
        "what this CPU gives TensorFlow: model, flags, oneDNN on or off",
    ),
}


def hardware_main(argv: list[str]) -> int:
    """``tumorseg hardware``: print ``tumorseg.hardware.report()`` (the CPU model and cores, its
    flags of interest, whether oneDNN is on); takes no options."""
    import argparse

    from tumorseg.hardware import report

    parser = argparse.ArgumentParser(prog="tumorseg hardware", description=COMMANDS["hardware"][2])
    parser.parse_args(argv)
    print(report())
    return 0


# --------------------------------------------------------------------------- tumorseg merge
class PartKind(enum.Enum):
    """What a shard's output is: a per-case table, a grades folder, or a check-first list
    (``qc.csv``, or a predict/evaluate --save folder holding its shards' lists)."""

    TABLE = "table"
    GRADES = "grades"
    QC = "check-first list"


def part_kind(path: str) -> PartKind:
    """The kind of one part of ``tumorseg merge``; DataError naming it when it is neither."""
    from pathlib import Path

    from tumorseg.course.grading.results import CSV_NAME
    from tumorseg.inference.batch import qc_files
    from tumorseg.inference.merge import TABLE_SUFFIXES, is_qc_table

    path = Path(path)
    if path.is_dir():
        if (path / CSV_NAME).is_file():
            return PartKind.GRADES
        if qc_files(path):
            return PartKind.QC
        raise DataError(
            f"{path}: a folder without {CSV_NAME} or qc.csv, so neither a `tumorseg grade --out` "
            f"folder nor a `predict DATA --out`/`evaluate --save` folder. Pass the grade "
            f"folders of the shards, their run folders, or the CSV/JSON tables of evaluate/score."
        )
    if path.suffix in TABLE_SUFFIXES:
        if not path.is_file():
            raise DataError(f"{path}: not found. Pass the --out file of each shard.")
        return PartKind.QC if is_qc_table(path) else PartKind.TABLE
    raise DataError(
        f"{path}: not a part to merge. Pass the .csv/.json tables of `tumorseg evaluate`/"
        f"`score`, or the --out folders of `tumorseg grade`."
    )


def parts_kind(parts: list[str]) -> PartKind:
    """The common kind of ``parts``; DataError when there are none or they differ."""
    from pathlib import Path

    if not parts:
        raise DataError("nothing to merge: pass the outputs of the shards.")
    kinds = {Path(p): part_kind(p) for p in parts}
    first = next(iter(kinds))
    for path, kind in kinds.items():
        if kind is not kinds[first]:
            raise DataError(
                f"{path}: a {kind.value} part, but {first} is a {kinds[first].value} part. "
                f"Merge the outputs of one command at a time."
            )
    return kinds[first]


def merge_main(argv: list[str] | None = None) -> int:
    """``tumorseg merge --out OUT PART...``: tells what the parts are and hands them to the
    command that owns how its outputs merge (:mod:`tumorseg.inference.merge` for the case tables
    of evaluate/score, :mod:`tumorseg.course.grading.merge` for grade folders); exit status 1
    when the merged table holds failed cases, 2 on a user error."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="tumorseg merge",
        description="Merge the outputs of shards (--shard I/N): evaluate/score tables (CSV or "
        "JSON; rows sorted by case, summary recomputed), grade folders (results.csv and the "
        "reports), or the check-first lists of predict/evaluate --save runs (their qc.csv / "
        "qc-shard-I-of-N.csv files, or the run folders holding them; one qc.csv, most doubtful "
        "case first).  The result equals that of one unsharded run.",
    )
    parser.add_argument(
        "parts",
        nargs="+",
        help="the shards' tables, their grade folders, or their qc.csv files or run folders",
    )
    parser.add_argument(
        "--out",
        required=True,
        help="merged table (.csv or .json), grade folder, or check-first list (a .csv, or a "
        "folder to hold qc.csv)",
    )
    args = parser.parse_args(argv)

    import pandas as pd

    from tumorseg.course.grading.merge import merge_grades
    from tumorseg.inference.merge import merge_qc, merge_tables, write_merged_qc, write_merged_table

    try:
        kind = parts_kind(args.parts)
        if kind is PartKind.GRADES:
            rows = merge_grades(args.parts, args.out)
            print(f"merged {len(args.parts)} grade folder(s): {len(rows)} submission(s)")
            print(f"results: {args.out}/results.csv")
            return 0
        if kind is PartKind.QC:
            qc = merge_qc(args.parts)
            written = write_merged_qc(args.out, qc)
            print(f"wrote {written}  ({len(qc)} case(s), most doubtful first)")
            return 0
        table = merge_tables(args.parts)
        written = write_merged_table(args.out, table)
    except DataError as exc:
        fail(parser.prog, exc)
    from tumorseg.inference.score import count_line, failed_cases, summary

    print(f"wrote {written}  ({len(args.parts)} part(s))")
    with pd.option_context("display.width", 120, "display.precision", 4):
        print(count_line(table))
        print(summary(table).to_string())
    return 1 if failed_cases(table) else 0


def version_text() -> str:
    """``tumorseg --version``: the package's version and the shipped model's identity (its
    weights file and the first 12 hex of its sha256, as run records name it, and the manifest's
    commit, steps and output kind); no deep-learning import."""
    import hashlib
    import json

    from tumorseg import __version__
    from tumorseg.resources import manifest_path, pretrained_weights

    lines = [f"tumorseg {__version__}"]
    try:
        weights = pretrained_weights()
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
        manifest = json.loads(manifest_path(weights).read_text())
    except (OSError, ValueError) as exc:
        return "\n".join([*lines, f"shipped model: unavailable ({exc})"])
    facts = [
        f"commit {str(manifest['git_commit'])[:12]}" if manifest.get("git_commit") else "",
        f"{manifest['steps']} steps" if manifest.get("steps") else "",
        f"outputs {manifest['outputs']}" if manifest.get("outputs") else "",
    ]
    described = ", ".join(f for f in facts if f)
    lines.append(
        f"shipped model: {weights.name}@{digest}" + (f" ({described})" if described else "")
    )
    return "\n".join(lines)


def _usage() -> str:
    lines = [
        "usage: tumorseg <command> [options]   (or: python -m tumorseg ...)",
        "       tumorseg --version",
        "",
        "commands:",
    ]
    lines += [f"  {name:<10} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += ["", "Run 'tumorseg <command> --help' for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    if argv[0] in {"-V", "--version"}:
        print(version_text())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(_usage(), file=sys.stderr)
        fail("tumorseg", f"unknown command {name!r}")
    if name in BACKEND_COMMANDS and not {"-h", "--help"} & set(rest):
        import os

        from tumorseg.quiet import import_backend

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import_backend()
    module_name, function, _ = COMMANDS[name]
    command = getattr(importlib.import_module(module_name), function)
    try:
        return int(command(rest) or 0)
    except DataError as exc:
        fail(f"tumorseg {name}", exc)


if __name__ == "__main__":
    sys.exit(main())

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
        "tumorseg.batch.cli",
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


def _usage() -> str:
    lines = ["usage: tumorseg <command> [options]   (or: python -m tumorseg ...)", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += ["", "Run 'tumorseg <command> --help' for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
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

"""Command-line entry point: ``tumorseg <command> [options]``.

Each command lives next to the stage it drives and exposes ``main(argv) -> int``;
this module only dispatches, importing the stage lazily so ``tumorseg --help`` is fast.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("tumorseg.data.synth", "build the synthetic MSD-style sample dataset"),
    "download": ("tumorseg.data.download", "download MSD Task01_BrainTumour (real data)"),
    "overview": ("tumorseg.viz.overview", "render an overview PNG of a few cases"),
    "patches": ("tumorseg.patches.store", "sample 160x160x16 training patches into h5 files"),
    "train": ("tumorseg.train.loop", "train the 3D U-Net on a patch store"),
    "predict": ("tumorseg.inference.cli", "segment one case and write a NIfTI label map"),
    "evaluate": ("tumorseg.inference.evaluate", "score a model on whole cases (Dice, HD95, ...)"),
    "release": ("tumorseg.course.release", "generate the student notebook from the instructor one"),
    "grade": ("tumorseg.course.grader", "autograde student notebooks"),
}


def _usage() -> str:
    lines = ["usage: tumorseg <command> [options]   (or: python -m tumorseg ...)", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'tumorseg <command> --help' for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"tumorseg: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())

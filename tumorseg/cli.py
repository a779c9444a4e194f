"""Command-line entry point: ``tumorseg <command> [options]``.

Each command lives next to the stage it drives and exposes ``main(argv) -> int``;
this module dispatches, importing the stage lazily so ``tumorseg --help`` is fast.

User errors (a missing or bad input file, an impossible option) are reported one way by every
command, through :func:`fail`: ``tumorseg <command>: error: <message>`` on stderr and exit
status 2, the form argparse uses for a bad option.  A ``DataError`` that a command does not
handle itself is reported the same way here.  Exit status 1 means the command ran but its
result is negative (``release --check`` found a stale notebook, ``grade`` had grader errors,
a download failed on the network).
"""

from __future__ import annotations

import importlib
import sys
from typing import NoReturn

#: Exit status of a command stopped by a user error.
USER_ERROR = 2

#: Commands that load the deep-learning backend; ``main`` imports it quietly first
#: (``tumorseg.quiet.import_backend``), so TensorFlow's C++ start-up lines stay off stderr.
BACKEND_COMMANDS = frozenset({"train", "predict", "evaluate"})

COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("tumorseg.data.synth", "build the synthetic MSD-style sample dataset"),
    "download": ("tumorseg.data.download", "download MSD Task01_BrainTumour (real data)"),
    "overview": ("tumorseg.viz.overview", "render an overview PNG of a few cases"),
    "patches": ("tumorseg.patches.store", "sample 160x160x16 training patches into h5 files"),
    "train": ("tumorseg.train.cli", "train the 3D U-Net on a patch store"),
    "predict": ("tumorseg.inference.cli", "segment one case and write a NIfTI label map"),
    "evaluate": ("tumorseg.inference.evaluate", "score a model on whole cases (Dice, HD95, ...)"),
    "release": ("tumorseg.course.release", "generate the student notebook from the instructor one"),
    "grade": ("tumorseg.course.grading.grader", "autograde student notebooks"),
}


def _usage() -> str:
    lines = ["usage: tumorseg <command> [options]   (or: python -m tumorseg ...)", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'tumorseg <command> --help' for a command's options."]
    return "\n".join(lines)


def fail(prog: str, error: BaseException | str) -> NoReturn:
    """Stop a command on a user error: ``<prog>: error: <message>`` on stderr, exit status 2.

    prog: the command as typed, e.g. ``"tumorseg predict"``.
    error: the message, or an exception whose first argument is the message (a ``KeyError``'s
        text without the quotes ``str()`` would add).
    Raises SystemExit(2).
    """
    if isinstance(error, BaseException) and error.args and isinstance(error.args[0], str):
        error = error.args[0]
    print(f"{prog}: error: {error}", file=sys.stderr)
    raise SystemExit(USER_ERROR)


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
    module = importlib.import_module(COMMANDS[name][0])
    from tumorseg.data.errors import DataError

    try:
        return int(module.main(rest) or 0)
    except DataError as exc:
        fail(f"tumorseg {name}", exc)


if __name__ == "__main__":
    sys.exit(main())

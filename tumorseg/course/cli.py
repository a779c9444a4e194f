"""Command lines of the course: ``tumorseg release`` and the Colab setup.

- ``release_main``: ``tumorseg release``, the student notebook from the instructor one
  (library side: :mod:`tumorseg.course.release`);
- ``colab_main``: the setup that the notebook's first cell runs in Colab, before the package is
  installed (library side: :mod:`tumorseg.course.colab`); from a shell::

      python -m tumorseg.course.cli colab [ROOT] [--no-data]

This module imports the standard library only; each command imports its library side when it
runs, so the Colab setup never loads ``nbformat``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from tumorseg.errors import fail

#: the commands of ``python -m tumorseg.course.cli`` (``release`` is ``tumorseg release``)
MODULE_COMMANDS = ("colab",)


def release_parser() -> argparse.ArgumentParser:
    """The options of ``tumorseg release``."""
    from tumorseg.course.release import INSTRUCTOR, README, STUDENT

    parser = argparse.ArgumentParser(
        prog="tumorseg release",
        description="Generate the student notebook (solutions replaced by None, outputs and "
        "grader cells removed) from the instructor notebook, with the published repository's "
        "address in its first cell and in the README's Colab badge.",
    )
    parser.add_argument(
        "--source", type=Path, default=INSTRUCTOR, help="instructor notebook (default: %(default)s)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=STUDENT,
        help="where to write the student notebook (default: %(default)s)",
    )
    parser.add_argument(
        "--repo-url",
        help="the published repository's clone address, e.g. https://github.com/OWNER/tumorseg.git "
        "(default: Repository under [project.urls] in pyproject.toml)",
    )
    parser.add_argument(
        "--readme",
        type=Path,
        default=README,
        help="README whose Colab badge gets the address (default: %(default)s)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the repository address is unset or a file differs from "
        "a fresh release",
    )
    return parser


def _release_outputs(args: argparse.Namespace, url: str | None) -> dict[Path, str]:
    """{file: text} of a fresh release: the student notebook, and the README when the address
    is set.  A user error stops the command, naming the file."""
    import nbformat

    from tumorseg.course.release import build_release, stamp_badge

    try:
        outputs = {args.out: build_release(args.source, url)}
    except (OSError, ValueError, nbformat.ValidationError) as exc:
        fail("tumorseg release", f"{args.source}: {exc}")
    if url is not None and args.readme is not None:
        try:
            outputs[args.readme] = stamp_badge(args.readme.read_text(encoding="utf-8"), url)
        except (OSError, ValueError) as exc:
            fail("tumorseg release", f"{args.readme}: {exc}")
    return outputs


def _release_check(outputs: dict[Path, str], url: str | None) -> int:
    """``--check``: 0 when the address is set and every file equals a fresh release."""
    from tumorseg.course.release import UNSET

    problems = [] if url is not None else [UNSET]
    for path, text in outputs.items():
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current != text:
            problems.append(f"{path} is out of date; run `tumorseg release`")
    for problem in problems:
        print(f"tumorseg release --check: {problem}", file=sys.stderr)
    if not problems:
        print(f"{', '.join(map(str, outputs))} up to date, repository {url}")
    return 1 if problems else 0


def release_main(argv: list[str] | None = None) -> int:
    """``tumorseg release [--source NB] [--out PATH] [--repo-url URL] [--readme PATH] [--check]``."""
    args = release_parser().parse_args(argv)
    from tumorseg.atomic import write_text
    from tumorseg.course import release

    try:
        url = args.repo_url or release.configured_repo_url()
        if url is not None:
            url = release.check_repo_url(url)
    except (OSError, ValueError) as exc:
        fail("tumorseg release", exc)
    outputs = _release_outputs(args, url)
    if args.check:
        return _release_check(outputs, url)
    for path, text in outputs.items():
        write_text(path, text)
        print(f"wrote {path}")
    if url is None:
        print(f"note: {release.UNSET}", file=sys.stderr)
    elif not release.on_github(url):
        print(
            "note: Colab opens notebooks from GitHub only, so the badge leads to "
            f"{release.colab_link(url)}",
            file=sys.stderr,
        )
    return 0


def colab_main(argv: list[str] | None = None) -> int:
    """Install, build the sample data, describe the runtime (see :mod:`tumorseg.course.colab`).
    Exit status 2 when ROOT is not a clone, 1 when a command failed or TensorFlow, Keras or
    numpy changed (a runtime restart is then needed), else 0."""
    from tumorseg.course import colab

    parser = argparse.ArgumentParser(prog="python -m tumorseg.course.cli colab")
    parser.add_argument("root", nargs="?", type=Path, default=Path.cwd(), help="the clone")
    parser.add_argument("--no-data", action="store_true", help="install only")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if not (root / "pyproject.toml").is_file():
        print(f"{root}: no pyproject.toml, so not a tumorseg clone", file=sys.stderr)
        return 2
    try:
        same = colab.install(root)
        if not args.no_data:
            colab.build_sample_data(root)
    except subprocess.CalledProcessError as exc:
        print(f"failed: {' '.join(map(str, exc.cmd))} (exit {exc.returncode})", file=sys.stderr)
        return 1
    print(colab.describe_runtime())
    return 0 if same else 1


def main(argv: list[str] | None = None) -> int:
    """``python -m tumorseg.course.cli colab ...``: the commands of :data:`MODULE_COMMANDS`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in MODULE_COMMANDS:
        print(
            f"usage: python -m tumorseg.course.cli {{{','.join(MODULE_COMMANDS)}}} [options]",
            file=sys.stderr,
        )
        return 2
    return colab_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())

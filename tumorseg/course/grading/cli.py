"""Command lines of the autograder: ``tumorseg grade`` and the sandbox runner.

- ``grade_main``: ``tumorseg grade`` (library side: :mod:`.grader`);
- ``sandbox_main``: the runner that the grader starts around each grading run (library side:
  :mod:`.sandbox`, whose :func:`~.sandbox.runner_command` builds its command line)::

      python -m tumorseg.course.grading.cli sandbox --timeout S --memory-mb M --cwd DIR -- CMD ...

Each command imports its library side when it runs, so the runner does not load the grader.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

#: the commands of ``python -m tumorseg.course.grading.cli`` (``grade`` is ``tumorseg grade``)
MODULE_COMMANDS = ("sandbox",)


def _expand(inputs: list[str]) -> list[Path]:
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            paths.extend(sorted(q for q in p.glob("*.ipynb") if q.is_file()))
        else:
            paths.append(p)
    return paths


def grade_parser() -> argparse.ArgumentParser:
    """The options of ``tumorseg grade``."""
    from tumorseg.batch.cli import add_shard_option

    from .grader import INSTRUCTOR, LIBRARY_ANSWERS, Limits

    parser = argparse.ArgumentParser(
        prog="tumorseg grade",
        description="Autograde student notebooks (the UNQ_Cn exercises) with nbval and hidden "
        "checks, each in a bubblewrap sandbox.",
    )
    parser.add_argument("submissions", nargs="+", help="notebooks, or folders of .ipynb files")
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help="folder for <name>.json and results.csv (rows are merged by submission)",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="start --out over: drop the old rows of results.csv and their reports",
    )
    parser.add_argument("--jobs", type=int, default=2, help="notebooks graded at once (default 2)")
    parser.add_argument(
        "--source",
        "--instructor",
        dest="instructor",
        type=Path,
        default=INSTRUCTOR,
        help="instructor notebook with the expected outputs and checks "
        "(default: the one shipped in the package)",
    )
    parser.add_argument(
        "--cell-timeout",
        type=float,
        default=Limits.cell_timeout,
        help="seconds for a student cell and for a graded check (default 30)",
    )
    parser.add_argument(
        "--total-timeout",
        type=float,
        default=Limits.total_timeout,
        help="seconds for one whole grading run (default 600)",
    )
    parser.add_argument(
        "--memory-mb",
        type=int,
        default=Limits.memory_mb,
        help="address-space limit of each process in MiB (default 6144)",
    )
    parser.add_argument(
        "--max-procs",
        type=int,
        default=Limits.max_procs,
        help=f"processes and threads of one sandboxed run (default {Limits.max_procs})",
    )
    parser.add_argument(
        "--no-sandbox",
        action="store_true",
        help="run student code without bubblewrap, as your own user with your "
        "files and network (trusted notebooks only; named in every result)",
    )
    parser.add_argument(
        "--library-answers",
        choices=LIBRARY_ANSWERS,
        default="keep",
        help="a graded cell that imports or calls the package's own implementation of its "
        "exercise is always flagged in the report; 'zero' also scores it 0 (default: keep)",
    )
    parser.add_argument(
        "--export",
        nargs=2,
        metavar=("FORMAT", "FILE"),
        help="also write the grades of every row of --out for an LMS: FORMAT canvas (gradebook "
        "CSV), moodle (grade import CSV) or csv (points per exercise); needs --roster",
    )
    parser.add_argument(
        "--roster",
        type=Path,
        help="CSV with a header row and the columns file (notebook name without .ipynb), name, "
        "id, sis_id, section (or Canvas's Student, ID, SIS User ID, Section)",
    )
    parser.add_argument(
        "--points",
        nargs="+",
        metavar="EX=N",
        help="points of exercises in the export, e.g. C1=2 C4=0.5 (default: the registry's, 1)",
    )
    parser.add_argument(
        "--assignment",
        default=None,
        help="the assignment's column name in the export (default: Brain Tumor Segmentation)",
    )
    add_shard_option(parser, "submissions")
    parser.add_argument("--keep", type=Path, help="copy every grading folder here (debugging)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def grade_main(argv: list[str] | None = None) -> int:
    """``tumorseg grade``; exit status 1 when any grader-error occurred, 2 when the sandbox is
    unavailable (or on a user error), else 0."""
    parser = grade_parser()
    args = parser.parse_args(argv)
    from tumorseg.course.exercises import REGISTRY

    from . import grader, isolation, pages, results

    paths = _expand(args.submissions)
    missing = [p for p in paths if not p.exists()]
    if not paths or missing:
        parser.error(f"no such submission: {missing[0] if missing else args.submissions[0]}")
    if not args.instructor.is_file():
        parser.error(f"instructor notebook not found: {args.instructor}")
    limits = grader.Limits(
        cell_timeout=args.cell_timeout,
        total_timeout=args.total_timeout,
        memory_mb=args.memory_mb,
        max_procs=args.max_procs,
    )
    export = _export_options(parser, args)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    try:
        graded = grader.grade_batch(
            paths,
            args.out,
            args.jobs,
            limits,
            args.instructor,
            args.keep,
            progress=not args.quiet,
            sandbox=not args.no_sandbox,
            fresh=args.fresh,
            library_answers=args.library_answers,
            shard=args.shard,
        )
    except (isolation.SandboxUnavailable, results.ResultsFileError) as exc:
        print(f"tumorseg grade: {exc}", file=sys.stderr)
        return 2
    if args.no_sandbox:
        print(
            "graded WITHOUT a sandbox (--no-sandbox); every result file says so.", file=sys.stderr
        )
    for g in graded:
        line = " ".join(f"{ex}:{g.results[ex].status.value}" for ex in REGISTRY)
        total = "?" if g.total is None else g.total
        flags = f"  flagged: {g.flags}" if g.flags else ""
        print(
            f"{g.name}: {total}/{len(REGISTRY)} in {g.seconds:.0f} s ({g.runs} run(s))  {line}{flags}"
        )
    errors = sum(g.grader_error for g in graded)
    if errors:
        print(
            f"{errors} submission(s) had grader errors: regrade them (see messages above).",
            file=sys.stderr,
        )
    print(f"results: {args.out / results.CSV_NAME}")
    if export is not None:
        _write_export(args, *export)
    print(f"summary: {args.out / pages.SUMMARY_HTML}")
    return 1 if errors else 0


def _export_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple | None:
    """The checked ``--export``/``--roster``/``--points`` (before grading starts): None without
    --export, else (format, roster, points)."""
    from tumorseg.errors import DataError

    from . import lms

    if args.export is None:
        if args.roster or args.points or args.assignment:
            parser.error("--roster, --points and --assignment go with --export FORMAT FILE")
        return None
    fmt = args.export[0]
    if fmt not in {f.value for f in lms.Format}:
        parser.error(f"--export {fmt}: choose one of {', '.join(f.value for f in lms.Format)}")
    if args.roster is None:
        parser.error("--export needs --roster ROSTER.csv (columns file,name,id,sis_id,section)")
    try:
        return lms.Format(fmt), lms.read_roster(args.roster), lms.parse_points(args.points)
    except DataError as exc:
        parser.error(str(exc))


def _write_export(args: argparse.Namespace, fmt: object, roster: dict, points: dict) -> None:
    """Write the LMS file, print what was not matched, and list it in the summary."""
    from tumorseg.atomic import write_text

    from . import lms, pages

    text, export = lms.render(
        fmt, args.out, roster, points, args.assignment or lms.DEFAULT_ASSIGNMENT
    )
    write_text(Path(args.export[1]), text)
    graded = sum(v is not None for v in export.grades.values())
    print(f"{fmt.value} export: {args.export[1]} ({graded} of {len(roster)} students graded)")
    for heading, names in export.unmatched().items():
        if names:
            print(f"{heading} ({len(names)}): {', '.join(names)}")
    pages.write_summary(args.out, export.unmatched())


def sandbox_main(argv: list[str]) -> int:
    """The sandbox runner: ``[options] -- CMD ...``; exit status: CMD's (see
    :func:`.sandbox.run_as_runner`), 2 on a usage error."""
    argv = list(argv)
    if "--" not in argv:
        print("usage: sandbox [options] -- CMD ...", file=sys.stderr)
        return 2
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="python -m tumorseg.course.grading.cli sandbox")
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--fsize-mb", type=int, default=256)
    parser.add_argument("--cwd", required=True)
    parser.add_argument("--log")
    args = parser.parse_args(argv[:split])
    from .sandbox import run_as_runner

    return run_as_runner(
        argv[split + 1 :], args.cwd, args.timeout, args.memory_mb, args.fsize_mb, args.log
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m tumorseg.course.grading.cli sandbox ...``: the commands of
    :data:`MODULE_COMMANDS`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in MODULE_COMMANDS:
        print(
            "usage: python -m tumorseg.course.grading.cli "
            f"{{{','.join(MODULE_COMMANDS)}}} [options] -- CMD ...",
            file=sys.stderr,
        )
        return 2
    return sandbox_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())

"""Autograder speed: the sandbox's overhead, one correct submission, then 6 submissions with
--jobs 1 and --jobs 2.

Prints wall times, the number of kernel runs, and the peak memory of the grading processes
(sum of RSS over every descendant, and the largest address space of one process, which is
what the RLIMIT_AS limit of ``--memory-mb`` applies to).  Targets: one correct submission
<= 90 s on the 2-core machine; --jobs 2 faster than --jobs 1; the bubblewrap sandbox costs
<= 10 % of grading one correct submission, measured side by side with ``--no-sandbox``
(alternating runs, medians; ``BENCH_GRADER_REPEATS`` sets the number of pairs, default 3).

Usage: python benchmarks/bench_grader.py [--quick]
``--quick``: a smoke run that grades one submission whose code cells are empty (no kernel
runs): the instructor notebook, the sandbox set-up and the reports, not the grading speed.
"""

from __future__ import annotations

import argparse
import copy
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tumorseg.course.grading import grader, isolation  # noqa: E402
from tumorseg.resources import instructor_notebook  # noqa: E402

INSTRUCTOR = instructor_notebook()


class Sampler(threading.Thread):
    """Samples this process's descendants every 0.25 s: peak total RSS and peak VMS of one."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.peak_rss = 0
        self.peak_vms = 0

    def run(self) -> None:
        me = psutil.Process()
        while not self.stop.is_set():
            total = 0
            for proc in me.children(recursive=True):
                try:
                    info = proc.memory_info()
                except psutil.Error:
                    continue
                total += info.rss
                self.peak_vms = max(self.peak_vms, info.vms)
            self.peak_rss = max(self.peak_rss, total)
            time.sleep(0.25)


def _submission(path: Path, blank: bool = False) -> None:
    """A correct student file: the instructor notebook without grader cells and outputs
    (``blank``: and with every code cell emptied, so nothing is left to run)."""
    nb = copy.deepcopy(nbformat.read(str(INSTRUCTOR), as_version=4))
    nb.cells = [c for c in nb.cells if "grader" not in c.metadata.get("tags", [])]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            if blank:
                cell.source = ""
    nbformat.write(nb, str(path))


def _timed(
    paths: list[Path], out: Path, jobs: int, sandbox: bool = True
) -> tuple[float, int, Sampler, int]:
    sampler = Sampler()
    sampler.start()
    start = time.perf_counter()
    graded = grader.grade_batch(paths, out, jobs=jobs, progress=False, sandbox=sandbox)
    seconds = time.perf_counter() - start
    sampler.stop.set()
    sampler.join()
    scores = sum(g.total or 0 for g in graded)
    return seconds, sum(g.runs for g in graded), sampler, scores


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _sandbox_overhead(path: Path, tmp_path: Path, pairs: int) -> None:
    """Grade one correct submission with and without the sandbox, alternating; print medians
    of the wall time and of the CPU time of every process of the grading (less sensitive to
    other jobs on the machine)."""
    try:
        isolation.check_available()
    except isolation.SandboxUnavailable as exc:
        print(f"sandbox overhead: skipped ({exc})")
        return
    wall: dict[bool, list[float]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}
    for i in range(pairs):
        for sandbox in (True, False) if i % 2 == 0 else (False, True):
            before = _children_cpu()
            seconds, _, _, scores = _timed([path], tmp_path / f"overhead-{i}-{sandbox}", 1, sandbox)
            assert scores == 6, f"the correct submission got {scores}/6"
            wall[sandbox].append(seconds)
            cpu[sandbox].append(_children_cpu() - before)
    for what, times in (("wall", wall), ("CPU", cpu)):
        with_box, without = statistics.median(times[True]), statistics.median(times[False])
        print(
            f"sandbox overhead, one correct submission, {what} time ({pairs} alternating "
            f"pairs, medians): bubblewrap {with_box:.1f} s, --no-sandbox {without:.1f} s, "
            f"overhead {100 * (with_box - without) / without:+.1f} % (target <= 10 %)"
        )
        print(
            f"  all runs: bubblewrap {[round(t, 1) for t in times[True]]}, "
            f"--no-sandbox {[round(t, 1) for t in times[False]]}"
        )


def _quick(tmp_path: Path) -> int:
    """Grade one blank submission (in the sandbox when it is available): no kernel runs."""
    path = tmp_path / "blank.ipynb"
    _submission(path, blank=True)
    try:
        isolation.check_available()
        sandbox = True
    except isolation.SandboxUnavailable as exc:
        print(f"sandbox: unavailable ({exc}); grading with --no-sandbox")
        sandbox = False
    seconds, runs, _, scores = _timed([path], tmp_path / "quick", 1, sandbox)
    print(f"quick: a blank submission graded in {seconds:.1f} s ({runs} kernel runs, {scores}/6)")
    return 0 if runs == 0 and scores == 0 else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="grade one blank submission only")
    args = p.parse_args(argv)
    if not INSTRUCTOR.is_file():
        print(f"instructor notebook not found: {INSTRUCTOR}")
        return 1
    print(f"CPUs: {os.cpu_count()} (timings are noisy when other jobs share them)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        if args.quick:
            return _quick(tmp_path)
        six = []
        for i in range(6):
            six.append(tmp_path / f"student_{i}.ipynb")
            _submission(six[-1])
        _sandbox_overhead(six[0], tmp_path, int(os.environ.get("BENCH_GRADER_REPEATS", "3")))
        seconds, runs, sampler, scores = _timed(six[:1], tmp_path / "one", jobs=1)
        print(
            f"one correct submission: {seconds:.1f} s ({runs} kernel run, {scores}/6 points; "
            f"target <= 90 s)"
        )
        print(
            f"  peak memory: {sampler.peak_rss / 2**30:.2f} GiB RSS over all grading processes, "
            f"largest address space {sampler.peak_vms / 2**30:.2f} GiB "
            f"(limit --memory-mb {grader.Limits.memory_mb})"
        )
        results = {}
        for jobs in (1, 2):
            seconds, runs, sampler, scores = _timed(six, tmp_path / f"jobs{jobs}", jobs=jobs)
            results[jobs] = seconds
            print(
                f"6 submissions, --jobs {jobs}: {seconds:.1f} s ({runs} kernel runs, "
                f"{scores}/36 points, peak RSS {sampler.peak_rss / 2**30:.2f} GiB)"
            )
        print(f"speed-up of --jobs 2: {results[1] / results[2]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

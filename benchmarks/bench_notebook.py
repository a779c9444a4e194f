"""Run the course notebook headless and print its run time, per-section times and peak memory.

Targets: the whole notebook in at most 60 s on a 2-core CPU, with the kernel's process tree
under 2.5 GB resident memory, on both TensorFlow CPU code paths (oneDNN on, and off with
``TF_ENABLE_ONEDNN_OPTS=0``: the Eigen path of CPUs without oneDNN, such as Apple Silicon).
The notebook runs ``--runs`` times per path (default 3), each in a fresh kernel, the paths
alternating so that a burst of other load does not fall on one path only.  Printed per path:
each section's median seconds and largest peak, and the total seconds and the peak as
min / median / max over the runs.  Timings on a shared machine are noisy.

Usage: python benchmarks/bench_notebook.py [--runs N] [--quick]
``--quick``: a smoke run of the set-up cells only (``run_notebook.setup_only``), once per path.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import nbformat  # noqa: E402
import run_notebook  # noqa: E402

from tumorseg.hardware import CODE_PATHS, onednn_env  # noqa: E402

TARGET_SECONDS = 60
TARGET_BYTES = 2.5e9

Run = tuple[dict[str, tuple[float, int]], float, int, "str | None"]


def run(value: str, quick: bool) -> Run:
    """The notebook (only its set-up cells when ``quick``) executed in a fresh kernel with
    ``TF_ENABLE_ONEDNN_OPTS=value``: ({section: (seconds, peak RSS bytes)}, total seconds,
    peak RSS bytes, error or None)."""
    nb = nbformat.read(run_notebook.DEFAULT_NB, as_version=4)
    if quick:
        nb = run_notebook.setup_only(nb)
    with onednn_env(value):
        return run_notebook.execute(nb, run_notebook.DEFAULT_NB.parent, timeout=900)


def verdict(value: float, target: float) -> str:
    """ "OK" when ``value`` is within ``target``, else "OVER"."""
    return "OK" if value <= target else "OVER"


def spread(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    """``min / median / max`` of ``values`` divided by ``scale``."""
    picks = (min(values), statistics.median(values), max(values))
    return " / ".join(f"{v / scale:.{digits}f}" for v in picks)


def report(runs: dict[str, list[Run]]) -> None:
    """Print the per-section table and the totals of ``runs`` (per path, a list of runs)."""
    print(f"{'notebook section (median s, max GB)':<38}" + "".join(f"{p:>22}" for p in runs))
    for name in runs[next(iter(runs))][0][0]:
        cells = []
        for path_runs in runs.values():
            seconds = statistics.median(r[0].get(name, (0.0, 0))[0] for r in path_runs)
            peak = max(r[0].get(name, (0.0, 0))[1] for r in path_runs)
            cells.append(f"{seconds:8.1f} {peak / 1e9:6.2f}")
        print(f"{name[:38]:<38}" + "".join(f"{c:>22}" for c in cells))
    for path, path_runs in runs.items():
        totals = [r[1] for r in path_runs]
        peaks = [float(r[2]) for r in path_runs]
        print(
            f"{path}: {len(path_runs)} runs; total s (min / median / max) {spread(totals)} "
            f"{verdict(max(totals), TARGET_SECONDS)} (target <= {TARGET_SECONDS} s); "
            f"peak GB {spread(peaks, 1e9, 2)} {verdict(max(peaks), TARGET_BYTES)} "
            f"(target <= {TARGET_BYTES / 1e9} GB)"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3, help="runs per code path (default 3)")
    p.add_argument("--quick", action="store_true", help="run the set-up cells only, once per path")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be >= 1")
    runs: dict[str, list[Run]] = {path: [] for path in CODE_PATHS}
    for _ in range(1 if args.quick else args.runs):
        for path, value in CODE_PATHS.items():
            runs[path].append(run(value, args.quick))
    report(runs)
    errors = [f"{path}: {r[3]}" for path, rs in runs.items() for r in rs if r[3]]
    for error in errors:
        print(error, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

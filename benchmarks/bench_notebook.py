"""Run the course notebook headless and print its run time, per-section times and peak memory.

Targets (issue C): the whole notebook in at most 5 minutes on a 2-core CPU, with the kernel's
process tree under 4 GB resident memory.  The notebook runs twice, in a fresh kernel each time:
once per TensorFlow CPU code path (oneDNN on, and off with ``TF_ENABLE_ONEDNN_OPTS=0``: the
Eigen path of CPUs without oneDNN, such as Apple Silicon); both are printed side by side.
Timings on a shared machine are noisy.

Usage: python benchmarks/bench_notebook.py [--quick]
``--quick``: a smoke run of the set-up cells only (``run_notebook.setup_only``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import nbformat  # noqa: E402
import run_notebook  # noqa: E402

from tumorseg.hardware import CODE_PATHS, onednn_env  # noqa: E402

TARGET_SECONDS = 300
TARGET_BYTES = 4 * 10**9


def run(value: str, quick: bool) -> tuple[dict[str, tuple[float, int]], float, int, str | None]:
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="run the set-up cells only")
    args = p.parse_args(argv)
    runs = {path: run(value, args.quick) for path, value in CODE_PATHS.items()}
    print(f"{'notebook section':<34}" + "".join(f"{path + ' s, GB':>22}" for path in runs))
    for name in next(iter(runs.values()))[0]:
        cells = [
            f"{seconds:8.1f} {rss / 1e9:6.2f}"
            for seconds, rss in (r[0].get(name, (0.0, 0)) for r in runs.values())
        ]
        print(f"{name[:34]:<34}" + "".join(f"{c:>22}" for c in cells))
    totals = [f"{r[1]:.1f} s {verdict(r[1], TARGET_SECONDS)}" for r in runs.values()]
    peaks = [f"{r[2] / 1e9:.2f} GB {verdict(r[2], TARGET_BYTES)}" for r in runs.values()]
    print(f"{f'total (target <= {TARGET_SECONDS} s)':<34}" + "".join(f"{c:>22}" for c in totals))
    print(
        f"{f'peak RSS (target <= {TARGET_BYTES / 1e9:.0f} GB)':<34}"
        + "".join(f"{c:>22}" for c in peaks)
    )
    errors = [f"{path}: {r[3]}" for path, r in runs.items() if r[3]]
    for error in errors:
        print(error, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

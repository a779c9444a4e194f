"""Run the course notebook headless and print its run time, per-section times and peak memory.

Targets (issue C): the whole notebook in at most 5 minutes on a 2-core CPU, with the kernel's
process tree under 4 GB resident memory.  Timings on a shared machine are noisy.

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

TARGET_SECONDS = 300
TARGET_BYTES = 4 * 10**9


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="run the set-up cells only")
    args = p.parse_args(argv)
    nb = nbformat.read(run_notebook.DEFAULT_NB, as_version=4)
    if args.quick:
        nb = run_notebook.setup_only(nb)
    per_section, total, peak, error = run_notebook.execute(
        nb, run_notebook.DEFAULT_NB.parent, timeout=900
    )
    print(f"{'notebook section':<40} {'seconds':>8} {'peak RSS GB':>12}")
    for name, (seconds, rss) in per_section.items():
        print(f"{name:<40} {seconds:8.1f} {rss / 1e9:12.2f}")
    print(
        f"total: {total:.1f} s (target <= {TARGET_SECONDS} s)"
        f" {'OK' if total <= TARGET_SECONDS else 'OVER'}"
    )
    print(
        f"peak RSS of the kernel tree: {peak / 1e9:.2f} GB (target <= {TARGET_BYTES / 1e9:.0f} GB)"
        f" {'OK' if peak <= TARGET_BYTES else 'OVER'}"
    )
    if error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

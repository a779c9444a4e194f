"""Benchmark ``tumorseg synth``: wall time, cases/s, peak memory and file sizes.

Builds the dataset in a fresh temporary folder (default 10 cases, seed 0) in a child
process, so the peak RSS printed is that of the generator alone
(``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``).  Budget: 10 cases in <= 90 s and
peak RSS <= 2.5 GB on the 2-core development machine; each image file <= 12 MB.

Usage: python benchmarks/bench_synth.py [--cases N] [--jobs J] [--quick]
``--quick``: a smoke run of one case.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="one case (figures meaningless)")
    a = p.parse_args(argv)
    if a.quick:
        a.cases = 1
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "BraTS-Data"
        cmd = [
            sys.executable,
            "-c",
            "import sys; from tumorseg.data.cli import synth_main; sys.exit(synth_main(sys.argv[1:]))",
            "--out",
            str(out),
            "--cases",
            str(a.cases),
            "--seed",
            str(a.seed),
            "--jobs",
            str(a.jobs),
        ]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        rss_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2  # KiB -> GiB
        images = sorted((out / "imagesTr").glob("*.nii.gz"))
        labels = sorted((out / "labelsTr").glob("*.nii.gz"))
        img_mb = [f.stat().st_size / 1e6 for f in images]
        lab_kb = [f.stat().st_size / 1e3 for f in labels]
    print(f"synth: {a.cases} cases, seed {a.seed}, jobs {a.jobs}")
    print(
        f"  wall time      {wall:7.1f} s   (budget 90 s for 10 cases; shared CPU makes this noisy)"
    )
    print(f"  throughput     {a.cases / wall:7.3f} cases/s  ({wall / a.cases:.1f} s/case)")
    print(f"  peak RSS       {rss_gb:7.2f} GiB (largest child process; budget 2.5 GB)")
    print(
        f"  image files    {min(img_mb):.1f}-{max(img_mb):.1f} MB each, {sum(img_mb):.0f} MB total "
        "(limit 12 MB each)"
    )
    print(f"  label files    {min(lab_kb):.0f}-{max(lab_kb):.0f} kB each")
    ok = wall <= 90 * a.cases / 10 and rss_gb <= 2.5 and max(img_mb) <= 12 * 1.048576
    print(f"  within budget  {'yes' if ok else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

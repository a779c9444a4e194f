"""Command lines of the data stage: ``tumorseg synth`` and ``tumorseg download``.

The library sides are :mod:`tumorseg.data.synth` and :mod:`tumorseg.data.download`; each
command imports its own only, so ``tumorseg download`` does not load the synthesizer's
dependencies.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tumorseg.data.errors import DataError
from tumorseg.errors import fail


def synth_main(argv: list[str] | None = None) -> int:
    """``tumorseg synth --out DIR --cases N --seed S [--jobs J] [--randomize [--hard KIND ...]]``."""
    from tumorseg.data import synth

    p = argparse.ArgumentParser(prog="tumorseg synth", description=synth.__doc__.split("\n\n")[0])
    p.add_argument("--out", default="data/BraTS-Data", help="output folder (MSD layout)")
    p.add_argument("--cases", type=int, default=10, help="number of cases (default 10)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument(
        "--jobs", type=int, default=1, help="worker processes (default 1; each needs about 0.7 GB)"
    )
    p.add_argument(
        "--randomize",
        action="store_true",
        help="domain-randomized contrasts, tumour shapes and scanner effects "
        "(training data); default: the course's look",
    )
    kinds = [k.value for k in synth.HardCase]
    p.add_argument(
        "--hard",
        nargs="+",
        metavar="KIND",
        choices=kinds,
        default=[],
        help="hard cases, with --randomize: the cases cycle through the KINDs given (case i is "
        "of kind i mod their number). "
        "thin-rim: a necrotic core wrapped in an enhancing rim 1-3 voxels thick, edema around; "
        "low-grade: a low-grade-glioma-like tumour, a large non-enhancing core in wide edema, "
        "little or no (and faint) enhancement; "
        "small: a small lesion of 3,000-20,000 voxels, half of them beside a ventricle. "
        f"KIND is one of: {', '.join(kinds)}",
    )
    a = p.parse_args(argv)
    if a.cases < 1:
        p.error("--cases must be at least 1")
    if a.hard and not a.randomize:
        p.error("--hard needs --randomize (hard cases are randomized training data)")
    synth.build_dataset(
        a.out,
        cases=a.cases,
        seed=a.seed,
        jobs=a.jobs,
        randomize=a.randomize,
        hard=[synth.HardCase(k) for k in a.hard],
    )
    return 0


def download_main(argv: list[str] | None = None) -> int:
    """``tumorseg download``: fetch, verify and extract MSD Task01_BrainTumour."""
    import http.client

    from tumorseg.data.download import MSD_MD5, MSD_URL, download

    ap = argparse.ArgumentParser(
        prog="tumorseg download",
        description="Download MSD Task01_BrainTumour (about 7 GB), verify its md5 and extract it. "
        "Interrupted downloads resume when rerun.",
    )
    ap.add_argument("--dest", required=True, type=Path, help="folder to download into")
    ap.add_argument("--url", default=MSD_URL, help="archive URL (default: the MSD mirror)")
    ap.add_argument("--md5", default=MSD_MD5, help="expected md5 ('' to skip the check)")
    ap.add_argument("--no-extract", action="store_true", help="only download and verify")
    args = ap.parse_args(argv)
    try:
        path = download(args.dest, args.url, args.md5 or None, extract=not args.no_extract)
    except DataError as exc:
        fail(ap.prog, exc)
    except (OSError, http.client.HTTPException) as exc:
        print(
            f"tumorseg download: network error: {exc}. Rerun the same command to resume.",
            file=sys.stderr,
        )
        return 1
    print(f"downloaded {path}; use open_dataset({str(args.dest)!r})")
    return 0

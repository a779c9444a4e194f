"""Merge patch stores: the first keeps its train/valid split, the others all join train.

    .venv/bin/python scripts/merge_patch_stores.py --out combo rand/processed rand12/processed

Patches are linked, not copied; names of the later stores get the prefix ``R<seed>_``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tumorseg.data import DataError  # noqa: E402
from tumorseg.errors import fail  # noqa: E402
from tumorseg.patches.store import merge_stores  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="merge_patch_stores", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="the merged store (a new folder)")
    p.add_argument("held", type=Path, help="store whose valid split stays held out")
    p.add_argument("extra", type=Path, nargs="+", help="stores whose patches all join train")
    args = p.parse_args(argv)
    try:
        cfg = merge_stores(args.out, args.held, args.extra)
    except DataError as exc:
        fail(p.prog, exc)
    print(f"{len(cfg['train'])} train, {len(cfg['valid'])} valid patches in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Merge patch stores: the first keeps its train/valid split, the others all join train.

    .venv/bin/python scripts/merge_patch_stores.py --out combo rand/processed rand12/processed

Patches are linked, not copied; names of the later stores get the prefix ``R<seed>_``.
``--quick`` is a smoke run: the sample store (``make patches``) merged with itself into a
temporary folder.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tumorseg.data import DataError  # noqa: E402
from tumorseg.errors import fail  # noqa: E402
from tumorseg.patches.store import merge_stores  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="merge_patch_stores", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, help="the merged store (a new folder)")
    p.add_argument("held", type=Path, nargs="?", help="store whose valid split stays held out")
    p.add_argument("extra", type=Path, nargs="*", help="stores whose patches all join train")
    p.add_argument("--quick", action="store_true", help="merge the sample store with itself")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="merge_patch_stores-") as tmp:
        if args.quick:
            store = ROOT / "data" / "BraTS-Data" / "processed"
            args.out = args.out or Path(tmp) / "merged"
            args.held, args.extra = args.held or store, args.extra or [store]
        if args.out is None or args.held is None or not args.extra:
            p.error("--out, HELD and at least one EXTRA store are required")
        try:
            cfg = merge_stores(args.out, args.held, args.extra)
        except DataError as exc:
            fail(p.prog, exc)
        print(f"{len(cfg['train'])} train, {len(cfg['valid'])} valid patches in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

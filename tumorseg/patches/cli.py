"""``tumorseg patches``: the command line of :func:`tumorseg.patches.store.build_patch_store`."""

from __future__ import annotations

import argparse

from tumorseg.contract import PATCH_SIZE
from tumorseg.data.errors import DataError
from tumorseg.errors import fail


def main(argv: list[str] | None = None) -> int:
    """``tumorseg patches --data DIR --out DIR/processed [--per-case K] [--seed S]``."""
    from tumorseg.patches import store

    p = argparse.ArgumentParser(prog="tumorseg patches", description=store.__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="dataset folder (MSD or BraTS layout)")
    p.add_argument("--out", required=True, help="output folder, e.g. DIR/processed")
    p.add_argument("--per-case", type=int, default=4, help="patches per case (default 4)")
    p.add_argument("--seed", type=int, default=0, help="split and sampling seed (default 0)")
    p.add_argument(
        "--background",
        type=int,
        default=0,
        help="also this many patches per case drawn anywhere in the brain (normal anatomy)",
    )
    p.add_argument(
        "--focus",
        type=int,
        default=0,
        help="also this many patches per case centred on necrosis or enhancing tumour "
        "(class-aware oversampling of the rare classes)",
    )
    p.add_argument(
        "--min-tumor",
        type=float,
        default=0.05,
        help="smallest tumor fraction of a tumor patch (default 0.05)",
    )
    p.add_argument(
        "--valid-fraction",
        type=float,
        default=0.2,
        help="fraction of the cases held out as the store's valid split (default 0.2; 0: none)",
    )
    p.add_argument(
        "--patch-size",
        type=int,
        nargs=3,
        metavar=("X", "Y", "Z"),
        default=list(PATCH_SIZE),
        help="patch size in voxels (default: the course's %(default)s; e.g. 160 160 32 for "
        "more context through the slices; X and Y multiples of 8, Z of 8)",
    )
    args = p.parse_args(argv)
    if any(v < 8 or v % 8 for v in args.patch_size):
        fail(p.prog, f"--patch-size {args.patch_size}: each size must be a multiple of 8")
    if (
        not 0.0 <= args.valid_fraction < 1.0
        or min(args.background, args.focus) < 0
        or args.per_case < 1
    ):
        fail(
            p.prog,
            "--valid-fraction must be in [0, 1), --background and --focus >= 0, --per-case >= 1",
        )
    try:
        store.build_patch_store(
            args.data,
            args.out,
            per_case=args.per_case,
            seed=args.seed,
            valid_fraction=args.valid_fraction,
            min_tumor=args.min_tumor,
            background=args.background,
            focus=args.focus,
            patch_size=tuple(args.patch_size),
        )
    except (DataError, ValueError) as exc:
        fail(p.prog, exc)
    return 0

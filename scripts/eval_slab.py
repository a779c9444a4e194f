"""``tumorseg evaluate`` with another axial slab depth and tile budget (a tiling ablation).

    python scripts/eval_slab.py DEPTH MAX_VOXELS -- evaluate --data ... --weights ... --out ...

Whole-scan prediction cuts a brain into axial slabs ``SLAB_DEPTH`` slices deep (the training
patches' 16) under a ``MAX_TILE_VOXELS`` budget; this runs the CLI with both replaced.
"""

from __future__ import annotations

import sys

import tumorseg.inference.predict as predict
from tumorseg.cli import main


def quick() -> int:
    """Print the tile plan of a BraTS-sized brain crop (140 x 172 x 140) at both depths."""
    for depth, budget in ((predict.SLAB_DEPTH, predict.MAX_TILE_VOXELS), (32, 1_200_000)):
        predict.SLAB_DEPTH = depth
        tile, starts = predict.plan_tiles((140, 172, 140), max_voxels=budget, overlap=0.1)
        print(f"slab depth {depth}, budget {budget:,d}: tile {tile}, {len(starts[2])} slabs")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--quick"]:
        raise SystemExit(quick())
    depth, budget, sep, *rest = sys.argv[1:]
    if sep != "--":
        raise SystemExit(__doc__)
    predict.SLAB_DEPTH = int(depth)
    predict.MAX_TILE_VOXELS = int(budget)
    raise SystemExit(main(rest))

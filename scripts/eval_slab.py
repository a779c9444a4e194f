"""``tumorseg evaluate`` with another axial slab depth and tile budget (a tiling ablation).

    python scripts/eval_slab.py DEPTH MAX_VOXELS -- evaluate --data ... --weights ... --out ...

Whole-scan prediction cuts a brain into axial slabs ``SLAB_DEPTH`` slices deep (the training
patches' 16) under a ``MAX_TILE_VOXELS`` budget; this runs the CLI with both replaced.
"""

from __future__ import annotations

import sys

import tumorseg.inference.predict as predict
from tumorseg.cli import main

if __name__ == "__main__":
    depth, budget, sep, *rest = sys.argv[1:]
    if sep != "--":
        raise SystemExit(__doc__)
    predict.SLAB_DEPTH = int(depth)
    predict.MAX_TILE_VOXELS = int(budget)
    raise SystemExit(main(rest))

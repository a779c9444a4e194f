"""Recalibrate a region model per region by shifting its output bias (post-hoc calibration).

Adding ``b`` to the bias of the final 1x1x1 convolution (the ``logits`` layer) of a sigmoid
model shifts every voxel's logit by ``b``, so the shifted model is on (``p > 0.5``) exactly where
the original's probability is above ``t = 1 / (1 + exp(b))``: one threshold per region, inside
the weights, so every code path (predict, evaluate, score's clean-up, the saved probabilities,
the uncertainty map) reads it with the manifest's single threshold 0.5.  Averaged over mirror
passes and ensemble members, the shifted outputs are the calibrated members' mean.

    python scripts/shift_output_bias.py IN.weights.h5 OUT.weights.h5 --equivalent-threshold 0.5 0.35 0.5

writes ``OUT.weights.h5`` and ``OUT.json`` (``IN``'s manifest plus ``"output_bias_shift"``: the
shift per region and the equivalent thresholds it was chosen as).  Choose the thresholds on
``valid/`` (``scripts/threshold_sweep.py``), never on training patients.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tumorseg.atomic import write_text  # noqa: E402
from tumorseg.resources import manifest_path  # noqa: E402

#: The region order of the model's output channels.
REGIONS = ("WT", "TC", "ET")


def logit_shift(threshold: float) -> float:
    """The bias shift ``b`` that moves the 0.5 decision boundary to probability ``threshold``."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"an equivalent threshold must be in (0, 1), got {threshold}")
    return math.log((1.0 - threshold) / threshold)


def output_bias_key(weights: h5py.File, n_outputs: int = 3) -> str:
    """The dataset path of the final convolution's bias: the last conv layer's ``vars/1``."""
    convs = [k for k in weights["layers"] if k.startswith("conv3d")]
    convs.sort(key=lambda k: int(k.split("_")[-1]) if "_" in k else 0)
    key = f"layers/{convs[-1]}/vars/1"
    if weights[key].shape != (n_outputs,):
        raise ValueError(f"{key} has shape {weights[key].shape}, expected ({n_outputs},)")
    return key


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="shift_output_bias", description=__doc__.splitlines()[0])
    p.add_argument("weights", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--equivalent-threshold", type=float, nargs=3, required=True, metavar=REGIONS)
    args = p.parse_args(argv)
    manifest = json.loads(manifest_path(args.weights).read_text())
    if manifest.get("outputs") != "regions":
        p.error(f"{args.weights}: not a region model (outputs {manifest.get('outputs')!r})")
    shifts = [logit_shift(t) for t in args.equivalent_threshold]
    shutil.copyfile(args.weights, args.out)
    with h5py.File(args.out, "r+") as f:
        key = output_bias_key(f)
        before = np.array(f[key])
        f[key][...] = before + np.asarray(shifts, before.dtype)
    manifest.pop("members", None)  # a member's manifest describes that member alone
    previous = manifest.get("output_bias_shift")
    manifest["output_bias_shift"] = {
        "regions": list(REGIONS),
        "shift": [round(s, 6) for s in shifts],
        "equivalent_threshold": list(args.equivalent_threshold),
        "of": args.weights.name,
        "chosen_on": "valid/ (scripts/threshold_sweep.py)",
        **({"previous": previous} if previous else {}),
    }
    write_text(manifest_path(args.out), json.dumps(manifest, indent=1))
    print(f"{args.out}: output bias {before.tolist()} + {[round(s, 4) for s in shifts]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

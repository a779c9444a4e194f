"""Recalibrate a region model per region by shifting its output bias (post-hoc calibration).

Adding ``b`` to the bias of the final 1x1x1 convolution (the ``logits`` layer) of a sigmoid
model shifts every voxel's logit by ``b``, so the shifted model is on (``p > 0.5``) exactly where
the original's probability is above ``t = 1 / (1 + exp(b))``: one threshold per region, inside
the weights, so every code path (predict, evaluate, score's clean-up, the saved probabilities,
the uncertainty map) reads it with the manifest's single threshold 0.5.  Averaged over mirror
passes and ensemble members, the shifted outputs are the calibrated members' mean.

    python scripts/shift_output_bias.py IN.weights.h5 OUT.weights.h5 --equivalent-threshold 0.5 0.35 0.5

writes ``OUT.weights.h5`` and ``OUT.json`` (``IN``'s manifest plus ``"output_bias_shift"``: the
shift per region and the equivalent thresholds it was chosen as).  When ``IN``'s manifest lists
``members`` (an ensemble, e.g. the shipped model), ``OUT`` is a folder: every member is shifted
into it under its own name, and the first keeps the ensemble's manifest.  Choose the thresholds on
``valid/`` (``scripts/threshold_sweep.py``), never on training patients.  A model that is
already shifted (its manifest has ``output_bias_shift``) is refused unless ``--again`` says the
new shift adds to the old one (the manifest then keeps the chain under ``previous``).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tumorseg.atomic import write_text  # noqa: E402
from tumorseg.resources import manifest_path, pretrained_weights  # noqa: E402

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


def shift_file(weights: Path, out: Path, shifts: list[float], manifest: dict) -> list[float]:
    """Copy ``weights`` to ``out`` with ``shifts`` added to the output bias; write ``manifest``
    plus the shift record beside ``out``.  Returns the bias before the shift."""
    if out.resolve() == weights.resolve():
        raise SystemExit(f"{out}: write the shifted model elsewhere, then copy it over")
    shutil.copyfile(weights, out)
    with h5py.File(out, "r+") as f:
        key = output_bias_key(f)
        before = np.array(f[key])
        f[key][...] = before + np.asarray(shifts, before.dtype)
    manifest = dict(manifest)
    previous = manifest.get("output_bias_shift")
    manifest["output_bias_shift"] = {
        "regions": list(REGIONS),
        "shift": [round(s, 6) for s in shifts],
        "equivalent_threshold": [round(1.0 / (1.0 + math.exp(s)), 6) for s in shifts],
        "of": weights.name,
        "chosen_on": "valid/ (scripts/threshold_sweep.py)",
        **({"previous": previous} if previous else {}),
    }
    write_text(manifest_path(out), json.dumps(manifest, indent=1))
    return before.tolist()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="shift_output_bias", description=__doc__.splitlines()[0])
    p.add_argument("weights", type=Path, nargs="?")
    p.add_argument("out", type=Path, nargs="?", help="OUT.weights.h5; for an ensemble, a folder")
    p.add_argument("--equivalent-threshold", type=float, nargs=3, metavar=REGIONS)
    p.add_argument(
        "--again",
        action="store_true",
        help="shift a model that is already shifted: the shifts add up",
    )
    p.add_argument(
        "--quick", action="store_true", help="shift the shipped model into a temp folder"
    )
    args = p.parse_args(argv)
    if args.quick:
        with tempfile.TemporaryDirectory(prefix="shift-") as tmp:
            return main(
                [str(pretrained_weights()), tmp, "--again", "--equivalent-threshold"]
                + ["0.5", "0.4", "0.5"]
            )
    if args.weights is None or args.out is None or args.equivalent_threshold is None:
        p.error("WEIGHTS, OUT and --equivalent-threshold are required")
    manifest = json.loads(manifest_path(args.weights).read_text())
    if manifest.get("outputs") != "regions":
        p.error(f"{args.weights}: not a region model (outputs {manifest.get('outputs')!r})")
    if "output_bias_shift" in manifest and not args.again:
        p.error(
            f"{manifest_path(args.weights)}: this model is already shifted (output_bias_shift "
            f"{manifest['output_bias_shift'].get('equivalent_threshold')}); shift the unshifted "
            "weights, or pass --again to add this shift to the old one"
        )
    shifts = [logit_shift(t) for t in args.equivalent_threshold]
    members = manifest.get("members")
    if not members:
        before = shift_file(args.weights, args.out, shifts, manifest)
        print(f"{args.out}: output bias {before} + {[round(s, 4) for s in shifts]}")
        return 0
    # An ensemble: every member is shifted into the folder OUT under its own name; the first
    # member's manifest is the ensemble's (it keeps ``members``), the others keep their own.
    args.out.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(members):
        source = args.weights.parent / name
        own = manifest if k == 0 else json.loads(manifest_path(source).read_text())
        before = shift_file(source, args.out / Path(name).name, shifts, own)
        print(
            f"{args.out / Path(name).name}: output bias {before} + {[round(s, 4) for s in shifts]}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

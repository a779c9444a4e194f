"""Which mirror passes pay: every (member, mirroring) pass of a model once, then any subset.

For each case, runs each member of the model (the shipped one by default) on each of the 8
mirrorings of the scan (tiles flipped along X, Y, Z as ``postprocess.mirrored`` flips them),
keeps the 8 x members probability maps, and scores named subsets of them: the mean of a
subset's maps, cleaned up and thresholded as ``tumorseg evaluate`` does, scored with the same
BraTS metrics. One run thus answers "what would 3, 4 or 8 passes give" without predicting each
variant again. Each subset's per-case table is written as ``OUT/<subset>.json`` (the layout of
``tumorseg evaluate --out``, readable by ``scripts/ablation_table.py``).

    python scripts/mirror_passes.py --data ../shared/real-brats-scans/valid --out runs/mirror

A subset is a list of ``member:axes`` passes, ``axes`` the mirrored axes (``-`` none, ``x``,
``xy``, ...). ``--quick`` runs two passes of a small made-up model on one made-up case.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tumorseg.inference.outputs import label_probabilities  # noqa: E402
from tumorseg.inference.postprocess import Mirror, Postprocess  # noqa: E402
from tumorseg.inference.predict import _flexible, _run, predict_volume  # noqa: E402
from tumorseg.inference.score import score_labels  # noqa: E402
from tumorseg.inference.settings import InferenceSettings, resolve_settings  # noqa: E402

#: Named subsets: the shipped spread of ``x`` and ``xyz`` over two members, and trimmed ones.
SUBSETS: dict[str, list[str]] = {
    "x": ["0:-", "1:x"],
    "xyz": ["0:-", "1:x", "0:y", "1:xy", "0:z", "1:xz", "0:yz", "1:xyz"],
    "x+y": ["0:-", "1:x", "0:y", "1:xy"],
    "x+z": ["0:-", "1:x", "0:z", "1:xz"],
    "x+yz": ["0:-", "1:x", "0:yz", "1:xyz"],
    "x+0y": ["0:-", "1:x", "0:y"],
    "x+0z": ["0:-", "1:x", "0:z"],
    "x+1y": ["0:-", "1:x", "1:y"],
    "all": [f"{m}:{a}" for m in (0, 1) for a in ("-", "x", "y", "xy", "z", "xz", "yz", "xyz")],
}


def axes_of(code: str) -> tuple[int, ...]:
    """``"-"`` -> (), ``"xz"`` -> (0, 2)."""
    return tuple("xyz".index(c) for c in code if c != "-")


class FlippedPass:
    """One member run on one mirroring of each tile batch ``(B, C, X, Y, Z)``, flipped back."""

    def __init__(self, member: Any, axes: tuple[int, ...], n_channels: int = 4):
        self.net = _flexible(member, n_channels, None)
        self.layers = getattr(member, "layers", [])
        self.spatial = tuple(2 + a for a in axes)

    def predict_on_batch(self, batch: np.ndarray) -> np.ndarray:
        if not self.spatial:
            return _run(self.net, batch)
        out = _run(self.net, np.ascontiguousarray(np.flip(batch, self.spatial)))
        return np.flip(out, self.spatial)


def all_passes(image: np.ndarray, members: list, settings: InferenceSettings) -> dict:
    """``{"m:axes": (K, X, Y, Z) float16}`` for every member and mirroring of ``image``."""
    one = settings.override(tta=Mirror.NONE, postprocess=Postprocess.NONE)
    maps = {}
    for m, member in enumerate(members):
        for code in ("-", "x", "y", "xy", "z", "xz", "yz", "xyz"):
            probs = predict_volume(image, FlippedPass(member, axes_of(code)), settings=one)
            maps[f"{m}:{code}"] = probs.astype(np.float16)
    return maps


def score_subsets(maps: dict, label: np.ndarray, spacing, settings, subsets: dict) -> dict:
    """``{subset: score row}`` of the mean of each subset's maps, cleaned up as ``settings``."""
    rows = {}
    for name, passes in subsets.items():
        probs = np.mean([maps[p].astype(np.float32) for p in passes], axis=0)
        labels = label_probabilities(probs, settings, spacing, spacing)
        rows[name] = score_labels(labels, label, spacing)
    return rows


def run(data: str, out: Path, weights: str | None, subsets: dict) -> None:
    from tqdm.auto import tqdm

    from tumorseg.data import open_dataset
    from tumorseg.model.pretrained import load_pretrained

    model, _ = load_pretrained(weights) if weights else load_pretrained()
    members = list(getattr(model, "members", None) or [model])
    settings = resolve_settings(model)
    tables: dict[str, list] = {name: [] for name in subsets}
    for case in tqdm(list(open_dataset(data)), desc="cases", unit="case"):
        image, label, spacing = case.load_with_spacing()
        maps = all_passes(image, members, settings)
        for name, row in score_subsets(maps, label, spacing, settings, subsets).items():
            tables[name].append({"case": case.id, **row})
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        (out / f"{name}.json").write_text(json.dumps({"cases": rows}, indent=1, default=float))
        means = {r: np.mean([row[f"{r}_dice"] for row in rows]) for r in ("WT", "TC", "ET")}
        print(name, " ".join(f"{r} {v:.4f}" for r, v in means.items()), flush=True)


def quick() -> int:
    """Two passes of a tiny made-up member on a made-up 32^3 case; checks the flip round trip."""
    rng = np.random.default_rng(0)
    image = rng.normal(size=(32, 32, 16, 4)).astype(np.float32) + 5.0

    def member(batch: np.ndarray) -> np.ndarray:  # mirror-symmetric: every pass agrees
        return 1.0 / (1.0 + np.exp(-batch[:, :3]))

    settings = InferenceSettings(outputs="regions")
    a = predict_volume(image, FlippedPass(member, ()), settings=settings)
    b = predict_volume(image, FlippedPass(member, (0, 2)), settings=settings)
    if not np.allclose(a, b, atol=1e-5):
        print("mirror round trip failed", file=sys.stderr)
        return 1
    label = (a[0] > 0.5).astype(np.uint8)
    with tempfile.TemporaryDirectory():
        rows = score_subsets(
            {"0:-": a, "0:xz": b}, label, (1.0, 1.0, 1.0), settings, {"both": ["0:-", "0:xz"]}
        )
    print("quick:", {k: round(v, 3) for k, v in rows["both"].items() if k.endswith("dice")})
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="dataset folder (e.g. ../shared/real-brats-scans/valid)")
    p.add_argument("--out", type=Path, default=Path("runs/mirror"))
    p.add_argument("--weights", help="a model's .weights.h5 (default: the shipped model)")
    p.add_argument("--quick", action="store_true", help="a smoke run on made-up data")
    args = p.parse_args(argv)
    if args.quick:
        return quick()
    if not args.data:
        p.error("--data is required (or --quick)")
    run(args.data, args.out, args.weights, SUBSETS)
    return 0


if __name__ == "__main__":
    sys.exit(main())

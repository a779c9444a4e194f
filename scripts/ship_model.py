"""Ship a trained run as the course's pretrained model, with its provenance in the manifest.

    .venv/bin/python scripts/ship_model.py RUN --reproduce RUN/reproduce.txt \\
        --figures RUN/figures.json --figures RUN/figures-real.json \\
        --selection "chosen on ..." --machine "2-core CPU, TensorFlow, bf16"

RUN is a ``tumorseg train`` output folder (``model.weights.h5`` + ``model.json``). The weights
replace ``tumorseg/model/weights/model_pretrained.weights.h5``; the manifest is the run's own,
plus:

* ``lineage``: the manifest it replaces, summarised, after that manifest's own lineage (so a
  fine-tuned model says what it was fine-tuned from, back to the first run);
* ``reproduce``: the commands, one per line of ``--reproduce``;
* ``evaluation``: the figures of ``benchmarks/bench_realism.py --json`` (patch Dice per folder,
  whole-scan Dice), each file merged in order;
* ``selection`` and ``machine``: as given.

Both files are written atomically; nothing is written when an input is missing.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tumorseg.atomic import atomic_path, write_text  # noqa: E402
from tumorseg.cli import fail  # noqa: E402

DEST = ROOT / "tumorseg" / "model" / "weights"
SUMMARY_KEYS = (
    "steps",
    "batch_size",
    "learning_rate",
    "seed",
    "precision",
    "backend",
    "machine",
    "git_commit",
    "train_seconds",
    "augment",
    "standardize",
)


def summarise(manifest: dict) -> dict:
    """The few fields of a manifest that say how its weights were trained."""
    data = manifest.get("data", {})
    return {k: manifest[k] for k in SUMMARY_KEYS if k in manifest} | {
        "data": {k: data[k] for k in ("source", "seed", "train_patches") if k in data}
    }


def shipped_manifest(run: Path, weights: str, previous: dict, extra: dict) -> dict:
    """The run's manifest with lineage, reproduce, evaluation, selection and machine added;
    for a ``snapshot_<step>.weights.h5``, steps and train_seconds are the snapshot's (log.csv)."""
    manifest = json.loads((run / "model.json").read_text())
    snap = re.fullmatch(r"snapshot_(\d+)\.weights\.h5", weights)
    if snap:
        step = int(snap.group(1))
        with open(run / "log.csv", newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if int(r["step"]) == step]
        if not rows:
            raise ValueError(f"{run / 'log.csv'}: no row for step {step}")
        manifest["run_steps"] = manifest["steps"]
        manifest["steps"] = step
        manifest["train_seconds"] = float(rows[0]["seconds"])
        manifest.pop("validation_patch_dice", None)  # measured at the end of the run
    manifest["init_weights"] = "the previous shipped model (last entry of lineage)"
    manifest["lineage"] = [*previous.get("lineage", []), summarise(previous)]
    return manifest | extra


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ship_model", description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="tumorseg train output folder")
    p.add_argument("--reproduce", type=Path, required=True, help="commands, one per line")
    p.add_argument("--figures", type=Path, action="append", default=[], help="bench_realism json")
    p.add_argument("--selection", required=True, help="how this run and checkpoint were chosen")
    p.add_argument("--machine", required=True, help="where it was trained, in words")
    p.add_argument("--weights", default="model.weights.h5", help="file in RUN (a snapshot)")
    args = p.parse_args(argv)
    weights = args.run / args.weights
    try:
        previous = json.loads((DEST / "model_pretrained.json").read_text())
        commands = [c for c in args.reproduce.read_text().splitlines() if c.strip()]
        evaluation: dict = {"patches": {}, "scans": {}}
        for f in args.figures:
            figures = json.loads(f.read_text())
            for key in ("patches", "scans"):
                evaluation[key].update(figures.get(key, {}))
        if not weights.is_file():
            raise OSError(f"{weights}: no such weights file")
        extra = {
            "reproduce": commands,
            "evaluation": evaluation,
            "selection": args.selection,
            "machine": args.machine,
            "weights_file": args.weights,
        }
        manifest = shipped_manifest(args.run, args.weights, previous, extra)
    except (OSError, ValueError, IndexError, KeyError) as exc:
        fail(p.prog, exc)
    with atomic_path(DEST / "model_pretrained.weights.h5") as tmp:
        shutil.copyfile(weights, tmp)
    write_text(DEST / "model_pretrained.json", json.dumps(manifest, indent=1) + "\n")
    print(f"shipped {weights} ({manifest['steps']} steps) into {DEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

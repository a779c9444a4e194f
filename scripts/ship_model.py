"""Ship a trained model as the course's pretrained model, with its provenance in the manifest.

    .venv/bin/python scripts/ship_model.py RUN/model.weights.h5 --reproduce RUN/reproduce.txt \\
        --figures RUN/figures.json --figures RUN/figures-real.json \\
        --selection "chosen on ..." --machine "2-core CPU, TensorFlow, bf16"

WEIGHTS is a ``.weights.h5`` written by ``tumorseg train`` (the final ``model.weights.h5`` or a
``snapshot_<step>.weights.h5``), with its manifest beside it. The weights replace the shipped
ones (``tumorseg.resources.pretrained_weights()``); the manifest is the weights' own, plus:

* ``lineage``: the manifest it replaces, summarised, after that manifest's own lineage (so a
  fine-tuned model says what it was fine-tuned from, back to the first run);
* ``reproduce``: the commands, one per line of ``--reproduce``;
* ``evaluation``: the figures of ``benchmarks/bench_realism.py --json`` (patch Dice per folder,
  whole-scan Dice), each file merged in order, and the ``evaluation`` of each ``--record``
  (``tumorseg.inference.record.evaluation_record``: per-patient figures on the validation
  patients, their options, and the previous model's on the same patients);
* ``selection`` and ``machine``: as given;
* every top-level key of each ``--record`` JSON file, e.g. the whole-scan ``postprocess``
  rules and ``tta`` chosen on the real validation patients, and ``real_valid``: per-patient
  figures of this model and of the one it replaces.

``--add-member W`` (repeatable) turns the shipped model into an ensemble instead of replacing
it: each W is copied beside the shipped weights as ``model_member<k>.weights.h5`` with its own
manifest (``model_member<k>.json``), and the shipped manifest lists ``members`` (the shipped
weights first), so ``load_pretrained()`` loads them all (``tumorseg.model.ensemble``); the
positional WEIGHTS must then be the shipped weights file itself, which stays as it is.

Both files are written atomically; nothing is written when an input is missing.
``--quick`` is a smoke run that ships a copy of the shipped model into a temporary folder
(``--dest``), leaving the package untouched.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tumorseg.atomic import atomic_path, write_text  # noqa: E402
from tumorseg.errors import fail  # noqa: E402
from tumorseg.model.pretrained import manifest_path  # noqa: E402
from tumorseg.resources import pretrained_weights  # noqa: E402

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


def shipped_manifest(weights: Path, previous: dict, extra: dict) -> dict:
    """The manifest beside ``weights`` with lineage, reproduce, evaluation, selection and
    machine added."""
    manifest = json.loads(manifest_path(weights).read_text())
    manifest["init_weights"] = "the previous shipped model (last entry of lineage)"
    manifest["lineage"] = [*previous.get("lineage", []), summarise(previous)]
    return manifest | extra


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ship_model", description=__doc__.splitlines()[0])
    p.add_argument("weights", type=Path, help="a .weights.h5 of tumorseg train, manifest beside")
    p.add_argument("--reproduce", type=Path, required=True, help="commands, one per line")
    p.add_argument("--figures", type=Path, action="append", default=[], help="bench_realism json")
    p.add_argument("--selection", required=True, help="how this run and checkpoint were chosen")
    p.add_argument("--machine", required=True, help="where it was trained, in words")
    p.add_argument(
        "--record",
        type=Path,
        action="append",
        default=[],
        help="JSON file whose keys join the manifest (e.g. postprocess, tta, real_valid)",
    )
    p.add_argument("--dest", type=Path, default=None, help="default: the shipped weights file")
    p.add_argument(
        "--add-member",
        type=Path,
        action="append",
        default=[],
        help="ship an ensemble: add this .weights.h5 (manifest beside) as a member",
    )
    p.add_argument("--quick", action="store_true", help="smoke run into a temporary folder")
    if argv is None:
        argv = sys.argv[1:]
    if "--quick" in argv:
        with tempfile.TemporaryDirectory(prefix="ship_model-") as tmp:
            return _quick(p, Path(tmp))
    return ship(p, p.parse_args(argv))


def _quick(p: argparse.ArgumentParser, tmp: Path) -> int:
    """Ship the shipped model again, into ``tmp`` (a copy of the weights and manifest)."""
    src = pretrained_weights()
    dest = tmp / src.name
    shutil.copyfile(src, dest)
    shutil.copyfile(manifest_path(src), manifest_path(dest))
    (tmp / "reproduce.txt").write_text("tumorseg train --quick-smoke-test\n")
    (tmp / "record.json").write_text(json.dumps({"smoke_test": True}))
    argv = [str(src), "--reproduce", str(tmp / "reproduce.txt"), "--dest", str(dest)]
    argv += ["--record", str(tmp / "record.json")]
    status = ship(p, p.parse_args([*argv, "--selection", "smoke test", "--machine", "none"]))
    manifest = json.loads(manifest_path(dest).read_text())
    print(f"quick: the copy's lineage has {len(manifest['lineage'])} entries")
    empty = [k for k, v in manifest.get("evaluation", {}).items() if not v]
    if empty:
        print(f"quick: the manifest's evaluation has empty sets of figures: {empty}")
    return status if manifest.get("smoke_test") and not empty else 1


def ship(p: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Write the weights and the extended manifest to ``args.dest`` (default: the shipped ones)."""
    dest = args.dest or pretrained_weights()
    try:
        previous = json.loads(manifest_path(dest).read_text())
        commands = [c for c in args.reproduce.read_text().splitlines() if c.strip()]
        evaluation: dict = {"patches": {}, "scans": {}}
        for f in args.figures:
            figures = json.loads(f.read_text())
            for key in ("patches", "scans"):
                evaluation[key].update(figures.get(key, {}))
        if not args.weights.is_file():
            raise OSError(f"{args.weights}: no such weights file")
        records = [json.loads(f.read_text()) for f in args.record]
        for record in records:  # a record's whole-scan evaluation joins the figures
            evaluation.update(record.pop("evaluation", {}))
        evaluation = {k: v for k, v in evaluation.items() if v}  # no empty sets of figures
        extra = {
            **{k: v for record in records for k, v in record.items()},
            "reproduce": commands,
            "evaluation": evaluation,
            "selection": args.selection,
            "machine": args.machine,
        }
        if args.add_member:
            if args.weights.resolve() != dest.resolve():
                raise ValueError(f"{args.weights}: --add-member keeps the shipped weights {dest}")
            return add_members(dest, previous, args.add_member, extra)
        manifest = shipped_manifest(args.weights, previous, extra)
    except (OSError, ValueError) as exc:
        fail(p.prog, exc)
    with atomic_path(dest) as tmp:
        shutil.copyfile(args.weights, tmp)
    write_text(manifest_path(dest), json.dumps(manifest, indent=1) + "\n")
    print(f"shipped {args.weights} ({manifest['steps']} steps) as {dest}")
    return 0


def add_members(dest: Path, previous: dict, members: list[Path], extra: dict) -> int:
    """Copy ``members`` beside ``dest`` as ``model_member<k>`` and list them in its manifest;
    ``extra``'s evaluation sets join the previous ones (a set of the same name replaces it) and
    its reproduce commands follow the previous ones."""
    names = list(previous.get("members", [dest.name]))
    for weights in members:
        own = json.loads(manifest_path(weights).read_text())
        target = dest.with_name(f"model_member{len(names)}.weights.h5")
        with atomic_path(target) as tmp:
            shutil.copyfile(weights, tmp)
        write_text(manifest_path(target), json.dumps(own, indent=1) + "\n")
        names.append(target.name)
    merged = {
        "evaluation": previous.get("evaluation", {}) | extra.get("evaluation", {}),
        "reproduce": [*previous.get("reproduce", []), *extra.get("reproduce", [])],
    }
    manifest = previous | extra | merged | {"members": names}
    write_text(manifest_path(dest), json.dumps(manifest, indent=1) + "\n")
    print(f"shipped an ensemble of {len(names)} as {dest}: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Give training snapshots the whole-scan settings of a reference manifest, for evaluation.

    .venv/bin/python scripts/candidates.py runs/o3/snapshot_300.weights.h5 ... \\
        [--like tumorseg/model/weights/model_pretrained.json]

``tumorseg train`` writes each snapshot's manifest with the training threshold (0.5) and no
test-time mirroring or clean-up.  For each WEIGHTS this writes ``cand_<stem>.weights.h5`` (a
link) and ``cand_<stem>.json`` beside it: the snapshot's manifest with the ``threshold``,
``tta`` and ``postprocess`` of ``--like`` (default: the shipped model's), so that
``tumorseg evaluate --weights cand_<stem>.weights.h5`` scores the snapshot as the shipped
model is scored.  Prints the candidate paths.  ``--quick`` is a smoke run on a copy of the
shipped model in a temporary folder.

``--ensemble OUT.weights.h5`` writes one candidate instead: an ensemble of all WEIGHTS (the
manifest's ``members``, absolute paths; each keeps its own manifest), with the settings of
``--like``, so that ``tumorseg evaluate --weights OUT.weights.h5`` scores the ensemble.
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

from tumorseg.atomic import write_text  # noqa: E402
from tumorseg.resources import manifest_path, pretrained_weights  # noqa: E402

#: The whole-scan settings copied from the reference manifest.
SETTINGS = ("threshold", "tta", "postprocess")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="candidates", description=__doc__.splitlines()[0])
    p.add_argument("weights", type=Path, nargs="*", help="snapshot .weights.h5 files")
    p.add_argument("--like", type=Path, default=None, help="reference manifest (default: shipped)")
    p.add_argument("--quick", action="store_true", help="a copy of the shipped model as snapshot")
    p.add_argument("--ensemble", type=Path, default=None, help="write one ensemble candidate here")
    args = p.parse_args(argv)
    if args.ensemble is not None:
        if len(args.weights) < 2:
            p.error("--ensemble needs at least two WEIGHTS files")
        return write_ensemble(args.ensemble, args.weights, args.like)
    if args.quick:
        with tempfile.TemporaryDirectory(prefix="candidates-") as tmp:
            snap = Path(tmp) / "snapshot_1.weights.h5"
            shutil.copy(pretrained_weights(), snap)
            manifest = json.loads(manifest_path(pretrained_weights()).read_text())
            manifest_path(snap).write_text(json.dumps(manifest | {"threshold": 0.5, "tta": "none"}))
            return write_candidates([snap], args.like)
    if not args.weights:
        p.error("give at least one WEIGHTS file (or --quick)")
    return write_candidates(args.weights, args.like)


def write_candidates(weights_files: list[Path], like_path: Path | None) -> int:
    """Write ``cand_<stem>`` beside each of ``weights_files`` (see the module docstring)."""
    like = json.loads((like_path or manifest_path(pretrained_weights())).read_text())
    for weights in weights_files:
        manifest = json.loads(manifest_path(weights).read_text())
        stem = weights.name.removesuffix(".weights.h5")
        link = weights.with_name(f"cand_{stem}.weights.h5")
        if not link.exists():
            link.symlink_to(weights.name)
        settings = {k: like[k] for k in SETTINGS if k in like}
        write_text(manifest_path(link), json.dumps(manifest | settings, indent=1))
        print(f"{link}: {settings}")
    return 0


def write_ensemble(out: Path, weights_files: list[Path], like_path: Path | None) -> int:
    """Write the ensemble candidate ``out`` (a link to the first member) and its manifest."""
    like = json.loads((like_path or manifest_path(pretrained_weights())).read_text())
    members = [str(w.resolve()) for w in weights_files]
    first = json.loads(manifest_path(weights_files[0]).read_text())
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.exists():
        out.symlink_to(Path(members[0]))
    settings = {k: like[k] for k in SETTINGS if k in like}
    manifest = first | settings | {"members": members}
    write_text(manifest_path(out), json.dumps(manifest, indent=1))
    print(f"{out}: {len(members)} members, {settings}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

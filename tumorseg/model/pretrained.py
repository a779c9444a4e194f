"""Load the shipped (or any trained) model from a ``.weights.h5`` file and its JSON manifest."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import keras

from tumorseg.contract import THRESHOLD
from tumorseg.model.losses import dice_bce_loss, dice_coefficient
from tumorseg.model.unet import unet_model_3d
from tumorseg.resources import manifest_path, pretrained_weights

#: Manifest fields that name where a model came from, copied into run records.
PROVENANCE_FIELDS = ("git_commit", "code_commit", "steps", "seed", "threshold", "tta")


def model_record(path: str | Path | None = None) -> dict:
    """What identifies a model in a run record (``tumorseg.batch.run_record``).

    path: a ``*.weights.h5`` file, or ``None`` for the shipped model.
    Returns ``{"weights": path, "shipped": bool, "sha256": of the weights file, "manifest":
    path, "id": "<weights name>@<first 12 hex of the sha256>", and the manifest's
    ``PROVENANCE_FIELDS`` it has}``.  The id changes whenever the weights do.
    """
    weights = pretrained_weights() if path is None else Path(path)
    digest = hashlib.sha256()
    with open(weights, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    manifest_file = manifest_path(weights)
    manifest = json.loads(manifest_file.read_text()) if manifest_file.is_file() else {}
    sha = digest.hexdigest()
    return {
        "id": f"{weights.name}@{sha[:12]}",
        "weights": str(weights),
        "shipped": path is None,
        "sha256": sha,
        "manifest": str(manifest_file),
        **{k: manifest[k] for k in PROVENANCE_FIELDS if k in manifest},
    }


def load_pretrained(
    path: str | Path | None = None, input_shape: Sequence[int | None] | None = None
) -> tuple[keras.Model, dict]:
    """Rebuild the model described by the manifest beside ``path`` and load its weights.

    path: a ``*.weights.h5`` file; its manifest ``*.json`` (same stem) holds ``config``, the keyword
        arguments of ``unet_model_3d`` that rebuild the architecture.  ``None``: the model shipped
        inside the package (``tumorseg.resources.pretrained_weights()``).
    input_shape: override ``(C, X, Y, Z)`` (e.g. ``(4, None, None, None)`` for any tile size).
    Returns ``(model, manifest)``; the model is compiled with the Dice+BCE loss and Dice metric and
    maps ``(B, 4, X, Y, Z) -> (B, 3, X, Y, Z)`` sigmoid probabilities.  It carries its manifest
    as ``model.manifest``, where whole-scan prediction reads how to standardize, mirror, clean up
    and threshold (``tumorseg.inference.settings``), and the manifest's threshold (0.5 when it
    records none) as ``model.threshold``.
    Raises FileNotFoundError naming the missing file and how to get it.
    """
    weights = pretrained_weights() if path is None else Path(path)
    manifest_file = manifest_path(weights)
    for f in (weights, manifest_file):
        if not f.is_file():
            raise FileNotFoundError(
                f"{f} not found: load_pretrained needs the weights file and its JSON manifest side "
                f"by side. Call load_pretrained() without a path for the shipped model, or train one "
                f"with `tumorseg train`."
            )
    manifest = json.loads(manifest_file.read_text())
    config = dict(manifest["config"])
    if input_shape is not None:
        config["input_shape"] = tuple(input_shape)
    elif "input_shape" in config:
        config["input_shape"] = tuple(config["input_shape"])
    model = unet_model_3d(dice_bce_loss, metrics=[dice_coefficient], **config)
    model.load_weights(weights)
    model.manifest = manifest
    model.threshold = float(manifest.get("threshold", THRESHOLD))  # the course notebook reads it
    return model, manifest

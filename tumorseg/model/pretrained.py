"""Load the shipped (or any trained) model from a ``.weights.h5`` file and its JSON manifest."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import keras

from tumorseg.contract import THRESHOLD
from tumorseg.model.losses import dice_bce_loss, dice_coefficient
from tumorseg.model.unet import unet_model_3d
from tumorseg.resources import pretrained_weights


def manifest_path(weights: str | Path) -> Path:
    """The manifest beside ``weights``: ``name.weights.h5`` -> ``name.json``."""
    weights = Path(weights)
    name = weights.name
    stem = name[: -len(".weights.h5")] if name.endswith(".weights.h5") else weights.stem
    return weights.with_name(stem + ".json")


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

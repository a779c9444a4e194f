"""A compact text summary of a U-Net built by :func:`tumorseg.model.unet_model_3d`."""

from __future__ import annotations

import math
import re

import keras

_CONV = re.compile(r"^(enc|dec)(\d+)[ab]_conv$")


def _size(shape) -> str:
    """``XxYxZ`` of a channels-last (B, X, Y, Z, C) shape; ``any`` for unknown sizes."""
    spatial = shape[1:-1]
    return "any size" if None in spatial else "x".join(str(s) for s in spatial)


def unet_summary(model: keras.Model) -> str:
    """One line per resolution level of a :func:`unet_model_3d` model and the parameter count.

    Each level row gives the spatial size of its feature maps (X x Y x Z, ``any size`` when the
    model accepts any input size), the filters of its two encoder convolutions and of its two
    decoder convolutions (none at the bottom level).  ``model.summary()`` prints the full
    layer table.  Raises ValueError for a model without the ``enc<d>a_conv`` layer names.
    """
    levels: dict[int, dict[str, list]] = {}
    for layer in model.layers:
        match = _CONV.match(layer.name)
        if match:
            side, d = match.group(1), int(match.group(2))
            entry = levels.setdefault(d, {"enc": [], "dec": [], "size": None})
            entry[side].append(layer.filters)
            if side == "enc" and entry["size"] is None:
                entry["size"] = _size(layer.output.shape)
    if not levels:
        raise ValueError(f"{model.name!r} has no enc<d>a_conv layers: not built by unet_model_3d")
    convs = sum(isinstance(layer, keras.layers.Conv3D) for layer in model.layers)
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    lines = [
        f"{model.name}: input {tuple(model.input_shape[1:])} -> output "
        f"{tuple(model.output_shape[1:])} (channels first)",
        f"{'level':<7}{'feature maps':<15}{'encoder convs':<16}decoder convs",
    ]
    for d in sorted(levels):
        enc = " -> ".join(str(f) for f in levels[d]["enc"])
        dec = " -> ".join(str(f) for f in levels[d]["dec"]) or "(bottom)"
        lines.append(f"{d:<7}{levels[d]['size']:<15}{enc:<16}{dec}")
    lines.append(
        f"{convs} convolutions (3x3x3, and 1x1x1 to the output maps), "
        f"{model.count_params():,d} parameters ({trainable:,d} trainable)"
    )
    return "\n".join(lines)

"""Load the shipped (or any trained) model from a ``.weights.h5`` file and its JSON manifest."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from enum import Enum
from pathlib import Path

import keras

from tumorseg.contract import THRESHOLD
from tumorseg.model.ensemble import Ensemble
from tumorseg.model.losses import dice_bce_loss, dice_coefficient
from tumorseg.model.unet import unet_model_3d
from tumorseg.resources import manifest_path, pretrained_weights

#: Manifest fields that name where a model came from, copied into run records.
PROVENANCE_FIELDS = ("git_commit", "code_commit", "steps", "seed", "threshold", "tta")


def model_record(path: str | Path | None = None) -> dict:
    """What identifies a model in a run record (``tumorseg.batch.run_record``); an ensemble's
    record also lists its ``"members"``' ids (the first is the model itself).

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
    record = {
        "id": f"{weights.name}@{sha[:12]}",
        "weights": str(weights),
        "shipped": path is None,
        "sha256": sha,
        "manifest": str(manifest_file),
        **{k: manifest[k] for k in PROVENANCE_FIELDS if k in manifest},
    }
    others = [f for f in member_files(weights, manifest) if f != weights]
    if others:
        record["members"] = [record["id"]] + [model_record(f)["id"] for f in others]
    return record


class InferencePrecision(str, Enum):
    """The arithmetic of a loaded model: AUTO (bfloat16 where the CPU computes it natively,
    AVX512-BF16 or AMX, and TensorFlow runs its oneDNN kernels; float32 elsewhere, GPUs
    included), FLOAT32 or BF16 (Keras' ``mixed_bfloat16``: float32 weights, bfloat16 compute,
    float32 outputs).  On the Eigen path (oneDNN off) bfloat16 convolutions are emulated and
    several times slower than float32, so AUTO keeps float32 there."""

    AUTO = "auto"
    FLOAT32 = "float32"
    BF16 = "bf16"

    def resolve(self) -> InferencePrecision:
        """FLOAT32 or BF16 for this machine and process (AUTO: ``choose_inference_precision``)."""
        if self is not InferencePrecision.AUTO:
            return self
        from tumorseg.hardware import cpu_info, onednn_enabled

        return choose_inference_precision(cpu_info().flags, onednn_enabled() is not False)


def choose_inference_precision(cpu_flags: Sequence[str], onednn: bool) -> InferencePrecision:
    """BF16 when ``cpu_flags`` include native bfloat16 (``hardware.native_bf16``) and ``onednn``
    (TensorFlow's oneDNN kernels are on), else FLOAT32."""
    from tumorseg.hardware import native_bf16

    if onednn and native_bf16(set(cpu_flags)):
        return InferencePrecision.BF16
    return InferencePrecision.FLOAT32


#: Manifest keys whose value may depend on the arithmetic a model runs in: a mapping from an
#: ``InferencePrecision`` value (``"bf16"``, ``"float32"``) to the setting, e.g. the shipped
#: ``"tumour_tta": {"bf16": "xz", "float32": "none"}`` (more mirror passes only where bf16 pays
#: for them).
PER_PRECISION_KEYS = ("tumour_tta",)


def for_precision(manifest: dict, precision: InferencePrecision | str) -> dict:
    """``manifest`` with each ``PER_PRECISION_KEYS`` mapping replaced by its value for
    ``precision`` (FLOAT32 or BF16; a precision the mapping lacks takes its ``"float32"``
    entry, else the key is dropped, i.e. the default); a plain value is kept.  A copy."""
    out = dict(manifest)
    for key in PER_PRECISION_KEYS:
        value = out.get(key)
        if isinstance(value, dict):
            chosen = value.get(InferencePrecision(precision).value, value.get("float32"))
            if chosen is None:
                out.pop(key)
            else:
                out[key] = chosen
    return out


def _read_manifest(weights: Path) -> dict:
    manifest_file = manifest_path(weights)
    for f in (weights, manifest_file):
        if not f.is_file():
            raise FileNotFoundError(
                f"{f} not found: load_pretrained needs the weights file and its JSON manifest side "
                f"by side. Call load_pretrained() without a path for the shipped model, or train one "
                f"with `tumorseg train`."
            )
    return json.loads(manifest_file.read_text())


def member_files(weights: str | Path, manifest: dict) -> list[Path]:
    """The weights files of the manifest's ``"members"`` (paths relative to the manifest's
    folder), or ``[weights]`` for a single model."""
    weights = Path(weights)
    return [weights.parent / m for m in manifest.get("members", [])] or [weights]


def _build(
    weights: Path, manifest: dict, input_shape: Sequence[int | None] | None, precision: str
) -> keras.Model:
    config = dict(manifest["config"])
    if input_shape is not None:
        config["input_shape"] = tuple(input_shape)
    elif "input_shape" in config:
        config["input_shape"] = tuple(config["input_shape"])
    policy = "mixed_bfloat16" if precision == InferencePrecision.BF16 else "float32"
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = unet_model_3d(dice_bce_loss, metrics=[dice_coefficient], **config)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    model.load_weights(weights)
    model.manifest = manifest
    model.threshold = float(manifest.get("threshold", THRESHOLD))
    return model


def load_pretrained(
    path: str | Path | None = None,
    input_shape: Sequence[int | None] | None = None,
    *,
    ensemble: bool = True,
    precision: InferencePrecision | str | None = None,
) -> tuple[keras.Model | Ensemble, dict]:
    """Rebuild the model described by the manifest beside ``path`` and load its weights.

    path: a ``*.weights.h5`` file; its manifest ``*.json`` (same stem) holds ``config``, the keyword
        arguments of ``unet_model_3d`` that rebuild the architecture.  ``None``: the model shipped
        inside the package (``tumorseg.resources.pretrained_weights()``).
    input_shape: override ``(C, X, Y, Z)`` (e.g. ``(4, None, None, None)`` for any tile size).
    ensemble: when the manifest lists ``"members"`` (``member_files``), load them all as one
        ``Ensemble`` (loaded once; whole-scan prediction spreads its mirror passes over them).
        False: the first member alone (the course notebook's one model), mirrored as the
        manifest's ``tta`` says, without the ensemble's ``tumour_tta`` passes.
    precision: an ``InferencePrecision``; None: the manifest's ``"inference_precision"``, else
        FLOAT32.
    Returns ``(model, manifest)``; the model is compiled with the Dice+BCE loss and Dice metric and
    maps ``(B, 4, X, Y, Z) -> (B, 3, X, Y, Z)`` sigmoid probabilities.  It carries its manifest
    as ``model.manifest``, where whole-scan prediction reads how to standardize, mirror, clean up
    and threshold (``tumorseg.inference.settings``), and the manifest's threshold (0.5 when it
    records none) as ``model.threshold``.
    Raises FileNotFoundError naming the missing file and how to get it; ValueError for an
    unknown precision.
    """
    weights = pretrained_weights() if path is None else Path(path)
    manifest = _read_manifest(weights)
    chosen = InferencePrecision(
        precision or manifest.get("inference_precision") or InferencePrecision.FLOAT32
    ).resolve()
    manifest = for_precision(manifest, chosen)
    files = member_files(weights, manifest)
    if not ensemble:
        files = files[:1]
        if len(member_files(weights, manifest)) > 1:  # the tumour passes are the ensemble's
            manifest.pop("tumour_tta", None)
    models = [
        _build(f, manifest if f == weights else _read_manifest(f), input_shape, chosen)
        for f in files
    ]
    for m in models:
        m.precision = chosen.value
    if len(models) == 1:
        models[0].manifest = manifest
        return models[0], manifest
    return Ensemble(models, manifest), manifest

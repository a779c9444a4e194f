"""What a run leaves on disk: checkpoints (for ``--resume``), the CSV log, the exported weights."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tumorseg.atomic import atomic_path, write_text

CLASS_NAMES = ("edema", "non_enhancing", "enhancing")
#: Validation columns of the log: the class channels, then the region channels (a run fills
#: the ones of its ``Outputs`` kind).
VALID_CHANNELS = (*CLASS_NAMES, "WT", "TC", "ET")
LOG_FIELDS = ["step", "loss", "lr", "seconds"] + [f"valid_{c}" for c in VALID_CHANNELS]


def host_array(variable: Any) -> np.ndarray:
    """A variable's value as a numpy array on this process.

    Under a multi-host distribution the replicated weights span devices of other processes, so
    the array is read from this process's own replica.
    """
    value = getattr(variable, "value", variable)
    if getattr(value, "is_fully_addressable", True) is False:
        value = value.addressable_data(0)
    return np.asarray(value)


def export_weights(model: Any, config: dict, path: str | Path, write: bool = True) -> None:
    """Write only the model's weights (no optimizer state) to ``path`` (``*.weights.h5``).

    A compiled, trained model's ``save_weights`` also stores the Adam moments (3x the size);
    copying the weights into a fresh float32 model of the same ``config`` (``unet_model_3d``
    kwargs), built outside any distribution, leaves them out. The file loads under any Keras
    backend. In a multi-host run every process calls this (building a model draws from the
    shared seed state) and only the one with ``write`` keeps the file.
    """
    import keras

    from tumorseg.model import soft_dice_loss, unet_model_3d

    policy = keras.mixed_precision.global_policy().name
    distribution = keras.distribution.distribution()
    keras.mixed_precision.set_global_policy("float32")
    keras.distribution.set_distribution(None)
    try:
        clean = unet_model_3d(soft_dice_loss, **config)
    finally:
        keras.mixed_precision.set_global_policy(policy)
        keras.distribution.set_distribution(distribution)
    clean.set_weights([host_array(v) for v in model.weights])
    if not write:  # save all the same (saving may touch shared state), into a throwaway file
        with tempfile.TemporaryDirectory() as tmp:
            clean.save_weights(str(Path(tmp) / "discard.weights.h5"))
        return
    with atomic_path(Path(path), suffix=".weights.h5") as tmp:
        tmp.unlink()  # Keras writes the file itself
        clean.save_weights(str(tmp))


def save_checkpoint(model: Any, folder: Path, step: int, seconds: float = 0.0) -> None:
    """Write weights, optimizer state and step in one atomic ``state.npz`` (what ``--resume``
    reads), then ``state.json`` (the same step and seconds, for people)."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"step": np.int64(step), "seconds": np.float64(seconds)}
    arrays.update({f"w{i}": host_array(v) for i, v in enumerate(model.weights)})
    arrays.update({f"o{i}": host_array(v) for i, v in enumerate(model.optimizer.variables)})
    with atomic_path(folder / "state.npz", suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    write_text(folder / "state.json", json.dumps({"step": step, "seconds": seconds}))


def load_checkpoint(model: Any, folder: Path) -> tuple[int, float]:
    """Restore weights and optimizer state from ``folder``; returns ``(step, seconds)`` so far."""
    model.optimizer.build(model.trainable_variables)
    saved = np.load(folder / "state.npz")
    weights, opt = model.weights, model.optimizer.variables
    if len(saved.files) != 2 + len(weights) + len(opt):
        raise ValueError(
            f"{folder}: the checkpoint does not match this model; cannot resume "
            f"(train into a new --out, or delete {folder})"
        )
    for prefix, variables in (("w", weights), ("o", opt)):
        for i, v in enumerate(variables):
            v.assign(saved[f"{prefix}{i}"])
    return int(saved["step"]), float(saved["seconds"])


def start_log(path: Path, keep_until: int | None) -> None:
    """Start the CSV log at ``path``: empty, or (resuming) the rows of steps ``<= keep_until``
    that were logged during training (final-evaluation rows have no learning rate)."""
    rows = []
    if keep_until is not None and path.is_file():
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= keep_until and r["lr"]]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LOG_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: r.get(k, "") for k in LOG_FIELDS})
    write_text(path, buf.getvalue())


def log_row(
    path: Path,
    step: int,
    seconds: float,
    loss: float,
    lr: float | None = None,
    metrics: dict | None = None,
) -> None:
    """Append one row to the CSV log (``lr`` None: a final-evaluation row)."""
    row = {"step": step, "loss": f"{loss:.5f}", "seconds": f"{seconds:.1f}"}
    if lr is not None:
        row["lr"] = f"{lr:.3g}"
    row.update(
        {f"valid_{c}": f"{metrics[c]:.4f}" for c in VALID_CHANNELS if metrics and c in metrics}
    )
    with open(path, "a", newline="") as f:
        csv.DictWriter(f, fieldnames=LOG_FIELDS, lineterminator="\n").writerow(row)

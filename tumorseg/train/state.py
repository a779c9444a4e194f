"""What a run leaves on disk: checkpoints (for ``--resume``), the CSV log, the exported weights."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tumorseg.atomic import atomic_path, write_text

CLASS_NAMES = ("edema", "non_enhancing", "enhancing")
LOG_FIELDS = ["step", "loss", "lr", "seconds"] + [f"valid_{c}" for c in CLASS_NAMES]


def _atomic_save_weights(model: Any, path: Path) -> None:
    with atomic_path(path, suffix=".weights.h5") as tmp:
        tmp.unlink()  # Keras writes the file itself
        model.save_weights(str(tmp))


def export_weights(model: Any, config: dict, path: str | Path) -> None:
    """Write only the model's weights (no optimizer state) to ``path`` (``*.weights.h5``).

    A compiled, trained model's ``save_weights`` also stores the Adam moments (3x the size);
    copying the weights into a fresh float32 model of the same ``config`` (``unet_model_3d``
    kwargs) leaves them out. The file loads under any Keras backend.
    """
    import keras

    from tumorseg.model import soft_dice_loss, unet_model_3d

    policy = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("float32")
    try:
        clean = unet_model_3d(soft_dice_loss, **config)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    clean.set_weights([np.asarray(w) for w in model.get_weights()])
    _atomic_save_weights(clean, Path(path))


def save_checkpoint(model: Any, folder: Path, step: int, seconds: float = 0.0) -> None:
    """Write weights, optimizer state and the step to ``folder`` (atomically, state last)."""
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_save_weights(model, folder / "ckpt.weights.h5")
    opt = {f"v{i}": np.asarray(v) for i, v in enumerate(model.optimizer.variables)}
    fd, tmp = tempfile.mkstemp(prefix="opt.", suffix=".npz", dir=folder)
    os.close(fd)
    np.savez(tmp, **opt)
    os.replace(tmp, folder / "optimizer.npz")
    write_text(folder / "state.json", json.dumps({"step": step, "seconds": seconds}))


def load_checkpoint(model: Any, folder: Path) -> tuple[int, float]:
    """Restore weights and optimizer state from ``folder``; returns ``(step, seconds)`` so far."""
    state = json.loads((folder / "state.json").read_text())
    model.optimizer.build(model.trainable_variables)
    model.load_weights(folder / "ckpt.weights.h5")
    saved = np.load(folder / "optimizer.npz")
    variables = model.optimizer.variables
    if len(saved.files) != len(variables):
        raise ValueError(f"{folder}: optimizer state does not match the model; cannot resume "
                         f"(train into a new --out, or delete {folder})")
    for i, v in enumerate(variables):
        v.assign(saved[f"v{i}"])
    return int(state["step"]), float(state.get("seconds", 0.0))


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


def log_row(path: Path, step: int, seconds: float, loss: float, lr: float | None = None,
            metrics: dict | None = None) -> None:
    """Append one row to the CSV log (``lr`` None: a final-evaluation row)."""
    row = {"step": step, "loss": f"{loss:.5f}", "seconds": f"{seconds:.1f}"}
    if lr is not None:
        row["lr"] = f"{lr:.3g}"
    row.update({f"valid_{c}": f"{metrics[c]:.4f}" for c in CLASS_NAMES if metrics and c in metrics})
    with open(path, "a", newline="") as f:
        csv.DictWriter(f, fieldnames=LOG_FIELDS, lineterminator="\n").writerow(row)

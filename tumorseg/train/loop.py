"""Training the 3D U-Net: ``tumorseg train``.

``train()`` runs a step-based loop over a batch source (the h5 patch store through
``VolumeDataGenerator``, or patches held in memory), with

* everything seeded: batch ``s`` is a pure function of ``(seed, s)`` (epoch order, flips and
  intensity jitter), so a resumed run sees exactly the batches an uninterrupted one would;
* checkpoints (``OUT/checkpoint/``: weights, optimizer state, step) it can ``--resume`` from;
* a CSV log (``OUT/log.csv``: step, loss, learning rate, seconds, validation Dice per class);
* a tqdm progress bar;
* at the end ``OUT/model.weights.h5`` plus the manifest ``OUT/model.json``: the
  ``unet_model_3d`` kwargs (``config``), standardization, data seed and case lists, git commit,
  wall time and validation Dice per class.

Loss: soft Dice + binary cross-entropy per sample; the output bias starts at -2 so that rare
classes are not stuck "on" (measured: the non-enhancing class never learned otherwise).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import random
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from tumorseg.atomic import atomic_path, write_text
from tumorseg.patches.augment import Augment, augment, epoch_order

CLASS_NAMES = ("edema", "non_enhancing", "enhancing")
ROOT = Path(__file__).resolve().parents[2]


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and Keras (backend) random generators."""
    import keras

    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)


def git_commit() -> str:
    """The repository's HEAD commit (``TUMORSEG_GIT_COMMIT`` overrides), or "unknown"."""
    if os.environ.get("TUMORSEG_GIT_COMMIT"):
        return os.environ["TUMORSEG_GIT_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
        sha = out.stdout.strip()
        return sha if len(sha) == 40 and all(c in "0123456789abcdef" for c in sha) else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def hard_dice_per_class(pred: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Per-sample, per-class hard Dice: ``pred, truth (B, classes, X, Y, Z)`` -> ``(B, classes)``.

    ``pred`` is thresholded at ``threshold``; a class empty in both prediction and truth scores 1.
    """
    p = pred >= threshold
    t = truth > 0.5
    inter = np.logical_and(p, t).sum(axis=(2, 3, 4))
    total = p.sum(axis=(2, 3, 4)) + t.sum(axis=(2, 3, 4))
    return np.where(total > 0, 2.0 * inter / np.maximum(total, 1), 1.0)


def evaluate_batches(
    model: Any, batches: Iterable, threshold: float = 0.5, batch_size: int = 4
) -> dict:
    """Mean patch Dice per class over ``batches`` (an iterable of ``(x, y)`` channels-first arrays).

    Returns ``{"edema": d1, "non_enhancing": d2, "enhancing": d3, "mean": mean, "patches": n}``.
    """
    scores = []
    for x, y in batches:
        pred = model.predict(x, batch_size=batch_size, verbose=0)
        scores.append(hard_dice_per_class(pred, y, threshold))
    if not scores:
        return {}
    s = np.concatenate(scores)
    out = {name: float(s[:, i].mean()) for i, name in enumerate(CLASS_NAMES[: s.shape[1]])}
    out["mean"] = float(s.mean())
    out["patches"] = int(s.shape[0])
    return out


class MemoryBatches:
    """Batches from patches held in memory; batch ``s`` depends only on ``(seed, s)``.

    x: ``(N, C, X, Y, Z)`` float32, ALREADY standardized; y: ``(N, classes, X, Y, Z)`` float32
    (no background); brain: optional ``(N, C, X, Y, Z)`` bool mask of nonzero raw voxels (where
    the intensity jitter applies; default ``x != 0``).
    """

    def __init__(self, x, y, batch_size: int, seed: int = 0, augment: bool = True, brain=None):
        self.x, self.y, self.brain = x, y, brain
        self.batch_size, self.seed, self.augment = batch_size, seed, augment
        self.per_epoch = max(1, len(x) // batch_size)

    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """The batch of training step ``step``: ``(x (B, C, X, Y, Z), y (B, classes, X, Y, Z))``."""
        epoch, i = divmod(step, self.per_epoch)
        order = epoch_order(self.seed, epoch, len(self.x))
        ids = np.sort(order[i * self.batch_size : (i + 1) * self.batch_size])
        x, y = self.x[ids], self.y[ids]
        if not self.augment:
            return x, y
        rng = np.random.default_rng([self.seed, step, 1])
        brain = self.brain[ids] if self.brain is not None else x != 0
        pairs = [augment(x[b], y[b], brain[b], rng, Augment.FLIP) for b in range(len(x))]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


class GeneratorBatches:
    """Batches from a ``VolumeDataGenerator``; batch ``s`` depends only on ``(seed, s)``."""

    def __init__(self, generator, seed: int = 0):
        self.gen = generator
        self.seed = seed
        self.batch_size = generator.batch_size
        self.per_epoch = max(1, len(generator))

    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """The batch of training step ``step`` (thread-safe: no shared random state)."""
        epoch, i = divmod(step, self.per_epoch)
        gen = self.gen
        n = len(gen.sample_list)
        ids = epoch_order(self.seed, epoch, n)
        sel = ids[i * gen.batch_size : (i + 1) * gen.batch_size]
        xs, ys = [], []
        for k, j in enumerate(sel):
            x, y = gen.load(gen.sample_list[j], rng=np.random.default_rng([self.seed, step, 1, k]))
            xs.append(x)
            ys.append(y)
        return np.stack(xs), np.stack(ys)


def _atomic_save_weights(model, path: Path) -> None:
    with atomic_path(path, suffix=".weights.h5") as tmp:
        tmp.unlink()  # Keras writes the file itself
        model.save_weights(str(tmp))


def export_weights(model: Any, config: dict, path: Path) -> None:
    """Write only the model's weights (no optimizer state) to ``path`` (``*.weights.h5``).

    A compiled, trained model's ``save_weights`` also stores the Adam moments (3x the size);
    copying the weights into a fresh float32 model of the same ``config`` leaves them out.
    """
    import keras

    from tumorseg.model import soft_dice_loss, unet_model_3d

    keras.mixed_precision.set_global_policy("float32")
    clean = unet_model_3d(soft_dice_loss, **config)
    clean.set_weights(model.get_weights())
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


def load_checkpoint(model: Any, folder: Path) -> int:
    """Restore weights and optimizer state from ``folder``; returns the step to continue from."""
    state = json.loads((folder / "state.json").read_text())
    model.optimizer.build(model.trainable_variables)
    model.load_weights(folder / "ckpt.weights.h5")
    saved = np.load(folder / "optimizer.npz")
    variables = model.optimizer.variables
    if len(saved.files) != len(variables):
        raise ValueError(f"{folder}: optimizer state does not match the model; cannot resume")
    for i, v in enumerate(variables):
        v.assign(saved[f"v{i}"])
    return int(state["step"])


def learning_rate_at(step: int, steps: int, lr: float, warmup: int = 50,
                     progress: float | None = None) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay from ``lr`` to ``lr/20``.

    progress: fraction of the run done (default ``step / steps``); a time-budgeted run passes
    ``max(step / steps, elapsed / budget)`` so the decay ends when the time does.
    """
    if step < warmup:
        return lr * (step + 1) / warmup
    if progress is None:
        progress = (step - warmup) / max(1, steps - warmup)
    t = min(1.0, max(0.0, progress))
    return lr / 20 + (lr - lr / 20) * 0.5 * (1 + math.cos(math.pi * t))


def train(
    source: Any,
    out: str | Path,
    steps: int,
    config: dict,
    *,
    seed: int = 0,
    lr: float = 3e-4,
    bf16: bool = False,
    resume: bool = False,
    valid: Callable[[], list] | None = None,
    eval_every: int = 0,
    checkpoint_every: int = 50,
    max_seconds: float | None = None,
    manifest_extra: dict | None = None,
    prefetch: int = 2,
    snapshot_steps: tuple[int, ...] | list[int] = (),
    init_weights: str | Path | None = None,
    verbose: bool = True,
) -> dict:
    """Train ``unet_model_3d(**config)`` for ``steps`` steps on ``source.batch(step)`` batches.

    source: an object with ``batch(step) -> (x (B, 4, X, Y, Z), y (B, 3, X, Y, Z))`` float32
        (``MemoryBatches`` or ``GeneratorBatches``).
    config: keyword arguments of ``unet_model_3d`` (without the loss); recorded in the manifest.
    valid: returns a list of ``(x, y)`` validation batches (mean patch Dice per class, thr 0.5),
        evaluated every ``eval_every`` steps (0: only at the end).
    max_seconds: stop early (and save) once training has run this long.
    snapshot_steps: also keep a copy of the weights as ``out/snapshot_<step>.weights.h5`` there.
    init_weights: start from these ``.weights.h5`` (fine-tuning) instead of a fresh initialisation;
        recorded in the manifest. Ignored when resuming from a checkpoint.
    Writes ``out/model.weights.h5``, ``out/model.json``, ``out/log.csv``, ``out/checkpoint/``.
    Returns the manifest dict.
    """
    import keras

    from tumorseg.model import dice_bce_loss, unet_model_3d

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(seed)
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if bf16 else "float32")
    try:
        model = unet_model_3d(dice_bce_loss, initial_learning_rate=lr, output_bias=-2.0, **config)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    if init_weights is not None:
        model.load_weights(str(init_weights))
    ckpt = out / "checkpoint"
    start = 0
    log_path = out / "log.csv"
    fields = ["step", "loss", "lr", "seconds"] + [f"valid_{c}" for c in CLASS_NAMES]
    prior_seconds = 0.0
    if resume and (ckpt / "state.json").is_file():
        start = load_checkpoint(model, ckpt)
        prior_seconds = float(json.loads((ckpt / "state.json").read_text()).get("seconds", 0.0))
        rows = []
        if log_path.is_file():
            with open(log_path, newline="") as f:  # drop rows past the checkpoint and final evals
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= start and r["lr"]]
        write_text(log_path, _csv_text(fields, rows))
        if verbose:
            print(f"resumed from {ckpt} at step {start}")
    else:
        write_text(log_path, _csv_text(fields, []))

    t0 = time.time() - prior_seconds
    metrics: dict = {}
    loss = float("nan")
    step = start
    pool = ThreadPoolExecutor(max_workers=max(1, prefetch))
    pending = {s: pool.submit(source.batch, s) for s in range(start, min(steps, start + prefetch))}
    bar = tqdm(total=steps, initial=start, desc="train", unit="step", disable=not verbose)
    with open(log_path, "a", newline="") as logf:
        writer = csv.DictWriter(logf, fieldnames=fields)
        while step < steps:
            x, y = pending.pop(step).result()
            nxt = step + prefetch
            if nxt < steps:
                pending[nxt] = pool.submit(source.batch, nxt)
            progress = None
            if max_seconds:
                progress = max(step / steps, (time.time() - t0 - prior_seconds) / max_seconds)
            rate = learning_rate_at(step, steps, lr, progress=progress)
            model.optimizer.learning_rate.assign(rate)
            loss = float(np.asarray(model.train_on_batch(x, y, return_dict=True)["loss"]))
            step += 1
            row = {"step": step, "loss": f"{loss:.5f}", "lr": f"{rate:.3g}",
                   "seconds": f"{time.time() - t0:.1f}"}
            if valid is not None and eval_every and step % eval_every == 0 and step < steps:
                metrics = evaluate_batches(model, valid())
                row.update({f"valid_{c}": f"{metrics[c]:.4f}" for c in CLASS_NAMES})
            writer.writerow(row)
            logf.flush()
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")
            timed_out = max_seconds is not None and time.time() - t0 - prior_seconds > max_seconds
            if step in snapshot_steps:
                export_weights(model, config, out / f"snapshot_{step}.weights.h5")
            if step % checkpoint_every == 0 or step == steps or timed_out:
                save_checkpoint(model, ckpt, step, time.time() - t0)
            if timed_out:
                if verbose:
                    print(f"time budget reached after {step} steps")
                break
    bar.close()
    pool.shutdown(wait=False, cancel_futures=True)
    train_seconds = time.time() - t0  # wall time of all runs, resumed ones included
    if valid is not None:
        metrics = evaluate_batches(model, valid())
        with open(log_path, "a", newline="") as logf:
            csv.DictWriter(logf, fieldnames=fields).writerow(
                {"step": step, "loss": f"{loss:.5f}", "seconds": f"{time.time() - t0:.1f}",
                 **{f"valid_{c}": f"{metrics[c]:.4f}" for c in CLASS_NAMES}}
            )
    export_weights(model, config, out / "model.weights.h5")
    manifest = {
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()},
        "loss": "soft Dice + binary cross-entropy, per sample",
        "output_bias_init": -2.0,
        "learning_rate": lr,
        "schedule": "linear warm-up 50 steps, cosine decay to lr/20"
        + (f" over {max_seconds:.0f} s" if max_seconds else ""),
        "steps": step,
        "steps_planned": steps,
        "batch_size": int(getattr(source, "batch_size", 0) or 0) or None,
        "seed": seed,
        "precision": "mixed_bfloat16" if bf16 else "float32",
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "machine": platform.node() or "unknown",
        "git_commit": git_commit(),
        "train_seconds": round(train_seconds, 1),
        "validation_patch_dice": metrics,
        "threshold": 0.5,
        "init_weights": Path(init_weights).name if init_weights is not None else None,
    }
    manifest.update(manifest_extra or {})
    write_text(out / "model.json", json.dumps(manifest, indent=1))
    if verbose:
        print(f"wrote {out / 'model.weights.h5'} after {step} steps; validation Dice {metrics}")
    return manifest


def _csv_text(fields, rows) -> str:
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in fields})
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    """``tumorseg train --data DIR/processed --out DIR --steps N [--seed S] ...``."""
    p = argparse.ArgumentParser(prog="tumorseg train", description="train the 3D U-Net on a patch store")
    p.add_argument("--data", required=True, help="patch store folder with config.json, train/, valid/")
    p.add_argument("--out", required=True, help="output folder (weights, manifest, log, checkpoint)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-base-filters", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--lr", type=float, default=3e-4, help="peak learning rate (Adam)")
    p.add_argument("--bf16", action="store_true", help="mixed_bfloat16 precision")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    p.add_argument("--standardize", choices=("slice", "brain"), default="brain")
    p.add_argument("--augment", choices=[a.value for a in Augment], default=Augment.FLIP.value,
                   help="augmentation level: none, flip (flips and mild jitter, default) or "
                        "strong (also scanner-like changes of the raw intensities)")
    p.add_argument("--no-augment", action="store_true", help="same as --augment none")
    p.add_argument("--init-weights", default=None,
                   help="start from these .weights.h5 (fine-tuning) instead of a fresh model")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="stop (and save) after this much training time; the schedule follows it")
    p.add_argument("--eval-every", type=int, default=0, help="validate every N steps (0: at the end)")
    p.add_argument("--checkpoint-every", type=int, default=50)
    p.add_argument("--max-valid", type=int, default=32, help="validation patches to score")
    args = p.parse_args(argv)

    from tumorseg.data import DataError
    from tumorseg.patches import VolumeDataGenerator

    data = Path(args.data)
    cfg_path = data / "config.json"
    if not cfg_path.is_file():
        raise SystemExit(f"{cfg_path} not found: build the patch store with `tumorseg patches` first")
    store = json.loads(cfg_path.read_text())
    level = Augment.NONE if args.no_augment else Augment(args.augment)
    gen = VolumeDataGenerator(store["train"], data / "train", batch_size=args.batch_size,
                              verbose=0, standardize=args.standardize,
                              augment=level, seed=args.seed)
    if len(gen) == 0:
        raise SystemExit(f"{cfg_path}: fewer training patches than one batch")
    vgen = VolumeDataGenerator(store["valid"][: args.max_valid], data / "valid", batch_size=1,
                               shuffle=False, verbose=0, standardize=args.standardize)

    def valid() -> list:
        """The validation batches (read on each call)."""
        return [vgen[i] for i in range(len(vgen))]

    config = {"n_base_filters": args.n_base_filters, "input_shape": [4, 160, 160, 16]}
    extra = {
        "standardize": args.standardize,
        "augment": level.value,
        "data": {
            "patch_store": str(data),
            "seed": store.get("seed"),
            "train_cases": store.get("train_cases"),
            "valid_cases": store.get("valid_cases"),
            "source": store.get("source"),
            "train_patches": len(store["train"]),
            "valid_patches": len(store["valid"]),
        },
    }
    try:
        train(GeneratorBatches(gen, args.seed), args.out, args.steps, config, seed=args.seed,
              lr=args.lr, bf16=args.bf16, resume=args.resume,
              valid=valid if store["valid"] else None, eval_every=args.eval_every,
              checkpoint_every=args.checkpoint_every, manifest_extra=extra,
              init_weights=args.init_weights, max_seconds=args.max_seconds)
    except DataError as exc:
        print(f"tumorseg train: {exc}")
        return 1
    return 0

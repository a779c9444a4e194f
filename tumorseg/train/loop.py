"""Training the 3D U-Net: ``train(TrainConfig, source)`` and ``tumorseg train``.

One training path for every device: the CPU, one GPU, or data-parallel over all visible
devices (JAX backend, ``tumorseg.train.distribute``), on one or several hosts. A run is

* seeded: batch ``s`` is a pure function of ``(seed, s)`` (``tumorseg.train.data``), so a
  resumed run, and a run on any number of devices, sees the same batches;
* fed by input workers that read and augment batches ahead of the device steps;
* checkpointed (``OUT/checkpoint/``: weights, optimizer state, step) for ``--resume``;
* logged to ``OUT/log.csv`` (step, loss, learning rate, seconds, validation Dice per class);
* finished with ``OUT/model.weights.h5`` (float32 weights only, loadable under any backend)
  and the manifest ``OUT/model.json``: ``config`` (the ``unet_model_3d`` kwargs that
  ``load_pretrained`` reads), ``standardize``, ``training`` (the ``TrainConfig``),
  ``precision`` and ``precision_choice`` (requested, chosen, the CPU's model and flags),
  ``distribution``, ``timings``, ``data`` and the validation Dice per class.

Loss: soft Dice + binary cross-entropy, the Dice per sample or over the batch (``--loss``); the output bias starts at -2 so that rare
classes are not stuck "on" (measured: the non-enhancing class never learned otherwise).
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from tumorseg.atomic import write_text
from tumorseg.contract import DEFAULT_OUTPUTS, THRESHOLD, Outputs, targets_for
from tumorseg.errors import DataError
from tumorseg.hardware import cpu_info
from tumorseg.labels import REGIONS
from tumorseg.metrics import hard_dice_per_class
from tumorseg.patches.augment import PROBABILITIES
from tumorseg.train.config import (
    LOSS_NAMES,
    POLICIES,
    DiceReduction,
    TrainConfig,
    choose_precision,
)
from tumorseg.train.data import Prefetcher
from tumorseg.train.distribute import Distribution, clear_distribution, setup_distribution
from tumorseg.train.state import (
    CLASS_NAMES,
    export_weights,
    load_checkpoint,
    log_row,
    save_checkpoint,
    start_log,
)

OUTPUT_BIAS = -2.0


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
    from tumorseg.resources import checkout_root

    root = checkout_root()
    if root is None:
        return "unknown"
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        sha = out.stdout.strip()
        return sha if len(sha) == 40 and all(c in "0123456789abcdef" for c in sha) else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def evaluate_batches(
    model: Any,
    batches: Iterable,
    threshold: float = THRESHOLD,
    batch_size: int = 4,
    multiple: int = 1,
    outputs: Outputs | str = DEFAULT_OUTPUTS,
) -> dict:
    """Mean patch Dice per output channel over ``batches`` (an iterable of ``(x, y)``
    channels-first arrays, ``y`` the class targets).

    multiple: the number of data-parallel devices; each predicted batch is padded to a
    multiple of it (the padding is not scored).
    outputs: the model's ``Outputs`` kind; ``y`` is scored as ``targets_for(y, outputs)``.
    Returns ``{<channel name>: dice, ..., "mean": mean, "patches": n}``, the channels named by
    ``CLASS_NAMES`` (classes) or the keys of ``REGIONS`` (regions).
    """
    step = multiple * math.ceil(batch_size / multiple)
    scores = []
    for x, y in batches:
        n = len(x)
        pad = (-n) % multiple
        if pad:
            x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
        pred = np.asarray(model.predict(x, batch_size=step, verbose=0))[:n]
        scores.append(hard_dice_per_class(pred, targets_for(y, outputs), threshold))
    if not scores:
        return {}
    s = np.concatenate(scores)
    names = CLASS_NAMES if Outputs(outputs) is Outputs.CLASSES else tuple(REGIONS)
    out = {name: float(s[:, i].mean()) for i, name in enumerate(names[: s.shape[1]])}
    out["mean"] = float(s.mean())
    out["patches"] = int(s.shape[0])
    return out


def learning_rate_at(
    step: int, steps: int, lr: float, warmup: int = 50, progress: float | None = None
) -> float:
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


def build_model(cfg: TrainConfig) -> Any:
    """The compiled U-Net of ``cfg`` (Dice+BCE per sample or batch, ``cfg.loss``; output bias -2, in ``cfg.precision``: "float32"
    or "bf16", resolved from "auto" by ``train``; gradients clipped to ``cfg.clip_norm``),
    started from ``cfg.init_weights`` when given. Built under the current distribution."""
    import keras

    from tumorseg.model import batch_dice_bce_loss, dice_bce_loss, unet_model_3d

    batch = DiceReduction(cfg.loss) is DiceReduction.BATCH
    keras.mixed_precision.set_global_policy(POLICIES[cfg.precision])
    try:
        model = unet_model_3d(
            batch_dice_bce_loss if batch else dice_bce_loss,
            initial_learning_rate=cfg.lr,
            output_bias=OUTPUT_BIAS,
            **cfg.model_config(),
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    # Keras' optimizers read ``global_clipnorm`` at every step (``_clip_gradients``)
    model.optimizer.global_clipnorm = cfg.clip_norm
    if cfg.init_weights is not None:
        try:
            model.load_weights(str(cfg.init_weights))
        except (OSError, ValueError) as exc:
            raise DataError(
                f"{cfg.init_weights}: cannot load these weights into a U-Net with "
                f"n_base_filters={cfg.n_base_filters} and {cfg.outputs} outputs ({exc}); "
                "--init-weights takes a .weights.h5 file written by tumorseg train, with the "
                "same --n-base-filters"
            ) from exc
    return model


def resolve_precision(cfg: TrainConfig, dist: Distribution) -> tuple[TrainConfig, dict]:
    """``cfg`` with its precision made concrete for this machine (``choose_precision``), and
    the manifest's ``"precision_choice"``: requested, chosen, whether an accelerator trains
    and the CPU (model, flags of interest, cores)."""
    cpu = cpu_info()
    chosen = choose_precision(cfg.precision, cpu.flags, dist.accelerated)
    choice = {
        "requested": cfg.precision,
        "chosen": chosen,
        "accelerator": dist.accelerated,
        "cpu": cpu.record(),
    }
    return cfg.replace(precision=chosen), choice


def train_step(model: Any, x: np.ndarray, y: np.ndarray, rate: float) -> float:
    """One optimizer step at learning rate ``rate`` on this host's rows of a global batch;
    returns the loss of the whole global batch."""
    model.optimizer.learning_rate.assign(rate)
    return float(np.asarray(model.train_on_batch(x, y, return_dict=True)["loss"]))


@dataclass
class RunState:
    """Progress of a run: steps done, loss, wall time and the timings of the manifest."""

    step: int = 0
    loss: float = float("nan")
    prior_seconds: float = 0.0
    t0: float = field(default_factory=time.time)
    first_step_seconds: float | None = None
    step_seconds: list[float] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    input: dict | None = None
    precision_choice: dict = field(default_factory=dict)

    def elapsed(self) -> float:
        """Training wall time so far, resumed runs included."""
        return time.time() - self.t0 + self.prior_seconds


def resume_or_start(model: Any, out: Path, resume: bool, write: bool, verbose: bool) -> RunState:
    """Restore ``out/checkpoint`` into ``model`` when ``resume`` and one exists; (re)start the
    log when ``write`` (the process that writes outputs). Returns the run's starting state."""
    ckpt = out / "checkpoint"
    state = RunState()
    if resume and (ckpt / "state.npz").is_file():
        state.step, state.prior_seconds = load_checkpoint(model, ckpt)
        if verbose:
            print(f"resumed from {ckpt} at step {state.step}")
    if write:
        start_log(out / "log.csv", state.step if state.step else None)
    return state


def run_steps(
    model: Any,
    cfg: TrainConfig,
    source: Any,
    dist: Distribution,
    state: RunState,
    valid: Callable[[], Iterable] | None,
    verbose: bool,
    data: dict | None = None,
) -> None:
    """Train from ``state.step`` to ``cfg.steps`` (or the time budget), logging, validating,
    checkpointing and snapshotting on the way; updates ``state``. A snapshot is
    ``snapshot_<step>.weights.h5`` with its manifest ``snapshot_<step>.json`` (``data`` is its
    ``"data"``), so ``load_pretrained`` loads it like the final model."""
    out = Path(cfg.out)
    feed = Prefetcher(source, range(state.step, cfg.steps), cfg.workers, cfg.processes, dist.rows)
    bar = tqdm(
        total=cfg.steps,
        initial=state.step,
        desc="train",
        unit="step",
        disable=not (verbose and dist.is_chief),
    )
    try:
        while state.step < cfg.steps:
            x, y = feed.get(state.step)
            y = targets_for(y, cfg.outputs)
            progress = None
            if cfg.max_seconds:
                elapsed = dist.from_chief(state.elapsed())
                progress = max(state.step / cfg.steps, elapsed / cfg.max_seconds)
            rate = learning_rate_at(state.step, cfg.steps, cfg.lr, cfg.warmup, progress)
            t = time.perf_counter()
            state.loss = train_step(model, x, y, rate)
            seconds = time.perf_counter() - t
            if state.first_step_seconds is None:
                state.first_step_seconds = seconds  # includes compiling the step
            else:
                state.step_seconds.append(seconds)
            state.step += 1
            metrics = None
            if (
                valid is not None
                and cfg.eval_every
                and state.step % cfg.eval_every == 0
                and state.step < cfg.steps
            ):
                metrics = state.metrics = evaluate_batches(
                    model, valid(), multiple=dist.devices, outputs=cfg.outputs
                )
            timed_out = (
                cfg.max_seconds is not None and dist.from_chief(state.elapsed()) > cfg.max_seconds
            )
            if state.step in cfg.snapshot_steps:
                snapshot(model, cfg, dist, state, data, metrics)
            if dist.is_chief:
                log_row(out / "log.csv", state.step, state.elapsed(), state.loss, rate, metrics)
                if state.step % cfg.checkpoint_every == 0 or state.step == cfg.steps or timed_out:
                    save_checkpoint(model, out / "checkpoint", state.step, state.elapsed())
            bar.update(1)
            bar.set_postfix(loss=f"{state.loss:.3f}")
            if timed_out:
                if verbose and dist.is_chief:
                    print(f"time budget reached after {state.step} steps")
                break
    finally:
        bar.close()
        feed.close()
    state.input = {
        "workers": cfg.workers,
        "processes": cfg.processes,
        "wait_seconds": round(feed.wait_seconds, 2),
        "patches_per_worker_second": _round(feed.worker_rate()),
    }


def _round(v: float | None, digits: int = 2) -> float | None:
    return None if v is None else round(v, digits)


def timings(state: RunState, dist: Distribution) -> dict:
    """The manifest's ``"timings"``: wall time, compile step, steady step time and rates."""
    steady = float(np.median(state.step_seconds)) if state.step_seconds else None
    return {
        "train_seconds": round(state.elapsed(), 1),
        "first_step_seconds": _round(state.first_step_seconds),
        "seconds_per_step": _round(steady, 4),
        "patches_per_second": _round(dist.global_batch / steady if steady else None),
        "input": state.input,
    }


def snapshot(
    model: Any,
    cfg: TrainConfig,
    dist: Distribution,
    state: RunState,
    data: dict | None,
    metrics: dict | None,
) -> None:
    """Write ``OUT/snapshot_<step>.weights.h5`` and its manifest; ``metrics``: the validation
    Dice measured at this step, or None."""
    out = Path(cfg.out) / f"snapshot_{state.step}"
    export_weights(model, cfg.model_config(), f"{out}.weights.h5", dist.is_chief)
    if dist.is_chief:
        manifest = make_manifest(cfg, dist, state, data) | {"validation_patch_dice": metrics}
        write_text(f"{out}.json", json.dumps(manifest, indent=1))


def make_manifest(cfg: TrainConfig, dist: Distribution, state: RunState, data: dict | None) -> dict:
    """The run's manifest (``model.json``); ``config`` and ``standardize`` are what
    ``load_pretrained`` and ``predict_volume`` read."""
    import keras

    return {
        "config": cfg.model_config(),
        "standardize": cfg.standardize,
        "augment": cfg.augment,
        "augmentation": PROBABILITIES[cfg.augment],
        "outputs": cfg.outputs,
        "loss": LOSS_NAMES[cfg.loss],
        "output_bias_init": OUTPUT_BIAS,
        "schedule": f"linear warm-up {cfg.warmup} steps, cosine decay to lr/20"
        + (f" over {cfg.max_seconds:.0f} s" if cfg.max_seconds else ""),
        "steps": state.step,
        "seed": cfg.seed,
        "precision": POLICIES[cfg.precision],
        "precision_choice": state.precision_choice,
        "training": cfg.asdict(),
        "distribution": dist.record(),
        "timings": timings(state, dist),
        "train_seconds": round(state.elapsed(), 1),
        "keras": keras.__version__,
        "machine": platform.node() or "unknown",
        "git_commit": git_commit(),
        "validation_patch_dice": state.metrics,
        "threshold": 0.5,
        "data": data or {},
    }


def train(
    cfg: TrainConfig,
    source: Any,
    valid: Callable[[], Iterable] | None = None,
    *,
    data: dict | None = None,
    resume: bool = False,
    verbose: bool = True,
) -> dict:
    """Train ``unet_model_3d(**cfg.model_config())`` for ``cfg.steps`` steps; returns the manifest.

    source: ``batch(step, rows) -> (x (b, 4, X, Y, Z), y (b, 3, X, Y, Z))`` float32 (a
        ``StoreBatches`` or ``MemoryBatches`` with ``batch_size == cfg.batch_size``).
    valid: returns an iterable of ``(x, y)`` validation batches (mean patch Dice per class,
        threshold 0.5), evaluated every ``cfg.eval_every`` steps and at the end.
    data: the manifest's description of the training data.
    resume: continue from ``cfg.out/checkpoint`` when there is one.
    Under JAX with several devices the run is data-parallel (``setup_distribution``); only
    process 0 of a multi-host run writes files. Writes ``model.weights.h5``, ``model.json``,
    ``log.csv`` and ``checkpoint/`` in ``cfg.out``.
    """
    out = Path(cfg.out)
    seed_everything(cfg.seed)
    dist = setup_distribution(cfg.devices, cfg.batch_size)
    if dist.is_chief:
        out.mkdir(parents=True, exist_ok=True)
    cfg, precision_choice = resolve_precision(cfg, dist)
    if verbose and dist.is_chief:
        print(
            f"training on {dist.devices} {dist.device_kind} device(s), {dist.hosts} host(s), "
            f"{dist.backend} backend, global batch {cfg.batch_size}, precision {cfg.precision} "
            f"({precision_choice['requested']} requested)",
            flush=True,
        )
    if dist.hosts > 1 and valid is not None:
        valid = None  # validation predicts on one host; score the result with `tumorseg evaluate`
    try:
        model = build_model(cfg)
        state = resume_or_start(model, out, resume, dist.is_chief, verbose)
        state.precision_choice = precision_choice
        run_steps(model, cfg, source, dist, state, valid, verbose, data)
        if valid is not None:
            state.metrics = evaluate_batches(
                model, valid(), multiple=dist.devices, outputs=cfg.outputs
            )
        manifest = make_manifest(cfg, dist, state, data)
        export_weights(model, cfg.model_config(), out / "model.weights.h5", dist.is_chief)
        if dist.is_chief:
            if valid is not None:
                log_row(
                    out / "log.csv", state.step, state.elapsed(), state.loss, metrics=state.metrics
                )
            write_text(out / "model.json", json.dumps(manifest, indent=1))
    finally:
        clear_distribution()
    if verbose and dist.is_chief:
        t = manifest["timings"]
        print(
            f"wrote {out / 'model.weights.h5'} after {state.step} steps "
            f"({t['seconds_per_step']} s/step, {t['patches_per_second']} patches/s); "
            f"validation Dice {state.metrics}"
        )
    return manifest

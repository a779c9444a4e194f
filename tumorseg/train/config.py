"""``TrainConfig``: every setting of one training run, frozen; its ``asdict`` is the manifest's record."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from tumorseg.contract import DEFAULT_OUTPUTS, DEFAULT_STANDARDIZE, PATCH_SIZE, Outputs
from tumorseg.hardware import native_bf16
from tumorseg.patches.augment import Augment
from tumorseg.patches.standardize import MODES


class Precision(str, Enum):
    """Training precision: ``auto`` picks one of the other two per machine (:func:`choose_precision`)."""

    AUTO = "auto"
    FLOAT32 = "float32"
    BF16 = "bf16"


class DiceReduction(str, Enum):
    """How the training loss's soft Dice reduces a batch: one Dice per sample and class,
    averaged (``sample``, ``per_sample(dice_bce_loss)``), or one Dice per class over the whole
    batch and its voxels together (``batch``, ``batch_dice_bce_loss``; nnU-Net's BraTS choice)."""

    SAMPLE = "sample"
    BATCH = "batch"


#: The manifest's words for the loss of each reduction.
LOSS_NAMES = {
    DiceReduction.SAMPLE.value: "soft Dice + binary cross-entropy, per sample",
    DiceReduction.BATCH.value: "soft Dice + binary cross-entropy, batch Dice",
}


#: The Keras dtype policy of each concrete precision.
POLICIES = {Precision.FLOAT32.value: "float32", Precision.BF16.value: "mixed_bfloat16"}


def choose_precision(requested: str, cpu_flags: Iterable[str], accelerator: bool) -> str:
    """The concrete precision (``"float32"`` or ``"bf16"``) for ``requested``.

    An explicit ``float32`` or ``bf16`` is kept.  ``auto`` gives ``bf16`` on an accelerator
    (``accelerator``: a GPU or TPU trains) or on a CPU whose ``cpu_flags`` include native
    bfloat16 arithmetic (AVX512-BF16 or AMX), where ``mixed_bfloat16`` is about 2x faster; on
    any other CPU (AVX2 only, Apple Silicon) bfloat16 is emulated and ``auto`` gives float32.
    """
    requested = Precision(requested)
    if requested is not Precision.AUTO:
        return requested.value
    if accelerator or native_bf16(set(cpu_flags)):
        return Precision.BF16.value
    return Precision.FLOAT32.value


@dataclass(frozen=True)
class TrainConfig:
    """The settings of a training run (what ``tumorseg train`` takes as flags).

    data: the patch store folder (``None`` when the batches come from memory).
    out: output folder: ``model.weights.h5``, ``model.json``, ``log.csv``, ``checkpoint/``.
    steps: optimizer steps; batch_size: the GLOBAL batch, split evenly across ``devices``.
    patch_size: ``(X, Y, Z)`` of the training patches; the model's input is ``(4, X, Y, Z)``.
    lr: peak Adam learning rate, reached after ``warmup`` steps, then cosine decay to ``lr/20``.
    clip_norm: clip each step's gradients to this global L2 norm (None: no clipping; nnU-Net
    clips at 12), against a loss that jumps when a high learning rate meets an unusual batch.
    precision: a ``Precision``: "float32", "bf16" (mixed bfloat16: float32 weights, bfloat16
    compute) or "auto" (``train`` picks one for the machine, see ``choose_precision``).
    standardize: "brain" or "slice" (see ``standardize_patch``); augment: an ``Augment`` level.
    loss: a ``DiceReduction``: the soft Dice of the Dice + cross-entropy loss per sample or
    over the batch.
    outputs: an ``Outputs`` kind: the model learns the tumour classes (the course's model) or
    the nested BraTS regions (``classes_to_regions`` of the class targets).
    init_weights: start from these ``.weights.h5`` (fine-tuning) instead of a fresh model.
    max_seconds: stop and save after this much training time; the schedule then follows time.
    eval_every: validate every N steps (0: only at the end); max_valid: validation patches.
    checkpoint_every: write ``checkpoint/`` every N steps (and at the end).
    snapshot_steps: also keep ``snapshot_<step>.weights.h5`` at these steps.
    devices: data-parallel devices (JAX backend); None: all visible devices.
    workers: input workers that read and augment batches ahead of the steps;
    processes: make them spawned processes (no GIL, for fast devices) instead of threads.
    """

    out: str
    data: str | None = None
    steps: int = 1000
    batch_size: int = 1
    seed: int = 0
    n_base_filters: int = 16
    patch_size: tuple[int, int, int] = PATCH_SIZE
    lr: float = 3e-4
    warmup: int = 50
    clip_norm: float | None = None
    precision: str = Precision.FLOAT32.value
    standardize: str = DEFAULT_STANDARDIZE
    augment: str = Augment.FLIP.value
    outputs: str = DEFAULT_OUTPUTS.value
    loss: str = DiceReduction.SAMPLE.value
    init_weights: str | None = None
    max_seconds: float | None = None
    eval_every: int = 0
    max_valid: int = 32
    checkpoint_every: int = 50
    snapshot_steps: tuple[int, ...] = ()
    devices: int | None = None
    workers: int = 2
    processes: bool = False

    def __post_init__(self) -> None:
        # normalise list-valued fields (from JSON or argparse) to tuples; frozen, so via object
        object.__setattr__(self, "patch_size", tuple(int(v) for v in self.patch_size))
        object.__setattr__(self, "snapshot_steps", tuple(int(v) for v in self.snapshot_steps))
        object.__setattr__(self, "augment", Augment(self.augment).value)
        object.__setattr__(self, "precision", Precision(self.precision).value)
        object.__setattr__(self, "outputs", Outputs(self.outputs).value)
        object.__setattr__(self, "loss", DiceReduction(self.loss).value)
        problems = []
        if self.steps < 1:
            problems.append(f"steps must be >= 1 (got {self.steps})")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1 (got {self.batch_size})")
        if self.devices is not None and self.devices < 1:
            problems.append(f"devices must be >= 1 (got {self.devices})")
        if self.standardize not in MODES:
            problems.append(f"standardize must be one of {MODES} (got {self.standardize!r})")
        if len(self.patch_size) != 3:
            problems.append(f"patch_size must be (X, Y, Z) (got {self.patch_size})")
        if self.clip_norm is not None and not self.clip_norm > 0:
            problems.append(f"clip_norm must be > 0 (got {self.clip_norm})")
        if self.workers < 1:
            problems.append(f"workers must be >= 1 (got {self.workers})")
        if problems:
            raise ValueError("TrainConfig: " + "; ".join(problems))

    def model_config(self) -> dict:
        """The ``unet_model_3d`` keyword arguments (the manifest's ``config``, which
        ``load_pretrained`` rebuilds the architecture from)."""
        return {"n_base_filters": self.n_base_filters, "input_shape": [4, *self.patch_size]}

    def asdict(self) -> dict:
        """All settings as a JSON-ready dict (tuples become lists)."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    def replace(self, **changes) -> TrainConfig:
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

"""``tumorseg train``: flags -> ``TrainConfig``, the patch store -> batches, then ``train``.

The same command runs on the CPU, on one GPU and data-parallel on several (JAX backend)::

    tumorseg train --data data/BraTS-Data/processed --out runs/cpu --steps 1000
    KERAS_BACKEND=jax tumorseg train --data ... --out runs/gpu --precision bf16 --batch-size 8 \\
        --workers 8 --processes
    # two hosts: the same command on each, with
    KERAS_DISTRIBUTION_JOB_ADDRESSES=host0:1234 KERAS_DISTRIBUTION_NUM_PROCESSES=2 \\
        KERAS_DISTRIBUTION_PROCESS_ID=<0 or 1> KERAS_BACKEND=jax tumorseg train ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tumorseg.contract import PATCH_SIZE, STANDARDIZE_MODES, Outputs
from tumorseg.data import DataError
from tumorseg.errors import fail
from tumorseg.patches.augment import Augment
from tumorseg.patches.store import read_store
from tumorseg.train.config import DiceReduction, Precision, TrainConfig
from tumorseg.train.data import StoreBatches, store_validation
from tumorseg.train.distribute import initialize_hosts


def parser() -> argparse.ArgumentParser:
    """The flags of ``tumorseg train``."""
    d = TrainConfig(out="")
    p = argparse.ArgumentParser(
        prog="tumorseg train",
        description="train the 3D U-Net on a patch "
        "store, on the CPU, one GPU or data-parallel on several (JAX)",
    )
    p.add_argument(
        "--data", required=True, help="patch store folder with config.json, train/, valid/"
    )
    p.add_argument(
        "--out", required=True, help="output folder (weights, manifest, log, checkpoint)"
    )
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--n-base-filters", type=int, default=d.n_base_filters)
    p.add_argument(
        "--batch-size",
        type=int,
        default=d.batch_size,
        help="global batch, split evenly across the devices",
    )
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (Adam)")
    p.add_argument("--warmup", type=int, default=d.warmup, help="linear warm-up steps")
    p.add_argument(
        "--clip-norm",
        type=float,
        default=d.clip_norm,
        metavar="NORM",
        help="clip each step's gradients to this global L2 norm (default: no clipping; "
        "nnU-Net uses 12)",
    )
    p.add_argument(
        "--loss",
        choices=[v.value for v in DiceReduction],
        default=d.loss,
        help="the soft Dice of the Dice + cross-entropy loss: per sample (default; one Dice per "
        "patch and region, averaged) or batch (one Dice per region over the whole batch, "
        "nnU-Net's BraTS choice)",
    )
    p.add_argument(
        "--precision",
        choices=[v.value for v in Precision],
        default=Precision.AUTO.value,
        help="auto (default): mixed bfloat16 on a GPU or a CPU with native bf16 (AVX512-BF16 "
        "or AMX), else float32; the manifest records the choice and the CPU's flags",
    )
    p.add_argument(
        "--bf16",
        dest="precision",
        action="store_const",
        const=Precision.BF16.value,
        help="same as --precision bf16",
    )
    p.add_argument(
        "--outputs",
        choices=[v.value for v in Outputs],
        default=d.outputs,
        help="what the three output channels learn: the tumour classes (default) or the nested "
        "BraTS regions WT, TC, ET (nnU-Net's region-based training); the manifest records it",
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    p.add_argument("--standardize", choices=STANDARDIZE_MODES, default=d.standardize)
    p.add_argument(
        "--augment",
        choices=[a.value for a in Augment],
        default=d.augment,
        help="augmentation level: none, flip (flips and mild jitter, default), strong (also "
        "scanner-like changes of the raw intensities), spatial (strong plus small in-plane "
        "rotations and scaling) or domain (spatial plus simulated low resolution, a stronger "
        "blur of all channels, multiplicative noise, contrast and brightness); the manifest "
        "records each draw's probability",
    )
    p.add_argument("--no-augment", action="store_true", help="same as --augment none")
    p.add_argument(
        "--init-weights",
        default=None,
        help="start from these .weights.h5 (fine-tuning) instead of a fresh model",
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="stop (and save) after this much training time; the schedule follows it",
    )
    p.add_argument(
        "--eval-every",
        type=int,
        default=d.eval_every,
        help="validate every N steps (0: at the end)",
    )
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    p.add_argument(
        "--snapshot-steps",
        type=int,
        nargs="*",
        default=[],
        help="also keep OUT/snapshot_<step>.weights.h5 at these steps",
    )
    p.add_argument("--max-valid", type=int, default=d.max_valid, help="validation patches to score")
    g = p.add_argument_group("devices and input pipeline")
    g.add_argument(
        "--devices",
        type=int,
        default=None,
        help="data-parallel devices (JAX backend; default: all visible)",
    )
    g.add_argument(
        "--workers",
        type=int,
        default=d.workers,
        help="input workers reading and augmenting batches ahead of the steps",
    )
    g.add_argument(
        "--processes",
        action="store_true",
        help="run the input workers as processes (for fast GPUs) instead of threads",
    )
    h = p.add_argument_group("several hosts (or set the KERAS_DISTRIBUTION_* variables)")
    h.add_argument(
        "--job-addresses",
        default=None,
        help="coordinator host:port (process 0), e.g. 10.0.0.1:1234",
    )
    h.add_argument("--num-processes", type=int, default=None, help="number of hosts")
    h.add_argument("--process-id", type=int, default=None, help="this host's index, 0 first")
    return p


def data_record(data: Path, store: dict) -> dict:
    """The manifest's ``"data"``: the store, its split by patient and its source release."""
    return {
        "patch_store": str(data),
        "seed": store.get("seed"),
        "train_cases": store.get("train_cases"),
        "valid_cases": store.get("valid_cases"),
        "source": store.get("source"),
        "train_patches": len(store["train"]),
        "valid_patches": len(store.get("valid", [])),
    }


def config_from_args(args: argparse.Namespace, store: dict) -> TrainConfig:
    """The ``TrainConfig`` of the parsed flags; the patch size comes from the store."""
    return TrainConfig(
        out=str(args.out),
        data=str(args.data),
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        n_base_filters=args.n_base_filters,
        patch_size=tuple(store.get("patch_size", PATCH_SIZE)),
        lr=args.lr,
        warmup=args.warmup,
        clip_norm=args.clip_norm,
        precision=args.precision,
        standardize=args.standardize,
        augment=Augment.NONE.value if args.no_augment else args.augment,
        outputs=args.outputs,
        loss=args.loss,
        init_weights=args.init_weights,
        max_seconds=args.max_seconds,
        eval_every=args.eval_every,
        max_valid=args.max_valid,
        checkpoint_every=args.checkpoint_every,
        snapshot_steps=tuple(args.snapshot_steps),
        devices=args.devices,
        workers=args.workers,
        processes=args.processes,
    )


def main(argv: list[str] | None = None) -> int:
    """``tumorseg train --data DIR/processed --out DIR [--steps N] ...``; exit 2 on user errors."""
    args = parser().parse_args(argv)
    from tumorseg.train.loop import train

    try:
        initialize_hosts(args.job_addresses, args.num_processes, args.process_id)
        data = Path(args.data)
        store = read_store(data)
        cfg = config_from_args(args, store)
        if cfg.init_weights is not None and not Path(cfg.init_weights).is_file():
            raise DataError(
                f"{cfg.init_weights}: no such weights file; --init-weights takes a .weights.h5 "
                "file, e.g. a run's OUT/model.weights.h5 or the shipped "
                "tumorseg/model/weights/model_pretrained.weights.h5"
            )
        source = StoreBatches(
            data / "train",
            store["train"],
            cfg.batch_size,
            cfg.seed,
            cfg.standardize,
            cfg.augment,
            cfg.patch_size,
        )
        names = store.get("valid", [])[: cfg.max_valid]

        def valid():
            return store_validation(data / "valid", names, 4, cfg.standardize, cfg.patch_size)

        train(
            cfg, source, valid if names else None, data=data_record(data, store), resume=args.resume
        )
    except (DataError, ValueError) as exc:
        fail("tumorseg train", exc)
    return 0

"""Training: a seeded, resumable loop with CSV log, checkpoints and a JSON manifest."""

from tumorseg.train.loop import (
    GeneratorBatches,
    MemoryBatches,
    evaluate_batches,
    hard_dice_per_class,
    train,
)

__all__ = ["train", "MemoryBatches", "GeneratorBatches", "evaluate_batches", "hard_dice_per_class"]

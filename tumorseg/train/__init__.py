"""Training: one seeded, resumable path for the CPU, one GPU or several (data-parallel, JAX).

``TrainConfig`` holds a run's settings, ``train(cfg, source)`` runs it and writes weights and a
manifest; ``StoreBatches``/``MemoryBatches`` are the batch sources. The names are imported on
first use, so the input workers (``tumorseg.train.data``) start without a deep-learning backend.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "TrainConfig": "tumorseg.train.config",
    "MemoryBatches": "tumorseg.train.data",
    "StoreBatches": "tumorseg.train.data",
    "Prefetcher": "tumorseg.train.data",
    "train": "tumorseg.train.loop",
    "evaluate_batches": "tumorseg.train.loop",
    "learning_rate_at": "tumorseg.train.loop",
}

__all__ = list(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'tumorseg.train' has no attribute {name!r}")

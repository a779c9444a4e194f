"""Training batches and the input pipeline that prepares them ahead of the device steps.

Batch sources have ``batch(step, rows) -> (x (b, 4, X, Y, Z), y (b, 3, X, Y, Z))`` float32,
channels first, where ``rows`` selects part of the global batch (one host's share in a
multi-host run; ``slice(None)``: all of it). Batch ``step`` is a pure function of
``(seed, step)``: the epoch order comes from ``epoch_order`` and sample ``k`` of the global
batch draws its augmentation from ``default_rng([seed, step, 1, k])``. So a resumed run sees
the batches an uninterrupted one would, and the batches do not depend on how many workers,
devices or hosts prepare or consume them.

Nothing here imports Keras: the input workers may be spawned processes.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from tumorseg.contract import DEFAULT_STANDARDIZE, PATCH_SIZE
from tumorseg.patches.augment import Augment, augment, epoch_order
from tumorseg.patches.reader import load_sample


def _sample_rng(seed: int, step: int, k: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(step), 1, int(k)])


class MemoryBatches:
    """Batches from patches held in memory.

    x: ``(N, C, X, Y, Z)`` float32, ALREADY standardized; y: ``(N, classes, X, Y, Z)`` float32
    (no background); brain: optional ``(N, C, X, Y, Z)`` bool mask of the brain voxels (where
    the intensity jitter applies; default ``x != 0``); level: an ``Augment`` level (True: FLIP).
    """

    def __init__(
        self, x, y, batch_size: int, seed: int = 0, augment: bool | str = True, brain=None
    ):
        self.x, self.y, self.brain = x, y, brain
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.level = Augment.FLIP if augment is True else Augment(augment or Augment.NONE)
        self.per_epoch = max(1, len(x) // self.batch_size)

    def batch(self, step: int, rows: slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``rows`` of the global batch of step ``step``: ``(x (b, C, ...), y (b, K, ...))``."""
        epoch, i = divmod(step, self.per_epoch)
        order = epoch_order(self.seed, epoch, len(self.x))
        ids = order[i * self.batch_size : (i + 1) * self.batch_size]
        xs, ys = [], []
        for k in range(self.batch_size)[rows]:
            j = ids[k]
            x, y = self.x[j], self.y[j]
            if self.level is not Augment.NONE:
                brain = self.brain[j] if self.brain is not None else x != 0
                x, y = augment(x, y, brain, _sample_rng(self.seed, step, k), self.level)
            xs.append(x)
            ys.append(y)
        return np.stack(xs).astype(np.float32), np.stack(ys).astype(np.float32)


class StoreBatches:
    """Batches read from the h5 patch store ``folder/<name>`` (see ``tumorseg patches``).

    Each sample is ``load_sample`` of its file: standardized with ``standardize`` and augmented
    at ``level``. Picklable (paths and settings only), so spawned workers can load batches.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        names: Sequence[str],
        batch_size: int,
        seed: int = 0,
        standardize: str = DEFAULT_STANDARDIZE,
        level: str = Augment.FLIP.value,
        dim: Sequence[int] = PATCH_SIZE,
    ):
        if len(names) < batch_size:
            raise ValueError(
                f"{folder}: {len(names)} patches, fewer than one batch of {batch_size}"
            )
        self.folder, self.names = Path(folder), list(names)
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.standardize, self.level, self.dim = standardize, Augment(level), tuple(dim)
        self.per_epoch = len(self.names) // self.batch_size

    def batch(self, step: int, rows: slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``rows`` of the global batch of step ``step``: ``(x (b, 4, ...), y (b, 3, ...))``."""
        epoch, i = divmod(step, self.per_epoch)
        order = epoch_order(self.seed, epoch, len(self.names))
        ids = order[i * self.batch_size : (i + 1) * self.batch_size]
        pairs = [
            load_sample(
                self.folder / self.names[ids[k]],
                _sample_rng(self.seed, step, k),
                dim=self.dim,
                standardize=self.standardize,
                level=self.level,
            )
            for k in range(self.batch_size)[rows]
        ]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def store_validation(
    folder: str | os.PathLike,
    names: Sequence[str],
    chunk: int,
    standardize: str = DEFAULT_STANDARDIZE,
    dim: Sequence[int] = PATCH_SIZE,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The validation patches ``folder/<name>``, unaugmented, in chunks of ``chunk``:
    ``(x (b, 4, X, Y, Z), y (b, 3, X, Y, Z))`` (read on each call, never all held at once)."""
    for i in range(0, len(names), chunk):
        pairs = [
            load_sample(Path(folder) / n, dim=tuple(dim), standardize=standardize)
            for n in names[i : i + chunk]
        ]
        yield np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


# --- the input pipeline ------------------------------------------------------------------------

_WORKER_SOURCE: Any = None


def _init_worker(source: Any) -> None:
    global _WORKER_SOURCE
    _WORKER_SOURCE = source


def _timed_batch(source: Any, step: int, rows: slice) -> tuple[np.ndarray, np.ndarray, float]:
    t = time.perf_counter()
    x, y = source.batch(step, rows)
    return x, y, time.perf_counter() - t


def _worker_batch(step: int, rows: slice) -> tuple[np.ndarray, np.ndarray, float]:
    return _timed_batch(_WORKER_SOURCE, step, rows)


class Prefetcher:
    """Prepares the batches of ``steps`` in ``workers`` threads or spawned processes, in order.

    Up to ``2 * workers`` batches are in flight, so reading and augmenting overlap the device
    steps. ``get(step)`` returns ``(x, y)`` and counts the time the caller waited for it
    (``wait_seconds``) and the time the workers spent preparing (``work_seconds``), from which
    ``worker_rate`` gives the patches per second one worker prepares.
    """

    def __init__(
        self,
        source: Any,
        steps: range,
        workers: int = 2,
        processes: bool = False,
        rows: slice = slice(None),
    ):
        self.steps, self.rows, self.workers = steps, rows, max(1, workers)
        self.depth = 2 * self.workers
        self.pool: Executor
        if processes:
            ctx = multiprocessing.get_context("spawn")  # never fork a process that runs XLA
            self.pool = ProcessPoolExecutor(
                self.workers, mp_context=ctx, initializer=_init_worker, initargs=(source,)
            )
            self._call = (_worker_batch,)
        else:
            self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="tumorseg-input")
            self._call = (_timed_batch, source)
        self.pending: dict[int, Future] = {}
        self.wait_seconds = self.work_seconds = 0.0
        self.patches = 0
        self._next = steps.start
        self._fill()

    def _fill(self) -> None:
        while self._next < self.steps.stop and len(self.pending) < self.depth:
            self.pending[self._next] = self.pool.submit(*self._call, self._next, self.rows)
            self._next += 1

    def get(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """The batch of ``step`` (steps must be asked for in order)."""
        t = time.perf_counter()
        x, y, seconds = self.pending.pop(step).result()
        self.wait_seconds += time.perf_counter() - t
        self.work_seconds += seconds
        self.patches += len(x)
        self._fill()
        return x, y

    def worker_rate(self) -> float | None:
        """Patches per second one worker prepared, on average (None before the first batch)."""
        return self.patches / self.work_seconds if self.work_seconds else None

    def close(self) -> None:
        """Stop the workers; batches still in flight are dropped."""
        self.pool.shutdown(wait=False, cancel_futures=True)

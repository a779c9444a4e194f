"""``VolumeDataGenerator``: a Keras ``PyDataset`` over the h5 patch store."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import keras
import numpy as np

from tumorseg.contract import DEFAULT_STANDARDIZE, PATCH_SIZE
from tumorseg.patches.augment import Augment
from tumorseg.patches.reader import load_sample, read_patch

__all__ = ["VolumeDataGenerator", "read_patch"]


class VolumeDataGenerator(keras.utils.PyDataset):
    """Batches of standardized patches from ``base_dir/<ID>`` h5 files, for ``model.fit``.

    sample_list: file names (as in ``config.json``'s "train"/"valid"); base_dir: their folder
        (with or without a trailing slash).
    Each batch is ``(x, y)``: x ``(B, num_channels, *dim)`` float32 standardized with
    ``standardize_patch(x, standardize)`` ("brain", the default and the shipped model's;
    "slice", the course exercise's per-slice formula; or ``contract.RAW`` ("none", None also
    accepted) for raw intensities), and
    y ``(B, num_classes, *dim)`` float32 = the file's one-hot y moved channels-first without its
    background channel.  ``len`` is ``floor(n / batch_size)``; with ``shuffle`` the order is
    redrawn every epoch (reproducibly from ``seed``).  ``augment`` is an ``Augment`` level
    (``True`` means ``Augment.FLIP``): random flips along x and y and a per-channel intensity
    jitter of the brain voxels; ``Augment.STRONG`` adds scanner-like changes of the raw
    intensities before standardization (see ``tumorseg.patches.augment``).
    Extra keyword arguments (``workers``, ``use_multiprocessing``, ``max_queue_size``) go to
    ``keras.utils.PyDataset``.
    """

    def __init__(
        self,
        sample_list: Sequence[str],
        base_dir: str | os.PathLike,
        batch_size: int = 1,
        shuffle: bool = True,
        dim: tuple[int, int, int] = PATCH_SIZE,
        num_channels: int = 4,
        num_classes: int = 3,
        verbose: int = 1,
        standardize: str | None = DEFAULT_STANDARDIZE,
        augment: bool | Augment | str = False,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.sample_list = list(sample_list)
        self.base_dir = os.fspath(base_dir)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.dim = tuple(dim)
        self.num_channels = num_channels
        self.num_classes = num_classes
        self.verbose = verbose
        self.standardize = standardize
        self.augment = Augment.FLIP if augment is True else Augment(augment or Augment.NONE)
        self.rng = np.random.default_rng(seed)
        self.indexes = np.arange(len(self.sample_list))
        self.on_epoch_end()

    def __len__(self) -> int:
        return math.floor(len(self.sample_list) / self.batch_size)

    def on_epoch_end(self) -> None:
        """Redraw the sample order (when ``shuffle``)."""
        if self.shuffle:
            self.rng.shuffle(self.indexes)

    def load(
        self, sample_id: str, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """One sample: x ``(num_channels, *dim)`` standardized float32, y ``(num_classes, *dim)``.

        rng: the generator for the augmentation draws (default: this dataset's own).
        """
        path = os.path.join(self.base_dir, sample_id)
        if self.verbose == 1:
            print(f"Training on: {path}")
        return load_sample(
            path,
            self.rng if rng is None else rng,
            dim=self.dim,
            num_channels=self.num_channels,
            num_classes=self.num_classes,
            standardize=self.standardize,
            level=self.augment,
        )

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``index``: ``(x (B, C, *dim) float32, y (B, classes, *dim) float32)``."""
        ids = self.indexes[index * self.batch_size : (index + 1) * self.batch_size]
        if len(ids) == 1:  # no copy into a fresh batch array
            x, y = self.load(self.sample_list[ids[0]])
            return x[None], y[None]
        X = np.empty((len(ids), self.num_channels, *self.dim), np.float32)
        Y = np.empty((len(ids), self.num_classes, *self.dim), np.float32)
        for i, j in enumerate(ids):
            X[i], Y[i] = self.load(self.sample_list[j])
        return X, Y

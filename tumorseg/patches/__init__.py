"""Patches: standardization, tumor-biased sub-volume sampling, the h5 patch store, the generator.

Layouts: images ``(X, Y, Z, C)`` in, patches ``x (C, *PATCH_SIZE)`` channels-first and
``y (*PATCH_SIZE, 4)`` one-hot (course h5 format; ``tumorseg.contract.PATCH_SIZE``) on disk, ``(B, C, X, Y, Z)`` batches out.
``VolumeDataGenerator`` (which needs Keras) is imported on first use, so the numpy-only parts
(``tumorseg patches``, sampling in worker processes) start without loading a DL backend.
"""

from tumorseg.patches.sampling import Patch, one_hot, sample_patch
from tumorseg.patches.standardize import standardize_patch
from tumorseg.patches.store import build_patch_store, split_cases

__all__ = [
    "VolumeDataGenerator",
    "read_patch",
    "standardize_patch",
    "sample_patch",
    "one_hot",
    "Patch",
    "build_patch_store",
    "split_cases",
]


def __getattr__(name: str):
    if name in ("VolumeDataGenerator", "read_patch"):
        from tumorseg.patches import generator

        return getattr(generator, name)
    raise AttributeError(f"module 'tumorseg.patches' has no attribute {name!r}")

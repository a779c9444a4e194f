"""Read NIfTI cases into numpy arrays, validating them on the way.

Arrays come back exactly as the original course built them, ``np.array(nib.load(p).get_fdata())``:
image ``(X, Y, Z, 4)`` float64 with channels FLAIR, T1, T1Gd, T2 (last axis), and label
``(X, Y, Z)`` float64 with values 0 background, 1 edema, 2 non-enhancing tumor, 3 enhancing tumor.
No reorientation and no resampling is applied; sizes are not fixed (MSD/BraTS use 240x240x155).
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from tumorseg.data.errors import DataError

N_CHANNELS = 4
MODALITIES = ("FLAIR", "T1", "T1Gd", "T2")
LABEL_VALUES = (0, 1, 2, 3)
#: Raw BraTS 2020/2021 label codes -> MSD/course codes (NCR/NET 1 -> 2, edema 2 -> 1, ET 4 -> 3).
BRATS_LABEL_MAP = {0: 0, 1: 2, 2: 1, 4: 3}

PathLike = str | os.PathLike


def _read_nifti(path: PathLike, what: str) -> np.ndarray:
    """Read a NIfTI file's data as float64 (``get_fdata``), turning every failure into DataError.

    ``what`` describes the file's role in messages (e.g. "image", "label", "FLAIR image").
    Returns an array of whatever shape the file holds.
    """
    import nibabel as nib  # lazy: nibabel pulls in a fair amount on import

    p = Path(path)
    if not p.is_file():
        hint = "" if p.parent.is_dir() else f" (its folder {p.parent} does not exist either)"
        raise DataError(
            f"{p}: {what} file not found{hint}. Check the path, or rebuild the sample data "
            f"with `make data` / fetch the real data with `tumorseg download --dest DIR`."
        )
    if p.name.endswith(".gz"):
        with open(p, "rb") as f:
            magic = f.read(2)
        if magic != b"\x1f\x8b":
            raise DataError(
                f"{p}: {what} file is named .gz but is not gzip-compressed (it starts with "
                f"{magic!r}); it is corrupt or mislabelled. Delete it and download or regenerate "
                f"it, or rename it to .nii if it is an uncompressed NIfTI."
            )
    try:
        img = nib.load(str(p))
        data = np.asarray(img.get_fdata(), dtype=np.float64)
    except MemoryError:
        raise
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(
            f"{p}: {what} file is not a valid gzip stream ({type(exc).__name__}: {exc}); "
            f"it is probably truncated or corrupt. Delete it and download or regenerate it."
        ) from exc
    except Exception as exc:  # nibabel raises a zoo of types for a bad header or short data
        raise DataError(
            f"{p}: {what} file is not a readable NIfTI image ({type(exc).__name__}: {exc}). "
            f"Delete it and download or regenerate it; files must be .nii or .nii.gz NIfTI-1/2."
        ) from exc
    return data


def _check_finite(arr: np.ndarray, path: PathLike, what: str) -> None:
    """Raise DataError when ``arr`` holds NaN or +-inf (any shape)."""
    finite = np.isfinite(arr)
    if not finite.all():
        n_bad = int(finite.size - np.count_nonzero(finite))
        raise DataError(
            f"{path}: {what} contains {n_bad} NaN or infinite value(s). "
            f"Fix or regenerate the file (e.g. replace them with 0 outside the brain)."
        )


def _check_label_values(
    label: np.ndarray, path: PathLike, allowed: tuple[int, ...] = LABEL_VALUES
) -> None:
    """Raise DataError unless every voxel of ``label`` (any shape) is one of ``allowed``."""
    ok = np.isin(label, np.asarray(allowed, dtype=label.dtype))
    if not ok.all():
        bad = np.unique(label[~ok])
        shown = ", ".join(f"{v:g}" for v in bad[:8]) + (" ..." if bad.size > 8 else "")
        raise DataError(
            f"{path}: label holds value(s) {shown} outside {{{', '.join(map(str, allowed))}}}. "
            f"Expected 0 background, 1 edema, 2 non-enhancing tumor, 3 enhancing tumor"
            + (" (raw BraTS codes 0, 1, 2, 4)" if 4 in allowed else "")
            + "; pass the right label file, or remap its codes first."
        )


def check_image(image: np.ndarray, path: PathLike) -> None:
    """Validate an image ``(X, Y, Z, 4)`` read from ``path``: ndim, channel count, finiteness."""
    if image.ndim != 4:
        raise DataError(
            f"{path}: image has {image.ndim} dimension(s) {image.shape}; expected 4 "
            f"(X, Y, Z, {N_CHANNELS}) with channels {', '.join(MODALITIES)}. "
            f"Pass the 4-channel image file, not a single modality or a label file."
        )
    if image.shape[-1] != N_CHANNELS:
        raise DataError(
            f"{path}: image has {image.shape[-1]} channel(s) {image.shape}; expected "
            f"{N_CHANNELS} ({', '.join(MODALITIES)}) on the last axis. "
            f"Stack the four modalities in that order (BraTS folders are stacked by open_dataset)."
        )
    _check_finite(image, path, "image")


def check_label(label: np.ndarray, path: PathLike, spatial_shape: tuple[int, ...]) -> None:
    """Validate a label ``(X, Y, Z)`` read from ``path`` against the image's ``(X, Y, Z)``."""
    if label.ndim != 3:
        raise DataError(
            f"{path}: label has {label.ndim} dimension(s) {label.shape}; expected 3 (X, Y, Z) "
            f"holding class codes 0..3. Pass the label (segmentation) file, not an image."
        )
    if tuple(label.shape) != tuple(spatial_shape):
        raise DataError(
            f"{path}: label shape {label.shape} does not match the image's spatial shape "
            f"{tuple(spatial_shape)}. Pair each image with the label of the same case."
        )
    _check_finite(label, path, "label")
    _check_label_values(label, path)


def load_case(image_path: PathLike, label_path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Load one MSD-style case: a 4-channel image file and its label file.

    Returns ``(image, label)``: image ``(X, Y, Z, 4)`` float64, channels FLAIR, T1, T1Gd, T2;
    label ``(X, Y, Z)`` float64 with values in {0, 1, 2, 3}. (240, 240, 155) for BraTS/MSD, but
    any consistent size is accepted. Raises :class:`DataError` naming the file for a missing file,
    a corrupt gzip or NIfTI, a wrong ndim or channel count, an image/label shape mismatch,
    NaN or inf, or label values outside {0, 1, 2, 3}.
    """
    image = _read_nifti(image_path, "image")
    check_image(image, image_path)
    label = _read_nifti(label_path, "label")
    check_label(label, label_path, image.shape[:3])
    return image, label


def load_brats_case(
    modality_paths: tuple[PathLike, PathLike, PathLike, PathLike], seg_path: PathLike
) -> tuple[np.ndarray, np.ndarray]:
    """Load one BraTS 2020/2021 case from its per-modality files and segmentation.

    ``modality_paths`` are the FLAIR, T1, T1Gd (``_t1ce``) and T2 files, each ``(X, Y, Z)``.
    Returns image ``(X, Y, Z, 4)`` float64 stacked in that order and label ``(X, Y, Z)`` float64
    remapped from raw BraTS codes {0, 1, 2, 4} to course codes (1->2, 2->1, 4->3).
    """
    image: np.ndarray | None = None
    for c, (p, name) in enumerate(zip(modality_paths, MODALITIES, strict=True)):
        vol = _read_nifti(p, f"{name} image")
        if vol.ndim == 4 and vol.shape[-1] == 1:
            vol = vol[..., 0]
        if vol.ndim != 3:
            raise DataError(
                f"{p}: {name} image has {vol.ndim} dimension(s) {vol.shape}; a BraTS modality "
                f"file must be 3-D (X, Y, Z). Check that the file is the right modality."
            )
        if image is None:
            image = np.empty(vol.shape + (N_CHANNELS,), dtype=np.float64)
        elif vol.shape != image.shape[:3]:
            raise DataError(
                f"{p}: {name} image shape {vol.shape} differs from the FLAIR shape "
                f"{image.shape[:3]} ({modality_paths[0]}). All modalities of a case must be "
                f"co-registered to the same grid."
            )
        _check_finite(vol, p, f"{name} image")
        image[..., c] = vol
        del vol
    assert image is not None
    raw = _read_nifti(seg_path, "label")
    if raw.ndim != 3:
        raise DataError(
            f"{seg_path}: label has {raw.ndim} dimension(s) {raw.shape}; expected 3 (X, Y, Z). "
            f"Pass the case's _seg file."
        )
    if raw.shape != image.shape[:3]:
        raise DataError(
            f"{seg_path}: label shape {raw.shape} does not match the image's spatial shape "
            f"{image.shape[:3]}. Pair each image with the label of the same case."
        )
    _check_finite(raw, seg_path, "label")
    _check_label_values(raw, seg_path, allowed=tuple(BRATS_LABEL_MAP))
    label = np.zeros_like(raw)
    for src, dst in BRATS_LABEL_MAP.items():
        if dst:
            label[raw == src] = dst
    return image, label

"""Read NIfTI cases into numpy arrays, validating them on the way, and write label maps.

Arrays come back exactly as the original course built them, ``np.array(nib.load(p).get_fdata())``:
image ``(X, Y, Z, 4)`` float64 with channels FLAIR, T1, T1Gd, T2 (last axis), and label
``(X, Y, Z)`` float64 with values 0 background, 1 edema, 2 non-enhancing tumor, 3 enhancing tumor.
No reorientation and no resampling is applied; sizes are not fixed (MSD/BraTS use 240x240x155).

Two layouts (names in :mod:`tumorseg.labels`): MSD, one 4-channel file per case; BraTS
2020/2021, one folder per case with ``<case>_flair``, ``_t1``, ``_t1ce``, ``_t2`` (and
``_seg``) files.  Where a file exists as both ``.nii.gz`` and ``.nii``, ``find_nifti`` picks the
``.nii.gz`` one, for dataset discovery and for ``load_image`` alike.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from tumorseg.atomic import atomic_path
from tumorseg.data.errors import DataError
from tumorseg.labels import (
    BRATS_LABEL_MAP,
    BRATS_SUFFIXES,
    LABEL_VALUES,
    MODALITIES,
    N_CHANNELS,
)

#: NIfTI file extensions, in the order of preference when a file exists with both.
NIFTI_EXTENSIONS = (".nii.gz", ".nii")

PathLike = str | os.PathLike


def find_nifti(folder: PathLike, pattern: str) -> Path | None:
    """The NIfTI file of ``folder`` matching ``pattern`` + an extension, or ``None``.

    pattern: a glob without extension, e.g. ``"*_flair"``.  ``.nii.gz`` files are preferred to
    ``.nii`` ones; among several matches of one extension the first by name wins; hidden files
    (``._*`` AppleDouble copies, ``.*``) are ignored.
    """
    folder = Path(folder)
    for ext in NIFTI_EXTENSIONS:
        hits = sorted(p for p in folder.glob(pattern + ext) if not p.name.startswith("."))
        if hits:
            return hits[0]
    return None


def _read_nifti(path: PathLike, what: str) -> np.ndarray:
    """Read a NIfTI file's data as float64 (``get_fdata``), turning every failure into DataError.

    ``what`` describes the file's role in messages (e.g. "image", "label", "FLAIR image").
    Returns an array of whatever shape the file holds.
    """
    return _read_nifti_image(path, what)[0]


def _read_nifti_image(path: PathLike, what: str) -> tuple[np.ndarray, Any]:
    """``_read_nifti`` that also returns the ``nibabel`` image (affine and header)."""
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
    return data, img


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


def check_label(
    label: np.ndarray,
    path: PathLike,
    spatial_shape: tuple[int, ...],
    allowed: tuple[int, ...] = LABEL_VALUES,
) -> None:
    """Validate a label ``(X, Y, Z)`` read from ``path`` against the image's ``(X, Y, Z)``.

    allowed: the codes the file may hold (course codes 0..3, or raw BraTS codes 0, 1, 2, 4).
    """
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
    _check_label_values(label, path, allowed)


def _brats_to_course(raw: np.ndarray) -> np.ndarray:
    """Raw BraTS codes {0, 1, 2, 4} -> course codes (1->2, 2->1, 4->3), same shape and dtype."""
    label = np.zeros_like(raw)
    for src, dst in BRATS_LABEL_MAP.items():
        if dst:
            label[raw == src] = dst
    return label


def load_label_map(
    path: PathLike, brats_codes: bool = False, spatial_shape: tuple[int, ...] | None = None
) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Read one label map (a saved prediction, or a case's label file) and its voxel size.

    brats_codes: the file holds raw BraTS codes {0, 1, 2, 4} (a BraTS ``*_seg`` file); they
        are remapped to course codes.
    spatial_shape: the ``(X, Y, Z)`` of the case's image, which the label must match (None:
        any shape).
    Returns ``(label, spacing)``: label ``(X, Y, Z)`` float64 with course codes 0 background,
    1 edema, 2 non-enhancing, 3 enhancing; spacing, the voxel size in mm along X, Y, Z from the
    header.  Raises DataError naming the file for a missing or unreadable file, a wrong ndim
    or shape, NaN/inf, or values outside the codes.
    """
    label, img = _read_nifti_image(path, "label")
    allowed = tuple(BRATS_LABEL_MAP) if brats_codes else LABEL_VALUES
    check_label(label, path, label.shape[:3] if spatial_shape is None else spatial_shape, allowed)
    zooms = img.header.get_zooms()
    spacing = (float(zooms[0]), float(zooms[1]), float(zooms[2]))
    return (_brats_to_course(label) if brats_codes else label), spacing


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
    label, _ = load_label_map(label_path, spatial_shape=image.shape[:3])
    return image, label


def brats_modality_files(folder: PathLike) -> tuple[Path, Path, Path, Path]:
    """The FLAIR, T1, T1Gd, T2 files (``*_flair``, ``*_t1``, ``*_t1ce``, ``*_t2``) of a BraTS
    case folder, chosen by ``find_nifti``.  Raises DataError naming the first missing one."""
    folder = Path(folder)
    files = []
    for suffix in BRATS_SUFFIXES:
        found = find_nifti(folder, f"*_{suffix}")
        if found is None:
            raise DataError(
                f"{folder / (folder.name + '_' + suffix + '.nii.gz')}: missing. A BraTS case "
                f"folder needs *_flair, *_t1, *_t1ce and *_t2 .nii.gz files (and *_seg for a "
                f"labelled case); add the missing file or leave out the incomplete folder."
            )
        files.append(found)
    return files[0], files[1], files[2], files[3]


def load_brats_image(modality_paths: tuple[PathLike, PathLike, PathLike, PathLike]) -> np.ndarray:
    """Stack the FLAIR, T1, T1Gd (``_t1ce``) and T2 files of a BraTS case, each ``(X, Y, Z)``.

    Returns image ``(X, Y, Z, 4)`` float64 in that order.  Raises DataError for an unreadable
    file, a modality that is not 3-D, modalities of different shapes, or NaN/inf.
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
    return image


def load_image(path: PathLike) -> tuple[np.ndarray, Any]:
    """Read the image of one case, without a label, and the NIfTI that describes its grid.

    path: a 4-channel NIfTI ``(X, Y, Z, 4)`` (MSD layout, channels FLAIR, T1, T1Gd, T2), or a
        BraTS 2020/2021 case folder with ``*_flair``, ``*_t1``, ``*_t1ce``, ``*_t2`` files.
    Returns ``(image, reference)``: image ``(X, Y, Z, 4)`` float64 and the ``nibabel`` image whose
    affine and header describe it (a BraTS folder's FLAIR file).  Raises DataError for a missing
    or unreadable file, a wrong shape or channel count, or NaN/inf.
    """
    import nibabel as nib

    path = Path(path)
    if path.is_dir():
        files = brats_modality_files(path)
        image = load_brats_image(files)
        reference = nib.load(str(files[0]))  # header only; the data were read above
    else:
        image, reference = _read_nifti_image(path, "image")
    check_image(image, path)
    return image, reference


def save_label_map(labels: np.ndarray, reference: Any, out: PathLike) -> Path:
    """Write ``labels`` (X, Y, Z) uint8 as NIfTI with ``reference``'s affine and header, atomically.

    reference: the ``nibabel`` image of the scan (``load_image`` returns it).  The header keeps
    its orientation (qform/sform), voxel size and units; its data type becomes uint8, its shape
    3-D, scaling is removed and the display range is 0..3.  ``out`` ending in ``.gz`` is
    compressed.  Returns ``out`` as a Path.
    """
    import nibabel as nib

    out = Path(out)
    header = reference.header.copy()
    header.set_data_shape(labels.shape)
    header.set_data_dtype(np.uint8)
    img = nib.Nifti1Image(labels.astype(np.uint8), reference.affine, header=header)
    img.header.set_slope_inter(1.0, 0.0)
    img.header["cal_min"], img.header["cal_max"] = 0, max(LABEL_VALUES)
    suffix = ".nii.gz" if out.name.endswith(".gz") else ".nii"
    with atomic_path(out, suffix=suffix) as tmp:
        nib.save(img, str(tmp))
    return out

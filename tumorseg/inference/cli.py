"""``tumorseg predict``: segment one case and write a NIfTI label map aligned with the input.

The label map is uint8 (X, Y, Z) with 0 background, 1 edema, 2 non-enhancing tumor,
3 enhancing tumor (rule: ``probabilities_to_labels``), saved with the input's affine and
header so it overlays the scan in 3D Slicer or ITK-SNAP.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from tumorseg.atomic import atomic_path
from tumorseg.data import DataError

BRATS_SUFFIXES = ("flair", "t1", "t1ce", "t2")  # stacking order: FLAIR, T1, T1Gd, T2


def _brats_modalities(folder: Path) -> list[Path]:
    """The FLAIR, T1, T1Gd, T2 files of a BraTS 2020/2021 case folder."""
    files = []
    for suffix in BRATS_SUFFIXES:
        hits = sorted(
            p
            for ext in (".nii.gz", ".nii")
            for p in folder.glob(f"*_{suffix}{ext}")
            if not p.name.startswith(".")
        )
        if not hits:
            raise DataError(
                f"{folder}: no *_{suffix}.nii.gz file. A case folder must hold the BraTS "
                f"*_flair, *_t1, *_t1ce and *_t2 files; pass such a folder or a 4-channel NIfTI."
            )
        files.append(hits[0])
    return files


def read_case_image(path: str | Path) -> tuple[np.ndarray, Any]:
    """Read the image of one case and the NIfTI whose geometry the output must share.

    Args:
        path: a 4-channel NIfTI (X, Y, Z, 4) (MSD layout, channels FLAIR, T1, T1Gd, T2), or a
            BraTS 2020/2021 case folder with *_flair, *_t1, *_t1ce, *_t2 files (the output then
            takes the FLAIR file's geometry).

    Returns:
        ``(image, reference)``: image (X, Y, Z, 4) float64 and the ``nibabel`` image whose affine
        and header describe it.  Raises DataError for a missing or unreadable file.
    """
    import nibabel as nib

    from tumorseg.data.io import _read_nifti, check_image

    path = Path(path)
    if path.is_dir():
        files = _brats_modalities(path)
        vols = []
        for f, name in zip(files, ("FLAIR", "T1", "T1Gd", "T2")):
            vol = _read_nifti(f, f"{name} image")
            vols.append(vol[..., 0] if vol.ndim == 4 and vol.shape[-1] == 1 else vol)
        shapes = {v.shape for v in vols}
        if len(shapes) != 1 or len(vols[0].shape) != 3:
            raise DataError(
                f"{path}: modality files have shapes {[v.shape for v in vols]}; they must all be "
                f"the same 3-D (X, Y, Z). Use the files of one case."
            )
        image = np.stack(vols, axis=-1)
        reference = nib.load(str(files[0]))
    else:
        image = _read_nifti(path, "image")
        reference = nib.load(str(path))
    check_image(image, path)
    return image, reference


def save_label_map(labels: np.ndarray, reference: Any, out: str | Path) -> Path:
    """Write ``labels`` (X, Y, Z) uint8 as NIfTI with ``reference``'s affine and header, atomically.

    The header keeps the reference's orientation (qform/sform), voxel size and units; its data
    type becomes uint8, its shape 3-D, scaling is removed and the display range is 0..3.
    """
    import nibabel as nib

    out = Path(out)
    header = reference.header.copy()
    header.set_data_shape(labels.shape)
    header.set_data_dtype(np.uint8)
    img = nib.Nifti1Image(labels.astype(np.uint8), reference.affine, header=header)
    img.header.set_slope_inter(1.0, 0.0)
    img.header["cal_min"], img.header["cal_max"] = 0, 3
    suffix = ".nii.gz" if out.name.endswith(".gz") else ".nii"
    with atomic_path(out, suffix=suffix) as tmp:
        nib.save(img, str(tmp))
    return out


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--weights``, ``--threshold`` and ``--standardize``, shared by predict and evaluate."""
    parser.add_argument(
        "--weights",
        default=None,
        help="*.weights.h5 with its JSON manifest beside it (default: the model shipped in the "
        "package)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="a voxel is background unless some class probability exceeds it; otherwise it "
        "takes its most probable class (default 0.5)",
    )
    parser.add_argument(
        "--standardize",
        choices=("brain", "slice"),
        default=None,
        help="override the standardization recorded in the manifest",
    )


def load_model(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Any:
    """The model of ``args.weights`` for any input size, ``args.standardize`` applied.

    ``load_pretrained`` sets ``model.standardize`` from the manifest, and ``predict_volume``
    reads it; a missing file exits with status 2 and the loader's message.
    """
    from tumorseg.model import load_pretrained

    try:
        model, _ = load_pretrained(args.weights, input_shape=(4, None, None, None))
    except FileNotFoundError as exc:
        parser.exit(2, f"{parser.prog}: {exc}\n")
    if args.standardize:
        model.standardize = args.standardize
    return model


def main(argv: list[str] | None = None) -> int:
    """``tumorseg predict CASE --weights W --out SEG.nii.gz [--threshold 0.5]``."""
    parser = argparse.ArgumentParser(
        prog="tumorseg predict",
        description="Segment one case; write a uint8 label map (0 background, 1 edema, "
        "2 non-enhancing, 3 enhancing) aligned with the input.",
    )
    parser.add_argument(
        "case", help="4-channel NIfTI (X,Y,Z,4), or a BraTS case folder (*_flair, *_t1, ...)"
    )
    parser.add_argument("--out", required=True, help="output label map, .nii.gz or .nii")
    add_model_options(parser)
    args = parser.parse_args(argv)

    from tumorseg.inference.predict import predict_volume, probabilities_to_labels

    try:
        image, reference = read_case_image(args.case)
    except DataError as exc:
        parser.exit(2, f"tumorseg predict: {exc}\n")
    model = load_model(parser, args)
    start = time.perf_counter()
    probs = predict_volume(image, model)
    labels = probabilities_to_labels(probs, args.threshold)
    out = save_label_map(labels, reference, args.out)
    counts = np.bincount(labels.ravel(), minlength=4)
    print(
        f"wrote {out}  ({time.perf_counter() - start:.1f} s; voxels: edema {counts[1]}, "
        f"non-enhancing {counts[2]}, enhancing {counts[3]})"
    )
    return 0

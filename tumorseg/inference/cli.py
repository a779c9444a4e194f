"""``tumorseg predict``: segment one case and write a NIfTI label map aligned with the input.

The label map is uint8 (X, Y, Z) with 0 background, 1 edema, 2 non-enhancing tumor,
3 enhancing tumor (rule: ``probabilities_to_labels``), saved with the input's affine and
header so it overlays the scan in 3D Slicer or ITK-SNAP.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from tumorseg.data import DataError, load_image, save_label_map
from tumorseg.errors import fail
from tumorseg.inference.postprocess import Mirror, Postprocess
from tumorseg.labels import CLASS_NAMES
from tumorseg.patches.standardize import MODES


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--weights``, ``--threshold``, ``--standardize``, ``--tta`` and ``--no-postprocess``,
    shared by predict and evaluate."""
    parser.add_argument(
        "--weights",
        default=None,
        help="*.weights.h5 with its JSON manifest beside it (default: the model shipped in the "
        "package)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="a voxel is background unless some class probability exceeds it; otherwise it "
        "takes its most probable class (default: the manifest's threshold, else 0.5)",
    )
    parser.add_argument(
        "--standardize",
        choices=MODES,
        default=None,
        help="override the standardization recorded in the manifest",
    )
    parser.add_argument(
        "--tta",
        choices=[m.value for m in Mirror],
        default=None,
        help="test-time mirroring: none, x (2 passes) or xyz (8 passes); default: the "
        "manifest's choice",
    )
    parser.add_argument(
        "--no-postprocess",
        action="store_true",
        help="skip the whole-scan clean-up recorded in the manifest (small components, "
        "a tiny enhancing region)",
    )


def load_model(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Any:
    """The model of ``args.weights`` for any input size, ``args.standardize``, ``args.tta`` and
    ``args.no_postprocess`` applied; an unset ``args.threshold`` becomes the manifest's.

    ``load_pretrained`` sets ``model.standardize``, ``model.tta`` and ``model.postprocess`` from
    the manifest, and ``predict_volume`` reads them; a missing file is a user error (``tumorseg.cli.fail``) with the loader's message.
    """
    from tumorseg.model import load_pretrained

    try:
        model, _ = load_pretrained(args.weights, input_shape=(4, None, None, None))
    except FileNotFoundError as exc:
        fail(parser.prog, exc)
    if args.threshold is None:
        args.threshold = model.threshold
    if args.standardize:
        model.standardize = args.standardize
    if args.tta:
        model.tta = args.tta
    if args.no_postprocess:
        model.postprocess = Postprocess.NONE.to_dict()
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
        image, reference = load_image(args.case)
    except DataError as exc:
        fail(parser.prog, exc)
    model = load_model(parser, args)
    start = time.perf_counter()
    probs = predict_volume(image, model, threshold=args.threshold)
    labels = probabilities_to_labels(probs, args.threshold)
    out = save_label_map(labels, reference, args.out)
    counts = np.bincount(labels.ravel(), minlength=len(CLASS_NAMES) + 1)
    voxels = ", ".join(f"{name} {n}" for name, n in zip(CLASS_NAMES, counts[1:]))
    print(f"wrote {out}  ({time.perf_counter() - start:.1f} s; voxels: {voxels})")
    return 0

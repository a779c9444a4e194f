"""Data layer: read MSD / BraTS cases as numpy arrays, with one error type for bad input.

``load_case`` and ``Case.load`` return image ``(X, Y, Z, 4)`` float64 (FLAIR, T1, T1Gd, T2)
and label ``(X, Y, Z)`` float64 (0 background, 1 edema, 2 non-enhancing, 3 enhancing).
``load_image`` reads the image of one case without a label (a 4-channel NIfTI or a BraTS case
folder), and ``save_label_map`` writes a label map on that image's grid; ``load_label_map``
reads one back (or a case's label file alone) with its voxel size.
"""

from tumorseg.data.discover import Case, Dataset, open_dataset
from tumorseg.data.errors import DataError
from tumorseg.data.io import load_case, load_image, load_label_map, save_label_map

__all__ = [
    "Case",
    "DataError",
    "Dataset",
    "load_case",
    "load_image",
    "load_label_map",
    "open_dataset",
    "save_label_map",
]

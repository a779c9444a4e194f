"""The names of the data, in one place: modalities, BraTS file names and codes, classes, regions.

Every module takes these names from here.

- Images have four channels, in the order of ``MODALITIES`` (channels-last on disk and in
  ``load_case``, channels-first for the model).
- Label maps hold ``LABEL_VALUES``: 0 background, 1 edema, 2 non-enhancing tumour (with
  necrosis), 3 enhancing tumour.  Raw BraTS 2020/2021 segmentations use other codes, mapped by
  ``BRATS_LABEL_MAP``.
- The model has one output channel per tumour class; channel ``c`` is label ``c + 1``.
  ``CLASS_KEYS`` name them in files (CSV columns, manifests), ``CLASS_NAMES`` in tables and plots.
- The BraTS evaluation regions are unions of labels (``REGIONS``).
- Label map files come in three codings (``LabelCoding``: the course's/MSD's, BraTS 2018-21's,
  BraTS 2023's); ``to_coding`` and ``from_coding`` convert course codes to and from them, and
  ``coding_fit`` checks that a map's edema code is its outer layer, as in a glioma.
"""

from __future__ import annotations

from enum import Enum

import numpy as np

#: Channel order of every image: FLAIR, T1-weighted, T1 with gadolinium, T2-weighted.
MODALITIES: tuple[str, ...] = ("FLAIR", "T1", "T1Gd", "T2")
N_CHANNELS = len(MODALITIES)

#: The same modalities as the MSD Task01 ``dataset.json`` names them (its ``modality`` field).
MSD_MODALITY_NAMES: tuple[str, ...] = ("FLAIR", "T1w", "t1gd", "T2w")

#: File-name suffixes of those modalities in a BraTS 2020/2021 case folder (``<case>_flair``, ...).
BRATS_SUFFIXES: tuple[str, ...] = ("flair", "t1", "t1ce", "t2")
#: Suffix of the segmentation file in a BraTS case folder.
BRATS_SEG_SUFFIX = "seg"
#: Raw BraTS 2020/2021 codes -> course codes (1 NCR/NET -> 2, 2 edema -> 1, 4 ET -> 3).
BRATS_LABEL_MAP: dict[int, int] = {0: 0, 1: 2, 2: 1, 4: 3}

#: Label values and what they mean.
LABEL_NAMES: dict[int, str] = {
    0: "background",
    1: "edema",
    2: "non-enhancing tumor",
    3: "enhancing tumor",
}
LABEL_VALUES: tuple[int, ...] = tuple(LABEL_NAMES)

#: The tumour classes (labels 1, 2, 3 = model output channels 0, 1, 2): keys for files ...
CLASS_KEYS: tuple[str, ...] = ("edema", "non_enhancing", "enhancing")
#: ... and names for tables and figures.
CLASS_NAMES: tuple[str, ...] = ("Edema", "Non-Enhancing Tumor", "Enhancing Tumor")
N_CLASSES = len(CLASS_KEYS)

#: BraTS evaluation regions as sets of labels: whole tumour, tumour core, enhancing tumour.
REGIONS: dict[str, tuple[int, ...]] = {"WT": (1, 2, 3), "TC": (2, 3), "ET": (3,)}


class LabelCoding(str, Enum):
    """How a label map file codes the tumour classes (its value is the command-line name).

    MSD: the course's coding, as MSD Task01 and ``tumorseg predict`` write it: 1 edema,
        2 non-enhancing tumour (with necrosis), 3 enhancing tumour.
    BRATS2021: BraTS 2018-2021 and the tools built for it: 1 necrosis/non-enhancing, 2 edema,
        4 enhancing.
    BRATS2023: BraTS 2023 onwards: 1 necrosis, 2 edema, 3 enhancing.

    Background is 0 in every coding.  ``to_coding``/``from_coding`` convert label maps.
    """

    MSD = "msd"
    BRATS2021 = "brats2021"
    BRATS2023 = "brats2023"

    @property
    def course_map(self) -> dict[int, int]:
        """File code -> course code (background included)."""
        return dict(_CODINGS[self])

    @property
    def title(self) -> str:
        """How users know it, for summary lines."""
        return _TITLES[self]


#: File code -> course code of each coding (the one table of codings).
_CODINGS: dict[LabelCoding, dict[int, int]] = {
    LabelCoding.MSD: {0: 0, 1: 1, 2: 2, 3: 3},
    LabelCoding.BRATS2021: {0: 0, 1: 2, 2: 1, 4: 3},
    LabelCoding.BRATS2023: {0: 0, 1: 2, 2: 1, 3: 3},
}
_TITLES: dict[LabelCoding, str] = {
    LabelCoding.MSD: "msd (course/MSD: 1 edema, 2 non-enhancing, 3 enhancing)",
    LabelCoding.BRATS2021: "brats2021 (BraTS 2018-21: 1 necrosis/non-enhancing, 2 edema, 4 enhancing)",
    LabelCoding.BRATS2023: "brats2023 (BraTS 2023+: 1 necrosis, 2 edema, 3 enhancing)",
}

#: The coding ``tumorseg predict`` writes and ``tumorseg score`` reads unless told otherwise.
DEFAULT_CODING = LabelCoding.MSD


def to_coding(labels: np.ndarray, coding: LabelCoding | str) -> np.ndarray:
    """A course-coded label map (any shape, codes ``LABEL_VALUES``) in ``coding``; uint8, same
    shape.  Raises ValueError on a code outside ``LABEL_VALUES``."""
    table = np.zeros(256, np.uint8)
    for file_code, course in LabelCoding(coding).course_map.items():
        table[course] = file_code
    labels = np.asarray(labels)
    bad = ~np.isin(labels, LABEL_VALUES)
    if bad.any():
        raise ValueError(f"course label codes must be {LABEL_VALUES}, got {np.unique(labels[bad])}")
    return table[labels.astype(np.uint8)]


def from_coding(labels: np.ndarray, coding: LabelCoding | str) -> np.ndarray:
    """A label map written in ``coding`` (any shape) in the course's codes; uint8, same shape.
    Raises ValueError on a code that ``coding`` does not have."""
    mapping = LabelCoding(coding).course_map
    labels = np.asarray(labels)
    bad = ~np.isin(labels, list(mapping))
    if bad.any():
        raise ValueError(
            f"codes {np.unique(labels[bad]).tolist()} are not in the {LabelCoding(coding).value} "
            f"coding (its codes: {sorted(mapping)})"
        )
    table = np.zeros(256, np.uint8)
    for file_code, course in mapping.items():
        table[file_code] = course
    return table[labels.astype(np.uint8)]


#: Fewest tumour surface voxels for ``coding_fit`` to judge a map (smaller tumours: no verdict).
MIN_SURFACE_VOXELS = 50
#: ``coding_fit`` doubts a coding when less than this share of the tumour's outer surface is edema.
MIN_EDEMA_SHARE = 0.5


def edema_outer_share(labels: np.ndarray) -> float | None:
    """Share of a course-coded map's tumour surface that is edema (code 1).

    labels: (X, Y, Z) course codes.  The surface is the tumour voxels (code > 0) with a
    background face neighbour (the volume's border counts as background).  In a glioma the
    edema is the outer layer, so the share is high (typically > 0.7) when the map is read in
    the coding it was written in.  Returns None when there is no verdict: no edema, no core
    (codes 2, 3) or fewer than ``MIN_SURFACE_VOXELS`` surface voxels.
    """
    labels = np.asarray(labels)
    tumour = labels > 0
    if not (labels == 1).any() or not (labels > 1).any():
        return None
    padded = np.pad(tumour, 1)
    inner = padded[1:-1, 1:-1, 1:-1].copy()
    for axis in range(3):
        for step in (1, -1):
            inner &= np.roll(padded, step, axis=axis)[1:-1, 1:-1, 1:-1]
    surface = tumour & ~inner
    n = int(surface.sum())
    if n < MIN_SURFACE_VOXELS:
        return None
    return float((labels[surface] == 1).sum() / n)


def coding_fit(labels: np.ndarray, read_as: LabelCoding | str) -> LabelCoding | None:
    """The coding a map more likely was written in, when the one it was read in looks wrong.

    labels: (X, Y, Z) course codes, as the file reads in ``read_as``.  Its edema should be the
    tumour's outer layer (``edema_outer_share`` at least ``MIN_EDEMA_SHARE``); when it is not,
    and swapping edema and non-enhancing (what reading a map in the wrong one of the course and
    BraTS codings does) puts more edema outside, returns the coding that swap corresponds to:
    BRATS2023 for a map read as MSD, MSD for one read as a BraTS coding (for BRATS2021 only when
    the map has no enhancing code, since MSD has no 4).  None: no doubt, or no verdict.
    """
    read_as = LabelCoding(read_as)
    share = edema_outer_share(labels)
    if share is None or share >= MIN_EDEMA_SHARE:
        return None
    labels = np.asarray(labels)
    swapped = np.where(labels == 1, 2, np.where(labels == 2, 1, labels))
    other = edema_outer_share(swapped)
    if other is None or other <= share:
        return None
    if read_as is LabelCoding.MSD:
        return LabelCoding.BRATS2023
    if read_as is LabelCoding.BRATS2023 or not (labels == 3).any():
        return LabelCoding.MSD
    return None

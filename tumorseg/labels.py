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
"""

from __future__ import annotations

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

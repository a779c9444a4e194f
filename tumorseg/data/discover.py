"""Find the cases of a dataset folder: MSD Task01 (``dataset.json``) or BraTS 2020/2021.

Supported layouts of ``root``:

* **MSD** (Medical Segmentation Decathlon Task01_BrainTumour, and the synthetic sample data):
  ``dataset.json`` whose ``training`` list pairs ``imagesTr/<case>.nii.gz`` (X, Y, Z, 4) with
  ``labelsTr/<case>.nii.gz`` (X, Y, Z). Without ``dataset.json``, ``imagesTr``/``labelsTr``
  are paired by file name. A folder holding exactly one such dataset (e.g. the ``--dest`` of
  ``tumorseg download``, which contains ``Task01_BrainTumour/``) is accepted too.
* **BraTS 2020/2021**: one folder per case with ``<case>_flair``, ``_t1``, ``_t1ce``, ``_t2``
  and ``_seg`` ``.nii.gz`` (or ``.nii``) files, chosen by ``tumorseg.data.io.find_nifti``;
  stacked as FLAIR, T1, T1Gd, T2 and labels remapped from BraTS codes (1 NCR/NET, 2 edema,
  4 ET) to course codes (1 edema, 2 NET, 3 ET).

Discovery checks that every file exists; the contents are validated when a case is loaded.
``open_dataset(root, strict=False)`` (batch prediction and evaluation) checks nothing at
discovery and takes cases without a label too, so that one missing file is reported for its
case when the case is loaded (a ``DataError`` naming it) instead of stopping the whole batch;
it also reads a plain folder of 4-channel NIfTI images (e.g. an MSD ``imagesTs``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import numpy as np

from tumorseg.data.errors import DataError
from tumorseg.data.io import (
    NIFTI_EXTENSIONS,
    PathLike,
    brats_modality_files,
    find_nifti,
    load_brats_image,
    load_image,
    load_label_map,
)
from tumorseg.labels import BRATS_SEG_SUFFIX, BRATS_SUFFIXES


@dataclass(frozen=True)
class Case:
    """One case of a dataset.

    ``layout`` is ``"msd"`` (``image_paths`` holds the one 4-channel file) or ``"brats"``
    (``image_paths`` holds the FLAIR, T1, T1Gd, T2 files). ``label_path`` is the label file,
    or ``None`` for an unlabelled case (``open_dataset(root, strict=False)`` only).
    """

    id: str
    image_paths: tuple[Path, ...]
    label_path: Path | None
    layout: str = "msd"

    @property
    def paths(self) -> tuple[Path, ...]:
        """Every file of the case: the image file(s), then the label file (when it has one)."""
        return (*self.image_paths, *([self.label_path] if self.label_path else []))

    @property
    def image_input(self) -> Path:
        """What ``tumorseg.data.load_image`` reads for this case: the 4-channel file (MSD), or
        the case folder (BraTS)."""
        return self.image_paths[0] if self.layout == "msd" else self.image_paths[0].parent

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """Read the case: image ``(X, Y, Z, 4)`` float64 (FLAIR, T1, T1Gd, T2), label ``(X, Y, Z)``
        float64 with course codes 0..3 (BraTS labels remapped). Raises DataError on bad data,
        and for a case without a label file."""
        image, label, _ = self.load_with_spacing()
        return image, label

    def load_with_spacing(self) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
        """``load``, and the voxel size in mm along X, Y, Z from the header of the label file
        (read once, with its data)."""
        if self.label_path is None:
            raise DataError(
                f"{self.image_input}: case {self.id!r} has no label file, so it cannot be "
                f"scored. Add its label (labelsTr/<case>.nii.gz, or <case>_seg.nii.gz in a BraTS "
                f"folder), or leave the case out."
            )
        brats = self.layout == "brats"
        if brats:
            image = load_brats_image(self.image_paths)  # type: ignore[arg-type]
        else:
            image, _ = load_image(self.image_paths[0])
        label, spacing = load_label_map(self.label_path, brats, image.shape[:3])
        return image, label, spacing


class Dataset(Sequence[Case]):
    """An ordered, read-only sequence of :class:`Case`; index by position or by case id."""

    def __init__(self, root: Path, layout: str, cases: list[Case]):
        self.root = root
        self.layout = layout
        self._cases = list(cases)
        self._by_id = {c.id: c for c in self._cases}

    def __len__(self) -> int:
        return len(self._cases)

    @overload
    def __getitem__(self, key: int | str) -> Case: ...
    @overload
    def __getitem__(self, key: slice) -> list[Case]: ...
    def __getitem__(self, key):  # type: ignore[no-untyped-def]
        if isinstance(key, str):
            try:
                return self._by_id[key]
            except KeyError:
                raise KeyError(f"no case {key!r} in {self.root}") from None
        return self._cases[key]

    def __iter__(self) -> Iterator[Case]:
        return iter(self._cases)

    @property
    def ids(self) -> list[str]:
        """The case ids in order."""
        return [c.id for c in self._cases]

    def __repr__(self) -> str:
        return f"Dataset({str(self.root)!r}, layout={self.layout!r}, {len(self)} cases)"


def _strip_nii(name: str) -> str:
    for ext in NIFTI_EXTENSIONS:
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def _require(path: Path, what: str, fix: str, strict: bool = True) -> Path:
    if strict and not path.is_file():
        raise DataError(f"{path}: {what} not found. {fix}")
    return path


def _open_msd_json(root: Path, strict: bool = True) -> Dataset:
    meta_path = root / "dataset.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(
            f"{meta_path}: not a readable JSON file ({exc}). Restore it from the dataset "
            f"archive, or rebuild the sample data with `make data`."
        ) from exc
    training = meta.get("training") if isinstance(meta, dict) else None
    if not isinstance(training, list) or not training:
        raise DataError(
            f"{meta_path}: no 'training' list of {{'image': ..., 'label': ...}} entries, so it "
            f"is not an MSD dataset.json. Restore it, or rebuild the sample data with `make data`."
        )
    fix = "Re-extract the dataset or rebuild it (`make data`), or fix the entry in dataset.json."
    cases = []
    for i, entry in enumerate(training):
        if not (isinstance(entry, dict) and "image" in entry and "label" in entry):
            raise DataError(
                f"{meta_path}: training entry {i} is {entry!r}; expected "
                f"{{'image': './imagesTr/X.nii.gz', 'label': './labelsTr/X.nii.gz'}}. {fix}"
            )
        img = _require(root / entry["image"], "image file listed in dataset.json", fix, strict)
        lab = _require(root / entry["label"], "label file listed in dataset.json", fix, strict)
        cases.append(Case(_strip_nii(img.name), (img,), lab, "msd"))
    return Dataset(root, "msd", cases)


def _nifti_files(folder: Path) -> list[Path]:
    """The NIfTI files of ``folder``, by name, without AppleDouble ``._*`` and hidden files."""
    return sorted(
        p
        for p in folder.iterdir()
        if not p.name.startswith(".") and p.name.endswith(NIFTI_EXTENSIONS) and not p.is_dir()
    )


def _open_msd_dirs(root: Path, images: Path, strict: bool = True) -> Dataset:
    """Cases of the images folder ``images`` (``root/imagesTr``, or ``root`` itself holding
    4-channel images), each paired with ``root/labelsTr/<same name>``; without ``strict`` a
    missing label leaves the case unlabelled."""
    cases = []
    for img in _nifti_files(images):
        lab: Path | None = root / "labelsTr" / img.name
        if not strict and not lab.is_file():
            lab = None
        else:
            _require(
                lab,
                f"label file for {img}",
                "Every imagesTr/<case> needs labelsTr/<case> with the same file name.",
            )
        cases.append(Case(_strip_nii(img.name), (img,), lab, "msd"))
    if not cases:
        raise DataError(f"{images}: no .nii.gz images found. Put the case files there.")
    return Dataset(root, "msd", cases)


def _expected_modality_files(folder: Path) -> tuple[Path, ...]:
    """The FLAIR, T1, T1Gd, T2 files of a BraTS case folder, a missing one by its usual name
    (``<folder>_<suffix>.nii.gz``, which the load then reports as missing)."""
    found = [find_nifti(folder, f"*_{suffix}") for suffix in BRATS_SUFFIXES]
    return tuple(
        f if f is not None else folder / f"{folder.name}_{suffix}.nii.gz"
        for f, suffix in zip(found, BRATS_SUFFIXES)
    )


def _open_brats(root: Path, folders: list[Path], strict: bool = True) -> Dataset:
    cases = []
    for folder in folders:
        modalities = brats_modality_files(folder) if strict else _expected_modality_files(folder)
        seg = find_nifti(folder, f"*_{BRATS_SEG_SUFFIX}")
        if seg is None and strict:
            raise DataError(
                f"{folder / (folder.name + '_' + BRATS_SEG_SUFFIX + '.nii.gz')}: missing. A BraTS "
                f"case folder needs *_flair, *_t1, *_t1ce, *_t2 and *_seg .nii.gz files; "
                f"add it or remove the incomplete folder {folder}."
            )
        cases.append(Case(folder.name, modalities, seg, "brats"))
    return Dataset(root, "brats", cases)


def _find_layout(root: Path, strict: bool = True) -> Dataset | None:
    if (root / "dataset.json").is_file():
        return _open_msd_json(root, strict)
    if (root / "imagesTr").is_dir() and ((root / "labelsTr").is_dir() or not strict):
        return _open_msd_dirs(root, root / "imagesTr", strict)
    subdirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    brats = [d for d in subdirs if find_nifti(d, f"*_{BRATS_SUFFIXES[0]}") is not None]
    if brats:
        return _open_brats(root, brats, strict)
    if not strict and _nifti_files(root):  # a folder of 4-channel images, e.g. imagesTs
        return _open_msd_dirs(root, root, strict)
    return None


def open_dataset(root: PathLike, strict: bool = True) -> Dataset:
    """Discover the cases under ``root`` (an MSD Task01 or BraTS 2020/2021 folder).

    Returns a :class:`Dataset` of :class:`Case`; ``case.load()`` gives image ``(X, Y, Z, 4)``
    float64 and label ``(X, Y, Z)`` float64 with codes 0..3. Raises :class:`DataError` when
    ``root`` is missing, a listed file is missing, or the layout is not recognised.

    strict: False for batch work that goes on past a broken case: no file is checked at
        discovery (a missing one is reported by ``load_image``/``case.load`` for its case),
        cases without a label are kept (``label_path`` None), and a folder of 4-channel NIfTI
        images (``<case>.nii.gz``, e.g. an MSD ``imagesTs``) is read too.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"{root}: dataset folder not found. Build the sample data with `make data`, or "
            f"download the real one with `tumorseg download --dest {root}`."
        )
    ds = _find_layout(root, strict)
    if ds is None:  # one level down: e.g. DEST/Task01_BrainTumour after `tumorseg download`
        inner = [
            d
            for d in sorted(root.iterdir())
            if d.is_dir() and not d.name.startswith(".") and (d / "dataset.json").is_file()
        ]
        if len(inner) == 1:
            ds = _open_msd_json(inner[0], strict)
    if ds is None:
        raise DataError(
            f"{root}: unknown dataset layout. Expected an MSD folder (dataset.json with "
            f"imagesTr/ and labelsTr/) or a BraTS 2020/2021 folder (one sub-folder per case "
            f"with *_flair, *_t1, *_t1ce, *_t2, *_seg .nii.gz). Point to such a folder."
        )
    return ds

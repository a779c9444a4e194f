"""The h5 patch store in the original course's format, and ``tumorseg patches``.

Layout written under ``OUT`` (e.g. ``data/BraTS-Data/processed``)::

    train/<case>.nii.gz_<k>_x<sx>_y<sy>_z<sz>.h5
    valid/<case>.nii.gz_<k>_x<sx>_y<sy>_z<sz>.h5
    config.json   {"train": [file names], "valid": [file names], ...}

Each h5 file holds ``x``: (4, *PATCH_SIZE) float32 raw intensities, channels first, and ``y``:
(*PATCH_SIZE, 4) float32 one-hot with background, channels last (``tumorseg.contract``); both uncompressed (13 MB a
patch) because decompressing ``y`` would cost more time than reading it.  The split is 80/20 BY CASE, so no patient has patches in both folders.  Writes are atomic
(temp file + rename) and a rerun skips cases whose patches are already there and readable.
"""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import h5py
import numpy as np
from tqdm.auto import tqdm

from tumorseg.atomic import atomic_path, write_text
from tumorseg.contract import PATCH_SIZE
from tumorseg.data import DataError, open_dataset
from tumorseg.patches.sampling import sample_background_patch, sample_class_patch, sample_patch

#: The rare classes that focused patches are centred on: non-enhancing tumour, enhancing tumour.
FOCUS_CLASSES: tuple[int, ...] = (2, 3)

NAME_RE = re.compile(r"^(?P<case>.+)\.nii\.gz_(?P<k>\d+)_x(\d+)_y(\d+)_z(\d+)\.h5$")


def patch_name(case: str, k: int, corner: tuple[int, int, int]) -> str:
    """The course's patch file name ``<case>.nii.gz_<k>_x<sx>_y<sy>_z<sz>.h5``."""
    return f"{case}.nii.gz_{k}_x{corner[0]}_y{corner[1]}_z{corner[2]}.h5"


def split_cases(
    case_ids: list[str], valid_fraction: float = 0.2, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Split case ids into ``(train_ids, valid_ids)``, by case, reproducibly from ``seed``.

    At least one validation case when there are two or more cases and ``valid_fraction > 0``;
    none when ``valid_fraction`` is 0.  Sorted lists.
    """
    ids = sorted(case_ids)
    order = np.random.default_rng(seed).permutation(len(ids))
    n_valid = int(round(valid_fraction * len(ids)))
    if len(ids) >= 2 and valid_fraction > 0:
        n_valid = min(max(n_valid, 1), len(ids) - 1)
    else:
        n_valid = 0
    valid = sorted(ids[i] for i in order[:n_valid])
    train = sorted(i for i in ids if i not in set(valid))
    return train, valid


def write_patch_h5(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    """Atomically write one patch: ``x (C, X, Y, Z)`` float32, ``y (X, Y, Z, 4)`` float32 one-hot."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("x", data=np.asarray(x, dtype=np.float32))
            f.create_dataset("y", data=np.asarray(y, dtype=np.float32))


def is_valid_patch(
    path: Path, dim: tuple[int, int, int] = PATCH_SIZE, num_channels: int = 4
) -> bool:
    """True when ``path`` is a readable h5 with ``x (C, *dim)`` and ``y (*dim, C)`` datasets."""
    try:
        with h5py.File(path, "r") as f:
            return f["x"].shape == (num_channels, *dim) and f["y"].shape == (*dim, num_channels)
    except (OSError, KeyError):
        return False


def _case_seed(seed: int, case: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(case.encode())])


def _existing(
    folder: Path, case: str, k: int, size: tuple[int, int, int] = PATCH_SIZE
) -> Path | None:
    for p in folder.glob(f"{case}.nii.gz_{k}_x*_y*_z*.h5"):
        m = NAME_RE.match(p.name)
        if m and m["case"] == case and int(m["k"]) == k and is_valid_patch(p, size):
            return p
    return None


def build_patch_store(
    data: str | Path,
    out: str | Path,
    per_case: int = 4,
    seed: int = 0,
    valid_fraction: float = 0.2,
    min_tumor: float = 0.05,
    verbose: bool = True,
    background: int = 0,
    focus: int = 0,
    patch_size: tuple[int, int, int] = PATCH_SIZE,
) -> dict:
    """Sample ``per_case`` patches of ``patch_size`` (X, Y, Z; the course's 160x160x16 by
    default) with ≥ ``min_tumor`` tumor from every case of ``data``.

    data: a dataset folder ``open_dataset`` understands; out: the ``processed`` folder.
    background: patches per case drawn anywhere in the brain, whatever their tumor content
        (``sample_background_patch``), numbered after the ``per_case`` tumor patches; they teach
        a model what normal anatomy looks like.
    focus: patches per case centred on a voxel of the rare classes, non-enhancing tumour
        (necrosis) or enhancing tumour (``sample_class_patch``, ``FOCUS_CLASSES``), numbered
        after the background ones: the forced-foreground share that nnU-Net samples.
    Returns the config dict written to ``out/config.json``:
    ``{"train": [...], "valid": [...], "train_cases": [...], "valid_cases": [...], "seed",
    "per_case", "background", "focus", "min_tumor"}``.
    Cases whose patches already exist (readable, right shapes) are not reloaded.
    A case with too little tumor for ``min_tumor`` is skipped with a warning.
    """
    ds = open_dataset(data)
    out = Path(out)
    train_ids, valid_ids = split_cases(ds.ids, valid_fraction, seed)
    folders = {"train": out / "train", "valid": out / "valid"}
    for f in folders.values():
        f.mkdir(parents=True, exist_ok=True)
    lists: dict[str, list[str]] = {"train": [], "valid": []}
    skipped = []
    for case in tqdm(ds, desc="patches", unit="case", disable=not verbose):
        part = "valid" if case.id in valid_ids else "train"
        folder = folders[part]
        found = [
            _existing(folder, case.id, k, patch_size) for k in range(per_case + background + focus)
        ]
        if all(found):
            lists[part] += [p.name for p in found]
            continue
        image, label = case.load()
        names = _sample_case(
            case.id,
            image,
            label,
            folder,
            found,
            (per_case, background),
            seed,
            (min_tumor, patch_size),
        )
        if len(names) < per_case:
            skipped.append(case.id)
        lists[part] += names
    if skipped and verbose:
        print(f"warning: too little tumor (< {min_tumor:.0%} of a patch) in: {', '.join(skipped)}")
    config = {
        "train": sorted(lists["train"]),
        "valid": sorted(lists["valid"]),
        "train_cases": train_ids,
        "valid_cases": valid_ids,
        "seed": seed,
        "per_case": per_case,
        "background": background,
        "focus": focus,
        "min_tumor": min_tumor,
        "patch_size": list(patch_size),
        "source": {"data": str(data), "release": _dataset_release(Path(data))},
    }
    write_text(out / "config.json", json.dumps(config, indent=1))
    if verbose:
        print(
            f"{len(config['train'])} train patches ({len(train_ids)} cases), "
            f"{len(config['valid'])} valid patches ({len(valid_ids)} cases) in {out}"
        )
    return config


def _sample_case(
    case: str,
    image: np.ndarray,
    label: np.ndarray,
    folder: Path,
    found: list[Path | None],
    counts: tuple[int, int],
    seed: int,
    draw: tuple[float, tuple[int, int, int]],
) -> list[str]:
    """Write one case's patches into ``folder``: ``counts = (per_case, background)`` tumor and
    background patches, then ``len(found) - per_case - background`` focused on the rare classes;
    ``draw = (min_tumor, patch_size)``.  Returns their file names.  ``found[k]`` is an existing valid patch ``k`` (kept, not
    rewritten).  Stops the tumor patches at the first failed draw (too little tumor)."""
    per_case, background = counts
    min_tumor, size = draw
    rng = _case_seed(seed, case)
    names = []
    for k in range(per_case):
        patch = sample_patch(image, label, size, min_tumor, rng)
        if patch is None:
            break
        if found[k] is not None:  # keep what is already there
            names.append(found[k].name)
            continue
        name = patch_name(case, k, patch.corner)
        write_patch_h5(folder / name, patch.x, patch.y)
        names.append(name)
    bg_rng = np.random.default_rng([seed, zlib.crc32(case.encode()), 1])
    focus_rng = np.random.default_rng([seed, zlib.crc32(case.encode()), 2])
    draws = {
        range(per_case, per_case + background): lambda: sample_background_patch(
            image, label, size, rng=bg_rng
        ),
        range(per_case + background, len(found)): lambda: sample_class_patch(
            image, label, FOCUS_CLASSES, size, rng=focus_rng
        ),
    }
    for ks, draw in draws.items():
        for k in ks:
            patch = draw()
            if patch is None:
                break
            if found[k] is None:
                found[k] = folder / patch_name(case, k, patch.corner)
                write_patch_h5(found[k], patch.x, patch.y)
            names.append(found[k].name)
    return names


def merge_stores(out: str | Path, held: str | Path, extra: list[str | Path]) -> dict:
    """One patch store from several, for training on more cases than one store holds.

    held: a store whose train/valid split is kept (its valid cases stay held out); extra: stores
    whose patches all join train, linked (not copied) under ``out/train`` with their names
    prefixed ``R<seed>_`` so that cases of different stores never share a name.
    Returns the config written to ``out/config.json``. DataError when a store is not one
    (``read_store``) or two extra stores have the same seed.
    """
    out, held = Path(out), Path(held)
    configs = [read_store(s) for s in [held, *extra]]
    sizes = {tuple(c.get("patch_size", PATCH_SIZE)) for c in configs}
    if len(sizes) > 1:
        raise DataError(
            f"{', '.join(map(str, [held, *extra]))}: patch sizes differ ({sorted(sizes)}); "
            "merge stores built with the same --patch-size"
        )
    prefixes = [f"R{c.get('seed')}_" for c in configs[1:]]
    if len(set(prefixes)) < len(prefixes):
        raise DataError(f"{', '.join(map(str, extra))}: two stores with the same seed; merge one")
    links: dict[str, list[tuple[str, Path]]] = {
        "train": [(n, held / "train" / n) for n in configs[0]["train"]],
        "valid": [(n, held / "valid" / n) for n in configs[0]["valid"]],
    }
    train_cases = list(configs[0]["train_cases"])
    for store, cfg, prefix in zip(extra, configs[1:], prefixes):
        for part in ("train", "valid"):
            links["train"] += [(prefix + n, Path(store) / part / n) for n in cfg[part]]
        train_cases += [prefix + c for c in cfg["train_cases"] + cfg["valid_cases"]]
    for part, items in links.items():
        (out / part).mkdir(parents=True, exist_ok=True)
        for name, target in items:
            link = out / part / name
            if not link.is_symlink():
                link.symlink_to(target.resolve())
    config = {
        **configs[0],
        "train": [n for n, _ in links["train"]],
        "valid": [n for n, _ in links["valid"]],
        "train_cases": train_cases,
        "source": {
            "merged": [
                {"store": str(s), "seed": c.get("seed"), "source": c.get("source")}
                for s, c in zip([held, *extra], configs)
            ],
            "release": configs[0].get("source", {}).get("release"),
        },
    }
    write_text(out / "config.json", json.dumps(config, indent=1))
    return config


def read_store(store: str | Path) -> dict:
    """``store/config.json`` of a patch store; DataError naming the file and the fix when it is
    missing, unreadable or lists no training patches."""
    cfg_path = Path(store) / "config.json"
    if not cfg_path.is_file():
        raise DataError(
            f"{cfg_path} not found: build the patch store with "
            f"`tumorseg patches --data DATASET --out {store}` first"
        )
    try:
        config = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(
            f"{cfg_path}: unreadable ({exc}); rebuild it with `tumorseg patches`"
        ) from exc
    if not config.get("train"):
        raise DataError(f"{cfg_path}: no training patches; rebuild it with `tumorseg patches`")
    return config


def _dataset_release(data: Path) -> str | None:
    """The "release" field of ``data/dataset.json`` (which generator made a synthetic set)."""
    try:
        return json.loads((data / "dataset.json").read_text()).get("release")
    except (OSError, ValueError, AttributeError):
        return None

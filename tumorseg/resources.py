"""Where the files that ship inside the package live, and where a source checkout keeps its own.

The shipped model, the MNI atlas and the instructor notebook are package data, found through
``importlib.resources``, so an installed wheel finds them exactly as an editable checkout does.
Every module asks this one for a location; none builds a path out of ``__file__`` itself.

``checkout_root`` is the only place that looks outside the package: it names the source
checkout the package was imported from (``None`` for an installed package), for the defaults
that only make sense in a checkout (the committed student notebook, the course data folder).
"""

from __future__ import annotations

import atexit
import contextlib
from importlib import resources
from pathlib import Path

PACKAGE = "tumorseg"

#: The shipped pretrained model: ``<name>.weights.h5`` and its manifest ``<name>.json``.
PRETRAINED = ("model", "weights", "model_pretrained.weights.h5")
#: The MNI ICBM152 2009a atlas used by the synthetic data (with its licence notice).
MNI = ("data", "mni")
#: The course notebook with solutions; ``tumorseg release`` derives the student notebook from it.
NOTEBOOK_NAME = "Brain_Tumor_Segmentation.ipynb"
INSTRUCTOR = ("course", "notebooks", NOTEBOOK_NAME)
#: The module the course notebook imports as ``util`` (the autograder copies it).
FACADE = ("course", "facade.py")

_extracted = contextlib.ExitStack()
atexit.register(_extracted.close)


def package_file(*parts: str) -> Path:
    """A file or folder of the installed package as a real path on disk.

    parts: path components below the ``tumorseg`` package, e.g. ``("data", "mni")``.
    A package imported from a zip is extracted to a temporary copy that lives until exit.
    """
    ref = resources.files(PACKAGE).joinpath(*parts)
    if isinstance(ref, Path):
        return ref
    return Path(_extracted.enter_context(resources.as_file(ref)))


def pretrained_weights() -> Path:
    """The shipped model's ``.weights.h5`` file (its manifest ``.json`` lies beside it)."""
    return package_file(*PRETRAINED)


def manifest_path(weights: str | Path) -> Path:
    """The manifest beside ``weights``: ``name.weights.h5`` -> ``name.json``."""
    weights = Path(weights)
    name = weights.name
    stem = name[: -len(".weights.h5")] if name.endswith(".weights.h5") else weights.stem
    return weights.with_name(stem + ".json")


def mni_file(name: str) -> Path:
    """One file of the vendored MNI atlas, e.g. ``mni_file("NOTICE.txt")``."""
    return package_file(*MNI, name)


def instructor_notebook() -> Path:
    """The instructor notebook (with solutions and grader cells)."""
    return package_file(*INSTRUCTOR)


def facade_source() -> str:
    """Source of the module the course notebook imports as ``util``."""
    return package_file(*FACADE).read_text(encoding="utf-8")


def checkout_root() -> Path | None:
    """The source checkout holding this package (its ``pyproject.toml`` names ``tumorseg``),
    or ``None`` when the package was installed from a wheel or an sdist."""
    root = package_file().resolve().parent
    project = root / "pyproject.toml"
    try:
        text = project.read_text(encoding="utf-8")
    except OSError:
        return None
    return root if f'name = "{PACKAGE}"' in text else None


def student_notebook() -> Path:
    """Default output of ``tumorseg release``: the committed student notebook in a checkout,
    else ``Brain_Tumor_Segmentation.ipynb`` in the working directory."""
    root = checkout_root()
    return root / "notebooks" / NOTEBOOK_NAME if root is not None else Path(NOTEBOOK_NAME)

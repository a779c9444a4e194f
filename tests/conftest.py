"""Shared fixtures.  Tests that need ../shared/real-brats skip cleanly when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

ROOT = Path(__file__).resolve().parents[1]
REAL_BRATS = ROOT.parent / "shared" / "real-brats"
REAL_SCANS = ROOT.parent / "shared" / "real-brats-scans"
SAMPLE_DATA = ROOT / "data" / "BraTS-Data"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


#: Fixtures that grade real notebooks in Jupyter kernels (minutes): their tests are ``slow``,
#: outside the fast tier of ``make check``.
SLOW_FIXTURES = frozenset({"batch", "probes"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the real data ``realdata`` (``-m realdata`` selects them), and
    every test that uses a ``SLOW_FIXTURES`` fixture ``slow``."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if {"real_brats", "real_scans"} & fixtures:
            item.add_marker(pytest.mark.realdata)
        if fixtures & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def real_brats() -> Path:
    """The real evaluation patches and labels, or a skip when this clone has no ../shared."""
    if not (REAL_BRATS / "train").is_dir():
        pytest.skip(f"real BraTS evaluation data not found at {REAL_BRATS}")
    return REAL_BRATS


@pytest.fixture(scope="session")
def real_scans() -> Path:
    """Whole real scans (``train/``, ``valid/``, BraTS layout), or a skip when this clone has
    no ../shared/real-brats-scans."""
    if not (REAL_SCANS / "valid").is_dir():
        pytest.skip(f"real whole scans not found at {REAL_SCANS}")
    return REAL_SCANS


@pytest.fixture(scope="session")
def sample_data() -> Path:
    """The synthetic sample dataset built by `make data` (make test builds it first)."""
    if not (SAMPLE_DATA / "dataset.json").is_file():
        pytest.skip(f"sample data not built at {SAMPLE_DATA}; run `make data`")
    return SAMPLE_DATA


# --------------------------------------------------------------------------- tiny batch sets
#: Grid of the tiny cases of ``write_tiny_dataset``: one for all, so that a model traces its
#: forward pass once per load (each new input shape costs seconds on a busy CPU); the cases
#: differ in their random intensities.
TINY_SHAPE = (24, 24, 16)


def load_file_module(path: Path, name: str):
    """The Python file ``path`` (a script or benchmark) imported as module ``name``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_tiny_case(image_path: Path, label_path: Path | None, shape: tuple, seed: int) -> None:
    """One tiny MSD case: image (X, Y, Z, 4) float32 with random intensities in a brain box
    (zero outside), label (X, Y, Z) uint8 with a small tumour (1 edema, 2 core, 3 enhancing);
    affine diag(1.2, 0.9, 2.0) in mm."""
    import nibabel as nib
    import numpy as np

    rng = np.random.default_rng(seed)
    affine = np.diag([1.2, 0.9, 2.0, 1.0])
    image = np.zeros((*shape, 4), np.float32)
    brain = tuple(slice(2, s - 2) for s in shape)
    image[brain] = rng.uniform(10, 500, size=(*image[brain].shape[:3], 4))
    label = np.zeros(shape, np.uint8)
    c = [s // 2 for s in shape]
    label[c[0] - 5 : c[0] + 5, c[1] - 5 : c[1] + 5, c[2] - 4 : c[2] + 4] = 1
    label[c[0] - 3 : c[0] + 3, c[1] - 3 : c[1] + 3, c[2] - 2 : c[2] + 2] = 2
    label[c[0] - 1 : c[0] + 1, c[1] - 1 : c[1] + 1, c[2] - 1 : c[2] + 1] = 3
    image[label > 0] *= 1.5
    image_path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(image, affine), image_path)
    if label_path is not None:
        label_path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(label, affine), label_path)


def write_tiny_dataset(root: Path, n: int = 5, seed: int = 0) -> Path:
    """An MSD-layout dataset (``dataset.json``, ``imagesTr/``, ``labelsTr/``) of ``n`` tiny
    cases ``BRATS_001`` ... (``write_tiny_case``, ``TINY_SHAPE``, seeds ``seed + i``); returns
    root."""
    import json

    training = []
    for i in range(n):
        name = f"BRATS_{i + 1:03d}.nii.gz"
        write_tiny_case(
            root / "imagesTr" / name,
            root / "labelsTr" / name,
            TINY_SHAPE,
            seed + i,
        )
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    (root / "dataset.json").write_text(json.dumps({"training": training}))
    return root


@pytest.fixture(scope="session")
def batch_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny U-Net (n_base_filters 4, seed 0) saved as ``tiny.weights.h5`` with its manifest,
    for the batch commands (``--weights``)."""
    import json

    import keras

    from tumorseg.model import dice_bce_loss, unet_model_3d

    keras.utils.set_random_seed(0)
    model = unet_model_3d(dice_bce_loss, input_shape=(4, None, None, None), n_base_filters=4)
    folder = tmp_path_factory.mktemp("batch-weights")
    weights = folder / "tiny.weights.h5"
    model.save_weights(weights)
    manifest = {
        "config": {"input_shape": [4, 160, 160, 16], "n_base_filters": 4},
        "standardize": "brain",
        "threshold": 0.5,
        "git_commit": "tests",
    }
    (folder / "tiny.json").write_text(json.dumps(manifest))
    return weights


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five tiny labelled cases in MSD layout (``write_tiny_dataset``); read only."""
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny-data"))


@pytest.fixture
def fake_grading(monkeypatch: pytest.MonkeyPatch):
    """``grade_submission`` replaced by a stand-in that reads a submission's points from its
    text (the first N exercises pass), so that tests of sharding and merging run no kernel;
    returns the grader module.  Skips where the instructor notebook is missing."""
    from tumorseg.course.exercises import REGISTRY
    from tumorseg.course.grading import grader

    if not grader.INSTRUCTOR.is_file():
        pytest.skip("instructor notebook missing")

    def fake(path: Path, setup: object, max_bytes: int = 0, log: object = None) -> grader.Graded:
        points = int(path.read_text())
        results = {
            ex: grader.Result(grader.Status.PASSED if i < points else grader.Status.FAILED, "m")
            for i, ex in enumerate(REGISTRY)
        }
        return grader.Graded(path.name, results, 0.1, 1)

    monkeypatch.setattr(grader, "grade_submission", fake)
    return grader

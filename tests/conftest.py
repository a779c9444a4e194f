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

"""The one error type for bad input data; defined in :mod:`tumorseg.errors`, importable here too."""

from __future__ import annotations

from tumorseg.errors import DataError

__all__ = ["DataError"]

"""The one error type for bad input data."""

from __future__ import annotations


class DataError(ValueError):
    """Bad input data: a missing, corrupt or malformed file, or an unknown dataset layout.

    The message names the file, says what is wrong with it, and how to fix it.
    """

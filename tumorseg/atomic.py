"""Atomic file writes, used by every stage that writes a file a user keeps.

A file is written under a temporary name in the target's own folder and moved onto the
target with ``os.replace`` only once it is complete, so an interrupted run leaves either the
old file or the new one, never a half-written one, and no temporary file behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it onto ``path``.

    Args:
        path: the final file; its folder is created when missing.
        suffix: ending of the temporary name, for writers that choose the format by
            extension (e.g. ``".nii.gz"``, ``".weights.h5"``, ``".png"``).

    The temporary file exists (empty) when the block starts; writers that refuse an existing
    file may remove it first.  If the block raises, the temporary file is deleted and the
    target is left as it was.  The result gets the usual umask permissions, not ``0600``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Atomically write ``data`` to ``path`` (flushed to disk before the rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Atomically write ``text`` to ``path`` as UTF-8 with ``\\n`` line endings."""
    return write_bytes(path, text.encode("utf-8"))

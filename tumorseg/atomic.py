"""Atomic file writes, used by every stage that writes a file a user keeps.

A file is written under a temporary name in the target's own folder and moved onto the
target with ``os.replace`` only once it is complete, so an interrupted run leaves either the
old file or the new one, never a half-written one, and no temporary file behind (a process
killed outright, SIGKILL, leaves its hidden temporary file ``.<name>.<random><suffix>``;
``stale_temporaries`` finds them).  ``folder_lock`` serialises the read-modify-write of a
file that several processes share (a results table merged by key).
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


def stale_temporaries(path: str | Path) -> list[Path]:
    """The temporary files that ``atomic_path(path)`` left beside ``path`` when its process was
    killed outright (``.<name>.<random><suffix>``); the caller decides whether they are stale."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.glob(f".{path.name}.*") if p.is_file())


@contextmanager
def folder_lock(folder: str | Path, name: str = ".lock") -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``folder/name`` for the block (a no-op where ``fcntl`` is
    missing); the folder is created when missing.  Processes that merge rows into one file of
    ``folder`` take it around their read-modify-write.  On a cluster file system the lock is as
    good as its ``flock`` support (NFSv4, Lustre and GPFS have it)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not Linux/macOS
        yield
        return
    with open(folder / name, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)

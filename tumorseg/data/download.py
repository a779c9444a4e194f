"""Download the real dataset: MSD Task01_BrainTumour (BraTS 2016/2017, about 7 GB).

``tumorseg download --dest DIR [--url URL] [--md5 MD5] [--no-extract]``

* Streams the tar into ``DIR/<name>.part`` with a progress bar; a rerun after an interruption
  resumes with an HTTP ``Range: bytes=N-`` request (206 appends; a server answering 200 restarts).
* Verifies the md5, then renames ``.part`` to ``DIR/<name>`` atomically. A mismatch deletes the
  ``.part`` and raises DataError; nothing half-written ever carries the final name.
* Extracts safely (no absolute paths, no ``..``, no links or devices), skipping the AppleDouble
  ``._*`` files the MSD tar carries, into a temporary folder moved into place when complete.

Only ``urllib`` is used. Afterwards ``open_dataset(DIR)`` finds ``DIR/Task01_BrainTumour``.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from tumorseg.data.errors import DataError

MSD_URL = "https://msd-for-monai.s3-us-west-2.amazonaws.com/Task01_BrainTumour.tar"
MSD_MD5 = "240a19d752f0d9e9101544901065d872"
CHUNK = 1 << 20


def _md5(path: Path, desc: str = "md5") -> str:
    """md5 hex digest of a file, with a progress bar."""
    from tqdm.auto import tqdm

    h = hashlib.md5()
    with (
        open(path, "rb") as f,
        tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=desc, leave=False) as bar,
    ):
        while block := f.read(CHUNK):
            h.update(block)
            bar.update(len(block))
    return h.hexdigest()


def _fetch_once(url: str, part: Path, timeout: float) -> None:
    """One HTTP request that appends to (or restarts) ``part`` until the body ends."""
    from tqdm.auto import tqdm

    offset = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "tumorseg-download"})
    if offset:
        req.add_header("Range", f"bytes={offset}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            return  # the .part already holds the whole file; the md5 check decides
        raise
    with resp:
        if offset and resp.status == 206:
            crange = resp.headers.get("Content-Range", "")
            if not crange.startswith(f"bytes {offset}-"):
                raise OSError(f"server answered Range bytes={offset}- with {crange!r}")
            mode = "ab"
        else:  # 200: no resume support (or a fresh start); begin again from byte 0
            offset, mode = 0, "wb"
        length = resp.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        with (
            open(part, mode) as f,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name.removesuffix(".part"),
            ) as bar,
        ):
            while block := resp.read(CHUNK):
                f.write(block)
                bar.update(len(block))
        if total is not None and part.stat().st_size < total:
            raise http.client.IncompleteRead(b"", total - part.stat().st_size)


def download(
    dest: str | os.PathLike,
    url: str = MSD_URL,
    md5: str | None = MSD_MD5,
    *,
    extract: bool = True,
    retries: int = 5,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` into folder ``dest`` (resuming), check ``md5``, and extract it if a tar.

    Returns the path of the verified archive ``dest/<name>``. After a network failure the
    transfer resumes from the bytes already in ``dest/<name>.part``; it gives up after
    ``retries`` consecutive tries that added nothing.
    Raises :class:`DataError` on an md5 mismatch (the partial file is deleted) or an unsafe tar.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    name = PurePosixPath(urlparse(url).path).name or "download"
    final = dest / name
    part = dest / (name + ".part")
    md5 = md5.lower() if md5 else None

    if final.exists():
        if md5 and (got := _md5(final, f"checking {name}")) != md5:
            raise DataError(
                f"{final}: existing file has md5 {got}, expected {md5}. Delete it and rerun "
                f"`tumorseg download`, or pass the right --md5."
            )
        print(f"{final} already downloaded", file=sys.stderr)
    else:
        failures = 0  # consecutive tries that added no bytes; any progress resets the count
        while True:
            before = part.stat().st_size if part.exists() else 0
            try:
                _fetch_once(url, part, timeout)
                break
            except (OSError, http.client.HTTPException) as exc:  # URLError is an OSError
                if isinstance(exc, urllib.error.HTTPError) and exc.code < 500:
                    raise
                size = part.stat().st_size if part.exists() else 0
                failures = 0 if size > before else failures + 1
                if failures > retries:
                    raise
                print(
                    f"download interrupted ({type(exc).__name__}: {exc}); "
                    f"resuming from byte {size}",
                    file=sys.stderr,
                )
                if failures:
                    time.sleep(min(2.0**failures, 30.0))
        if md5:
            got = _md5(part, f"verifying {name}")
            if got != md5:
                part.unlink()
                raise DataError(
                    f"{final}: downloaded data has md5 {got}, expected {md5}; the partial file "
                    f"was deleted. Rerun `tumorseg download`; if it happens again, check --url "
                    f"and --md5."
                )
        os.replace(part, final)
    if extract and tarfile.is_tarfile(final):
        extract_tar(final, dest)
    return final


def _safe_members(tar: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
    """Regular files and folders to extract, without AppleDouble ``._*`` entries; DataError for
    members with absolute paths or ``..``. Links, devices and fifos are skipped."""
    members = []
    for m in tar.getmembers():
        p = PurePosixPath(m.name)
        if p.is_absolute() or m.name.startswith(("/", "\\")) or ".." in p.parts:
            raise DataError(
                f"{archive}: unsafe member {m.name!r} (absolute path or '..') would be written "
                f"outside the destination. Refusing to extract; the archive is not the expected one."
            )
        if p.name.startswith("._") or not (m.isfile() or m.isdir()):
            continue
        members.append(m)
    return members


def extract_tar(archive: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Extract ``archive`` into ``dest`` safely, skipping ``._*`` files; return the top-level paths.

    Extraction goes into a hidden temporary folder inside ``dest``; each top-level entry is moved
    into place only when the whole archive is out, so an interrupted extraction leaves no partial
    dataset behind. A marker ``.<name>.extracted`` makes a rerun skip the work.
    """
    from tqdm.auto import tqdm

    archive, dest = Path(archive), Path(dest)
    marker = dest / f".{archive.name}.extracted"
    tmp = dest / f".{archive.name}.extracting"
    with tarfile.open(archive) as tar:
        members = _safe_members(tar, archive)
        tops = sorted({PurePosixPath(m.name).parts[0] for m in members if m.name not in ("", ".")})
        if marker.exists() and all((dest / t).exists() for t in tops):
            return [dest / t for t in tops]
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for m in tqdm(members, desc=f"extracting {archive.name}", unit="file"):
            tar.extract(m, tmp, set_attrs=False, filter="data")
    for t in tops:
        target = dest / t
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        os.replace(tmp / t, target)
    shutil.rmtree(tmp, ignore_errors=True)
    marker.write_text("ok\n")
    return [dest / t for t in tops]

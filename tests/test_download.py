"""tumorseg download against a local HTTP server on 127.0.0.1 (no other address is contacted)."""

from __future__ import annotations

import hashlib
import http.server
import io
import re
import tarfile
import threading

import pytest

from tumorseg.data import DataError
from tumorseg.data.cli import download_main as main
from tumorseg.data.download import download


def _tar_bytes(extra: dict[str, bytes] | None = None) -> bytes:
    files = {
        "Task01_BrainTumour/dataset.json": b'{"name": "BRATS", "training": []}',
        "Task01_BrainTumour/imagesTr/BRATS_001.nii.gz": bytes(range(256)) * 400,
        "Task01_BrainTumour/imagesTr/._BRATS_001.nii.gz": b"\x00\x05\x16\x07AppleDouble",
        "Task01_BrainTumour/._dataset.json": b"\x00\x05\x16\x07AppleDouble",
        "Task01_BrainTumour/labelsTr/BRATS_001.nii.gz": b"label" * 1000,
    }
    files.update(extra or {})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class _Server:
    """Serves one blob at /Task01_BrainTumour.tar with Range support; can cut the body short."""

    def __init__(self, blob: bytes, cut_first_after: int | None = None, ranges: bool = True):
        self.blob = blob
        self.cut_first_after = cut_first_after
        self.ranges = ranges
        self.requests: list[dict] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):  # noqa: N802
                rng = self.headers.get("Range")
                outer.requests.append({"path": self.path, "range": rng})
                data, start = outer.blob, 0
                m = re.fullmatch(r"bytes=(\d+)-", rng or "")
                if m and outer.ranges:
                    start = int(m.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "application/x-tar")
                self.end_headers()
                if outer.cut_first_after is not None:
                    cut, outer.cut_first_after = outer.cut_first_after, None
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/Task01_BrainTumour.tar"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """Make sure urllib talks to 127.0.0.1 directly, never through a configured proxy."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def _md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def test_download_verifies_and_extracts_without_appledouble(tmp_path):
    blob = _tar_bytes()
    with _Server(blob) as srv:
        path = download(tmp_path, srv.url, _md5(blob))
    assert path == tmp_path / "Task01_BrainTumour.tar" and path.read_bytes() == blob
    assert not (tmp_path / "Task01_BrainTumour.tar.part").exists()
    root = tmp_path / "Task01_BrainTumour"
    extracted = sorted(p.relative_to(tmp_path).as_posix() for p in root.rglob("*") if p.is_file())
    assert extracted == [
        "Task01_BrainTumour/dataset.json",
        "Task01_BrainTumour/imagesTr/BRATS_001.nii.gz",
        "Task01_BrainTumour/labelsTr/BRATS_001.nii.gz",
    ]
    assert (root / "imagesTr" / "BRATS_001.nii.gz").read_bytes() == bytes(range(256)) * 400
    assert srv.requests == [{"path": "/Task01_BrainTumour.tar", "range": None}]
    # a rerun neither downloads nor re-extracts
    (root / "dataset.json").write_text("kept")
    assert download(tmp_path, srv.url, _md5(blob)) == path
    assert len(srv.requests) == 1 and (root / "dataset.json").read_text() == "kept"


def test_checksum_mismatch_keeps_nothing(tmp_path):
    blob = _tar_bytes()
    with _Server(blob) as srv, pytest.raises(DataError) as info:
        download(tmp_path, srv.url, "0" * 32)
    msg = str(info.value)
    assert str(tmp_path / "Task01_BrainTumour.tar") in msg and _md5(blob) in msg and "0" * 32 in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_cli_reports_mismatch(tmp_path, capsys):
    blob = _tar_bytes()
    with _Server(blob) as srv, pytest.raises(SystemExit) as exc:
        main(["--dest", str(tmp_path), "--url", srv.url, "--md5", "f" * 32])
    assert exc.value.code == 2 and "md5" in capsys.readouterr().err
    assert not (tmp_path / "Task01_BrainTumour.tar").exists()


def test_interrupted_transfer_resumes_with_range(tmp_path):
    blob = _tar_bytes()
    cut = len(blob) // 3
    with _Server(blob, cut_first_after=cut) as srv:
        path = download(tmp_path, srv.url, _md5(blob))
    assert path.read_bytes() == blob
    assert [r["range"] for r in srv.requests] == [None, f"bytes={cut}-"]
    assert (tmp_path / "Task01_BrainTumour" / "dataset.json").is_file()


def test_partial_file_from_earlier_run_is_resumed(tmp_path):
    blob = _tar_bytes()
    (tmp_path / "Task01_BrainTumour.tar.part").write_bytes(blob[:1000])
    with _Server(blob) as srv:
        download(tmp_path, srv.url, _md5(blob), extract=False)
    assert srv.requests[0]["range"] == "bytes=1000-"
    assert (tmp_path / "Task01_BrainTumour.tar").read_bytes() == blob
    assert not (tmp_path / "Task01_BrainTumour").exists()


def test_server_without_range_support_restarts(tmp_path):
    blob = _tar_bytes()
    (tmp_path / "Task01_BrainTumour.tar.part").write_bytes(b"stale bytes" * 10)
    with _Server(blob, ranges=False) as srv:
        download(tmp_path, srv.url, _md5(blob), extract=False)
    assert (tmp_path / "Task01_BrainTumour.tar").read_bytes() == blob


def test_unsafe_tar_member_is_rejected(tmp_path):
    blob = _tar_bytes({"../evil.txt": b"x"})
    with _Server(blob) as srv, pytest.raises(DataError) as info:
        download(tmp_path / "dest", srv.url, _md5(blob))
    assert "../evil.txt" in str(info.value) and "Task01_BrainTumour.tar" in str(info.value)
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "dest" / "Task01_BrainTumour").exists()

"""tumorseg.atomic: a target is either the old file or the complete new one, never half-written."""

from __future__ import annotations

import os
import stat

import pytest

from tumorseg.atomic import atomic_path, write_bytes, write_text


def test_write_creates_folder_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "a.json"
    assert write_text(target, '{"k": 1}\n') == target
    assert target.read_text() == '{"k": 1}\n'
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600


def test_failed_block_keeps_the_old_file(tmp_path):
    target = tmp_path / "x.h5"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target, suffix=".h5") as tmp:
            assert tmp.parent == tmp_path and tmp.name.endswith(".h5")
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.h5"]


def test_failed_rename_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "x.nii.gz"
    target.write_bytes(b"old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_bytes(target, b"new content")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.nii.gz"]

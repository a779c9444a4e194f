"""tumorseg.hardware: the CPU report of `make bench` and of the training manifest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tumorseg import hardware

ROOT = Path(__file__).resolve().parents[1]

X86 = """processor\t: 0
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512_bf16
processor\t: 1
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512_bf16
"""
ARM = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 bf16
"""


def test_cpuinfo_gives_the_model_and_the_flags_of_interest(tmp_path: Path):
    path = tmp_path / "cpuinfo"
    path.write_text(X86)
    info = hardware.cpu_info(path)
    assert info.model == "AMD EPYC 7B13"
    assert info.flags == ("avx2", "avx512f", "avx512_bf16")  # in FLAGS_OF_INTEREST order
    assert info.cores >= 1 and hardware.native_bf16(info.flags)
    assert info.record()["flags"] == ["avx2", "avx512f", "avx512_bf16"]


def test_arm_and_missing_cpuinfo_give_no_x86_flags(tmp_path: Path):
    path = tmp_path / "cpuinfo"
    path.write_text(ARM)
    assert hardware.cpu_info(path).flags == ()  # ARM's "bf16" feature is not an x86 flag
    info = hardware.cpu_info(tmp_path / "absent")  # macOS, Windows: no /proc/cpuinfo
    assert info.flags == () and info.model and info.cores >= 1


@pytest.mark.parametrize(
    ("flags", "native"),
    [
        (("avx2",), False),
        (("avx2", "avx512f"), False),
        (("avx2", "avx512f", "avx512_bf16"), True),
        (("avx2", "amx_tile", "amx_bf16"), True),
    ],
)
def test_native_bf16_needs_avx512_bf16_or_amx(flags, native):
    assert hardware.native_bf16(flags) is native


def test_report_names_cpu_flags_and_onednn(monkeypatch):
    info = hardware.CpuInfo("Some CPU", ("avx2",), 2, "x86_64")
    monkeypatch.setattr(hardware, "onednn_available", lambda: True)
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    text = hardware.report(info)
    assert "Some CPU" in text and "avx2 (no native bf16)" in text
    assert "oneDNN: off, Eigen kernels (TF_ENABLE_ONEDNN_OPTS=0)" in text
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    assert "oneDNN: on (TF_ENABLE_ONEDNN_OPTS=1)" in hardware.report(info)
    monkeypatch.setattr(hardware, "onednn_available", lambda: False)
    assert "oneDNN: off (no oneDNN" in hardware.report(info)


def test_onednn_env_sets_and_restores_the_variable(monkeypatch):
    import os

    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    with hardware.onednn_env(hardware.CODE_PATHS["oneDNN off"]):
        assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "0"
    assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "1"
    with hardware.onednn_env(None):
        assert "TF_ENABLE_ONEDNN_OPTS" not in os.environ
    assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "1"


def test_trim_heap_gives_freed_heap_memory_back():
    """0.4 GB of small blocks freed around a few live ones stay resident until trim_heap."""
    code = (
        "import psutil\n"
        "from tumorseg.hardware import trim_heap\n"
        "blocks = [bytearray(4000) for _ in range(100_000)]\n"
        "kept = blocks[::50]  # the heap cannot shrink from its top\n"
        "del blocks\n"
        "before = psutil.Process().memory_info().rss\n"
        "called = trim_heap()\n"
        "print(called, before - psutil.Process().memory_info().rss)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    called, freed = done.stdout.split()
    if called == "False":
        pytest.skip("this C library has no malloc_trim (not glibc)")
    assert int(freed) > 200 * 2**20, f"only {int(freed) / 2**20:.0f} MiB given back"

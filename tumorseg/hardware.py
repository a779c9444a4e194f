"""What this machine's CPU offers the deep-learning backend, in one place.

    tumorseg hardware      # the report below; `make bench` prints it first

:func:`cpu_info` reads the CPU model, the instruction-set flags that decide TensorFlow's speed
(:data:`FLAGS_OF_INTEREST`) and the core count; on Linux from ``/proc/cpuinfo``, elsewhere
(macOS, Windows) from :mod:`platform` with no flags.  :func:`native_bf16` says whether the
CPU computes bfloat16 natively (AVX512-BF16 or AMX), which is where ``mixed_bfloat16`` pays
off; :func:`onednn_state` whether TensorFlow's oneDNN kernels are on in this process.
:func:`trim_heap` hands the C heap's free memory back to the system.
"""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tumorseg.quiet import onednn_enabled

CPUINFO = Path("/proc/cpuinfo")
#: The x86 flags that decide the code path: AVX2 (Eigen's fast path), AVX512F (TensorFlow turns
#: oneDNN on by itself), AVX512-BF16 and AMX (native bfloat16 arithmetic).
FLAGS_OF_INTEREST = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
#: Any one of these means native bfloat16 arithmetic.
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
#: TensorFlow's two CPU code paths, by the ``TF_ENABLE_ONEDNN_OPTS`` value that selects them
#: (for a child process: TensorFlow reads it once, on import).  "off" is the Eigen path that
#: CPUs without oneDNN (Apple Silicon) run.
CODE_PATHS = {"oneDNN on": "1", "oneDNN off": "0"}


@dataclass(frozen=True)
class CpuInfo:
    """model: the CPU's name; flags: those of :data:`FLAGS_OF_INTEREST` it has, in that order;
    cores: logical cores; machine: the architecture (``x86_64``, ``arm64``, ...)."""

    model: str
    flags: tuple[str, ...]
    cores: int
    machine: str

    def record(self) -> dict:
        """JSON-ready dict (the training manifest's ``"cpu"``)."""
        return {
            "model": self.model,
            "flags": list(self.flags),
            "cores": self.cores,
            "machine": self.machine,
        }


def parse_cpuinfo(text: str) -> tuple[str | None, set[str]]:
    """The first ``model name`` and the ``flags`` (x86) or ``Features`` (ARM) of a
    ``/proc/cpuinfo`` text; (None, empty set) for what it does not list."""
    model, flags = None, set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and model is None:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return model, flags


def _macos_model() -> str | None:
    """The CPU brand string on macOS (``Apple M2``, ``Intel(R) Core(TM) ...``), else None."""
    try:
        out = subprocess.run(
            ["sysctl", "-n", "machdep.cpu.brand_string"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def cpu_info(cpuinfo: Path = CPUINFO) -> CpuInfo:
    """This machine's :class:`CpuInfo`; never raises (unknown parts become ``"unknown"``/empty)."""
    model, flags = None, set()
    try:
        model, flags = parse_cpuinfo(cpuinfo.read_text(errors="replace"))
    except OSError:
        if platform.system() == "Darwin":
            model = _macos_model()
    return CpuInfo(
        model=model or platform.processor() or "unknown",
        flags=tuple(f for f in FLAGS_OF_INTEREST if f in flags),
        cores=os.cpu_count() or 1,
        machine=platform.machine() or "unknown",
    )


def native_bf16(flags: tuple[str, ...] | set[str]) -> bool:
    """True when ``flags`` include native bfloat16 arithmetic (AVX512-BF16 or AMX-BF16)."""
    return bool(BF16_FLAGS.intersection(flags))


def onednn_available() -> bool:
    """False where TensorFlow's wheel has no oneDNN at all (macOS on Apple Silicon)."""
    return not (platform.system() == "Darwin" and platform.machine() == "arm64")


def onednn_state() -> str:
    """Whether oneDNN is on in this process, in words, with the variable that decided it."""
    if not onednn_available():
        return "off (no oneDNN in TensorFlow on this platform: Eigen kernels)"
    value = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    if onednn_enabled() is None:
        return "TensorFlow's default (TF_ENABLE_ONEDNN_OPTS unset: on for AVX512-class CPUs)"
    state = "on" if onednn_enabled() else "off, Eigen kernels"
    return f"{state} (TF_ENABLE_ONEDNN_OPTS={value})"


def report(info: CpuInfo | None = None) -> str:
    """Three lines: the CPU model and cores, its flags of interest, oneDNN on or off."""
    info = info or cpu_info()
    flags = ", ".join(info.flags) or "none of " + ", ".join(FLAGS_OF_INTEREST)
    bf16 = "native bf16" if native_bf16(info.flags) else "no native bf16"
    return (
        f"CPU: {info.model} ({info.machine}, {info.cores} logical cores)\n"
        f"CPU flags: {flags} ({bf16})\n"
        f"oneDNN: {onednn_state()}"
    )


def trim_heap() -> bool:
    """Return the free memory of the C heap to the operating system (glibc's ``malloc_trim``).

    Freed blocks in the middle of the heap otherwise stay in the process's resident memory;
    TensorFlow's Eigen path (oneDNN off) leaves over 0.1 GB of them after training a small U-Net.
    True when it was called; False where the C library has no ``malloc_trim`` (macOS, Windows,
    musl), where it does nothing.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        trim = None
    if trim is None:
        return False
    trim(0)
    return True


@contextmanager
def onednn_env(value: str | None) -> Iterator[None]:
    """``TF_ENABLE_ONEDNN_OPTS`` set to ``value`` (None: removed) inside the block, for the
    child processes started there (kernels, spawned workers, subprocesses); the previous
    value is restored after.  It does not change the path of a TensorFlow already imported."""
    saved = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    try:
        if value is None:
            os.environ.pop("TF_ENABLE_ONEDNN_OPTS", None)
        else:
            os.environ["TF_ENABLE_ONEDNN_OPTS"] = value
        yield
    finally:
        if saved is None:
            os.environ.pop("TF_ENABLE_ONEDNN_OPTS", None)
        else:
            os.environ["TF_ENABLE_ONEDNN_OPTS"] = saved

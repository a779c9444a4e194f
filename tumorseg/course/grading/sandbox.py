"""Run one command (a grading run) in its own session with resource limits, then kill every
process it left behind.  The grader passes the ``bwrap`` command of :mod:`.isolation` as CMD
(the namespaces, the file view and the process limit), or pytest itself with ``--no-sandbox``.

Usage (the grader starts it, see :func:`runner_command`; it is not a user command)::

    python -m tumorseg.course.grading.cli sandbox --timeout S --memory-mb M --cwd DIR -- CMD ...

The runner makes itself a *child subreaper* (Linux ``PR_SET_CHILD_SUBREAPER``), so processes
that the student's code double-forks or starts in a new session are re-parented to it instead of
init; at the end it freezes and kills all its descendants, whatever their process group.  The
command runs with ``start_new_session=True`` and these limits (inherited by the kernel):
``RLIMIT_AS`` (address space), ``RLIMIT_CORE`` = 0, ``RLIMIT_FSIZE`` (largest file written) and
``RLIMIT_CPU`` (= the wall-clock timeout).  The exit status is the command's, or 124 when the
wall-clock timeout fired.  ``PR_SET_PDEATHSIG`` makes the runner clean up if the grader dies.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
TIMEOUT_STATUS = 124


def _prctl(option: int, value: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def kill_descendants(rounds: int = 50) -> int:
    """Stop, then SIGKILL every descendant of this process until none is left; returns how many
    were killed.  Stopping first keeps a fork loop from outrunning the kill."""
    me = psutil.Process()
    killed = 0
    for _ in range(rounds):
        try:
            kids = me.children(recursive=True)
        except psutil.Error:
            kids = []
        if not kids:
            break
        for kid in kids:
            try:
                kid.suspend()
            except psutil.Error:
                pass
        for kid in kids:
            try:
                kid.kill()
                killed += 1
            except psutil.Error:
                pass
        psutil.wait_procs(kids, timeout=1.0)
        # reap re-parented orphans (we are their subreaper)
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
    return killed


def _limits(memory_mb: int, cpu_s: int, fsize_mb: int) -> None:
    mem = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_mb * 1024 * 1024,) * 2)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))


def run(
    cmd: list[str],
    cwd: str,
    timeout: float,
    memory_mb: int,
    fsize_mb: int = 256,
    log: str | None = None,
) -> int:
    """Run ``cmd`` under the limits; always leaves no descendant behind.  Returns its status."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=lambda: _limits(memory_mb, int(timeout) + 5, fsize_mb),  # noqa: PLW1509
    )
    try:
        status = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        status = TIMEOUT_STATUS
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        kill_descendants()
        if log:
            out.close()
    return status


def runner_command(
    cmd: list[str], timeout: float, memory_mb: int, cwd: str | Path, log: str | Path | None = None
) -> list[str]:
    """The command line that runs ``cmd`` under this runner (see the module docstring)."""
    options = ["--timeout", str(timeout), "--memory-mb", str(memory_mb), "--cwd", str(cwd)]
    if log is not None:
        options += ["--log", str(log)]
    return [sys.executable, "-m", "tumorseg.course.grading.cli", "sandbox", *options, "--", *cmd]


def run_as_runner(
    cmd: list[str],
    cwd: str,
    timeout: float,
    memory_mb: int,
    fsize_mb: int = 256,
    log: str | None = None,
) -> int:
    """The runner process's whole work (its command line is ``sandbox_main`` in
    :mod:`.cli`): be signalled (SIGTERM, then exit 143) when the grader dies, :func:`run`
    ``cmd``, kill every descendant, and append the status and wall time to ``log``.  Returns
    the exit status: the command's, 124 on timeout, ``128 + N`` when signal N killed it.
    Installs a SIGTERM handler, so call it only in the runner process."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    def _stop(signum: int, frame: object) -> None:
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, _stop)
    started = time.monotonic()
    try:
        status = run(cmd, cwd, timeout, memory_mb, fsize_mb, log)
    finally:
        kill_descendants()
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"\n[sandbox] status {status} after {time.monotonic() - started:.1f} s\n")
    return status if status >= 0 else 128 - status

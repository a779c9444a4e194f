"""pytest plugin of one grading run; the grader copies this file into the grading folder as
``conftest.py``.  It runs in the pytest process, never in the kernel.

- Tags every nbval item with JUnit properties taken from the cell metadata the grader wrote
  (``role``: prelude / setup / pre / student / check, ``exercise``: C1..C6), then adds
  ``outcome`` (ok, exception, mismatch, timeout, kernel-died, kernel-dead, after-timeout,
  skipped, setup-error, plugin-error) and ``ename`` (the exception's class name).
- Replaces nbval's wait for a cell's reply by one that polls the kernel process every 0.2 s,
  so a dead kernel (``os._exit``, a crash, the memory limit) is reported in well under a second
  instead of after the cell timeout; the timeout itself depends on the cell's role.
- Ignores stderr in compared outputs (TensorFlow logs there) and truncates long reports.
- Appends ``<role> <exercise>`` to ``progress.log`` before each cell, so the grader can tell
  which cell was running if the whole process is killed.
"""

from __future__ import annotations

import json
import os
import queue
import time

import pytest
from nbval import kernel as _nbval_kernel
from nbval.plugin import NbCellError

_CONF = json.loads(os.environ.pop("TUMORSEG_GRADE_CONF", "{}"))
_TIMEOUTS: dict[str, float] = _CONF.get("timeouts", {})
_state: dict[str, float | None] = {"timeout": None}
ROLE_KEY = "tumorseg_grading"


class KernelDied(RuntimeError):
    """The kernel process exited while a cell was running."""


def _await_reply(self, msg_id, timeout=None):  # noqa: ANN001 - nbval's signature
    limit = _state["timeout"] or timeout
    deadline = None if limit is None else time.monotonic() + limit
    while True:
        wait = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
        if wait <= 0:
            raise queue.Empty
        try:
            msg = self.kc.get_shell_msg(timeout=wait)
        except queue.Empty:
            if not self.km.is_alive():
                raise KernelDied("the kernel process died") from None
            continue
        if msg["parent_header"].get("msg_id") == msg_id:
            if msg["content"]["status"] == "aborted":
                raise RuntimeError("Kernel aborted execution request")
            return


_nbval_kernel.RunningKernel.await_reply = _await_reply


def _role(item: pytest.Item) -> tuple[str, str]:
    meta = getattr(item, "cell", {}).get("metadata", {}).get(ROLE_KEY, {})
    return str(meta.get("role", "?")), str(meta.get("exercise", ""))


def pytest_collectstart(collector):  # noqa: ANN001
    if str(getattr(collector, "path", "")).endswith(".ipynb"):
        collector.skip_compare = (*collector.skip_compare, "stderr")


def pytest_collection_modifyitems(items):  # noqa: ANN001
    for item in items:
        role, exercise = _role(item)
        item.user_properties.extend([("role", role), ("exercise", exercise)])


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):  # noqa: ANN001
    role, exercise = _role(item)
    with open("progress.log", "a", encoding="utf-8") as fh:
        fh.write(f"{role} {exercise}\n")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):  # noqa: ANN001
    _state["timeout"] = _TIMEOUTS.get(_role(item)[0])
    try:
        yield
    finally:
        _state["timeout"] = None


def _outcome(
    item: pytest.Item, call: pytest.CallInfo, report: pytest.TestReport
) -> tuple[str, str]:
    if hasattr(report, "wasxfail"):
        return "after-timeout", ""
    if call.excinfo is None:
        return ("skipped", "") if report.skipped else ("ok", "")
    exc = call.excinfo.value
    if report.skipped:
        return "skipped", ""
    if isinstance(exc, KernelDied):
        return "kernel-died", ""
    if isinstance(exc, RuntimeError) and "Kernel dead" in str(exc):
        return "kernel-dead", ""
    if isinstance(exc, NbCellError):
        text = str(exc)
        if "Timeout" in text:
            return "timeout", ""
        if "outputs differ" in text:
            return "mismatch", ""
        ename = ""
        for out in getattr(item, "test_outputs", None) or []:
            if out.get("output_type") == "error":
                ename = str(out.get("ename", ""))[:80]
        return "exception", ename
    return "plugin-error", type(exc).__name__


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # noqa: ANN001
    result = yield
    report = result.get_result()
    if call.when == "setup" and call.excinfo is not None and not report.skipped:
        item.user_properties.append(("outcome", "setup-error"))
    elif call.when == "call":
        kind, ename = _outcome(item, call, report)
        item.user_properties.append(("outcome", kind))
        if ename:
            item.user_properties.append(("ename", ename))
    if report.longrepr is not None and len(str(report.longrepr)) > 4000:
        report.longrepr = str(report.longrepr)[:4000] + "\n[truncated by the grader]"

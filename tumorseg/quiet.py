"""Import the deep-learning backend without the C++ runtime's start-up lines on stderr.

TensorFlow 2.21 writes lines such as ``WARNING: All log messages before absl::InitializeLog()
is called are written to STDERR``, ``... port.cc:153] oneDNN custom operations are on ...`` and
``... cudart_stub.cc:31] Could not find cuda drivers ...`` straight to file descriptor 2 while
``import keras`` loads it, before it reads ``TF_CPP_MIN_LOG_LEVEL``.  In Jupyter they appear in
red under the imports cell.  :func:`import_backend` imports Keras (and so its backend) with
descriptor 2 redirected to a temporary file, then writes back to ``sys.stderr`` every line that
is not such a log line.  Python errors are never hidden: an exception raised by the import
propagates after descriptor 2 is restored, and any other text (warnings, tracebacks printed by
native code, unknown messages) is written back unchanged.

:class:`KeepaliveUnitsFilter` does the same for one false alarm on ``make lab``'s terminal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from types import ModuleType

#: The absl preamble printed before the first C++ log line.
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called"
#: A glog/absl formatted line: severity letter, date/time, thread id, ``file.cc:line]``.
_LOG_LINE = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ \S+:\d+\] ")
#: Severities hidden at each ``TF_CPP_MIN_LOG_LEVEL`` (0 all shown, 3 only fatal shown).
_HIDDEN = {0: "", 1: "I", 2: "IW", 3: "IWE"}
#: Lines that CPU-only machines print from the CUDA plugins of the pip wheel; never actionable.
_HARMLESS = re.compile(
    r"Unable to register cu(DNN|FFT|BLAS) factory|computation placer already registered"
    r"|TF-TRT Warning: Could not find TensorRT|failed call to cuInit"
)
#: Second lines of multi-line runtime messages, hidden together with their first line.
_CONTINUATION = re.compile(r"To enable the following instructions: ")


def _min_log_level() -> int:
    """``TF_CPP_MIN_LOG_LEVEL`` as 0..3 (unset or unreadable: 0, TensorFlow's own default)."""
    try:
        return min(max(int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0")), 0), 3)
    except ValueError:
        return 0


def is_runtime_log_line(line: str, level: int | None = None) -> bool:
    """True when ``line`` is a C++ runtime log line that ``TF_CPP_MIN_LOG_LEVEL`` (or ``level``,
    0..3) asks to hide, or a known harmless CUDA-plugin line; False for every other text."""
    level = _min_log_level() if level is None else level
    hidden = _HIDDEN[min(max(level, 0), 3)]
    if line.startswith(_ABSL_PREAMBLE):
        return level >= 1
    match = _LOG_LINE.match(line)
    if match is None:
        return False
    return match.group(1) in hidden or (level >= 1 and bool(_HARMLESS.search(line)))


def visible_lines(text: str, level: int | None = None) -> list[str]:
    """The lines of ``text`` (with their line ends) left after dropping the runtime log lines
    that :func:`is_runtime_log_line` hides, with their known continuation lines (the second
    line of TensorFlow's CPU-instructions notice).  Every other line is kept."""
    kept, hiding = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith(_ABSL_PREAMBLE) or _LOG_LINE.match(line):
            hiding = is_runtime_log_line(line, level)
        elif not (hiding and _CONTINUATION.match(line)):
            hiding = False
        if not hiding:
            kept.append(line)
    return kept


@contextlib.contextmanager
def filtered_native_stderr(level: int | None = None) -> Iterator[None]:
    """Inside the block, file descriptor 2 goes to a temporary file; on exit it is restored and
    every captured line that :func:`is_runtime_log_line` does not hide is written to
    ``sys.stderr``.  Exceptions propagate unchanged.  Where descriptor 2 cannot be duplicated
    (no console), the block runs unfiltered."""
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()  # text Python wrote to descriptor 2 lands in the file
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            kept = visible_lines(text, level)
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def _keras_backend_name() -> str:
    """The backend ``import keras`` will load: ``KERAS_BACKEND``, else the ``backend`` of
    ``keras.json`` in ``KERAS_HOME`` (default ``~/.keras``), else "tensorflow"."""
    name = os.environ.get("KERAS_BACKEND")
    if name:
        return name
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json"), encoding="utf-8") as f:
            return str(json.load(f).get("backend", "tensorflow"))
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


@contextlib.contextmanager
def _jax_hidden() -> Iterator[None]:
    """While open, ``import jax`` raises ImportError (unless JAX is already imported).

    TensorFlow's TFLite helpers import JAX when it is installed, only for converting JAX
    functions; with JAX hidden, importing TensorFlow leaves it out (0.11 GB less resident
    memory and 0.3 s less on the development machine).  A later ``import jax`` works as usual.
    """
    if "jax" in sys.modules:
        yield
        return
    sys.modules["jax"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if sys.modules.get("jax", 0) is None:
            del sys.modules["jax"]


def import_backend() -> ModuleType:
    """Import and return ``keras`` (which loads its backend, TensorFlow by default) with the
    runtime's start-up log lines filtered as :func:`filtered_native_stderr` describes.  With the
    TensorFlow backend, TensorFlow is imported first with JAX hidden (:func:`_jax_hidden`).  A
    no-op returning the module when Keras is already imported."""
    if "keras" in sys.modules:
        return sys.modules["keras"]
    with filtered_native_stderr():
        if _keras_backend_name() == "tensorflow" and "tensorflow" not in sys.modules:
            with _jax_hidden():
                import tensorflow  # noqa: F401
        import keras

        if keras.backend.backend() == "tensorflow":
            # the CUDA plugin looks for a driver (``failed call to cuInit``) when TensorFlow
            # first lists its devices, not on import: do that here too, inside the filter
            import tensorflow as tf

            tf.config.list_physical_devices()
    return keras


def onednn_enabled() -> bool | None:
    """Whether TensorFlow's oneDNN kernels are on in this process: True or False from
    ``TF_ENABLE_ONEDNN_OPTS`` (which ``import tumorseg`` sets to 1 unless the user set it),
    None when it is unset (TensorFlow's own per-CPU default)."""
    value = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    if value is None:
        return None
    return value.strip().lower() in {"1", "true", "yes", "on"}


#: tornado's (6.5+) warning, logged once per process, that a websocket's ping timeout exceeds
#: its ping interval.
_TORNADO_PING_TIMEOUT = re.compile(
    r"The websocket_ping_timeout \((?P<timeout>[\d.]+)\) cannot be longer than the "
    r"websocket_ping_interval \((?P<interval>[\d.]+)\)"
)


class KeepaliveUnitsFilter(logging.Filter):
    """A logging filter (for a Jupyter server's log handler) that drops tornado's warning
    ``The websocket_ping_timeout (90000) cannot be longer than the websocket_ping_interval
    (30000)`` when the numbers are jupyter_server's milliseconds, and nothing else.

    jupyter_server's ``WebSocketMixin`` (the kernel and terminal websockets) defines the
    properties ``ping_interval`` and ``ping_timeout`` in milliseconds (30000 and 90000: a ping
    every 30 s, the socket closed when no pong came for 90 s), and they shadow tornado's own
    ``WebSocketHandler`` properties of the same names, which tornado reads in seconds.  Tornado
    then sees a timeout longer than the interval, warns on the first websocket a server opens,
    and caps its own timer at 30000 s; jupyter_server's keep-alive is unaffected.  No setting
    silences it and keeps the keep-alive: tornado wants ``ws_ping_timeout <= ws_ping_interval``,
    and then jupyter_server's check (no pong for longer than the timeout) closes every kernel
    websocket at its first ping; ``ws_ping_interval = 0`` silences it by turning pings off.

    The record is dropped only when it comes from tornado's websocket module and its interval
    is 1000 or more (16 minutes, if it really were seconds); tornado's warning about a timeout
    configured in seconds, and jupyter_server's "WebSocket ping timeout after ... ms" (a client
    that stopped answering), still show.  ``make lab`` installs it through
    ``--ServerApp.logging_config``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.pathname.replace("\\", "/").endswith("tornado/websocket.py"):
            return True
        match = _TORNADO_PING_TIMEOUT.match(record.getMessage())
        return match is None or float(match.group("interval")) < 1000

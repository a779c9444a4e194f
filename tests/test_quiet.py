"""Silent start-up: the C++ runtime's log lines are filtered, nothing else is hidden."""

from __future__ import annotations

import importlib.util
import json
import logging
import logging.config
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tumorseg.quiet import KeepaliveUnitsFilter, is_runtime_log_line, visible_lines
from tumorseg.resources import instructor_notebook

ROOT = Path(__file__).resolve().parents[1]
INSTRUCTOR = instructor_notebook()
#: Fragments of the lines TensorFlow 2.21 prints while Keras loads it.
NOISE = ("absl::InitializeLog", "oneDNN custom operations", "Could not find cuda drivers")

TF_LINES = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1795804547.593620   10502 port.cc:153] oneDNN custom operations are on.
I0000 00:00:1795804547.593907   10502 cudart_stub.cc:31] Could not find cuda drivers on your machine.
I0000 00:00:1795804626.171851   13126 cpu_feature_guard.cc:227] This TensorFlow binary is optimized
To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow.
"""


def _python(code: str, level: str = "3") -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": level, "KERAS_BACKEND": "tensorflow"}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, cwd=ROOT
    )


def test_log_lines_follow_the_level():
    warn = "W0000 00:00:1.5   7 gpu.cc:1] slow\n"
    error = "E0000 00:00:1.5   7 session.cc:52] could not allocate\n"
    cuinit = "E0000 00:00:1.5   7 cuda_platform.cc:52] failed call to cuInit: UNKNOWN\n"
    assert visible_lines(TF_LINES, 0) == TF_LINES.splitlines(keepends=True)
    assert visible_lines(TF_LINES, 1) == []  # the continuation line goes with its log line
    assert [is_runtime_log_line(warn, lv) for lv in range(4)] == [False, False, True, True]
    assert [is_runtime_log_line(error, lv) for lv in range(4)] == [False, False, False, True]
    # a CPU-only machine's CUDA probe is never actionable: hidden from level 1 on
    assert [is_runtime_log_line(cuinit, lv) for lv in range(4)] == [False, True, True, True]
    fatal = "F0000 00:00:1.5   7 x.cc:1] abort\n"
    assert not is_runtime_log_line(fatal, 3)


def test_python_text_is_never_hidden():
    python = (
        'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: boom\n'
        "/lib/x.py:3: DeprecationWarning: old\n  warnings.warn(msg)\n"
        "plain text\n"
    )
    # right after a hidden log line and its continuation, other text is kept
    assert "".join(visible_lines(TF_LINES + python, 3)) == python
    assert visible_lines(TF_LINES.splitlines(keepends=True)[2] + "mine\n", 3) == ["mine\n"]
    assert visible_lines("\n", 3) == ["\n"]


def test_filter_keeps_other_text_and_raises_errors():
    code = (
        "import os, sys\n"
        "from tumorseg.quiet import filtered_native_stderr\n"
        "with filtered_native_stderr():\n"
        f"    os.write(2, {TF_LINES.encode()!r})\n"
        "    os.write(2, b'native message\\n')\n"
        "    print('python message', file=sys.stderr)\n"
        "print('after', file=sys.stderr)\n"
        "with filtered_native_stderr():\n"
        "    raise RuntimeError('not hidden')\n"
    )
    done = _python(code)
    assert done.returncode == 1
    assert done.stderr.startswith("native message\npython message\nafter\nTraceback")
    assert "RuntimeError: not hidden" in done.stderr
    assert not any(noise in done.stderr for noise in NOISE)


def test_import_backend_is_silent_where_plain_import_is_not():
    plain = _python("import keras")
    quiet = _python(
        "from tumorseg.quiet import import_backend; import_backend(); import util", level="3"
    )
    # the pinned TensorFlow prints these lines despite TF_CPP_MIN_LOG_LEVEL=3
    assert any(noise in plain.stderr for noise in NOISE), plain.stderr
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_import_backend_leaves_jax_out_of_a_tensorflow_process():
    # plain TensorFlow loads JAX (its TFLite helpers import it when installed); import_backend
    # hides it while TensorFlow loads, and a later `import jax` still works
    code = (
        "import sys; from tumorseg.quiet import import_backend; import_backend(); "
        "print('jaxlib' in sys.modules, 'tensorflow' in sys.modules); "
        "import jax; print(float(jax.numpy.ones(3).sum()))"
    )
    plain = _python("import sys, tensorflow; print('jaxlib' in sys.modules)")
    quiet = _python(code)
    assert plain.stdout.split() == ["True"], plain.stderr
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.split() == ["False", "True", "3.0"]


def test_keras_backend_name_follows_keras_rules(tmp_path, monkeypatch):
    from tumorseg.quiet import _keras_backend_name

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    assert _keras_backend_name() == "tensorflow"  # no keras.json
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "jax"}))
    assert _keras_backend_name() == "jax"
    monkeypatch.setenv("KERAS_BACKEND", "torch")  # the variable wins over the file
    assert _keras_backend_name() == "torch"
    monkeypatch.delenv("KERAS_BACKEND")
    (tmp_path / "keras.json").write_text("{not json")
    assert _keras_backend_name() == "tensorflow"


def test_jax_hidden_only_while_open_and_never_when_jax_is_loaded(monkeypatch):
    from tumorseg.quiet import _jax_hidden

    monkeypatch.delitem(sys.modules, "jax", raising=False)
    with _jax_hidden():
        with pytest.raises(ImportError):
            import jax  # noqa: F401
    assert "jax" not in sys.modules
    loaded = object()
    monkeypatch.setitem(sys.modules, "jax", loaded)
    with _jax_hidden():
        assert sys.modules["jax"] is loaded
    assert sys.modules["jax"] is loaded


@pytest.mark.slow
def test_notebook_start_up_shows_no_stderr_in_the_html(tmp_path):
    """The instructor notebook's start-up cells, run and exported as `make run` does."""
    spec = importlib.util.spec_from_file_location(
        "run_notebook", ROOT / "scripts" / "run_notebook.py"
    )
    run_notebook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_notebook)
    cells = nbformat.read(INSTRUCTOR, as_version=4).cells
    nb = nbformat.v4.new_notebook(cells=[c for c in cells if c.id in {"imports", "imports-2"}])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    _, _, _, error = run_notebook.execute(nb, INSTRUCTOR.parent, timeout=300)
    assert error is None
    assert run_notebook.stderr_cells(nb) == []
    html = run_notebook.export_html(nb)
    assert "TensorFlow" in html  # the version line of imports-2 is there ...
    assert not any(noise in html for noise in NOISE)  # ... the runtime's log lines are not


def test_the_notebook_runner_starts_its_kernel_without_a_transport_warning():
    """`make run`'s notebook step (``scripts/run_notebook.py``) encrypts its kernel's
    connection, so ipykernel does not print "Kernel is running over TCP without encryption"
    on the terminal (one small cell; the whole notebook: ``tests/test_notebook_memory.py``)."""
    code = (
        "import sys, nbformat\n"
        "sys.path.insert(0, 'scripts')\n"
        "import run_notebook\n"
        "nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('print(6 * 7)')])\n"
        "_, _, _, error = run_notebook.execute(nb, run_notebook.ROOT, timeout=120)\n"
        "print(error, nb.cells[0].outputs[0]['text'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert done.stdout.split() == ["None", "42"], done.stdout + done.stderr
    assert done.stderr == ""


def _tornado_ping_warnings(interval: float, timeout: float) -> list[logging.LogRecord]:
    """The records tornado's websocket protocol logs when it reads these ping settings."""
    from tornado import websocket

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("tornado.general")
    logger.addHandler(handler)
    try:
        websocket.de_dupe_gen_log.cache_clear()  # tornado logs each message once per process
        params = websocket._WebSocketParams(ping_interval=interval, ping_timeout=timeout)
        protocol = websocket.WebSocketProtocol13(None, False, params)
        assert protocol.ping_timeout == min(interval, timeout)  # tornado caps it
    finally:
        logger.removeHandler(handler)
    return [r for r in records if "cannot be longer" in r.getMessage()]


def test_keepalive_filter_drops_only_tornados_false_alarm():
    """``make lab``'s log filter drops tornado's "websocket_ping_timeout (90000) cannot be
    longer than the websocket_ping_interval (30000)", which jupyter_server's keep-alive (in
    milliseconds, read by tornado as seconds) trips, and keeps every other line."""
    pytest.importorskip("jupyter_server")
    from jupyter_server.base.websocket import WebSocketMixin

    class Handler(WebSocketMixin):
        settings: dict = {}

    keepalive = Handler()  # jupyter_server's defaults: a ping every 30 s, 90 s for a pong
    drop = KeepaliveUnitsFilter().filter
    (false_alarm,) = _tornado_ping_warnings(keepalive.ping_interval, keepalive.ping_timeout)
    assert "(90000) cannot be longer than the websocket_ping_interval (30000)" in (
        false_alarm.getMessage()
    )
    assert not drop(false_alarm)
    (in_seconds,) = _tornado_ping_warnings(30, 60)  # a real misconfiguration still shows
    assert drop(in_seconds)
    lost_client = logging.LogRecord(
        "ServerApp",
        logging.WARNING,
        "/x/jupyter_server/base/websocket.py",
        157,
        "WebSocket ping timeout after %i ms.",
        (90007,),
        None,
    )
    assert drop(lost_client)
    other = logging.LogRecord(
        "tornado.general", logging.WARNING, "/x/tornado/websocket.py", 1, "other", (), None
    )
    assert drop(other)


def test_make_lab_installs_the_keepalive_filter():
    """The Makefile's LAB_QUIET gives the server's console handler that filter."""
    quiet = re.search(r"^LAB_QUIET\s*:=(.*)$", (ROOT / "Makefile").read_text(), re.M)
    options = dict(o.split("=", 1) for o in shlex.split(quiet.group(1)))
    config = json.loads(options["--ServerApp.logging_config"])
    names = config["handlers"]["console"]["filters"]
    factories = [config["filters"][name]["()"] for name in names]
    resolve = logging.config.BaseConfigurator({}).resolve
    assert KeepaliveUnitsFilter in [resolve(f) for f in factories]


def _tumorseg(args: list[str], env_extra: dict[str, str] | None = None):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "tumorseg", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=ROOT,
    )


def _without_progress(stderr: str) -> list[str]:
    """stderr lines other than tqdm's progress bars (redrawn with carriage returns and
    cursor-up codes)."""
    lines = stderr.replace("\x1b[A", "").replace("\r", "\n").splitlines()
    return [ln for ln in lines if ln.strip() and not re.match(r"\s*(predict|evaluate):", ln)]


@pytest.mark.slow
def test_command_line_tools_print_no_runtime_lines(sample_data, tmp_path):
    """`tumorseg predict --help`, a one-case `predict` and `evaluate`: stderr holds no
    TensorFlow start-up line (TF_CPP_MIN_LOG_LEVEL unset, as a user types them)."""
    assert _tumorseg(["predict", "--help"]).stderr == ""
    case = sample_data / "imagesTr" / "BRATS_001.nii.gz"
    predicted = _tumorseg(["predict", str(case), "--out", str(tmp_path / "seg.nii.gz")])
    assert predicted.returncode == 0, predicted.stderr
    assert _without_progress(predicted.stderr) == []
    evaluated = _tumorseg(["evaluate", "--data", str(sample_data), "--cases", "BRATS_001"])
    assert evaluated.returncode == 0, evaluated.stderr
    assert _without_progress(evaluated.stderr) == []
    assert "WT" in evaluated.stdout


def test_a_user_error_still_reaches_stderr(tmp_path):
    done = _tumorseg(
        ["predict", str(tmp_path / "missing.nii.gz"), "--out", str(tmp_path / "o.nii.gz")]
    )
    assert done.returncode == 2
    assert done.stderr.startswith("tumorseg predict: error:")


@pytest.mark.parametrize("given, expected", [(None, "1"), ("0", "0"), ("1", "1")])
def test_importing_the_package_turns_onednn_on_unless_the_user_chose(given, expected):
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if given is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = given
    code = "import os, tumorseg.model; print(os.environ['TF_ENABLE_ONEDNN_OPTS'])"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected

"""The grading sandbox (bubblewrap): hostile probes, limits, and the refusal without it.

The probe batch grades one notebook per probe of tests/submissions/make_submissions.py
(``PROBES``) beside a correct ``victim.ipynb`` with ``--jobs 2``: every probe must be blocked,
and every notebook must still get 6/6.  These tests skip, with the install command, where
bubblewrap is missing or cannot create its namespaces.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest
from submissions import make_submissions as gen

from tumorseg.course.grading import cli as grading_cli
from tumorseg.course.grading import grader, isolation
from tumorseg.course.grading.sandbox import runner_command
from tumorseg.resources import instructor_notebook

ROOT = Path(__file__).resolve().parents[1]
INSTRUCTOR = instructor_notebook()


def _sandbox_reason() -> str | None:
    try:
        isolation.check_available()
    except isolation.SandboxUnavailable as exc:
        return str(exc)
    return None


needs_sandbox = pytest.mark.skipif(
    _sandbox_reason() is not None, reason=f"no sandbox here: {_sandbox_reason()}"
)


# --------------------------------------------------------------------------- probe batch
class Listener:
    """A TCP listener on the host's 127.0.0.1 that records every connection it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[bytes] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    self.accepted.append(conn.recv(100) or b"(connected)")
                except OSError:
                    self.accepted.append(b"(connected)")

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture(scope="module")
def probes(tmp_path_factory: pytest.TempPathFactory) -> dict:
    reason = _sandbox_reason()
    if reason is not None:
        pytest.skip(f"no sandbox here: {reason}")
    if not INSTRUCTOR.is_file():
        pytest.skip("instructor notebook missing")
    tmp = tmp_path_factory.mktemp("probes")
    token = secrets.token_hex(8)
    mark = str(800_000 + secrets.randbelow(99_999))
    listener = Listener()
    out, keep = tmp / "out", tmp / "keep"
    context = {
        "token": token,
        "port": listener.port,
        "grader_pid": os.getpid(),
        "root": str(ROOT),
        "package": str(isolation.package_dir()),
        "instructor": str(INSTRUCTOR),
        "out": str(out),
        "other": str(tmp / "subs" / "victim.ipynb"),
        "mark": mark,
    }
    paths = gen.build_probes(tmp / "subs", context)
    os.environ["TUMORSEG_PROBE_SECRET"] = token  # in the grader's environment, not the run's
    try:
        status = grading_cli.grade_main(
            [
                *map(str, paths.values()),
                "--out",
                str(out),
                "--keep",
                str(keep),
                "--jobs",
                "2",
                "--quiet",
                "--cell-timeout",
                "60",
            ]
        )
    finally:
        os.environ.pop("TUMORSEG_PROBE_SECRET", None)
        listener.close()
    verdicts: dict[str, list[str]] = {}
    for path in keep.rglob("probe-*.txt"):
        name = path.stem.removeprefix("probe-")
        verdicts.setdefault(name, []).extend(path.read_text().splitlines())
    leftovers = [
        p.info["cmdline"]
        for p in psutil.process_iter(["cmdline"])
        if mark in " ".join(p.info["cmdline"] or [])
    ]
    host_files = [
        p
        for p in (
            Path(f"/tmp/probe-copy-{token}.ipynb"),
            ROOT / f"probe-{token}.txt",
            isolation.package_dir() / f"probe_{token}.py",
            isolation.package_dir() / "course" / "grading" / f"probe_{token}.py",
            out / f"probe-{token}.json",
        )
        if p.exists()
    ]
    for path in host_files:  # never leave a probe's file in the checkout
        path.unlink()
    reports = {name: json.loads((out / f"{p.stem}.json").read_text()) for name, p in paths.items()}
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {
        "status": status,
        "verdicts": verdicts,
        "reports": reports,
        "rows": rows,
        "accepted": listener.accepted,
        "leftovers": leftovers,
        "host_files": host_files,
    }


@needs_sandbox
@pytest.mark.parametrize("name", sorted(gen.PROBES))
def test_probe_is_blocked_and_costs_nothing(probes: dict, name: str) -> None:
    verdicts = probes["verdicts"].get(name)
    assert verdicts, f"probe {name} left no verdict (did its cell run?)"
    assert all(v.startswith(("blocked", "started")) for v in verdicts), verdicts
    report = probes["reports"][name]
    assert report["total"] == 6, report
    assert report["sandbox"] == "bubblewrap"


@needs_sandbox
def test_probes_leave_no_trace_outside(probes: dict) -> None:
    assert probes["status"] == 0
    assert probes["accepted"] == []  # nothing reached the host's loopback
    assert probes["leftovers"] == []  # no sleeper survived its run
    assert probes["host_files"] == []  # nothing written to the host's /tmp, project or grades
    assert probes["reports"]["victim"]["total"] == 6
    submissions = sorted(row["submission"] for row in probes["rows"])
    assert submissions == sorted(
        f"{p}.ipynb" for p in ["victim", *(f"probe_{n}" for n in gen.PROBES)]
    )
    assert {row["total"] for row in probes["rows"]} == {"6"}


# --------------------------------------------------------------------------- the sandbox itself
def _in_sandbox(
    tmp_path: Path, code: str, max_procs: int = 64, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run ``python -c code`` in a sandboxed run folder under the runner, as a grading run does."""
    folder = tmp_path / "run"
    folder.mkdir()
    library = isolation.prepare_library(tmp_path / "lib")
    uid = isolation.prepare_folder(folder)
    inner = isolation.wrap(
        [sys.executable, "-c", code], folder, library, isolation.inside_env({}), uid, max_procs
    )
    log = tmp_path / "run.log"
    status = subprocess.run(
        runner_command(inner, timeout, 2048, tmp_path, log),
        timeout=timeout + 60,
    ).returncode
    return subprocess.CompletedProcess(inner, status, log.read_text(), "")


@needs_sandbox
def test_fork_fails_at_the_process_limit_and_the_caller_goes_on(tmp_path: Path) -> None:
    code = (
        "import os, time\nkids = []\n"
        "try:\n    for _ in range(500):\n        pid = os.fork()\n"
        "        if pid == 0:\n            time.sleep(2)\n            os._exit(0)\n"
        "        kids.append(pid)\nexcept OSError as exc:\n    print('fork failed', len(kids), exc)\n"
        "for kid in kids:\n    os.waitpid(kid, 0)\nprint('done')\n"
    )
    done = _in_sandbox(tmp_path, code, max_procs=40)
    assert done.returncode == 0, done.stdout
    line = next(x for x in done.stdout.splitlines() if x.startswith("fork failed"))
    assert int(line.split()[2]) < 40
    assert "done" in done.stdout


@needs_sandbox
def test_only_the_run_folder_is_writable_and_the_environment_is_clean(tmp_path: Path) -> None:
    os.environ["TUMORSEG_PROBE_SECRET"] = "s3cr3t"
    try:
        code = (
            "import os\nfor p in ['/x', '/usr/x', '/etc/x', os.environ['HOME'] + '/x', '/tmp/x',\n"
            "          '/dev/shm/x', 'x', " + repr(str(tmp_path / "outside")) + "]:\n"
            "    try:\n        open(p, 'w').write('1'); print('wrote', p)\n"
            "    except OSError as e:\n        print('refused', p)\n"
            "print('secret' if 's3cr3t' in str(os.environ) else 'no secret')\n"
        )
        done = _in_sandbox(tmp_path, code)
    finally:
        os.environ.pop("TUMORSEG_PROBE_SECRET")
    lines = done.stdout.splitlines()
    for path in ("/x", "/usr/x", "/etc/x", str(tmp_path / "outside")):
        assert f"refused {path}" in lines, done.stdout
    assert {"wrote /tmp/x", "wrote /dev/shm/x", "wrote x"} <= set(lines)
    assert "no secret" in lines
    assert not (tmp_path / "outside").exists()
    # /tmp, /dev/shm and $HOME inside are folders of the run
    assert (tmp_path / "run" / "tmp" / "x").is_file() and (tmp_path / "run" / "x").is_file()


def test_library_copy_holds_no_reference_solution(tmp_path: Path) -> None:
    library = isolation.prepare_library(tmp_path / "lib")
    files = {p.relative_to(library).as_posix() for p in library.rglob("*") if p.is_file()}
    assert "course/public_tests.py" in files and "course/grading/checks.py" in files
    assert "course/exercises.py" in files and "course/grading/grader.py" in files
    assert (isolation.package_dir() / isolation.HIDDEN / "reference.py").is_file()
    assert not [f for f in files if f.startswith(isolation.HIDDEN + "/")]
    assert not [f for f in files if "def ref_" in (library / f).read_text(errors="ignore")]
    assert not [f for f in files if f.endswith((".ipynb", ".pyc"))]


# --------------------------------------------------------------------------- no silent downgrade
def _invalid_submission(tmp_path: Path) -> Path:
    path = tmp_path / "broken.ipynb"
    path.write_text("{not json")
    return path


def _fake_bwrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str | None) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    if script is not None:
        (folder / "bwrap").write_text(script)
        (folder / "bwrap").chmod(0o755)
    monkeypatch.setenv("PATH", str(folder))
    isolation.check_available.cache_clear()
    isolation._bwrap_version.cache_clear()


@pytest.mark.parametrize(
    "script, fragment",
    [
        (None, "apt-get install bubblewrap"),
        (
            "#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n",
            "user namespaces",
        ),
    ],
)
def test_grading_refuses_without_a_sandbox(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    script: str | None,
    fragment: str,
) -> None:
    _fake_bwrap(tmp_path, monkeypatch, script)
    try:
        status = grading_cli.grade_main(
            [str(_invalid_submission(tmp_path)), "--out", str(tmp_path / "out"), "--quiet"]
        )
    finally:
        isolation.check_available.cache_clear()
        isolation._bwrap_version.cache_clear()
    assert status == 2
    err = capsys.readouterr().err
    assert fragment in err and "--no-sandbox" in err
    assert not (tmp_path / "out" / "results.csv").exists()


def test_no_sandbox_is_named_in_every_result_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    _fake_bwrap(tmp_path, monkeypatch, None)  # it must not even be needed
    out = tmp_path / "out"
    try:
        status = grading_cli.grade_main(
            [
                str(_invalid_submission(tmp_path)),
                "--out",
                str(out),
                "--quiet",
                "--no-sandbox",
                "--instructor",
                str(INSTRUCTOR),
            ]
        )
    finally:
        isolation.check_available.cache_clear()
    assert status == 0
    assert "WITHOUT a sandbox" in capsys.readouterr().err
    report = json.loads((out / "broken.json").read_text())
    assert report["sandbox"] == grader.NO_SANDBOX
    row = next(csv.DictReader(open(out / "results.csv", newline="")))
    assert row["sandbox"] == grader.NO_SANDBOX

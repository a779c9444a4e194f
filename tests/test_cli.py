"""Every command reports a user error one way: ``tumorseg <command>: error: ...`` on stderr, exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tumorseg.cli import COMMANDS, USER_ERROR, fail, main

# (command line, text the message must contain); NOTHING is a path that does not exist, and
# dest/a.tar a file whose md5 is not the one asked for (so no request is ever sent)
CASES = {
    "unknown": (["nope"], "unknown command 'nope'"),
    "synth": (["synth", "--out", "NOTHING", "--cases", "0"], "--cases"),
    "download": (
        ["download", "--dest", "dest", "--url", "http://127.0.0.1:9/a.tar", "--md5", "f" * 32],
        "a.tar",
    ),
    "overview": (["overview", "--data", "NOTHING", "--out", "o.png"], "NOTHING"),
    "patches": (["patches", "--data", "NOTHING", "--out", "p"], "NOTHING"),
    "train": (["train", "--data", "NOTHING", "--out", "r", "--steps", "1"], "NOTHING"),
    "predict": (["predict", "NOTHING/case.nii.gz", "--out", "s.nii.gz"], "NOTHING"),
    "evaluate": (["evaluate", "--data", "NOTHING", "--weights", "NOTHING/m.weights.h5"], "NOTHING"),
    "score": (["score", "--pred", "NOTHING/preds", "--labels", "labels"], "NOTHING"),
    "release": (["release", "--source", "NOTHING/nb.ipynb", "--out", "s.ipynb"], "NOTHING"),
    "grade": (["grade", "NOTHING/nb.ipynb", "--out", "g"], "NOTHING"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_user_errors_go_to_stderr_with_status_2(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "a.tar").write_bytes(b"not the archive")
    argv, needle = CASES[name]
    nothing = str(tmp_path / "nothing")
    argv = [a.replace("NOTHING", nothing) for a in argv]
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    assert info.value.code == USER_ERROR
    prog = "tumorseg" if name == "unknown" else f"tumorseg {name}"
    assert f"{prog}: error: " in err, err
    assert needle.replace("NOTHING", nothing) in err, err
    assert "Traceback" not in err and "error" not in out


def test_every_command_is_covered():
    assert set(CASES) - {"unknown"} == set(COMMANDS)


def test_fail_takes_an_exception_message_without_quotes(capsys):
    with pytest.raises(SystemExit) as info:
        fail("tumorseg x", KeyError("no case 'A' in /d"))
    assert info.value.code == 2
    assert capsys.readouterr().err == "tumorseg x: error: no case 'A' in /d\n"


def test_python_dash_m_runs_the_same_entry_point():
    done = subprocess.run(
        [sys.executable, "-m", "tumorseg", "nope"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == USER_ERROR
    assert "tumorseg: error: unknown command 'nope'" in done.stderr
    help_ = subprocess.run(
        [sys.executable, "-m", "tumorseg", "--help"], capture_output=True, text=True, timeout=60
    )
    assert help_.returncode == 0 and all(name in help_.stdout for name in COMMANDS)


def test_no_module_imports_the_dispatcher():
    """`fail` and the exit codes live on the ground floor (tumorseg.errors): apart from the
    `python -m tumorseg` entry point, no module of the package imports tumorseg.cli."""
    import ast
    from pathlib import Path

    import tumorseg

    package = Path(tumorseg.__file__).parent
    offenders = []
    for path in sorted(package.rglob("*.py")):
        if path.relative_to(package).as_posix() in {"cli.py", "__main__.py"}:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            if "tumorseg.cli" in names:
                offenders.append(f"{path.relative_to(package)}:{node.lineno}")
    assert offenders == []


def test_errors_are_one_object_wherever_imported():
    import tumorseg.cli
    import tumorseg.data
    import tumorseg.data.errors
    import tumorseg.errors

    assert tumorseg.data.DataError is tumorseg.data.errors.DataError is tumorseg.errors.DataError
    assert tumorseg.cli.fail is tumorseg.errors.fail
    assert tumorseg.cli.USER_ERROR == tumorseg.errors.USER_ERROR == 2

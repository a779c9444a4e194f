"""Every command reports a user error one way: ``tumorseg <command>: error: ...`` on stderr, exit 2;
and the command lines live apart from the library, in the stages' ``cli`` modules."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import tumorseg
from tumorseg.cli import COMMANDS, main
from tumorseg.errors import USER_ERROR, fail

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
    "merge": (["merge", "--out", "m.csv", "NOTHING/part.csv"], "NOTHING"),
    "release": (["release", "--source", "NOTHING/nb.ipynb", "--out", "s.ipynb"], "NOTHING"),
    "grade": (["grade", "NOTHING/nb.ipynb", "--out", "g"], "NOTHING"),
    "hardware": (["hardware", "--nope"], "--nope"),
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


def test_hardware_prints_the_cpu_report(capsys, monkeypatch):
    """``tumorseg hardware`` prints the CPU, its flags and the oneDNN state (what `make bench`
    prints first), with the value of TF_ENABLE_ONEDNN_OPTS that decided it."""
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert main(["hardware"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["CPU", "CPU flags", "oneDNN"]
    assert lines[2] == "oneDNN: off, Eigen kernels (TF_ENABLE_ONEDNN_OPTS=0)"


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


PACKAGE = Path(tumorseg.__file__).parent
#: the command-line modules: each stage's ``cli.py`` (and the dispatcher) and ``__main__.py``
COMMAND_FILES = {"cli.py", "__main__.py"}


def _modules() -> list[tuple[Path, ast.Module]]:
    """(path, syntax tree) of every module of the package."""
    return [(p, ast.parse(p.read_text(encoding="utf-8"))) for p in sorted(PACKAGE.rglob("*.py"))]


def _imports(path: Path, tree: ast.Module) -> list[tuple[int, str]]:
    """(line, dotted name) of everything ``path`` imports, anywhere in it (function bodies too),
    relative imports resolved; ``from M import a`` gives both ``M`` and ``M.a``."""
    parts = ["tumorseg", *path.relative_to(PACKAGE).with_suffix("").parts][:-1]  # its package
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = parts[: len(parts) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found += [(node.lineno, module)]
            found += [(node.lineno, f"{module}.{a.name}") for a in node.names]
    return found


def test_library_modules_hold_no_command_line():
    """Argument parsing lives in the stages' ``cli`` modules: no other module of the package
    defines a top-level ``main`` or imports argparse."""
    offenders = []
    for path, tree in _modules():
        if path.name in COMMAND_FILES:
            continue
        where = path.relative_to(PACKAGE).as_posix()
        functions = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        offenders += [f"{where}:{n.lineno} def main" for n in functions if n.name == "main"]
        offenders += [
            f"{where}:{line} imports argparse"
            for line, name in _imports(path, tree)
            if name == "argparse" or name.startswith("argparse.")
        ]
    assert offenders == []


def test_no_module_imports_the_dispatcher_and_no_library_module_a_cli():
    """`fail` and the exit codes live on the ground floor (tumorseg.errors): apart from the
    `python -m tumorseg` entry point, no module of the package imports tumorseg.cli; and a
    library module imports no command-line module (``...cli``) at all."""
    offenders = []
    for path, tree in _modules():
        where = path.relative_to(PACKAGE).as_posix()
        if where in COMMAND_FILES:
            continue
        library = path.name not in COMMAND_FILES
        for line, name in _imports(path, tree):
            if name == "tumorseg.cli" or (library and name.rpartition(".")[2] == "cli"):
                offenders.append(f"{where}:{line} imports {name}")
    assert offenders == []


def test_the_import_walk_sees_relative_and_lazy_imports():
    """The two tests above resolve ``from . import cli`` and see imports inside functions."""
    path = PACKAGE / "course" / "grading" / "x.py"
    tree = ast.parse("def f():\n    from . import cli\n    from ..cli import colab_main\n")
    names = [name for _, name in _imports(path, tree)]
    assert "tumorseg.course.grading.cli" in names and "tumorseg.course.cli" in names


def test_every_command_is_a_function_of_a_cli_module():
    for name, (module, function, help_) in COMMANDS.items():
        assert module.rpartition(".")[2] == "cli", name
        assert callable(getattr(importlib.import_module(module), function)), name
        assert help_, name


def test_help_loads_no_stage():
    """``tumorseg --help`` imports no command module (nor numpy), so it stays fast."""
    code = (
        "import sys; from tumorseg.cli import main; main(['--help']); "
        "print(sorted(m for m in sys.modules if m.startswith('tumorseg.') or m == 'numpy'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "['tumorseg.cli', 'tumorseg.errors']"


def test_errors_are_one_object_wherever_imported():
    import tumorseg.cli
    import tumorseg.data
    import tumorseg.data.errors
    import tumorseg.errors

    assert tumorseg.data.DataError is tumorseg.data.errors.DataError is tumorseg.errors.DataError
    assert tumorseg.errors.USER_ERROR == 2
    # the dispatcher uses ``fail`` but hands on neither it nor the exit status
    assert {"USER_ERROR", "fail"}.isdisjoint(tumorseg.cli.__all__)
    assert not hasattr(tumorseg.cli, "USER_ERROR")

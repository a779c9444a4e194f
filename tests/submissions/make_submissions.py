"""Generate the autograder's test submissions: good, empty and hostile notebooks.

    .venv/bin/python tests/submissions/make_submissions.py OUT_DIR [--instructor NB]

Every notebook is derived from the instructor notebook (all six solutions) by changing one
thing, so the expected grade is known: ``expected.json`` in ``OUT_DIR`` maps each file name to
``{"scores": {"C1": 0/1, ...}, "status": {"Cn": status}}`` where ``status`` lists only the
exercises whose status is asserted (the others must simply score 1).  ``SUBMISSIONS`` is also
imported by tests/test_grader.py and benchmarks/bench_grader.py.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Callable
from pathlib import Path

import nbformat

from tumorseg.course.exercises import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
INSTRUCTOR = ROOT / "tumorseg" / "course" / "notebooks" / "Brain_Tumor_Segmentation.ipynb"
EXERCISES = tuple(REGISTRY)
HEADER = "# UNQ_{ex} (UNIQUE CELL IDENTIFIER, DO NOT EDIT)\n"
#: a marker the leftover-process test looks for in the process table
LEFTOVER_MARK = "987654"


def _cell(nb: nbformat.NotebookNode, ex: str) -> nbformat.NotebookNode:
    return next(c for c in nb.cells if c.get("id") == f"unq-{ex.lower()}")


def _with_source(ex: str, source: str) -> Callable[[nbformat.NotebookNode], None]:
    def edit(nb: nbformat.NotebookNode) -> None:
        _cell(nb, ex).source = HEADER.format(ex=ex) + source

    return edit


def _append(ex: str, extra: str, before: bool = False) -> Callable[[nbformat.NotebookNode], None]:
    """Keep the correct solution and add ``extra`` after (or before) it in the same cell."""

    def edit(nb: nbformat.NotebookNode) -> None:
        cell = _cell(nb, ex)
        head, _, body = cell.source.partition("\n")
        cell.source = f"{head}\n{extra}\n{body}" if before else f"{cell.source}\n{extra}\n"

    return edit


def _replace(ex: str, old: str, new: str) -> Callable[[nbformat.NotebookNode], None]:
    """The correct solution with one typical mistake."""

    def edit(nb: nbformat.NotebookNode) -> None:
        cell = _cell(nb, ex)
        assert old in cell.source, f"{old!r} not in the UNQ_{ex} solution"
        cell.source = cell.source.replace(old, new)

    return edit


def _drop(ex: str) -> Callable[[nbformat.NotebookNode], None]:
    def edit(nb: nbformat.NotebookNode) -> None:
        nb.cells.remove(_cell(nb, ex))

    return edit


def _duplicate(ex: str) -> Callable[[nbformat.NotebookNode], None]:
    def edit(nb: nbformat.NotebookNode) -> None:
        cell = _cell(nb, ex)
        twin = copy.deepcopy(cell)
        twin.id = "copied-cell"
        nb.cells.insert(nb.cells.index(cell) + 1, twin)

    return edit


def _edit_header(ex: str) -> Callable[[nbformat.NotebookNode], None]:
    def edit(nb: nbformat.NotebookNode) -> None:
        cell = _cell(nb, ex)
        cell.source = cell.source.replace(HEADER.format(ex=ex).strip(), f"# UNQ_{ex} my solution")

    return edit


def _library_twins(nb: nbformat.NotebookNode) -> None:
    """Answer exercises with the package's own implementations (see :data:`LIBRARY_TWINS`)."""
    for ex, (source, before) in LIBRARY_TWINS.items():
        (_append(ex, source, before=True) if before else _with_source(ex, source))(nb)


#: exercise -> (cell code, True: put before the correct solution / False: replace it), each
#: reaching the exercise's library twin another way; every one of them must be flagged
LIBRARY_TWINS: dict[str, tuple[str, bool]] = {
    "C1": ("from tumorseg.patches import sample_patch  # imported only", True),
    "C2": (
        "def standardize(image):\n    return util.standardize_patch(image, 'slice').astype(np.float64)\n",
        False,
    ),
    "C4": (
        "from tumorseg.model.losses import dice_coefficient as _library_dice\n\n"
        "def dice_coefficient(y_true, y_pred, axis=(1, 2, 3), epsilon=0.00001):\n"
        "    return ops.cast(_library_dice(y_true, y_pred, axis, epsilon), 'float64')\n",
        False,
    ),
    "C5": (
        "import tumorseg.model.losses as losses\n\n"
        "def soft_dice_loss(y_true, y_pred, axis=(1, 2, 3), epsilon=0.00001):\n"
        "    return ops.cast(losses.soft_dice_loss(y_true, y_pred, axis, epsilon), 'float64')\n",
        False,
    ),
    "C6": (
        "from tumorseg import metrics\n\n"
        "def compute_class_sens_spec(pred, label, class_num):\n"
        "    return metrics.class_sens_spec(pred, label, class_num)\n",
        False,
    ),
}

# name -> (edit of the instructor notebook or raw file text, expected statuses of the target)
SUBMISSIONS: dict[str, tuple[Callable[[nbformat.NotebookNode], None] | str, dict[str, str]]] = {
    "invalid_json": (
        '{"cells": [ {"cell_type": "code", "source": "x = 1"\n',
        {ex: "error" for ex in EXERCISES},
    ),
    "nbformat3": (
        json.dumps(
            {
                "nbformat": 3,
                "nbformat_minor": 0,
                "metadata": {},
                "worksheets": [
                    {
                        "cells": [
                            {
                                "cell_type": "code",
                                "input": "x = 1",
                                "language": "python",
                                "outputs": [],
                            }
                        ]
                    }
                ],
            }
        ),
        {ex: "error" for ex in EXERCISES},
    ),
    "missing_cell": (_drop("C2"), {"C2": "missing"}),
    "duplicated_cell": (_duplicate("C3"), {"C3": "missing"}),
    "edited_header": (_edit_header("C4"), {"C4": "missing"}),
    "syntax_error": (
        _with_source("C5", "def soft_dice_loss(y_true, y_pred:\n    return 0\n"),
        {"C5": "error"},
    ),
    "raise_in_cell": (
        _append("C6", "raise RuntimeError('stop here')", before=True),
        {"C6": "error"},
    ),
    "raise_in_function": (
        _with_source(
            "C3",
            "def single_class_dice_coefficient(y_true, y_pred, axis=(0, 1, 2), epsilon=0.00001):\n"
            "    return 1 / 0\n",
        ),
        {"C3": "error"},
    ),
    "infinite_loop": (
        _with_source(
            "C1",
            "import numpy as np\n\ndef get_sub_volume(image, label, orig_x=240, orig_y=240, "
            "orig_z=155, output_x=160, output_y=160, output_z=16, num_classes=4, max_tries=1000, "
            "background_threshold=0.95):\n    while True:\n        pass\n",
        ),
        {"C1": "timeout"},
    ),
    "sigint_ignored": (
        _with_source(
            "C2",
            "import signal\n\ndef standardize(image):\n"
            "    signal.signal(signal.SIGINT, signal.SIG_IGN)\n    while True:\n        pass\n",
        ),
        {"C2": "timeout"},
    ),
    "alloc_50gb": (
        _append("C3", "import numpy as _np\n_hog = _np.ones(50 * 1024 ** 3 // 8)", before=True),
        {"C3": "error"},
    ),
    "os_exit": (
        _with_source(
            "C4",
            "import os\n\ndef dice_coefficient(y_true, y_pred, axis=(1, 2, 3), epsilon=0.00001):\n"
            "    os._exit(1)\n",
        ),
        {"C4": "error"},
    ),
    "flood_output": (
        _append("C5", "print('x' * 10_000_000)\nfor _ in range(2000):\n    print('y' * 5000)"),
        {"C5": "passed"},
    ),
    "fake_verdict": (
        _with_source(
            "C6",
            "import os\nprint('All tests passed')\nprint('UNQ_C6 graded check: passed')\n\n"
            "def compute_class_sens_spec(pred, label, class_num):\n"
            "    print('UNQ_C6 graded check: passed')\n"
            "    os.write(1, b'UNQ_C6 graded check: passed\\n')\n"
            "    import numpy as np\n    return np.float64(0.5), np.float64(0.5)\n",
        ),
        {"C6": "failed"},
    ),
    "override_print": (
        _with_source(
            "C1",
            "import builtins, sys\n_real = sys.stdout.write\n"
            "builtins.print = lambda *a, **k: _real('UNQ_C1 graded check: passed\\n')\n"
            "sys.stdout.write = lambda s: _real(s.replace('failed', 'passed'))\n\n"
            "def get_sub_volume(image, label, *args, **kwargs):\n    return None\n",
        ),
        {"C1": "failed"},
    ),
    "override_numpy": (
        _with_source(
            "C2",
            "import numpy as np\nnp.allclose = lambda *a, **k: True\nnp.isclose = lambda *a, **k: True\n"
            "np.array_equal = lambda *a, **k: True\nnp.round = lambda a, *r, **k: a\n\n"
            "def standardize(image):\n    return image\n",
        ),
        {"C2": "failed"},
    ),
    "monkeypatch_checks": (
        _with_source(
            "C3",
            "import sys\nfrom tumorseg.course import public_tests\n"
            "public_tests.test_single_class_dice_coefficient = lambda fn: print('All tests passed')\n"
            "for _name in ('_grading_checks', 'tumorseg.course.grading.checks'):\n"
            "    _m = sys.modules.get(_name)\n"
            "    if _m is not None:\n"
            "        _m.check = lambda ex, fn, expect: print(f'UNQ_{ex} graded check: passed')\n"
            "        _m.fingerprint = lambda *a, **k: 'x'\n\n"
            "def single_class_dice_coefficient(y_true, y_pred, axis=(0, 1, 2), epsilon=0.00001):\n"
            "    return 0.5\n",
        ),
        {"C3": "failed"},
    ),
    "input_hijack": (
        _with_source(
            "C2",
            "def _forge(lines):\n"
            "    if any('_grader.check' in line for line in lines):\n"
            "        ex = 'C2'\n"
            "        for line in lines:\n"
            "            if '_grader.check(' in line:\n"
            "                ex = line.split('\"')[1]\n"
            "        return [f'print(\"UNQ_{ex} graded check: passed\")\\n']\n"
            "    return lines\n"
            "get_ipython().input_transformers_post.append(_forge)\n\n"
            "def standardize(image):\n    return image\n",
        ),
        {"C2": "failed"},
    ),
    "no_tracebacks": (
        _with_source(
            "C4",
            "get_ipython().showtraceback = lambda *a, **k: None\n"
            "get_ipython().showsyntaxerror = lambda *a, **k: None\n\n"
            "def dice_coefficient(y_true, y_pred, axis=(1, 2, 3), epsilon=0.00001):\n"
            "    assert False, 'hidden'\n",
        ),
        {"C4": "error"},
    ),
    "read_files": (
        _with_source(
            "C5",
            "import os, re\n\n"
            "def soft_dice_loss(y_true, y_pred, axis=(1, 2, 3), epsilon=0.00001):\n"
            "    # look for the answers in every file of the grading folder\n"
            "    text = ''\n"
            "    for folder, _, files in os.walk('.'):\n"
            "        for name in files:\n"
            "            try:\n"
            "                text += open(os.path.join(folder, name), errors='ignore').read()\n"
            "            except OSError:\n"
            "                pass\n"
            "    numbers = re.findall(r'0\\.\\d{6,}', text)\n"
            "    return float(numbers[0]) if numbers else 0.0\n",
        ),
        {"C5": "failed"},
    ),
    "numpy_dice": (
        _with_source(
            "C4",
            "import numpy as np\n\ndef dice_coefficient(y_true, y_pred, axis=(1, 2, 3), epsilon=0.00001):\n"
            "    numerator = 2 * np.sum(y_true * y_pred, axis=axis) + epsilon\n"
            "    denominator = np.sum(y_true, axis=axis) + np.sum(y_pred, axis=axis) + epsilon\n"
            "    return np.mean(numerator / denominator)\n",
        ),
        {"C4": "failed"},
    ),
    "off_by_one": (_replace("C1", "orig_x - output_x + 1", "orig_x - output_x"), {"C1": "error"}),
    "kill_pytest": (
        _append("C5", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)", before=True),
        {"C5": "error"},
    ),
    # right answers, but through the package's own implementations: they pass (the score is
    # the instructor's decision, --library-answers) and the report flags them
    "library_twins": (_library_twins, dict.fromkeys(LIBRARY_TWINS, "passed")),
    "leftover_process": (
        _append(
            "C6",
            f"import subprocess\n_p = subprocess.Popen(['sleep', '{LEFTOVER_MARK}'], start_new_session=True)",
            before=True,
        ),
        {"C6": "passed"},
    ),
}


def build(out: Path, instructor: Path = INSTRUCTOR) -> dict[str, dict]:
    """Write every submission of :data:`SUBMISSIONS` into ``out``; return the expectations."""
    out.mkdir(parents=True, exist_ok=True)
    base = nbformat.read(str(instructor), as_version=4)
    expected: dict[str, dict] = {}
    for name, (edit, status) in SUBMISSIONS.items():
        path = out / f"{name}.ipynb"
        if isinstance(edit, str):
            path.write_text(edit, encoding="utf-8")
        else:
            nb = copy.deepcopy(base)
            for cell in nb.cells:  # a student's file carries no grader cells and no outputs
                if cell.cell_type == "code":
                    cell.outputs, cell.execution_count = [], None
            nb.cells = [c for c in nb.cells if "grader" not in c.metadata.get("tags", [])]
            edit(nb)
            nbformat.write(nb, str(path))
        scores = {ex: int(status.get(ex, "passed") == "passed") for ex in EXERCISES}
        expected[path.name] = {"scores": scores, "status": status}
    (out / "expected.json").write_text(json.dumps(expected, indent=1), encoding="utf-8")
    return expected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--instructor", type=Path, default=INSTRUCTOR)
    args = parser.parse_args(argv)
    expected = build(args.out, args.instructor)
    print(f"wrote {len(expected)} submissions and expected.json to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


# --------------------------------------------------------------------------- sandbox probes
#: Probes a hostile student would try, each inside an otherwise correct UNQ_C1 cell and inside
#: try/except, so that the notebook must still get 6/6.  Each writes one verdict line to
#: ``probe-<name>.txt`` in its working directory ("blocked: ..." or "LEAKED: ..."); some are
#: also checked from outside (files on the host, the listener, the process table).
#: Placeholders: {token} {port} {grader_pid} {root} {package} {instructor} {out} {other} {mark}
PROBES: dict[str, str] = {
    "read_instructor": """
text = open({instructor!r}).read()
import shutil
shutil.copy({instructor!r}, "/tmp/probe-copy-{token}.ipynb")
return "LEAKED: read the instructor notebook" if "START CODE HERE" in text else "blocked: empty"
""",
    "read_reference": """
import glob, importlib
found = []
for path in [{package!r} + "/course/grading/hidden/reference.py",
             *glob.glob({package!r} + "/course/grading/hidden/**", recursive=True),
             *glob.glob({package!r} + "/**/__pycache__/reference*.pyc", recursive=True)]:
    try:
        if "ref_" in open(path, errors="ignore").read():
            found.append(path)
    except OSError:
        pass
try:
    importlib.import_module("tumorseg.course.grading.hidden.reference")
    found.append("import")
except Exception:
    pass
return f"LEAKED: {{found}}" if found else "blocked: no reference code readable"
""",
    "write_project": """
written = []
for path in [{root!r} + "/probe-{token}.txt", {package!r} + "/probe_{token}.py",
             {package!r} + "/course/grading/probe_{token}.py"]:
    try:
        with open(path, "w") as fh:
            fh.write("written by a submission")
        written.append(path)
    except OSError:
        pass
return f"LEAKED: wrote {{written}}" if written else "blocked: the project is not writable"
""",
    "write_grades": """
written = []
for path in [{out!r} + "/probe-{token}.json", {out!r} + "/results.csv"]:
    try:
        with open(path, "a") as fh:
            fh.write("forged,1,1,1,1,1,1,6,bubblewrap\\n")
        written.append(path)
    except OSError:
        pass
return f"LEAKED: wrote {{written}}" if written else "blocked: the grades folder is not writable"
""",
    "connect_localhost": """
import socket
with socket.create_connection(("127.0.0.1", {port}), timeout=3) as conn:
    conn.sendall(b"{token}")
return "LEAKED: connected to the host's 127.0.0.1:{port}"
""",
    "leave_process": """
import subprocess
subprocess.Popen(["sleep", "{mark}"], start_new_session=True)
pid = os.fork()
if pid == 0:  # double fork: the grandchild is orphaned in a session of its own
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "{mark}"])
    os._exit(0)
os.waitpid(pid, 0)
return "started two sleepers (the test checks that none is left)"
""",
    "read_other_submission": """
import glob
found = []
try:
    if "{mark}" in open({other!r}).read():
        found.append({other!r})
except OSError:
    pass
own = os.path.realpath("grading.ipynb")
for path in glob.glob("/tmp/tumorseg-grade-*/**/grading.ipynb", recursive=True):
    if os.path.realpath(path) != own:
        found.append(path)
return f"LEAKED: {{found}}" if found else "blocked: no other submission visible"
""",
    "fork_bomb": """
import time
kids = []
try:
    for _ in range(1000):
        pid = os.fork()
        if pid == 0:
            time.sleep(1)
            os._exit(0)
        kids.append(pid)
    verdict = f"LEAKED: started {{len(kids)}} processes"
except OSError as exc:
    verdict = f"blocked: fork failed after {{len(kids)}} processes ({{exc}})"
for kid in kids:
    os.waitpid(kid, 0)
return verdict
""",
    "read_grader_proc": """
found = []
if os.path.exists("/proc/{grader_pid}"):
    found.append("the grader's pid {grader_pid}")
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    for name in ("cmdline", "environ"):
        try:
            with open(f"/proc/{{pid}}/{{name}}", "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        if b"{token}" in data or b"tumorseg.course.grading.grader" in data or b"test_sandbox" in data:
            found.append(f"/proc/{{pid}}/{{name}}")
return f"LEAKED: {{found}}" if found else "blocked: only the run's own processes are visible"
""",
}

_PROBE_FRAME = """import os
def _probe():
{body}
try:
    _verdict = _probe()
except BaseException as _exc:  # noqa: BLE001 - a probe must never fail the cell
    _verdict = f"blocked: {{type(_exc).__name__}}: {{_exc}}"
with open("probe-{name}.txt", "a") as _fh:
    _fh.write(str(_verdict)[:300].replace("\\n", " ") + "\\n")
del _probe, _verdict
"""


def probe_source(name: str, context: dict[str, object]) -> str:
    """The code of one probe, ready to go at the top of a UNQ_C1 cell."""
    body = PROBES[name].format(**context).strip("\n")
    indented = "\n".join("    " + line if line else line for line in body.splitlines())
    return _PROBE_FRAME.format(body=indented, name=name)


def build_probes(
    out: Path, context: dict[str, object], instructor: Path = INSTRUCTOR
) -> dict[str, Path]:
    """One notebook per probe in ``out`` (all six solutions, the probe in UNQ_C1), plus
    ``victim.ipynb``, a correct notebook holding ``context["mark"]``, graded beside them."""
    base = nbformat.read(str(instructor), as_version=4)
    for cell in base.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    base.cells = [c for c in base.cells if "grader" not in c.metadata.get("tags", [])]
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    victim = copy.deepcopy(base)
    _append("C6", f"# {context['mark']}")(victim)
    paths["victim"] = out / "victim.ipynb"
    nbformat.write(victim, str(paths["victim"]))
    for name in PROBES:
        nb = copy.deepcopy(base)
        _append("C1", probe_source(name, context), before=True)(nb)
        paths[name] = out / f"probe_{name}.ipynb"
        nbformat.write(nb, str(paths[name]))
    return paths

"""Tests of ``tumorseg grade``: self-checks, hostile submissions, and the pieces without a kernel.

The expensive part is ONE batch call (module fixture ``batch``) that grades the instructor
notebook, the student release, a notebook with one exercise solved and every hostile
submission of tests/submissions/make_submissions.py with ``--jobs 2``; each submission then
has its own test that reads the batch's results.
"""

from __future__ import annotations

import copy
import csv
import json
import re
from pathlib import Path

import nbformat
import numpy as np
import psutil
import pytest
from conftest import load_file_module  # noqa: E402
from submissions import make_submissions as gen

from tumorseg.course import feedback
from tumorseg.course.exercises import REGISTRY
from tumorseg.course.grading import checks, grader, integrity, isolation, nbtools, results, running
from tumorseg.course.grading import cli as grading_cli
from tumorseg.course.grading.hidden import judge, reference
from tumorseg.course.grading.sandbox import runner_command
from tumorseg.resources import instructor_notebook

ROOT = Path(__file__).resolve().parents[1]
INSTRUCTOR = instructor_notebook()
CELL_TIMEOUT = 15
EXERCISES = tuple(REGISTRY)


def _sandbox_flags() -> list[str]:
    """Grade in the sandbox where it runs; elsewhere the hostile tests still run without it."""
    try:
        isolation.check_available()
    except isolation.SandboxUnavailable:
        return ["--no-sandbox"]
    return []


needs_notebook = pytest.mark.skipif(not INSTRUCTOR.is_file(), reason="instructor notebook missing")


def _solutions() -> dict[str, str]:
    nb = nbformat.read(str(INSTRUCTOR), as_version=4)
    return {
        ex: next(c.source for c in nb.cells if c.get("id") == nbtools.unq_id(ex))
        for ex in EXERCISES
    }


def _release(tmp: Path) -> Path:
    """A fresh student release (what `tumorseg release` writes) and its path."""
    from tumorseg.course import release

    path = tmp / "student_release.ipynb"
    path.write_text(release.build_release(INSTRUCTOR), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- the one batch
@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not INSTRUCTOR.is_file():
        pytest.skip("instructor notebook missing")
    tmp = tmp_path_factory.mktemp("grade")
    subs = tmp / "subs"
    expected = gen.build(subs)
    (subs / "instructor.ipynb").write_bytes(INSTRUCTOR.read_bytes())
    expected["instructor.ipynb"] = {"scores": dict.fromkeys(EXERCISES, 1), "status": {}}
    release_path = _release(subs)
    expected[release_path.name] = {"scores": dict.fromkeys(EXERCISES, 0), "status": {}}
    one = nbformat.read(str(release_path), as_version=4)
    next(c for c in one.cells if c.get("id") == "unq-c3").source = _solutions()["C3"]
    nbformat.write(one, str(subs / "one_solved_c3.ipynb"))
    expected["one_solved_c3.ipynb"] = {
        "scores": {ex: int(ex == "C3") for ex in EXERCISES},
        "status": {"C3": "passed"},
    }
    out = tmp / "out"
    paths = sorted(str(p) for p in subs.glob("*.ipynb"))
    status = grading_cli.grade_main(
        [
            *paths,
            "--out",
            str(out),
            "--jobs",
            "2",
            "--quiet",
            "--cell-timeout",
            str(CELL_TIMEOUT),
            *_sandbox_flags(),
        ]
    )
    with open(out / "results.csv", newline="") as fh:
        rows = {row["submission"]: row for row in csv.DictReader(fh)}
    reports = {name: json.loads((out / f"{Path(name).stem}.json").read_text()) for name in expected}
    pages = {name: (out / f"{Path(name).stem}.html").read_text() for name in expected}
    return {
        "status": status,
        "rows": rows,
        "reports": reports,
        "pages": pages,
        "expected": expected,
        "out": out,
    }


def test_batch_exit_status_and_csv(batch: dict) -> None:
    assert batch["status"] == 0  # no grader-error anywhere
    assert set(batch["rows"]) == set(batch["expected"])
    for name, row in batch["rows"].items():
        assert list(row) == ["submission", *EXERCISES, "total", "flags", "sandbox"]
        scores = [int(row[ex]) for ex in EXERCISES]
        assert int(row["total"]) == sum(scores), name


def _assert_graded(batch: dict, name: str) -> None:
    want = batch["expected"][name]
    report, row = batch["reports"][name], batch["rows"][name]
    got = {ex: report["exercises"][ex]["score"] for ex in EXERCISES}
    assert got == want["scores"], (name, report)
    assert {ex: int(row[ex]) for ex in EXERCISES} == want["scores"]
    for ex, status in want["status"].items():
        assert report["exercises"][ex]["status"] == status, (name, ex, report["exercises"][ex])
    for ex in EXERCISES:
        entry = report["exercises"][ex]
        assert entry["status"] in grader.STATUSES
        assert (entry["status"] == "passed") == (entry["score"] == 1)
        assert 0 < len(entry["message"]) < 1500


def test_instructor_notebook_scores_6(batch: dict) -> None:
    _assert_graded(batch, "instructor.ipynb")
    assert batch["reports"]["instructor.ipynb"]["total"] == 6


def test_student_release_scores_0(batch: dict) -> None:
    _assert_graded(batch, "student_release.ipynb")
    statuses = {
        e["status"] for e in batch["reports"]["student_release.ipynb"]["exercises"].values()
    }
    assert statuses <= {"failed", "error"}


def test_one_solved_exercise_scores_1(batch: dict) -> None:
    _assert_graded(batch, "one_solved_c3.ipynb")
    assert batch["reports"]["one_solved_c3.ipynb"]["total"] == 1


@pytest.mark.parametrize("name", sorted(gen.SUBMISSIONS))
def test_bad_submission(batch: dict, name: str) -> None:
    _assert_graded(batch, f"{name}.ipynb")


def test_bad_file_messages_are_clear(batch: dict) -> None:
    assert "invalid JSON" in batch["reports"]["invalid_json.ipynb"]["exercises"]["C1"]["message"]
    assert "format version 3" in batch["reports"]["nbformat3.ipynb"]["exercises"]["C1"]["message"]
    assert "edited" in batch["reports"]["edited_header.ipynb"]["exercises"]["C4"]["message"]
    assert "2 cells" in batch["reports"]["duplicated_cell.ipynb"]["exercises"]["C3"]["message"]
    assert "died" in batch["reports"]["os_exit.ipynb"]["exercises"]["C4"]["message"]
    numpy_dice = batch["reports"]["numpy_dice.ipynb"]["exercises"]["C4"]["message"]
    assert "model.fit" in numpy_dice and "use keras.ops (imported as ops), not numpy" in numpy_dice
    off_by_one = batch["reports"]["off_by_one.ipynb"]["exercises"]["C1"]["message"]
    assert "raised ValueError: high <= 0" in off_by_one  # the exception, with its message
    assert "failing line: start_x = np.random.randint(0, orig_x - output_x)" in off_by_one
    assert "np.random.randint(0, orig - output + 1)" in off_by_one  # and the fix


def test_messages_leak_no_hidden_inputs(batch: dict) -> None:
    """A message may tell the expected value of the first failing hidden check, never the
    hidden inputs, the digests, or more than one expected value."""
    secrets = {reference.expected_digest(ex) for ex in EXERCISES}
    for args, _, _ in checks.cases("C2"):  # inputs with many digits: any printed value shows
        for v in np.ravel(args[0])[:50]:
            if abs(2 * v - round(2 * v)) > 1e-3:  # not 0.0, 7.5 or the integer image
                secrets |= {f"{float(v):.3f}", f"{float(v):.6f}", repr(float(v))}
    for report in batch["reports"].values():
        text = json.dumps(report)
        assert not [s for s in secrets if s in text]
        for entry in report["exercises"].values():
            assert entry["message"].count("expected ") <= 1 + entry["message"].count("expected a")


def _numbers(value: object) -> list[float]:
    """The numbers of a canonical value (:func:`checks.canonical`): its ``data`` and items."""
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list | tuple):
        return [n for v in value[:50] for n in _numbers(v)]
    return [float(value)] if isinstance(value, int | float) and not isinstance(value, bool) else []


def hidden_expected_values() -> set[str]:
    """The hidden checks' expected values as messages print them (6 decimals), where they are
    not round (0.5, 7.0: also what a wrong answer may return)."""
    from tumorseg.course.grading.hidden import reference

    return {
        f"{v:.6f}"
        for ex in EXERCISES
        for case in reference.expected(ex)
        for v in _numbers(case["value"])
        if np.isfinite(v) and abs(2 * v - round(2 * v)) > 1e-3
    }


def test_feedback_pages_reveal_no_hidden_expected_value(batch: dict) -> None:
    """Every submission of the hostile corpus has its page; none shows a hidden check's
    expected value, though the instructor's JSON reports do."""
    secrets = hidden_expected_values() | {reference.expected_digest(ex) for ex in EXERCISES}
    assert any(s in json.dumps(r) for r in batch["reports"].values() for s in secrets)
    for name, page in batch["pages"].items():
        assert f"Feedback on {name}" in page
        # what the student's own code returned may be shown (read_files returns the number it
        # found in its own earlier exercise's output, which a right answer makes an expected value)
        shown = re.sub(r"got -?[\d.]+(e[-+]?\d+)?", "got ...", page)
        assert not [s for s in secrets if s in shown], name
        assert not re.search(r"expected -?\d", page), name
    summary = (batch["out"] / "summary.csv").read_text()
    assert summary.startswith("item,passed,") and f"total={len(EXERCISES)}," in summary


def test_no_process_left_behind(batch: dict) -> None:
    leftovers = [
        p
        for p in psutil.process_iter(["cmdline"])
        if gen.LEFTOVER_MARK in " ".join(p.info["cmdline"] or [])
    ]
    assert leftovers == []


# --------------------------------------------------------------------------- single runs
@pytest.mark.slow
@needs_notebook
def test_kernel_death_is_detected_in_seconds() -> None:
    """os._exit in a check: reported as an error long before the (huge) cell timeout."""
    sources = _solutions()
    sources["C4"] = gen.HEADER.format(ex="C4") + (
        "import os\ndef dice_coefficient(y_true, y_pred, axis=(1, 2, 3), epsilon=0.00001):\n"
        "    os._exit(1)\n"
    )
    limits = grader.Limits(cell_timeout=400, total_timeout=500)
    run = grader.run_once(
        grader.Setup(nbtools.read_instructor(INSTRUCTOR), limits), sources, ["C4"]
    )
    result = grader.judge(run, "C4", clean=True, limits=limits)
    assert isinstance(result, grader.Result)
    assert result.status is grader.Status.ERROR and "died" in result.message
    assert run.seconds < 120  # a missed death would wait out the 400 s cell timeout


@pytest.mark.slow
@needs_notebook
def test_broken_setup_is_a_grader_error_retried_once(tmp_path: Path) -> None:
    nb = nbformat.read(str(INSTRUCTOR), as_version=4)
    setup = next(c for c in nb.cells if nbtools.SETUP_TAG in c.metadata.get("tags", []))
    setup.source = "raise RuntimeError('the grading environment is broken')\n" + setup.source
    broken = tmp_path / "broken_instructor.ipynb"
    nbformat.write(nb, str(broken))
    out = tmp_path / "out"
    status = grading_cli.grade_main(
        [
            str(INSTRUCTOR),
            "--out",
            str(out),
            "--instructor",
            str(broken),
            "--quiet",
            *_sandbox_flags(),
        ]
    )
    assert status == 1
    report = json.loads((out / "Brain_Tumor_Segmentation.json").read_text())
    assert {e["status"] for e in report["exercises"].values()} == {"grader-error"}
    assert report["total"] is None and all(e["score"] is None for e in report["exercises"].values())
    row = next(csv.DictReader(open(out / "results.csv", newline="")))
    assert row["C1"] == "" and row["total"] == ""


# --------------------------------------------------------------------------- no kernel needed
@needs_notebook
def test_grading_folder_holds_no_solution_and_no_expected_result(tmp_path: Path) -> None:
    release = nbformat.read(str(_release(tmp_path)), as_version=4)
    sources = {
        ex: next(c.source for c in release.cells if c.get("id") == nbtools.unq_id(ex))
        for ex in EXERCISES
    }
    folder = tmp_path / "folder"
    folder.mkdir()
    grader.prepare_folder(folder, nbtools.read_instructor(INSTRUCTOR), sources, list(EXERCISES))
    text = "".join(p.read_text(errors="ignore") for p in folder.rglob("*") if p.is_file())
    for ex, solution in _solutions().items():
        block = solution.split("### START CODE HERE")[1].split("### END CODE HERE")[0]
        body = [
            line
            for line in block.splitlines()
            if " = " in line and not line.strip().startswith("#") and "None" not in line
        ]
        assert body, ex
        assert not [line for line in body if line in text], ex
    for ex in ("C3", "C4", "C5", "C6"):
        for result in reference.expected(ex):
            for v in np.ravel(checks.values(result["value"])):
                if 0.01 < abs(v) < 0.99 and abs(v - 0.5) > 1e-9:
                    assert f"{v:.4f}" not in text, (ex, v)
    assert "_grading_checks.py" in {p.name for p in folder.iterdir()}
    assert not (folder / "reference.py").exists()


def test_expected_values_are_far_from_rounding_boundaries() -> None:
    """The in-kernel digest rounds to DECIMALS; the grader's tolerance is smaller than the
    margin, so both halves of a check always agree."""
    assert feedback.ATOL < checks.MARGIN
    for ex in EXERCISES:
        for result in reference.expected(ex):
            value = checks.values(result["value"])
            flat = (
                np.concatenate([np.ravel(v) for v in value])
                if isinstance(value, tuple)
                else (np.array([]) if value is None else np.ravel(value))
            )
            scaled = flat * 10**checks.DECIMALS
            distance = np.abs(scaled - np.floor(scaled) - 0.5) / 10**checks.DECIMALS
            assert distance.size == 0 or distance.min() >= checks.MARGIN, ex


def _record(ex: str, results: list, symbolic: list | None = None) -> dict:
    if symbolic is None:
        symbolic = list(reference.expected_symbolic(ex)) if REGISTRY[ex].symbolic else []
    return {"exercise": ex, "defined": True, "results": results, "symbolic": symbolic}


def test_every_exercise_has_one_reference_on_the_hidden_side() -> None:
    """The hidden side keeps the references by exercise id; the public records name none."""
    assert set(reference.REFERENCES) == set(REGISTRY)
    assert all(callable(ref) for ref in reference.REFERENCES.values())
    assert not any(hasattr(ex, "reference") for ex in REGISTRY.values())


def test_reference_results_pass_their_own_check() -> None:
    for ex in EXERCISES:
        record = _record(ex, list(reference.expected(ex)))
        assert judge.judge_record(ex, record)[0] == "passed"
        assert checks.fingerprint(ex, record["results"]) == reference.expected_digest(ex)


def test_one_wrong_value_fails_both_halves() -> None:
    results = copy.deepcopy(list(reference.expected("C4")))
    results[1]["value"]["data"] = [results[1]["value"]["data"][0] + 0.01]
    assert checks.fingerprint("C4", results) != reference.expected_digest("C4")
    status, message = judge.judge_record("C4", _record("C4", results))
    assert status == "failed"
    assert message.startswith("`dice_coefficient` failed 1 of 4 hidden checks (2: wrong result).")
    assert "dice_coefficient on hidden check 2: expected " in message
    assert REGISTRY["C4"].hint in message


def _solution_variant(ex: str, old: str, new: str) -> dict:
    import keras

    source = _solutions()[ex]
    assert old in source
    namespace = {"np": np, "keras": keras, "ops": keras.ops}
    exec(compile(source.replace(old, new), "<cell>", "exec"), namespace)
    return namespace


@needs_notebook
def test_messages_give_the_diagnosis_of_the_first_failing_check() -> None:
    """The message lists every failing check in order, the count agrees, and it carries the
    public tests' diagnosis: expected, got, hint; the exception and how to fix it."""
    ns = _solution_variant("C1", "orig_x - output_x + 1", "orig_x - output_x")
    status, message = judge.judge_record(
        "C1", _record("C1", checks.call_student("C1", ns["get_sub_volume"]))
    )
    assert status == "error"
    assert message.startswith(
        "`get_sub_volume` failed 3 of 5 hidden checks "
        "(1 and 4: wrong result; 3: raised ValueError)."
    )
    assert "X holds the wrong voxels for hidden check 1" in message
    assert "Hidden check 3: get_sub_volume raised ValueError: high <= 0" in message
    assert "np.random.randint(0, orig - output + 1)" in message
    # a NaN is named as such, with the hint
    results = copy.deepcopy(list(reference.expected("C4")))
    results[2]["value"]["data"] = [float("nan")]
    status, message = judge.judge_record("C4", _record("C4", results))
    assert status == "failed" and "failed 1 of 4 hidden checks (3: wrong result)" in message
    assert "got nan: a division by zero? Add epsilon" in message


@needs_notebook
def test_numpy_only_dice_fails_its_hidden_check_with_the_keras_hint() -> None:
    source = _solutions()["C5"].replace("ops.sum", "np.sum").replace("ops.mean", "np.mean")
    namespace = {"np": np}
    exec(compile(source, "<cell>", "exec"), namespace)
    fn = namespace["soft_dice_loss"]
    numeric = checks.call_student("C5", fn)
    assert checks.fingerprint("C5", numeric) == reference.expected_digest("C5")  # right on arrays
    status, message = judge.judge_record(
        "C5", _record("C5", numeric, checks.call_student("C5", fn, symbolic=True))
    )
    assert status == "failed"
    assert "passed all 4 hidden checks on numpy arrays, but not inside model.fit" in message
    assert feedback.KERAS_HINT in message


def test_canonical_uses_exact_types() -> None:
    class AlwaysEqual:
        def __eq__(self, other: object) -> bool:
            return True

        def __array__(self, dtype=None, copy=None):  # noqa: ANN001
            return np.zeros(())

    class FloatChild(float):
        pass

    assert checks.canonical(AlwaysEqual())["t"] == "other"
    assert checks.canonical(FloatChild(0.5))["t"] == "other"
    assert checks.canonical(np.float64(0.25)) == {
        "t": "numpy.float64",
        "dtype": "float64",
        "shape": [],
        "data": [0.25],
    }
    assert checks.canonical(np.array(["a"]))["t"] == "other"  # not numbers
    assert (
        checks.type_problem("C6", checks.canonical((0.5, 0.5))) is not None
    )  # float, not np.float64
    assert checks.type_problem("C6", checks.canonical((np.float64(0.5),) * 2)) is None
    assert checks.type_problem("C3", checks.canonical(np.float32(0.5))) is not None  # float32


@pytest.mark.parametrize(
    "forged",
    [
        None,
        [],
        {"exercise": "C2"},
        {"exercise": "C2", "defined": True, "results": "x"},
        {
            "exercise": "C2",
            "defined": True,
            "results": [
                {"value": {"t": "numpy.ndarray", "dtype": "float64", "shape": [2], "data": "abc"}}
            ]
            * 4,
        },
        {"exercise": "C2", "defined": True, "results": [{"value": {"t": "tuple", "items": 5}}] * 4},
    ],
)
def test_forged_records_never_pass(forged: object) -> None:
    assert judge.judge_record("C2", forged)[0] != "passed"


def test_read_submission_problems(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    good = nbformat.v4.new_code_cell(nbtools.header("C1") + "\ndef get_sub_volume(): pass")
    by_header_only = nbformat.v4.new_code_cell(nbtools.header("C2") + "\nx = 1")
    by_id_edited = nbformat.v4.new_code_cell("# UNQ_C3 edited\nx = 1")
    by_id_edited.id = "unq-c3"
    twin_a = nbformat.v4.new_code_cell(nbtools.header("C4") + "\na = 1")
    twin_b = nbformat.v4.new_code_cell(nbtools.header("C4") + "\nb = 1")
    markdown = nbformat.v4.new_markdown_cell(nbtools.header("C5"))
    nb.cells = [good, by_header_only, by_id_edited, twin_a, twin_b, markdown]
    path = tmp_path / "s.ipynb"
    nbformat.write(nb, str(path))
    sub = nbtools.read_submission(path)
    assert sub.fatal is None
    assert set(sub.sources) == {"C1", "C2"}
    assert set(sub.problems) == {"C3", "C4", "C5", "C6"}
    assert "edited" in sub.problems["C3"] and "2 cells" in sub.problems["C4"]
    big = tmp_path / "big.ipynb"
    big.write_bytes(b" " * 2048)
    assert "MB" in nbtools.read_submission(big, max_bytes=1024).fatal
    (tmp_path / "list.ipynb").write_text("[1, 2]")
    assert "not a Jupyter notebook" in nbtools.read_submission(tmp_path / "list.ipynb").fatal


@needs_notebook
def test_instructor_grader_cells_are_present_and_current() -> None:
    nb = nbformat.read(str(INSTRUCTOR), as_version=4)
    assert not nbtools.ensure_grader_cells(nb), "run scripts/add_grader_cells.py"
    ids = [c.get("id") for c in nb.cells]
    for ex in EXERCISES:
        cell = nb.cells[ids.index(nbtools.grade_id(ex))]
        assert nbtools.GRADER_TAG in cell.metadata["tags"]
        assert ids.index(nbtools.grade_id(ex)) > ids.index(nbtools.unq_id(ex))
        assert nbtools.stdout_text(cell) == checks.verdict(ex, True) + "\n"


@needs_notebook
def test_grader_cells_script_is_idempotent(tmp_path: Path) -> None:
    nb = nbformat.read(str(INSTRUCTOR), as_version=4)
    nb.cells = [c for c in nb.cells if nbtools.GRADER_TAG not in c.metadata.get("tags", [])]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, str(path))
    script = _load_script()
    assert script.main([str(path), "--check"]) == 1
    assert script.main([str(path)]) == 0
    first = path.read_text()
    assert script.main([str(path)]) == 0 and path.read_text() == first
    assert script.main([str(path), "--check"]) == 0
    cells = nbformat.read(str(path), as_version=4).cells
    assert sum(nbtools.GRADER_TAG in c.metadata.get("tags", []) for c in cells) == 6


def _load_script():
    return load_file_module(ROOT / "scripts" / "add_grader_cells.py", "add_grader_cells")


@needs_notebook
def test_grading_notebook_is_reduced() -> None:
    sources = {ex: f"# student {ex}" for ex in EXERCISES}
    nb = nbtools.build_grading_notebook(nbtools.read_instructor(INSTRUCTOR), sources, ["C2", "C5"])
    roles = [
        (c.metadata[nbtools.ROLE_KEY]["role"], c.metadata[nbtools.ROLE_KEY]["exercise"])
        for c in nb.cells
    ]
    assert roles[0] == ("prelude", "")
    assert [r for r in roles if r[0] != "setup"][1:] == [
        ("pre", "C2"),
        ("student", "C2"),
        ("check", "C2"),
        ("pre", "C5"),
        ("student", "C5"),
        ("check", "C5"),
    ]
    student = [c for c in nb.cells if c.metadata[nbtools.ROLE_KEY]["role"] == "student"]
    assert [c.source for c in student] == ["# student C2", "# student C5"]
    assert all(c.outputs == [] and c.execution_count is None for c in student)
    assert all(
        nbtools.FOLDER_IMPORT in c.source
        for c in nb.cells
        if c.metadata[nbtools.ROLE_KEY]["role"] == "check"
    )


# --------------------------------------------------------------------------- the sandbox runner
def _sandbox(
    code: str, tmp_path: Path, timeout: float = 30, memory_mb: int = 2048
) -> tuple[int, float]:
    import subprocess
    import sys
    import time

    start = time.monotonic()
    status = subprocess.run(
        runner_command([sys.executable, "-c", code], timeout, memory_mb, tmp_path),
        capture_output=True,
        timeout=timeout + 60,
    ).returncode
    return status, time.monotonic() - start


def test_sandbox_kills_detached_descendants(tmp_path: Path) -> None:
    mark = "876543"
    code = (
        "import subprocess, os\n"
        f"subprocess.Popen(['sleep', '{mark}'], start_new_session=True)\n"
        "if os.fork() == 0:\n    os.setsid()\n"
        f"    subprocess.Popen(['sleep', '{mark}'])\n    os._exit(0)\n"
    )
    status, _ = _sandbox(code, tmp_path)
    assert status == 0
    assert not [
        p for p in psutil.process_iter(["cmdline"]) if mark in " ".join(p.info["cmdline"] or [])
    ]


def test_sandbox_timeout_and_memory_limit(tmp_path: Path) -> None:
    status, seconds = _sandbox(
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "while True: time.sleep(0.1)",
        tmp_path,
        timeout=2,
    )
    assert status == 124 and seconds < 20
    status, _ = _sandbox("b = bytearray(3 * 1024 ** 3)", tmp_path, memory_mb=1024)
    assert status == 1  # MemoryError, not an OOM kill of the machine


def test_sandbox_runner_usage_errors() -> None:
    import subprocess
    import sys

    command = [sys.executable, "-m", "tumorseg.course.grading.cli"]
    done = subprocess.run([*command, "sandbox", "--timeout", "1"], capture_output=True, text=True)
    assert done.returncode == 2 and "usage: sandbox [options] -- CMD" in done.stderr
    done = subprocess.run([*command, "grade"], capture_output=True, text=True)
    assert done.returncode == 2 and "usage: python -m tumorseg.course.grading.cli" in done.stderr


def test_the_runner_imports_the_graders_tumorseg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sandboxed runner starts with a bare environment plus PYTHONPATH of the grader's own
    tumorseg, so it runs this checkout's runner even where the interpreter's install of the
    package is another checkout's."""
    import subprocess
    import sys

    monkeypatch.setattr(isolation, "prepare_folder", lambda folder, home=None: 0)
    monkeypatch.setattr(isolation, "wrap", lambda cmd, *args: cmd)
    setup = grader.Setup(instructor=nbformat.v4.new_notebook(), library=tmp_path / "library")
    cmd, env = running._command(setup, tmp_path)
    assert cmd[1:4] == ["-m", "tumorseg.course.grading.cli", "sandbox"]
    assert env["PYTHONPATH"] == str(isolation.package_dir().parent)
    split = cmd.index("--")
    inner = [sys.executable, "-c", "import tumorseg, sys; sys.exit(3)"]
    done = subprocess.run([*cmd[: split + 1], *inner], env=env, capture_output=True, timeout=60)
    assert done.returncode == 3, done.stderr


# --------------------------------------------------------------------------- results.csv merge
def _fake_grading(
    monkeypatch: pytest.MonkeyPatch, points: dict[str, int], fail_on: str | None = None
) -> None:
    """Replace the kernel runs: ``points[name]`` exercises pass (C1 first), the rest fail."""

    def fake(
        path: Path, setup: grader.Setup, max_bytes: int = 0, log: object = None
    ) -> grader.Graded:
        if path.name == fail_on:
            raise RuntimeError("the grading machine crashed")
        results = {
            ex: grader.Result(
                grader.Status.PASSED if i < points[path.name] else grader.Status.FAILED, "m"
            )
            for i, ex in enumerate(EXERCISES)
        }
        return grader.Graded(path.name, results, 0.1, 1)

    monkeypatch.setattr(grader, "grade_submission", fake)


def _csv_rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "results.csv", newline="") as fh:
        return {row["submission"]: row for row in csv.DictReader(fh)}


@needs_notebook
def test_results_csv_is_a_merge_keyed_by_submission(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    a, b, c, d = (tmp_path / f"{n}.ipynb" for n in "abcd")

    def grade(paths: list[Path], points: dict[str, int], **kwargs: object) -> None:
        _fake_grading(monkeypatch, points)
        grader.grade_batch(paths, out, jobs=2, progress=False, sandbox=False, **kwargs)

    grade([a, b], {"a.ipynb": 6, "b.ipynb": 2})
    grade([c], {"c.ipynb": 4})
    rows = _csv_rows(out)
    assert {k: r["total"] for k, r in rows.items()} == {
        "a.ipynb": "6",
        "b.ipynb": "2",
        "c.ipynb": "4",
    }
    grade([b], {"b.ipynb": 5})  # a regrade of b replaces its row, a and c stay
    rows = _csv_rows(out)
    assert {k: r["total"] for k, r in rows.items()} == {
        "a.ipynb": "6",
        "b.ipynb": "5",
        "c.ipynb": "4",
    }
    assert [rows["b.ipynb"][ex] for ex in EXERCISES] == ["1"] * 5 + ["0"]
    assert json.loads((out / "b.json").read_text())["total"] == 5
    assert sorted(p.name for p in out.iterdir()) == [
        ".results.lock",
        "a.html",
        "a.json",
        "b.html",
        "b.json",
        "c.html",
        "c.json",
        "results.csv",
        "summary.csv",
        "summary.html",
    ]  # no temporary file left
    grade([d], {"d.ipynb": 1}, fresh=True)  # starting over is explicit
    assert list(_csv_rows(out)) == ["d.ipynb"]
    assert not (out / "a.json").exists() and (out / "d.json").exists()
    assert not (out / "a.html").exists() and (out / "d.html").exists()


@needs_notebook
def test_an_interrupted_batch_keeps_every_finished_grade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    paths = [tmp_path / f"{n}.ipynb" for n in "abc"]
    _fake_grading(monkeypatch, {"a.ipynb": 3, "b.ipynb": 4, "c.ipynb": 5})
    grader.grade_batch(paths[:1], out, progress=False, sandbox=False)
    _fake_grading(monkeypatch, {"a.ipynb": 3, "b.ipynb": 4, "c.ipynb": 5}, fail_on="c.ipynb")
    with pytest.raises(RuntimeError, match="crashed"):
        grader.grade_batch(paths[1:], out, jobs=1, progress=False, sandbox=False)
    assert {k: r["total"] for k, r in _csv_rows(out).items()} == {"a.ipynb": "3", "b.ipynb": "4"}


def test_a_foreign_results_csv_is_refused_before_grading(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.csv").write_text("name,grade\nalice,A\n")
    sub = tmp_path / "s.ipynb"
    sub.write_text("{}")
    assert grading_cli.grade_main([str(sub), "--out", str(out), "--no-sandbox", "--quiet"]) == 2
    assert "--fresh" in capsys.readouterr().err
    assert (out / "results.csv").read_text() == "name,grade\nalice,A\n"
    assert not (out / "s.json").exists()


# --------------------------------------------------------------------------- integrity flags
def test_library_twins_are_flagged_in_the_report_and_csv(batch: dict) -> None:
    """The batch graded ``library_twins``: right answers through the package's own functions.
    They keep their points (the default, ``--library-answers keep``), and every such cell is
    flagged: in its exercise's message, its ``flags`` and the csv's ``flags`` column."""
    report, row = batch["reports"]["library_twins.ipynb"], batch["rows"]["library_twins.ipynb"]
    for ex in EXERCISES:
        entry = report["exercises"][ex]
        if ex in gen.LIBRARY_TWINS:
            assert entry["flags"], (ex, entry)
            assert "Integrity flag: your UNQ_" in entry["message"], entry
            assert entry["status"] == "passed" and entry["score"] == 1
        else:
            assert entry["flags"] == [] and "Integrity flag" not in entry["message"]
    assert "`util.standardize_patch (line 3)`" in report["exercises"]["C2"]["message"]  # header: 1
    assert "tumorseg.model.losses.dice_coefficient" in report["exercises"]["C4"]["flags"][0]
    assert "tumorseg.model.losses.soft_dice_loss" in report["exercises"]["C5"]["flags"][0]
    assert report["flags"] == len(gen.LIBRARY_TWINS) == int(row["flags"])
    others = {
        name: r["flags"] for name, r in batch["rows"].items() if name != "library_twins.ipynb"
    }
    assert set(others.values()) == {"0"}, others  # the instructor's solutions among them


def _uses(source: str, ex: str) -> list[str]:
    return [str(u) for u in integrity.library_uses(source, REGISTRY[ex])]


def test_library_uses_finds_every_spelling_of_a_twin() -> None:
    assert _uses("from tumorseg.patches import standardize_patch as sp\nsp(x)", "C2") == [
        "tumorseg.patches.standardize_patch (line 1)"
    ]
    assert _uses("y = util.standardize_patch(x, 'slice')", "C2") == [
        "util.standardize_patch (line 1)"
    ]
    assert _uses("import tumorseg.model.losses as L\n\nz = L.dice_coefficient(a, b)", "C4") == [
        "tumorseg.model.losses.dice_coefficient (line 3)"
    ]
    assert _uses("import tumorseg\nf = tumorseg.model.losses.soft_dice_loss", "C5") == [
        "tumorseg.model.losses.soft_dice_loss (line 2)"
    ]
    assert _uses("from tumorseg.model.losses import *\nsoft_dice_loss(a, b)", "C5") == [
        "tumorseg.model.losses.soft_dice_loss (line 2)"
    ]
    assert _uses("f = getattr(util, 'standardize_patch')", "C2") == [
        "util.standardize_patch (line 1)"
    ]
    assert _uses("%time x = 1\nfrom tumorseg.metrics import class_sens_spec", "C6") == [
        "tumorseg.metrics.class_sens_spec (line 2)"
    ]


def test_library_uses_ignores_what_is_not_a_twin_of_the_exercise() -> None:
    own = "def dice_coefficient(y_true, y_pred):\n    return ops.mean(y_true * y_pred)\n"
    assert _uses(own, "C4") == []  # the student's own function of the same name
    assert _uses("import tumorseg.model.losses as L\nL.soft_dice_loss", "C4") == []  # C5's twin
    assert _uses("from mylib import dice_coefficient\ndice_coefficient(a, b)", "C4") == []
    assert _uses("import numpy as np\nnp.standardize_patch = 1", "C2") == []
    assert _uses("def broken(:\n    util.standardize_patch", "C2") == []  # unparsable
    assert _uses(_solutions()["C2"], "C2") == []


def _in_process_run(setup: grader.Setup, sources: dict[str, str], batch: list[str]) -> grader.Run:
    """What a grading run leaves behind, computed in this process: each student cell runs in a
    namespace like the notebook's (no kernel, no sandbox), then the hidden checks on it."""
    import importlib

    import keras

    run = grader.Run(list(batch), junit_found=True)
    util = importlib.import_module("tumorseg.course.facade")  # what util.py re-exports
    for ex in batch:
        namespace = {"np": np, "keras": keras, "ops": keras.ops, "util": util}
        exec(compile(sources[ex], f"<UNQ_{ex}>", "exec"), namespace)
        fn = namespace.get(REGISTRY[ex].function)
        run.items += [grader.Item(role, ex, "ok") for role in ("pre", "student", "check")]
        run.records[ex] = {
            "exercise": ex,
            "defined": callable(fn),
            "results": checks.call_student(ex, fn),
            "symbolic": checks.call_student(ex, fn, symbolic=True) if REGISTRY[ex].symbolic else [],
            "changed": False,
        }
    return run


@pytest.mark.slow  # runs all six solutions in this process, TensorFlow tracing included
@needs_notebook
def test_library_answers_zero_scores_flagged_exercises_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gen.build(tmp_path)
    monkeypatch.setattr(grader, "run_once", _in_process_run)
    setup = grader.Setup(nbtools.read_instructor(INSTRUCTOR), library_answers="zero")
    graded = grader.grade_submission(tmp_path / "library_twins.ipynb", setup)
    for ex, result in graded.results.items():
        flagged = ex in gen.LIBRARY_TWINS
        assert result.status is (grader.Status.FLAGGED if flagged else grader.Status.PASSED), ex
        assert result.score == int(not flagged) and bool(result.flags) == flagged
    assert "--library-answers zero" in graded.results["C2"].message
    assert graded.total == 1 and graded.flags == len(gen.LIBRARY_TWINS)
    parser = grading_cli.grade_parser()
    assert parser.parse_args(["s.ipynb", "--out", "o"]).library_answers == "keep"
    with pytest.raises(SystemExit):
        parser.parse_args(["s.ipynb", "--out", "o", "--library-answers", "half"])


def test_flags_keep_the_score_and_leave_unflagged_results_alone() -> None:
    passed = grader.Result(grader.Status.PASSED, "`standardize` passed all 4 hidden checks.")
    source = "def standardize(image):\n    return util.standardize_patch(image, 'slice')\n"
    kept = grader.flag_library_answers(passed, "C2", source)
    assert kept.status is grader.Status.PASSED and kept.score == 1
    assert kept.flags == ("util.standardize_patch (line 2)",)
    assert kept.message.startswith(passed.message + "\nIntegrity flag: your UNQ_C2 cell uses")
    failed = grader.Result(grader.Status.FAILED, "wrong")
    assert grader.flag_library_answers(failed, "C2", source, "zero").status is grader.Status.FAILED
    assert grader.flag_library_answers(passed, "C2", _solutions()["C2"], "zero") is passed


# --------------------------------------------------------------------------- a seventh exercise
def _ref_foreground_fraction(label: np.ndarray) -> np.float64:
    """Reference of the throw-away exercise: the share of nonzero voxels."""
    return np.float64(np.mean(np.asarray(label) != 0))


def _foreground_cases() -> list:
    rng = np.random.RandomState(7107)
    first = np.zeros((4, 3, 2))
    first.flat[rng.permutation(24)[:7]] = 2.0  # 7 of 24 voxels
    second = np.zeros((5, 4))
    second.flat[rng.permutation(20)[:3]] = 1.0  # 3 of 20
    return [((first,), {}, None), ((second,), {}, None)]


SEVENTH = (
    "def foreground_fraction(label):\n"
    "    ### START CODE HERE ###\n"
    "    fraction = np.mean(label != 0)\n"
    "    ### END CODE HERE ###\n"
    "    return fraction\n"
)


@pytest.mark.slow  # runs all six solutions in this process, TensorFlow tracing included
@needs_notebook
def test_a_seventh_exercise_is_one_record_its_reference_and_its_notebook_cell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A throw-away exercise C7: its record, its reference on the hidden side and one cell in
    the notebook are all it takes for the grader cells, the submission reader, the grading
    notebook, the in-kernel check, the grader-side judgement, the whole submission's grade and
    results.csv."""
    from tumorseg.course.exercises import REQUIRED, SCALAR64, Exercise, header, unq_id

    seventh = Exercise(
        id="C7",
        function="foreground_fraction",
        signature={"label": REQUIRED},
        public_test="test_foreground_fraction",
        result=SCALAR64,
        hidden_cases=_foreground_cases,
        hint="fraction = the mean of (label != 0).",
        twins=("tumorseg.metrics.core.foreground_fraction",),
    )
    monkeypatch.setitem(REGISTRY, "C7", seventh)
    monkeypatch.setitem(reference.REFERENCES, "C7", _ref_foreground_fraction)
    monkeypatch.setattr(grader, "run_once", _in_process_run)
    reference.expected.cache_clear()
    try:
        nb = nbformat.read(str(INSTRUCTOR), as_version=4)
        cell = nbformat.v4.new_code_cell(f"{header('C7')}\n{SEVENTH}")
        cell.id = unq_id("C7")
        nb.cells.append(cell)
        assert nbtools.ensure_grader_cells(nb)  # the notebook's grade-c7 cell, written for it
        check = nb.cells[-1]
        assert (
            check.id == nbtools.grade_id("C7") and reference.expected_digest("C7") in check.source
        )
        assert results.header()[-4:] == ["C7", "total", "flags", "sandbox"]

        # the instructor's solution passes the in-kernel check and the grader's judgement
        outputs = tmp_path / "outputs"
        outputs.mkdir()
        monkeypatch.setenv(checks.OUTPUT_ENV, str(outputs))
        namespace: dict = {"np": np}
        exec(compile(SEVENTH, "<UNQ_C7>", "exec"), namespace)
        exec(compile(check.source, "<grade-c7>", "exec"), namespace)
        record = json.loads((outputs / "C7.json").read_text())
        assert judge.judge_record("C7", record) == (
            "passed",
            "`foreground_fraction` passed all 2 hidden checks.",
        )
        wrong = {"np": np}
        exec(compile(SEVENTH.replace("!= 0", "> 1"), "<UNQ_C7>", "exec"), wrong)
        status, message = judge.judge_record(
            "C7", {**record, "results": checks.call_student("C7", wrong["foreground_fraction"])}
        )
        assert status == "failed" and "foreground_fraction on hidden check 2: expected" in message
        assert seventh.hint in message

        # a submission: found, put in the grading notebook, graded with the other six
        path = tmp_path / "with_c7.ipynb"
        nbformat.write(nb, str(path))
        sub = nbtools.read_submission(path)
        assert set(sub.sources) == set(REGISTRY) and not sub.problems
        grading = nbtools.build_grading_notebook(nb, sub.sources, ["C7"])
        roles = [c.metadata[nbtools.ROLE_KEY] for c in grading.cells]
        assert [r["role"] for r in roles if r["exercise"] == "C7"] == ["pre", "student", "check"]
        graded = grader.grade_submission(path, grader.Setup(nb))
        assert graded.results["C7"].status is grader.Status.PASSED
        assert graded.total == 7 and graded.flags == 0
    finally:
        reference.expected.cache_clear()

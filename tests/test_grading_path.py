"""One submission's path through ``tumorseg grade`` flows one way (issue 34, the pipeline).

The counting rule, as :func:`trace_path` and :func:`returns` apply it:

- The path is the order in which the grading code's functions are entered (``sys.setprofile``
  and ``threading.setprofile`` ``call`` events, every thread) while the orchestrator's
  per-submission function (``grader.grade_one``: stages 1 to 4, then 5) runs for one submission.
  What a batch does once for all its submissions (check the sandbox, read the instructor
  notebook, compute the answer keys, copy the package, write the summary) is not part of it.
- The modules that count are those under ``tumorseg.course.grading`` and ``tumorseg.batch``; a
  function counts for the module whose source file holds it.  Code that ``dataclasses``
  generates (a record's ``__init__``, ``__eq__``, ``__repr__``: it only stores or compares
  fields and has no source file) counts for none; every function, method, property and
  comprehension written in a counted module counts, ``__post_init__`` included.  Module-level
  code (imports) is not the path: every grading module is imported before tracing.
- Every counted module counts as itself: a stage's helpers (``hidden.judge``, ``integrity``,
  ``checks``, ``isolation``, ``sandbox``) and the records are modules of their own.
- Consecutive calls within one module count once.  A *return* is an entry into a module that
  already appeared earlier in the path (after another module).  At most :data:`MAX_RETURNS`.

The submission is ``numpy_dice`` of tests/submissions/make_submissions.py (C4 fails its hidden
checks, so the judge's diagnosis runs too); its exercises settle in one grading run.  Its path
is grader -> nbtools -> running -> nbtools -> isolation -> sandbox -> running -> judging ->
checks -> hidden.judge -> judging -> flagging -> integrity -> records -> reports -> pages ->
results: 3 returns (running builds the notebook with nbtools; running reads what the run left
after the sandbox's part; judging judges each exercise after the run's records were decoded
and scored at once).  A submission whose exercises must run again in a fresh kernel goes
through stages 2 and 3 once per run (the orchestrator's one loop), which adds returns; this
test grades a one-run submission.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from submissions import make_submissions as gen

import tumorseg.batch
import tumorseg.course.grading
from tumorseg.course.grading import grader, isolation
from tumorseg.resources import instructor_notebook

GRADING = "tumorseg.course.grading"
#: the stages in the order the orchestrator calls them, each with its entry function
STAGES = {
    f"{GRADING}.nbtools": "read_submission",
    f"{GRADING}.running": "run_once",
    f"{GRADING}.judging": "judge_run",
    f"{GRADING}.flagging": "flag_submission",
    f"{GRADING}.reports": "write",
}
ORCHESTRATOR = f"{GRADING}.grader"
MAX_RETURNS = 3
SUBMISSION = "numpy_dice"


@dataclass(frozen=True)
class Call:
    """One entry into a counted module: its module and function, and those of the caller
    (``caller`` None: the caller is not in a counted module)."""

    module: str
    function: str
    caller: str | None
    caller_function: str


def _counted_files() -> dict[str, str]:
    """Source file -> module, for every module that counts (imported here, all of them)."""
    for package in (tumorseg.course.grading, tumorseg.batch):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            importlib.import_module(info.name)
    return {
        str(Path(module.__file__)): name
        for name, module in list(sys.modules.items())
        if getattr(module, "__file__", None)
        and (name.startswith(GRADING) or name.startswith("tumorseg.batch"))
    }


def trace_path(action: Callable[[], Any], entry: str = "grade_one") -> tuple[Any, list[Call]]:
    """Run ``action`` and return its result and every call into a counted module made while
    the orchestrator's function ``entry`` (of :data:`ORCHESTRATOR`) was on the stack."""
    files = _counted_files()
    calls: list[Call] = []

    def within(frame: Any) -> bool:
        while frame is not None:
            code = frame.f_code
            if code.co_name == entry and files.get(code.co_filename) == ORCHESTRATOR:
                return True
            frame = frame.f_back
        return False

    def profile(frame: Any, event: str, arg: object) -> None:
        if event != "call" or frame.f_code.co_name == "<module>":
            return
        module = files.get(frame.f_code.co_filename)
        if module is None or not within(frame):
            return
        caller = frame.f_back
        calls.append(
            Call(
                module,
                frame.f_code.co_name,
                files.get(caller.f_code.co_filename) if caller is not None else None,
                caller.f_code.co_name if caller is not None else "",
            )
        )

    threading.setprofile(profile)
    sys.setprofile(profile)
    try:
        result = action()
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    return result, calls


def path_of(calls: list[Call]) -> list[str]:
    """The modules of ``calls``, consecutive repeats once."""
    path: list[str] = []
    for call in calls:
        if not path or path[-1] != call.module:
            path.append(call.module)
    return path


def returns(path: list[str]) -> list[str]:
    """The entries of ``path`` into a module it had already left."""
    seen: set[str] = set()
    back = []
    for module in path:
        if module in seen:
            back.append(module)
        seen.add(module)
    return back


def test_counting_rule_on_a_made_up_path() -> None:
    """Consecutive calls count once; every re-entry into a module left before is counted."""
    g, j, h, c = (f"{GRADING}.{m}" for m in ("grader", "judging", "hidden.judge", "checks"))
    calls = [
        Call(g, "grade_one", None, ""),
        Call(j, "judge_run", g, "grade_one"),
        Call(j, "judge", j, "judge_run"),
        Call(h, "judge_record", j, "judge"),
        Call(c, "values", h, "judge_record"),
        Call(h, "_same", h, "judge_record"),
        Call(j, "judge", j, "judge_run"),
    ]
    assert path_of(calls) == [g, j, h, c, h, j]
    assert returns(path_of(calls)) == [h, j]


@pytest.mark.slow  # one real grading run: a kernel in the sandbox, 8 s on one idle core
@pytest.mark.skipif(not instructor_notebook().is_file(), reason="instructor notebook missing")
def test_one_submission_flows_one_way(tmp_path: Path) -> None:
    expected = gen.build(tmp_path / "subs")[f"{SUBMISSION}.ipynb"]
    try:
        isolation.check_available()
        sandbox = True
    except isolation.SandboxUnavailable:
        sandbox = False
    limits = grader.Limits(cell_timeout=15)
    graded, calls = trace_path(
        lambda: grader.grade_batch(
            [tmp_path / "subs" / f"{SUBMISSION}.ipynb"],
            tmp_path / "out",
            jobs=1,
            limits=limits,
            progress=False,
            sandbox=sandbox,
        )
    )
    (g,) = graded
    assert {ex: r.score for ex, r in g.results.items()} == expected["scores"]
    assert g.runs == 1, "the submission's exercises should settle in one run"

    path = path_of(calls)
    shown = " -> ".join(m.removeprefix(f"{GRADING}.") for m in path)
    assert path[0] == ORCHESTRATOR and len(returns(path)) <= MAX_RETURNS, shown

    # the orchestrator calls each stage once, in order
    by_orchestrator = [
        (c.module, c.function) for c in calls if c.caller == ORCHESTRATOR and c.module in STAGES
    ]
    assert by_orchestrator == list(STAGES.items())

    # no stage calls the orchestrator or a later stage
    order = list(STAGES)
    for c in calls:
        if c.caller in STAGES:
            assert c.module != ORCHESTRATOR, c
            if c.module in STAGES:
                assert order.index(c.module) <= order.index(c.caller), c

"""Each exercise's text says what its public test checks, so the two cannot drift apart.

For every exercise of :data:`tumorseg.course.exercises.REGISTRY` the test reads the public
test's source (:mod:`tumorseg.course.public_tests`) and derives what it checks:

- the axes it passes as ``axis`` (keyword ``axis=(...)``, and the batch axes it gives
  ``_check_in_model_fit``);
- whether it requires float64 results (``_scalar64``, ``np.float64``);
- whether it wants one value per sample (a ``.shape`` compared with a one-element tuple);
- whether the result is a ratio of counts, whose denominator can be 0 (a class absent).

It then reads the exercise's text in the instructor notebook (the markdown cells from the
``ex-N`` anchor to the graded cell, and the graded function's docstring) and requires that the
text says each of those things: every non-default ``axis`` the test uses, that the sums run over
`axis` (never a hard-coded ``axis=(...)`` to sum over), "float64", "(batch,)" and what an absent
class gives.  ``test_the_walker_rejects_the_old_exercise_4_text`` shows the check fails on the
text Exercise 4 had before (issue 32).
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap

import nbformat
import pytest

from tumorseg import resources
from tumorseg.course import public_tests
from tumorseg.course.exercises import PAIR64, REGISTRY, Exercise, unq_id


def _anchor(exercise: Exercise) -> str:
    return f'<a name="ex-{exercise.id[1:]}"></a>'


def exercise_text(nb: nbformat.NotebookNode, exercise: Exercise) -> str:
    """The markdown from the exercise's anchor up to its graded cell, plus the graded
    function's docstring."""
    cells = nb.cells
    start = next(i for i, c in enumerate(cells) if _anchor(exercise) in c.source)
    graded = next(i for i, c in enumerate(cells) if c.get("id") == unq_id(exercise.id))
    assert start < graded, f"{exercise.id}: its anchor comes after its graded cell"
    markdown = [c.source for c in cells[start:graded] if c.cell_type == "markdown"]
    tree = ast.parse(cells[graded].source)
    fn = next(
        n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == exercise.function
    )
    return "\n".join([*markdown, ast.get_docstring(fn) or ""])


def _int_tuple(node: ast.AST) -> tuple[int, ...] | None:
    try:
        value = ast.literal_eval(node)
    except ValueError:
        return None
    if isinstance(value, tuple) and value and all(isinstance(v, int) for v in value):
        return value
    return None


def public_test_facts(exercise: Exercise) -> dict:
    """What the exercise's public test checks, read from its source."""
    source = textwrap.dedent(inspect.getsource(getattr(public_tests, exercise.public_test)))
    tree = ast.parse(source)
    axes: set[tuple[int, ...]] = set()
    per_sample = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg == "axis" and _int_tuple(kw.value):
                    axes.add(_int_tuple(kw.value))
            name = getattr(node.func, "id", "")
            if name == "_check_in_model_fit" and len(node.args) > 3 and _int_tuple(node.args[3]):
                axes.add(_int_tuple(node.args[3]))
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute):
            right = node.comparators[0]
            if node.left.attr == "shape" and isinstance(right, ast.Tuple) and len(right.elts) == 1:
                per_sample = True
    return {
        "axes": axes,
        "float64": "_scalar64(" in source or "float64" in source,
        "per_sample": per_sample,
        "ratio": exercise.result == PAIR64,
    }


def problems(exercise: Exercise, text: str) -> list[str]:
    """What ``text`` (an exercise's instructions and docstring) fails to say about its test."""
    facts = public_test_facts(exercise)
    found = []
    default = exercise.signature.get("axis")
    if "axis" in exercise.signature:
        if not re.search(r"over `axis`", text):
            found.append("does not say that every sum runs over `axis`")
        hard = re.findall(r"over `axis=\(", text)
        if hard:
            found.append("tells the student to sum over a hard-coded `axis=(...)`")
    for axis in sorted(facts["axes"] - {default}):
        if f"axis={axis}" not in text:
            found.append(f"does not mention axis={axis}, which the public test passes")
    if facts["float64"] and "float64" not in text:
        found.append("does not say that the result must be float64")
    if facts["per_sample"] and "(batch,)" not in text:
        found.append("does not say that a batch gives one value per sample, shape (batch,)")
    if facts["ratio"] and not ("absent" in text and "nan" in text):
        found.append("does not say what a class absent from the label gives (0 / 0: nan)")
    return found


@pytest.fixture(scope="module")
def instructor() -> nbformat.NotebookNode:
    return nbformat.read(resources.instructor_notebook(), as_version=4)


@pytest.mark.parametrize("exercise_id", sorted(REGISTRY))
def test_exercise_text_says_what_its_public_test_checks(instructor, exercise_id):
    exercise = REGISTRY[exercise_id]
    assert problems(exercise, exercise_text(instructor, exercise)) == []


def test_the_facts_are_read_from_the_public_tests():
    """The walker sees what the tests do (else the test above could not fail)."""
    c3, c4, c6 = (
        public_test_facts(REGISTRY["C3"]),
        public_test_facts(REGISTRY["C4"]),
        public_test_facts(REGISTRY["C6"]),
    )
    assert c3["axes"] == {(1, 2, 3)} and c3["per_sample"] and c3["float64"]
    assert c4["axes"] == {(2, 3, 4)} and not c4["per_sample"] and c4["float64"]
    assert c6["float64"] and c6["ratio"] and not c6["axes"]
    assert public_test_facts(REGISTRY["C2"])["float64"]


def test_the_walker_rejects_the_old_exercise_4_text(instructor):
    """Exercise 4 before issue 32: a student who wrote these axes into the function failed
    the public test's batch call with axis=(2, 3, 4)."""
    old = (
        "Inputs have shape `(num_classes, x, y, z)`; sum over `axis=(1, 2, 3)` to get one "
        "value per class, divide, then average with `ops.mean`."
    )
    found = problems(REGISTRY["C4"], old)
    assert "tells the student to sum over a hard-coded `axis=(...)`" in found
    assert "does not mention axis=(2, 3, 4), which the public test passes" in found
    assert "does not say that the result must be float64" in found


def test_the_walker_rejects_the_old_exercise_6_text():
    old = (
        "Count `tp`, `tn`, `fp`, `fn` for one class of binary arrays with `np.sum` over "
        "boolean conditions, then return the two ratios. sensitivity (np.float64)"
    )
    assert problems(REGISTRY["C6"], old) == [
        "does not say what a class absent from the label gives (0 / 0: nan)"
    ]

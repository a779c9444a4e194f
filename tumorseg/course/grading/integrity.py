"""Integrity flags: graded cells that use the package's own implementation of their exercise.

The ``tumorseg`` package (and ``util``, the notebook's facade over it) implements what several
exercises ask for: ``standardize_patch`` standardizes a patch, ``tumorseg.model.losses`` has
``dice_coefficient`` and ``soft_dice_loss``.  Each exercise's record lists them
(``Exercise.twins``).  :func:`library_uses` reads a graded cell's syntax tree and finds where
it imports or refers to one of its own exercise's twins through ``tumorseg`` or ``util``:

- ``from tumorseg.patches import standardize_patch`` (also with ``as``, or a star import of a
  ``tumorseg``/``util`` module followed by the bare name);
- ``util.standardize_patch(...)``, ``tumorseg.model.losses.dice_coefficient``, or an alias such
  as ``import tumorseg.model.losses as L`` then ``L.soft_dice_loss``;
- ``getattr(util, "standardize_patch")``.

The grader reports every such use in the exercise's message and counts the flagged cells in
``results.csv``; whether that costs the points is the instructor's decision
(``tumorseg grade --library-answers keep|zero``).  The analysis is static and never runs the
cell; code that hides its imports (``exec``, ``importlib`` on computed strings) is not found.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from tumorseg.course.exercises import REGISTRY, Exercise

#: the module names through which student code reaches the package
ROOTS = frozenset({"tumorseg", "util"})
#: what the notebook's setup cells bind before any graded cell runs
_PRELUDE_BINDINGS = {"util": "util", "tumorseg": "tumorseg"}


@dataclass(frozen=True)
class Use:
    """One place where a cell reaches a library twin: the dotted name as the cell spells it
    (aliases resolved) and the line in the cell (1-based)."""

    name: str
    line: int

    def __str__(self) -> str:
        return f"{self.name} (line {self.line})"


def _python_source(source: str) -> str:
    """The cell as plain Python: IPython's magics and shell escapes translated when IPython is
    there, else blanked (line numbers are kept either way)."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 - no IPython, or a cell it cannot transform
        return "\n".join(
            "" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()
        )


def _bindings(tree: ast.AST) -> tuple[dict[str, str], list[str]]:
    """Names bound by the cell's imports (name -> dotted path, over what the setup cells bind)
    and the modules it star-imports from."""
    names = dict(_PRELUDE_BINDINGS)
    stars: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    root = alias.name.split(".")[0]
                    names[root] = root
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                if alias.name == "*":
                    stars.append(node.module)
                else:
                    names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names, stars


def _dotted(node: ast.AST, names: dict[str, str]) -> str | None:
    """``a.b.c`` with ``a`` resolved through the cell's bindings, or None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in names:
        return None
    return ".".join([names[node.id], *reversed(parts)])


def _is_twin(dotted: str | None, twins: frozenset[str]) -> bool:
    """Whether ``dotted`` reaches a twin through ``tumorseg`` or ``util``."""
    if not dotted or "." not in dotted:
        return False
    return dotted.split(".")[0] in ROOTS and dotted.rsplit(".", 1)[1] in twins


def library_uses(source: str, exercise: Exercise) -> list[Use]:
    """Where the cell ``source`` imports or refers to one of ``exercise``'s library twins through
    ``tumorseg`` or ``util``, in line order; empty when it does not (or cannot be parsed)."""
    twins = exercise.twin_names
    if not twins:
        return []
    try:
        tree = ast.parse(_python_source(source))
    except (SyntaxError, ValueError):
        return []
    names, stars = _bindings(tree)
    star_roots = [m for m in stars if m.split(".")[0] in ROOTS]
    uses: set[Use] = set()
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                if _is_twin(f"{node.module}.{alias.name}", twins):
                    uses.add(Use(f"{node.module}.{alias.name}", line))
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            dotted = _dotted(node, names)
            if _is_twin(dotted, twins):
                uses.add(Use(dotted, line))
        elif isinstance(node, ast.Name) and star_roots and node.id in twins:
            if node.id not in names:  # a bare name a star import brought in
                uses.add(Use(f"{star_roots[0]}.{node.id}", line))
        elif dotted := _getattr_twin(node, names, twins):
            uses.add(Use(dotted, line))
    return sorted(uses, key=lambda u: (u.line, u.name))


def _getattr_twin(node: ast.AST, names: dict[str, str], twins: frozenset[str]) -> str | None:
    """``getattr(util, "standardize_patch")`` and the like: the dotted name, or None."""
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "getattr"
        and len(node.args) >= 2
        and isinstance(node.args[1], ast.Constant)
        and isinstance(node.args[1].value, str)
    ):
        return None
    base = _dotted(node.args[0], names)
    dotted = f"{base}.{node.args[1].value}" if base else None
    return dotted if _is_twin(dotted, twins) else None


def flag_message(exercise: Exercise, uses: list[Use]) -> str:
    """The line the report adds to a flagged exercise's message."""
    listed = ", ".join(f"`{u}`" for u in uses[:5]) + (" ..." if len(uses) > 5 else "")
    return (
        f"Integrity flag: your UNQ_{exercise.id} cell uses the package's own implementation of "
        f"`{exercise.function}`: {listed}. Write the function yourself; the instructor decides "
        "whether such an answer counts."
    )


def library_flags(
    sources: dict[str, str], exercises: list[str]
) -> dict[str, tuple[tuple[str, ...], str]]:
    """Per exercise: the uses of its twins in its cell ``sources[exercise]`` (as text, see
    :class:`Use`; none for a missing cell) and the line that reports them (:func:`flag_message`,
    empty when there are none)."""
    flags = {}
    for exercise in exercises:
        ex = REGISTRY[exercise]
        uses = library_uses(sources.get(exercise, ""), ex)
        flags[exercise] = (tuple(str(u) for u in uses), flag_message(ex, uses) if uses else "")
    return flags

"""No module of the package imports another that imports it back, however indirectly.

The graph counts every import in a module: at the top, inside functions, under
``TYPE_CHECKING``, relative ones resolved; and a string naming a module of the package
(``"tumorseg.x.y"`` or ``"tumorseg.x.y:name"``, the form ``importlib`` and entry points take),
except after ``-m`` in a command line, which runs that module in another process.
"""

from __future__ import annotations

import ast
import functools
from collections import deque
from pathlib import Path

import tumorseg

PACKAGE = Path(tumorseg.__file__).parent


def _module_name(path: Path, root: Path) -> str:
    """``tumorseg/a/b.py`` -> ``tumorseg.a.b``; a package's ``__init__.py`` -> the package."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _launched(tree: ast.AST) -> set[int]:
    """ids of the string nodes that follow ``"-m"`` in a list or tuple (a command line)."""
    after = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.List | ast.Tuple):
            for flag, name in zip(node.elts, node.elts[1:]):
                if isinstance(flag, ast.Constant) and flag.value == "-m":
                    after.add(id(name))
    return after


def _targets(module: str, is_package: bool, tree: ast.AST, known: set[str]) -> dict[str, int]:
    """The modules of ``known`` that ``module`` imports or names, each with a line that does."""
    here = module.split(".") if is_package else module.split(".")[:-1]
    launched = _launched(tree)
    found: dict[str, int] = {}

    def add(name: str, line: int) -> None:
        while name and name not in known:  # ``import a.b.c`` where c is a name: a.b
            name = name.rpartition(".")[0]
        if name and name != module:
            found.setdefault(name, line)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            source = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:  # ``from package import module`` imports that module
                sub = f"{source}.{alias.name}"
                add(sub if sub in known else source, node.lineno)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            name = node.value.partition(":")[0]
            if name in known and id(node) not in launched:
                add(name, node.lineno)
    return found


def import_graph(root: Path = PACKAGE) -> dict[str, dict[str, int]]:
    """module -> {module of the package it imports: a line of the import}."""
    files = {_module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    known = set(files)
    return {
        module: _targets(module, path.name == "__init__.py", ast.parse(path.read_text()), known)
        for module, path in files.items()
    }


def _chain(graph: dict[str, dict[str, int]], start: str, goal: str) -> list[str] | None:
    """A shortest import chain ``start -> ... -> goal``, or None."""
    came_from: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        if module == goal:
            chain = [module]
            while came_from[chain[-1]] is not None:
                chain.append(came_from[chain[-1]])
            return chain[::-1]
        for target in graph.get(module, {}):
            if target not in came_from:
                came_from[target] = module
                queue.append(target)
    return None


def import_loops(graph: dict[str, dict[str, int]]) -> list[str]:
    """Each loop once, as ``a:LINE -> b:LINE -> a`` (the line of each import)."""
    loops = {}
    for module, targets in graph.items():
        for target in targets:
            back = _chain(graph, target, module)
            if back is None:
                continue
            cycle = [module, *back]
            steps = [f"{a}:{graph[a][b]}" for a, b in zip(cycle, cycle[1:])]
            loops.setdefault(frozenset(cycle), " -> ".join([*steps, module]))
    return sorted(loops.values())


@functools.cache
def package_graph() -> dict[str, dict[str, int]]:
    """The package's import graph, built once per test session."""
    return import_graph()


def test_no_module_imports_one_that_imports_it_back():
    assert import_loops(package_graph()) == []


def test_the_graph_sees_hidden_imports_and_import_strings(tmp_path: Path):
    """A loop closed under ``TYPE_CHECKING``, inside a function, by a relative import or by an
    import string is found; a module launched with ``-m`` is not an import."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n  import pkg.a\n"
    )
    (pkg / "c.py").write_text("def f():\n    from .sub import d\n")
    (pkg / "sub" / "d.py").write_text("REF = 'pkg.c:f'\n")
    (pkg / "e.py").write_text("import pkg.sub.f\n")
    (pkg / "sub" / "f.py").write_text("CMD = ['python', '-m', 'pkg.e']\n")
    graph = import_graph(pkg)
    assert graph["pkg.c"] == {"pkg.sub.d": 2} and graph["pkg.sub.f"] == {}
    assert import_loops(graph) == [
        "pkg.a:1 -> pkg.b:3 -> pkg.a",
        "pkg.c:2 -> pkg.sub.d:1 -> pkg.c",
    ]


# --------------------------------------------------------------------------- layers
#: The package's layers, lowest first: a module may import its own layer and those below,
#: never one above, not even inside a function.  A subpackage's layer holds all its modules
#: except its command lines (``*.cli``), which sit with ``tumorseg.cli`` on top.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset(
        {
            "tumorseg",
            "tumorseg.errors",
            "tumorseg.atomic",
            "tumorseg.quiet",
            "tumorseg.labels",
            "tumorseg.resources",
            "tumorseg.contract",
            "tumorseg.hardware",
        }
    ),  # fmt: skip
    frozenset({"tumorseg.batch", "tumorseg.data", "tumorseg.metrics"}),
    frozenset({"tumorseg.model", "tumorseg.patches"}),
    frozenset({"tumorseg.inference", "tumorseg.train"}),
    frozenset({"tumorseg.viz"}),
    frozenset({"tumorseg.course"}),
)
#: the command-line layer, above every other
CLI_LAYER = len(LAYERS)


def layer_of(module: str, layers: tuple[frozenset[str], ...] = LAYERS) -> int:
    """The layer of ``module`` (``tumorseg.a.b``: that of ``tumorseg.a``; ``*.cli`` and
    ``__main__`` modules: the CLI layer).  KeyError for a subpackage no layer names."""
    parts = module.split(".")
    if parts[-1] in ("cli", "__main__"):
        return len(layers)
    top = ".".join(parts[:2])
    for level, members in enumerate(layers):
        if top in members:
            return level
    raise KeyError(f"{top} is in no layer: add it to LAYERS in tests/test_import_graph.py")


def upward_imports(
    graph: dict[str, dict[str, int]], layers: tuple[frozenset[str], ...] = LAYERS
) -> list[str]:
    """Each import from a lower layer to a higher one, as ``a:LINE -> b``."""
    return sorted(
        f"{module}:{line} -> {target}"
        for module, targets in graph.items()
        for target, line in targets.items()
        if layer_of(target, layers) > layer_of(module, layers)
    )


def test_every_module_has_a_layer():
    for module in package_graph():
        layer_of(module)


def test_no_import_runs_upward():
    assert upward_imports(package_graph()) == []


def test_an_upward_import_inside_a_function_is_found(tmp_path: Path):
    pkg = tmp_path / "pkg"
    (pkg / "low").mkdir(parents=True)
    (pkg / "high").mkdir()
    for init in (pkg, pkg / "low", pkg / "high"):
        (init / "__init__.py").write_text("")
    (pkg / "low" / "a.py").write_text("def f():\n    from pkg.high import b\n")
    (pkg / "high" / "b.py").write_text("from pkg.low import a\n")
    (pkg / "high" / "cli.py").write_text("import pkg.high.b\n")
    (pkg / "low" / "cli.py").write_text("import pkg.high.b\n")  # a command line sits on top
    layers = (frozenset({"pkg", "pkg.low"}), frozenset({"pkg.high"}))
    assert upward_imports(import_graph(pkg), layers) == ["pkg.low.a:2 -> pkg.high.b"]


#: ``tumorseg grade``'s stages in the order the orchestrator (``grader``) calls them
GRADING = "tumorseg.course.grading"
STAGES = ("nbtools", "running", "judging", "flagging", "reports")


def test_no_grading_stage_imports_the_orchestrator_or_a_later_stage():
    graph = package_graph()
    for i, stage in enumerate(STAGES):
        imported = set(graph[f"{GRADING}.{stage}"])
        later = {f"{GRADING}.{s}" for s in (*STAGES[i + 1 :], "grader", "cli")}
        assert not imported & later, (stage, sorted(imported & later))
    # the records flow between the stages and import none of them
    assert not set(graph[f"{GRADING}.records"]) & {f"{GRADING}.{s}" for s in STAGES}

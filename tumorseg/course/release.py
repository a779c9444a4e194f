"""Generate the student notebook from the instructor notebook (``tumorseg release``).

The instructor notebook (package data, ``tumorseg.resources.instructor_notebook()``) is the
single source.  The release:

- replaces the code between ``### START CODE HERE`` and ``### END CODE HERE`` by ``None``
  placeholders that keep the code's shape: ``x = expr`` becomes ``x = None``, ``x += 1``
  becomes ``x += None``, ``for i in range(n):`` becomes ``for i in None:``, ``while cond:`` /
  ``if cond:`` become ``while None:`` / ``if None:``, ``return expr`` becomes ``return None``
  and a bare expression becomes ``None``.  Comments, blank lines and indentation stay, so every
  released cell still parses;
- drops every cell tagged ``grader`` (the autograder's checks stay with the instructor);
- removes the ``# NBVAL_CHECK_OUTPUT`` marker lines (nbval's, meaningless to students);
- clears outputs, execution counts and per-cell execution metadata;
- checks that each exercise's public-test cell (``test-cN``) comes right after the exercise
  cell (``unq-cN``), for every exercise of :data:`tumorseg.course.exercises.REGISTRY`, so Run All on an unfinished notebook stops at the test's message before
  any later cell uses the function;
- writes complete notebook metadata (``kernelspec`` and ``language_info`` as the kernel reports
  them, the version from the instructor notebook's last execution), so JupyterLab opens the
  file without marking it changed;
- stamps the published repository's address (``--repo-url URL``, else ``Repository`` under
  ``[project.urls]`` in ``pyproject.toml``) into the ``REPO_URL = ...`` line of the bootstrap
  cell (id ``colab``) and into the README's "Open In Colab" badge.  The instructor notebook
  keeps the placeholder ``YOUR-ACCOUNT``; until an address is set the release keeps it too,
  and ``--check`` reports it.

The output is deterministic, so a test can compare the committed student notebook with a fresh
release.  ``tumorseg release`` (:mod:`tumorseg.course.cli`) writes the files atomically.
"""

from __future__ import annotations

import ast
import copy
import importlib.metadata
import re
from pathlib import Path
from urllib.parse import urlparse

import nbformat

from tumorseg import resources
from tumorseg.course.exercises import REGISTRY, public_test_id, unq_id

INSTRUCTOR = resources.instructor_notebook()
#: the committed student notebook in a source checkout, else a file in the working directory
STUDENT = resources.student_notebook()
#: the README whose Colab badge the release updates (a source checkout only)
_ROOT = resources.checkout_root()
README = _ROOT / "README.md" if _ROOT is not None else None

#: the account in the source's repository address until the course is published
PLACEHOLDER = "YOUR-ACCOUNT"
#: the notebook's bootstrap cell (its ``REPO_URL = "..."`` line gets the address)
BOOTSTRAP_ID = "colab"
REPO_LINE = re.compile(r'^REPO_URL = "[^"]*".*$', re.M)
#: the README's badge: ``[![Open In Colab](<svg>)](<link>)``, the link is replaced
BADGE = re.compile(
    r"(\[!\[Open In Colab\]\(https://colab\.research\.google\.com/assets/colab-badge\.svg\)\]\()"
    r"([^)\s]*)(\))"
)
#: where the student notebook lies in the repository, and the branch the badge opens
NOTEBOOK_IN_REPO = "notebooks/" + resources.NOTEBOOK_NAME
BRANCH = "main"
#: what ``tumorseg release`` says while the repository address is unset
UNSET = (
    "the repository address is not set, so the student notebook and the README badge still "
    f'point at {PLACEHOLDER}: add `Repository = "https://github.com/OWNER/tumorseg"` under '
    "[project.urls] in pyproject.toml, or pass --repo-url URL"
)

START = "### START CODE HERE"
END = "### END CODE HERE"
DROP_TAG = "grader"
CHECK_MARKER = "# NBVAL_CHECK_OUTPUT"
#: The kernel JupyterLab starts for the notebook, as the ipykernel kernelspec names it.
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
#: ipykernel's language_info without the Python version (taken from the instructor notebook).
LANGUAGE_INFO = {
    "codemirror_mode": {"name": "ipython", "version": 3},
    "file_extension": ".py",
    "mimetype": "text/x-python",
    "name": "python",
    "nbconvert_exporter": "python",
    "pygments_lexer": "ipython3",
}
#: per-cell metadata keys that only describe one execution; everything else is kept
_VOLATILE_CELL_METADATA = ("execution", "collapsed", "scrolled", "ExecuteTime")


_AUG_OPS = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.MatMult: "@",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.BitAnd: "&",
}


def _marker_regions(lines: list[str]) -> list[tuple[int, int]]:
    """1-based (start, end) line numbers of each START/END marker pair in a cell."""
    regions, start = [], None
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if text.startswith(START):
            if start is not None:
                raise ValueError(f"line {number}: {START} inside another solution block")
            start = number
        elif text.startswith(END):
            if start is None:
                raise ValueError(f"line {number}: {END} without a {START} before it")
            regions.append((start, number))
            start = None
    if start is not None:
        raise ValueError(f"line {start}: {START} without a matching {END}")
    return regions


def _segment(source: str, node: ast.AST) -> str:
    text = ast.get_source_segment(source, node)
    if text is None:  # pragma: no cover - only for nodes without positions
        raise ValueError(f"cannot locate {ast.dump(node)} in the cell source")
    return " ".join(text.split())  # a multi-line target becomes one line


def _placeholder(source: str, lines: list[str], node: ast.stmt) -> tuple[int, int, str]:
    """(first line, last line, replacement) for one statement inside a solution block."""
    indent = lines[node.lineno - 1][: node.col_offset]
    last = node.end_lineno or node.lineno
    if isinstance(node, ast.Assign):
        targets = " = ".join(_segment(source, t) for t in node.targets)
        text = f"{targets} = None"
    elif isinstance(node, ast.AugAssign):
        text = f"{_segment(source, node.target)} {_AUG_OPS[type(node.op)]}= None"
    elif isinstance(node, ast.AnnAssign):
        text = f"{_segment(source, node.target)}: {_segment(source, node.annotation)} = None"
    elif isinstance(node, ast.Return):
        text = "return None"
    elif isinstance(node, ast.Expr):
        text = "None"
    elif isinstance(node, (ast.Pass, ast.Break, ast.Continue)):
        text = lines[node.lineno - 1].strip()
    elif isinstance(node, ast.For):
        last = node.iter.end_lineno
        text = f"for {_segment(source, node.target)} in None:"
    elif isinstance(node, ast.While):
        last = node.test.end_lineno
        text = "while None:"
    elif isinstance(node, ast.If):
        last = node.test.end_lineno
        keyword = "elif" if lines[node.lineno - 1].lstrip().startswith("elif") else "if"
        text = f"{keyword} None:"
    else:
        raise ValueError(
            f"line {node.lineno}: a {type(node).__name__} statement inside a solution block has "
            "no placeholder form; move it outside the markers"
        )
    return node.lineno, last, indent + text


def placeholder_source(source: str) -> str:
    """Replace the solution code between the markers by ``None`` placeholders (see module doc).

    source: the text of one code cell.  Cells without markers come back unchanged.
    Raises ValueError for unbalanced markers or a statement without a placeholder form.
    """
    lines = source.split("\n")
    regions = _marker_regions(lines)
    if not regions:
        return source
    tree = ast.parse(source)
    edits: dict[int, tuple[int, str]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.stmt):
            continue
        if not any(lo < node.lineno < hi for lo, hi in regions):
            continue
        first, last, text = _placeholder(source, lines, node)
        edits[first] = (last, text)
    out, number = [], 1
    while number <= len(lines):
        if number in edits:
            last, text = edits[number]
            out.append(text)
            number = last + 1
        else:
            out.append(lines[number - 1])
            number += 1
    released = "\n".join(out)
    compile(released, "<released cell>", "exec")  # the release must still parse
    return released


def strip_check_markers(source: str) -> str:
    """``source`` without its ``# NBVAL_CHECK_OUTPUT`` comment lines."""
    return "\n".join(ln for ln in source.split("\n") if ln.strip() != CHECK_MARKER)


def check_test_order(cells: list) -> None:
    """Raise ValueError unless the cell of every exercise of the registry (``unq-cN``) is
    followed directly by its public-test cell ``test-cN`` (when the notebook has one)."""
    ids = [c.get("id") for c in cells]
    for ex in REGISTRY:
        cid, test = unq_id(ex), public_test_id(ex)
        if cid not in ids or test not in ids:
            continue
        index = ids.index(cid)
        if index + 1 >= len(ids) or ids[index + 1] != test:
            after = ids[index + 1] if index + 1 < len(ids) else "the end"
            raise ValueError(
                f"cell {test!r} must come right after {cid!r} (found {after!r} there): move it "
                "up in the instructor notebook, so Run All stops at the test's message"
            )


def notebook_metadata(metadata: dict) -> dict:
    """Complete ``kernelspec`` and ``language_info`` for the student notebook; the Python version
    comes from ``metadata`` (the instructor notebook's, written by its last execution)."""
    version = metadata.get("language_info", {}).get("version")
    language_info = {**LANGUAGE_INFO, **({"version": version} if version else {})}
    return {"kernelspec": dict(KERNELSPEC), "language_info": language_info}


# ------------------------------------------------------------------ the repository address


def check_repo_url(url: str) -> str:
    """``url`` if it is a usable repository address (``https://``, ``http://`` or ``file://``,
    without the placeholder); else ValueError saying what is wrong."""
    parsed = urlparse(url)
    usable = parsed.scheme in {"https", "http", "file"} and parsed.path.strip("/")
    if not usable or any(char in url for char in "\"'\\ \t\n"):
        raise ValueError(
            f"repository address {url!r}: expected the repository's clone address, e.g. "
            "https://github.com/OWNER/tumorseg.git"
        )
    if PLACEHOLDER in url:
        raise ValueError(f"repository address {url!r} still holds the placeholder {PLACEHOLDER}")
    return url


def _urls_from_pyproject(pyproject: Path) -> dict[str, str] | None:
    """``[project.urls]`` of ``pyproject``; ``None`` on Python 3.10 (no ``tomllib``)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the installed metadata has the same entries
        return None
    with pyproject.open("rb") as handle:
        return tomllib.load(handle).get("project", {}).get("urls", {})


def _urls_from_metadata() -> dict[str, str]:
    try:
        entries = importlib.metadata.metadata(resources.PACKAGE).get_all("Project-URL") or []
    except importlib.metadata.PackageNotFoundError:
        return {}
    return dict(entry.split(", ", 1) for entry in entries if ", " in entry)


def configured_repo_url(pyproject: Path | None = None) -> str | None:
    """The ``Repository`` entry of ``[project.urls]``: from ``pyproject`` (default: the
    checkout's ``pyproject.toml``), else from the installed package's metadata.  ``None`` when
    there is none or it still holds the placeholder."""
    if pyproject is None and _ROOT is not None:
        pyproject = _ROOT / "pyproject.toml"
    urls = _urls_from_pyproject(pyproject) if pyproject is not None else None
    if urls is None:
        urls = _urls_from_metadata()
    url = urls.get("Repository")
    return url if url and PLACEHOLDER not in url else None


def stamp_repo_url(source: str, url: str) -> str:
    """The bootstrap cell's ``source`` with its ``REPO_URL = "..."`` line set to ``url``.
    Raises ValueError when the cell has no such line."""
    if not REPO_LINE.search(source):
        raise ValueError(
            f"the bootstrap cell (id {BOOTSTRAP_ID!r}) has no line "
            '`REPO_URL = "..."` for the repository address'
        )
    line = f'REPO_URL = "{url}"  # set by `tumorseg release`'
    return REPO_LINE.sub(lambda _: line, source, count=1)


def colab_link(url: str) -> str:
    """Where the README badge leads: Colab opening the student notebook for a GitHub
    repository; for any other host (Colab opens notebooks from GitHub only) the
    repository's own address."""
    if on_github(url):
        path = urlparse(url).path.strip("/").removesuffix(".git")
        return f"https://colab.research.google.com/github/{path}/blob/{BRANCH}/{NOTEBOOK_IN_REPO}"
    return url.removesuffix(".git")


def on_github(url: str) -> bool:
    """True for a repository on github.com (the only host Colab opens notebooks from)."""
    return urlparse(url).netloc.lower() in {"github.com", "www.github.com"}


def stamp_badge(readme: str, url: str) -> str:
    """``readme`` with every "Open In Colab" badge leading to :func:`colab_link` of ``url``.
    Raises ValueError when the text has no such badge."""
    if not BADGE.search(readme):
        raise ValueError(
            "no Colab badge `[![Open In Colab](https://colab.research.google.com/assets/"
            "colab-badge.svg)](...)` to write the address into"
        )
    return BADGE.sub(lambda m: m.group(1) + colab_link(url) + m.group(3), readme)


def release_notebook(
    nb: nbformat.NotebookNode, repo_url: str | None = None
) -> nbformat.NotebookNode:
    """The student version of an instructor notebook (a new object; ``nb`` is not modified).

    repo_url: the published repository, written into the bootstrap cell; ``None`` keeps the
        source's placeholder.
    Raises ValueError when a public-test cell does not follow its exercise, or when
    ``repo_url`` is given and the notebook has no bootstrap cell (see module doc).
    """
    student = copy.deepcopy(nb)
    if repo_url is not None:
        boot = next((c for c in student.cells if c.get("id") == BOOTSTRAP_ID), None)
        if boot is None:
            raise ValueError(f"no bootstrap cell (id {BOOTSTRAP_ID!r}) to write the address into")
        boot.source = stamp_repo_url(boot.source, repo_url)
    cells = []
    for cell in student.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if DROP_TAG in tags:
            continue
        for key in _VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            cell.source = strip_check_markers(placeholder_source(cell.source))
        cells.append(cell)
    check_test_order(cells)
    student.cells = cells
    student.metadata = nbformat.from_dict(notebook_metadata(student.metadata))
    return student


def render(nb: nbformat.NotebookNode) -> str:
    """The notebook as the exact text written to disk (deterministic)."""
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def build_release(source: Path = INSTRUCTOR, repo_url: str | None = None) -> str:
    """Read the instructor notebook at ``source`` and return the student notebook's text
    (``repo_url``: see :func:`release_notebook`)."""
    nb = nbformat.read(source, as_version=4)
    return render(release_notebook(nb, repo_url))

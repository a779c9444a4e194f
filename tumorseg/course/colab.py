"""Set up the course in a Colab runtime: ``python -m tumorseg.course.cli colab [ROOT]``.

The notebook's first cell clones the repository and runs this setup from the clone (``ROOT``,
default: the working directory; the command line is ``colab_main`` in :mod:`tumorseg.course.cli`)
before anything is installed, so both modules use the standard library only (plus
``packaging``, which Keras and pip depend on, when it is there).  It

1. installs the package from the clone (``pip install -e ROOT``, the core dependencies only:
   Colab ships its own Jupyter, ipykernel and ipywidgets) under a constraints file that pins
   TensorFlow, Keras and numpy to the installed versions whenever those satisfy
   ``pyproject.toml``'s ranges, so pip never replaces Colab's deep-learning stack (no 1 GB
   download, no restart prompt); a package outside its range is left to pip, with a note;
2. says whether TensorFlow, Keras and numpy are the same after the install as before;
3. builds the synthetic sample data and their training patches under ``ROOT/data/BraTS-Data``
   (skipped when present), streaming the commands' output into the cell;
4. says whether the runtime has a GPU.

Each step prints what it does.  Exit status 1 when a command fails or one of the three
packages changed (a runtime restart is then needed).
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

#: Colab's preinstalled packages that the install must not replace
KEPT = ("tensorflow", "keras", "numpy")
#: where the notebook's data cell looks for the sample data (``ROOT / DATA``)
DATA = Path("data") / "BraTS-Data"
CASES = 10


def declared_ranges(pyproject: Path) -> dict[str, str]:
    """{name: requirement} for the ``KEPT`` packages in ``pyproject``'s dependencies, e.g.
    ``{"numpy": "numpy>=1.26,<3"}``.  Python 3.10 has no ``tomllib``: there the
    ``dependencies = [...]`` array is read with :func:`_dependencies_without_tomllib`."""
    try:
        import tomllib
    except ImportError:  # Python 3.10 (pyproject.toml allows it)
        deps = _dependencies_without_tomllib(pyproject.read_text(encoding="utf-8"))
    else:
        with pyproject.open("rb") as handle:
            deps = tomllib.load(handle)["project"]["dependencies"]
    ranges = {}
    for dep in deps:
        name = re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0].strip().lower()
        if name in KEPT:
            ranges[name] = dep.split(";")[0].strip()
    return ranges


def _dependencies_without_tomllib(text: str) -> list[str]:
    """The quoted strings of the ``dependencies = [...]`` array of ``text``'s ``[project]``
    table (a pyproject.toml), for Pythons without ``tomllib``.  Raises ValueError when the
    table or the array is missing."""
    project = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    # the array ends at a line that starts with "]" (a "]" inside a string is an extra's)
    array = project and re.search(
        r"^dependencies\s*=\s*\[(.*?)^\s*\]", project.group(1), re.M | re.S
    )
    if not array:
        raise ValueError("pyproject.toml: no `dependencies = [...]` under [project]")
    body = "\n".join(line.split("#", 1)[0] for line in array.group(1).splitlines())
    return [a or b for a, b in re.findall(r"\"([^\"]+)\"|'([^']+)'", body)]


def installed(names: tuple[str, ...] = KEPT) -> dict[str, str | None]:
    """{name: installed version, or None when it is not installed}."""
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def inventory() -> dict[str, str]:
    """{distribution name (lower case): version} of everything installed."""
    return {d.metadata["Name"].lower(): d.version for d in importlib.metadata.distributions()}


def keep_pins(ranges: dict[str, str], versions: dict[str, str | None]) -> list[str]:
    """``name==version`` for every installed package whose version is inside its range; prints
    a note for each one that pip may replace."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pragma: no cover - Keras and pip both depend on packaging
        print("  packaging is missing: pip decides about TensorFlow, Keras and numpy")
        return []
    pins = []
    for name, requirement in ranges.items():
        version, spec = versions.get(name), Requirement(requirement).specifier
        if version is not None and spec.contains(version, prereleases=True):
            pins.append(f"{name}=={version}")
            print(f"  keeping {name} {version} (the project needs {spec})")
        else:
            shown = version or "not installed"
            print(f"  {name}: {shown}, the project needs {spec}: pip installs a version that fits")
    return pins


def install(root: Path) -> bool:
    """``pip install -e root`` keeping the in-range ``KEPT`` packages; True when none of them
    changed."""
    before, everything = installed(), inventory()
    print(f"installing the tumorseg package from {root}")
    pins = keep_pins(declared_ranges(root / "pyproject.toml"), before)
    with tempfile.TemporaryDirectory() as tmp:
        constraints = Path(tmp) / "keep.txt"
        constraints.write_text("".join(f"{pin}\n" for pin in pins), encoding="utf-8")
        command = [sys.executable, "-m", "pip", "install", "-q", "-e", str(root)]
        _run([*command, "--constraint", str(constraints)])
    after = installed()
    added = sorted(f"{n} {v}" for n, v in inventory().items() if everything.get(n) != v)
    print(f"  pip installed: {', '.join(added) or 'nothing new'}")
    changed = {name: (before[name], after[name]) for name in KEPT if before[name] != after[name]}
    for name, (old, new) in changed.items():
        print(f"  {name} changed: {old} -> {new}; Runtime > Restart session, then run on")
    if not changed:
        print("  " + ", ".join(f"{name} {after[name]}" for name in KEPT) + " unchanged")
    return not changed


def build_sample_data(root: Path) -> None:
    """The synthetic sample cases and their training patches under ``root / DATA``."""
    data = root / DATA
    tumorseg = [sys.executable, "-m", "tumorseg.cli"]
    if data.exists():
        print(f"sample data: {data} is there already")
    else:
        print(f"building {CASES} synthetic sample cases into {data} (a minute or two)")
        _run([*tumorseg, "synth", "--out", str(data), "--cases", str(CASES)], cwd=root)
    if (data / "processed" / "config.json").is_file():
        print(f"training patches: {data / 'processed'} is there already")
    else:
        print(f"sampling the training patches into {data / 'processed'}")
        _run([*tumorseg, "patches", "--data", str(data), "--out", str(data / "processed")], root)


def describe_runtime() -> str:
    """'GPU runtime (<name>)' or a CPU-runtime hint, from ``nvidia-smi``."""
    smi = shutil.which("nvidia-smi")
    if smi is not None:
        query = [smi, "--query-gpu=name", "--format=csv,noheader"]
        done = subprocess.run(query, capture_output=True, text=True, check=False)
        name = done.stdout.strip().splitlines()[0] if done.stdout.strip() else ""
        if done.returncode == 0 and name:
            return f"GPU runtime ({name}): TensorFlow uses the GPU"
    return (
        "CPU runtime: sections 5 and 6 run on the CPU; Runtime > Change runtime type > "
        "T4 GPU makes them faster (then run this cell again)"
    )


def _run(command: list[str], cwd: Path | None = None) -> None:
    """Run ``command``, printing its output line by line (so it shows in the cell)."""
    with subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            print("    " + line.rstrip(), flush=True)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, command)

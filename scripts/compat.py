"""Run the course as Colab would, on package sets other than requirements.txt's pins.

    python scripts/compat.py [SET ...] [--workdir DIR] [--timeout SECONDS]   (make compat)

SET: a requirements file (default: every ``tests/compat/*.txt``: Colab's package set and the
oldest versions pyproject.toml allows).  For each set, in ``DIR/<set>`` (default
``/tmp/tumorseg-compat``, emptied first):

1. a fresh venv (this interpreter's Python) with the set installed, as Colab has it before the
   notebook runs;
2. the instructor notebook's bootstrap cell (id ``colab``), with ``REPO_URL`` set by
   ``tumorseg release``'s own function to ``file://`` this checkout (its committed HEAD), runs
   in the venv's Python from ``DIR/<set>/content`` with a stand-in ``google.colab`` package on
   ``PYTHONPATH``, so it takes its Colab branch: it clones, installs the package, builds the
   sample data under the clone;
3. TensorFlow, Keras and numpy must have the same versions after the bootstrap as before;
4. the clone's instructor notebook runs through nbclient in the venv (this script with
   ``--execute``, which uses ``scripts/run_notebook.py``), and every ``# NBVAL_CHECK_OUTPUT``
   cell's outputs must equal the stored ones, compared as nbval does (streams merged by name;
   images, widget ids, metadata and execution counts ignored).

The seconds of each step are printed per set.  Exit status 1 when a set fails.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETS = ROOT / "tests" / "compat"
NOTEBOOK = Path("tumorseg") / "course" / "notebooks" / "Brain_Tumor_Segmentation.ipynb"
KEPT = ("tensorflow", "keras", "numpy")
#: output keys nbval does not compare (its defaults without --nbdime)
SKIPPED = {
    "metadata",
    "traceback",
    "prompt_number",
    "output_type",
    "name",
    "execution_count",
    "application/vnd.jupyter.widget-view+json",
    "image/png",
    "image/jpeg",
}
#: what the notebook runs with under `make run` / `make test`
NOTEBOOK_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow", "PYTHONHASHSEED": "0"}


class CompatError(RuntimeError):
    """A step of one package set failed (the message says which and why)."""


# ------------------------------------------------------------------ the comparison (in the venv)


def comparable(outputs: list) -> dict[str, list]:
    """{key: values} of a cell's outputs as nbval --nbval-lax compares them: stream texts by
    stream name merged, MIME data flattened, the ``SKIPPED`` keys left out."""
    flat: dict[str, list] = {}
    streams: dict[str, str] = {}
    for output in outputs:
        if output.get("output_type") == "stream":
            streams[output["name"]] = streams.get(output["name"], "") + output["text"]
            continue
        for key, value in output.items():
            items = value.items() if key == "data" else [(key, value)]
            for item, content in items:
                if item not in SKIPPED:
                    flat.setdefault(item, []).append(content)
    if streams:
        flat["text"] = [streams[name] for name in sorted(streams)]
    return flat


def checked_differences(executed, stored) -> list[str]:
    """One line per checked cell of ``stored`` whose outputs in ``executed`` differ."""
    from run_notebook import is_checked

    ran = {cell.get("id"): cell for cell in executed.cells}
    problems = []
    for cell in stored.cells:
        if not is_checked(cell):
            continue
        got = comparable(ran[cell.get("id")].get("outputs", []))
        want = comparable(cell.get("outputs", []))
        if got != want:
            problems.append(f"cell {cell.get('id')}: expected {want!r}, got {got!r}")
    return problems


def execute_and_compare(notebook: Path, timeout: int) -> int:
    """``--execute``: run ``notebook`` through nbclient, printing each cell's and section's
    time, then compare the checked cells with the stored outputs; 0 when all equal."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import nbformat
    from run_notebook import execute, is_checked

    stored = nbformat.read(notebook, as_version=4)
    executed = nbformat.read(notebook, as_version=4)
    sections, total, peak, error = execute(executed, notebook.parent, timeout, per_cell=True)
    for name, (seconds, _) in sections.items():
        print(f"  {name:<40} {seconds:7.1f} s")
    print(f"  notebook total {total:.1f} s, peak kernel RSS {peak / 1e9:.2f} GB")
    if error:
        print(error, file=sys.stderr)
        return 1
    problems = checked_differences(executed, stored)
    for line in problems:
        print(line, file=sys.stderr)
    checked = sum(is_checked(cell) for cell in stored.cells)
    print(f"  checked cells: {checked}, differing: {len(problems)}")
    return 1 if problems else 0


# ------------------------------------------------------------------ one package set


def _env(**extra: str) -> dict[str, str]:
    """This process's environment without anything that points Python elsewhere."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    return {**env, **extra}


def _cpu_seconds() -> float:
    """User + system seconds of this process's finished children (and theirs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _step(what: str, command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run ``command`` (output passed through); its (wall, CPU) seconds, the CPU seconds
    summed over every process it started, so they do not depend on the machine's load.
    CompatError when it fails."""
    print(f"-- {what}", flush=True)
    start, cpu = time.perf_counter(), _cpu_seconds()
    done = subprocess.run(command, cwd=cwd, env=env, check=False)
    if done.returncode != 0:
        raise CompatError(f"{what}: exit status {done.returncode}")
    wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    print(f"   {what}: {wall:.0f} s wall, {cpu:.0f} s CPU", flush=True)
    return wall, cpu


def _versions(python: Path) -> dict[str, str]:
    code = f"import importlib.metadata as m, json; print(json.dumps({{n: m.version(n) for n in {KEPT!r}}}))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=_env())
    if done.returncode != 0:
        raise CompatError(f"cannot read the installed versions: {done.stderr.strip()}")
    return json.loads(done.stdout)


def bootstrap_source(repo_url: str) -> str:
    """The instructor notebook's bootstrap cell with ``REPO_URL`` set to ``repo_url``."""
    import nbformat

    if str(ROOT) not in sys.path:  # this checkout's package, not one installed elsewhere
        sys.path.insert(0, str(ROOT))
    from tumorseg.course import release

    nb = nbformat.read(ROOT / NOTEBOOK, as_version=4)
    cell = next(c for c in nb.cells if c.get("id") == release.BOOTSTRAP_ID)
    return release.stamp_repo_url(cell.source, repo_url)


def run_set(requirements: Path, workdir: Path, timeout: int) -> dict[str, tuple[float, float]]:
    """Steps 1-4 of the module doc for one set; {step: (wall, CPU) seconds}.  Raises
    CompatError."""
    base = workdir / requirements.stem
    shutil.rmtree(base, ignore_errors=True)
    (base / "content").mkdir(parents=True)
    stand_in = base / "stand-in" / "google" / "colab"  # a namespace package, like protobuf's
    stand_in.mkdir(parents=True)
    (stand_in / "__init__.py").write_text('"""Stand-in for Colab\'s google.colab."""\n')
    venv = base / "venv"
    python = venv / "bin" / "python"
    env = _env(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    times = {
        "venv": _step("venv", [sys.executable, "-m", "venv", str(venv)], base, env),
        "install set": _step(
            f"install {requirements.name}", [*pip, "-r", str(requirements)], base, env
        ),
    }
    before = _versions(python)
    cell = bootstrap_source(f"file://{ROOT}")
    boot_env = {**env, "PYTHONPATH": str(base / "stand-in")}
    times["bootstrap cell"] = _step(
        "bootstrap cell", [str(python), "-c", cell], base / "content", boot_env
    )
    after = _versions(python)
    if before != after:
        raise CompatError(f"the bootstrap changed the deep-learning stack: {before} -> {after}")
    print(f"   unchanged: {after}")
    clone = base / "content" / "tumorseg"
    execute = [
        str(python),
        str(clone / "scripts" / "compat.py"),
        "--execute",
        str(clone / NOTEBOOK),
    ]
    times["notebook"] = _step(
        "notebook", [*execute, "--timeout", str(timeout)], clone, {**env, **NOTEBOOK_ENV}
    )
    return times


def list_sets(sets: list[Path]) -> int:
    """Print the pins of ``KEPT`` in each requirements file; 1 when one of them is unpinned."""
    missing = 0
    for requirements in sets:
        pins = {}
        for line in requirements.read_text().splitlines():
            name, _, version = line.split("#")[0].strip().partition("==")
            if name.strip().lower() in KEPT:
                pins[name.strip().lower()] = version.strip()
        missing += len(set(KEPT) - set(pins))
        print(f"{requirements.name}: " + ", ".join(f"{k} {pins.get(k, 'UNPINNED')}" for k in KEPT))
    return 1 if missing else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sets", nargs="*", type=Path, help="requirements files (default: all)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/tumorseg-compat"))
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell")
    parser.add_argument("--execute", type=Path, help=argparse.SUPPRESS)  # step 4, in the venv
    parser.add_argument(
        "--quick",
        action="store_true",
        help="only list each set's pins of TensorFlow, Keras and numpy (no venv is made)",
    )
    args = parser.parse_args(argv)
    if args.execute:
        return execute_and_compare(args.execute, args.timeout)
    if args.quick:
        return list_sets(args.sets or sorted(SETS.glob("*.txt")))
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    if dirty:
        print("note: uncommitted changes are not in the clone the bootstrap makes", file=sys.stderr)
    failed = []
    for requirements in args.sets or sorted(SETS.glob("*.txt")):
        print(f"== {requirements.name}", flush=True)
        start = time.perf_counter()
        try:
            times = run_set(requirements.resolve(), args.workdir, args.timeout)
        except CompatError as exc:
            print(f"== {requirements.name}: FAILED: {exc}", file=sys.stderr, flush=True)
            failed.append(requirements.name)
            continue
        steps = ", ".join(f"{name} {wall:.0f}/{cpu:.0f}" for name, (wall, cpu) in times.items())
        total = time.perf_counter() - start
        print(f"== {requirements.name}: passed in {total:.0f} s (wall/CPU seconds: {steps})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Run the course as Colab would, on package sets other than requirements.txt's pins.

    python scripts/compat.py [SET ...] [--workdir DIR] [--timeout SECONDS]   (make compat)

SET: a requirements file (default: every ``tests/compat/*.txt``: Colab's package set and the
oldest versions pyproject.toml allows).  For each set, in ``DIR/<set>`` (default
``/tmp/tumorseg-compat``, emptied first):

1. a fresh venv (this interpreter's Python) with the set installed, as Colab has it before the
   notebook runs.  The sets install side by side, each in its own process (this script with
   ``--install``, its output in ``DIR/<set>/install.log``, shown when the set's turn comes):
   an install is mostly downloading and unpacking, one core each, so on a 2-core machine two
   take little longer than one; steps 2-4 then run one set at a time;
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

The wall and CPU seconds of each step are printed per set (an install's wall seconds overlap
the other sets' installs), then ``compat: N passed, N failed`` and the total wall time.  Exit
status 1 when a set fails.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
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


def _paths(requirements: Path, workdir: Path) -> tuple[Path, Path, dict[str, str]]:
    """(``DIR/<set>``, the venv's python, the environment with the venv first on PATH)."""
    base = workdir / requirements.stem
    venv = base / "venv"
    env = _env(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    return base, venv / "bin" / "python", env


def install_set(requirements: Path, workdir: Path) -> int:
    """``--install``: step 1 for one set (``DIR/<set>`` made before), run as a process of its own
    so that the sets install side by side; its {step: [wall, CPU]} go to ``install.json``."""
    base, python, env = _paths(requirements, workdir)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    try:
        times = {
            "venv": _step(
                "venv", [sys.executable, "-m", "venv", str(python.parent.parent)], base, env
            ),
            "install set": _step(
                f"install {requirements.name}", [*pip, "-r", str(requirements)], base, env
            ),
        }
    except CompatError as exc:
        print(exc, file=sys.stderr, flush=True)
        return 1
    (base / "install.json").write_text(json.dumps(times), encoding="utf-8")
    return 0


def start_install(requirements: Path, workdir: Path) -> subprocess.Popen:
    """Empty ``DIR/<set>``, lay out its ``content`` folder and stand-in ``google.colab``, and
    start step 1 in the background (``--install``), its output to ``DIR/<set>/install.log``."""
    base, _, _ = _paths(requirements, workdir)
    shutil.rmtree(base, ignore_errors=True)
    (base / "content").mkdir(parents=True)
    stand_in = base / "stand-in" / "google" / "colab"  # a namespace package, like protobuf's
    stand_in.mkdir(parents=True)
    (stand_in / "__init__.py").write_text('"""Stand-in for Colab\'s google.colab."""\n')
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--install",
        str(requirements),
        "--workdir",
        str(workdir),
    ]
    with (base / "install.log").open("wb") as log:  # the child keeps its own handle
        return subprocess.Popen(  # a process group of its own, for stop_installs
            command, stdout=log, stderr=subprocess.STDOUT, env=_env(), start_new_session=True
        )


def stop_installs(processes) -> None:
    """End the ``start_install`` processes still running, pip included (an interrupted or
    failed run leaves no install behind)."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait()


def finish_install(requirements: Path, workdir: Path, process: subprocess.Popen) -> dict:
    """Wait for ``start_install``'s process, print its log; {step: (wall, CPU)}.  Raises
    CompatError when it failed."""
    base, _, _ = _paths(requirements, workdir)
    returncode = process.wait()
    print((base / "install.log").read_text(encoding="utf-8", errors="replace"), end="", flush=True)
    if returncode != 0:
        raise CompatError(f"install {requirements.name}: exit status {returncode}")
    return {k: tuple(v) for k, v in json.loads((base / "install.json").read_text()).items()}


def run_set(
    requirements: Path, workdir: Path, timeout: int, install: subprocess.Popen
) -> dict[str, tuple[float, float]]:
    """Steps 1-4 of the module doc for one set, step 1 being ``install`` (``start_install``'s
    process); {step: (wall, CPU) seconds}.  Raises CompatError."""
    base, python, env = _paths(requirements, workdir)
    times = finish_install(requirements, workdir, install)
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
    parser.add_argument("--install", type=Path, help=argparse.SUPPRESS)  # step 1 of one set
    parser.add_argument(
        "--quick",
        action="store_true",
        help="only list each set's pins of TensorFlow, Keras and numpy (no venv is made)",
    )
    args = parser.parse_args(argv)
    args.workdir = args.workdir.resolve()  # the --install processes get it too
    if args.execute:
        return execute_and_compare(args.execute, args.timeout)
    if args.install:
        return install_set(args.install, args.workdir)
    sets = [path.resolve() for path in args.sets or sorted(SETS.glob("*.txt"))]
    if args.quick:
        return list_sets(sets)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    if dirty:
        print("note: uncommitted changes are not in the clone the bootstrap makes", file=sys.stderr)
    start = time.perf_counter()
    print(f"-- installing {len(sets)} set(s) side by side: {args.workdir}/<set>/install.log")
    installs = {requirements: start_install(requirements, args.workdir) for requirements in sets}
    failed = []
    try:
        for requirements in sets:
            print(f"== {requirements.name}", flush=True)
            try:
                times = run_set(requirements, args.workdir, args.timeout, installs[requirements])
            except CompatError as exc:
                print(f"== {requirements.name}: FAILED: {exc}", file=sys.stderr, flush=True)
                failed.append(requirements.name)
                continue
            steps = ", ".join(f"{k} {wall:.0f}/{cpu:.0f}" for k, (wall, cpu) in times.items())
            print(f"== {requirements.name}: passed (wall/CPU seconds: {steps})", flush=True)
    finally:
        stop_installs(installs.values())
    print(f"{len(sets)} set(s) in {time.perf_counter() - start:.0f} s of wall time")
    print(f"compat: {len(sets) - len(failed)} passed, {len(failed)} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

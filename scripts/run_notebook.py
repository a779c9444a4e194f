"""Execute a notebook headless and export it to HTML, with timings and peak memory.

    python scripts/run_notebook.py [NOTEBOOK] [HTML] [--save-checked] [--executed PATH] [--quick]

The kernel is this interpreter's own (``python3`` from the running environment), started in
the notebook's folder.  Cells run one by one, so the script can report

- the total wall time and the time per notebook section (a section starts at a markdown
  heading ``## <number> ...``; cells before the first one count as "setup");
- the peak resident memory of the kernel process and all its children, sampled every 0.1 s.

``--save-checked`` writes the outputs of the ``# NBVAL_CHECK_OUTPUT`` cells back into the
source notebook (other cells are stored without outputs, so the committed file stays small and
its diffs stable) together with the kernel's ``language_info``; nbval compares against those
stored outputs.  For the instructor notebook it then regenerates the student notebook
(``tumorseg release``), so one command refreshes both after the notebook, the model weights or
the sample data changed.  ``--executed PATH`` also saves the fully executed notebook and
prints its size.  Every cell that wrote to stderr is listed.  Exit status 1 when a cell fails
(its error is printed).  ``--quick`` is a smoke run: only the set-up cells (those before the
first section), the HTML written to a temporary folder unless HTML is given.  The kernel's
connection is encrypted (``encrypted_kernel``), so the terminal shows no transport warning.
"""

from __future__ import annotations

import argparse
import base64
import copy
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from tumorseg.atomic import write_text

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_NB = ROOT / "tumorseg" / "course" / "notebooks" / "Brain_Tumor_Segmentation.ipynb"
DEFAULT_HTML = ROOT / "build" / "Brain_Tumor_Segmentation.html"
SECTION = re.compile(r"^##\s+(\d+)\s+(.*)$", re.M)
CHECK_MARKER = "NBVAL_CHECK_OUTPUT"


class PeakRSS(threading.Thread):
    """Samples the summed RSS of a process and its descendants until stopped."""

    def __init__(self, pid: int, interval: float = 0.1):
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak, self.window = pid, interval, 0, 0
        self._stop_event = threading.Event()

    def sample(self) -> int:
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0
        total = 0
        for proc in procs:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        return total

    def run(self) -> None:
        while not self._stop_event.is_set():
            rss = self.sample()
            self.peak, self.window = max(self.peak, rss), max(self.window, rss)
            self._stop_event.wait(self.interval)

    def take_window(self) -> int:
        """The peak since the previous call (then start a new window)."""
        peak, self.window = max(self.window, self.sample()), 0
        return peak

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def is_checked(cell) -> bool:
    """True for a code cell that nbval compares under --nbval-lax."""
    if cell.cell_type != "code":
        return False
    if "nbval-check-output" in cell.get("metadata", {}).get("tags", []):
        return True
    return any(
        line.strip().startswith("#") and line.strip().lstrip("#").strip() == CHECK_MARKER
        for line in cell.source.splitlines()
    )


def section_names(nb) -> list[str]:
    """The section each cell belongs to, by the latest '## N title' markdown heading."""
    current, names = "setup", []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = SECTION.search(cell.source)
            if match:
                current = f"{match.group(1)} {match.group(2).strip()}"
        names.append(current)
    return names


def setup_only(nb):
    """A copy of ``nb`` holding only its set-up cells, those before the first section."""
    quick = copy.deepcopy(nb)
    quick.cells = [c for c, name in zip(nb.cells, section_names(nb)) if name == "setup"]
    return quick


def gif_as_html(nb) -> None:
    """nbconvert's HTML templates drop image/gif outputs; add an <img> rendering of each."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/gif" in data and "text/html" not in data:
                payload = data["image/gif"]
                if isinstance(payload, bytes):
                    payload = base64.b64encode(payload).decode()
                data["text/html"] = f'<img src="data:image/gif;base64,{payload.strip()}"/>'


def stderr_cells(nb) -> list[str]:
    """'cell N (id ...): first line' for every code cell with a stderr stream output."""
    found = []
    for index, cell in enumerate(nb.cells):
        text = "".join(
            o.get("text", "")
            for o in cell.get("outputs", [])
            if o.get("output_type") == "stream" and o.get("name") == "stderr"
        )
        if text.strip():
            found.append(
                f"cell {index} (id {cell.get('id')}): {text.strip().splitlines()[0][:120]}"
            )
    return found


def export_html(nb) -> str:
    """The executed notebook as nbconvert HTML (GIF outputs included as <img> tags)."""
    from nbconvert import HTMLExporter

    export = copy.deepcopy(nb)
    gif_as_html(export)
    html, _ = HTMLExporter().from_notebook_node(export)
    return html


def kernel_pid(manager) -> int:
    """The kernel's process id: jupyter_client 7+ keeps the process in the kernel manager's
    provisioner, jupyter_client 6 (Colab's) in its ``kernel`` attribute."""
    provisioner = getattr(manager, "provisioner", None)
    return (provisioner.process if provisioner is not None else manager.kernel).pid


def encrypted_kernel(client: NotebookClient):
    """Give ``client`` a kernel manager that provisions CurveZMQ keys for its kernel; return it.

    ipykernel 7 logs "Kernel is running over TCP without encryption" on its stderr, the
    terminal of ``make run``, unless its connection is encrypted.  jupyter_client 8.9 and later
    (which those ipykernels require) provision the keys when ``transport_encryption`` is
    "auto" and the kernelspec declares support, as ipykernel's does.  Older stacks have neither
    the warning nor the setting, and keep the plain connection; so does a pyzmq built without
    CurveZMQ.
    """
    import zmq
    from traitlets import TraitError

    km = client.create_kernel_manager()
    if km.has_trait("transport_encryption") and zmq.has("curve"):
        try:
            km.transport_encryption = "auto"
        except TraitError:  # the first form of the setting: on or off
            km.transport_encryption = True
    return km


def execute(
    nb, workdir: Path, timeout: int, per_cell: bool = False
) -> tuple[dict[str, tuple[float, int]], float, int, str | None]:
    """Run every code cell of ``nb`` in place.

    Returns ({section: (seconds, peak RSS bytes)}, total seconds, peak kernel-tree RSS in bytes,
    error message or None).  ``per_cell`` also prints each cell's seconds and peak RSS.
    """
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    )
    names = section_names(nb)
    encrypted_kernel(client)
    per_section: dict[str, tuple[float, int]] = {}
    error = None
    start = time.perf_counter()
    with client.setup_kernel():
        info = client.wait_for_reply(client.kc.kernel_info())
        if info and "language_info" in info["content"]:
            nb.metadata["language_info"] = info["content"]["language_info"]
        monitor = PeakRSS(kernel_pid(client.km))
        monitor.start()
        try:
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                t0 = time.perf_counter()
                try:
                    client.execute_cell(cell, index)
                except CellExecutionError as exc:
                    error = f"cell {index} (id {cell.get('id')}) failed:\n{exc}"
                    break
                finally:
                    elapsed = time.perf_counter() - t0
                    seconds, rss = per_section.get(names[index], (0.0, 0))
                    window = monitor.take_window()
                    per_section[names[index]] = (seconds + elapsed, max(rss, window))
                    if per_cell:
                        print(
                            f"  cell {index:3d} {cell.get('id', ''):<22} {elapsed:7.1f} s"
                            f" {window / 1e9:6.2f} GB",
                            flush=True,
                        )
            client.set_widgets_metadata()
        finally:
            peak = monitor.stop()
    return per_section, time.perf_counter() - start, peak, error


def merged_streams(outputs: list) -> list:
    """``outputs`` with consecutive stream outputs of one name (stdout, stderr) merged, so the
    stored outputs do not depend on how the kernel happened to flush them."""
    merged = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (
            output.get("output_type") == "stream"
            and previous is not None
            and previous.get("output_type") == "stream"
            and previous.get("name") == output.get("name")
        ):
            previous["text"] = previous["text"] + output["text"]
        else:
            merged.append(copy.deepcopy(output))
    return merged


def save_checked_outputs(executed, source: Path) -> int:
    """Store the checked cells' outputs in ``source``; other cells keep no output."""
    nb = nbformat.read(source, as_version=4)
    by_id = {c.get("id"): c for c in executed.cells}
    saved = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        run = by_id.get(cell.get("id"))
        cell.metadata.pop("execution", None)
        if run is not None and is_checked(cell) and run.source == cell.source:
            cell.outputs = merged_streams(run.outputs)
            cell.execution_count = run.execution_count
            saved += 1
        else:
            cell.outputs = []
            cell.execution_count = None
    nb.metadata.pop("widgets", None)
    if executed.metadata.get("language_info"):
        nb.metadata["language_info"] = executed.metadata["language_info"]
    write_text(source, nbformat.writes(nb) + "\n")
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", nargs="?", type=Path, default=DEFAULT_NB)
    parser.add_argument("html", nargs="?", type=Path, default=None, help=f"default {DEFAULT_HTML}")
    parser.add_argument(
        "--save-checked",
        action="store_true",
        help="store the checked cells' outputs in the source notebook",
    )
    parser.add_argument("--executed", type=Path, help="also save the executed notebook here")
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell")
    parser.add_argument("--cells", action="store_true", help="print each cell's time and memory")
    parser.add_argument("--quick", action="store_true", help="run the set-up cells only")
    args = parser.parse_args(argv)
    if args.quick and args.save_checked:
        parser.error("--quick runs part of the notebook: it cannot --save-checked")
    if args.html is None:
        quick_dir = tempfile.mkdtemp(prefix="run_notebook-") if args.quick else None
        args.html = Path(quick_dir) / DEFAULT_HTML.name if quick_dir else DEFAULT_HTML

    source = args.notebook.resolve()
    nb = nbformat.read(source, as_version=4)
    if args.quick:
        nb = setup_only(nb)
    print(
        f"executing {source.relative_to(ROOT) if source.is_relative_to(ROOT) else source} ...",
        flush=True,
    )
    per_section, total, peak, error = execute(nb, source.parent, args.timeout, args.cells)

    print(f"\n{'section':<40} {'seconds':>8} {'peak RSS GB':>12}")
    for name, (seconds, rss) in per_section.items():
        print(f"{name:<40} {seconds:8.1f} {rss / 1e9:12.2f}")
    print(f"{'total (kernel start included)':<40} {total:8.1f}")
    print(f"peak RSS of the kernel process tree: {peak / 1e9:.2f} GB ({peak / 2**20:,.0f} MiB)")

    if error:
        print(f"\n{error}", file=sys.stderr)
        return 1

    noisy = stderr_cells(nb)
    print(f"cells with stderr output: {len(noisy)}" + "".join(f"\n  {line}" for line in noisy))
    html = export_html(nb)
    write_text(args.html, html)
    print(f"wrote {args.html} ({len(html) / 2**20:.1f} MiB)")
    if args.executed:
        text = nbformat.writes(nb) + "\n"
        write_text(args.executed, text)
        print(f"wrote {args.executed} ({len(text.encode()) / 1e6:.2f} MB)")
    if args.save_checked:
        saved = save_checked_outputs(nb, source)
        print(f"stored the outputs of {saved} checked cells in {source}")
        if source == DEFAULT_NB.resolve():
            from tumorseg.course.cli import release_main

            release_main([])
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The course in a real browser: JupyterLab from .venv, driven by Playwright in Debian's Chromium.

One test, in three page sessions on one JupyterLab server:

1. open a copy of the instructor notebook (outputs cleared), Run All; every code cell runs in
   order, no cell shows stderr or an error; save it and check the saved size (< 4 MB);
2. in that session, then after a page reload, then in a new browser context: drive the slice
   viewer (each axis, a slider drag, the overlay toggle).  After every change the browser's own
   screenshot of the picture must be the whole expected slice (compared with the frame computed
   here from the same case), never white space or a partly drawn picture;
3. the student notebook opens without being marked as changed.

Any uncaught page error fails the test, and so does a line on the server's terminal that looks
like a problem (``make lab`` shows that terminal): a server warning or error, ipykernel's
transport warning, a TensorFlow runtime line, a websocket keep-alive warning (tornado's
``websocket_ping_timeout`` one, which ``LAB_QUIET``'s log filter drops, or jupyter_server's
``WebSocket ping timeout``, a page that stopped answering pings).  The server runs with
``make lab``'s ``LAB_QUIET`` options, read from the Makefile.  Without ``chromium`` or the
``playwright`` package the test skips and says why.  Browser downloads are not possible here, so Playwright launches the
distribution's chromium through ``executable_path`` (``apt-get install chromium``).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest

from tumorseg.resources import instructor_notebook

ROOT = Path(__file__).resolve().parents[1]
INSTRUCTOR = instructor_notebook()
STUDENT = ROOT / "notebooks" / "Brain_Tumor_Segmentation.ipynb"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RUN_ALL_TIMEOUT_S = 600


def offline_page_problems(page) -> list[str]:
    """Watch a Playwright ``page`` of an offline file: the list it returns fills with console
    errors, page errors, failed requests and every request to anything but ``file:``."""
    problems: list[str] = []
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    page.on("request", lambda r: r.url.startswith("file:") or problems.append(r.url))
    return problems


@contextlib.contextmanager
def offline_page(chromium: str) -> Iterator[tuple[Any, list[str]]]:
    """A headless Chromium page watched by ``offline_page_problems``: yields ``(page, problems)``
    and closes the browser afterwards (the page's ``goto`` is the caller's)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            yield page, offline_page_problems(page)
        finally:
            browser.close()


MAX_SAVED_BYTES = 4_000_000

#: Server log lines of these severities (``[W 2026-...``) are problems; info ([I) is not, nor
#: the critical "received signal 15, stopping" of the fixture's own shutdown.
SERVER_PROBLEM = re.compile(r"^\[[WE] \d{4}-")
#: What ipykernel prints when its connection is plain TCP, and fragments of TensorFlow's lines.
TERMINAL_NOISE = ("without encryption", "absl::", "oneDNN", "tensorflow/core")

pytestmark = pytest.mark.slow


def _lab_quiet_options() -> list[str]:
    """The options ``make lab`` adds so the terminal stays quiet (the Makefile's LAB_QUIET)."""
    match = re.search(r"^LAB_QUIET\s*:=(.*)$", (ROOT / "Makefile").read_text(), re.M)
    assert match, "the Makefile defines no LAB_QUIET"
    return shlex.split(match.group(1))


def _problem_lines(log: str) -> list[str]:
    """Lines of a JupyterLab server's terminal output that look like a problem to a student."""
    from tumorseg.quiet import is_runtime_log_line

    return [
        line
        for line in log.splitlines()
        if SERVER_PROBLEM.match(line)
        or any(noise in line for noise in TERMINAL_NOISE)
        or is_runtime_log_line(line, 3)
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def chromium() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(
            f"no chromium at {CHROMIUM}: install it with `apt-get install chromium` "
            "(.ci/run does) to run the browser test"
        )
    pytest.importorskip(
        "playwright.sync_api",
        reason="the playwright package is not installed "
        "(it is pinned in requirements.txt: run `make venv`)",
    )
    return CHROMIUM


@pytest.fixture(scope="module")
def workdir():
    """A folder inside the project (the notebook finds util.py above it) with the notebooks."""
    if not (ROOT / "data" / "BraTS-Data" / "processed" / "config.json").is_file():
        pytest.skip("sample data not built; run `make patches`")
    work = ROOT / "build" / f"browser-test-{os.getpid()}"
    work.mkdir(parents=True)
    nb = nbformat.read(INSTRUCTOR, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, str(work / "instructor.ipynb"))
    shutil.copy(STUDENT, work / "student.ipynb")
    jupyter = str(Path(sys.executable).parent / "jupyter")  # as `make lab` trusts its notebook
    subprocess.run(
        [jupyter, "trust", *map(str, work.glob("*.ipynb"))], check=True, capture_output=True
    )
    yield work
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def lab(workdir, tmp_path_factory):
    """A JupyterLab server on a free local port with a token; yields its base URL, its token
    and the path of its terminal output (stdout and stderr)."""
    port, token = _free_port(), secrets.token_hex(16)
    home = tmp_path_factory.mktemp("jupyter")
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
    }
    cmd = [
        str(Path(sys.executable).parent / "jupyter-lab"),
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={workdir}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        *_lab_quiet_options(),
    ]
    log = open(home / "server.log", "w+")
    server = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"JupyterLab did not start:\n{log.read()[-3000:]}")
                time.sleep(0.5)
        yield base, token, Path(log.name)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def expected_case():
    """What the viewer shows for BRATS_001: the labeled volume and the scaled FLAIR."""
    from tumorseg.data import open_dataset
    from tumorseg.viz import get_labeled_image
    from tumorseg.viz.labeled import scale_to_uint8

    image, label = open_dataset(ROOT / "data" / "BraTS-Data")["BRATS_001"].load()
    grey = np.clip(np.rint(scale_to_uint8(image[..., 0])), 0, 255).astype(np.uint8)
    return get_labeled_image(image, label), grey


# ------------------------------------------------------------------ JupyterLab from the page

#: JavaScript helpers; ``window.jupyterapp`` exists because of --LabApp.expose_app_in_browser.
PANEL = "window.jupyterapp.shell.currentWidget"
KERNEL_IDLE = f"""() => {{
    const p = window.jupyterapp && {PANEL};
    const k = p && p.sessionContext && p.sessionContext.session && p.sessionContext.session.kernel;
    return !!(k && k.status === 'idle' && p.content && p.content.widgets.length > 0);
}}"""
CELL_STATE = f"""() => {{
    const cells = {PANEL}.content.widgets.filter(c => c.model.type === 'code');
    return cells.map(c => ({{
        id: c.model.id,
        count: c.model.executionCount,
        outputs: c.model.outputs.toJSON().map(o => ({{type: o.output_type, name: o.name || null,
            text: o.output_type === 'error' ? o.ename + ': ' + o.evalue
                  : (Array.isArray(o.text) ? o.text.join('') : (o.text || ''))}})),
    }}));
}}"""


def _open(page, base: str, token: str, name: str) -> None:
    page.goto(f"{base}/lab/tree/{name}?token={token}&reset", wait_until="domcontentloaded")
    page.wait_for_function(KERNEL_IDLE, timeout=120_000)


def _command(page, command: str) -> None:
    page.evaluate(f"() => window.jupyterapp.commands.execute('{command}')")


def _run_all(page) -> list[dict]:
    _command(page, "notebook:run-all-cells")
    page.wait_for_function(
        f"""() => {{
            const cells = {PANEL}.content.widgets.filter(c => c.model.type === 'code');
            const last = cells[cells.length - 1].model;
            const failed = cells.some(c => c.model.outputs.toJSON().some(o => o.output_type === 'error'));
            return (last.executionCount !== null || failed) && ({KERNEL_IDLE})();
        }}""",
        timeout=RUN_ALL_TIMEOUT_S * 1000,
        polling=1000,
    )
    return page.evaluate(CELL_STATE)


def _viewer(page):
    """Locators of the viewer widget of the cell with id 'viewer' (marked for the locators)."""
    page.evaluate(f"""() => {{
        const nb = {PANEL}.content;
        const index = nb.widgets.findIndex(c => c.model.id === 'viewer');
        nb.widgets[index].node.setAttribute('data-test', 'viewer-cell');
        nb.activeCellIndex = index;
        return nb.scrollToItem(index);
    }}""")
    cell = page.locator("[data-test=viewer-cell]")
    cell.locator(".widget-image").wait_for(state="visible", timeout=60_000)
    return {
        "cell": cell,
        "picture": cell.locator("img.widget-image"),
        "axis": cell.locator(".widget-dropdown select"),
        "handle": cell.locator(".widget-slider .noUi-handle"),
        "readout": cell.locator(".widget-readout"),
        "overlay": cell.locator(".widget-checkbox input[type=checkbox]"),
        "caption": cell.locator(".widget-html-content"),
    }


def _screenshot(locator) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("RGB"))


#: True once the caption (which the kernel updates after the picture) describes the controls.
CAPTION_MATCHES = """([sel, readout, checkbox, caption]) => {
    const text = caption.innerText;
    return text.startsWith(`${sel.value} slice ${readout.innerText.trim()} of `)
        && text.endsWith(checkbox.checked ? 'labels on FLAIR' : 'FLAIR only');
}"""


def _compare(shot: np.ndarray, frame: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean difference and the rows that differ, sampling the screenshot at every voxel's
    centre: a blank or partly drawn picture differs in whole rows, a whole one only by the
    browser's smoothing at edges."""
    h, w = frame.shape[:2]
    rows = ((np.arange(h) + 0.5) * shot.shape[0] / h).astype(int)
    cols = ((np.arange(w) + 0.5) * shot.shape[1] / w).astype(int)
    diff = np.abs(shot[rows][:, cols].astype(np.int16) - frame.astype(np.int16)).max(axis=-1)
    return float(diff.mean()), np.flatnonzero((diff > 64).mean(axis=1) > 0.05)


def _check_whole_picture(page, v, expected_case, what: str, shots_dir: Path) -> None:
    """Wait until the kernel has answered the change (the caption describes the controls),
    then the browser's screenshot of the picture must be the whole expected slice."""
    from tumorseg.viz.viewer import viewer_frame

    handles = [v[k].element_handle() for k in ("axis", "readout", "overlay", "caption")]
    page.wait_for_function(CAPTION_MATCHES, arg=handles, timeout=60_000)
    page.wait_for_function(
        "(img) => img.complete && img.naturalWidth > 0",
        arg=v["picture"].element_handle(),
        timeout=30_000,
    )
    axis, index = v["axis"].input_value(), int(v["readout"].inner_text().strip())
    overlay = v["overlay"].is_checked()
    frame = viewer_frame(*expected_case, axis, index, overlay)
    width, height = (
        int(v["picture"].get_attribute("width")),
        int(v["picture"].get_attribute("height")),
    )
    deadline = time.monotonic() + 10  # the browser may need a moment to paint a decoded image
    while True:
        shot = _screenshot(v["picture"])
        mean, bad = _compare(shot, frame)
        size_ok = abs(shot.shape[1] - width) <= 1 and abs(shot.shape[0] - height) <= 1
        if size_ok and mean < 12 and bad.size == 0:
            return
        if time.monotonic() > deadline:
            break
        page.wait_for_timeout(250)
    name = re.sub(r"\W+", "-", what)
    from PIL import Image

    Image.fromarray(shot).save(shots_dir / f"{name}.png")
    pytest.fail(
        f"{what}: the screenshot is not the whole {axis} slice {index} (overlay "
        f"{overlay}): {shot.shape[1]}x{shot.shape[0]} px for {width}x{height}, mean "
        f"difference {mean:.1f}, {bad.size} of {frame.shape[0]} rows wrong (first "
        f"{bad[:3].tolist()}); screenshot in {shots_dir / (name + '.png')}"
    )


def _drive_viewer(page, expected_case, session: str, shots_dir: Path) -> int:
    """Each axis, a slider drag, the overlay off and on; every change checked. Returns checks."""
    v = _viewer(page)
    _check_whole_picture(page, v, expected_case, f"{session}: first picture", shots_dir)
    checks = 1
    for axis in ("coronal", "sagittal", "axial"):
        v["axis"].select_option(axis)
        _check_whole_picture(page, v, expected_case, f"{session}: axis {axis}", shots_dir)
        checks += 1
    before = int(v["readout"].inner_text().strip())
    box = v["handle"].bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] - 120, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()
    _check_whole_picture(page, v, expected_case, f"{session}: slider drag", shots_dir)
    assert int(v["readout"].inner_text().strip()) < before, f"{session}: the drag moved nothing"
    checks += 1
    for state in ("off", "on"):
        v["overlay"].click()
        _check_whole_picture(page, v, expected_case, f"{session}: overlay {state}", shots_dir)
        checks += 1
    return checks


def test_course_in_jupyterlab(chromium, lab, workdir, expected_case, tmp_path):
    from playwright.sync_api import sync_playwright

    base, token, server_log = lab
    shots = tmp_path
    errors: list[str] = []
    started = time.monotonic()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(f"session 1: {exc}"))
            _open(page, base, token, "instructor.ipynb")
            cells = _run_all(page)
            run_all_s = time.monotonic() - started
            counts = [c["count"] for c in cells]
            assert counts == list(range(1, len(cells) + 1)), (
                f"not every cell ran in order: {[(c['id'], c['count']) for c in cells]}"
            )
            shown = [
                (c["id"], o["type"], o["text"][:300])
                for c in cells
                for o in c["outputs"]
                if o["type"] == "error" or o["name"] == "stderr"
            ]
            assert shown == [], f"cells show stderr or errors: {shown}"
            page_stderr = page.locator(
                ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
            )
            assert page_stderr.count() == 0

            _command(page, "docmanager:save")
            page.wait_for_function(f"() => !{PANEL}.context.model.dirty", timeout=60_000)
            saved = (workdir / "instructor.ipynb").stat().st_size
            print(f"Run All: {run_all_s:.0f} s; saved notebook {saved / 1e6:.2f} MB")
            assert saved < MAX_SAVED_BYTES, f"saved notebook is {saved / 1e6:.2f} MB"

            checks = _drive_viewer(page, expected_case, "session 1", shots)
            page.reload(wait_until="domcontentloaded")
            page.wait_for_function(KERNEL_IDLE, timeout=120_000)
            checks += _drive_viewer(page, expected_case, "session 2 (page reload)", shots)
            context.close()

            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(f"session 3: {exc}"))
            _open(page, base, token, "instructor.ipynb")
            checks += _drive_viewer(page, expected_case, "session 3 (new browser context)", shots)

            _open(page, base, token, "student.ipynb")
            page.wait_for_timeout(2000)  # JupyterLab fills in metadata once the kernel is ready
            dirty = page.evaluate(f"() => {PANEL}.context.model.dirty")
            assert not dirty, "JupyterLab marks the untouched student notebook as changed"
            context.close()
        finally:
            browser.close()
    assert errors == [], f"page errors: {errors}"
    terminal = server_log.read_text()
    assert _problem_lines(terminal) == [], f"the server's terminal shows:\n{terminal[-5000:]}"
    print(f"{checks} viewer pictures checked; browser test {time.monotonic() - started:.0f} s")
    assert checks == 3 * 7

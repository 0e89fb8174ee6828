"""The course works in a real browser: JupyterLab + Chromium, end to end.

Every other test checks the package or executes notebooks headless (nbval). None of
them sees what a learner sees: JupyterLab's front end, the ipywidgets and plotly
extensions, and the round trip slider -> kernel -> figure. This file does, with
Playwright driving Debian's system Chromium (never a downloaded browser):

* start JupyterLab headless on a free local port, serving a *temporary copy* of
  ``notebooks/`` and ``records/`` (JupyterLab autosaves, and executed outputs must never
  land in the committed notebooks), with ``ATTN_COURSE_SIZE=small`` in the server's
  environment so that the kernels inherit it;
* notebook 02 (cost arithmetic): Run All Cells from the menu, wait until every code
  cell has an execution count, check that no cell shows a traceback except those tagged
  ``raises-exception`` (and that those do show theirs: proof the detector sees errors),
  then press ArrowRight on the score-memory calculator's ``n`` slider and check that the
  plotly figure redraws: n doubles and one score matrix's bytes quadruple; and check
  that every curve in the figures' legends has a name (plotly shows "trace 2" otherwise);
* every lesson, notebooks 00-07 (04 runs FlashAttention in Triton, on CPU through
  Triton's interpreter): Run All Cells, no tracebacks, a full-page screenshot at a
  1400 x 900 window, and a check of what plotly and MathJax drew: no legend over a
  figure's tick labels, axis titles or plot area, no title cut off at the figure's edge
  or over its legend, no figure wider than its cell, no equation wider than its cell.
  The figures are checked where a learner sees them, in JupyterLab after Run All, the
  calculators' live FigureWidgets included; executing every lesson once costs about
  two minutes at ATTN_COURSE_SIZE=small on 2 cores (the kernels' time, as under nbval),
  and each kernel is shut down as soon as its lesson has been checked.

Screenshots, the server log and the browser console go to
``$ATTN_COURSE_ARTIFACTS/browser/`` (default ``test-artifacts/browser/``). The tests skip
when Chromium or Playwright is missing, except when ``CI`` is set: CI must have them.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest

from attn_course.classroom.lab import (
    FIRST_NOTEBOOK,
    NBGRADER_SERVER_EXTENSIONS,
    write_learner_settings,
)
from attn_course.course import COURSE_ROOT, LESSONS

try:
    from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
except ImportError:  # checked in the `browser` fixture, which skips or fails with a reason
    sync_playwright = None

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
# Root in a container with no network: no sandbox, no GPU, nothing that phones home.
# (Playwright adds --headless itself.)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 900}  # the window of the learner run the issue reports

SERVER_START_S = 90
NOTEBOOK_OPEN_S = 90
RUN_ALL_S = 150  # notebook 02 takes ~10 s and 04 ~15 s under nbconvert at small size
FIGURE_UPDATE_S = 30
RENDER_SETTLE_S = 60  # plotly and MathJax draw asynchronously after the run

PROMPT_DONE = re.compile(r"^\[\d+\]:$")

# The status indicator reads "idle" for a moment before the kernel exists (toolbar:
# "No Kernel"); a Run All then silently clears the cells instead of running them.
KERNEL_READY_JS = """
() => {
    const panel = document.querySelector('.jp-NotebookPanel');
    const status = panel?.querySelector('.jp-Notebook-ExecutionIndicator')?.dataset.status;
    const kernel = panel?.querySelector('.jp-Toolbar-kernelName')?.textContent.trim();
    return status === 'idle' && Boolean(kernel) && kernel !== 'No Kernel';
}
"""

# One entry per cell of the open notebook, in order: its kind, its "[n]:" prompt and
# the text of every stderr-type output (JupyterLab renders tracebacks with that type).
READ_CELLS_JS = """
() => [...document.querySelectorAll('.jp-NotebookPanel .jp-Notebook .jp-Cell')].map(cell => ({
    code: cell.classList.contains('jp-CodeCell'),
    prompt: (cell.querySelector('.jp-InputPrompt')?.textContent ?? '').trim(),
    stderr: [...cell.querySelectorAll(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
    )].map(output => output.textContent),
}))
"""


# --- where things go ------------------------------------------------------------------


def artifacts_dir() -> Path:
    """``$ATTN_COURSE_ARTIFACTS/browser`` if set, else ``<repo>/test-artifacts/browser``."""
    base = os.environ.get("ATTN_COURSE_ARTIFACTS")
    return (Path(base) if base else COURSE_ROOT / "test-artifacts") / "browser"


@pytest.fixture(scope="module")
def artifacts() -> Path:
    folder = artifacts_dir()
    shutil.rmtree(folder, ignore_errors=True)  # no stale screenshots from an earlier run
    folder.mkdir(parents=True)
    return folder


# --- the JupyterLab server --------------------------------------------------------------


@dataclass
class Lab:
    url: str
    token: str

    def notebook_url(self, notebook: str, workspace: str) -> str:
        # A named workspace per test: the page opens this notebook only, not the
        # tabs another test left in the default workspace.
        return f"{self.url}/lab/workspaces/{workspace}/tree/{notebook}?token={self.token}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def copy_course(root: Path) -> Path:
    """The folders the notebooks need, copied so that autosave writes only here."""
    course = root / "course"
    skip = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
    for folder in ("notebooks", "records"):
        shutil.copytree(COURSE_ROOT / folder, course / folder, ignore=skip)
    return course


def write_lab_settings(settings: Path) -> None:
    """User settings for a quiet, fully rendered JupyterLab.

    ``windowingMode: none`` attaches every cell to the page, so the DOM holds every
    prompt and output (the default lets the browser skip laying out offscreen cells).
    The news and update checks would only pop up a toast asking to go online.
    """
    files = {
        "@jupyterlab/notebook-extension/tracker": '{"windowingMode": "none"}',
        "@jupyterlab/apputils-extension/notification": (
            '{"fetchNews": "false", "checkForUpdates": false}'
        ),
    }
    for name, content in files.items():
        path = settings / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def lab_command(course: Path, work: Path, port: int, token: str) -> list[str]:
    """The learner's JupyterLab (``make lab``'s settings: no nbgrader, widget state saved),
    headless, with its settings and workspaces in ``work``."""
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={course}",
        f"--LabApp.user_settings_dir={work / 'settings'}",
        f"--LabApp.workspaces_dir={work / 'workspaces'}",
        f"--LabApp.app_settings_dir={write_learner_settings(work)}",
        *(f"--ServerApp.jpserver_extensions={ext}=False" for ext in NBGRADER_SERVER_EXTENSIONS),
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # Jupyter refuses root unless told it is deliberate
    return command


def wait_for_server(server: subprocess.Popen, url: str, token: str, log: Path) -> None:
    request = urllib.request.Request(
        f"{url}/api/status", headers={"Authorization": f"token {token}"}
    )
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"JupyterLab exited with {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer within {SERVER_START_S} s:\n{log.read_text()}")


def stop(server: subprocess.Popen) -> None:
    server.terminate()  # JupyterLab shuts its kernels down on SIGTERM
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, artifacts: Path) -> Iterator[Lab]:
    work = tmp_path_factory.mktemp("lab")
    course = copy_course(work)
    write_lab_settings(work / "settings")
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "ATTN_COURSE_SIZE": "small",  # kernels inherit the server's environment
        "JUPYTER_RUNTIME_DIR": str(work / "runtime"),
        "JUPYTER_CONFIG_DIR": str(work / "config"),  # ignore the user's ~/.jupyter
    }
    # The static HTML edition sets this to freeze the calculators; a learner's Lab never does.
    env.pop("ATTN_COURSE_STATIC", None)
    log_path = artifacts / "jupyterlab.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            lab_command(course, work, port, token),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=course,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for_server(server, url, token, log_path)
            yield Lab(url=url, token=token)
        finally:
            stop(server)


# --- the browser -----------------------------------------------------------------------


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if sync_playwright is None:
        return "Playwright for Python is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found (Debian/Ubuntu: apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    reason = missing_browser()
    if reason and os.environ.get("CI"):
        pytest.fail(f"CI must run the browser tests: {reason}")
    if reason:
        pytest.skip(reason)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@contextmanager
def browser_page(browser: Browser, artifacts: Path, label: str) -> Iterator[Page]:
    """A fresh browser context; its console goes to a log, its last view to a PNG."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    console = (artifacts / f"{label}-console.log").open("w")
    page.on("console", lambda message: console.write(f"[{message.type}] {message.text}\n"))
    page.on("pageerror", lambda error: console.write(f"[pageerror] {error}\n"))
    try:
        yield page
    finally:
        try:  # the last view is what to look at when a test failed
            screenshot(page, artifacts, f"{label}-last")
        finally:
            context.close()
            console.close()


# --- driving JupyterLab ---------------------------------------------------------------


@dataclass
class RunAll:
    """A notebook after Run All Cells: its page and its cells as READ_CELLS_JS reads them."""

    page: Page
    notebook: nbformat.NotebookNode
    cells: list[dict[str, Any]]

    def expects_error(self, index: int) -> bool:
        return "raises-exception" in self.notebook.cells[index].metadata.get("tags", [])

    def unexpected_tracebacks(self) -> dict[int, str]:
        return {
            index: tracebacks(cell)[0]
            for index, cell in enumerate(self.cells)
            if tracebacks(cell) and not self.expects_error(index)
        }

    def not_run(self) -> list[str]:
        return [
            f"cell {index} shows {cell['prompt']!r}"
            for index, cell in enumerate(self.cells)
            if cell["code"] and not PROMPT_DONE.match(cell["prompt"])
        ]


def tracebacks(cell: dict[str, Any]) -> list[str]:
    # Warnings on stderr are allowed; an exception's output has a traceback.
    return [text for text in cell["stderr"] if "Traceback" in text]


def poll(condition: Callable[[], Any], timeout_s: float, describe: Callable[[], str]) -> Any:
    """Call ``condition`` until it returns something truthy; fail with ``describe()``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s: {describe()}")
        time.sleep(0.25)


def screenshot(page: Page, artifacts: Path, name: str) -> None:
    page.screenshot(path=artifacts / f"{name}.png", full_page=True)


def open_notebook(page: Page, lab: Lab, notebook: str, workspace: str | None = None) -> None:
    """Open ``notebook`` in JupyterLab and wait until its kernel is started and idle."""
    page.goto(lab.notebook_url(notebook, workspace=workspace or Path(notebook).stem))
    page.wait_for_function(KERNEL_READY_JS, timeout=NOTEBOOK_OPEN_S * 1000)


def click_run_all(page: Page) -> None:
    """Run → Run All Cells, the way a learner does it."""
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()


def run_notebook(page: Page, lab: Lab, name: str, workspace: str | None = None) -> RunAll:
    """Open ``notebooks/<name>``, Run All Cells, and wait until the run is over.

    The run is over when every code cell has an execution count, or as soon as a cell
    not tagged ``raises-exception`` shows a traceback (JupyterLab stops there). The
    caller asserts on the result.
    """
    notebook = nbformat.read(COURSE_ROOT / "notebooks" / name, as_version=4)
    open_notebook(page, lab, f"notebooks/{name}", workspace)
    run = RunAll(page=page, notebook=notebook, cells=[])

    def over() -> bool:
        run.cells = page.evaluate(READ_CELLS_JS)
        # Every cell must be on the page, or the checks below would miss some.
        assert len(run.cells) == len(notebook.cells), "JupyterLab shows a different cell count"
        return bool(run.unexpected_tracebacks()) or not run.not_run()

    click_run_all(page)
    poll(over, RUN_ALL_S, lambda: f"the run did not finish: {run.not_run()}")
    return run


def assert_ran_cleanly(run: RunAll) -> None:
    for index, traceback in run.unexpected_tracebacks().items():
        pytest.fail(f"cell {index} raised:\n{traceback}")
    assert not run.not_run()
    # Cells that are meant to raise must show it: proof that the check above sees errors.
    for index, cell in enumerate(run.cells):
        if run.expects_error(index):
            assert tracebacks(cell), f"cell {index} is tagged raises-exception but shows no error"


# --- notebook 02: cost arithmetic and its calculators ----------------------------------


@pytest.fixture(scope="module")
def cost_notebook(browser: Browser, lab: Lab, artifacts: Path) -> Iterator[RunAll]:
    """Notebook 02 after Run All Cells, run once for the tests below."""
    with browser_page(browser, artifacts, "02") as page:
        run = run_notebook(page, lab, "02_cost_arithmetic.ipynb")
        screenshot(page, artifacts, "02-run-all")
        yield run


def selected_point(plot: Locator) -> dict[str, list[float]]:
    """x and y of the calculator's "selected" markers, read from plotly's own data."""
    return plot.evaluate(
        "el => { const t = el.data.find(t => t.meta === 'selected');"
        " return {x: Array.from(t.x), y: Array.from(t.y)}; }"
    )


def test_cost_arithmetic_runs_all_cells(cost_notebook: RunAll) -> None:
    assert_ran_cleanly(cost_notebook)
    # The learner's lab has no instructor tools: nbgrader's Validate button is not there.
    toolbar = cost_notebook.page.locator(".jp-NotebookPanel-toolbar")
    assert toolbar.count() and toolbar.get_by_text("Validate").count() == 0


def test_score_memory_calculator_redraws_when_n_moves(
    cost_notebook: RunAll, artifacts: Path
) -> None:
    page = cost_notebook.page
    # The score-memory calculator: the first widget with an "n" slider (its class comes
    # from attn_course.ui.base.Calculator: control.add_class(f"attn-course-{name}")).
    calculator = page.locator(".jp-Cell", has=page.locator(".attn-course-n")).first
    calculator.scroll_into_view_if_needed()
    plot = calculator.locator(".js-plotly-plot").first
    plot.wait_for(timeout=FIGURE_UPDATE_S * 1000)
    before = selected_point(plot)

    # One step right on a powers-of-two slider. continuous_update=False: the value goes
    # to the kernel on the key press, the kernel redraws the FigureWidget, plotly updates.
    handle = calculator.locator(".attn-course-n .noUi-handle")
    handle.focus()
    handle.press("ArrowRight")
    after = poll(
        lambda: (point := selected_point(plot)) != before and point,
        FIGURE_UPDATE_S,
        lambda: f"the figure still shows {before} after moving the slider",
    )
    calculator.scroll_into_view_if_needed()
    screenshot(page, artifacts, "02-slider-moved")

    # n doubles; one n x n score matrix grows as n^2, so its bytes quadruple
    # (32768^2 x 2 B = 2 GiB in bf16 becomes 65536^2 x 2 B = 8 GiB).
    assert after["x"][0] == 2 * before["x"][0]
    assert after["y"][0] == 4 * before["y"][0]
    # The numbers under the plot follow (a separate widget message, so wait for it).
    readout = calculator.locator(".widget-html").last
    expect(readout).to_contain_text(f"n = {int(after['x'][0]):,}", timeout=FIGURE_UPDATE_S * 1000)


def test_calculator_legends_name_every_curve(cost_notebook: RunAll) -> None:
    # plotly.js labels a trace without a name "trace 0", "trace 1", ...: in a legend that
    # tells the learner nothing. This reads the legends as drawn on the page.
    def read_legends() -> list[list[str]]:
        return cost_notebook.page.evaluate(
            "() => [...document.querySelectorAll('.jp-Notebook .js-plotly-plot')].map(plot =>"
            " [...plot.querySelectorAll('.legendtext')].map(text => text.textContent))"
        )

    def all_drawn() -> list[list[str]] | None:
        # The prefill figure and the three calculators; plotly draws them asynchronously.
        legends = read_legends()
        return legends if len(legends) >= 4 and all(legends) else None

    legends = poll(
        all_drawn,
        FIGURE_UPDATE_S,
        lambda: f"expected 4 figures with legends, found {read_legends()}",
    )
    unnamed = [entries for entries in legends if any(re.match(r"^trace \d+$", e) for e in entries)]
    assert not unnamed, f"legends with unnamed curves: {unnamed}"


# --- notebook 00: where `make lab` opens ---------------------------------------------------


def test_start_here_shows_a_ready_environment_report(
    browser: Browser, lab: Lab, artifacts: Path
) -> None:
    # `make lab` opens this notebook first (attn_course.classroom.lab.FIRST_NOTEBOOK): a new user's
    # first Run All must end in the environment report, with the kernel smoke test passed.
    assert FIRST_NOTEBOOK.name == "00_start_here.ipynb"
    with browser_page(browser, artifacts, "00") as page:
        run = run_notebook(page, lab, FIRST_NOTEBOOK.name)
        screenshot(page, artifacts, "00-run-all")
        assert_ran_cleanly(run)
        report = page.locator(".jp-OutputArea-output table", has_text="Kernel smoke test")
        expect(report).to_contain_text("FlashAttention = PyTorch's attention")
        expect(page.locator(".jp-Notebook")).to_contain_text("The course is ready.")
        # Cross-links between notebooks open the linked notebook in JupyterLab.
        page.locator(".jp-RenderedMarkdown a", has_text="01 · The n × n score matrix").last.click()
        expect(page.locator(".lm-TabBar-tab.jp-mod-current")).to_contain_text(
            "01_score_matrix.ipynb", timeout=NOTEBOOK_OPEN_S * 1000
        )
        screenshot(page, artifacts, "00-link-opened-01")


# --- every lesson: what plotly and MathJax drew ---------------------------------------------

LESSON_NAMES = [f"{lesson.slug}.ipynb" for lesson in LESSONS]

# What a figure and an equation look like on the page, read from the DOM: for every plotly
# figure the boxes of its legend, tick labels, axis titles (plotly classes them xtick,
# x2tick, xtitle, x2title, ...), plot areas (the drag rectangles) and title; for every
# MathJax equation its box, its math's box and the box of the cell part that holds it.
READ_LAYOUT_JS = r"""
() => {
    const box = e => { const r = e.getBoundingClientRect();
        return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; };
    const maybe = e => e ? box(e) : null;
    const classed = (root, pattern) => [...root.querySelectorAll('*')].filter(
        e => [...e.classList].some(c => pattern.test(c)));
    const cells = [...document.querySelectorAll('.jp-NotebookPanel .jp-Notebook .jp-Cell')];
    return cells.map((cell, index) => ({
        index,
        figures: [...cell.querySelectorAll('.js-plotly-plot')].map(plot => ({
            title: plot.querySelector('.gtitle')?.textContent ?? '',
            svg: box(plot.querySelector('.main-svg') ?? plot),
            holder: box(plot.closest('.jp-OutputArea-output') ?? cell),
            legend: maybe(plot.querySelector('.legend .bg')),
            gtitle: maybe(plot.querySelector('.gtitle')),
            ticks: classed(plot, /^[xy]\d*tick$/).map(box),
            axisTitles: classed(plot, /^[xy]\d*title$/).map(box),
            plotAreas: [...plot.querySelectorAll('.nsewdrag')].map(box),
        })),
        math: [...cell.querySelectorAll('mjx-container')].map(math => {
            const holder = math.closest('.jp-RenderedMarkdown, .jp-OutputArea-output') ?? cell;
            const inner = math.querySelector('mjx-math') ?? math;
            return {
                text: (math.getAttribute('aria-label') ?? math.textContent).slice(0, 60),
                box: box(math), inner: box(inner), holder: box(holder),
                scrolls: math.scrollWidth > math.clientWidth + 1,
                holderScrolls: holder.scrollWidth > holder.clientWidth + 1,
            };
        }),
    }));
}
"""

SLACK_PX = 1.0  # sub-pixel rounding


def overlap(a: dict[str, float], b: dict[str, float]) -> float:
    width = min(a["right"], b["right"]) - max(a["left"], b["left"])
    height = min(a["bottom"], b["bottom"]) - max(a["top"], b["top"])
    return max(0.0, width) * max(0.0, height)


def sticks_out(inner: dict[str, float], outer: dict[str, float]) -> bool:
    return inner["right"] > outer["right"] + SLACK_PX or inner["left"] < outer["left"] - SLACK_PX


def layout_problems(cells: list[dict[str, Any]]) -> list[str]:
    """What a learner would see wrong in the figures and equations of one notebook."""
    problems = []
    for cell in cells:
        for figure in cell["figures"]:
            where = f"cell {cell['index']}, figure {figure['title'][:60]!r}"
            legend = figure["legend"]
            if legend:
                for kind in ("ticks", "axisTitles", "plotAreas"):
                    if any(overlap(legend, part) > 4 for part in figure[kind]):
                        problems.append(f"{where}: the legend covers its {kind}")
            title = figure["gtitle"]
            if title:
                if sticks_out(title, figure["svg"]):
                    problems.append(f"{where}: the title is cut off at the figure's edge")
                if legend and overlap(title, legend) > 4:
                    problems.append(f"{where}: the title runs into the legend")
                if any(overlap(title, area) > 4 for area in figure["plotAreas"]):
                    problems.append(f"{where}: the title runs into the plot")
            if sticks_out(figure["svg"], figure["holder"]):
                problems.append(f"{where}: the figure is wider than its cell")
        for math in cell["math"]:
            where = f"cell {cell['index']}, equation {math['text']!r}"
            if (
                math["scrolls"]
                or math["holderScrolls"]
                or sticks_out(math["inner"], math["holder"])
                or sticks_out(math["box"], math["holder"])
            ):
                problems.append(f"{where}: wider than its cell")
    return problems


def settled_layout(page: Page) -> list[dict[str, Any]]:
    """The layout once the counts of figures and equations drawn stop changing."""
    last: list[Any] = [None, 0]

    def stable() -> list[dict[str, Any]] | None:
        cells = page.evaluate(READ_LAYOUT_JS)
        counts = [(len(c["figures"]), len(c["math"])) for c in cells]
        last[1] = last[1] + 1 if counts == last[0] else 0
        last[0] = counts
        return cells if last[1] >= 4 else None  # unchanged for about a second

    return poll(stable, RENDER_SETTLE_S, lambda: "figures and equations kept changing")


def screenshot_figures(
    page: Page, cells: list[dict[str, Any]], artifacts: Path, label: str
) -> None:
    """One PNG per cell that shows a figure or an equation, as the 1400 x 900 window shows
    it (JupyterLab scrolls the notebook inside the page, so a full-page shot would hold
    only the first screen)."""
    screenshot(page, artifacts, label)
    locators = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")
    for cell in cells:
        if cell["figures"] or cell["math"]:
            locators.nth(cell["index"]).screenshot(
                path=artifacts / f"{label}-cell-{cell['index']:02d}.png"
            )


def shut_down_kernel(lab: Lab, notebook: str) -> None:
    """End the kernel of ``notebook`` (a lesson's kernel holds hundreds of MB)."""
    headers = {"Authorization": f"token {lab.token}"}
    request = urllib.request.Request(f"{lab.url}/api/sessions", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        sessions = json.load(response)
    for session in sessions:
        if session.get("path") == notebook:
            delete = urllib.request.Request(
                f"{lab.url}/api/sessions/{session['id']}", headers=headers, method="DELETE"
            )
            urllib.request.urlopen(delete, timeout=30).close()


@pytest.mark.parametrize("lesson", LESSON_NAMES, ids=lambda name: name[:2])
def test_lesson_runs_and_its_figures_and_equations_fit(
    lesson: str, browser: Browser, lab: Lab, artifacts: Path, request: pytest.FixtureRequest
) -> None:
    label = f"lesson-{lesson[:2]}"
    if lesson == "02_cost_arithmetic.ipynb":  # already run for the calculator tests above
        run = request.getfixturevalue("cost_notebook")
        cells = settled_layout(run.page)
        screenshot_figures(run.page, cells, artifacts, label)
    else:
        with browser_page(browser, artifacts, label) as page:
            try:
                # Its own workspace: another test's may have opened a linked notebook.
                run = run_notebook(page, lab, lesson, workspace=label)
                assert_ran_cleanly(run)
                cells = settled_layout(page)
                screenshot_figures(page, cells, artifacts, label)
            finally:
                shut_down_kernel(lab, f"notebooks/{lesson}")
    (artifacts / f"{label}-layout.json").write_text(json.dumps(cells, indent=1))
    expected = imported_figures(lesson)
    drawn = sum(len(cell["figures"]) for cell in cells)
    assert drawn >= expected, f"{drawn} figures drawn, expected at least {expected}"
    problems = layout_problems(cells)
    assert not problems, "\n".join(problems)


def imported_figures(lesson: str) -> int:
    """A floor for the figures a lesson draws: one per figure builder its script imports
    from attn_course (a function ending in _figure, a Calculator or an Explorer)."""
    script = (COURSE_ROOT / "notebooks" / lesson).with_suffix(".py").read_text()
    names = set(re.findall(r"\b(\w+_figure|\w+Calculator|\w+Explorer)\b", script))
    return sum(bool(re.search(rf"^\s*(\w+ = )?{name}\(", script, re.M)) for name in names)

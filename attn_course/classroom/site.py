"""The static HTML edition of the course: ``python -m attn_course.classroom.site``.

Runs every lesson notebook (``notebooks/NN_*.ipynb``, in course order) in a fresh kernel and
renders it, outputs included, into a folder of plain HTML pages that need no kernel and no
network: open ``site/index.html`` in a browser, or copy the folder to any static web host.

    python -m attn_course.classroom.site     # every lesson, size from $ATTN_COURSE_SIZE
    python -m attn_course.classroom.site --size small --out /tmp/site notebooks/03_tiling.ipynb

What the site holds, and why:

* ``index.html``: the table of contents, lessons in course order (the title of a notebook
  is its first markdown heading), then the exercise notebooks.
* ``NN_topic.html``: a lesson, executed at ``--size`` (full for learners, like JupyterLab),
  with a previous / contents / next bar at the top and the bottom.
* ``exercises/NN_topic.html``: an exercise notebook, rendered *without* running it: its
  checks only mean something when the learner has written the functions. Solutions are not
  published (they are the answers of graded work): a link to one, or to any other file that
  is not a page of the site, becomes plain text with the repository path as its tooltip.
* ``_static/plotly.min.js``: the plotly.js that ships inside the plotly package, copied
  once. Every figure is a ``Plotly.newPlot`` call on a page that loads this file by a
  relative path, so figures zoom and hover offline. The kernels run with the
  ``plotly_mimetype`` renderer (figures as JSON, no plotly.js inlined per notebook), and the
  builder turns each figure's JSON into that HTML.
* ``_static/mathjax/``: MathJax 2.7 for the formulas, copied from the
  ``jupyter-server-mathjax`` package when it is installed. Without it the formulas are shown
  as their TeX source (the build says so): never a script from a CDN.

Interactive calculators cannot run without a kernel. The kernels run with
``ATTN_COURSE_STATIC=1`` (:func:`attn_course.config.static_site`), under which the course's
calculators and explorers display a frozen figure plus a note naming their controls
(:func:`attn_course.ui.base.live_or_static`). Any other widget is frozen here, from the
widget state the kernel left: the same kind of note, then what it showed (what it drew into
an ``Output`` is kept in the cell, see :func:`execute_notebook`). Progress bars are dropped:
on a page they would only show how long the build took.

Links between notebooks (``03_tiling.ipynb``, ``../exercises/02_cost_arithmetic.ipynb#Part-1``)
are rewritten to the matching page, anchors kept: :func:`rewrite_href`. No page contains an
absolute path of the machine that built it (tracebacks are shown relative to the course).
"""

from __future__ import annotations

import argparse
import asyncio
import html
import os
import posixpath
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import nbformat
import plotly
import plotly.io as pio
from jinja2 import DictLoader
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter
from traitlets.config import Config

from attn_course.config import SIZE_ENV, SIZES, STATIC_ENV, course_size
from attn_course.course import COURSE_ROOT, lesson_files
from attn_course.ui.base import static_note_html

__all__ = [
    "BuildError",
    "Page",
    "build_site",
    "course_pages",
    "freeze_widgets",
    "main",
    "notebook_title",
    "plotly_to_html",
    "rewrite_href",
    "rewrite_links",
]

STATIC = PurePosixPath("_static")
PLOTLY_JS = STATIC / "plotly.min.js"
MATHJAX_DIR = STATIC / "mathjax"
# MathJax 2's combined configuration that jupyter-server-mathjax ships; "Safe" stops
# formulas from carrying scripts or styles, as nbconvert's own default does.
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"
# Written into the output folder, so that a rebuild may wipe a folder it made itself and
# never one that happens to be passed by mistake (``--out .``).
MARKER = ".attn-course-site"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"
# Where the previous / contents / next bar goes on a page (see render_page).
NAV_SLOT = "<!-- attn-course-site: nav -->"
# The height JupyterLab gives a plotly figure whose layout sets none.
FIGURE_HEIGHT = "525px"


class BuildError(RuntimeError):
    """A lesson failed to run: which one, and the cell's error."""


@dataclass(frozen=True)
class Page:
    """One notebook of the site: where it comes from, where it goes, what it is called.

    ``source`` is relative to the course root (``notebooks/03_tiling.ipynb``), ``target``
    relative to the site root (``03_tiling.html``); ``execute`` is False for the exercise
    notebooks, which are shown as the learner gets them.
    """

    source: PurePosixPath
    target: PurePosixPath
    title: str
    execute: bool


# --- which pages, in which order ------------------------------------------------------


def notebook_title(nb: nbformat.NotebookNode, fallback: str) -> str:
    """The text of the notebook's first markdown heading (``# 03 · Tiling``), or ``fallback``."""
    heading = re.compile(r"^ {0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        match = heading.search(cell.source)
        if match:
            # Inline code and emphasis markers mean nothing in a plain-text title.
            return re.sub(r"[`*]", "", match[1]).strip() or fallback
    return fallback


def course_pages(root: Path, lessons: Sequence[Path] | None = None) -> list[Page]:
    """The lesson pages in course order (file-name order), then their exercise pages.

    ``lessons`` picks some of ``notebooks/NN_*.ipynb`` (default: all of them), as paths or
    bare file names; an exercise page is made for every picked lesson that has an
    ``exercises/`` notebook of that name.
    """
    available = lesson_files(root / "notebooks")
    if lessons is None:
        chosen = available
    else:
        chosen = []
        for lesson in lessons:
            path = (lesson if lesson.exists() else root / "notebooks" / lesson.name).resolve()
            if path not in [p.resolve() for p in available]:
                names = [p.name for p in available]
                raise ValueError(f"notebook must be a lesson of notebooks/ {names}, got {lesson}")
            chosen.append(path)
        chosen = sorted(set(chosen), key=lambda p: p.name)
    if not chosen:
        raise ValueError(f"no lesson notebooks (notebooks/NN_*.ipynb) under {root}")

    def page(path: Path, folder: str, execute: bool) -> Page:
        nb = nbformat.read(path, as_version=4)
        return Page(
            source=PurePosixPath(folder, path.name),
            target=PurePosixPath(*(() if execute else (folder,)), f"{path.stem}.html"),
            title=notebook_title(nb, path.stem),
            execute=execute,
        )

    pages = [page(path, "notebooks", execute=True) for path in chosen]
    exercises = [root / "exercises" / path.name for path in chosen]
    pages += [page(path, "exercises", execute=False) for path in exercises if path.exists()]
    return pages


# --- links between notebooks ------------------------------------------------------------


def relative_url(from_page: PurePosixPath, to: PurePosixPath) -> str:
    """The relative URL from one site page to another file of the site."""
    return posixpath.relpath(str(to), str(from_page.parent))


def _course_path(page: Page, link_path: str) -> PurePosixPath:
    """A relative link's target as a path from the course root (links are relative to the
    notebook's folder); outside the course it starts with ``..``."""
    return PurePosixPath(posixpath.normpath(posixpath.join(str(page.source.parent), link_path)))


def rewrite_href(
    href: str, page: Page, site_map: Mapping[PurePosixPath, PurePosixPath]
) -> str | None:
    """Where a link on ``page`` must point in the site; None if its target is not in the site.

    ``site_map`` maps notebook sources (relative to the course root) to pages (relative to
    the site root). External links (``https:``, ``mailto:``), fragments of the same page
    (``#Part-2``) and links to the site's own files come back unchanged; a relative link to a
    notebook of the site becomes the relative URL of its page, anchor kept::

        03_tiling.ipynb#The-loop  (on notebooks/02_x.ipynb)  ->  03_tiling.html#The-loop
        ../exercises/02_x.ipynb   (on notebooks/02_x.ipynb)  ->  exercises/02_x.html

    Any other relative link (a solution, README.md, a record) is not part of the site: None.
    """
    parts = urlsplit(href)
    if not href or parts.scheme or parts.netloc or href.startswith(("#", "/")):
        return href
    if not parts.path:  # "?query" alone: nothing to resolve
        return href
    resolved = _course_path(page, parts.path)
    if resolved in site_map:
        url = relative_url(page.target, site_map[resolved])
        return f"{url}#{parts.fragment}" if parts.fragment else url
    return None


# An <a ...>...</a> element (nbconvert and markdown never nest them) and its href attribute.
_ANCHOR = re.compile(r"<a\b(?P<attrs>[^>]*)>(?P<text>.*?)</a>", re.DOTALL | re.IGNORECASE)
_HREF = re.compile(r"""\bhref\s*=\s*(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)')""", re.IGNORECASE)


def rewrite_links(
    page_html: str, page: Page, site_map: Mapping[PurePosixPath, PurePosixPath]
) -> str:
    """Apply :func:`rewrite_href` to every ``<a href>`` of a page.

    A link whose target is not in the site keeps its text, as a ``<span>`` whose tooltip is
    the target's path in the course repository (so the reader knows where to find it).
    """

    def replace(anchor: re.Match[str]) -> str:
        href_match = _HREF.search(anchor["attrs"])
        if href_match is None:
            return anchor[0]
        href = html.unescape(href_match["dq"] if href_match["dq"] is not None else href_match["sq"])
        new = rewrite_href(href, page, site_map)
        if new == href:
            return anchor[0]
        if new is None:
            target = _course_path(page, urlsplit(href).path)
            tooltip = html.escape(f"{target} in the course repository (not part of this site)")
            return f'<span class="attn-site-offsite" title="{tooltip}">{anchor["text"]}</span>'
        start, end = href_match.span()
        attrs = f'{anchor["attrs"][:start]}href="{html.escape(new)}"{anchor["attrs"][end:]}'
        return f"<a{attrs}>{anchor['text']}</a>"

    return _ANCHOR.sub(replace, page_html)


# --- running a notebook -----------------------------------------------------------------


def kernel_env(size: str) -> dict[str, str]:
    """The environment of the kernels: the size, the static flag, figures as plotly JSON."""
    return {**os.environ, SIZE_ENV: size, STATIC_ENV: "1", "PLOTLY_RENDERER": "plotly_mimetype"}


async def execute_notebook(
    nb: nbformat.NotebookNode, cwd: Path, size: str, timeout: int
) -> nbformat.NotebookNode:
    """Run every cell in a fresh kernel started in ``cwd`` (a cell error fails the build,
    except in cells tagged ``raises-exception``, which are meant to fail)."""
    # The kernel listens on Unix sockets in a private folder (IPC) rather than on TCP ports
    # of localhost, which any local user could connect to, and about which every kernel
    # would log a warning ("Kernel is running over TCP without encryption").
    sockets = tempfile.mkdtemp(prefix="attn-site-")
    ipc = Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(sockets, "kernel")}})
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd)}},
        config=ipc,
    )
    # nbclient plays the part of a frontend for ipywidgets' Output widget, sending comm
    # messages on the shell socket while it waits there for the cell's reply; under load
    # that intermittently stalls the cell for the whole per-cell timeout (seen with notebook
    # 01's explorer: 40 s of a 40 s timeout in 2 runs of 10). A static page needs no live
    # Output widget: without the handler, what the widget displays lands in the cell itself.
    client.comm_open_handlers = {}
    try:
        await client.async_execute(env=kernel_env(size))
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
    return nb


def _shown_value(state: Mapping[str, Any]) -> str:
    """A control's value as it reads on screen (the label of a dropdown's choice)."""
    if "_options_labels" in state and isinstance(state.get("index"), int):
        return str(state["_options_labels"][state["index"]])
    value = state.get("value")
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


@dataclass
class WidgetParts:
    """What the saved state of a widget tree holds: its controls as (description, value
    shown), the text of its HTML parts, and whether it is a progress bar."""

    controls: list[tuple[str, str]]
    html: list[str]
    progress: bool


def widget_parts(model_id: str, states: Mapping[str, Any]) -> WidgetParts:
    """Walk a widget and its children in the widget state that nbclient saved."""
    parts = WidgetParts(controls=[], html=[], progress=False)

    def walk(model_id: str) -> None:
        model = states.get(model_id)
        if model is None:
            return
        name, state = model["model_name"], model["state"]
        if name in ("FloatProgressModel", "IntProgressModel"):
            parts.progress = True
        elif name in ("HTMLModel", "HTMLMathModel", "LabelModel"):
            if state.get("value"):
                parts.html.append(state["value"])
        elif state.get("description") and ("value" in state or "index" in state):
            parts.controls.append((state["description"], _shown_value(state)))
        for child in state.get("children", []):
            walk(child.removeprefix("IPY_MODEL_"))

    walk(model_id)
    return parts


def freeze_widgets(nb: nbformat.NotebookNode) -> None:
    """Replace every widget output by what it showed, and drop the widget state (with it,
    nbconvert would load a widget manager from a CDN).

    A widget with controls becomes a note naming them, put first in its cell (the figures a
    widget draws through an ``Output`` are already in the cell, see :func:`execute_notebook`);
    its HTML parts stay as HTML; a progress bar (tqdm's) is dropped: on a page it would only
    say how long the build took.
    """
    states = nb.metadata.pop("widgets", {}).get(WIDGET_STATE_MIME, {}).get("state", {})
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        notes: list[list[tuple[str, str]]] = []
        outputs = []
        for output in cell.outputs:
            view = output.get("data", {}).get(WIDGET_VIEW_MIME)
            if view is None:
                outputs.append(output)
                continue
            parts = widget_parts(view["model_id"], states)
            if parts.progress and not parts.controls:
                continue
            outputs += [
                nbformat.v4.new_output("display_data", {"text/html": h}) for h in parts.html
            ]
            if parts.controls:
                notes.append(parts.controls)
        figures = sum(PLOTLY_MIME in output.get("data", {}) for output in outputs)
        cell.outputs = [
            nbformat.v4.new_output(
                "display_data", {"text/html": static_note_html("widget", controls, figures)}
            )
            for controls in notes
        ] + outputs


def plotly_to_html(nb: nbformat.NotebookNode, id_prefix: str) -> int:
    """Give every plotly figure output an HTML form that draws it with the site's plotly.js.

    Returns the number of figures. Div ids are numbered, so that a rebuild gives the same page.
    """
    count = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            figure = output.get("data", {}).get(PLOTLY_MIME)
            if figure is None:
                continue
            figure = dict(figure)
            config = {**figure.pop("config", {}), "responsive": True, "displaylogo": False}
            count += 1
            output.data = {
                "text/html": pio.to_html(
                    figure,
                    config=config,
                    include_plotlyjs=False,
                    full_html=False,
                    div_id=f"{id_prefix}-figure-{count}",
                    default_height=FIGURE_HEIGHT,
                    validate=False,
                )
            }
    return count


# --- rendering a page ---------------------------------------------------------------------

_PAGE_TEMPLATE = """\
{%- extends 'index.html.j2' -%}
{% from 'mathjax.html.j2' import mathjax %}
{#- Offline: no require.js (with it, plotly.min.js registers as an AMD module instead of
    window.Plotly), no widget manager from a CDN (widgets are frozen into outputs), no
    mermaid from a CDN, MathJax only from the site's own copy. -#}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_js_mathjax -%}
{%- if resources.attn_site.mathjax_url -%}
{#- jupyter-server-mathjax ships the STIX-Web fonts only (as the classic notebook used). -#}
<script type="text/x-mathjax-config">
MathJax.Hub.Config({"HTML-CSS": {availableFonts: [], imageFont: null, preferredFont: null,
                                 webFont: "STIX-Web"}});
</script>
{{ mathjax(resources.attn_site.mathjax_url) }}
{%- endif -%}
{%- endblock html_head_js_mathjax -%}
{% block extra_css %}
<style type="text/css">{{ resources.attn_site.css }}</style>
{%- if resources.attn_site.plotly_js %}
<script src="{{ resources.attn_site.plotly_js }}"></script>
{%- endif %}
{% endblock extra_css %}
{%- block body_header -%}
{{ super() }}
{{ resources.attn_site.nav_slot }}
{{ resources.attn_site.banner }}
{%- endblock body_header -%}
{% block body_footer %}
{{ resources.attn_site.nav_slot }}
{{ super() }}
{% endblock body_footer %}
{#- A class of our own on error outputs, so that a test can tell them from stderr. -#}
{% block error -%}
<div class="attn-site-error">{{ super() }}</div>
{%- endblock error %}
"""

_CSS = """
.attn-site-nav { display: flex; justify-content: space-between; gap: 1em; max-width: 1100px;
  margin: 0.5em auto; padding: 0.4em 1em; font-family: var(--jp-ui-font-family, sans-serif);
  font-size: 14px; border-bottom: 1px solid #ddd; }
.attn-site-nav a { text-decoration: none; color: #1565c0; }
.attn-site-nav span { min-width: 8em; }
.attn-site-banner { max-width: 1100px; margin: 0.5em auto; padding: 0.5em 1em;
  background: #fff8e1; border-left: 4px solid #f9a825; font-family: var(--jp-ui-font-family,
  sans-serif); font-size: 14px; }
.attn-site-offsite { border-bottom: 1px dotted #888; cursor: help; }
"""

_INDEX_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; max-width: 760px;
  margin: 2em auto; padding: 0 1em; line-height: 1.5; color: #222; }
h1 { margin-bottom: 0.2em; } ul { list-style: none; padding-left: 0.5em; }
li { margin: 0.3em 0; }
a { color: #1565c0; text-decoration: none; } a:hover { text-decoration: underline; }
.about { color: #555; font-size: 0.95em; } code { background: #f3f3f3; padding: 0 0.2em; }
"""


def _link(from_page: PurePosixPath, page: Page | None, text: str) -> str:
    if page is None:
        return "<span></span>"
    return f'<a href="{html.escape(relative_url(from_page, page.target))}">{text}</a>'


def nav_html(page: Page, siblings: Sequence[Page]) -> str:
    """Previous / contents / next, among the pages of the same kind (lessons or exercises)."""
    index = siblings.index(page)
    before = siblings[index - 1] if index > 0 else None
    after = siblings[index + 1] if index + 1 < len(siblings) else None
    home = PurePosixPath("index.html")
    contents = f'<a href="{html.escape(relative_url(page.target, home))}">Contents</a>'
    previous = _link(page.target, before, f"← {html.escape(before.title)}" if before else "")
    following = _link(page.target, after, f"{html.escape(after.title)} →" if after else "")
    return f'<nav class="attn-site-nav">{previous}{contents}{following}</nav>'


def banner_html(page: Page, size: str) -> str:
    """What this page is, and how to get the live notebook."""
    where = html.escape(str(page.source))
    if page.execute:
        text = (
            f"Static edition of <code>{where}</code>, run at size <b>{size}</b>. To change the "
            "code and move the calculators, open it in JupyterLab (<code>make lab</code>)."
        )
    else:
        text = (
            f"The exercise notebook <code>{where}</code>, shown as you get it, not run. Do it "
            "in JupyterLab (<code>make lab</code>): each check cell tells you whether your "
            "function is right."
        )
    return f'<div class="attn-site-banner">{text}</div>'


def scrub_paths(text: str, root: Path) -> str:
    """Remove this machine's absolute paths (tracebacks, warnings) from a page's text."""
    text = text.replace(f"{root}{os.sep}", "").replace(str(root), ".")
    for prefix, label in ((sys.prefix, "<python>"), (sys.base_prefix, "<python>")):
        text = text.replace(prefix, label)
    return text.replace(str(Path.home()), "~")


def page_exporter() -> HTMLExporter:
    """nbconvert's JupyterLab-style HTML exporter with the site's offline template."""
    return HTMLExporter(
        template_name="lab",
        extra_loaders=[DictLoader({"attn_course_site.html.j2": _PAGE_TEMPLATE})],
        template_file="attn_course_site.html.j2",
    )


def render_page(
    nb: nbformat.NotebookNode,
    page: Page,
    siblings: Sequence[Page],
    site_map: Mapping[PurePosixPath, PurePosixPath],
    *,
    size: str,
    mathjax: bool,
    root: Path,
) -> str:
    """The HTML of one page: the notebook as JupyterLab shows it, plus nav and banner."""
    nb.metadata["title"] = page.title
    freeze_widgets(nb)
    figures = plotly_to_html(nb, id_prefix=page.target.stem)
    mathjax_js = relative_url(page.target, MATHJAX_DIR / "MathJax.js")
    resources = {
        "attn_site": {
            "css": _CSS,
            "plotly_js": relative_url(page.target, PLOTLY_JS) if figures else "",
            "mathjax_url": f"{mathjax_js}?config={MATHJAX_CONFIG}" if mathjax else "",
            "nav_slot": NAV_SLOT,
            "banner": banner_html(page, size),
        }
    }
    body, _ = page_exporter().from_notebook_node(nb, resources=resources)
    # The nav goes in after the notebook's links are rewritten: its links already point
    # at pages of the site and must not be read as links of the notebook.
    body = rewrite_links(body, page, site_map).replace(NAV_SLOT, nav_html(page, siblings))
    return scrub_paths(body, root)


def index_html(pages: Sequence[Page], size: str) -> str:
    """The table of contents: lessons in course order, then the exercises."""

    def items(chosen: Iterable[Page]) -> str:
        return "\n".join(
            f'<li><a href="{html.escape(str(p.target))}">{html.escape(p.title)}</a></li>'
            for p in chosen
        )

    lessons = [p for p in pages if p.execute]
    exercises = [p for p in pages if not p.execute]
    exercise_part = (
        "<h2>Exercises</h2>\n<p class='about'>The exercise notebooks, as you get them (not "
        "run): do them in JupyterLab, where each check tells you whether your function is "
        f"right.</p>\n<ul class='exercises'>\n{items(exercises)}\n</ul>"
        if exercises
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>The Quadratic Wall: contents</title>
<style>{_INDEX_CSS}</style>
</head>
<body>
<h1>The Quadratic Wall</h1>
<p class="about">Why attention costs O(n²), and how the field gets around it. This is the
static edition: every lesson was run (at size <b>{size}</b>) and saved with its outputs;
figures zoom and hover, and the pages work offline. The calculators are live only in
JupyterLab: <code>make lab</code> in the course repository.</p>
<h2>Lessons</h2>
<ul class="lessons">
{items(lessons)}
</ul>
{exercise_part}
</body>
</html>
"""


# --- the whole site -----------------------------------------------------------------------


def mathjax_source() -> Path | None:
    """MathJax 2.7 as shipped by the ``jupyter-server-mathjax`` package, if it is installed."""
    try:
        import jupyter_server_mathjax  # optional: without it formulas stay TeX
    except ImportError:
        return None
    static = Path(jupyter_server_mathjax.__file__).parent / "static"
    return static if (static / "MathJax.js").exists() else None


def copy_mathjax(source: Path, destination: Path) -> None:
    """Copy MathJax without what a page never loads: translations other than English and
    the SVG output (pages use MathJax's HTML-CSS output)."""

    def skip(folder: str, names: list[str]) -> list[str]:
        here = Path(folder)
        if here.name == "localization":
            return [n for n in names if n != "en"]
        if here.name == "output" and here.parent.name == "jax":
            return [n for n in names if n == "SVG"]
        return []

    shutil.copytree(source, destination, ignore=skip)


def prepare_out(out: Path) -> None:
    """An empty output folder; a previous build there is removed, anything else is refused."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise ValueError(
                f"out must be an empty folder or an earlier site build; {out} holds other files"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(
        "Built by python -m attn_course.classroom.site; rebuilt from scratch.\n"
    )


def build_site(
    out: Path,
    *,
    size: str | None = None,
    lessons: Sequence[Path] | None = None,
    root: Path = COURSE_ROOT,
    jobs: int = 1,
    timeout: int = 1800,
    log: Callable[[str], None] = print,
) -> list[Page]:
    """Run the lessons and write the site into ``out``; returns its pages in order.

    ``size`` defaults to ``$ATTN_COURSE_SIZE`` (full when unset); ``jobs`` notebooks run at
    once (1 by default, because lessons time code and a second kernel would slow the
    measurements); ``timeout`` is per cell, in seconds.
    """
    size = course_size() if size is None else size
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    pages = course_pages(root, lessons)
    prepare_out(out)
    (out / STATIC).mkdir()
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    shutil.copyfile(plotly_js, out / PLOTLY_JS)
    mathjax = mathjax_source()
    if mathjax is None:
        log("note: jupyter-server-mathjax is not installed; formulas stay as TeX source")
    else:
        copy_mathjax(mathjax, out / MATHJAX_DIR)

    notebooks = {page: nbformat.read(root / page.source, as_version=4) for page in pages}

    async def run_all() -> None:
        gate = asyncio.Semaphore(jobs)

        async def run(page: Page) -> None:
            async with gate:
                started = time.perf_counter()
                cwd = root / page.source.parent
                try:
                    await execute_notebook(notebooks[page], cwd, size, timeout)
                except CellExecutionError as error:
                    raise BuildError(f"{page.source} failed to run:\n{error}") from error
                log(f"ran {page.source} in {time.perf_counter() - started:.0f} s")

        await asyncio.gather(*(run(page) for page in pages if page.execute))

    asyncio.run(run_all())

    site_map = {page.source: page.target for page in pages}
    for page in pages:
        siblings = [p for p in pages if p.execute == page.execute]
        text = render_page(
            notebooks[page],
            page,
            siblings,
            site_map,
            size=size,
            mathjax=mathjax is not None,
            root=root,
        )
        (out / page.target).parent.mkdir(parents=True, exist_ok=True)
        (out / page.target).write_text(text, encoding="utf-8")
    (out / "index.html").write_text(index_html(pages, size), encoding="utf-8")
    return pages


def folder_megabytes(folder: Path) -> float:
    """Size of every file under ``folder``, in MB (10⁶ bytes)."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m attn_course.classroom.site",
        description="Run the lesson notebooks and render them as a static, offline HTML site.",
    )
    parser.add_argument(
        "notebooks",
        nargs="*",
        type=Path,
        metavar="NOTEBOOK",
        help="lessons to include (notebooks/NN_*.ipynb); default: all, in course order",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=COURSE_ROOT / "site",
        help="output folder (default: site/ in the course); an earlier build there is replaced",
    )
    parser.add_argument(
        "--size",
        choices=SIZES,
        default=None,
        help=f"size of the heavy cells (default: ${SIZE_ENV}, full when unset)",
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="notebooks run at once (default 1: honest timings)"
    )
    parser.add_argument(
        "--timeout", type=int, default=1800, help="seconds a single cell may run (default 1800)"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        pages = build_site(
            args.out,
            size=args.size,
            lessons=args.notebooks or None,
            jobs=args.jobs,
            timeout=args.timeout,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    print(
        f"wrote {len(pages)} pages to {args.out / 'index.html'} in {seconds:.0f} s "
        f"({folder_megabytes(args.out):.1f} MB)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

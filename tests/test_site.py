"""attn_course.classroom.site: link rewriting, frozen widgets and figures, the whole site.

The unit tests run on tiny hand-made notebooks and pages. The ``slow`` tests build the real
site once (every lesson, executed at ATTN_COURSE_SIZE=small, two kernels at a time) and
check it the way a reader's browser would meet it: every page there, every local link and
script resolving, nothing loaded from the network, figures drawable, no unexpected errors.
"""

from __future__ import annotations

import asyncio
import html
import os
import re
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import nbformat
import pytest

from attn_course.classroom import site
from attn_course.classroom.site import (
    Page,
    build_site,
    course_pages,
    freeze_widgets,
    notebook_title,
    plotly_to_html,
    prepare_out,
    rewrite_href,
    rewrite_links,
    scrub_paths,
)
from attn_course.course import COURSE_ROOT, lesson_paths
from attn_course.ui.base import StaticSnapshot
from attn_course.ui.cost import FlopsCalculator

P = PurePosixPath
LESSON = Page(P("notebooks/02_cost.ipynb"), P("02_cost.html"), "02 · Cost", execute=True)
EXERCISE = Page(P("exercises/02_cost.ipynb"), P("exercises/02_cost.html"), "02 · Ex", False)
SITE_MAP = {
    P("notebooks/02_cost.ipynb"): P("02_cost.html"),
    P("notebooks/03_tiling.ipynb"): P("03_tiling.html"),
    P("exercises/02_cost.ipynb"): P("exercises/02_cost.html"),
    P("exercises/03_tiling.ipynb"): P("exercises/03_tiling.html"),
}


# --- links ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("page", "href", "expected"),
    [
        # a lesson next door, with and without an anchor
        (LESSON, "03_tiling.ipynb", "03_tiling.html"),
        (LESSON, "03_tiling.ipynb#The-loop", "03_tiling.html#The-loop"),
        (LESSON, "./03_tiling.ipynb", "03_tiling.html"),
        # lesson -> exercise: notebooks/../exercises/x.ipynb is exercises/x.ipynb
        (LESSON, "../exercises/02_cost.ipynb", "exercises/02_cost.html"),
        (LESSON, "../exercises/03_tiling.ipynb#Exercise-1", "exercises/03_tiling.html#Exercise-1"),
        # exercise -> lesson and exercise -> exercise, from one folder down in the site
        (EXERCISE, "../notebooks/03_tiling.ipynb#A", "../03_tiling.html#A"),
        (EXERCISE, "03_tiling.ipynb", "03_tiling.html"),
        # not a notebook link: unchanged
        (LESSON, "https://triton-lang.org", "https://triton-lang.org"),
        (LESSON, "#Part-2", "#Part-2"),
        (LESSON, "mailto:someone@example.org", "mailto:someone@example.org"),
        (LESSON, "", ""),
        # not part of the site: None (the page shows the text without a link)
        (LESSON, "../solutions/02_cost.ipynb", None),
        (LESSON, "09_missing.ipynb#x", None),
        (LESSON, "../README.md", None),
        (LESSON, "../../elsewhere.ipynb", None),
    ],
)
def test_rewrite_href(page: Page, href: str, expected: str | None) -> None:
    assert rewrite_href(href, page, SITE_MAP) == expected


def test_rewrite_links_rewrites_unlinks_and_keeps_the_rest() -> None:
    page_html = (
        '<p>Next: <a class="x" href="03_tiling.ipynb#The-loop">03 · Tiling</a>, '
        "<a href='../exercises/02_cost.ipynb'>exercises</a>, "
        '<a href="../solutions/02_cost.ipynb"><b>solutions</b></a>, '
        '<a href="https://triton-lang.org">Triton</a>, <a href="#Part-2">part 2</a>, '
        '<a name="no-href">anchor</a></p>'
    )
    out = rewrite_links(page_html, LESSON, SITE_MAP)
    assert '<a class="x" href="03_tiling.html#The-loop">03 · Tiling</a>' in out
    assert '<a href="exercises/02_cost.html">exercises</a>' in out
    # The solution is not published: its text stays, the path is the tooltip.
    assert (
        '<span class="attn-site-offsite" title="solutions/02_cost.ipynb in the course '
        'repository (not part of this site)"><b>solutions</b></span>'
    ) in out
    for unchanged in (
        '<a href="https://triton-lang.org">Triton</a>',
        '<a href="#Part-2">part 2</a>',
        '<a name="no-href">anchor</a>',
    ):
        assert unchanged in out
    assert ".ipynb" not in out.replace("solutions/02_cost.ipynb in the", "")


def test_rewrite_links_escapes_and_unescapes_the_href() -> None:
    out = rewrite_links('<a href="03_tiling.ipynb#a&amp;b">x</a>', LESSON, SITE_MAP)
    assert out == '<a href="03_tiling.html#a&amp;b">x</a>'


# --- pages and titles ---------------------------------------------------------------------


def _notebook(*markdown: str) -> nbformat.NotebookNode:
    cells = [nbformat.v4.new_markdown_cell(text) for text in markdown]
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1"), *cells])


def test_notebook_title_is_the_first_markdown_heading() -> None:
    nb = _notebook("Some text first", "Intro\n\n# 03 · Tiling: `softmax` **online**\n\n## later")
    assert notebook_title(nb, "fallback") == "03 · Tiling: softmax online"
    assert notebook_title(_notebook("no heading here"), "03_tiling") == "03_tiling"


def test_course_pages_orders_lessons_then_their_exercises(tmp_path: Path) -> None:
    for folder, name, heading in [
        ("notebooks", "02_cost.ipynb", "# 02 · Cost"),
        ("notebooks", "00_start_here.ipynb", "# Start here"),
        ("notebooks", "01_scores.ipynb", "# 01 · Scores"),
        ("notebooks", "scratch.ipynb", "# not a lesson"),
        ("exercises", "02_cost.ipynb", "# 02 · Exercises"),
    ]:
        (tmp_path / folder).mkdir(exist_ok=True)
        nbformat.write(_notebook(heading), tmp_path / folder / name)
    pages = course_pages(tmp_path)
    assert [(str(p.source), str(p.target), p.title, p.execute) for p in pages] == [
        ("notebooks/00_start_here.ipynb", "00_start_here.html", "Start here", True),
        ("notebooks/01_scores.ipynb", "01_scores.html", "01 · Scores", True),
        ("notebooks/02_cost.ipynb", "02_cost.html", "02 · Cost", True),
        ("exercises/02_cost.ipynb", "exercises/02_cost.html", "02 · Exercises", False),
    ]
    chosen = course_pages(tmp_path, [tmp_path / "notebooks" / "01_scores.ipynb"])
    assert [str(p.source) for p in chosen] == ["notebooks/01_scores.ipynb"]
    with pytest.raises(ValueError, match="notebook must be a lesson"):
        course_pages(tmp_path, [tmp_path / "notebooks" / "scratch.ipynb"])


def test_prepare_out_replaces_a_site_but_refuses_other_folders(tmp_path: Path) -> None:
    out = tmp_path / "site"
    prepare_out(out)
    (out / "stale.html").write_text("old page")
    prepare_out(out)  # an earlier build: wiped
    assert [p.name for p in out.iterdir()] == [site.MARKER]
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="out must be an empty folder"):
        prepare_out(precious)
    assert (precious / "notes.txt").read_text() == "keep me"


def test_scrub_paths_removes_this_machines_paths() -> None:
    text = f"File {COURSE_ROOT}/attn_course/cost.py:12, in f\n  {COURSE_ROOT}"
    assert scrub_paths(text, COURSE_ROOT) == "File attn_course/cost.py:12, in f\n  ."


# --- frozen widgets and figures -------------------------------------------------------------


def _widget_output(model_id: str) -> nbformat.NotebookNode:
    view = {"model_id": model_id, "version_major": 2, "version_minor": 0}
    data = {site.WIDGET_VIEW_MIME: view, "text/plain": "VBox(...)"}
    return nbformat.v4.new_output("display_data", data)


def _model(name: str, **state: object) -> dict[str, object]:
    return {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": state}


def test_freeze_widgets_notes_controls_and_drops_progress_bars() -> None:
    states = {
        "box": _model("VBoxModel", children=["IPY_MODEL_head", "IPY_MODEL_causal"]),
        "head": _model("DropdownModel", description="head", index=1, _options_labels=["a", "b"]),
        "causal": _model("CheckboxModel", description="causal mask", value=False),
        "bar": _model("HBoxModel", children=["IPY_MODEL_label", "IPY_MODEL_progress"]),
        "label": _model("HTMLModel", value="measuring: 100%"),
        "progress": _model("FloatProgressModel", value=3.0),
        "text": _model("HTMLModel", value="<b>42</b> bytes"),
    }
    figure = nbformat.v4.new_output("display_data", {site.PLOTLY_MIME: {"data": []}})
    explorer = nbformat.v4.new_code_cell("explorer")
    explorer.outputs = [figure, _widget_output("box")]
    progress = nbformat.v4.new_code_cell("measure()")
    progress.outputs = [_widget_output("bar"), nbformat.v4.new_output("stream", text="done\n")]
    readout = nbformat.v4.new_code_cell("readout")
    readout.outputs = [_widget_output("text")]
    nb = nbformat.v4.new_notebook(cells=[explorer, progress, readout])
    nb.metadata["widgets"] = {site.WIDGET_STATE_MIME: {"state": states}}

    freeze_widgets(nb)

    assert "widgets" not in nb.metadata
    note, kept_figure = explorer.outputs
    assert kept_figure is figure
    text = note.data["text/html"]
    assert "<i>head</i>, <i>causal mask</i>" in text
    assert "head = b; causal mask = off" in text  # the dropdown's label, the checkbox as on/off
    assert "the figure below" in text  # one figure follows
    assert [o.output_type for o in progress.outputs] == ["stream"]
    assert [o.data for o in readout.outputs] == [{"text/html": "<b>42</b> bytes"}]


def test_plotly_to_html_draws_with_the_shared_plotly_js() -> None:
    figure = {
        "data": [{"type": "scatter", "x": [1, 2], "y": [3, 4]}],
        "layout": {"title": {"text": "t"}},
        "config": {"plotlyServerURL": "https://plot.ly"},
    }
    cell = nbformat.v4.new_code_cell("fig")
    cell.outputs = [
        nbformat.v4.new_output("display_data", {site.PLOTLY_MIME: figure}) for _ in range(2)
    ]
    nb = nbformat.v4.new_notebook(cells=[cell, nbformat.v4.new_markdown_cell("text")])
    assert plotly_to_html(nb, "03_tiling") == 2
    drawn = cell.outputs[1].data["text/html"]
    assert list(cell.outputs[1].data) == ["text/html"]
    assert re.search(r'Plotly\.newPlot\(\s*"03_tiling-figure-2"', drawn)
    assert "<script src" not in drawn  # the page loads plotly.js once, from _static/


def test_calculators_freeze_only_on_a_static_site(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ATTN_COURSE_STATIC", raising=False)
    assert not isinstance(FlopsCalculator().widget, StaticSnapshot)
    monkeypatch.setenv("ATTN_COURSE_STATIC", "1")
    snapshot = FlopsCalculator().widget
    assert isinstance(snapshot, StaticSnapshot)
    note = snapshot.note_html()
    # Every control is named, with the value it is frozen at (the defaults: Llama-2-7B).
    assert "<i>model preset</i>" in note and "<i>n (tokens)</i>" in note
    assert "model preset = Llama-2-7B" in note and "n (tokens) = 8,192" in note
    assert "gated FFN (SwiGLU: 3 matrices) = on" in note


# --- checking a built site ------------------------------------------------------------------


class _PageParser(HTMLParser):
    """Collects a page's links (tag, attribute, value), element ids, and error outputs that
    are not inside a cell tagged ``raises-exception``."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str, str]] = []
        self.ids: set[str] = set()
        self.unexpected_errors = 0
        self._divs: list[str] = []  # classes of the open <div>s

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if "id" in attributes:
            self.ids.add(attributes["id"])
        for name in ("href", "src"):
            if name in attributes:
                self.links.append((tag, name, attributes[name]))
        if tag == "div":
            classes = attributes.get("class", "")
            if "attn-site-error" in classes.split() and not any(
                "celltag_raises-exception" in c for c in self._divs
            ):
                self.unexpected_errors += 1
            self._divs.append(classes)

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._divs:
            self._divs.pop()


def parse_site(root: Path) -> dict[Path, _PageParser]:
    parsed = {}
    for page in sorted(root.rglob("*.html")):
        parser = _PageParser()
        parser.feed(page.read_text(encoding="utf-8"))
        parsed[page] = parser
    return parsed


def link_problems(root: Path) -> list[str]:
    """Every broken local link, missing anchor on another page, or network resource."""
    parsed = parse_site(root)
    problems = []
    for page, parser in parsed.items():
        where = page.relative_to(root)
        for tag, attribute, value in parser.links:
            parts = urlsplit(value)
            if parts.scheme in ("http", "https") or value.startswith("//"):
                if tag != "a":  # a script, stylesheet or image from the network
                    problems.append(f"{where}: <{tag} {attribute}> loads {value} from the network")
                continue
            if parts.scheme or not parts.path:  # data:, mailto:, or #fragment on this page
                continue
            target = (page.parent / parts.path).resolve()
            if not target.is_file() or root.resolve() not in target.parents:
                problems.append(f"{where}: {value} does not resolve to a file of the site")
            elif parts.fragment and target.suffix == ".html":
                if parts.fragment not in parsed[target].ids:
                    problems.append(f"{where}: {value}: no id {parts.fragment!r} there")
    return problems


def test_link_problems_finds_broken_links_anchors_and_network_scripts(tmp_path: Path) -> None:
    """The checker the site test relies on fails on each kind of break (mutation check)."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.html").write_text('<h1 id="Top">A</h1><a href="sub/b.html#Part-1">b</a>')
    (tmp_path / "sub" / "b.html").write_text(
        '<h2 id="Part-1">B</h2><a href="../a.html">a</a><a href="#Part-1">here</a>'
        '<a href="https://example.org">external page: fine</a><img src="data:image/png;base64,">'
    )
    assert link_problems(tmp_path) == []

    (tmp_path / "sub" / "b.html").write_text(
        '<h2 id="Part-2">B</h2><a href="../a.html#Nowhere">a</a><a href="../gone.html">x</a>'
        '<script src="https://cdn.example.org/plotly.js"></script>'
    )
    assert sorted(link_problems(tmp_path)) == [
        "a.html: sub/b.html#Part-1: no id 'Part-1' there",
        "sub/b.html: ../a.html#Nowhere: no id 'Nowhere' there",
        "sub/b.html: ../gone.html does not resolve to a file of the site",
        "sub/b.html: <script src> loads https://cdn.example.org/plotly.js from the network",
    ]


def test_page_parser_counts_only_unexpected_errors() -> None:
    parser = _PageParser()
    parser.feed(
        '<div class="jp-Cell celltag_raises-exception"><div><div class="attn-site-error">'
        "</div></div></div>"
        '<div class="jp-Cell"><div class="attn-site-error"></div></div>'
    )
    assert parser.unexpected_errors == 1


# --- the real site --------------------------------------------------------------------------

LESSONS = lesson_paths("notebooks")


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Page]]:
    out = tmp_path_factory.mktemp("site") / "site"
    pages = build_site(out, size="small", jobs=2, timeout=600, log=lambda _: None)
    return out, pages


@pytest.mark.slow
def test_site_index_lists_every_lesson_in_course_order(built_site: tuple[Path, list[Page]]) -> None:
    out, pages = built_site
    index = (out / "index.html").read_text(encoding="utf-8")
    lessons = re.search(r'<ul class="lessons">(.*?)</ul>', index, re.DOTALL)
    assert lessons is not None
    hrefs = re.findall(r'href="([^"]+)"', lessons[1])
    assert hrefs == [f"{p.stem}.html" for p in LESSONS]
    for page in pages:
        assert (out / page.target).is_file()
        assert f">{html.escape(page.title)}</a>" in index
    for exercise in lesson_paths("exercises"):
        assert (out / "exercises" / f"{exercise.stem}.html").is_file()


@pytest.mark.slow
def test_site_pages_link_previous_contents_next(built_site: tuple[Path, list[Page]]) -> None:
    out, pages = built_site
    lessons = [p for p in pages if p.execute]
    for before, page, after in zip(
        [None, *lessons[:-1]], lessons, [*lessons[1:], None], strict=True
    ):
        text = (out / page.target).read_text(encoding="utf-8")
        nav = re.findall(r'<nav class="attn-site-nav">(.*?)</nav>', text, re.DOTALL)
        assert len(nav) == 2, page  # top and bottom
        hrefs = re.findall(r'href="([^"]+)"', nav[0])
        previous = [before.target.name] if before else []
        following = [after.target.name] if after else []
        assert hrefs == [*previous, "index.html", *following]


@pytest.mark.slow
def test_site_links_resolve_and_nothing_comes_from_the_network(
    built_site: tuple[Path, list[Page]],
) -> None:
    out, _ = built_site
    assert link_problems(out) == []


@pytest.mark.slow
def test_site_figures_are_interactive_and_offline(built_site: tuple[Path, list[Page]]) -> None:
    out, _ = built_site
    with_figures = []
    for page, parser in parse_site(out).items():
        text = page.read_text(encoding="utf-8")
        if "Plotly.newPlot" in text:
            with_figures.append(page.name)
            scripts = [v for tag, _, v in parser.links if tag == "script"]
            assert any(v.endswith("_static/plotly.min.js") for v in scripts), page
        # No live widget is left for a missing widget manager to render.
        assert site.WIDGET_VIEW_MIME not in text
    assert with_figures, "no page draws a plotly figure"
    assert (out / "_static" / "plotly.min.js").stat().st_size > 1_000_000
    # The calculators of 02 are frozen, with their note, not dropped.
    cost_page = (out / "02_cost_arithmetic.html").read_text(encoding="utf-8")
    assert cost_page.count("attn-course-static-note") >= 3


@pytest.mark.slow
def test_site_has_no_unexpected_errors_and_no_local_paths(
    built_site: tuple[Path, list[Page]],
) -> None:
    out, _ = built_site
    for page, parser in parse_site(out).items():
        assert parser.unexpected_errors == 0, f"{page.name} shows an error output"
        text = page.read_text(encoding="utf-8")
        for path in {str(COURSE_ROOT), str(out), os.path.expanduser("~") + "/"}:
            assert path not in text, f"{page.name} contains the local path {path}"


def test_the_build_talks_to_its_kernels_over_private_sockets(tmp_path, capfd):
    # TCP ports on localhost are open to every local user, and each kernel says so in a
    # warning the build printed once per notebook; IPC sockets live in a private folder.
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")])
    asyncio.run(site.execute_notebook(nb, tmp_path, "small", timeout=120))
    assert nb.cells[0].outputs[0]["text"] == "42\n"
    assert "without encryption" not in capfd.readouterr().err

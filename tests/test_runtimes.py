"""Every place that states a run time quotes attn_course.runtimes, so they agree.

The lesson headers, their "# Run time" cell comments, notebook 01's prose about its long
cell and the instructor guide's table are checked against the sentences the module
builds (whitespace aside: Markdown wraps lines).
"""

from __future__ import annotations

import re

import nbformat
import pytest

from attn_course.course import COURSE_ROOT, lesson_paths
from attn_course.runtimes import (
    RUN_TIMES,
    SHARED_SLOWDOWN,
    cell_duration,
    cell_run_time,
    format_duration,
    header_run_time,
    run_time_table,
    size_knob,
)

ROOT = COURSE_ROOT
LESSONS = lesson_paths("notebooks")


def flat(text: str) -> str:
    return " ".join(text.split())


def test_every_lesson_has_a_run_time_and_no_other():
    assert [p.stem for p in LESSONS] == list(RUN_TIMES)


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_header_states_the_recorded_range_and_the_size_knob(path):
    nb = nbformat.read(path, as_version=4)
    first = flat(next(c.source for c in nb.cells if c.cell_type == "markdown"))
    assert flat(header_run_time(path.stem)) in first
    if path.stem != "00_start_here":  # the map explains the knob in its own section
        assert flat(size_knob(path.stem)) in first
        assert "ATTN_COURSE_SIZE" in first


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_timed_cells_quote_their_recorded_time(path):
    nb = nbformat.read(path, as_version=4)
    comments = [
        line
        for cell in nb.cells
        if cell.cell_type == "code"
        for line in cell.source.splitlines()
        if re.match(r"#\s*Run time", line)
    ]
    expected = [cell_run_time(path.stem, i) for i in range(len(RUN_TIMES[path.stem].cells_s))]
    assert comments == expected


def test_notebook_01_prose_quotes_its_long_cell():
    nb = nbformat.read(ROOT / "notebooks" / "01_score_matrix.ipynb", as_version=4)
    prose = flat("\n".join(c.source for c in nb.cells if c.cell_type == "markdown"))
    assert flat(cell_duration("01_score_matrix")) in prose
    assert "about a minute" not in prose


def test_instructor_guide_has_the_table():
    guide = (ROOT / "docs" / "instructors.md").read_text(encoding="utf-8")
    assert run_time_table() in guide


def test_ranges_and_formatting():
    assert format_duration(5) == "5 s" and format_duration(37) == "35 s"
    assert format_duration(80) == "80 s" and format_duration(148) == "2.5 min"
    assert format_duration(320) == "5.5 min"
    rt = RUN_TIMES["07_kv_cache"]
    assert f"{format_duration(rt.idle_s)}–{format_duration(SHARED_SLOWDOWN * rt.idle_s)}" in (
        header_run_time("07_kv_cache")
    )
    with pytest.raises(ValueError):
        header_run_time("99_nothing")
    with pytest.raises(ValueError):
        cell_run_time("00_start_here", 0)
    with pytest.raises(ValueError):
        format_duration(-1)

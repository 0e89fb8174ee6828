"""The course as a whole: every lesson opens and closes the same way, and links work.

Each lesson notebook opens with its learning goals, its prerequisites and its
run time on CPU and GPU, and ends with a summary and a link to the next lesson.
Every relative link in every notebook (lessons, solutions, exercises) points to
a file that exists, so cross-links work when clicked in JupyterLab.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from attn_course.classroom.release import local_links
from attn_course.course import COURSE_ROOT, lesson_paths

ROOT = COURSE_ROOT
LESSONS = lesson_paths("notebooks")
ALL_NOTEBOOKS = [
    path for folder in ("notebooks", "solutions", "exercises") for path in lesson_paths(folder)
]


def markdown_cells(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return [cell.source for cell in nb.cells if cell.cell_type == "markdown"]


def test_the_course_starts_at_00_and_has_lessons_in_order():
    stems = [p.stem for p in LESSONS]
    assert stems[0] == "00_start_here"
    numbers = [int(stem[:2]) for stem in stems]
    assert numbers == list(range(len(stems))), "number lessons 00, 01, 02, ... without gaps"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_lesson_opens_with_goals_prerequisites_and_run_times(path):
    first = markdown_cells(path)[0]
    assert first.startswith(f"# {path.stem[:2]} · "), "the title starts with the lesson's number"
    for heading in ("**You will be able to**", "**Prerequisites:**", "**Run time"):
        assert heading in first, f"the first cell has no {heading}"
    run_time = first[first.index("**Run time") :]
    assert "CPU" in run_time and "GPU" in run_time, "state the run time on CPU and on GPU"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_lesson_ends_with_a_summary_and_the_next_step(path):
    last = markdown_cells(path)[-1]
    assert re.search(r"^## .*Summary", last, re.MULTILINE), "the last cell has no Summary"
    assert "**Next:**" in last
    index = LESSONS.index(path)
    if index + 1 < len(LESSONS):
        assert LESSONS[index + 1].name in local_links(last), "link the next lesson"
    else:
        assert LESSONS[0].name in local_links(last), "the last lesson links back to the map"


@pytest.mark.parametrize("path", LESSONS[1:], ids=lambda p: p.stem)
def test_lesson_links_its_exercises(path):
    links = local_links("\n".join(markdown_cells(path)))
    assert f"../exercises/{path.name}" in links


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_local_link_resolves(path):
    for text in markdown_cells(path):
        for target in local_links(text):
            file_part = target.split("#", 1)[0]
            assert (path.parent / file_part).exists(), f"{target} does not exist"


def test_the_map_in_00_links_every_lesson_and_exercise():
    links = set(local_links("\n".join(markdown_cells(LESSONS[0]))))
    for lesson in LESSONS[1:]:
        assert lesson.name in links
        assert f"../exercises/{lesson.name}" in links


def test_link_finder_finds_only_local_links():
    text = "[a](01_x.ipynb) ![img](p.png) [b](https://x.org) [c](#top) [d](../e/02.ipynb#s)"
    assert local_links(text) == ["01_x.ipynb", "../e/02.ipynb#s"]


# --- the commands the documents give -----------------------------------------------------

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def make_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][\w-]*):", makefile, re.MULTILINE))


PROGRAMS_OFF_PATH = r"(?:jupyter lab|attn-grade|attn-gradebook)"
ENV_PREFIX = r"(?:[A-Z_]+=\S+ )*"


def commands_not_working(text: str) -> list[str]:
    """The commands in ``text`` that do not work as written in the course folder."""
    given = re.findall(rf"(?:`|^|\$ ){ENV_PREFIX}make ([a-z][\w-]*)", text, re.MULTILINE)
    problems = [f"make {target}" for target in sorted(set(given) - make_targets())]
    # jupyter and the course's scripts are in .venv/bin, not on PATH: `make lab`,
    # `python -m ...` or `.venv/bin/...` work as written, a bare name does not.
    in_text = rf"`{ENV_PREFIX}({PROGRAMS_OFF_PATH} [^`\n]*)`"
    in_block = rf"^(?:\$ )?{ENV_PREFIX}({PROGRAMS_OFF_PATH}\b.*)$"
    bare = f"{in_text}|{in_block}"
    problems += ["".join(found) for found in re.findall(bare, text, re.MULTILINE)]
    return problems


@pytest.mark.parametrize(
    "text",
    [
        "```bash\nATTN_COURSE_SIZE=small jupyter lab   # quick pass\n```",
        "run `attn-grade exercises/01_score_matrix.ipynb` yourself",
        "then `make grades SUBMISSIONS=x`",
    ],
)
def test_a_command_that_does_not_work_is_caught(text):
    assert commands_not_working(text)


@pytest.mark.parametrize("path", DOCUMENTS + LESSONS, ids=lambda p: p.name)
def test_every_command_a_document_gives_works_as_written(path):
    problems = commands_not_working(path.read_text(encoding="utf-8"))
    assert not problems, f"{path.name} gives commands that do not work as written: {problems}"

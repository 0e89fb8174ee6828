"""The course map (attn_course/course.py) is the one source of lesson metadata.

The files of the course, the checks registry, the README's and notebook 00's tables and
every lesson's heading and "Next" link are checked against the map; and a throwaway lesson
added to a copy of the course (tests/fixtures/new_lesson/) shows that a new lesson needs
its own files and one map entry, and no edit anywhere else.
"""

from __future__ import annotations

import dataclasses
import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from attn_course import checks, course
from attn_course.checks import all_exercises
from attn_course.classroom.build import build
from attn_course.classroom.lab import prepare_workspace
from attn_course.classroom.release import local_links, make_release
from attn_course.classroom.site import course_pages
from attn_course.course import (
    COURSE_ROOT,
    LESSONS,
    Lesson,
    RunTime,
    course_map_table,
    get_lesson,
    lesson_files,
    lesson_stem,
    link_to,
    next_lesson,
    parse_stem,
    readme_table,
)
from attn_course.runtimes import run_time_table
from conftest import notebook_marker

NEW_LESSON = Path(__file__).resolve().parent / "fixtures" / "new_lesson"


def markdown_cells(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return [cell.source for cell in nb.cells if cell.cell_type == "markdown"]


# --- the naming rule ---------------------------------------------------------------------


def test_the_naming_rule_parses_and_formats_a_stem():
    assert parse_stem("03_tiling") == (3, "tiling")
    assert parse_stem("07_kv_cache") == (7, "kv_cache")
    assert lesson_stem(3, "tiling") == "03_tiling"
    for not_a_lesson in ("3_tiling", "03-tiling", "03_", "tiling", "03_tiling (1)", "003_x"):
        assert parse_stem(not_a_lesson) is None, not_a_lesson
    for number, topic in ((100, "x"), (-1, "x"), (3, "two words"), (3, "")):
        with pytest.raises(ValueError, match="numbered 00-99"):
            lesson_stem(number, topic)
    with pytest.raises(ValueError, match="NN_topic"):
        Lesson("tiling", "T", "", "", (), None, RunTime(1, "", "", None))


def test_lesson_files_finds_only_lessons(tmp_path):
    for name in ("01_a.ipynb", "02_b.ipynb", "02_b.py", "scratch.ipynb", "3_c.ipynb"):
        (tmp_path / name).write_text("")
    (tmp_path / "04_folder.ipynb").mkdir()
    assert [p.name for p in lesson_files(tmp_path)] == ["01_a.ipynb", "02_b.ipynb"]
    assert [p.name for p in lesson_files(tmp_path, ".py")] == ["02_b.py"]


# --- the map and the course agree ----------------------------------------------------------


def test_lessons_are_numbered_in_order_from_00():
    assert [lesson.number for lesson in LESSONS] == list(range(len(LESSONS)))
    assert LESSONS[0].slug == "00_start_here" and not LESSONS[0].has_exercises
    with pytest.raises(ValueError, match="known"):
        get_lesson("99_nothing")


@pytest.mark.parametrize(
    ("folder", "suffix"),
    [("notebooks", ".py"), ("notebooks", ".ipynb"), ("solutions", ".py"),
     ("solutions", ".ipynb"), ("exercises", ".ipynb")],
)  # fmt: skip
def test_the_course_has_the_files_of_the_map_and_no_others(folder, suffix):
    on_disk = [p.name[: -len(suffix)] for p in lesson_files(COURSE_ROOT / folder, suffix)]
    chosen = LESSONS if folder == "notebooks" else [x for x in LESSONS if x.has_exercises]
    assert on_disk == [lesson.slug for lesson in chosen]


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda x: x.slug)
def test_modules_and_kernels_of_the_map_exist(lesson):
    for path in lesson.module_files():
        assert (COURSE_ROOT / path).is_file(), f"{lesson.slug}: no {path}"
    if lesson.kernel:
        assert lesson.kernel.startswith("kernels."), "kernels live in attn_course/kernels/"


def test_the_checks_of_every_lesson_are_those_of_the_map():
    by_notebook = {e.notebook for e in all_exercises()}
    assert by_notebook == {lesson.slug for lesson in LESSONS if lesson.has_exercises}
    on_disk = {
        f"attn_course.checks.{p.stem}"
        for p in (COURSE_ROOT / "attn_course" / "checks").glob("*.py")
        if not p.stem.startswith("_")
    }
    assert on_disk == {lesson.checks for lesson in LESSONS if lesson.checks}
    for lesson in LESSONS:
        if lesson.checks:
            module = importlib.import_module(lesson.checks)
            assert module.NOTEBOOK == lesson.slug, f"{lesson.checks} registers another notebook"


def test_the_bench_suites_of_the_map_are_those_of_the_command():
    usage = subprocess.run(
        [sys.executable, "-m", "attn_course.bench", "--help"],
        capture_output=True, text=True, check=True, cwd=COURSE_ROOT,
    ).stdout  # fmt: skip
    suites = {lesson.bench for lesson in LESSONS if lesson.bench}
    assert "{" + ",".join(sorted(suites)) + "}" in usage


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda x: x.slug)
def test_the_heading_and_the_next_link_of_each_lesson_follow_the_map(lesson):
    cells = markdown_cells(COURSE_ROOT / "notebooks" / f"{lesson.slug}.ipynb")
    assert cells[0].startswith(f"# {lesson.label}"), f"the heading is not # {lesson.label}"
    last = cells[-1]
    next_step = last[last.index("**Next:**") :]
    after = next_lesson(lesson)
    if after is not None:
        assert link_to(after) in next_step, f"the Next link must be {link_to(after)}"
    else:
        assert f"{LESSONS[0].slug}.ipynb" in local_links(next_step), "link back to the map"


def test_readme_and_notebook_00_show_the_tables_of_the_map():
    readme = (COURSE_ROOT / "README.md").read_text(encoding="utf-8")
    assert readme_table() in readme, "paste the table of `python -m attn_course.course`"
    start_here = "\n".join(markdown_cells(COURSE_ROOT / "notebooks" / "00_start_here.ipynb"))
    assert course_map_table() in start_here, "paste the map of `python -m attn_course.course`"
    guide = (COURSE_ROOT / "docs" / "instructors.md").read_text(encoding="utf-8")
    assert run_time_table() in guide


def test_the_tables_change_when_the_map_does(monkeypatch):
    changed = (*LESSONS[:2], dataclasses.replace(LESSONS[2], title="Moved"))
    monkeypatch.setattr(course, "LESSONS", changed)
    assert "| [Moved](02_cost_arithmetic.ipynb) |" in course_map_table()
    assert course_map_table() not in "\n".join(
        markdown_cells(COURSE_ROOT / "notebooks" / "00_start_here.ipynb")
    )
    assert "| 02 Moved |" in run_time_table()


# --- adding a lesson -------------------------------------------------------------------------

THROWAWAY = Lesson(
    "99_throwaway",
    "A throwaway lesson",
    learn="nothing",
    does="nothing, in a test",
    modules=(),
    checks="throwaway_checks",
    run_time=RunTime(1, "", "—", None),
)


@pytest.fixture
def new_course(tmp_path, monkeypatch):
    """A copy of the new lesson's files as a course folder, and its checks importable."""
    root = tmp_path / "course"
    shutil.copytree(NEW_LESSON, root, ignore=shutil.ignore_patterns("*checks.py", "__py*"))
    all_exercises()  # the course's own checks go into the real registry first
    monkeypatch.setattr(checks, "_REGISTRY", dict(checks._REGISTRY))
    monkeypatch.syspath_prepend(str(NEW_LESSON))
    yield root
    sys.modules.pop("throwaway_checks", None)


def test_a_new_lesson_is_its_files_and_one_entry_in_the_map(new_course, tmp_path, monkeypatch):
    _, problems = build(new_course, check_only=True)
    assert any("no exercise with this id is registered" in p for p in problems), (
        "without its map entry, the lesson's checks are unknown"
    )

    monkeypatch.setattr(course, "LESSONS", (*LESSONS, THROWAWAY))
    written, problems = build(new_course)
    assert problems == []
    built = {str(p.relative_to(new_course)) for p in written}
    assert built == {f"{folder}/99_throwaway.ipynb" for folder in ("notebooks", "solutions",
                                                                    "exercises")}  # fmt: skip

    release = tmp_path / "release"
    assert make_release(release, new_course) == []
    assert (release / "exercises" / "99_throwaway.ipynb").is_file()
    assert not (release / "solutions").exists()

    pages = course_pages(new_course)
    assert [(str(p.source), p.title) for p in pages] == [
        ("notebooks/99_throwaway.ipynb", "99 · A throwaway lesson"),
        ("exercises/99_throwaway.ipynb", "99 · A throwaway lesson: exercises"),
    ]
    copied = prepare_workspace(tmp_path / "work", new_course).copied
    assert sorted(copied) == ["exercises/99_throwaway.ipynb", "notebooks/99_throwaway.ipynb"]
    assert notebook_marker(new_course / "exercises" / "99_throwaway.ipynb") == "nb99"

    # The tables and the previous lesson's Next link now name it.
    assert "| 99 | [A throwaway lesson](99_throwaway.ipynb) |" in course_map_table()
    assert "| 99 | `notebooks/99_throwaway.ipynb` |" in readme_table()
    assert "| 99 A throwaway lesson |" in run_time_table()
    assert next_lesson(LESSONS[-1]) == THROWAWAY

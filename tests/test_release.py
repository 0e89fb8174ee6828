"""The student release: ``python -m attn_course.classroom.release --out DIR`` builds and
verifies it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from attn_course.classroom.release import (
    STUDENT_README,
    WITHHELD,
    broken_links,
    main,
    make_release,
    verify_release,
)
from attn_course.course import COURSE_ROOT, lesson_paths

ROOT = COURSE_ROOT


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A release of this course (the build it runs first finds nothing to rewrite)."""
    out = tmp_path_factory.mktemp("release") / "course"
    assert make_release(out, ROOT) == []
    return out


def test_release_has_the_student_files_and_no_solutions(release):
    for name in ("README.md", "pyproject.toml", "Makefile", "attn_course/grade.py"):
        assert (release / name).is_file(), name
    lessons = sorted(p.name for p in (release / "notebooks").iterdir())
    assert lessons == [p.name for p in lesson_paths("notebooks")]
    exercises = sorted(p.name for p in (release / "exercises").glob("*.ipynb"))
    assert exercises == sorted(p.name for p in (ROOT / "solutions").glob("*.ipynb"))
    for name in WITHHELD:
        assert not (release / name).exists()
    assert not list(release.rglob("__pycache__"))


def test_students_get_their_own_readme_and_every_link_works(release):
    readme = (release / "README.md").read_text()
    assert readme == (ROOT / STUDENT_README).read_text()
    for withheld in ("solutions/", "tests/", "make test", "docs/"):
        assert withheld not in readme, f"the student README mentions {withheld}"
    for command in ("make lab", "make check", "ATTN_COURSE_SIZE=small make lab", "workspace/"):
        assert command in readme
    assert broken_links(release) == []


def test_a_link_out_of_the_release_is_caught(release, tmp_path):
    copy = shutil.copytree(release, tmp_path / "copy")
    with (copy / "README.md").open("a") as readme:
        readme.write("\n[the guide](docs/instructors.md), [answers](../solutions/x.ipynb)\n")
    path = copy / "notebooks" / "00_start_here.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].source += "\n[worked answers](../solutions/01_score_matrix.ipynb#Part-1)"
    nbformat.write(nb, path)
    assert broken_links(copy) == [
        "README.md: link to docs/instructors.md leads nowhere",
        "README.md: link to ../solutions/x.ipynb leads nowhere",
        "notebooks/00_start_here.ipynb: link to ../solutions/01_score_matrix.ipynb#Part-1 "
        "leads nowhere",
    ]
    assert "README.md: link to docs/instructors.md leads nowhere" in verify_release(copy, ROOT)


def test_the_developer_commands_say_what_a_release_is(release):
    # The release's `make test` needs the test suite it does not have: a clear message,
    # not a stack of pytest errors. (-o: the environment counts as installed.)
    venv = Path(sys.prefix)
    result = subprocess.run(
        ["make", "-s", "-o", f"{venv}/.installed", f"VENV={venv}", "test"],
        cwd=release, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "this is a student release: use make lab / make check" in result.stdout


def test_a_leaked_solution_is_caught(release, tmp_path):
    copy = shutil.copytree(release, tmp_path / "copy")
    path = copy / "exercises" / "01_score_matrix.ipynb"
    nb = nbformat.read(path, as_version=4)
    solution = nbformat.read(ROOT / "solutions" / path.name, as_version=4)
    source = next(c.source for c in solution.cells if "### BEGIN SOLUTION" in c.source)
    stub = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution"))
    stub.source = source
    nbformat.write(nb, path)
    problems = verify_release(copy, ROOT)
    assert any("01_score_matrix.ipynb: solution line leaked" in p for p in problems), problems
    assert any("is not a stub raising NotImplementedError" in p for p in problems), problems


def test_a_missing_check_cell_and_solutions_folder_are_caught(release, tmp_path):
    copy = shutil.copytree(release, tmp_path / "copy")
    (copy / "solutions").mkdir()
    path = copy / "exercises" / "02_cost_arithmetic.ipynb"
    nb = nbformat.read(path, as_version=4)
    check_cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade"))
    nb.cells.remove(check_cell)
    nbformat.write(nb, path)
    problems = verify_release(copy, ROOT)
    assert "solutions/ must not be in a release" in problems
    assert any(p.startswith("02_cost_arithmetic.ipynb: exercise") and "is not followed by check("
               in p for p in problems), problems  # fmt: skip


def test_outputs_in_an_exercise_are_caught(release, tmp_path):
    copy = shutil.copytree(release, tmp_path / "copy")
    path = copy / "exercises" / "03_tiling.ipynb"
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code")
    cell.outputs = [nbformat.v4.new_output("stream", text="the answer is 42\n")]
    nbformat.write(nb, path)
    assert any("03_tiling.ipynb: cell 1 has outputs" in p for p in verify_release(copy, ROOT))


def test_command_line(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "r")]) == 0
    assert "release ready in" in capsys.readouterr().out

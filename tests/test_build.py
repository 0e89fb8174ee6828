"""The notebook build: percent scripts -> .ipynb, solutions -> exercises, and the course's files.

The first half builds a throw-away course in tmp_path (a lesson script and the
fake solutions notebook of tests/fixtures/grading); the second half checks the
committed notebooks of the real course, generically, so that it covers
notebooks added later.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

from attn_course.classroom.build import (
    CODE_STUB,
    build,
    changes_by_hand,
    exercise_notebook,
    leaked_solution_lines,
    main,
    normalise,
    notebook_text,
    validate_exercise_notebook,
)
from attn_course.course import COURSE_ROOT, lesson_paths

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "grading"
sys.path.insert(0, str(FIXTURES))
import fake_course  # noqa: E402

ROOT = COURSE_ROOT
FOLDERS = ("notebooks", "solutions", "exercises")
COMMITTED = sorted(p for folder in FOLDERS for p in (ROOT / folder).glob("*.ipynb"))
LESSONS = lesson_paths("notebooks")
SOLUTIONS = lesson_paths("solutions")

LESSON_SCRIPT = """\
# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A lesson

# %%
x = 1

# %% tags=["raises-exception"]
1 / 0
"""


@pytest.fixture
def fake():
    with fake_course.fake_exercises():
        yield


@pytest.fixture
def course(tmp_path, fake):
    """A course checkout with one lesson script and one solutions script, not yet built."""
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_lesson.py").write_text(LESSON_SCRIPT)
    (tmp_path / "solutions").mkdir()
    shutil.copy(fake_course.SCRIPT, tmp_path / "solutions")
    return tmp_path


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


# --- building a course -------------------------------------------------------------------


def test_build_writes_every_notebook_once(course):
    stale, problems = build(course)
    built = ["notebooks/01_lesson.ipynb", "solutions/99_fake_grading.ipynb"]
    assert sorted(str(p.relative_to(course)) for p in stale) == [
        "exercises/99_fake_grading.ipynb",
        *built,
    ]
    assert problems == []
    assert build(course) == ([], [])  # a second build changes nothing: deterministic


def test_built_notebooks_are_clean(course):
    build(course)
    lesson_path = course / "notebooks" / "01_lesson.ipynb"
    text = lesson_path.read_text()
    assert text.endswith("}\n") and not text.endswith("\n\n")
    lesson = read(lesson_path)
    assert lesson.metadata == {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    assert [c.cell_type for c in lesson.cells] == ["markdown", "code", "code"]
    for cell in lesson.cells[1:]:
        assert cell.outputs == [] and cell.execution_count is None
    assert lesson.cells[1].metadata == {}  # jupytext's lines_to_next_cell dropped
    assert lesson.cells[2].metadata == {"tags": ["raises-exception"]}


def test_exercise_notebook_clears_solutions_and_locks_checks(course):
    build(course)
    solution = read(course / "solutions" / "99_fake_grading.ipynb")
    exercise = read(course / "exercises" / "99_fake_grading.ipynb")
    # Cell ids hash the cell's content: shared cells keep theirs, cleared cells get new ones.
    pairs = list(zip(solution.cells, exercise.cells, strict=True))
    assert [s.id == e.id for s, e in pairs] == [s.source == e.source for s, e in pairs]

    square = fake_course.cell_of(exercise, "fake_square")
    assert square.source == (
        'def square(x):\n    """x squared."""\n'
        + "\n".join("    " + line for line in CODE_STUB.splitlines())
    )
    assert "NotImplementedError()" in CODE_STUB and "YOUR CODE HERE" in CODE_STUB
    solution_square = fake_course.cell_of(solution, "fake_square")
    assert square.metadata["nbgrader"] == solution_square.metadata["nbgrader"]
    check_cell = fake_course.cell_of(exercise, "fake_square_check")
    assert check_cell.source == 'check("fake_square", square)'
    assert check_cell.metadata["editable"] is False and check_cell.metadata["deletable"] is False
    assert check_cell.metadata["nbgrader"]["points"] == 2


def test_check_mode_reports_without_writing(course, capsys):
    assert main(["--root", str(course)]) == 0
    script = course / "solutions" / "99_fake_grading.py"
    script.write_text(script.read_text().replace("return x * x", "return x**2"))
    before = (course / "solutions" / "99_fake_grading.ipynb").read_text()

    assert main(["--root", str(course), "--check"]) == 1
    out = capsys.readouterr().out
    assert "out of date: solutions/99_fake_grading.ipynb" in out
    assert "out of date: exercises/99_fake_grading.ipynb" not in out  # the stub is unchanged
    assert (course / "solutions" / "99_fake_grading.ipynb").read_text() == before

    assert main(["--root", str(course)]) == 0
    assert main(["--root", str(course), "--check"]) == 0
    assert "all notebooks up to date" in capsys.readouterr().out


def test_a_notebook_without_source_is_a_problem(course, capsys):
    build(course)
    (course / "exercises" / "05_gone.ipynb").write_text("{}")
    assert build(course, check_only=True) == (
        [],
        ["exercises/05_gone.ipynb: no source script builds it"],
    )
    assert main(["--root", str(course), "--check"]) == 1


# --- a learner's work is never overwritten ------------------------------------------------


def answer_in_jupyterlab(path: Path) -> None:
    """What a learner does to an exercise notebook: write an answer, run it, save."""
    nb = read(path)
    cell = fake_course.cell_of(nb, "fake_square")
    cell.source = 'def square(x):\n    """x squared."""\n    return x * x'
    cell.outputs, cell.execution_count = [], 3
    nbformat.write(nb, path)


def run_in_place(path: Path) -> None:
    nb = read(path)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    nbformat.write(nb, path)


def add_a_cell(path: Path) -> None:
    nb = read(path)
    nb.cells.append(nbformat.v4.new_code_cell("my_notes = 1"))
    nbformat.write(nb, path)


def change_the_stub(course: Path) -> None:
    """A course update that changes the exercise notebook (its first markdown cell)."""
    script = course / "solutions" / "99_fake_grading.py"
    text = script.read_text().replace("# %% [markdown]\n# ", "# %% [markdown]\n# New: ", 1)
    script.write_text(text)


@pytest.mark.parametrize("by_hand", [answer_in_jupyterlab, run_in_place, add_a_cell])
def test_build_refuses_to_overwrite_work_done_by_hand(course, capsys, by_hand):
    build(course)
    exercise = course / "exercises" / "99_fake_grading.ipynb"
    by_hand(exercise)
    worked = exercise.read_bytes()
    change_the_stub(course)

    assert main(["--root", str(course)]) == 1
    err = capsys.readouterr().err
    assert "exercises/99_fake_grading.ipynb: NOT overwritten" in err and "--force" in err
    assert exercise.read_bytes() == worked  # the learner's work is still there
    assert "New:" in read(course / "solutions" / "99_fake_grading.ipynb").cells[0].source

    assert main(["--root", str(course), "--force"]) == 0
    assert "New:" in read(exercise).cells[0].source


def test_a_notebook_only_saved_again_is_not_work(course):
    build(course)
    exercise = course / "exercises" / "99_fake_grading.ipynb"
    nbformat.write(read(exercise), exercise)  # JupyterLab reformats, changes nothing
    change_the_stub(course)
    written, problems = build(course)
    assert problems == [] and exercise in written
    assert changes_by_hand(exercise) == []


def test_changes_by_hand_says_what_changed(course, tmp_path):
    build(course)
    lesson = course / "notebooks" / "01_lesson.ipynb"
    assert changes_by_hand(lesson) == []
    run_in_place(lesson)
    assert changes_by_hand(lesson) == ["it has outputs (it was run)"]
    add_a_cell(lesson)
    assert changes_by_hand(lesson)[1] == "cell 4 edited or added"
    (tmp_path / "broken.ipynb").write_text("{not json")
    assert "not a notebook" in changes_by_hand(tmp_path / "broken.ipynb")[0]


def test_root_without_course_folders_is_a_usage_error(tmp_path, capsys):
    assert main(["--root", str(tmp_path)]) == 2
    assert "has no notebooks/ or solutions/ folder" in capsys.readouterr().err


def test_built_notebook_survives_a_jupytext_round_trip(course):
    build(course)
    path = course / "solutions" / "99_fake_grading.ipynb"
    again = jupytext.reads(jupytext.writes(read(path), fmt="py:percent"), fmt="py:percent")
    assert notebook_text(normalise(again)) == path.read_text()


# --- leaks and validation ------------------------------------------------------------------


def test_leaked_solution_lines():
    solution = fake_course.solution_notebook()
    exercise = exercise_notebook(solution)
    assert leaked_solution_lines(solution, exercise) == []
    fake_course.cell_of(exercise, "fake_total").source += "\n    return sum(xs)"
    assert leaked_solution_lines(solution, exercise) == ["return sum(xs)"]
    # A line that also appears outside the solution regions is no secret.
    solution.cells.append(nbformat.v4.new_code_cell("print(sum(xs))\nreturn sum(xs)"))
    assert leaked_solution_lines(solution, exercise) == []


def test_fake_solutions_notebook_is_valid(fake, tmp_path):
    assert validate_exercise_notebook(fake_course.SCRIPT) == []
    saved = fake_course.save(fake_course.solution_notebook(), tmp_path)
    assert validate_exercise_notebook(saved) == []


def problems_of(nb: nbformat.NotebookNode, folder: Path, name: str = fake_course.STEM) -> str:
    path = folder / f"{name}.ipynb"
    path.write_text(notebook_text(nb))
    return "\n".join(validate_exercise_notebook(path))


def test_validation_finds_broken_exercise_cells(fake, tmp_path):
    nb = fake_course.solution_notebook()
    fake_course.cell_of(nb, "fake_square").metadata["nbgrader"]["grade_id"] = "fake_sqaure"
    fake_course.cell_of(nb, "fake_greet_check").source = "check('fake_greet', greeting)"
    nb.cells.remove(fake_course.cell_of(nb, "fake_total_check"))
    fake_course.cell_of(nb, "fake_largest_check").metadata["nbgrader"]["points"] = 3
    found = problems_of(nb, tmp_path)
    assert "solution cell 'fake_sqaure': no exercise with this id is registered" in found
    assert "registered exercises without a solution cell: ['fake_square']" in found
    assert "check cell calls check('fake_greet', 'greeting'), expected" in found
    assert "'fake_total': the next code cell must be check('fake_total', ...)" in found
    assert "check cell is worth 3 points, the exercise 1" in found


def test_validation_finds_exercises_of_another_notebook(fake, tmp_path):
    found = problems_of(fake_course.solution_notebook(), tmp_path, name="98_elsewhere")
    assert "exercise is registered for notebook '99_fake_grading'" in found


# --- the course's committed notebooks ------------------------------------------------------


# The orientation notebook teaches no topic and has no exercises.
ORIENTATION = "00_start_here"


def test_the_course_has_lessons_with_solutions_and_exercises():
    assert LESSONS, "no notebooks/NN_*.ipynb found"
    assert (ROOT / "notebooks" / f"{ORIENTATION}.ipynb").is_file()
    for lesson in (p for p in LESSONS if p.stem != ORIENTATION):
        for folder in ("solutions", "exercises"):
            assert (ROOT / folder / lesson.name).is_file(), f"{folder}/{lesson.name} is missing"


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_committed_notebooks_have_no_outputs(path):
    for index, cell in enumerate(read(path).cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {index + 1} has outputs"
            assert cell.execution_count is None, f"cell {index + 1} has an execution count"


def test_committed_notebooks_are_up_to_date():
    stale, problems = build(ROOT, check_only=True)
    stale_names = [str(p.relative_to(ROOT)) for p in stale]
    assert stale_names == [], "run `python -m attn_course.classroom.build`"
    assert problems == []


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_no_solution_line_leaks_into_exercises(path):
    exercise = ROOT / "exercises" / path.name
    assert leaked_solution_lines(read(path), read(exercise)) == []


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_solutions_notebooks_are_valid_exercise_notebooks(path):
    assert validate_exercise_notebook(path) == []

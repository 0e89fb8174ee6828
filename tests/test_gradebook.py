"""Grading a whole class: ``attn-gradebook SUBMISSIONS --out RESULTS``.

The class is built from the fake course of tests/fixtures/grading (four exercises
worth 2 + 1 + 1 + 1 points): one student per kind of submission an instructor
meets (correct, wrong, untouched, crashing, looping, tampered, greedy for memory,
malformed), exported both ways an LMS does it (a folder per student, a file per
student). The test asserts the exact gradebook.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from pathlib import Path

import pytest

from attn_course.gradebook import (
    POINTS_POSSIBLE,
    Submission,
    find_submissions,
    main,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "grading"
sys.path.insert(0, str(FIXTURES))
import fake_course  # noqa: E402

STEM = fake_course.STEM
NOTEBOOKS = ["01_score_matrix", "02_cost_arithmetic", STEM]


# --- finding submissions (no kernels) -----------------------------------------------------


def touch(path: Path, text: str = "{}") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


LEE_ANN = "Lee Ann - 02_cost_arithmetic.ipynb"


def test_folders_and_files_per_student(tmp_path):
    touch(tmp_path / "alice" / "01_score_matrix.ipynb")
    touch(tmp_path / "alice" / "sub" / "Copy of 02-Cost-Arithmetic (2).ipynb")
    touch(tmp_path / "smith_4711_01_score_matrix.ipynb")
    touch(tmp_path / LEE_ANN)
    found, warnings = find_submissions(tmp_path, NOTEBOOKS)
    assert found == [
        Submission("alice", "01_score_matrix", tmp_path / "alice" / "01_score_matrix.ipynb"),
        Submission(
            "alice",
            "02_cost_arithmetic",
            tmp_path / "alice" / "sub" / "Copy of 02-Cost-Arithmetic (2).ipynb",
        ),
        Submission("Lee Ann", "02_cost_arithmetic", tmp_path / LEE_ANN),
        Submission("smith_4711", "01_score_matrix", tmp_path / "smith_4711_01_score_matrix.ipynb"),
    ]
    assert warnings == []


def test_unmatched_hidden_and_nameless_files(tmp_path):
    touch(tmp_path / "alice" / ".ipynb_checkpoints" / "01_score_matrix-checkpoint.ipynb")
    touch(tmp_path / "alice" / "scratch.ipynb")
    touch(tmp_path / "01_score_matrix.ipynb")
    touch(tmp_path / "bob" / "notes.txt")
    found, warnings = find_submissions(tmp_path, NOTEBOOKS)
    assert found == []
    assert warnings == [
        "01_score_matrix.ipynb: ignored, no student name in the file name",
        "alice/scratch.ipynb: ignored, its name names none of "
        "01_score_matrix, 02_cost_arithmetic, 99_fake_grading",
    ]


def test_a_resubmission_counts_the_newest_file(tmp_path):
    old = touch(tmp_path / "bob_01_score_matrix.ipynb")
    new = touch(tmp_path / "bob_01_score_matrix-1.ipynb")
    os.utime(old, (time.time() + 60, time.time() + 60))  # the plain name is the newer one
    [found], [warning] = find_submissions(tmp_path, NOTEBOOKS)
    assert found.path == old
    assert warning == (
        f"bob: two files for 01_score_matrix; graded the newer {old.name}, not {new.name}"
    )


def test_usage_errors_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main([str(tmp_path), "--notebook", "42_nothing"]) == 2
    assert "no exercises for 42_nothing; known: 01_score_matrix" in capsys.readouterr().err
    assert main([str(tmp_path)]) == 2
    assert "no submissions found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--memory-limit", "lots"])
    assert "must be a number of GiB >= 0" in capsys.readouterr().err


# --- a fake class, graded end to end -------------------------------------------------------


def wrong(nb):
    fake_course.cell_of(nb, "fake_square").source = "def square(x):\n    return x * 2"


def crashing(nb):
    # Kills the kernel in greet's cell: only greet is lost.
    fake_course.cell_of(nb, "fake_greet").source += "\n\nimport os\nos._exit(1)"
    fake_course.cell_of(nb, "fake_total").source = "def total(xs):\n    return 1 / 0"


def looping(nb):
    # An endless answer (stopped by the check's 1 s limit), an endless cell (stopped by
    # the 10 s cell limit), and an answer that swallows every interrupt (kernel restarted).
    fake_course.cell_of(nb, "fake_total").source = "def total(xs):\n    while True:\n        pass"
    fake_course.cell_of(nb, "fake_greet").source += "\n\nwhile True:\n    pass"
    fake_course.cell_of(nb, "fake_largest").source = fake_course.ignores_interrupts("largest", "xs")


def tampered(nb):
    # An untouched exercise whose check cells claim success or define the answers.
    fake_course.cell_of(nb, "fake_square_check").source = "print('✓ passed')"
    fake_course.cell_of(nb, "fake_greet_check").source = (
        "def greet(name):\n    return f'Hello, {name}!'\ncheck('fake_greet', greet)"
    )
    total_check = fake_course.cell_of(nb, "fake_total_check")
    total_check.metadata = {}
    total_check.source = "total = sum\ncheck('fake_total', total)"


def greedy(nb):
    fake_course.cell_of(nb, "fake_largest").source = (
        "def largest(xs):\n    return len(bytearray(8 * 2**30))"
    )


def write_class(folder: Path) -> None:
    """One student per kind of submission, half as folders and half as LMS-named files."""
    solved, untouched = fake_course.solution_notebook, fake_course.exercise_version
    fake_course.save(solved(), folder / "alice")
    for student, make, edit in [
        ("bob", solved, wrong),
        ("dave", solved, crashing),
        ("erin", solved, looping),
        ("frank", untouched, tampered),
        ("heidi", solved, greedy),
    ]:
        nb = make()
        edit(nb)
        fake_course.save(nb, folder / student)
    fake_course.save(untouched(), folder / "carol")
    # Exported as files by an LMS: "<student>_<ids>_<notebook>.ipynb".
    (folder / "carol" / f"{STEM}.ipynb").rename(folder / f"carol_1002_{STEM}.ipynb")
    (folder / "carol").rmdir()
    (folder / f"grace_1007_{STEM}.ipynb").write_text('{"cells": [oops')


EXPECTED_GRADEBOOK = [
    ["student", "fake_square", "fake_greet", "fake_total", "fake_largest", "total"],
    [POINTS_POSSIBLE, "2", "1", "1", "1", "5"],
    ["alice", "2", "1", "1", "1", "5"],
    ["bob", "0", "1", "1", "1", "3"],
    ["carol_1002", "0", "0", "0", "0", "0"],
    ["dave", "2", "0", "0", "1", "3"],
    ["erin", "2", "0", "0", "0", "2"],
    ["frank", "0", "0", "0", "0", "0"],
    ["grace_1007", "0", "0", "0", "0", "0"],
    ["heidi", "2", "1", "1", "0", "4"],
]


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """The fake class graded by the command line, two students at a time."""
    folder = tmp_path_factory.mktemp("submissions")
    out = tmp_path_factory.mktemp("results")
    with fake_course.fake_exercises():
        write_class(folder)
        args = [str(folder), "--out", str(out), "--timeout", "10", "--memory-limit", "3"]
        assert main([*args, "--jobs", "2", "--quiet"]) == 0
    return out


@pytest.mark.slow
def test_the_gradebook_is_exactly_right(graded_class):
    with (graded_class / "gradebook.csv").open(newline="") as stream:
        assert list(csv.reader(stream)) == EXPECTED_GRADEBOOK


@pytest.mark.slow
def test_feedback_says_what_happened(graded_class):
    feedback = {p.stem: p.read_text() for p in (graded_class / "feedback").glob("*.md")}
    assert sorted(feedback) == [row[0] for row in EXPECTED_GRADEBOOK[2:]]
    assert feedback["alice"].startswith("# Feedback for alice\n\n**Total: 5 / 5 points**\n")
    assert "- ✗ **Square a number** (`fake_square`): failed, 0 / 2\n" in feedback["bob"]
    assert "  - square(3): expected 9, got 6\n  - hint: multiply x by itself\n" in feedback["bob"]
    assert "crashed the kernel and was skipped" in feedback["dave"]
    assert "your code raised ZeroDivisionError: division by zero" in feedback["dave"]
    assert "ran past the 1 s time limit" in feedback["erin"]
    assert "ran past the 10 s time limit and was interrupted" in feedback["erin"]
    assert "the kernel hung while checking fake_largest" in feedback["erin"]
    assert feedback["frank"].count("not attempted, 0 /") == 4
    assert "not a notebook Jupyter can read (NotJSONError" in feedback["grace_1007"]
    assert "your code raised MemoryError" in feedback["heidi"]


@pytest.mark.slow
def test_json_holds_every_result(graded_class):
    records = json.loads((graded_class / "gradebook.json").read_text())
    assert [r["student"] for r in records] == [row[0] for row in EXPECTED_GRADEBOOK[2:]]
    assert [r["points"] for r in records] == [float(row[-1]) for row in EXPECTED_GRADEBOOK[2:]]
    alice = records[0]["notebooks"][0]
    assert [r["status"] for r in alice["results"]] == ["passed"] * 4

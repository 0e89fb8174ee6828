"""Grading a whole class: ``attn-gradebook SUBMISSIONS --out RESULTS``.

The class is built from the fake course of tests/fixtures/grading (four exercises
worth 2 + 1 + 1 + 1 points): one student per kind of submission an instructor
meets (correct, wrong, untouched, crashing, looping, tampered, greedy for memory,
malformed), exported both ways an LMS does it (a folder per student, a file per
student). The test asserts the exact gradebook.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from attn_course.checks import scores as checks_scores
from attn_course.classroom.gradebook import (
    POINTS_POSSIBLE,
    Submission,
    find_submissions,
    main,
    shorten,
)
from attn_course.grading import sandbox
from attn_course.grading.intake import course_notebook_in

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "grading"
sys.path.insert(0, str(FIXTURES))
import fake_course  # noqa: E402
import hostile  # noqa: E402
from load import cpu_hog  # noqa: E402

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


@pytest.mark.parametrize(
    ("file_name", "notebook", "student"),
    [
        ("01_score_matrix", "01_score_matrix", ""),
        ("Copy of 01-score-matrix (2)", "01_score_matrix", ""),
        ("Copy (3) of 01 Score Matrix", "01_score_matrix", ""),
        ("01-Score-Matrix(1)", "01_score_matrix", ""),
        ("01_score_matrix 2", "01_score_matrix", ""),
        ("smith_4711_01_score_matrix", "01_score_matrix", "smith_4711"),
        ("alice01_score_matrix", "01_score_matrix", "alice"),
        ("01_score_matrix_alice", "01_score_matrix", "alice"),
        ("01 score matrix - Alice Wu", "01_score_matrix", "Alice Wu"),
        ("Lee Ann - 02_cost_arithmetic", "02_cost_arithmetic", "Lee Ann"),
        ("Carol Jo_123_assignsubmission_file_01_score_matrix", "01_score_matrix", "Carol Jo_123"),
        ("jonesdave_12345_678901_01_score_matrix", "01_score_matrix", "jonesdave_12345"),
        ("jonesdave_LATE_123_678_02_Cost_Arithmetic-1", "02_cost_arithmetic", "jonesdave_123"),
        ("Copy of smith_4711_01_score_matrix (2)", "01_score_matrix", "smith_4711"),
        ("scratch", None, None),
        ("01_score", None, None),
    ],
)
def test_names_students_and_systems_give_files(file_name, notebook, student):
    found = course_notebook_in(file_name, NOTEBOOKS)
    assert found == (None if notebook is None else (notebook, student))


def test_a_canvas_student_is_one_student_across_notebooks(tmp_path):
    touch(tmp_path / "jonesdave_12345_678901_01_score_matrix.ipynb")
    touch(tmp_path / "jonesdave_LATE_12345_678902_02_cost_arithmetic.ipynb")
    found, warnings = find_submissions(tmp_path, NOTEBOOKS)
    assert [(s.student, s.notebook) for s in found] == [
        ("jonesdave_12345", "01_score_matrix"),
        ("jonesdave_12345", "02_cost_arithmetic"),
    ]
    assert warnings == []


def test_a_long_message_is_cut_at_a_word_and_says_so():
    assert shorten("short message") == "short message"
    message = "error: " + " ".join(f"word{i}" for i in range(400))
    cut = shorten(message, 200)
    assert len(cut) <= 200 and cut.startswith("error: word0 word1")
    kept = cut.split(" … [")[0]
    assert message.startswith(kept + " ")  # whole words only
    assert cut.endswith(f"[{len(message) - len(kept)} more characters]")


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


# How students and learning-management systems really name a notebook they hand in
# (the course notebook is STEM = 99_fake_grading), and the student the gradebook names.
REAL_NAMES = {
    # a Drive/Colab copy, downloaded twice
    "bob": ("bob/Copy of 99-Fake-Grading (2).ipynb", "bob"),
    # the name glued to the notebook's, or after it
    "dave": ("dave99_fake_grading.ipynb", "dave"),
    "frank": ("99_FAKE_GRADING_frank.ipynb", "frank"),
    # Moodle; Canvas, handed in late
    "erin": ("Erin Ng_31415_assignsubmission_file_99 Fake Grading.ipynb", "Erin Ng_31415"),
    "heidi": ("heidi_LATE_1008_55501_99_fake_grading-1.ipynb", "heidi_1008"),
}
GRADEBOOK_NAME = {student: name for student, (_, name) in REAL_NAMES.items()}


def write_fake_class(folder: Path) -> None:
    """One student per kind of submission, named the ways students and LMSs name files."""
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
        saved = fake_course.save(nb, folder / f"_{student}")
        target = folder / REAL_NAMES[student][0]
        target.parent.mkdir(parents=True, exist_ok=True)
        saved.rename(target)
        (folder / f"_{student}").rmdir()
    fake_course.save(untouched(), folder / "carol")
    # Exported as files by an LMS: "<student>_<ids>_<notebook>.ipynb".
    (folder / "carol" / f"{STEM}.ipynb").rename(folder / f"carol_1002_{STEM}.ipynb")
    (folder / "carol").rmdir()
    (folder / f"grace_1007_{STEM}.ipynb").write_text('{"cells": [oops')


HYPERLINK = '=HYPERLINK("evil.example","click")'


def write_hostile_class(folder: Path, targets: hostile.Targets) -> None:
    """Students out to cheat, to break the grader, or to harm a classmate; and odd names."""
    solved, untouched = fake_course.solution_notebook, fake_course.exercise_version
    for student, make, edit in [
        ("mallory", untouched, hostile.patch_the_grader),
        ("oscar", solved, hostile.exit_and_flood),
        ("forker", solved, hostile.fork_and_write(targets)),
        ("reader", solved, hostile.read_the_solutions(targets)),
        ("aaron", untouched, hostile.copy_a_classmate(targets)),
        ("bigcells", solved, hostile.ten_thousand_cells),
    ]:
        nb = make()
        edit(nb)
        fake_course.save(nb, folder / student)
    for student in ("zoe", "Zoë O'Brien", "-h", "--timeout=1", HYPERLINK):
        fake_course.save(solved(), folder / student)
    fake_course.save(untouched(), folder / "x..y")
    (folder / "nina").mkdir()
    (folder / "nina" / f"{STEM}.ipynb").write_text("print('this is not a notebook')\n")
    for student, target in (("lena", "/etc/passwd"), ("zed", "/dev/zero")):
        (folder / student).mkdir()
        (folder / student / f"{STEM}.ipynb").symlink_to(target)
    (folder / "fifi").mkdir()
    os.mkfifo(folder / "fifi" / f"{STEM}.ipynb")


EXPECTED_GRADEBOOK = [
    ["student", "fake_square", "fake_greet", "fake_total", "fake_largest", "total"],
    [POINTS_POSSIBLE, "2", "1", "1", "1", "5"],
    ["'--timeout=1", "2", "1", "1", "1", "5"],
    ["'-h", "2", "1", "1", "1", "5"],
    ["'" + HYPERLINK, "2", "1", "1", "1", "5"],
    ["aaron", "0", "0", "0", "0", "0"],
    ["alice", "2", "1", "1", "1", "5"],
    ["bigcells", "0", "0", "0", "0", "0"],
    ["bob", "0", "1", "1", "1", "3"],
    ["carol_1002", "0", "0", "0", "0", "0"],
    ["dave", "2", "0", "0", "1", "3"],
    ["Erin Ng_31415", "2", "0", "0", "0", "2"],
    ["fifi", "0", "0", "0", "0", "0"],
    ["forker", "2", "1", "1", "1", "5"],
    ["frank", "0", "0", "0", "0", "0"],
    ["grace_1007", "0", "0", "0", "0", "0"],
    ["heidi_1008", "2", "1", "1", "0", "4"],
    ["lena", "0", "0", "0", "0", "0"],
    ["mallory", "0", "0", "0", "0", "0"],
    ["nina", "0", "0", "0", "0", "0"],
    ["oscar", "2", "1", "1", "1", "5"],
    ["reader", "2", "0", "1", "1", "4"],
    ["x..y", "0", "0", "0", "0", "0"],
    ["zed", "0", "0", "0", "0", "0"],
    ["zoe", "2", "1", "1", "1", "5"],
    ["Zoë O'Brien", "2", "1", "1", "1", "5"],
]
STUDENTS = [row[0].removeprefix("'") for row in EXPECTED_GRADEBOOK[2:]]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def hostile_processes() -> list[int]:
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            command_line = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if hostile.MARKER.encode() in command_line:
            found.append(int(entry))
    return found


@dataclass
class GradedClass:
    out: Path
    targets: hostile.Targets
    digests: dict[Path, str]

    def feedback(self) -> dict[str, str]:
        """Each student's feedback file, by student name (as gradebook.json links them)."""
        records = json.loads((self.out / "gradebook.json").read_text())
        return {r["student"]: (self.out / r["feedback"]).read_text() for r in records}


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """The fake and the hostile class graded by the command line, two students at a time,
    while two CPU hogs keep both cores busy: CPU-time limits make the result the same."""
    if sandbox.landlock_abi() < 6:
        # The hostile class kills every process it can reach and writes where it should
        # not: never run it without the sandbox's signal and file scoping.
        pytest.fail("needs Landlock ABI 6 (Linux 6.12)") if os.environ.get("CI") else pytest.skip(
            "needs Landlock ABI 6 (Linux 6.12)")
    folder = tmp_path_factory.mktemp("submissions")
    out = tmp_path_factory.mktemp("results")
    targets = hostile.Targets(
        gradebook_folder=out,
        victim_submission=folder / "zoe" / f"{STEM}.ipynb",
        package_file=Path(checks_scores.__file__),
        solutions_file=fake_course.SCRIPT,
    )
    with fake_course.fake_exercises():
        write_fake_class(folder)
        write_hostile_class(folder, targets)
        watched = [targets.victim_submission, targets.package_file, targets.solutions_file]
        digests = {path: digest(path) for path in watched}
        args = [str(folder), "--out", str(out), "--timeout", "4", "--memory-limit", "3"]
        with cpu_hog():
            assert main([*args, "--jobs", "2", "--quiet"]) == 0
    return GradedClass(out, targets, digests)


@pytest.mark.slow
def test_the_gradebook_is_exactly_right(graded_class):
    with (graded_class.out / "gradebook.csv").open(newline="", encoding="utf-8") as stream:
        assert list(csv.reader(stream)) == EXPECTED_GRADEBOOK


@pytest.mark.slow
def test_feedback_says_what_happened(graded_class):
    feedback = graded_class.feedback()
    assert sorted(feedback, key=str.casefold) == STUDENTS
    assert len(list((graded_class.out / "feedback").glob("*.md"))) == len(STUDENTS)
    assert feedback["alice"].startswith("# Feedback for alice\n\n**Total: 5 / 5 points**\n")
    assert "- ✗ **Square a number** (`fake_square`): failed, 0 / 2\n" in feedback["bob"]
    assert "  - square(3): expected 9, got 6\n  - hint: multiply x by itself\n" in feedback["bob"]
    assert "crashed the kernel and was skipped" in feedback["dave"]
    assert "your code raised ZeroDivisionError: division by zero" in feedback["dave"]
    assert "ran past the 1 s time limit" in feedback[GRADEBOOK_NAME["erin"]]
    assert "ran past the 4 s time limit and was interrupted" in feedback[GRADEBOOK_NAME["erin"]]
    assert "the kernel hung while checking fake_largest" in feedback[GRADEBOOK_NAME["erin"]]
    assert feedback["frank"].count("not attempted, 0 /") == 4
    assert "not a notebook Jupyter can read (NotJSONError)" in feedback["grace_1007"]
    assert "your code raised MemoryError" in feedback[GRADEBOOK_NAME["heidi"]]


@pytest.mark.slow
def test_hostile_submissions_get_what_they_earned_and_say_why(graded_class):
    feedback = graded_class.feedback()
    assert "1000" not in feedback["mallory"]
    assert "raised SystemExit: bye" in feedback["oscar"]
    assert "crashed the kernel and was skipped" in feedback["oscar"]
    assert "printed more than 32 MiB and was stopped" in feedback["oscar"]
    assert "got 'FileNotFoundError | PermissionError'" in feedback["reader"]
    assert "code cells; at most 500 are graded" in feedback["bigcells"]
    assert "not a notebook Jupyter can read" in feedback["nina"]
    assert "symbolic link" in feedback["lena"] and "symbolic link" in feedback["zed"]
    assert "not a regular file" in feedback["fifi"]
    every_word = "\n".join(feedback.values())
    for secret in ("root:x:0", "BEGIN SOLUTION", "return f\"Hello", "sabotaged"):
        assert secret not in every_word


@pytest.mark.slow
def test_nothing_outside_the_output_folder_changed_and_nothing_survived(graded_class):
    assert hostile_processes() == []  # the double-forked, setsid children are gone too
    for path, before in graded_class.digests.items():
        assert digest(path) == before, f"{path} was changed"
    assert {p.name for p in graded_class.out.iterdir()} == {
        "feedback", "gradebook.csv", "gradebook.json"
    }


@pytest.mark.slow
def test_json_holds_every_result(graded_class):
    records = json.loads((graded_class.out / "gradebook.json").read_text())
    assert [r["student"] for r in records] == STUDENTS
    assert [r["points"] for r in records] == [float(row[-1]) for row in EXPECTED_GRADEBOOK[2:]]
    alice = records[STUDENTS.index("alice")]["notebooks"][0]
    assert [r["status"] for r in alice["results"]] == ["passed"] * 4


@pytest.mark.slow
def test_a_killed_run_leaves_the_previous_gradebook_intact(tmp_path):
    out = tmp_path / "out"
    previous = {"gradebook.csv": "student,total\nalice,5\n", "gradebook.json": "[]\n",
                "feedback/alice.md": "# Feedback for alice\n"}  # fmt: skip
    for name, text in previous.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    nb = fake_course.solution_notebook()
    nb.cells.append(fake_course.code_cell("import time\ntime.sleep(600)"))
    fake_course.save(nb, tmp_path / "submissions" / "alice")
    with fake_course.fake_exercises():
        run = subprocess.Popen(
            [sys.executable, "-m", "attn_course.classroom.gradebook", str(tmp_path / "submissions"),
             "--out", str(out), "--quiet"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 300
            while not sandbox.descendants(run.pid)[1:] and time.monotonic() < deadline:
                time.sleep(0.2)  # until its grading process has started a kernel
            below = sandbox.descendants(run.pid)
            assert below, "the class grader never started grading"
        finally:
            run.kill()
            run.wait()
    for name, text in previous.items():
        assert (out / name).read_text() == text
    assert sorted(p.name for p in out.iterdir()) == ["feedback", "gradebook.csv", "gradebook.json"]
    deadline = time.monotonic() + 60
    while any(_alive(pid) for pid in below) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in below if _alive(pid)], "grading outlived the class grader"


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().split(b") ")[1][:1] != b"Z"
    except (OSError, IndexError):
        return False

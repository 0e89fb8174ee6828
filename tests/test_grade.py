"""The grader: ``check(...)`` in a notebook and ``python -m attn_course.grade`` outside it.

Unit tests register small exercises of their own (ids prefixed ``_test_``) in a
copy of the registry. The notebook tests grade the fake course of
tests/fixtures/grading (see fake_course.py there) in real kernels, then every
solutions and exercise notebook of the course itself.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

from attn_course import checks
from attn_course.checks import exercise, expect_equal
from attn_course.course import COURSE_ROOT, lesson_paths
from attn_course.grade import (
    FIRST_START_TRIES,
    CheckResult,
    GraderError,
    GradingRun,
    check,
    grade_notebook,
    main,
    not_attempted_hint,
    run_notebook,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "grading"
sys.path.insert(0, str(FIXTURES))
import fake_course  # noqa: E402
from load import cpu_hog  # noqa: E402

ROOT = COURSE_ROOT
SOLUTIONS = lesson_paths("solutions")
EXERCISES = lesson_paths("exercises")


# --- check(): unit tests ---------------------------------------------------------------


@pytest.fixture
def unit_exercises(monkeypatch):
    """Two exercises registered in a copy of the registry, gone after the test."""
    checks.all_exercises()  # load the real topics into the real registry first
    monkeypatch.setattr(checks, "_REGISTRY", dict(checks._REGISTRY))
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)

    @exercise("_test_double", notebook="_test_unit", answer="double", title="Double it", points=2)
    def _check_double(double):
        expect_equal(double(2), 4, "double(2)", hint="add x to itself")

    @exercise("_test_quick", notebook="_test_unit", answer="f", title="Be quick", timeout_s=0.2)
    def _check_quick(f):
        f()


def stub(x):
    # YOUR CODE HERE
    raise NotImplementedError()


def test_right_answer_passes_with_all_points(unit_exercises):
    result = check("_test_double", lambda x: 2 * x)
    assert (result.status, result.points, result.max_points) == ("passed", 2, 2)
    assert result.exercise_id == "_test_double" and result.title == "Double it"


def test_wrong_answer_fails_with_message_and_hint(unit_exercises):
    result = check("_test_double", lambda x: 3 * x)  # double(2) gives 6
    assert (result.status, result.points) == ("failed", 0)
    assert result.message == "double(2): expected 4, got 6"
    assert result.hint == "add x to itself"


@pytest.mark.parametrize("answer", [stub, None, ...], ids=["stub", "None", "Ellipsis"])
def test_untouched_stub_is_not_attempted(unit_exercises, answer):
    result = check("_test_double", answer)
    assert (result.status, result.points) == ("not attempted", 0)
    assert result.hint == not_attempted_hint("double")
    assert result.hint.startswith("write your code for double in the cell above")


def test_not_implemented_deeper_in_students_code_is_not_attempted(unit_exercises):
    def double(x):
        return stub(x)  # not a stub itself: the check has to run to find out

    assert check("_test_double", double).status == "not attempted"


def test_any_other_exception_fails_with_a_short_message(unit_exercises):
    def double(x):
        return x + "two"

    result = check("_test_double", double)
    assert result.status == "failed"
    assert result.message.startswith("your code raised TypeError: unsupported operand")
    assert "(in double, line" in result.message
    assert "Traceback" not in result.message and len(result.message) < 300


def test_time_limit_fails_and_cleans_up_the_alarm(unit_exercises):
    def spin():
        while True:
            try:
                pass
            except Exception:  # the alarm must get through a student's catch-all
                pass

    handlers_before = [signal.getsignal(s) for s in (signal.SIGALRM, signal.SIGPROF)]
    start = time.process_time()
    result = check("_test_quick", spin)
    assert time.process_time() - start < 2.0  # the limit is 0.2 s of CPU time
    assert result.status == "failed"
    assert result.message == "ran past the 0.2 s time limit"
    assert [signal.getsignal(s) for s in (signal.SIGALRM, signal.SIGPROF)] == handlers_before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)


def test_no_time_limit_outside_the_main_thread(unit_exercises):
    # SIGALRM only reaches the main thread, so elsewhere the check runs unlimited.
    results = []
    thread = threading.Thread(target=lambda: results.append(check("_test_quick", lambda: None)))
    thread.start()
    thread.join()
    assert results[0].status == "passed"


def test_under_nbgrader_a_check_that_did_not_pass_raises(unit_exercises, monkeypatch, capsys):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    # Passed: printed, and nothing returned that nbgrader could take for a partial score.
    assert check("_test_double", lambda x: 2 * x) is None
    assert capsys.readouterr().out == "✓ passed: Double it [_test_double]\n"
    with pytest.raises(AssertionError, match="_test_double: failed: double"):
        check("_test_double", lambda x: 3 * x)
    with pytest.raises(AssertionError, match="not attempted"):
        check("_test_double", stub)


def test_unknown_id_names_the_known_ones(unit_exercises):
    with pytest.raises(ValueError, match=r"unknown exercise id '_test_nope'.*_test_double"):
        check("_test_nope", stub)


def test_results_display_as_text_and_html():
    failed = CheckResult("ex", "Title", "failed", 0, 1, "a < b", "try <this>")
    assert str(failed) == "✗ failed: Title [ex]\n  a < b\n  hint: try <this>"
    html = failed._repr_html_()
    assert "✗ failed" in html and "a &lt; b" in html and "try &lt;this&gt;" in html
    passed = CheckResult("ex", "Title", "passed", 1, 1, "all cases correct")
    assert "✓ passed" in passed._repr_html_() and "(1/1 points)" in passed._repr_html_()
    assert str(passed) == "✓ passed: Title [ex]"
    assert "… not attempted" in CheckResult("ex", "T", "not attempted", 0, 1)._repr_html_()


# --- the notebook grader on the fake course ------------------------------------------------


@pytest.fixture(scope="module")
def fake():
    with fake_course.fake_exercises():
        yield


@pytest.fixture(scope="module")
def untouched_exercise(fake, tmp_path_factory):
    """The exercise notebook as a student first gets it, and its grades."""
    path = fake_course.save(fake_course.exercise_version(), tmp_path_factory.mktemp("untouched"))
    return path, run_notebook(path, timeout_s=20)


def statuses(results: list[CheckResult]) -> dict[str, str]:
    return {r.exercise_id: r.status for r in results}


@pytest.mark.slow
def test_solutions_notebook_passes_everything(fake, tmp_path):
    results = grade_notebook(fake_course.save(fake_course.solution_notebook(), tmp_path))
    assert [r.exercise_id for r in results] == [
        "fake_square",
        "fake_greet",
        "fake_total",
        "fake_largest",
    ]
    assert all(r.passed for r in results), results
    assert sum(r.points for r in results) == 5  # 2 + 1 + 1 + 1


def failing_starts(monkeypatch, failures: int) -> list[str]:
    """Make the first ``failures`` kernel starts die, as a taken port or a stalled machine does."""
    from attn_course.grading.session import KernelLost, KernelSession

    real_start, calls = KernelSession.start, []

    def start(self, warm):
        calls.append("start")
        if len(calls) <= failures:
            raise KernelLost("died")
        return real_start(self, warm)

    monkeypatch.setattr(KernelSession, "start", start)
    return calls


def test_the_first_kernel_gets_more_than_one_try(fake, tmp_path, monkeypatch):
    calls = failing_starts(monkeypatch, FIRST_START_TRIES - 1)
    results = grade_notebook(fake_course.save(fake_course.solution_notebook(), tmp_path))
    assert len(calls) == FIRST_START_TRIES and all(r.passed for r in results)


def test_a_kernel_that_never_starts_is_the_graders_error(fake, tmp_path, monkeypatch):
    calls = failing_starts(monkeypatch, FIRST_START_TRIES)
    with pytest.raises(GraderError, match=r"the grading kernel did not start \(died\)"):
        grade_notebook(fake_course.save(fake_course.solution_notebook(), tmp_path))
    assert len(calls) == FIRST_START_TRIES


@pytest.mark.slow
def test_untouched_exercise_notebook_is_not_attempted(untouched_exercise):
    _, run = untouched_exercise
    assert set(statuses(run.results).values()) == {"not attempted"}
    assert run.results[0].hint == not_attempted_hint("square")
    assert "open the notebook" not in run.results[0].hint
    assert run.cell_problems == [] and (run.points, run.max_points) == (0, 5)


@pytest.mark.slow
@pytest.mark.parametrize("load", ["idle", "every core busy"])
def test_wrong_crashing_endless_and_missing_answers(fake, tmp_path, load):
    # Limits count the CPU time of the student's code, and the libraries are imported before
    # any limit applies: a cell limit of 2 s gives the same result on a busy machine.
    nb = fake_course.solution_notebook()
    # A crash in a cell that is no exercise's: reported, and grading goes on.
    nb.cells.insert(2, fake_course.code_cell("1 / 0"))
    fake_course.cell_of(nb, "fake_square").source = "def square(x):\n    return x * 2"
    # An endless loop in the student's cell itself: interrupted after the cell time limit.
    fake_course.cell_of(nb, "fake_greet").source += "\n\nwhile True:\n    pass"
    # An endless loop inside the answer: stopped by the check's own 1 s limit.
    fake_course.cell_of(nb, "fake_total").source = "def total(xs):\n    while True:\n        pass"
    # The student deleted the whole exercise cell.
    nb.cells.remove(fake_course.cell_of(nb, "fake_largest"))

    with cpu_hog() if load != "idle" else contextlib.nullcontext():
        run = run_notebook(fake_course.save(nb, tmp_path), timeout_s=2)
    square, greet, total, largest = run.results
    assert square.status == "failed"
    assert square.message == "square(3): expected 9, got 6"
    assert square.hint == "multiply x by itself"
    assert greet.status == "failed"
    assert greet.message == (
        "cell 6, where greet is defined, ran past the 2 s time limit and was interrupted"
    )
    assert (total.status, total.message) == ("failed", "ran past the 1 s time limit")
    assert largest.status == "not attempted"
    assert largest.message == "no `largest` is defined in the notebook"
    problems = [str(p) for p in run.cell_problems]
    assert problems[0] == "cell 3 (`1 / 0`) raised ZeroDivisionError: division by zero"
    assert "ran past the 2 s time limit" in problems[1]


@pytest.mark.slow
def test_tampering_with_check_cells_changes_nothing(untouched_exercise, tmp_path):
    path, untouched = untouched_exercise
    nb = nbformat.read(path, as_version=4)
    # A fake check in the setup cell, check cells that just print success or even
    # define the answer, a check cell stripped of its nbgrader metadata.
    nb.cells[1].source += "\ncheck = lambda *args: print('✓ passed')"
    fake_course.cell_of(nb, "fake_square_check").source = "print('✓ passed')"
    greet_check = fake_course.cell_of(nb, "fake_greet_check")
    greet_check.source = (
        "def greet(name):\n    return f'Hello, {name}!'\ncheck('fake_greet', greet)"
    )
    total_check = fake_course.cell_of(nb, "fake_total_check")
    total_check.metadata = {}
    total_check.source = "total = sum\ncheck('fake_total', total)"

    tampered = run_notebook(fake_course.save(nb, tmp_path), timeout_s=20)
    assert [r.to_dict() for r in tampered.results] == [r.to_dict() for r in untouched.results]


@pytest.mark.slow
def test_nbgrader_validate_fails_exactly_the_unsolved_checks(untouched_exercise, tmp_path):
    from nbgrader.validator import Validator

    path, _ = untouched_exercise
    nb = nbformat.read(path, as_version=4)
    fake_course.cell_of(nb, "fake_square").source = "def square(x):\n    return x * x"
    # nbgrader runs the check cells itself; with $NBGRADER_EXECUTION set they raise.
    found = Validator().validate(str(fake_course.save(nb, tmp_path)))
    assert [cell["source"] for cell in found["failed"]] == [
        'check("fake_greet", greet)',
        'check("fake_total", total)',
        'check("fake_largest", largest)',
    ]
    # nbgrader shows the student our feedback (printed to stderr) above the AssertionError.
    error = found["failed"][0]["raw_error"]
    assert error.startswith("… not attempted: Greet by name [fake_greet]\n")
    assert error.endswith("fake_greet: not attempted: not attempted yet")


@pytest.mark.slow
def test_a_cell_that_kills_the_kernel_costs_only_what_depends_on_it(fake, tmp_path):
    nb = fake_course.solution_notebook()
    # The kernel dies in square's own cell (so square is lost) and again in a cell after
    # everything: each time grading goes on in a fresh kernel without the fatal cell.
    fake_course.cell_of(nb, "fake_square").source += "\n\nimport os\nos._exit(1)"
    nb.cells.append(fake_course.code_cell("import os\nos._exit(1)"))
    run = run_notebook(fake_course.save(nb, tmp_path), timeout_s=20)
    assert statuses(run.results) == {
        "fake_square": "failed",
        "fake_greet": "passed",
        "fake_total": "passed",
        "fake_largest": "passed",
    }
    square_cell = nb.cells.index(fake_course.cell_of(nb, "fake_square")) + 1
    assert run.results[0].message == (
        f"cell {square_cell}, where square is defined, crashed the kernel and was skipped"
    )
    assert [p.error for p in run.cell_problems] == ["crashed the kernel and was skipped"] * 2


@pytest.mark.slow
def test_a_check_that_kills_or_hangs_the_kernel_fails_only_that_exercise(fake, tmp_path):
    nb = fake_course.solution_notebook()
    # greet's answer kills the kernel when the check calls it; total's ignores every
    # interrupt (it swallows the time limit and KeyboardInterrupt alike).
    fake_course.cell_of(nb, "fake_greet").source = (
        "def greet(name):\n    import os\n    os._exit(3)"
    )
    fake_course.cell_of(nb, "fake_total").source = fake_course.ignores_interrupts("total", "xs")
    run = run_notebook(fake_course.save(nb, tmp_path), timeout_s=20)
    square, greet, total, largest = run.results
    assert square.passed and largest.passed
    assert (greet.status, greet.message) == ("failed", "the kernel died while checking fake_greet")
    assert (total.status, total.message) == ("failed", "the kernel hung while checking fake_total")
    assert run.cell_problems == []


@pytest.mark.slow
def test_memory_limit_turns_a_huge_allocation_into_a_failure(fake, tmp_path):
    nb = fake_course.solution_notebook()
    fake_course.cell_of(nb, "fake_largest").source = (
        "def largest(xs):\n    return len(bytearray(8 * 2**30))"
    )
    path = fake_course.save(nb, tmp_path)
    [*passed, largest] = grade_notebook(path, timeout_s=20, memory_limit_bytes=3 * 2**30)
    assert all(r.passed for r in passed)
    assert largest.status == "failed"
    assert largest.message.startswith("your code raised MemoryError (in largest, line 2)")


# --- the command line --------------------------------------------------------------------


@pytest.mark.slow
def test_cli_json(untouched_exercise, capsys):
    path, untouched = untouched_exercise
    assert main(["--json", str(path)]) == 0
    [graded] = json.loads(capsys.readouterr().out)
    assert graded["notebook"] == str(path)
    assert (graded["points"], graded["max_points"]) == (0, 5)
    assert graded["results"] == [r.to_dict() for r in untouched.results]


def test_cli_text_report(fake, tmp_path, monkeypatch, capsys):
    path = fake_course.save(fake_course.exercise_version(), tmp_path)
    results = [
        CheckResult("fake_square", "Square a number", "passed", 2, 2),
        CheckResult("fake_greet", "Greet by name", "failed", 0, 1, "greet('Ada'): no", "f-string"),
        CheckResult("fake_total", "Sum a list", "not attempted", 0, 1, "not yet", "replace it"),
    ]
    monkeypatch.setattr(
        "attn_course.grade.run_notebook", lambda p, *a, **k: GradingRun(Path(p), results)
    )
    assert main([str(path), str(path)]) == 0
    out = capsys.readouterr().out
    assert "  ✓ passed         Square a number [fake_square]  2/2\n" in out
    assert "  ✗ failed         Greet by name [fake_greet]  0/1\n" in out
    assert "      greet('Ada'): no\n      hint: f-string\n" in out
    assert "  … not attempted  Sum a list [fake_total]  0/1\n" in out
    assert "  points 2 / 4\n" in out and out.endswith("total points 4 / 8\n")


def test_cli_usage_errors_exit_2(fake, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "99_fake_grading.ipynb").write_text("{not json")
    (tmp_path / "no_exercises_here.ipynb").write_text(json.dumps(fake_course.solution_notebook()))
    for argument, expected in [
        ("missing.ipynb", "no such file"),
        ("notes.txt", "not a notebook"),
        ("99_fake_grading.ipynb", "not a notebook Jupyter can read"),
        ("no_exercises_here.ipynb", "no_exercises_here.ipynb: its name names none of the "
         "course notebooks (01_score_matrix, "),
    ]:  # fmt: skip
        assert main([str(tmp_path / argument)]) == 2
        assert expected in capsys.readouterr().err
    # The whole list, never cut: it ends with the last notebook and what to do.
    assert main([str(tmp_path / "no_exercises_here.ipynb")]) == 2
    assert "99_fake_grading); say which it is with --notebook STEM\n" in capsys.readouterr().err


def test_the_cli_reads_the_notebook_from_a_renamed_file(fake, tmp_path, monkeypatch, capsys):
    graded = []
    monkeypatch.setattr(
        "attn_course.grade.run_notebook",
        lambda p, notebook, **k: graded.append(notebook) or GradingRun(Path(p), []),
    )
    for name in ("Copy of 99-Fake-Grading (2).ipynb", "alice_99_fake_grading-1.ipynb"):
        path = tmp_path / name
        path.write_text(json.dumps(fake_course.solution_notebook()))
        assert main([str(path)]) == 0
    assert graded == ["99_fake_grading", "99_fake_grading"]


@pytest.mark.slow
def test_python_dash_m_entry_point(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "attn_course.grade", str(tmp_path / "missing.ipynb")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "no such file" in done.stderr


# --- the course's own notebooks ----------------------------------------------------------


def test_the_course_has_exercise_notebooks():
    assert SOLUTIONS, "no solutions/NN_*.ipynb found"
    assert [p.name for p in EXERCISES] == [p.name for p in SOLUTIONS]


@pytest.mark.slow
@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_solutions_pass_every_exercise(path):
    results = grade_notebook(path)  # ValueError (a failure) if the notebook has no exercises
    assert results
    assert [r for r in results if not r.passed] == []


@pytest.mark.slow
@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.stem)
def test_untouched_exercises_are_not_attempted(path):
    results = grade_notebook(path)
    assert results
    assert [r for r in results if r.status != "not attempted"] == []


# --- the grader and check() agree --------------------------------------------------------

# Wrong answers written into real course notebooks, one per exercise: the grader (checks in
# its own process, answers in a confined kernel) must reach the verdict the notebook's
# check() reaches in-process — the same status, message and hint.
WRONG_CELLS = {
    "01_score_matrix": {
        "score_bytes": "import math\n\ndef score_matrix_bytes(n, heads, bytes_per_element):\n"
                       "    return math.pow(n, 2) * heads * bytes_per_element",
        "stable_softmax": "def stable_softmax(x):\n    w = (x - x.max()).exp()\n"
                          "    return w / w.sum(-1, keepdim=True)",
        "causal_mask": "def causal_mask(n):\n"
                       "    return torch.ones(n, n, dtype=torch.bool).tril(-1)",
        "naive_attention": "import torch.nn.functional as F\n\n"
                           "def attention(q, k, v, causal=False):\n"
                           "    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)",
    },
    "05_linear_attention": {
        "elu_linear_attention": (
            "def elu_linear_attention(q, k, v):\n    phi_q, phi_k = F.elu(q) + 1, F.elu(k) + 1\n"
            "    rows = []\n    for start in range(0, q.shape[-2], 64):  # O(n²) work, small peak\n"
            "        w = phi_q[..., start:start + 64, :] @ phi_k.transpose(-2, -1)\n"
            "        rows.append((w @ v) / w.sum(-1, keepdim=True))\n"
            "    return torch.cat(rows, dim=-2)"
        ),
        "linear_recurrent_step": (
            "def linear_step(state, normaliser, phi_q, phi_k, v):\n"
            "    out = (phi_q @ state) / (phi_q @ normaliser)\n"
            "    return out, state + torch.outer(phi_k, v), normaliser + phi_k"
        ),
    },
    "07_kv_cache": {
        "kv_cached_attention_step": (
            "def cached_step(q, k_cache, v_cache, k, v):\n"
            "    keys = torch.cat([k[None], k_cache]); values = torch.cat([v[None], v_cache])\n"
            "    weights = torch.softmax(keys @ q / q.shape[0] ** 0.5, dim=0)\n"
            "    return weights @ values, keys, values"
        ),
    },
    "04_flash_attention": {"flash_inner_loop": None},  # the kernel, without rescaling acc
}


def _wrong_notebook(stem: str):
    from attn_course.classroom.build import notebook_from_script

    nb = notebook_from_script(ROOT / "solutions" / f"{stem}.py")
    for grade_id, source in WRONG_CELLS[stem].items():
        cell = fake_course.cell_of(nb, grade_id)
        if source is None:  # drop the rescaling of acc from the kernel
            assert "acc = acc * alpha[:, None]" in cell.source
            source = cell.source.replace("acc = acc * alpha[:, None]", "acc = acc")
        cell.source = source
    return nb


def _local_results(nb, stem: str) -> list[CheckResult]:
    import linecache

    from attn_course.grade import is_check_cell, run_check

    namespace: dict = {"__name__": "__main__"}
    for number, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and not is_check_cell(cell):
            name = f"<{stem} cell {number}>"
            linecache.cache[name] = (len(cell.source), None, cell.source.splitlines(True), name)
            exec(compile(cell.source, name, "exec"), namespace)  # noqa: S102
    return [run_check(e, namespace[e.answer]) for e in checks.exercises_for(stem)]


@pytest.mark.slow
@pytest.mark.parametrize("stem", sorted(WRONG_CELLS))
def test_the_grader_reaches_the_verdict_check_reaches_in_the_notebook(stem, tmp_path):
    nb = _wrong_notebook(stem)
    path = tmp_path / f"{stem}.ipynb"
    nbformat.write(nb, path)
    remote = run_notebook(path).results
    local = _local_results(nb, stem)
    assert [r.to_dict() for r in remote] == [r.to_dict() for r in local]
    wrong = {r.exercise_id for r in remote if r.status == "failed"}
    assert wrong == set(WRONG_CELLS[stem]), [str(r) for r in remote]

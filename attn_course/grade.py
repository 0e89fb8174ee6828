"""Grade exercises: ``check(...)`` in a notebook, ``python -m attn_course.grade`` outside it.

In a notebook, a check cell runs::

    check("score_bytes", score_matrix_bytes)

which looks the exercise up in :mod:`attn_course.checks`, runs its check on the
student's answer under the exercise's time limit and returns a
:class:`CheckResult`; Jupyter shows it as a small coloured box
(✓ passed, ✗ failed with a hint, … not attempted).

``check`` never raises for a wrong or missing answer in normal use, so "Run All"
of an untouched exercise notebook runs to the end. The one exception is
nbgrader: during ``nbgrader autograde`` and ``nbgrader validate`` it sets the
environment variable ``NBGRADER_EXECUTION``, and then a check that did not
pass raises ``AssertionError`` so that nbgrader's own autograder gives the
check cell zero points (nbgrader awards a grade cell's points when it runs
without an error). Under nbgrader ``check`` prints its result rather than
returning it, because nbgrader would read a returned value as a partial score.

From a shell, the grader runs a whole notebook in a fresh kernel::

    python -m attn_course.grade exercises/01_score_matrix.ipynb [--json]
    attn-grade exercises/01_score_matrix.ipynb

It executes every code cell except the check cells (so editing or deleting a
check cell changes nothing), then runs the package's own check of each of the
notebook's exercises inside that kernel and prints the results. See
:func:`grade_notebook` for the details.
"""

from __future__ import annotations

import argparse
import html
import importlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from attn_course.checks import CheckFailed, Exercise, exercises_for, get_exercise
from attn_course.grading.answers import (
    Answer,
    ForbiddenCall,
    LocalAnswer,
    StudentError,
    TimeLimitReached,
    short,
)

if TYPE_CHECKING:
    from nbformat import NotebookNode

__all__ = [
    "CellProblem",
    "CheckResult",
    "GradingRun",
    "Scored",
    "check",
    "format_run",
    "grade_in_kernel",
    "grade_notebook",
    "is_check_cell",
    "load_extra_checks",
    "main",
    "memory_limit_arg",
    "run_check",
    "run_notebook",
]

Status = Literal["passed", "failed", "not attempted"]
PASSED: Status = "passed"
FAILED: Status = "failed"
NOT_ATTEMPTED: Status = "not attempted"

# Set by nbgrader while it autogrades or validates a notebook.
NBGRADER_ENV = "NBGRADER_EXECUTION"
# Comma-separated modules that register more exercises (beyond attn_course.checks'
# own topics), imported by check() and by the grader in its kernel. The tests use
# it for their fake exercises; an instructor can use it for extra assignments.
EXTRA_CHECKS_ENV = "ATTN_COURSE_EXTRA_CHECKS"

# Exception messages are cut to this many characters: feedback, not a traceback.
MAX_ERROR_CHARS = 300

_TIME_LIMIT_HINT = "look for a loop that never ends, or work that grows much faster than the input"
_SYMBOLS = {PASSED: "✓", FAILED: "✗", NOT_ATTEMPTED: "…"}
# (border, background) of the feedback box in a notebook.
_COLOURS = {
    PASSED: ("#2e7d32", "#e8f5e9"),
    FAILED: ("#c62828", "#ffebee"),
    NOT_ATTEMPTED: ("#757575", "#f5f5f5"),
}


@dataclass
class CheckResult:
    """The outcome of checking one exercise.

    ``points`` is what the answer earned (all or nothing), ``max_points`` what
    the exercise is worth. ``message`` says what happened, ``hint`` how to fix it.
    """

    exercise_id: str
    title: str
    status: Status
    points: float
    max_points: float
    message: str = ""
    hint: str = ""

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        return cls(**data)

    def __str__(self) -> str:
        head = f"{_SYMBOLS[self.status]} {self.status}: {self.title} [{self.exercise_id}]"
        lines = [head]
        if self.message and self.status != PASSED:
            lines.append(f"  {self.message}")
        if self.hint and self.status != PASSED:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        border, background = _COLOURS[self.status]
        e = html.escape
        parts = [
            f'<div style="border-left:4px solid {border};background:{background};'
            f'padding:6px 10px;margin:4px 0;font-family:sans-serif;color:#212121">',
            f'<b style="color:{border}">{_SYMBOLS[self.status]} {e(self.status)}</b> '
            f"— {e(self.title)} <code>{e(self.exercise_id)}</code>"
            f" <span style='color:#616161'>({_points(self.points)}/"
            f"{_points(self.max_points)} points)</span>",
        ]
        if self.message and self.status != PASSED:
            parts.append(f'<div style="margin-top:4px">{e(self.message)}</div>')
        if self.hint and self.status != PASSED:
            parts.append(f'<div style="margin-top:2px"><i>Hint:</i> {e(self.hint)}</div>')
        parts.append("</div>")
        return "".join(parts)


def _points(value: float) -> str:
    return f"{value:g}"


# --- running one check ---------------------------------------------------------------


@contextmanager
def _time_limit(cpu_s: float) -> Iterator[None]:
    """Raise :class:`TimeLimitReached` once the process has used ``cpu_s`` CPU seconds in
    the block, or after a generous wall-clock backstop (for code that sleeps or waits).

    CPU time, not wall time, so that a busy machine does not fail a correct answer.
    Uses ITIMER_PROF and ITIMER_REAL, which exist on POSIX only and interrupt only the main
    thread (where a Jupyter kernel runs its cells). Elsewhere the block runs unlimited.
    """
    usable = (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and cpu_s > 0
    )
    if not usable:
        yield
        return

    def on_timer(signum: int, frame: Any) -> None:
        raise TimeLimitReached

    previous = {sig: signal.signal(sig, on_timer) for sig in (signal.SIGPROF, signal.SIGALRM)}
    signal.setitimer(signal.ITIMER_PROF, cpu_s)
    signal.setitimer(signal.ITIMER_REAL, wall_backstop_s(cpu_s))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def wall_backstop_s(cpu_s: float) -> float:
    """Wall seconds after which work limited to ``cpu_s`` CPU seconds is stopped anyway:
    only for code that waits (sleep, a lock) rather than computes; generous, so that a
    loaded machine never reaches it before the CPU limit."""
    return 4 * cpu_s + 30


def _is_stub(answer: Any) -> bool:
    """True for an answer nobody has written yet: ``None``, ``...``, or a function
    whose body only raises NotImplementedError (the stub nbgrader leaves)."""
    if answer is None or answer is Ellipsis:
        return True
    code = getattr(answer, "__code__", None)
    return code is not None and code.co_names == ("NotImplementedError",)


def run_check(exercise: Exercise, answer: Any) -> CheckResult:
    """Run ``exercise.check`` on the student's answer; never raises for a bad answer.

    ``answer`` is the student's function (called in this process, under the exercise's
    CPU-time limit) or an :class:`~attn_course.grading.answers.Answer` that calls it
    elsewhere and keeps its own time (the class grader's remote answer).

    passed:        the check returned
    not attempted: the answer is still a stub, or the student's code raised NotImplementedError
    failed:        CheckFailed (message + hint), a forbidden call, any other exception of the
                   student's code, or the time limit
    """

    def result(status: Status, message: str = "", hint: str = "") -> CheckResult:
        earned = exercise.points if status == PASSED else 0.0
        return CheckResult(
            exercise.id, exercise.title, status, earned, exercise.points, message, hint
        )

    limit: Any = nullcontext()
    if not isinstance(answer, Answer):
        if _is_stub(answer):
            return _not_attempted(exercise)
        answer = LocalAnswer(answer, exercise.answer, exercise.forbidden)
        limit = _time_limit(exercise.timeout_s)
    try:
        with limit:
            exercise.check(answer)
    except TimeLimitReached:
        return result(
            FAILED, f"ran past the {exercise.timeout_s:g} s time limit", _TIME_LIMIT_HINT
        )
    except NotImplementedError:
        return _not_attempted(exercise)
    except ForbiddenCall as forbidden:
        return result(FAILED, forbidden.message, forbidden.hint)
    except CheckFailed as failure:
        return result(FAILED, short(str(failure)), failure.hint)
    except StudentError as error:
        return result(FAILED, error.feedback())
    except Exception as error:  # noqa: BLE001 - the check choked on what the answer returned
        return result(FAILED, short(f"the check could not use what your answer returned "
                                    f"({type(error).__name__}: {error})"))  # fmt: skip
    return result(PASSED, "all cases correct")


def load_extra_checks(modules: Sequence[str] = ()) -> None:
    """Import ``modules`` and those named in ``$ATTN_COURSE_EXTRA_CHECKS`` (registering them)."""
    names = [*modules, *os.environ.get(EXTRA_CHECKS_ENV, "").split(",")]
    for name in filter(None, (n.strip() for n in names)):
        importlib.import_module(name)


def _lookup(exercise_id: str) -> Exercise:
    load_extra_checks()
    return get_exercise(exercise_id)


def check(exercise_id: str, answer: Any) -> CheckResult | None:
    """Check the student's ``answer`` to exercise ``exercise_id`` and return the result.

    Shown in a notebook as a coloured box. Does not raise for a failed or
    unattempted exercise. An unknown ``exercise_id`` raises ValueError listing
    the known ids.

    Under nbgrader (``$NBGRADER_EXECUTION`` set by ``nbgrader autograde`` and
    ``nbgrader validate``) the result is printed instead of returned, and a
    check that did not pass raises AssertionError: nbgrader gives a check cell
    its points when it runs without an error, and would otherwise try to read
    a returned value as a partial-credit score.
    """
    result = run_check(_lookup(exercise_id), answer)
    if not os.environ.get(NBGRADER_ENV):
        return result
    if result.passed:
        print(result)
        return None
    print(result, file=sys.stderr)  # the feedback, in the graded notebook too
    raise AssertionError(f"{exercise_id}: {result.status}: {result.message}")


# --- grading a whole notebook in a fresh kernel ----------------------------------------
#
# The grader never trusts the student's notebook to check itself:
#  1. it starts a fresh python3 kernel in the notebook's folder and runs every code cell
#     except the check cells (so an edited or deleted check cell changes nothing);
#  2. for each exercise of the notebook it runs one more cell in that kernel, which calls
#     grade_in_kernel(): look the answer up by name, run the package's check on it (the same
#     run_check() as the notebook's check()), and display the result under RESULT_MIME;
#  3. it reads those results back from the cells' outputs.
# A cell that runs past its time limit is interrupted and grading goes on.

RESULT_MIME = "application/vnd.attn-course.check-result+json"
DEFAULT_CELL_TIMEOUT_S = 120.0
# Seconds the kernel gets on top of an exercise's own time limit before the grader
# interrupts it (the check's own alarm normally fires first).
CHECK_GRACE_S = 5
# Seconds a kernel gets to run ``pass`` after an interrupt before it counts as hung.
PROBE_TIMEOUT_S = 5
# The kernel's address-space cap. Importing torch and triton reserves ~1 GiB of it; the
# course's notebooks at the test size stay far below this.
DEFAULT_MEMORY_LIMIT_BYTES = 6 * 2**30
_TIME_LIMIT_ENAME = "CellTimeLimit"
_CHECK_CALL = re.compile(r"\bcheck\s*\(")


@dataclass
class CellProblem:
    """A student cell that raised or ran past its time limit (``number`` counts from 1)."""

    number: int
    first_line: str
    error: str
    timed_out: bool

    def __str__(self) -> str:
        return f"cell {self.number} (`{self.first_line}`) {self.error}"


class Scored:
    """Mixin: ``points`` and ``max_points`` summed over ``self.results``."""

    results: list[CheckResult]

    @property
    def points(self) -> float:
        return sum(r.points for r in self.results)

    @property
    def max_points(self) -> float:
        return sum(r.max_points for r in self.results)


@dataclass
class GradingRun(Scored):
    """Everything the grader found in one notebook."""

    notebook: Path
    results: list[CheckResult]
    cell_problems: list[CellProblem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "notebook": str(self.notebook),
            "points": self.points,
            "max_points": self.max_points,
            "results": [r.to_dict() for r in self.results],
            "cell_problems": [asdict(p) for p in self.cell_problems],
        }


def is_check_cell(cell: NotebookNode) -> bool:
    """A cell the grader skips: an nbgrader grade cell, or any non-solution cell calling check()."""
    meta = cell.metadata.get("nbgrader", {})
    if cell.cell_type != "code" or meta.get("solution"):
        return False
    return bool(meta.get("grade")) or _CHECK_CALL.search(cell.source) is not None


def grade_in_kernel(exercise_id: str, namespace: dict[str, Any]) -> None:
    """Run by the grader inside the student's kernel: check the answer and display the result."""
    from IPython.display import display

    exercise = _lookup(exercise_id)
    if exercise.answer in namespace:
        result = run_check(exercise, namespace[exercise.answer])
    else:
        result = _not_attempted(exercise, f"no `{exercise.answer}` is defined in the notebook")
    display({RESULT_MIME: result.to_dict(), "text/plain": str(result)}, raw=True)


def _not_attempted(exercise: Exercise, message: str = "not attempted yet") -> CheckResult:
    return CheckResult(
        exercise.id,
        exercise.title,
        NOT_ATTEMPTED,
        0.0,
        exercise.points,
        message,
        f"open the notebook and replace the NotImplementedError in {exercise.answer}",
    )


def _failed(exercise: Exercise, message: str, hint: str = "") -> CheckResult:
    return CheckResult(exercise.id, exercise.title, FAILED, 0.0, exercise.points, message, hint)


def _kernel_env(extra_checks: Sequence[str]) -> dict[str, str]:
    env = dict(os.environ)
    # Grade answers, not experiments: heavy narrative cells run at the test size.
    env.setdefault("ATTN_COURSE_SIZE", "small")
    modules = [*extra_checks, *env.get(EXTRA_CHECKS_ENV, "").split(",")]
    env[EXTRA_CHECKS_ENV] = ",".join(m for m in modules if m)
    return env


def _result_in(cell: NotebookNode) -> CheckResult | None:
    for output in reversed(cell.get("outputs", [])):
        data = output.get("data", {})
        if RESULT_MIME in data:
            return CheckResult.from_dict(dict(data[RESULT_MIME]))
    return None


def _memory_limiter(limit_bytes: int | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` capping the kernel's address space at ``limit_bytes`` (POSIX only).

    With the cap, an allocation beyond it fails inside the student's code (MemoryError,
    or torch's "can't allocate memory") instead of the operating system killing the
    kernel, or the whole machine, when it runs out.
    """
    try:
        import resource
    except ImportError:  # not POSIX: no limit
        return None
    if limit_bytes is None:
        return None

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    return limit


class _KernelLost(Exception):
    """The kernel died or stopped answering; grading goes on in a fresh one."""


@dataclass
class _Grading:
    """What one notebook's grading has found so far, kept across kernel restarts."""

    nb: NotebookNode
    exercises: list[Exercise]
    timeout_s: float
    problems: dict[int, CellProblem] = field(default_factory=dict)
    results: dict[str, CheckResult] = field(default_factory=dict)
    # Cells that killed or hung the kernel: skipped when the notebook is run again.
    fatal_cells: set[int] = field(default_factory=set)
    errors: dict[int, dict[str, Any]] = field(default_factory=dict)

    def student_cells(self) -> list[int]:
        return [
            index
            for index, cell in enumerate(self.nb.cells)
            if cell.cell_type == "code" and not is_check_cell(cell)
        ]


def _run_cell(client: Any, grading: _Grading, cell: NotebookNode, index: int) -> None:
    """Execute one cell; raise _KernelLost if the kernel died or ignores interrupts."""
    from nbclient.exceptions import DeadKernelError

    grading.errors.pop(index, None)
    try:
        client.execute_cell(cell, index)
    except DeadKernelError as error:
        raise _KernelLost("died") from error
    if grading.errors.get(index, {}).get("ename") == _TIME_LIMIT_ENAME and not _answers(
        client, grading
    ):
        raise _KernelLost("hung")


def _answers(client: Any, grading: _Grading) -> bool:
    """True if the kernel runs a trivial cell after an interrupt (False: it is stuck)."""
    import nbformat
    from nbclient.exceptions import DeadKernelError

    probe = nbformat.v4.new_code_cell("pass")
    grading.nb.cells.append(probe)  # nbclient writes executed cells back by index
    index = len(grading.nb.cells) - 1
    grading.errors.pop(index, None)
    timeout, client.timeout = client.timeout, PROBE_TIMEOUT_S
    try:
        client.execute_cell(probe, index)
    except DeadKernelError:
        return False
    finally:
        client.timeout = timeout
        grading.nb.cells.pop()
    return index not in grading.errors


def _grade_in_one_kernel(client: Any, grading: _Grading, solution_cells: dict) -> None:
    """Run the student's cells, then check every exercise not graded yet.

    Raises _KernelLost after recording what was lost, so that the caller can go on in
    a fresh kernel: a cell that killed the kernel is skipped from then on; an
    exercise whose check killed it is failed.
    """
    import nbformat

    for index in grading.student_cells():
        if index in grading.fatal_cells:
            continue
        try:
            _run_cell(client, grading, grading.nb.cells[index], index)
        except _KernelLost as lost:
            grading.fatal_cells.add(index)
            grading.problems[index] = _fatal_problem(grading.nb.cells[index], index, str(lost))
            raise
        if index in grading.errors:
            error = grading.errors[index]
            grading.problems[index] = _cell_problem(
                grading.nb.cells[index], index, error, grading.timeout_s
            )
        else:
            grading.problems.pop(index, None)

    for exercise in grading.exercises:
        if exercise.id in grading.results:
            continue
        grading_cell = nbformat.v4.new_code_cell(
            f"__import__('attn_course.grade', fromlist=['_'])"
            f".grade_in_kernel({exercise.id!r}, globals())"
        )
        grading.nb.cells.append(grading_cell)
        index = len(grading.nb.cells) - 1
        client.timeout = math.ceil(exercise.timeout_s) + CHECK_GRACE_S
        try:
            _run_cell(client, grading, grading_cell, index)
        except _KernelLost as lost:
            message = f"the kernel {lost} while checking {exercise.id}"
            grading.results[exercise.id] = _failed(exercise, message, _DEAD_KERNEL_HINT)
            raise
        finally:
            grading.nb.cells.pop()
        result = _result_in(grading_cell) or _grader_error(exercise, grading.errors.get(index))
        solution_problem = grading.problems.get(solution_cells.get(exercise.id, -1))
        grading.results[exercise.id] = _blame_solution_cell(result, exercise, solution_problem)


def run_notebook(
    path: Path | str,
    timeout_s: float = DEFAULT_CELL_TIMEOUT_S,
    extra_checks: Sequence[str] = (),
    memory_limit_bytes: int | None = DEFAULT_MEMORY_LIMIT_BYTES,
) -> GradingRun:
    """Grade one notebook in a fresh kernel; see the comment above and :func:`grade_notebook`.

    A cell that kills the kernel (a crash, ``os._exit``) or hangs it past an interrupt
    costs only what depends on it: grading goes on in a fresh kernel that runs the
    notebook again without that cell. An exercise whose check kills the kernel fails,
    and the others are checked in a fresh kernel. ``memory_limit_bytes`` caps the
    kernel's address space (``None``: no cap).
    """
    import nbformat
    from nbclient import NotebookClient

    shown, path = Path(path), Path(path).resolve()
    load_extra_checks(extra_checks)
    grading = _Grading(
        nbformat.read(path, as_version=4), list(exercises_for(path.stem)), timeout_s
    )

    def record_error(cell: NotebookNode, cell_index: int, execute_reply: dict) -> None:
        grading.errors[cell_index] = execute_reply["content"]

    solution_cells = {
        cell.metadata["nbgrader"].get("grade_id"): index
        for index, cell in enumerate(grading.nb.cells)
        if cell.metadata.get("nbgrader", {}).get("solution")
    }
    # Each restart either skips one more cell or settles one more exercise, so this ends.
    for _ in range(len(grading.nb.cells) + len(grading.exercises) + 1):
        client = NotebookClient(
            grading.nb,
            timeout=math.ceil(timeout_s),
            kernel_name="python3",
            allow_errors=True,
            interrupt_on_timeout=True,
            error_on_timeout={"ename": _TIME_LIMIT_ENAME, "evalue": "", "traceback": []},
            on_cell_error=record_error,
            shutdown_kernel="immediate",  # nothing to save; a graceful shutdown only costs time
            resources={"metadata": {"path": str(path.parent)}},
        )
        # The kernel's own stderr holds only start-up noise; the student's output comes via
        # Jupyter.
        with client.setup_kernel(
            env=_kernel_env(extra_checks),
            stderr=subprocess.DEVNULL,
            preexec_fn=_memory_limiter(memory_limit_bytes),
        ):
            try:
                _grade_in_one_kernel(client, grading, solution_cells)
                break
            except _KernelLost:
                continue
    results = [grading.results[e.id] for e in grading.exercises if e.id in grading.results]
    problems = [grading.problems[i] for i in sorted(grading.problems)]
    return GradingRun(shown, results, problems)


_DEAD_KERNEL_HINT = (
    "something crashed Python, used up the memory or ignored the interrupt; "
    "run the notebook top to bottom yourself"
)


def _fatal_problem(cell: NotebookNode, index: int, how: str) -> CellProblem:
    first_line = _first_line(cell)
    if how == "hung":
        text = "hung the kernel (it ignored the interrupt) and was skipped"
        return CellProblem(index + 1, first_line, text, timed_out=True)
    return CellProblem(index + 1, first_line, "crashed the kernel and was skipped", False)


def _first_line(cell: NotebookNode) -> str:
    return next((line for line in cell.source.splitlines() if line.strip()), "")[:60]


def _cell_problem(
    cell: NotebookNode, index: int, error: dict[str, Any], timeout_s: float
) -> CellProblem:
    first_line = _first_line(cell)
    if error.get("ename") == _TIME_LIMIT_ENAME:
        text = f"ran past the {timeout_s:g} s time limit and was interrupted"
        return CellProblem(index + 1, first_line, text, timed_out=True)
    value = error.get("evalue", "")
    text = short(f"raised {error.get('ename', 'an error')}" + (f": {value}" if value else ""))
    return CellProblem(index + 1, first_line, text, timed_out=False)


def _grader_error(exercise: Exercise, error: dict[str, Any] | None) -> CheckResult:
    """The grading cell produced no result: it timed out or could not run the check."""
    if error and error.get("ename") == _TIME_LIMIT_ENAME:
        limit = exercise.timeout_s
        return _failed(exercise, f"ran past the {limit:g} s time limit", _TIME_LIMIT_HINT)
    detail = f"{error.get('ename')}: {error.get('evalue')}" if error else "no result came back"
    return _failed(exercise, short(f"the grader could not run the check ({detail})"))


def _blame_solution_cell(
    result: CheckResult, exercise: Exercise, problem: CellProblem | None
) -> CheckResult:
    """Fold an error of the exercise's own solution cell into its result."""
    if problem is None or result.passed and not problem.timed_out:
        return result
    where = f"cell {problem.number}, where {exercise.answer} is defined, {problem.error}"
    if problem.timed_out:
        return _failed(exercise, where, "look for a loop that never ends in that cell")
    if result.status == NOT_ATTEMPTED:
        return _failed(exercise, where, "run that cell yourself and fix the error")
    result.message = f"{result.message}; also, {where}"
    return result


def grade_notebook(
    path: Path | str,
    timeout_s: float = DEFAULT_CELL_TIMEOUT_S,
    extra_checks: Sequence[str] = (),
    memory_limit_bytes: int | None = DEFAULT_MEMORY_LIMIT_BYTES,
) -> list[CheckResult]:
    """Grade a student's notebook: one :class:`CheckResult` per exercise of it.

    The notebook's stem (``01_score_matrix``) selects the exercises. The
    notebook runs in a fresh ``python3`` kernel whose working directory is the
    notebook's folder, with ``ATTN_COURSE_SIZE=small`` unless set; every code
    cell runs except the check cells, each for at most ``timeout_s`` seconds.
    ``extra_checks`` names modules that register more exercises (also read from
    ``$ATTN_COURSE_EXTRA_CHECKS``); they must be importable in the kernel too.
    The kernel's address space is capped at ``memory_limit_bytes``. A cell that
    crashes or hangs the kernel is skipped in a fresh one (see :func:`run_notebook`).
    Raises ValueError if the notebook's stem has no exercises.
    """
    return run_notebook(path, timeout_s, extra_checks, memory_limit_bytes).results


# --- command line ----------------------------------------------------------------------


def format_run(run: GradingRun) -> str:
    """The human-readable report of one graded notebook."""
    lines = [str(run.notebook)]
    for r in run.results:
        lines.append(
            f"  {_SYMBOLS[r.status]} {r.status:<13}  {r.title} [{r.exercise_id}]"
            f"  {_points(r.points)}/{_points(r.max_points)}"
        )
        if not r.passed:
            lines += [f"      {r.message}"] + ([f"      hint: {r.hint}"] if r.hint else [])
    lines += [f"  note: {problem}" for problem in run.cell_problems]
    lines.append(f"  points {_points(run.points)} / {_points(run.max_points)}")
    return "\n".join(lines)


def _usage_error(path: Path, extra_checks: Sequence[str]) -> str | None:
    import nbformat

    if not path.is_file():
        return f"{path}: no such file"
    if path.suffix != ".ipynb":
        return f"{path}: not a notebook (expected a .ipynb file)"
    try:
        nbformat.read(path, as_version=4)
    except Exception as error:  # noqa: BLE001 - any unreadable file is a usage error
        return f"{path}: not a readable notebook ({type(error).__name__})"
    try:
        load_extra_checks(extra_checks)
        exercises_for(path.stem)
    except ValueError as error:
        return f"{path}: {error}"
    return None


def memory_limit_arg(text: str) -> int | None:
    """argparse type: a memory limit in GiB (``0`` means none) as bytes."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a number of GiB >= 0, got {text!r}")
    return int(value * 2**30) or None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="attn-grade",
        description="Grade exercise notebooks: run each in a fresh kernel and check its answers "
        "with the course's checks. Exit status 0 when grading ran (whatever the score), "
        "2 on a usage error.",
    )
    parser.add_argument("notebooks", nargs="+", type=Path, metavar="NOTEBOOK.ipynb")
    parser.add_argument("--json", action="store_true", help="print machine-readable results")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_CELL_TIMEOUT_S,
        help="seconds each notebook cell may run (default: %(default)g)",
    )
    parser.add_argument(
        "--memory-limit",
        type=memory_limit_arg,
        default=DEFAULT_MEMORY_LIMIT_BYTES,
        metavar="GIB",
        help="address space the notebook's kernel may use, in GiB; 0 for no limit "
        f"(default: {DEFAULT_MEMORY_LIMIT_BYTES / 2**30:g})",
    )
    parser.add_argument(
        "--checks",
        action="append",
        default=[],
        metavar="MODULE",
        help=f"also import MODULE for its exercises (repeatable; or ${EXTRA_CHECKS_ENV})",
    )
    args = parser.parse_args(argv)

    usage_errors = [e for p in args.notebooks if (e := _usage_error(p, args.checks))]
    if usage_errors:
        for message in usage_errors:
            print(f"error: {message}", file=sys.stderr)
        return 2

    runs = [run_notebook(p, args.timeout, args.checks, args.memory_limit) for p in args.notebooks]
    if args.json:
        print(json.dumps([run.to_dict() for run in runs], indent=2, ensure_ascii=False))
        return 0
    print("\n\n".join(format_run(run) for run in runs))
    if len(runs) > 1:
        total = sum(run.points for run in runs)
        possible = sum(run.max_points for run in runs)
        print(f"\ntotal points {_points(total)} / {_points(possible)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

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

From a shell, the grader runs a whole notebook in a fresh, confined kernel::

    python -m attn_course.grade exercises/01_score_matrix.ipynb [--json]
    attn-grade exercises/01_score_matrix.ipynb

It executes every code cell except the check cells (so editing or deleting a
check cell changes nothing), then runs the package's own check of each of the
notebook's exercises *in this process*, calling the student's functions in the
kernel (:mod:`attn_course.grading`), and prints the results. See
:func:`grade_notebook` and the comment above :func:`run_notebook` for the details.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import html
import importlib
import json
import math
import os
import re
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from attn_course.checks import CheckFailed, Exercise, all_exercises, exercises_for, get_exercise
from attn_course.grading import sandbox
from attn_course.grading.answers import (
    Answer,
    ForbiddenCall,
    LocalAnswer,
    StudentError,
    TimeLimitReached,
    short,
)
from attn_course.grading.intake import Rejected, course_notebook_in, read_notebook
from attn_course.grading.session import (
    WARM_MODULES,
    CellRun,
    KernelLost,
    KernelSession,
    Limits,
    RemoteAnswer,
    new_folder,
    package_copy,
    wall_backstop_s,
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
    "GraderError",
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


# --- grading a whole notebook in a confined kernel ----------------------------------------
#
# The grader never trusts the student's notebook to check itself, nor the student's kernel
# to decide anything:
#  1. it reads the file through attn_course.grading.intake (regular files only, capped) and
#     starts a kernel confined by attn_course.grading.sandbox in a throwaway folder that holds
#     only a copy of the notebook, importing a read-only copy of this package;
#  2. it imports the course's libraries there (no limit yet), then runs every code cell except
#     the check cells, each under a CPU-time limit (so editing or deleting a check cell
#     changes nothing);
#  3. for each exercise it runs the package's check *in this process*, with a RemoteAnswer
#     that sends each call's inputs to the kernel and gets the result back as data; the
#     comparison, the hints and the points never leave this process.
# A cell that kills or hangs the kernel is skipped in a fresh kernel; an exercise whose check
# kills it fails. After each kernel, every process it left behind is killed.

DEFAULT_CELL_TIMEOUT_S = 120.0
# The kernel's address-space cap. Importing torch and triton reserves ~1 GiB of it; the
# course's notebooks at the test size stay far below this.
DEFAULT_MEMORY_LIMIT_BYTES = 6 * 2**30
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


class GraderError(RuntimeError):
    """The grader itself cannot work here (no sandbox, a kernel that does not start)."""


def is_check_cell(cell: NotebookNode) -> bool:
    """A cell the grader skips: an nbgrader grade cell, or any non-solution cell calling check()."""
    meta = cell.metadata.get("nbgrader", {})
    if cell.cell_type != "code" or meta.get("solution"):
        return False
    return bool(meta.get("grade")) or _CHECK_CALL.search(cell.source) is not None


def not_attempted_hint(answer: str) -> str:
    """The hint of an exercise not attempted yet. The student reads it under the check cell,
    right below the stub, so it points at the cell above (and reads the same in feedback)."""
    return (
        f"write your code for {answer} in the cell above, in place of its "
        "`raise NotImplementedError()` line, and run it"
    )


def _not_attempted(exercise: Exercise, message: str = "not attempted yet") -> CheckResult:
    return CheckResult(
        exercise.id,
        exercise.title,
        NOT_ATTEMPTED,
        0.0,
        exercise.points,
        message,
        not_attempted_hint(exercise.answer),
    )


def _failed(exercise: Exercise, message: str, hint: str = "") -> CheckResult:
    return CheckResult(exercise.id, exercise.title, FAILED, 0.0, exercise.points, message, hint)


@dataclass
class _Grading:
    """What one notebook's grading has found so far, kept across kernel restarts."""

    nb: NotebookNode
    exercises: list[Exercise]
    limits: Limits
    problems: dict[int, CellProblem] = field(default_factory=dict)
    results: dict[str, CheckResult] = field(default_factory=dict)
    # Cells that killed, hung or broke the kernel: skipped when the notebook is run again.
    fatal_cells: set[int] = field(default_factory=set)

    def student_cells(self) -> list[int]:
        return [
            index
            for index, cell in enumerate(self.nb.cells)
            if cell.cell_type == "code" and not is_check_cell(cell) and cell.source.strip()
        ]

    def solution_cell(self, exercise: Exercise) -> int:
        for index, cell in enumerate(self.nb.cells):
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("solution") and meta.get("grade_id") == exercise.id:
                return index
        return -1


def warm_modules(nb: NotebookNode) -> list[str]:
    """The course libraries the notebook imports (imported before any time limit applies)."""
    found = ["attn_course.grading.kernel"]
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            else:
                continue
            for name in names:
                if name.split(".")[0] in WARM_MODULES and name not in found:
                    found.append(name)
    return found


def run_notebook(
    path: Path | str,
    timeout_s: float = DEFAULT_CELL_TIMEOUT_S,
    extra_checks: Sequence[str] = (),
    memory_limit_bytes: int | None = DEFAULT_MEMORY_LIMIT_BYTES,
    *,
    notebook: str | None = None,
    limits: Limits | None = None,
    confined: bool = True,
) -> GradingRun:
    """Grade one notebook in a confined kernel; see the comment above and :func:`grade_notebook`.

    ``notebook`` names the course notebook the file is (default: the file's stem).
    ``limits`` overrides ``timeout_s`` (CPU seconds per cell) and ``memory_limit_bytes``.
    ``confined=False`` runs the kernel without Landlock (only for trusted notebooks on a
    system without it). Raises GraderError if no kernel can be started.
    """
    shown = Path(path)
    load_extra_checks(extra_checks)
    exercises = list(exercises_for(notebook or shown.stem))
    if limits is None:
        limits = Limits(cell_cpu_s=timeout_s, memory_bytes=memory_limit_bytes)
    try:
        nb = read_notebook(shown)
    except Rejected as rejected:
        return GradingRun(shown, [_failed(e, rejected.message, rejected.hint) for e in exercises])
    if confined and sandbox.landlock_abi() < 1:
        raise GraderError(NO_SANDBOX)
    sandbox.become_subreaper()
    grading = _Grading(nb, exercises, limits)
    with tempfile.TemporaryDirectory(prefix="attn-grade-") as tmp:
        root = Path(tmp)
        try:
            _grade_in_kernels(grading, root, notebook or shown.stem, confined)
        finally:
            _make_removable(root)
    results = [grading.results[e.id] for e in exercises]
    problems = [grading.problems[i] for i in sorted(grading.problems)]
    return GradingRun(shown, results, problems)


NO_SANDBOX = (
    "this system has no Landlock (Linux 5.13 or newer), so a student's kernel cannot be "
    "confined; grade on a recent Linux, or pass --unconfined for notebooks you trust"
)


def _grade_in_kernels(grading: _Grading, root: Path, stem: str, confined: bool) -> None:
    """Run the notebook, restarting a fresh kernel after each cell or check that loses one."""
    import nbformat

    site_dir = package_copy(root)
    deadline = time.monotonic() + grading.limits.notebook_s
    warm = warm_modules(grading.nb)
    # Each restart either skips one more cell or settles one more exercise, so this ends.
    def new_session() -> KernelSession:
        folder = new_folder(root, "student")
        nbformat.write(grading.nb, str(folder / f"{stem}.ipynb"))
        return KernelSession(folder, site_dir, grading.limits, deadline, confined)

    for attempt in range(len(grading.nb.cells) + len(grading.exercises) + 1):
        session = None
        try:
            session = _started(new_session, warm, first=attempt == 0)
            _grade_in_session(session, grading)
            return
        except KernelLost as lost:
            if lost.how == "out of time":
                _out_of_time(grading)
                return
        finally:
            if session is not None:
                session.close()
    for exercise in grading.exercises:  # every restart was used up
        grading.results.setdefault(exercise.id, _failed(
            exercise, "grading stopped: the kernel was lost too many times", _DEAD_KERNEL_HINT))


# Tries the first kernel of a notebook gets: before any student cell ran, a kernel that dies
# is the machine's doing (a port another program took between its choice and its bind, a
# machine too loaded to answer), never the student's.
FIRST_START_TRIES = 3


def _started(new_session: Callable[[], KernelSession], warm: list[str], *, first: bool
             ) -> KernelSession:  # fmt: skip
    """A started session; the first of a notebook gets :data:`FIRST_START_TRIES` tries, then
    raises GraderError. Later ones raise KernelLost (the student's cells may be the cause)."""
    for tries_left in reversed(range(FIRST_START_TRIES if first else 1)):
        session = new_session()
        try:
            session.start(warm)
            return session
        except KernelLost as lost:
            session.close()
            if not first or lost.how == "out of time":
                raise
            if not tries_left:
                raise GraderError(f"the grading kernel did not start ({lost.how})") from None
    raise AssertionError("unreachable")


def _out_of_time(grading: _Grading) -> None:
    limit = grading.limits.notebook_s
    for exercise in grading.exercises:
        grading.results.setdefault(exercise.id, _failed(
            exercise, f"grading stopped: the notebook used up the {limit:g} s it may take",
            "look for cells that take very long, and run the notebook top to bottom yourself",
        ))  # fmt: skip


def _grade_in_session(session: KernelSession, grading: _Grading) -> None:
    """Run the student's cells, then check every exercise not graded yet.

    Raises KernelLost after recording what was lost, so that the caller can go on in a
    fresh kernel: a cell that lost the kernel is skipped from then on; an exercise whose
    check lost it is failed.
    """
    for index in grading.student_cells():
        if index in grading.fatal_cells:
            continue
        cell = grading.nb.cells[index]
        try:
            run = session.run_cell(cell.source)
        except KernelLost as lost:
            if lost.how != "out of time":
                grading.fatal_cells.add(index)
                grading.problems[index] = _fatal_problem(cell, index, lost.how)
            raise
        problem = _cell_problem(cell, index, run, grading.limits)
        if problem is None:
            grading.problems.pop(index, None)
        else:
            grading.problems[index] = problem

    for exercise in grading.exercises:
        if exercise.id in grading.results:
            continue
        try:
            result = _check_in(session, exercise)
        except KernelLost as lost:
            if lost.how != "out of time":
                message = f"the kernel {lost.how} while checking {exercise.id}"
                grading.results[exercise.id] = _failed(exercise, message, _DEAD_KERNEL_HINT)
            raise
        problem = grading.problems.get(grading.solution_cell(exercise))
        grading.results[exercise.id] = _blame_solution_cell(result, exercise, problem)


def _check_in(session: KernelSession, exercise: Exercise) -> CheckResult:
    """The package's check of ``exercise``, run here, on the answer living in the kernel."""
    described = session.internal("describe", exercise.answer)
    if not described.get("defined"):
        return _not_attempted(exercise, f"no `{exercise.answer}` is defined in the notebook")
    if described.get("stub"):
        return _not_attempted(exercise)
    answer = RemoteAnswer(session, exercise.answer, exercise.forbidden, exercise.timeout_s)
    return run_check(exercise, answer)


def _make_removable(root: Path) -> None:
    """Give every folder under ``root`` write permission back, so that it can be deleted
    (the package copy is read-only; a student may have locked their own files)."""
    for folder, dirs, _ in os.walk(root):
        for name in dirs:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(folder, name), 0o700)
    with contextlib.suppress(OSError):
        os.chmod(root, 0o700)


_DEAD_KERNEL_HINT = (
    "something crashed Python, used up the memory or ignored the interrupt; "
    "run the notebook top to bottom yourself"
)


def _fatal_problem(cell: NotebookNode, index: int, how: str) -> CellProblem:
    first_line = _first_line(cell)
    if how == "hung":
        text = "hung the kernel (it ignored the interrupt) and was skipped"
        return CellProblem(index + 1, first_line, text, timed_out=True)
    if how == "broken":
        text = "was interrupted in the middle of an import, which broke the kernel; it was skipped"
        return CellProblem(index + 1, first_line, text, timed_out=True)
    if how == "flooded":
        text = "printed so much that the kernel could no longer send output; it was skipped"
        return CellProblem(index + 1, first_line, text, timed_out=False)
    return CellProblem(index + 1, first_line, "crashed the kernel and was skipped", False)


def _first_line(cell: NotebookNode) -> str:
    return next((line for line in cell.source.splitlines() if line.strip()), "")[:60]


def _cell_problem(
    cell: NotebookNode, index: int, run: CellRun, limits: Limits
) -> CellProblem | None:
    first_line = _first_line(cell)
    if run.status == "timed out":
        text = f"ran past the {limits.cell_cpu_s:g} s time limit and was interrupted"
        return CellProblem(index + 1, first_line, text, timed_out=True)
    if run.status == "too much output":
        text = f"printed more than {limits.output_bytes / 2**20:g} MiB and was stopped"
        return CellProblem(index + 1, first_line, text, timed_out=False)
    if run.status == "error":
        detail = f": {run.evalue}" if run.evalue else ""
        return CellProblem(index + 1, first_line, short(f"raised {run.ename}{detail}"), False)
    return None


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
    **options: Any,
) -> list[CheckResult]:
    """Grade a student's notebook: one :class:`CheckResult` per exercise of it.

    The notebook's stem (``01_score_matrix``) selects the exercises, unless ``notebook=``
    names them. The notebook runs in a fresh, confined ``python3`` kernel in a throwaway
    folder, with ``ATTN_COURSE_SIZE=small`` unless set; every code cell runs except the
    check cells, each for at most ``timeout_s`` CPU seconds; the checks run in this process.
    ``extra_checks`` names modules that register more exercises (also read from
    ``$ATTN_COURSE_EXTRA_CHECKS``). The kernel's address space is capped at
    ``memory_limit_bytes``. A cell that crashes or hangs the kernel is skipped in a fresh
    one (see :func:`run_notebook`). Raises ValueError if the notebook has no exercises.
    """
    return run_notebook(path, timeout_s, extra_checks, memory_limit_bytes, **options).results


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


def _usage_error(path: Path, stem: str) -> str | None:
    if not path.exists() and not path.is_symlink():
        return f"{path}: no such file"
    if path.suffix.lower() != ".ipynb":
        return f"{path}: not a notebook (expected a .ipynb file)"
    try:
        read_notebook(path)
    except Rejected as rejected:
        return f"{path}: {rejected.message}"
    try:
        exercises_for(stem)
    except ValueError:
        known = ", ".join(course_notebooks())
        return (
            f"{path}: its name names none of the course notebooks ({known}); "
            "say which it is with --notebook STEM"
        )
    return None


def course_notebooks() -> list[str]:
    """The stems of the notebooks that have exercises, in course order."""
    return sorted({exercise.notebook for exercise in all_exercises()})


def notebook_of(path: Path) -> str:
    """The course notebook a file is, read from its name (``Copy of 01-Score-Matrix (2)``
    is ``01_score_matrix``); the file's stem when its name names none."""
    found = course_notebook_in(path.stem, course_notebooks())
    return found[0] if found else path.stem


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return value


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
        description="Grade exercise notebooks: run each in a fresh, confined kernel and check "
        "its answers with the course's checks, in this process. Exit status 0 when grading ran "
        "(whatever the score), 1 when the grader could not work, 2 on a usage error.",
    )
    parser.add_argument("notebooks", nargs="+", type=Path, metavar="NOTEBOOK.ipynb")
    parser.add_argument("--json", action="store_true", help="print machine-readable results")
    parser.add_argument("--out", type=Path, metavar="FILE",
                        help="write the machine-readable results to FILE instead")  # fmt: skip
    parser.add_argument(
        "--notebook",
        metavar="STEM",
        help="the course notebook these files are, e.g. 01_score_matrix (default: the one "
        "each file's name names, as in 'Copy of 01-Score-Matrix (2).ipynb')",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=DEFAULT_CELL_TIMEOUT_S,
        help="CPU seconds each notebook cell may use (default: %(default)g)",
    )
    parser.add_argument(
        "--notebook-limit",
        type=_positive_seconds,
        default=Limits.notebook_s,
        metavar="SECONDS",
        help="wall-clock seconds grading one notebook may take in all (default: %(default)g)",
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
    parser.add_argument(
        "--unconfined",
        action="store_true",
        help="run kernels without the Landlock sandbox (only for notebooks you trust, on a "
        "system without Landlock)",
    )
    args = parser.parse_args(argv)
    _die_with_the_class_grader()

    load_extra_checks(args.checks)
    stems = [args.notebook or notebook_of(p) for p in args.notebooks]
    usage_errors = [e for p, s in zip(args.notebooks, stems, strict=True)
                    if (e := _usage_error(p, s))]  # fmt: skip
    if usage_errors:
        for message in usage_errors:
            print(f"error: {message}", file=sys.stderr)
        return 2
    limits = Limits(cell_cpu_s=args.timeout, memory_bytes=args.memory_limit,
                    notebook_s=args.notebook_limit)  # fmt: skip
    try:
        runs = [
            run_notebook(p, notebook=s, limits=limits, confined=not args.unconfined)
            for p, s in zip(args.notebooks, stems, strict=True)
        ]
    except GraderError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.json or args.out:
        text = json.dumps([run.to_dict() for run in runs], indent=2, ensure_ascii=False)
        if args.out:
            _write_atomically(args.out, text + "\n")
        else:
            print(text)
        return 0
    print("\n\n".join(format_run(run) for run in runs))
    if len(runs) > 1:
        total = sum(run.points for run in runs)
        possible = sum(run.max_points for run in runs)
        print(f"\ntotal points {_points(total)} / {_points(possible)}")
    return 0


# Set by attn-gradebook for the grading processes it starts: its pid.
PARENT_ENV = "ATTN_COURSE_GRADEBOOK_PID"


def _die_with_the_class_grader() -> None:
    """When started by attn-gradebook, die with it (and the kernel dies with us)."""
    parent = os.environ.get(PARENT_ENV)
    if parent and sandbox.die_with_parent() and str(os.getppid()) != parent:
        raise SystemExit("error: the class grader that started this process is gone")


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


if __name__ == "__main__":
    raise SystemExit(main())

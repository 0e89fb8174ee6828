"""The course's exercise checks: one registry, one module per topic.

An exercise is a function the student writes in ``exercises/NN_topic.ipynb``.
Its check lives here, in the package, never in the student's notebook, so a
student cannot edit it and every grader (the notebook's ``check(...)`` cell,
``python -m attn_course.grade``, nbgrader's autograde) runs the same code.

A check is a plain function that receives the student's answer and raises
:class:`CheckFailed` with a hint when it is wrong::

    @exercise("score_bytes", notebook="01_score_matrix", answer="score_matrix_bytes",
              title="Bytes of one score matrix", points=1)
    def _check_score_bytes(score_matrix_bytes):
        expect_equal(score_matrix_bytes(8, 4), 256, "n=8, 4 bytes: 8*8*4",
                     hint="n x n entries, each dtype_bytes bytes")

The answer a check receives is an :class:`~attn_course.grading.answers.Answer`: calling it
calls the student's function (in the notebook's process, or in the student's kernel when
the class grader runs the check in its own process) and returns the result as data, so a
check must only *call* it, never inspect it. ``answer.through(helper, ...)`` runs a
registered helper on it (a kernel launch, a memory or work probe). An exception of the
student's code arrives as a :class:`~attn_course.grading.answers.StudentError`; a routine
the exercise forbids (``forbidden=``) as a
:class:`~attn_course.grading.answers.ForbiddenCall`.

If the student's code raises ``NotImplementedError`` (the stub nbgrader leaves
in place of a solution) the exercise counts as *not attempted*; any other
exception, or running out of time, fails it.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from attn_course import course
from attn_course.grading.answers import Forbidden, StudentError

__all__ = [
    "CheckFailed",
    "Exercise",
    "Forbidden",
    "exercise",
    "expect_close",
    "expect_equal",
    "expect_raises",
    "for_all",
    "get_exercise",
    "exercises_for",
    "all_exercises",
]


def topic_modules() -> list[str]:
    """The checks module of every lesson of the course map, each registering its exercises.

    Named by the map (:data:`attn_course.course.LESSONS`), so a new lesson's checks need
    only its map entry. Imported lazily by the look-ups below so that importing
    attn_course.checks stays cheap. Modules whose name starts with ``_`` are shared helpers.
    """
    return [lesson.checks for lesson in course.LESSONS if lesson.checks]


class CheckFailed(AssertionError):
    """A wrong answer. ``str(exc)`` says what was wrong, ``exc.hint`` how to fix it."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class Exercise:
    """One graded exercise.

    id:       unique across the course; also the nbgrader ``grade_id`` of its solution cell
    notebook: stem of the notebook it belongs to, e.g. ``"01_score_matrix"``
    answer:   name the student's answer is bound to in the notebook
    title:    one line shown in feedback
    points:   points it is worth in a gradebook
    check:    raises CheckFailed on a wrong answer, returns None on a right one
    timeout_s: CPU seconds the student's code may use during the check (all calls together)
    forbidden: routines the answer must not call (the ones the exercise asks to write)
    """

    id: str
    notebook: str
    answer: str
    title: str
    points: float
    check: Callable[[Any], None]
    timeout_s: float = 30.0
    forbidden: tuple[Forbidden, ...] = ()


_REGISTRY: dict[str, Exercise] = {}


def exercise(
    id: str,
    *,
    notebook: str,
    answer: str,
    title: str,
    points: float = 1.0,
    timeout_s: float = 30.0,
    forbidden: Sequence[Forbidden] = (),
) -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
    """Register the decorated function as the check of exercise ``id``."""

    def register(check: Callable[[Any], None]) -> Callable[[Any], None]:
        if id in _REGISTRY:
            raise ValueError(f"exercise id {id!r} is registered twice")
        _REGISTRY[id] = Exercise(
            id, notebook, answer, title, points, check, timeout_s, tuple(forbidden)
        )
        return check

    return register


def _load_topics() -> None:
    for name in topic_modules():
        importlib.import_module(name)


def all_exercises() -> list[Exercise]:
    """Every registered exercise, in course order (notebook, then registration order)."""
    _load_topics()
    return sorted(_REGISTRY.values(), key=lambda e: e.notebook)


def exercises_for(notebook: str) -> list[Exercise]:
    """The exercises of one notebook (stem such as ``"01_score_matrix"``), in order."""
    found = [e for e in all_exercises() if e.notebook == notebook]
    if not found:
        known = sorted({e.notebook for e in all_exercises()})
        raise ValueError(f"notebook {notebook!r} has no exercises; known notebooks: {known}")
    return found


def get_exercise(id: str) -> Exercise:
    """Look an exercise up by id; the error lists the ids that exist."""
    _load_topics()
    try:
        return _REGISTRY[id]
    except KeyError:
        raise ValueError(f"unknown exercise id {id!r}; known ids: {sorted(_REGISTRY)}") from None


# --- helpers that check functions use -------------------------------------------------


def expect_equal(got: Any, expected: Any, case: str, hint: str = "") -> None:
    """Fail unless ``got == expected`` exactly (ints, strings, tuples)."""
    if got != expected:
        raise CheckFailed(f"{case}: expected {expected!r}, got {got!r}", hint)


def expect_close(
    got: Any, expected: float, case: str, hint: str = "", rel: float = 1e-6, abs: float = 0.0
) -> None:
    """Fail unless ``got`` is a finite number within ``rel``/``abs`` of ``expected``."""
    try:
        value = float(got)
    except (TypeError, ValueError):
        raise CheckFailed(f"{case}: expected a number, got {type(got).__name__}", hint) from None
    if not math.isfinite(value) or not math.isclose(value, expected, rel_tol=rel, abs_tol=abs):
        raise CheckFailed(f"{case}: expected {expected:.6g}, got {value:.6g}", hint)


def expect_raises(
    fn: Callable[..., Any], exc_type: type[BaseException], case: str, hint: str = ""
) -> None:
    """Fail unless calling ``fn()`` raises ``exc_type`` (bad input must be refused).

    ``fn`` calls the student's answer, whose exceptions arrive as StudentError.
    """
    try:
        fn()
    except StudentError as error:
        if error.is_a(exc_type):
            return
        raise CheckFailed(
            f"{case}: expected {exc_type.__name__}, got {error.type_name}: {error.message}", hint
        ) from None
    raise CheckFailed(f"{case}: expected {exc_type.__name__}, nothing was raised", hint)


def for_all(check_one: Callable[..., None], *, examples: int = 40, **strategies: Any) -> None:
    """Run ``check_one(**case)`` on cases that hypothesis draws from ``strategies``.

    For properties with a closed form: ``for_all(one, examples=50, n=st.integers(1, 10**6))``.
    Derandomised, so every run (and every student) gets the same cases and feedback is
    reproducible; and shrunk, so when a case fails, the message the student reads is that
    of the *smallest* failing case hypothesis can find. A crash of the student's code is
    reported with the case that caused it.
    """
    from hypothesis import HealthCheck, Phase, given, settings

    @settings(
        derandomize=True,
        database=None,
        deadline=None,
        max_examples=examples,
        phases=(Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        print_blob=False,
    )
    @given(**strategies)
    def run(**case: Any) -> None:
        try:
            check_one(**case)
        except StudentError as error:
            shown = ", ".join(f"{name}={value!r}" for name, value in case.items())
            raise CheckFailed(f"{shown}: {error}") from None

    run()

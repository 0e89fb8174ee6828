"""The course's exercise checks: one registry, one module per topic.

An exercise is a function the student writes in ``exercises/NN_topic.ipynb``.
Its check lives here, in the package, never in the student's notebook, so a
student cannot edit it and every grader (the notebook's ``check(...)`` cell,
``python -m attn_course.grade``, nbgrader's autograde) runs the same code.

A check is a plain function that receives the student's answer (usually a
function) and raises :class:`CheckFailed` with a hint when it is wrong::

    @exercise("score_bytes", notebook="01_score_matrix", answer="score_matrix_bytes",
              title="Bytes of one score matrix", points=1)
    def _check_score_bytes(score_matrix_bytes):
        expect_equal(score_matrix_bytes(8, 4), 256, "n=8, 4 bytes: 8*8*4",
                     hint="n x n entries, each dtype_bytes bytes")

If the student's code raises ``NotImplementedError`` (the stub nbgrader leaves
in place of a solution) the exercise counts as *not attempted*; any other
exception, or a time-out, fails it.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CheckFailed",
    "Exercise",
    "exercise",
    "expect_close",
    "expect_equal",
    "expect_raises",
    "get_exercise",
    "exercises_for",
    "all_exercises",
]



def topic_modules() -> list[str]:
    """Every module of this package: one per topic, each registering its exercises.

    Found on disk, so a new topic's checks module needs no list to be edited. Imported
    lazily by the look-ups below so that importing attn_course.checks stays cheap.
    """
    return [f"{__name__}.{info.name}" for info in pkgutil.iter_modules(__path__)]


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
    timeout_s: wall-clock limit for running the check on the student's answer
    """

    id: str
    notebook: str
    answer: str
    title: str
    points: float
    check: Callable[[Any], None]
    timeout_s: float = 30.0


_REGISTRY: dict[str, Exercise] = {}


def exercise(
    id: str,
    *,
    notebook: str,
    answer: str,
    title: str,
    points: float = 1.0,
    timeout_s: float = 30.0,
) -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
    """Register the decorated function as the check of exercise ``id``."""

    def register(check: Callable[[Any], None]) -> Callable[[Any], None]:
        if id in _REGISTRY:
            raise ValueError(f"exercise id {id!r} is registered twice")
        _REGISTRY[id] = Exercise(id, notebook, answer, title, points, check, timeout_s)
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
    """Fail unless calling ``fn()`` raises ``exc_type`` (bad input must be refused)."""
    try:
        fn()
    except exc_type:
        return
    except NotImplementedError:
        raise
    except Exception as other:  # noqa: BLE001 - reported to the student
        raise CheckFailed(
            f"{case}: expected {exc_type.__name__}, got {type(other).__name__}: {other}", hint
        ) from None
    raise CheckFailed(f"{case}: expected {exc_type.__name__}, nothing was raised", hint)

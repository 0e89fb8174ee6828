"""Wrong answers to every exercise, written the way students write them.

One module per notebook (``nb01.py`` …). Each defines ``WRONG``: for every exercise id of
its notebook, a list of :class:`Wrong` answers, each with the words its hint (or message)
must contain; and optionally ``RIGHT``: other correct answers the check must accept. The
worked solution of every exercise is taken from ``solutions/NN_topic.py`` itself
(:func:`solution_answers`), so the corpus can never drift from what students are shown.

``tests/test_checks.py`` asserts that the solution passes, every right answer passes, and
every wrong answer fails with the expected words; and that every exercise of the course
has at least :data:`MIN_WRONG` wrong answers (:data:`MIN_WRONG_TWO_POINTS` for those worth
two points or more). A check that no wrong answer fails is a defect.
"""

from __future__ import annotations

import functools
import linecache
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from attn_course.course import COURSE_ROOT

MIN_WRONG = 4
MIN_WRONG_TWO_POINTS = 6


@dataclass(frozen=True)
class Wrong:
    """A plausible wrong answer: what the student did, the answer, words the feedback names."""

    mistake: str
    answer: Callable[..., Any] | Any
    says: str  # must occur in the failure's message or hint (case-insensitive)


@functools.cache
def solution_answers(stem: str) -> dict[str, Any]:
    """The namespace the worked solutions of ``solutions/<stem>.py`` leave behind.

    Runs every code cell except the check cells, as a student's "Run All" would.
    """
    from attn_course.classroom.build import notebook_from_script
    from attn_course.grade import is_check_cell

    namespace: dict[str, Any] = {"__name__": f"solutions_{stem}"}
    cells = notebook_from_script(COURSE_ROOT / "solutions" / f"{stem}.py").cells
    for number, cell in enumerate(cells, start=1):
        if cell.cell_type == "code" and not is_check_cell(cell):
            # Registered with linecache, so that @triton.jit (which reads a kernel's source)
            # and tracebacks find the cell's lines, as in Jupyter.
            filename = f"<solutions/{stem}.py, cell {number}>"
            linecache.cache[filename] = (len(cell.source), None,
                                         cell.source.splitlines(True), filename)  # fmt: skip
            exec(compile(cell.source, filename, "exec"), namespace)  # noqa: S102
    return namespace

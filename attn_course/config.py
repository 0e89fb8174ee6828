"""One knob for the size of heavy notebook cells.

Learners get full-size experiments by default. The test suite (``make test``)
sets ``ATTN_COURSE_SIZE=small`` so that nbval still runs every code path, just
on small inputs, in seconds rather than minutes.

    ATTN_COURSE_SIZE=full   # default: the sizes the notebook's text talks about
    ATTN_COURSE_SIZE=small  # CI: same cells, small n

A second, display-only knob: ``ATTN_COURSE_STATIC=1`` is set by the static HTML
edition (``python -m attn_course.classroom.site``) for the kernels it runs, so that the
interactive calculators show a frozen figure instead of live widgets
(:func:`static_site`).
"""

from __future__ import annotations

import os
from typing import Literal, TypeVar

SIZE_ENV = "ATTN_COURSE_SIZE"
SIZES = ("full", "small")
STATIC_ENV = "ATTN_COURSE_STATIC"

T = TypeVar("T")


def course_size() -> Literal["full", "small"]:
    """The size heavy cells should run at, read from ``$ATTN_COURSE_SIZE``."""
    value = os.environ.get(SIZE_ENV, "full").strip().lower() or "full"
    if value not in SIZES:
        raise ValueError(f"{SIZE_ENV} must be one of {SIZES}, got {value!r}")
    return value  # type: ignore[return-value]


def pick(full: T, small: T) -> T:
    """Return ``full`` for learners and ``small`` when the suite runs small.

    >>> ns = pick(full=[1024, 2048, 4096, 8192], small=[64, 128])
    """
    return small if course_size() == "small" else full


def static_site() -> bool:
    """True while the static HTML edition runs the notebook (``$ATTN_COURSE_STATIC`` is set).

    A static page has no kernel behind it, so widgets cannot react; the calculators use this
    to display plain figures and a note instead (see :func:`attn_course.ui.base.live_or_static`).
    """
    return os.environ.get(STATIC_ENV, "").strip().lower() in ("1", "true", "yes")

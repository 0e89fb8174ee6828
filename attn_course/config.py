"""One knob for the size of heavy notebook cells.

Learners get full-size experiments by default. The test suite (``make test``)
sets ``ATTN_COURSE_SIZE=small`` so that nbval still runs every code path, just
on small inputs, in seconds rather than minutes.

    ATTN_COURSE_SIZE=full   # default: the sizes the notebook's text talks about
    ATTN_COURSE_SIZE=small  # CI: same cells, small n
"""

from __future__ import annotations

import os
from typing import Literal, TypeVar

SIZE_ENV = "ATTN_COURSE_SIZE"
SIZES = ("full", "small")

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

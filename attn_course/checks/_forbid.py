"""Routines that several exercises forbid, named once (see :class:`~attn_course.checks.Forbidden`).

An exercise that asks the student to *write* a routine forbids the library routine that
does it, and the course's own reference function that the check compares against:
an answer that calls them would pass without the student having written anything.
"""

from __future__ import annotations

from attn_course.checks import Forbidden

SOFTMAX = Forbidden(
    names=(
        "aten._softmax",
        "aten._safe_softmax",
        "aten._log_softmax",
        "aten.logsumexp",
        "attn_course.scores.stable_softmax",
        "attn_course.scores.naive_softmax",
    ),
    why="this exercise is the softmax itself: write it from torch.exp, a max and a sum "
    "(torch.softmax, F.softmax, log_softmax and logsumexp do the max-shift for you)",
)

ATTENTION = Forbidden(
    names=(
        "torch.nn.functional.scaled_dot_product_attention",
        "torch.nn.functional.multi_head_attention_forward",
        "aten.scaled_dot_product_attention",
        "aten._scaled_dot_product_flash_attention_for_cpu",
        "aten._scaled_dot_product_attention_math",
        "attn_course.scores.naive_attention",
        "attn_course.tiling.tiled_attention",
        "attn_course.tiling.tiled_attention_loops",
        "attn_course.kernels.flash.flash_attention",
        "attn_course.kernels.flash.flash_attention_forward",
    ),
    why="this exercise is attention itself: compute the scores, the softmax and P @ V "
    "yourself instead of calling scaled_dot_product_attention or the course's version",
)


def reference(*names: str, what: str) -> Forbidden:
    """Forbid the course's own reference function(s) for an exercise (``what`` it computes)."""
    return Forbidden(
        names=tuple(names),
        why=f"{names[0]} is the course's reference for {what}, which the check compares "
        "with: write your own from the formula",
    )

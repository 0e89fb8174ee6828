"""Checks of notebook 06 (sparse attention).

Each check compares the student's function with the package's own patterns
(:mod:`attn_course.sparse`) on small hand-picked inputs, and when an answer is wrong tries
the usual mistakes (a window one key too wide, a window that looks into the future, a
global token that only sees or is only seen, floor instead of ceiling) to name the one made.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from attn_course.checks import CheckFailed, exercise, expect_equal, expect_raises
from attn_course.sparse import longformer_pattern, sliding_window_pattern, sliding_window_tiles

NOTEBOOK = "06_sparse_attention"


def _expect_mask(
    got: Any, expected: torch.Tensor, case: str, wrong: dict[str, torch.Tensor]
) -> None:
    """Fail unless ``got`` is a bool tensor equal to ``expected``; name a known mistake."""
    if not isinstance(got, torch.Tensor):
        raise CheckFailed(f"{case}: expected a torch.Tensor, got {type(got).__name__}",
                          "return a boolean tensor of shape (n, n)")  # fmt: skip
    if got.shape != expected.shape:
        raise CheckFailed(f"{case}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}",
                          "one row per query, one column per key: shape (n, n)")  # fmt: skip
    if got.dtype != torch.bool:
        raise CheckFailed(f"{case}: expected dtype torch.bool, got {got.dtype}",
                          "comparisons such as (j <= i) give bool tensors; "
                          "combine them with & and |")  # fmt: skip
    if torch.equal(got, expected):
        return
    for hint, mask in wrong.items():
        if torch.equal(got, mask):
            raise CheckFailed(f"{case}: the mask differs from the expected one", hint)
    first = (got != expected).nonzero()[0].tolist()
    raise CheckFailed(
        f"{case}: entry (query {first[0]}, key {first[1]}) should be "
        f"{bool(expected[first[0], first[1]])}",
        "True means 'query i may attend key j'; build i and j with torch.arange and broadcast",
    )


# --- exercise 1: the sliding-window mask ------------------------------------------------------


@exercise(
    "sliding_window_mask",
    notebook=NOTEBOOK,
    answer="sliding_window_mask",
    title="The sliding-window (Mistral) mask",
    points=1,
)
def check_sliding_window_mask(sliding_window_mask: Callable[[int, int], torch.Tensor]) -> None:
    for n, window in ((1, 1), (5, 1), (6, 3), (4, 10), (10, 4), (7, 7)):
        i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
        wrong = {
            "the window is one key too wide: query i sees keys i − window + 1 .. i, "
            "`window` keys in all, itself included": (j <= i) & (i - j <= window),
            "the window looks into the future: a causal window has j <= i": (i - j).abs() < window,
            "the window is one key too narrow: query i must see itself (j = i) and "
            "window − 1 keys before it": (j < i) & (i - j < window),
        }
        expected = sliding_window_pattern(n, window).dense_mask()
        _expect_mask(sliding_window_mask(n, window), expected, f"n={n}, window={window}", wrong)
    for args in ((4, 0), (0, 3), (4, -1)):
        expect_raises(lambda args=args: sliding_window_mask(*args), ValueError,
                      f"sliding_window_mask{args}",
                      "refuse n < 1 or window < 1 with a ValueError that names "
                      "the parameter")  # fmt: skip


# --- exercise 2: the Longformer mask -----------------------------------------------------------


@exercise(
    "longformer_mask",
    notebook=NOTEBOOK,
    answer="longformer_mask",
    title="A Longformer mask: local band plus global tokens",
    points=2,
)
def check_longformer_mask(longformer_mask: Callable[..., torch.Tensor]) -> None:
    cases = ((8, 1, [0]), (10, 2, [0, 5]), (6, 0, [3]), (5, 1, []), (12, 3, [11, 0]))
    for n, radius, global_tokens in cases:
        i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
        band = (i - j).abs() <= radius
        is_global = torch.zeros(n, dtype=torch.bool)
        is_global[list(global_tokens)] = True
        wrong = {
            "global tokens must also *be seen*: every query attends a global key "
            "(the column of a global token is all True)": band | is_global[:, None],
            "global tokens must also *see*: a global query attends every key "
            "(the row of a global token is all True)": band | is_global[None, :],
            "the band is |i − j| <= radius, both sides of the diagonal (Longformer's encoder "
            "is not causal)": ((i - j >= 0) & (i - j <= radius)) | is_global[:, None]
            | is_global[None, :],
            "the band is |i − j| <= radius: radius keys on each side, the diagonal included":
            ((i - j).abs() < radius) | is_global[:, None] | is_global[None, :],
        }  # fmt: skip
        expected = longformer_pattern(n, radius, global_tokens).dense_mask()
        got = longformer_mask(n, radius, global_tokens)
        _expect_mask(got, expected, f"n={n}, radius={radius}, global_tokens={global_tokens}", wrong)


# --- exercise 3: tiles of a sliding window ------------------------------------------------------


@exercise(
    "window_tile_count",
    notebook=NOTEBOOK,
    answer="window_tile_count",
    title="Count the tiles a sliding window visits",
    points=1,
)
def check_window_tile_count(window_tile_count: Callable[[int, int, int], int]) -> None:
    cases = ((64, 16, 16), (64, 17, 16), (100, 1, 10), (1000, 100, 32), (16, 64, 16),
             (5, 3, 8), (4096, 512, 128), (65, 16, 16))  # fmt: skip
    for n, window, block in cases:
        expected = sliding_window_tiles(n, window, block)
        got = window_tile_count(n, window, block)
        if got == expected:
            continue
        t = math.ceil(n / block)
        c_floor = 1 + (window - 1) // block
        wrong = {
            t * (t + 1) // 2: "that is every causal tile: a key block entirely older than "
            "i − window + 1 for every row of the query block is skipped",
            sum(min(i + 1, 1 + math.ceil(window / block)) for i in range(t)):
            "the window spans keys i − window + 1 .. i: it reaches (window − 1) tokens back, "
            "so c = 1 + ceil((window − 1) / block) key blocks per query block",
            sum(min(i + 1, c_floor) for i in range(t)):
            "a window that reaches (window − 1) tokens back can straddle one more block "
            "boundary: use ceil, c = 1 + ceil((window − 1) / block)",
            sum(1 + math.ceil((window - 1) / block) for _ in range(t)):
            "the first query blocks have fewer key blocks before them: block I sees at "
            "most I + 1 key blocks (min(I + 1, c))",
        }  # fmt: skip
        expect_equal(got, expected, f"n={n}, window={window}, block={block}",
                     wrong.get(got, "per query block I count the key blocks from "
                               "floor(max(0, I·block − window + 1) / block) to I, "
                               "and add up"))  # fmt: skip

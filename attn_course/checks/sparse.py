"""Checks of notebook 06 (sparse attention).

Each check compares the student's function with the package's own patterns and block
layouts (:mod:`attn_course.sparse`) on hand-picked inputs and on cases hypothesis draws
(small n, every window, radius, block and set of global tokens), and when an answer is
wrong reproduces the usual mistakes (a window one key too wide, a window that looks into
the future, a global token that only sees or is only seen, floor instead of ceiling, a
global block counted twice) to name the one made. The tile counts are also asked for
n = 10⁶, where the n × n mask (10¹² entries) cannot be built: they must be counted per
block. The package's routines that compute the answers are forbidden.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import torch
from hypothesis import strategies as st

from attn_course.checks import CheckFailed, Forbidden, exercise, expect_equal, for_all
from attn_course.grading.answers import StudentError
from attn_course.sparse import longformer_pattern, sliding_window_pattern, sliding_window_tiles

NOTEBOOK = "06_sparse_attention"

# The package's patterns, their masks and their layouts: each computes an answer.
_PATTERNS = (
    "attn_course.sparse.sliding_window_pattern",
    "attn_course.sparse.local_pattern",
    "attn_course.sparse.causal_pattern",
    "attn_course.sparse.longformer_pattern",
    "attn_course.sparse.make_pattern",
    "attn_course.sparse.mask_and",
    "attn_course.sparse.mask_or",
    "attn_course.sparse.SparsePattern.dense_mask",
    "attn_course.sparse.SparsePattern.layout",
    "attn_course.sparse.flex_block_layout",
    "attn_course.sparse.sliding_window_tiles",
)
PATTERNS = Forbidden(
    names=_PATTERNS,
    why="the package's patterns (sliding_window_pattern, longformer_pattern, their "
    "dense_mask and layout, sliding_window_tiles) are the course's reference, which the "
    "check compares with: write your own from the definition",
)

_NOT_DENSE = (
    "count per query block (a loop over the ⌈n / block⌉ query blocks, or a closed form); "
    "don't build the n × n mask: at n = 10⁶ it has 10¹² entries"
)


def _call(answer: Callable[..., Any], case: str, *args: Any, hint: str = "") -> Any:
    """``answer(*args)``; a crash of the student's code fails with the case named."""
    try:
        return answer(*args)
    except StudentError as error:
        raise CheckFailed(f"{case}: {error}", hint) from None


def _expect_refused(call: Callable[[], Any], case: str, parameter: str) -> None:
    """``call()`` must raise a ValueError whose message names ``parameter``."""
    hint = f"refuse it with a ValueError that names the parameter ({parameter})"
    try:
        call()
    except StudentError as error:
        if not error.is_a(ValueError):
            raise CheckFailed(f"{case}: expected ValueError, got {error.type_name}: "
                              f"{error.message}", hint) from None  # fmt: skip
        if not re.search(rf"\b{re.escape(parameter)}\b", error.message):
            raise CheckFailed(f"{case}: the ValueError says {error.message!r}, which does not "
                              f"name {parameter!r}", hint) from None  # fmt: skip
        return
    raise CheckFailed(f"{case}: expected ValueError, nothing was raised", hint)


def _grid(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.arange(n)[:, None], torch.arange(n)[None, :]


def _expect_mask(
    got: Any, expected: torch.Tensor, case: str, wrong: Sequence[tuple[str, torch.Tensor]]
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
    for hint, mask in wrong:
        if torch.equal(got, mask.expand_as(expected)):
            raise CheckFailed(f"{case}: the mask differs from the expected one", hint)
    first = (got != expected).nonzero()[0].tolist()
    raise CheckFailed(
        f"{case}: entry (query {first[0]}, key {first[1]}) should be "
        f"{bool(expected[first[0], first[1]])}",
        "True means 'query i may attend key j'; build i and j with torch.arange and broadcast",
    )


def _global_tokens(n: int, drawn: Sequence[int]) -> list[int]:
    """Drawn indices folded into [0, n), duplicates dropped, the drawn order kept."""
    return list(dict.fromkeys(t % n for t in drawn))


# --- exercise 1: the sliding-window mask ------------------------------------------------------


def _expect_window_mask(got: Any, n: int, window: int) -> None:
    i, j = _grid(n)
    wrong = [
        ("the window is one key too wide: query i sees keys i − window + 1 .. i, "
         "`window` keys in all, itself included", (j <= i) & (i - j <= window)),
        ("the window looks into the future: a causal window has j <= i", (i - j).abs() < window),
        ("the window is one key too narrow: query i must see itself (j = i) and "
         "window − 1 keys before it", (j < i) & (i - j < window)),
        ("the window is one key too narrow: `window` counts the keys query i sees, itself "
         "included (i − j < window)", (j <= i) & (i - j < window - 1)),
        ("rows are queries, columns keys: query i (row) sees keys j <= i, the lower "
         "triangle", (j >= i) & (j - i < window)),
    ]  # fmt: skip
    expected = sliding_window_pattern(n, window).dense_mask()
    _expect_mask(got, expected, f"n={n}, window={window}", wrong)


@exercise(
    "sliding_window_mask",
    notebook=NOTEBOOK,
    answer="sliding_window_mask",
    title="The sliding-window (Mistral) mask",
    points=1,
    forbidden=[PATTERNS],
)
def check_sliding_window_mask(sliding_window_mask: Callable[[int, int], torch.Tensor]) -> None:
    for n, window in ((10, 4), (1, 1), (5, 1), (6, 3), (4, 10), (7, 7)):
        got = _call(sliding_window_mask, f"sliding_window_mask({n}, {window})", n, window)
        _expect_window_mask(got, n, window)
    for_all(lambda n, window: _expect_window_mask(sliding_window_mask(n, window), n, window),
            examples=30, n=st.integers(1, 40), window=st.integers(1, 50))  # fmt: skip
    for args, parameter in (((4, 0), "window"), ((0, 3), "n"), ((4, -1), "window"),
                            ((-2, 2), "n")):  # fmt: skip
        _expect_refused(lambda args=args: sliding_window_mask(*args),
                        f"sliding_window_mask{args}", parameter)  # fmt: skip


# --- exercise 2: the Longformer mask -----------------------------------------------------------


def _expect_longformer_mask(got: Any, n: int, radius: int, global_tokens: list[int]) -> None:
    i, j = _grid(n)
    band = (i - j).abs() <= radius
    is_global = torch.zeros(n, dtype=torch.bool)
    is_global[global_tokens] = True
    row, column = is_global[:, None], is_global[None, :]
    first = torch.zeros(n, dtype=torch.bool)
    first[: len(global_tokens)] = True
    wrong = [
        ("global tokens must also *see*: a global query attends every key "
         "(the row of a global token is all True)", band | column),
        ("global tokens must also *be seen*: every query attends a global key "
         "(the column of a global token is all True)", band | row),
        ("the global tokens are missing: their rows and their columns are all True", band),
        ("the band is |i − j| <= radius, both sides of the diagonal (Longformer's encoder "
         "is not causal)", ((i - j >= 0) & (i - j <= radius)) | row | column),
        ("the band is one too narrow: |i − j| <= radius, radius keys on each side and the "
         "diagonal", ((i - j).abs() < radius) | row | column),
        ("the band is one too wide: |i − j| <= radius, not radius + 1",
         ((i - j).abs() <= radius + 1) | row | column),
        ("global_tokens lists token *indices* (e.g. [0, 5]), not a count of leading tokens",
         band | first[:, None] | first[None, :]),
    ]  # fmt: skip
    expected = longformer_pattern(n, radius, global_tokens).dense_mask()
    _expect_mask(got, expected, f"n={n}, radius={radius}, global_tokens={global_tokens}", wrong)


@exercise(
    "longformer_mask",
    notebook=NOTEBOOK,
    answer="longformer_mask",
    title="A Longformer mask: local band plus global tokens",
    points=2,
    forbidden=[PATTERNS],
)
def check_longformer_mask(longformer_mask: Callable[..., torch.Tensor]) -> None:
    cases = ((10, 2, [0, 5]), (8, 1, [0]), (6, 0, [3]), (5, 1, []), (12, 3, [11, 0]),
             (1, 0, [0]), (7, 9, [2]), (9, 1, [4, 5, 6]))  # fmt: skip
    hint = ("global_tokens may be empty ([]) or unsorted: torch.tensor([]) is a float tensor, "
            "index with a list or torch.tensor(global_tokens, dtype=torch.long)")  # fmt: skip
    for n, radius, global_tokens in cases:
        case = f"longformer_mask({n}, {radius}, {global_tokens})"
        got = _call(longformer_mask, case, n, radius, list(global_tokens), hint=hint)
        _expect_longformer_mask(got, n, radius, global_tokens)

    def one(n: int, radius: int, drawn: list[int]) -> None:
        tokens = _global_tokens(n, drawn)
        got = _call(longformer_mask, f"longformer_mask({n}, {radius}, {tokens})", n, radius,
                    list(tokens), hint=hint)  # fmt: skip
        _expect_longformer_mask(got, n, radius, tokens)

    for_all(one, examples=40, n=st.integers(1, 40), radius=st.integers(0, 45),
            drawn=st.lists(st.integers(0, 1000), max_size=4))  # fmt: skip


# --- exercise 3: tiles of a sliding window ------------------------------------------------------


def _window_mistakes(n: int, window: int, block: int) -> list[tuple[int, str]]:
    t = math.ceil(n / block)
    c = 1 + math.ceil((window - 1) / block)
    return [
        (t * (t + 1) // 2, "that is every causal tile: a key block entirely older than "
         "i − window + 1 for every row of the query block is skipped"),
        (sum(min(i + 1, 1 + math.ceil(window / block)) for i in range(t)),
         "the window spans keys i − window + 1 .. i: it reaches (window − 1) tokens back, "
         "so c = 1 + ceil((window − 1) / block) key blocks per query block"),
        (sum(min(i + 1, 1 + (window - 1) // block) for i in range(t)),
         "a window that reaches (window − 1) tokens back can straddle one more block "
         "boundary: use ceil, c = 1 + ceil((window − 1) / block)"),
        (t * c, "the first query blocks have fewer key blocks before them: block I sees at "
         "most I + 1 key blocks (min(I + 1, c))"),
        (sum(min(i + 1, c) for i in range(n // block)),
         "the last block may be short: there are ceil(n / block) query blocks, a partial "
         "last one included (floor drops it)"),
    ]  # fmt: skip


def _expect_window_tiles(got: Any, n: int, window: int, block: int, what: str = "") -> None:
    expected = sliding_window_tiles(n, window, block)
    if got == expected and isinstance(got, int) and not isinstance(got, bool):
        return
    hint = next((h for value, h in _window_mistakes(n, window, block) if got == value),
                "per query block I count the key blocks from floor(max(0, I·block − window "
                "+ 1) / block) to I, and add up")  # fmt: skip
    case = f"n={n}, window={window}, block={block}{what}"
    if got == expected:
        raise CheckFailed(f"{case}: expected the integer {expected}, got {got!r}",
                          "a count of tiles is an int: use //, math.ceil, not /")  # fmt: skip
    expect_equal(got, expected, case, hint)


@exercise(
    "window_tile_count",
    notebook=NOTEBOOK,
    answer="window_tile_count",
    title="Count the tiles a sliding window visits",
    points=1,
    forbidden=[PATTERNS],
)
def check_window_tile_count(window_tile_count: Callable[[int, int, int], int]) -> None:
    cases = ((64, 16, 16), (64, 17, 16), (100, 1, 10), (1000, 100, 32), (16, 64, 16),
             (5, 3, 8), (4096, 512, 128), (65, 16, 16), (1, 1, 1))  # fmt: skip
    for n, window, block in cases:
        got = _call(window_tile_count, f"window_tile_count({n}, {window}, {block})",
                    n, window, block)  # fmt: skip
        _expect_window_tiles(got, n, window, block)
    for_all(lambda n, window, block: _expect_window_tiles(window_tile_count(n, window, block),
                                                          n, window, block),
            examples=40, n=st.integers(1, 5000), window=st.integers(1, 600),
            block=st.integers(1, 256))  # fmt: skip
    # Far too long for an n × n mask: 10¹² entries.
    for n, window, block in ((1_000_000, 4096, 128), (1_000_003, 1000, 64)):
        case = f"window_tile_count({n:_}, {window}, {block}) (n × n would be 10¹² entries)"
        got = _call(window_tile_count, case, n, window, block, hint=_NOT_DENSE)
        _expect_window_tiles(got, n, window, block, " (too long for an n × n mask)")
    for args, parameter in (((0, 4, 4), "n"), ((8, 0, 4), "window"), ((8, 4, 0), "block"),
                            ((8, -1, 4), "window")):  # fmt: skip
        _expect_refused(lambda args=args: window_tile_count(*args),
                        f"window_tile_count{args}", parameter)  # fmt: skip


# --- exercise 4: tiles of a window-plus-global (Longformer) layout -------------------------------


def longformer_tile_count(
    n: int, radius: int, global_tokens: Sequence[int], block: int, *, reach: str = "ceil",
    rows: bool = True, columns: bool = True, per_token: str = "", union: bool = True,
    blocks: str = "ceil",
) -> int:  # fmt: skip
    """Tiles the Longformer pattern visits, counted per query block in O(T · g).

    Query block I (no global token in it) visits the key blocks of its band, I − ⌈r/b⌉ to
    I + ⌈r/b⌉ clamped to [0, T − 1] (rows I·b .. I·b + b − 1 reach keys I·b − r ..
    I·b + b − 1 + r), and every block holding a global token; a block holding a global
    token visits all T. The keywords reproduce mistakes: the band's reach (``"floor"``,
    ``"plus one"``, ``"own width"``: forgetting the block's own b − 1 rows), global rows or
    columns forgotten, global tokens counted one by one (``per_token="columns"`` or
    ``"rows and columns"``), band and global
    columns added without removing their overlap (``union=False``), ``blocks="floor"``.
    """
    t = math.ceil(n / block) if blocks == "ceil" else n // block
    tokens = [g for g in global_tokens if g // block < t]
    global_blocks = [g // block for g in tokens] if per_token else sorted({g // block
                                                                           for g in tokens})
    repeats = per_token == "rows and columns"
    up = {"ceil": -(-radius // block), "floor": radius // block,
          "plus one": radius // block + 1, "own width": -(-radius // block)}[reach]
    down = radius // block if reach == "own width" else up
    total = 0
    for query_block in range(t):
        if rows and query_block in global_blocks:
            total += t * (global_blocks.count(query_block) if repeats else 1)
            continue
        first, last = max(0, query_block - up), min(t - 1, query_block + down)
        total += last - first + 1
        if columns:
            total += sum(1 for b in global_blocks if not union or not first <= b <= last)
    return total


_ROWS_OR_COLUMNS = (
    "global rows or columns are missing: a query block holding a global token visits every "
    "key block (a full row of tiles), and every query block visits the key blocks holding "
    "global tokens (a full column)"
)
_ONE_BLOCK = ("two global tokens in the same block make one global block: count blocks "
              "(a set of token // block), not tokens")  # fmt: skip
_LONGFORMER_MISTAKES: list[tuple[dict[str, Any], str]] = [
    # The pattern is symmetric: forgetting the rows or the columns gives the same count.
    ({"rows": False}, _ROWS_OR_COLUMNS),
    ({"columns": False}, _ROWS_OR_COLUMNS),
    ({"rows": False, "columns": False}, "the global tokens are missing: their blocks' rows "
     "and columns of tiles are all visited"),
    ({"union": False}, "a tile counted twice: a global key block inside the band is "
     "already one of the band's tiles; count the union (band ∪ global blocks)"),
    ({"per_token": "columns"}, _ONE_BLOCK),
    ({"per_token": "rows and columns"}, _ONE_BLOCK),
    ({"reach": "floor"}, "the band is one block too narrow: rows I·block .. I·block + "
     "block − 1 reach radius keys further, ⌈radius / block⌉ blocks on each side"),
    ({"reach": "own width"}, "the band is one block too narrow on the right: the last "
     "row of query block I, I·block + block − 1, reaches key I·block + block − 1 + radius"),
    ({"reach": "plus one"}, "the band is one block too wide: radius keys reach "
     "⌈radius / block⌉ blocks on each side, not radius // block + 1"),
    ({"blocks": "floor"}, "the last block may be short: there are ceil(n / block) "
     "query and key blocks, a partial last one included"),
]  # fmt: skip


def _expect_longformer_tiles(
    got: Any, n: int, radius: int, tokens: list[int], block: int, expected: int, what: str = ""
) -> None:
    if got == expected and isinstance(got, int) and not isinstance(got, bool):
        return
    case = f"n={n:_}, radius={radius}, global_tokens={tokens}, block={block}{what}"
    if got == expected:
        raise CheckFailed(f"{case}: expected the integer {expected}, got {got!r}",
                          "a count of tiles is an int: use //, math.ceil, not /")  # fmt: skip
    hint = ("per query block: all T key blocks if it holds a global token, else its band's "
            "key blocks ∪ the blocks that hold global tokens; add up")  # fmt: skip
    for knobs, mistake in _LONGFORMER_MISTAKES:
        if got == longformer_tile_count(n, radius, tokens, block, **knobs):
            hint = mistake
            break
    expect_equal(got, expected, case, hint)


@exercise(
    "global_window_tile_count",
    notebook=NOTEBOOK,
    answer="global_window_tile_count",
    title="Count the tiles a Longformer layout (band plus global tokens) visits",
    points=1,
    forbidden=[PATTERNS],
)
def check_global_window_tile_count(global_window_tile_count: Callable[..., int]) -> None:
    def against_layout(n: int, radius: int, tokens: list[int], block: int) -> None:
        got = _call(global_window_tile_count,
                    f"global_window_tile_count({n}, {radius}, {tokens}, {block})",
                    n, radius, list(tokens), block)  # fmt: skip
        layout = longformer_pattern(n, radius, tokens).layout(block)
        _expect_longformer_tiles(got, n, radius, tokens, block, layout.visited_tiles)

    # Hand-picked first: each separates some of the mistakes.
    cases = ((64, 8, [0], 8), (64, 8, [3, 5], 8), (70, 16, [40], 16), (50, 3, [], 8),
             (30, 0, [29], 4), (10, 20, [2], 4), (1, 0, [0], 1), (33, 5, [0, 32], 8))  # fmt: skip
    for n, radius, tokens, block in cases:
        against_layout(n, radius, list(tokens), block)

    def one(n: int, radius: int, drawn: list[int], block: int) -> None:
        against_layout(n, radius, _global_tokens(n, drawn), block)

    for_all(one, examples=40, n=st.integers(1, 100), radius=st.integers(0, 40),
            drawn=st.lists(st.integers(0, 1000), max_size=4), block=st.integers(1, 16))  # fmt: skip
    # Far too long for an n × n mask (10¹² entries): the answer must count per block.
    large = ((1_000_000, 3000, [0, 1, 500_000, 999_999], 2048),
             (1_000_003, 512, [5, 17, 4096], 1024), (1_000_000, 2048, [123_456], 1024))  # fmt: skip
    for n, radius, tokens, block in large:
        case = (f"global_window_tile_count({n:_}, {radius}, {tokens}, {block}) "
                "(n × n would be 10¹² entries)")  # fmt: skip
        got = _call(global_window_tile_count, case, n, radius, list(tokens), block,
                    hint=_NOT_DENSE)  # fmt: skip
        _expect_longformer_tiles(got, n, radius, tokens, block,
                                 longformer_tile_count(n, radius, tokens, block),
                                 " (too long for an n × n mask)")  # fmt: skip

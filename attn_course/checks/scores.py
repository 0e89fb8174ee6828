"""Checks of notebook 01 (the n x n score matrix).

Each check calls the student's function on hand-picked inputs (and, for the closed
forms, on cases hypothesis draws), compares with a value computed here (or by PyTorch's
own attention in float64), and when the answer is wrong tries to recognise *which* common
mistake it is, so the hint can name it. The exercises that ask for a routine forbid the
routine (torch.softmax, scaled_dot_product_attention, the course's own versions).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from attn_course.checks import CheckFailed, exercise, expect_equal, for_all
from attn_course.checks._forbid import ATTENTION, SOFTMAX, reference

NOTEBOOK = "01_score_matrix"


# --- exercise 1: bytes of the score matrices ---------------------------------------------


@exercise(
    "score_bytes",
    notebook=NOTEBOOK,
    answer="score_matrix_bytes",
    title="Bytes of the score matrices of one layer",
    points=1,
    forbidden=[reference("attn_course.cost.score_matrix_bytes", what="score-matrix bytes")],
)
def check_score_bytes(score_matrix_bytes: Callable[[int, int, int], int]) -> None:
    cases = [
        # (n, heads, bytes_per_element), how the expected value is computed
        ((8, 1, 4), "8·8·1·4 = 256"),
        ((1024, 1, 2), "1024·1024·1·2 = 2 MiB"),
        ((3, 5, 4), "3·3·5·4 = 180"),
        ((1024, 8, 2), "1024·1024·8·2 = 16 MiB"),
        ((8192, 32, 2), "8192·8192·32·2 = 4 GiB"),
        ((1, 1, 1), "1·1·1·1 = 1"),
        # 2^28 tokens, 2^10 heads, 8 bytes: 2^69 bytes, beyond float64's exact integers.
        ((2**28, 1024, 8), "2^28·2^28·2^10·2^3 = 2^69"),
    ]
    for (n, heads, size), arithmetic in cases:
        _expect_score_bytes(score_matrix_bytes(n, heads, size), n, heads, size, arithmetic)

    def one(n: int, heads: int, size: int) -> None:
        _expect_score_bytes(score_matrix_bytes(n, heads, size), n, heads, size, "n·n·heads·b")

    for_all(one, n=st.integers(1, 10**5), heads=st.integers(1, 128),
            size=st.sampled_from([1, 2, 4, 8]))  # fmt: skip


def _expect_score_bytes(got: Any, n: int, heads: int, size: int, arithmetic: str) -> None:
    expected = n * n * heads * size
    if got == expected and isinstance(got, int):
        return
    hints = {
        n * n * size: "you left out the heads: every head has its own n×n matrix",
        n * heads * size: "one score per (query, key) pair: n·n entries, not n",
        expected * 8: "bytes, not bits: multiply by bytes_per_element, not by 8·bytes",
        n * n * heads: "each entry takes bytes_per_element bytes: multiply by it",
        n * (n + 1) // 2 * heads * size: "count every (query, key) pair: the matrix is "
        "stored whole, causal or not, n·n entries",
    }
    hint = hints.get(got, "entries = n · n · heads; bytes = entries · bytes_per_element")
    if isinstance(got, float) and abs(got - expected) <= 1e-12 * expected:
        hint = ("return an exact integer: n * n * heads * bytes_per_element; a float "
                "(n ** 2.0, math.pow, / instead of //) loses digits beyond 2**53")  # fmt: skip
    case = f"n={n}, heads={heads}, {size} B/element ({arithmetic})"
    if got == expected:
        raise CheckFailed(f"{case}: expected the integer {expected}, got {got!r}", hint)
    expect_equal(got, expected, case, hint)


# --- exercise 2: a softmax that does not overflow -----------------------------------------


@exercise(
    "stable_softmax",
    notebook=NOTEBOOK,
    answer="stable_softmax",
    title="A softmax that does not overflow",
    points=1,
    forbidden=[SOFTMAX],
)
def check_stable_softmax(stable_softmax: Callable[[torch.Tensor], torch.Tensor]) -> None:
    generator = torch.Generator().manual_seed(0)
    f16 = torch.float16
    inf = float("inf")
    cases = [
        ("a random 4×6 float64 matrix", torch.randn(4, 6, generator=generator).double()),
        ("a 1-d vector [1, 2, 3]", torch.tensor([1.0, 2.0, 3.0])),
        ("float32 scores [1000, 1001, 1002] (exp(1000) overflows)",
         torch.tensor([1000.0, 1001.0, 1002.0])),
        ("float32 scores [-1000, -1001, -1002] (exp underflows to 0)",
         torch.tensor([-1000.0, -1001.0, -1002.0])),
        # One shift for the whole tensor (x - x.max()) sends the second row to exp(-2000) = 0.
        ("rows of very different scale, [[1000, 1001, 1002], [-1000, -999, -998]]",
         torch.tensor([[1000.0, 1001.0, 1002.0], [-1000.0, -999.0, -998.0]])),
        # Shifting by the row's mean is not enough: 200 - 100 still overflows exp in float32.
        ("a row spread over 200, [0, 100, 200]", torch.tensor([[0.0, 100.0, 200.0]])),
        ("float16 scores [10, 11, 12] (exp(12) > 65504 overflows float16)",
         torch.tensor([10.0, 11.0, 12.0], dtype=f16)),
        ("bfloat16 scores [[300, 301, 302], [-5, 0, 5]]",
         torch.tensor([[300.0, 301.0, 302.0], [-5.0, 0.0, 5.0]], dtype=torch.bfloat16)),
        ("a 2×3×5 tensor (softmax along the last dim)",
         torch.randn(2, 3, 5, generator=generator).double() * 50),
        ("a row with masked (-inf) entries", torch.tensor([[0.0, -inf, 1.0], [2.0, 2.0, -inf]])),
        ("rows of length 1 ([[7.], [-3e38]])", torch.tensor([[7.0], [-3e38]])),
        ("an empty batch of rows (shape (0, 4))", torch.zeros(0, 4)),
    ]  # fmt: skip
    for case, x in cases:
        original = x.clone()
        got = stable_softmax(x)
        if not torch.equal(x, original):
            raise CheckFailed(
                f"{case}: your function changed its input",
                "don't modify x in place (x -= ..., x.exp_()): compute a new tensor",
            )
        _expect_tensor(got, x.shape, case)
        if got.dtype != x.dtype:
            raise CheckFailed(
                f"{case}: the result has dtype {got.dtype}, the input {x.dtype}",
                "return the input's dtype, as torch.softmax does (compute in float32 if you "
                "like, then .to(x.dtype))",
            )
        expected = torch.softmax(x.to(torch.float64), dim=-1)
        if not torch.isfinite(got).all():
            hint = (
                "exp overflowed (or 0/0 after it underflowed): subtract each row's maximum "
                "(x.amax(dim=-1, keepdim=True)) before exp; mathematically the result is the same"
            )
            global_shift = _shift_by(x.to(torch.float32), x.amax().to(torch.float32))
            if x.dim() > 1 and torch.equal(torch.isfinite(got), torch.isfinite(global_shift)):
                hint = ("one maximum for the whole tensor (x.max()) is not enough: a row far "
                        "below it underflows to 0 / 0; subtract each row's own maximum, "
                        "x.amax(dim=-1, keepdim=True)")  # fmt: skip
            raise CheckFailed(f"{case}: the result contains nan or inf", hint)
        tolerance = {torch.float16: 1e-3, torch.bfloat16: 1e-2}.get(x.dtype, 1e-5)
        if not torch.allclose(got.to(torch.float64), expected, atol=tolerance, rtol=tolerance):
            sums = got.to(torch.float64).sum(dim=-1)
            hint = "softmax(x)_j = exp(x_j - max) / Σ_k exp(x_k - max), along the last dim"
            if not torch.allclose(sums, torch.ones_like(sums), atol=1e-2):
                hint = (
                    "rows don't sum to 1: take the max and the sum along the last dim "
                    "(dim=-1) with keepdim=True so they broadcast back over the row"
                )
            raise CheckFailed(f"{case}: differs from softmax(x, dim=-1)", hint)


def _shift_by(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    weights = torch.exp(x - shift)
    return weights / weights.sum(-1, keepdim=True)


# --- exercise 3: the causal mask ------------------------------------------------------------


@exercise(
    "causal_mask",
    notebook=NOTEBOOK,
    answer="causal_mask",
    title="The causal mask",
    points=1,
    forbidden=[reference("attn_course.scores.causal_mask", what="the causal mask")],
)
def check_causal_mask(causal_mask: Callable[[int], torch.Tensor]) -> None:
    # n=5 first: big enough to tell the common mistakes apart (at n=1 several coincide).
    for n in (5, 1, 2, 8):
        _expect_causal_mask(causal_mask(n), n)
    for_all(lambda n: _expect_causal_mask(causal_mask(n), n), examples=20, n=st.integers(1, 300))


def _expect_causal_mask(got: Any, n: int) -> None:
    case = f"causal_mask({n})"
    if not isinstance(got, torch.Tensor):
        raise CheckFailed(f"{case}: expected a torch.Tensor, got {type(got).__name__}")
    if got.dtype != torch.bool:
        hint = "build it from torch.ones(n, n, dtype=torch.bool)"
        if got.is_floating_point() and torch.isneginf(got).any():
            hint = ("that is an additive mask (0 and -inf, added to the scores); this exercise "
                    "asks for the boolean one: True where attention is allowed")  # fmt: skip
        raise CheckFailed(f"{case}: expected dtype torch.bool, got {got.dtype}", hint)
    shape_hint = "one row per query, one column per key"
    expect_equal(tuple(got.shape), (n, n), f"{case}: shape", shape_hint)
    ones = torch.ones(n, n, dtype=torch.bool)
    if torch.equal(got, ones.tril()):
        return
    if torch.equal(got, ones.tril(-1)):
        hint = "the diagonal must be True: a token may attend to itself (j <= i, not j < i)"
    elif torch.equal(got, ones.triu(1)):
        hint = (
            "this marks the *forbidden* positions; return True where attention is "
            "allowed (key j <= query i)"
        )
    elif torch.equal(got, ones.triu()):
        hint = "rows are queries, columns keys: query i may see keys j <= i (the lower triangle)"
    elif torch.equal(got, ones.tril(1)):
        hint = "query i must not see key i + 1 (the future): tril with diagonal 0"
    else:
        hint = "True where key j <= query i: torch.tril of a matrix of ones"
    shown = got.int().tolist() if n <= 8 else f"({n}×{n}, first wrong row {_first_wrong_row(got)})"
    raise CheckFailed(f"{case}: wrong mask {shown}", hint)


def _first_wrong_row(got: torch.Tensor) -> int:
    wrong = (got != torch.ones_like(got).tril()).any(dim=1).nonzero()
    return int(wrong[0]) if len(wrong) else -1


# --- exercise 4: attention itself -------------------------------------------------------------


def _variant(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool,
    *,
    scale: float | None = None,
    diagonal: int = 0,
    softmax_dim: int = -1,
) -> torch.Tensor:
    """Attention with knobs, to recognise a student's mistake by reproducing it."""
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = q @ k.transpose(-2, -1) * scale
    if causal:
        allowed = torch.ones(scores.shape[-2:], dtype=torch.bool).tril(diagonal)
        scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, dim=softmax_dim).nan_to_num(0.0) @ v


_MISTAKES: list[tuple[dict[str, Any], str]] = [
    ({"scale": 1.0}, "you forgot to scale the scores: divide Q Kᵀ by √d (d = q.shape[-1])"),
    ({"scale": "1/d"}, "scale by 1/√d, not 1/d"),
    ({"scale": "sqrt d"}, "divide by √d, don't multiply by it"),
    ({"softmax_dim": -2}, "softmax goes along each row (over the keys, dim=-1), not down columns"),
    ({"diagonal": -1}, "the causal mask must keep the diagonal: query i may attend to key i"),
    (
        {"diagonal": 1},
        "the causal mask lets query i see key i+1 (the future); use tril, diagonal 0",
    ),
]


@exercise(
    "naive_attention",
    notebook=NOTEBOOK,
    answer="attention",
    title="Naive attention, materialising S and P",
    points=2,
    forbidden=[ATTENTION],
)
def check_attention(attention: Callable[..., torch.Tensor]) -> None:
    generator = torch.Generator().manual_seed(1)

    def randn(*shape: int, dtype: torch.dtype | None = None, std: float = 1.0) -> torch.Tensor:
        dtype = dtype or torch.float64
        return torch.randn(*shape, generator=generator, dtype=dtype) * std

    def qkv(
        *shape: int, n_k: int | None = None, d_v: int | None = None, **kw: Any
    ) -> tuple[torch.Tensor, ...]:
        keys = (*shape[:-2], n_k or shape[-2], shape[-1])
        values = (*keys[:-1], d_v or shape[-1])
        return randn(*shape, **kw), randn(*keys, **kw), randn(*values, dtype=kw.get("dtype"))

    cases = [
        ("single head, n=5, d=4", qkv(5, 4), False),
        ("single head, n=5, d=4, causal", qkv(5, 4), True),
        ("3 queries, 6 keys, d=8", qkv(3, 8, n_k=6), False),
        ("batch 2, 3 heads, n=7, d=8, causal", qkv(2, 3, 7, 8), True),
        ("n=1 (one token)", qkv(1, 4), True),
        ("values wider than the keys (d = 4, d_v = 6), causal", qkv(5, 4, d_v=6), True),
        # float32 with large q and k: scores in the hundreds, and exp() of them overflows.
        ("float32, large scores (~hundreds)", qkv(6, 16, dtype=torch.float32, std=12.0), False),
    ]
    for case, (q, k, v), causal in cases:
        got = attention(q, k, v, causal=causal)
        if isinstance(got, tuple):
            raise CheckFailed(f"{case}: got a {type(got).__name__}", "return only the output P @ V")
        n_q, v_dim = q.shape[-2], v.shape[-1]
        _expect_tensor(got, (*q.shape[:-2], n_q, v_dim), case)
        expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        tolerance = 1e-4 if q.dtype == torch.float32 else 1e-8
        if torch.allclose(got.to(expected.dtype), expected, atol=tolerance, rtol=tolerance):
            continue
        hint = _recognise(got.nan_to_num(0.0), q, k, v, causal)
        if hint is None and not torch.isfinite(got).all():
            hint = (
                "nan/inf in the output: exp of large scores overflowed; use a stable softmax "
                "(subtract the row max, or torch.softmax)"
            )
        hint = hint or (
            "out = softmax(Q Kᵀ / √d, dim=-1) @ V, with future keys (j > i) set to -inf "
            "before the softmax when causal"
        )
        raise CheckFailed(f"{case}: differs from scaled_dot_product_attention", hint)


def _recognise(
    got: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool
) -> str | None:
    d = q.shape[-1]
    named_scales = {"1/d": 1 / d, "sqrt d": math.sqrt(d)}
    for knobs, hint in _MISTAKES:
        if "diagonal" in knobs and not causal:
            continue
        if knobs.get("scale") in named_scales:
            knobs = {**knobs, "scale": named_scales[knobs["scale"]]}
        try:
            wrong = _variant(q, k, v, causal, **knobs)
        except RuntimeError:
            continue
        if wrong.shape == got.shape and torch.allclose(got.to(wrong.dtype), wrong, atol=1e-4):
            return hint
    if causal and torch.allclose(got.to(q.dtype), _variant(q, k, v, False), atol=1e-4):
        return "causal=True must hide future keys: set scores above the diagonal to -inf"
    if causal and torch.allclose(got.to(q.dtype), _masked_after_softmax(q, k, v), atol=1e-4):
        return ("mask *before* the softmax: zeroing the future weights afterwards leaves rows "
                "that no longer sum to 1")  # fmt: skip
    return None


def _masked_after_softmax(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    probs = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    return probs.tril() @ v


def _expect_tensor(got: Any, shape: tuple[int, ...], case: str) -> None:
    if not isinstance(got, torch.Tensor):
        raise CheckFailed(
            f"{case}: expected a torch.Tensor, got {type(got).__name__}",
            "work with torch operations from start to end",
        )
    if tuple(got.shape) != tuple(shape):
        raise CheckFailed(
            f"{case}: expected shape {tuple(shape)}, got {tuple(got.shape)}",
            "keep every dimension: use keepdim=True for the row max and sum; out = P @ V",
        )

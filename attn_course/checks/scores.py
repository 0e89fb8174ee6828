"""Checks of notebook 01 (the n x n score matrix).

Each check calls the student's function on hand-picked inputs, compares with a value
computed here (or by PyTorch's own attention), and when the answer is wrong tries to
recognise *which* common mistake it is, so the hint can name it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from attn_course.checks import CheckFailed, exercise, expect_equal

NOTEBOOK = "01_score_matrix"


# --- exercise 1: bytes of the score matrices ---------------------------------------------


@exercise(
    "score_bytes",
    notebook=NOTEBOOK,
    answer="score_matrix_bytes",
    title="Bytes of the score matrices of one layer",
    points=1,
)
def check_score_bytes(score_matrix_bytes: Callable[[int, int, int], int]) -> None:
    cases = [
        # (n, heads, bytes_per_element), expected, how it is computed
        ((8, 1, 4), 256, "8·8·1·4"),
        ((1024, 1, 2), 2_097_152, "1024·1024·1·2 = 2 MiB"),
        ((3, 5, 4), 180, "3·3·5·4"),
        ((1024, 8, 2), 16_777_216, "1024·1024·8·2 = 16 MiB"),
        ((8192, 32, 2), 4_294_967_296, "8192·8192·32·2 = 4 GiB"),
        ((1, 1, 1), 1, "1·1·1·1"),
    ]
    for (n, heads, size), expected, arithmetic in cases:
        got = score_matrix_bytes(n, heads, size)
        if got == expected:
            continue
        hints = {
            n * n * size: "you left out the heads: every head has its own n×n matrix",
            n * heads * size: "one score per (query, key) pair: n·n entries, not n",
            expected * 8: "bytes, not bits: multiply by bytes_per_element, not by 8·bytes",
            n * n * heads: "each entry takes bytes_per_element bytes: multiply by it",
        }
        hint = hints.get(got, "entries = n · n · heads; bytes = entries · bytes_per_element")
        expect_equal(got, expected, f"n={n}, heads={heads}, {size} B/element ({arithmetic})", hint)


# --- exercise 2: a softmax that does not overflow -----------------------------------------


@exercise(
    "stable_softmax",
    notebook=NOTEBOOK,
    answer="stable_softmax",
    title="A softmax that does not overflow",
    points=1,
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
        ("float16 scores [10, 11, 12] (exp(12) > 65504 overflows float16)",
         torch.tensor([10.0, 11.0, 12.0], dtype=f16)),
        ("a 2×3×5 tensor (softmax along the last dim)",
         torch.randn(2, 3, 5, generator=generator).double() * 50),
        ("a row with masked (-inf) entries", torch.tensor([[0.0, -inf, 1.0], [2.0, 2.0, -inf]])),
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
        expected = torch.softmax(x.to(torch.float64), dim=-1)
        if not torch.isfinite(got).all():
            raise CheckFailed(
                f"{case}: the result contains nan or inf",
                "exp overflowed (or 0/0 after it underflowed): subtract each row's maximum "
                "(x.amax(dim=-1, keepdim=True)) before exp; mathematically the result is the same",
            )
        tolerance = 1e-3 if x.dtype == torch.float16 else 1e-5
        if not torch.allclose(got.to(torch.float64), expected, atol=tolerance, rtol=tolerance):
            sums = got.to(torch.float64).sum(dim=-1)
            hint = "softmax(x)_j = exp(x_j - max) / Σ_k exp(x_k - max), along the last dim"
            if not torch.allclose(sums, torch.ones_like(sums), atol=1e-3):
                hint = (
                    "rows don't sum to 1: take the max and the sum along the last dim "
                    "(dim=-1) with keepdim=True so they broadcast back over the row"
                )
            raise CheckFailed(f"{case}: differs from torch.softmax(x, dim=-1)", hint)


# --- exercise 3: the causal mask ------------------------------------------------------------


@exercise(
    "causal_mask",
    notebook=NOTEBOOK,
    answer="causal_mask",
    title="The causal mask",
    points=1,
)
def check_causal_mask(causal_mask: Callable[[int], torch.Tensor]) -> None:
    # n=5 first: big enough to tell the common mistakes apart (at n=1 several coincide).
    for n in (5, 1, 2, 8):
        got = causal_mask(n)
        case = f"causal_mask({n})"
        if not isinstance(got, torch.Tensor):
            raise CheckFailed(f"{case}: expected a torch.Tensor, got {type(got).__name__}")
        if got.dtype != torch.bool:
            raise CheckFailed(
                f"{case}: expected dtype torch.bool, got {got.dtype}",
                "build it from torch.ones(n, n, dtype=torch.bool)",
            )
        shape_hint = "one row per query, one column per key"
        expect_equal(tuple(got.shape), (n, n), f"{case}: shape", shape_hint)
        ones = torch.ones(n, n, dtype=torch.bool)
        expected = ones.tril()
        if torch.equal(got, expected):
            continue
        if torch.equal(got, ones.tril(-1)):
            hint = "the diagonal must be True: a token may attend to itself (j <= i, not j < i)"
        elif torch.equal(got, ones.triu(1)):
            hint = (
                "this marks the *forbidden* positions; return True where attention is "
                "allowed (key j <= query i)"
            )
        elif torch.equal(got, ones.triu()):
            hint = (
                "rows are queries, columns keys: query i may see keys j <= i (the lower triangle)"
            )
        else:
            hint = "True where key j <= query i: torch.tril of a matrix of ones"
        raise CheckFailed(f"{case}: wrong mask {got.int().tolist()}", hint)


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
)
def check_attention(attention: Callable[..., torch.Tensor]) -> None:
    generator = torch.Generator().manual_seed(1)

    def randn(*shape: int, dtype: torch.dtype | None = None, std: float = 1.0) -> torch.Tensor:
        dtype = dtype or torch.float64
        return torch.randn(*shape, generator=generator, dtype=dtype) * std

    def qkv(*shape: int, n_k: int | None = None, **kw: Any) -> tuple[torch.Tensor, ...]:
        keys = (*shape[:-2], n_k or shape[-2], shape[-1])
        return randn(*shape, **kw), randn(*keys, **kw), randn(*keys, dtype=kw.get("dtype"))

    cases = [
        ("single head, n=5, d=4", qkv(5, 4), False),
        ("single head, n=5, d=4, causal", qkv(5, 4), True),
        ("3 queries, 6 keys, d=8", qkv(3, 8, n_k=6), False),
        ("batch 2, 3 heads, n=7, d=8, causal", qkv(2, 3, 7, 8), True),
        ("n=1 (one token)", qkv(1, 4), True),
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
    return None


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

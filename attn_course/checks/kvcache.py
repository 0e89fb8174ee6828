"""Checks of notebook 07 (the KV cache).

Every returned structure is checked for its *contents and order*, not only its shape: the
caches row by row (cached rows first, in order, the new token last), the output against
softmax attention in float64, the quantised block value by value, the block-table lookup
against the formula on tables hypothesis draws. When an answer is wrong the checks name
the usual mistakes (the new token prepended, K and V swapped, forgetting the new token's
own key, heads instead of kv_heads, the 2 for keys *and* values, a scale per tensor, /255,
truncation, the logical block, block and offset swapped ...). Each exercise forbids the
package function it asks the student to write; the cached step also forbids every
attention routine (torch.softmax is fine there).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from hypothesis import strategies as st

from attn_course.checks import CheckFailed, exercise, expect_equal, expect_raises, for_all
from attn_course.checks._forbid import ATTENTION, reference
from attn_course.grading.answers import StudentError
from attn_course.grading.probes import growth, work
from attn_course.presets import MODELS, get_model

NOTEBOOK = "07_kv_cache"
F64 = torch.float64


def _expect_unchanged(args: tuple[torch.Tensor, ...], originals: list[torch.Tensor],
                      case: str) -> None:  # fmt: skip
    for value, original in zip(args, originals, strict=True):
        if not torch.equal(value, original):
            raise CheckFailed(f"{case}: your function changed one of its inputs",
                              "build new tensors (torch.cat, x / scale); don't modify the "
                              "inputs in place")  # fmt: skip


def _is_count(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- exercise 1: the cached attention step -----------------------------------------------


def _step_cases() -> list[tuple[str, tuple[torch.Tensor, ...]]]:
    g = torch.Generator().manual_seed(7)

    def token(t: int, d: int, dtype: torch.dtype = F64, std: float = 1.0) -> tuple[Any, ...]:
        def randn(*shape: int) -> torch.Tensor:
            return (torch.randn(*shape, generator=g, dtype=F64) * std).to(dtype)

        q, k_cache, v_cache, k, v = randn(d), randn(t, d), randn(t, d), randn(d), randn(d)
        return q, k_cache, v_cache, k, v

    return [
        ("3 cached tokens, d = 4", token(3, 4)),
        ("an empty cache (t = 0, the first token attends only to itself)", token(0, 4)),
        ("one cached token", token(1, 4)),
        ("10 cached tokens, d = 8", token(10, 8)),
        ("float32, 6 cached tokens", token(6, 4, torch.float32)),
        # q·k / √d in the hundreds: exp of the raw scores overflows float64.
        ("scores in the hundreds (5 cached tokens, d = 16, q and k ×30)", token(5, 16, std=30.0)),
        ("d = 1, 4 cached tokens", token(4, 1)),
    ]


@exercise(
    "kv_cached_attention_step",
    notebook=NOTEBOOK,
    answer="cached_step",
    title="One decode step of attention with a KV cache",
    points=2,
    forbidden=[ATTENTION, reference("attn_course.kvcache.cached_attention_step",
                                    what="the cached attention step")],
)  # fmt: skip
def check_cached_step(cached_step: Callable[..., Any]) -> None:
    for case, args in _step_cases():
        originals = [a.clone() for a in args]
        got = cached_step(*args)
        _expect_unchanged(args, originals, case)
        if not isinstance(got, tuple | list) or len(got) != 3:
            raise CheckFailed(f"{case}: expected a tuple (out, K, V), got {type(got).__name__}",
                              "return out, keys, values")  # fmt: skip
        out, keys, values = got
        _expect_caches(keys, values, args, case)
        _expect_output(out, args, case)
    _expect_linear_work(cached_step)


def _expect_caches(keys: Any, values: Any, args: tuple[torch.Tensor, ...], case: str) -> None:
    q, k_cache, v_cache, k, v = args
    t, d = k_cache.shape
    want_k, want_v = torch.cat([k_cache, k[None]]), torch.cat([v_cache, v[None]])
    for name, got in (("K", keys), ("V", values)):
        if not isinstance(got, torch.Tensor):
            raise CheckFailed(f"{case}: {name} is a {type(got).__name__}, not a torch.Tensor",
                              "return the caches as tensors: torch.cat([cache, row[None]])")
        if tuple(got.shape) != (t + 1, d):
            hint = "K and V hold one row per token: (t + 1, d) after appending the new one"
            if tuple(got.shape) == (t, d):
                hint = "append the new token's row: torch.cat([cache, k[None]], dim=0)"
            elif tuple(got.shape) == (d, t + 1) and d != t + 1:
                hint = "rows are tokens: concatenate along dim 0, not dim 1"
            raise CheckFailed(f"{case}: {name} has shape {tuple(got.shape)}, expected "
                              f"{(t + 1, d)}", hint)  # fmt: skip
        if got.dtype != k_cache.dtype:
            raise CheckFailed(f"{case}: {name} has dtype {got.dtype}, the cache {k_cache.dtype}",
                              "keep the cache's dtype")  # fmt: skip
    if torch.equal(keys, want_k) and torch.equal(values, want_v):
        return
    if torch.equal(keys, want_v) and torch.equal(values, want_k):
        raise CheckFailed(f"{case}: K holds the values and V the keys",
                          "return (out, K, V) in that order, K = [k_cache; k], "
                          "V = [v_cache; v] (K and V swapped)")  # fmt: skip
    for name, got, cache, new, want in (("K", keys, k_cache, k, want_k),
                                        ("V", values, v_cache, v, want_v)):  # fmt: skip
        if torch.equal(got, want):
            continue
        if t > 0 and torch.equal(got, torch.cat([new[None], cache])):
            hint = ("the new token goes at the end: torch.cat([cache, new[None]]) keeps the "
                    "tokens in order, oldest first (you prepended it)")  # fmt: skip
        elif not torch.equal(got[:t], cache):
            hint = ("the cached rows must come first, unchanged and in order: "
                    "torch.cat([cache, new[None]], dim=0)")  # fmt: skip
        else:
            last = got[t]
            others = {"k": k, "v": v, "q": q}
            named = [n for n, vec in others.items() if torch.equal(last, vec)]
            if named:
                hint = (f"the new row of {name} must be {name.lower()}, not {named[0]}: "
                        f"K gets k, V gets v")  # fmt: skip
            elif t > 0 and torch.equal(last, cache[-1]):
                hint = (f"the last row of {name} repeats the last cached row: append the new "
                        f"token's {name.lower()}")  # fmt: skip
            elif not last.any():
                hint = f"the new row of {name} is zeros: append the new token's {name.lower()}"
            else:
                hint = f"the new (last) row of {name} must be the new token's {name.lower()}"
        raise CheckFailed(f"{case}: {name} differs from [{name.lower()}_cache; "
                          f"{name.lower()}]", hint)  # fmt: skip


def _attend(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
            scale: float | None = None) -> torch.Tensor:  # fmt: skip
    scale = 1 / math.sqrt(q.shape[0]) if scale is None else scale
    if len(keys) == 0:
        return torch.zeros(values.shape[1], dtype=q.dtype)
    return torch.softmax(keys @ q * scale, dim=0) @ values


def _expect_output(out: Any, args: tuple[torch.Tensor, ...], case: str) -> None:
    q, k_cache, v_cache, k, v = args
    t, d = k_cache.shape
    if not isinstance(out, torch.Tensor):
        raise CheckFailed(f"{case}: out is a {type(out).__name__}, not a torch.Tensor",
                          "out = weights @ V, a tensor")  # fmt: skip
    if tuple(out.shape) != (d,):
        raise CheckFailed(f"{case}: out has shape {tuple(out.shape)}, expected ({d},)",
                          "one output vector: softmax over the t + 1 keys (a vector), "
                          "then weights @ V")  # fmt: skip
    if out.dtype != q.dtype:
        raise CheckFailed(f"{case}: out has dtype {out.dtype}, q {q.dtype}", "keep q's dtype")
    wide = [a.to(F64) for a in args]
    q, k_cache, v_cache, k, v = wide
    keys, values = torch.cat([k_cache, k[None]]), torch.cat([v_cache, v[None]])
    want = _attend(q, keys, values)
    got = out.to(F64)
    tol = 1e-5 if args[0].dtype == torch.float32 else 1e-9
    if torch.allclose(got, want, rtol=tol, atol=tol):
        return
    if not torch.isfinite(got).all():
        raise CheckFailed(f"{case}: nan or inf in out",
                          "exp of large scores overflowed: subtract the max score before exp "
                          "(or use torch.softmax, which does)")  # fmt: skip
    variants = [
        (_attend(q, k_cache, v_cache), "the new token did not attend to itself: append k and v "
         "to the cache *before* computing the scores, so it sees all t + 1 keys"),
        (v, "out is the new token's v alone: q must attend to every cached token too"),
        (_attend(q, keys, values, 1.0), "scale the scores by 1 / √d (d = q.shape[0])"),
        (_attend(q, keys, values, 1 / d), "scale by 1 / √d, not by 1 / d"),
        (_attend(q, keys, keys), "weights @ V, not weights @ K: the values are averaged"),
        (torch.softmax(keys @ q / math.sqrt(d), 0)[:t] @ v_cache,
         "the new token's value is left out: weights @ V with V = [v_cache; v]"),
        (values.mean(0), "equal weights: the softmax must run over the t + 1 scores (a vector "
         "of length t + 1, dim=0), not over a dimension of size 1"),
        (torch.exp(keys @ q / math.sqrt(d)) @ values,
         "normalise the weights: divide exp(scores) by their sum (a softmax)"),
    ]  # fmt: skip
    hint = "out = softmax(K q / √d, dim=0) @ V over all t + 1 tokens"
    for wrong, text in variants:
        if wrong.shape == got.shape and torch.allclose(got, wrong, rtol=tol, atol=tol):
            hint = text
            break
    raise CheckFailed(f"{case}: out differs from softmax(K q / √d) V", hint)


def _expect_linear_work(cached_step: Callable[..., Any]) -> None:
    """One step's work must grow like t (a cache is there so the step is not quadratic)."""
    g = torch.Generator().manual_seed(17)

    def step_args(t: int) -> tuple[torch.Tensor, ...]:
        d = 8
        return tuple(torch.randn(*shape, generator=g, dtype=F64)
                     for shape in ((d,), (t, d), (t, d), (d,), (d,)))  # fmt: skip

    small = cached_step.through(work, *step_args(64))
    large = cached_step.through(work, *step_args(256))
    ratio = growth(small, large)
    if ratio > 8:
        raise CheckFailed(
            f"4× the cached tokens (64 → 256) made one step's work grow {ratio:.1f}×, "
            "expected about 4×",
            "one step is t + 1 dot products and one weighted sum: linear in t. Append the "
            "new row once (torch.cat), don't rebuild the cache row by row or compute a "
            "(t + 1) × (t + 1) matrix",
        )


# --- exercise 2: size a published model's cache -------------------------------------------


def _cache_mistakes(model: str, context: int, batch: int, size: int) -> list[tuple[float, str]]:
    m = get_model(model)
    want = 2 * m.layers * m.kv_heads * m.head_dim * context * batch * size
    return [
        (want * m.heads / m.kv_heads,
         "only the kv_heads key/value heads are cached, not every query head (heads · head_dim "
         "= d_model counts them all): use the preset's kv_heads"),
        (want / 2, "keys *and* values are cached: the factor 2"),
        (want * 2, "the factor 2 (keys and values) once, not twice"),
        (want / batch, "every sequence of the batch has its own cache: × batch"),
        (want / size, "multiply the number count by bytes_per_number"),
        (want * 8, "bytes, not bits: don't multiply by 8"),
        (want * m.d_model / m.head_dim,
         "each key/value head stores head_dim numbers per token, not d_model"),
        (want / m.layers, "every layer has its own cache: × layers"),
        (want / m.head_dim, "each key/value head stores head_dim numbers per token: × head_dim"),
    ]


@exercise(
    "kv_model_cache_bytes",
    notebook=NOTEBOOK,
    answer="cache_size",
    title="The KV cache of a published model",
    points=1,
    forbidden=[reference("attn_course.cost.model_kv_cache_bytes", "attn_course.cost.kv_cache_bytes",
                         "attn_course.cost.kv_cache_bytes_per_token",
                         "attn_course.kvcache.predicted_cache_bytes", what="KV-cache bytes")],
)  # fmt: skip
def check_cache_size(cache_size: Callable[..., Any]) -> None:
    cases = [
        # Each case tells a different group of mistakes apart (see _cache_mistakes).
        ("Llama-3-8B", 131072, 1, 1),  # GQA: 8 kv heads of 32; fp8
        ("Llama-2-7B", 4096, 8, 4),  # MHA, batch 8, float32
        ("Llama-3-8B", 131072, 1, 2),  # the worked number: 16 GiB
        ("GPT-2-small", 1024, 1, 4),
        ("Mistral-7B", 32768, 4, 2),
        ("Llama-3-70B", 1, 1, 1),  # one token
    ]
    for model, context, batch, size in cases:
        _expect_cache_bytes(cache_size(model, context, batch, size), model, context, batch, size)

    def one(model: str, context: int, batch: int, size: int) -> None:
        _expect_cache_bytes(cache_size(model, context, batch, size), model, context, batch, size)

    for_all(one, examples=40, model=st.sampled_from(sorted(MODELS)),
            context=st.integers(1, 10**6), batch=st.integers(1, 64),
            size=st.sampled_from([1, 2, 4]))  # fmt: skip
    for context, batch in ((0, 1), (-5, 1), (1024, 0)):
        bad = "context" if context < 1 else "batch"
        expect_raises(lambda c=context, b=batch: cache_size("Llama-3-8B", c, b, 2), ValueError,
                      f"cache_size('Llama-3-8B', context={context}, batch={batch}, 2)",
                      f"refuse {bad} < 1 with a ValueError (the exercise asks for both "
                      "context and batch to be checked)")  # fmt: skip


def _expect_cache_bytes(got: Any, model: str, context: int, batch: int, size: int) -> None:
    m = get_model(model)
    want = 2 * m.layers * m.kv_heads * m.head_dim * context * batch * size
    case = f"{model}, {context} tokens, batch {batch}, {size} bytes per number"
    if _is_count(got) and math.isclose(got, want, rel_tol=1e-12):
        return
    hint = ("2 × layers × kv_heads × head_dim × context × batch × bytes_per_number, with the "
            "preset's kv_heads")  # fmt: skip
    if _is_count(got):
        for wrong, text in _cache_mistakes(model, context, batch, size):
            if wrong != want and math.isclose(got, wrong, rel_tol=1e-9):
                hint = text
                break
    expect_equal(got, want, case, hint)


# --- exercise 3: int8 quantisation of a cache block with per-token scales --------------------


def _quant_cases() -> list[tuple[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(3)
    block = torch.randn(6, 8, generator=g)
    block[2] *= 50  # one loud token: a per-tensor scale would crush the others
    block[4] = 0  # an all-zero token must not divide by zero
    negative = -torch.rand(4, 6, generator=g) * 2  # every row's largest |x| is negative
    negative[:, 0] = 0.5
    negative[:, 3] = -torch.tensor([2.5, 3.0, 4.0, 2.2])
    cache = (torch.randn(32, 16, generator=g) * 3).bfloat16()
    return [
        ("a 6 × 8 float32 block with one loud token and one all-zero token", block),
        ("a block whose largest |x| in every row is negative", negative),
        ("a single token (1 × 5)", torch.randn(1, 5, generator=g)),
        ("a single channel (5 × 1)", torch.randn(5, 1, generator=g)),
        ("a float64 block", torch.randn(3, 7, generator=g, dtype=F64) * 10),
        ("a bfloat16 block (caches are usually stored in bf16)", cache),
        ("an empty block (0 tokens × 8 channels)", torch.zeros(0, 8)),
    ]


@exercise(
    "kv_quantize_int8",
    notebook=NOTEBOOK,
    answer="quantize_per_token",
    title="Quantise a cache block to int8 with one scale per token",
    points=2,
    forbidden=[reference("attn_course.kvcache.quantize", what="per-token quantisation")],
)
def check_quantize(quantize_per_token: Callable[..., Any]) -> None:
    for case, x in _quant_cases():
        original = x.clone()
        got = quantize_per_token(x)
        _expect_unchanged((x,), [original], case)
        _expect_quantized(got, x, case)


def _expect_quantized(got: Any, x: torch.Tensor, case: str) -> None:
    tokens = x.shape[0]
    if not isinstance(got, tuple | list) or len(got) != 2:
        raise CheckFailed(f"{case}: expected a tuple (q, scale), got {type(got).__name__}",
                          "return the int8 q and the scales: return q, scale")  # fmt: skip
    q, scale = got
    for name, value in (("q", q), ("scale", scale)):
        if not isinstance(value, torch.Tensor):
            raise CheckFailed(f"{case}: {name} is a {type(value).__name__}, not a torch.Tensor",
                              "return tensors: q of dtype torch.int8, scale of shape "
                              "(tokens, 1)")  # fmt: skip
    if q.dtype != torch.int8:
        hint = "store q as torch.int8: torch.round(x / scale).clamp(-127, 127).to(torch.int8)"
        if scale.dtype == torch.int8:
            hint = "return (q, scale) in that order"
        raise CheckFailed(f"{case}: q has dtype {q.dtype}, expected torch.int8", hint)
    if tuple(q.shape) != tuple(x.shape):
        raise CheckFailed(f"{case}: q has shape {tuple(q.shape)}, expected {tuple(x.shape)}",
                          "one int8 number per element of x")  # fmt: skip
    if tuple(scale.shape) != (tokens, 1):
        shape = tuple(scale.shape)
        hint = "one scale per token (row), shape (tokens, 1): amax over dim=1, keepdim=True"
        if shape == (tokens,):
            hint = ("keep the scale a column, shape (tokens, 1) (keepdim=True), so that "
                    "q * scale broadcasts row by row")  # fmt: skip
        elif scale.numel() == 1:
            hint = ("one scale per token, not one for the whole block: a per-tensor scale is "
                    "set by the loudest token and crushes the quiet ones")  # fmt: skip
        elif shape in ((1, x.shape[1]), (x.shape[1],)):
            hint = ("that is one scale per channel (column): take the max over each row, "
                    "amax(dim=1, keepdim=True), one scale per token")  # fmt: skip
        raise CheckFailed(f"{case}: scale has shape {shape}, expected {(tokens, 1)}", hint)
    if not scale.is_floating_point():
        raise CheckFailed(f"{case}: scale has dtype {scale.dtype}", "scale is a float: max / 127")
    if tokens == 0:
        return
    s = scale.to(F64)
    if not torch.isfinite(s).all() or not (s > 0).all():
        rows = (~torch.isfinite(s) | (s <= 0)).flatten().nonzero().flatten().tolist()
        raise CheckFailed(
            f"{case}: scale of token(s) {rows} is {s.flatten()[rows[0]].item()}",
            "an all-zero token has max 0: scale 0 makes x / scale = 0 / 0 = nan (cast to int8 "
            "it becomes an arbitrary number); give such a row scale 1",
        )
    if q.min() < -127 or q.max() > 127:
        raise CheckFailed(f"{case}: q reaches {int(q.min())} .. {int(q.max())}",
                          "clamp q to [-127, 127] (.clamp(-127, 127) before .to(torch.int8)): "
                          "the scheme is symmetric, and rounding can reach ±128")  # fmt: skip
    amax = x.to(F64).abs().amax(dim=1, keepdim=True)
    zero = amax == 0
    want = torch.where(zero, s, amax / 127)  # an all-zero row may have any positive scale
    low_precision = x.dtype in (torch.bfloat16, torch.float16)
    rel = 1e-2 if low_precision else 1e-6
    if not torch.allclose(s, want, rtol=rel, atol=0):
        hint = "scale = max|x_row| / 127, one per token"
        ratios = [
            (amax / 255, "divide by 127 (the largest int8 magnitude), not 255: the scheme is "
                         "symmetric, -127 .. 127"),
            (amax / 128, "divide by 127, not 128: the largest magnitude maps to ±127"),
            (amax / 127.5, "divide by 127: the largest magnitude maps to ±127"),
            (127 / amax, "scale = max / 127 (x ≈ q · scale), not its inverse 127 / max"),
            (amax.amax().expand_as(amax) / 127,
             "one scale per token, not one for the whole block: a per-tensor scale is set by "
             "the loudest token and crushes the quiet ones"),
            (x.to(F64).amax(dim=1, keepdim=True).abs() / 127,
             "use the largest *magnitude* of the row, x.abs().amax(dim=1): a row's max can be "
             "smaller than |its min|"),
        ]  # fmt: skip
        for value, text in ratios:
            if torch.allclose(s[~zero], value[~zero], rtol=rel, atol=0):
                hint = text
                break
        raise CheckFailed(f"{case}: the scales differ from max|x_row| / 127", hint)
    ratio = x.to(F64) / s
    expected = torch.round(ratio).clamp(-127, 127)
    qq = q.to(F64)
    # Near a tie (x / s = k + 0.5) either neighbour is a fair rounding; in bf16 the
    # division itself is rounded to 8 bits, so allow one step everywhere there.
    slack = 1.0 if low_precision else 0.0
    tie = (ratio - ratio.floor() - 0.5).abs() < 1e-3
    bad = ((qq - expected).abs() > slack) & ~(tie & ((qq - expected).abs() <= 1))
    if not bad.any():
        return
    hint = "q = round(x / scale), clamped to [-127, 127]"
    # x / scale as the student's code most likely computed it (in the scale's dtype): next
    # to an integer, truncation and floor depend on the last bit of that division.
    native = (x.to(scale.dtype) / scale).to(F64)
    if torch.equal(qq, native.trunc().clamp(-127, 127)):
        hint = ("round to the nearest integer (torch.round) before .to(torch.int8): the cast "
                "alone truncates toward zero, an error of up to a whole step")  # fmt: skip
    elif torch.equal(qq, native.floor().clamp(-127, 127)):
        hint = "round to the nearest integer (torch.round), not down (floor)"
    elif torch.allclose(qq, torch.round(x.to(F64) * s).clamp(-127, 127)):
        hint = "divide by the scale: q = round(x / scale), so that q · scale ≈ x"
    raise CheckFailed(f"{case}: q differs from round(x / scale) at "
                      f"{int(bad.sum())} of {bad.numel()} elements", hint)  # fmt: skip


# --- exercise 4: the block-table lookup ---------------------------------------------------


@st.composite
def _lookups(draw: Any) -> tuple[list[int], int, int]:
    table = draw(st.lists(st.integers(0, 4095), min_size=1, max_size=12, unique=True))
    block_size = draw(st.integers(1, 64))
    position = draw(st.integers(0, len(table) * block_size - 1))
    return table, position, block_size


@exercise(
    "kv_block_table_lookup",
    notebook=NOTEBOOK,
    answer="block_table_lookup",
    title="Find a token in a paged KV cache",
    points=1,
    forbidden=[reference("attn_course.kvcache.block_table_lookup", what="the block-table lookup")],
)
def check_block_lookup(lookup: Callable[..., Any]) -> None:
    table = [7, 2, 9, 4]  # no block sits at its own logical index
    cases = [(37, 16), (0, 16), (15, 16), (16, 16), (31, 16), (32, 16), (63, 16), (3, 1),
             (3, 4), (4, 4), (5, 2)]  # fmt: skip
    for position, block_size in cases:
        _expect_lookup(_valid_lookup(lookup, table, position, block_size), table, position,
                       block_size)  # fmt: skip
    for_all(lambda case: _expect_lookup(_valid_lookup(lookup, *case), *case),
            examples=40, case=_lookups())  # fmt: skip
    refuse = [
        (64, 16, "position len(block_table) · block_size = 64 is already past the end "
                 "(positions are 0-based): refuse it with a ValueError"),
        (100, 16, "refuse positions past the end, p ≥ len(block_table) · block_size, with a "
                  "ValueError"),
        (-1, 16, "refuse negative positions with a ValueError: Python's block_table[-1] would "
                 "silently read the last block"),
        (-16, 16, "refuse negative positions with a ValueError (block_table[-1] is the last "
                  "block, not an error)"),
        (12, 3, "position 12 is past 4 blocks of 3 tokens: refuse it with a ValueError"),
    ]  # fmt: skip
    for position, block_size, hint in refuse:
        expect_raises(lambda p=position, b=block_size: lookup(list(table), p, b), ValueError,
                      f"position {position}, block size {block_size}, block table {table}",
                      hint)  # fmt: skip


def _valid_lookup(lookup: Callable[..., Any], table: list[int], position: int,
                  block_size: int) -> Any:  # fmt: skip
    """The answer's lookup of a position inside the cache (a copy of the table)."""
    try:
        return lookup(list(table), position, block_size)
    except StudentError as error:
        if not error.is_a(ValueError):
            raise
        capacity = len(table) * block_size
        raise CheckFailed(
            f"position {position}, block size {block_size}, block table {table}: your code "
            f"raised ValueError ({error.message}) for a position inside the cache",
            f"{len(table)} blocks of {block_size} hold {capacity} tokens: refuse only p < 0 "
            f"or p ≥ len(block_table) · block_size = {capacity}",
        ) from None


def _expect_lookup(got: Any, table: list[int], position: int, block_size: int) -> None:
    block, offset = divmod(position, block_size)
    want = (table[block], offset)
    case = f"position {position}, block size {block_size}, block table {table}"
    pair = tuple(got) if isinstance(got, tuple | list) else got
    if pair == want and all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        return
    if not isinstance(pair, tuple) or len(pair) != 2:
        raise CheckFailed(f"{case}: expected a pair (block id, offset), got {got!r}",
                          "return block_table[p // block_size], p % block_size")  # fmt: skip
    if pair == want:
        raise CheckFailed(f"{case}: expected the integers {want}, got {got!r}",
                          "return integers: p // block_size and p % block_size (not /, "
                          "math.fmod or float arithmetic)")  # fmt: skip
    hint = "(block_table[p // block_size], p % block_size)"
    if pair == (block, offset) and block != table[block]:
        hint = (f"{block} is the logical block (p // B); map it through the table: "
                f"block_table[{block}] = {table[block]} is where it lives")  # fmt: skip
    elif pair == (offset, table[block]):
        hint = "return (block id, offset), in that order (you swapped them)"
    elif pair[1] == offset + 1 and pair[0] == want[0]:
        hint = "offsets start at 0: the first token of a block has offset 0, p % block_size"
    elif offset in (0, block_size - 1) and pair[0] != want[0]:
        hint = (f"position {position} is at a block boundary: token p lives in block "
                f"p // block_size (0-based), here {block}, at offset p % block_size = {offset}")
    expect_equal(pair, want, case, hint)

"""Checks of notebook 07 (the KV cache).

Each check compares the student's function with :mod:`attn_course.kvcache` or
:mod:`attn_course.cost` on hand-picked inputs, and names the usual mistakes (forgetting the
new token's own key, the 2 for keys *and* values, heads instead of kv_heads, a scale per
tensor instead of per token, block and offset swapped).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from attn_course.checks import CheckFailed, exercise, expect_close, expect_equal, expect_raises
from attn_course.cost import model_kv_cache_bytes
from attn_course.kvcache import block_table_lookup, cached_attention_step, quantize

NOTEBOOK = "07_kv_cache"


# --- exercise 1: the cached attention step -----------------------------------------------


@exercise(
    "kv_cached_attention_step",
    notebook=NOTEBOOK,
    answer="cached_step",
    title="One decode step of attention with a KV cache",
    points=2,
)
def check_cached_step(cached_step: Callable[..., Any]) -> None:
    g = torch.Generator().manual_seed(7)
    d = 4
    cases = [
        ("an empty cache (the first token attends only to itself)", 0),
        ("3 cached tokens", 3),
        ("10 cached tokens", 10),
    ]
    for case, t in cases:
        q, k, v = (torch.randn(d, generator=g, dtype=torch.float64) for _ in range(3))
        k_cache = torch.randn(t, d, generator=g, dtype=torch.float64)
        v_cache = torch.randn(t, d, generator=g, dtype=torch.float64)
        want = cached_attention_step(q, k_cache, v_cache, k, v)
        got = cached_step(q, k_cache, v_cache, k, v)
        if not isinstance(got, tuple) or len(got) != 3:
            raise CheckFailed(f"{case}: expected a tuple (out, K, V)", "return out, keys, values")
        for name, g_t, w_t in zip(("K", "V"), got[1:], want[1:], strict=True):
            if tuple(g_t.shape) != tuple(w_t.shape):
                raise CheckFailed(
                    f"{case}: {name} has shape {tuple(g_t.shape)}, expected {tuple(w_t.shape)}",
                    "append the new token's row at the end: torch.cat([cache, k[None]])",
                )
        out = got[0]
        if tuple(out.shape) != (d,):
            raise CheckFailed(f"{case}: out has shape {tuple(out.shape)}, expected ({d},)",
                              "softmax over the t + 1 keys, then weights @ values")  # fmt: skip
        if t > 0 and torch.allclose(out, torch.softmax(k_cache @ q / d**0.5, 0) @ v_cache):
            raise CheckFailed(f"{case}: the new token did not attend to itself",
                              "append k and v to the cache *before* the scores")  # fmt: skip
        if not torch.allclose(out, want[0], atol=1e-10):
            raise CheckFailed(f"{case}: out differs from softmax(K q / sqrt(d)) V",
                              "scale the scores by 1 / sqrt(d), softmax over keys")  # fmt: skip


# --- exercise 2: size a published model's cache -------------------------------------------


@exercise(
    "kv_model_cache_bytes",
    notebook=NOTEBOOK,
    answer="cache_size",
    title="The KV cache of a published model",
    points=1,
)
def check_cache_size(cache_size: Callable[..., Any]) -> None:
    cases = [("Llama-3-8B", 131072, 1, 2), ("Llama-2-7B", 4096, 8, 2), ("GPT-2-small", 1024, 1, 4),
             ("Llama-3-70B", 1, 1, 1)]  # fmt: skip
    for model, context, batch, element in cases:
        dtype = {1: "float8", 2: "bfloat16", 4: "float32"}[element]
        want = model_kv_cache_bytes(model, context, batch=batch, dtype=dtype)
        got = cache_size(model, context, batch, element)
        case = f"{model}, {context} tokens, batch {batch}, {element} bytes per number"
        if isinstance(got, (int, float)) and abs(got * 2 - want) < 1e-6 * want:
            raise CheckFailed(f"{case}: got half the answer", "keys *and* values: the factor 2")
        expect_close(got, want, case, "2 × layers × kv_heads × head_dim × context × batch × "
                     "bytes; use the preset's kv_heads, not heads")  # fmt: skip
    expect_raises(lambda: cache_size("Llama-3-8B", 0, 1, 2), ValueError,
                  "context = 0", "refuse context < 1 with a ValueError")  # fmt: skip


# --- exercise 3: int8 quantisation of a cache block with per-token scales --------------------


@exercise(
    "kv_quantize_int8",
    notebook=NOTEBOOK,
    answer="quantize_per_token",
    title="Quantise a cache block to int8 with one scale per token",
    points=2,
)
def check_quantize(quantize_per_token: Callable[..., Any]) -> None:
    g = torch.Generator().manual_seed(3)
    block = torch.randn(6, 8, generator=g)
    block[2] *= 50  # one loud token: a per-tensor scale would crush the others
    block[4] = 0  # an all-zero token must not divide by zero
    cases = [("a 6 x 8 block with one loud token and one zero token", block),
             ("a single token", torch.randn(1, 5, generator=g))]  # fmt: skip
    for case, x in cases:
        got = quantize_per_token(x)
        if not isinstance(got, tuple) or len(got) != 2:
            raise CheckFailed(f"{case}: expected (q, scale)", "return the int8 q and the scales")
        q, scale = got
        want_q, want_scale = quantize(x, bits=8, axis="token")
        if q.dtype != torch.int8:
            raise CheckFailed(f"{case}: q has dtype {q.dtype}", "store q as torch.int8")
        if tuple(scale.shape) != tuple(want_scale.shape):
            raise CheckFailed(
                f"{case}: scale has shape {tuple(scale.shape)}, expected {tuple(want_scale.shape)}",
                "one scale per token (row): amax over dim=1 with keepdim=True",
            )
        recon = q.float() * scale
        if not torch.isfinite(recon).all():
            raise CheckFailed(f"{case}: the reconstruction has NaN or inf",
                              "an all-zero row has max 0: use scale 1 there")  # fmt: skip
        bound = (want_scale / 2 + 1e-6).expand_as(x)
        if not ((recon - x).abs() <= bound).all():
            raise CheckFailed(f"{case}: q * scale is further than scale / 2 from x",
                              "scale = max|row| / 127 and q = round(x / scale)")  # fmt: skip
        expect_equal(q.abs().amax().item() <= 127, True, case, "clamp q to [-127, 127]")


# --- exercise 4: the block-table lookup ---------------------------------------------------


@exercise(
    "kv_block_table_lookup",
    notebook=NOTEBOOK,
    answer="block_table_lookup",
    title="Find a token in a paged KV cache",
    points=1,
)
def check_block_lookup(lookup: Callable[..., Any]) -> None:
    table = [7, 2, 9, 4]
    for position, block_size in [(0, 16), (15, 16), (16, 16), (37, 16), (63, 16), (3, 1), (3, 4)]:
        want = block_table_lookup(table, position, block_size)
        got = lookup(table, position, block_size)
        case = f"position {position}, block size {block_size}, block table {table}"
        if got == (position // block_size, position % block_size) and got != want:
            raise CheckFailed(f"{case}: got the logical block {got[0]}",
                              "map it through the table: block_table[p // B]")  # fmt: skip
        expect_equal(tuple(got) if isinstance(got, (tuple, list)) else got, want, case,
                     "(block_table[p // block_size], p % block_size)")  # fmt: skip
    expect_raises(lambda: lookup(table, 64, 16), ValueError, "position 64 past 4 blocks of 16",
                  "refuse positions outside [0, len(block_table) * block_size)")  # fmt: skip
    expect_raises(lambda: lookup(table, -1, 16), ValueError, "position -1",
                  "refuse negative positions")  # fmt: skip

"""Wrong answers to notebook 07's exercises (the KV cache)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from attn_course import cost, kvcache
from attn_course.presets import get_model
from tests.corpus import Wrong

# --- kv_cached_attention_step ----------------------------------------------------------------


def _step(q, k_cache, v_cache, k, v, *, keys=None, values=None, scale=None, attend=None):
    """A student's step; ``keys``/``values`` build the returned caches, ``attend`` the output."""
    right_k, right_v = torch.cat([k_cache, k[None]]), torch.cat([v_cache, v[None]])
    scale = 1 / math.sqrt(q.shape[0]) if scale is None else scale
    weights = torch.softmax(right_k @ q * scale, dim=0)
    out = weights @ right_v if attend is None else attend(q, right_k, right_v, scale)
    return (out, right_k if keys is None else keys(k_cache, k, v, q),
            right_v if values is None else values(v_cache, v, k))  # fmt: skip


def _prepends(q, k_cache, v_cache, k, v):
    keys, values = torch.cat([k[None], k_cache]), torch.cat([v[None], v_cache])
    return torch.softmax(keys @ q / math.sqrt(q.shape[0]), 0) @ values, keys, values


def _swaps_k_and_v(q, k_cache, v_cache, k, v):
    out, keys, values = _step(q, k_cache, v_cache, k, v)
    return out, values, keys


def _forgets_itself(q, k_cache, v_cache, k, v):
    keys, values = torch.cat([k_cache, k[None]]), torch.cat([v_cache, v[None]])
    if len(k_cache) == 0:
        return v, keys, values
    return torch.softmax(k_cache @ q / math.sqrt(q.shape[0]), 0) @ v_cache, keys, values


def _overflowing_softmax(q, k_cache, v_cache, k, v):
    keys, values = torch.cat([k_cache, k[None]]), torch.cat([v_cache, v[None]])
    weights = torch.exp(keys @ q / math.sqrt(q.shape[0]))
    return weights / weights.sum() @ values, keys, values


def _softmax_over_a_column(q, k_cache, v_cache, k, v):
    keys, values = torch.cat([k_cache, k[None]]), torch.cat([v_cache, v[None]])
    weights = torch.softmax(keys @ q[:, None] / math.sqrt(q.shape[0]), dim=-1)  # (t+1, 1): all 1
    return (weights * values).sum(0) / len(values), keys, values


def _rebuilds_the_cache(q, k_cache, v_cache, k, v):
    keys, values = k[None][:0], v[None][:0]
    for row_k, row_v in zip([*k_cache, k], [*v_cache, v], strict=True):  # O(t²) copying
        keys, values = torch.cat([keys, row_k[None]]), torch.cat([values, row_v[None]])
    return torch.softmax(keys @ q / math.sqrt(q.shape[0]), 0) @ values, keys, values


def _returns_float64(q, k_cache, v_cache, k, v):
    return tuple(t.double() for t in _step(q, k_cache, v_cache, k, v))


# --- kv_model_cache_bytes ---------------------------------------------------------------------


def _size(model, context, batch, size, *, kv="kv_heads", two=2, with_batch=True,
          with_bytes=True, with_layers=True, per_head="head_dim",
          validate=("context", "batch")):  # fmt: skip
    m = get_model(model)
    if "context" in validate and context < 1:
        raise ValueError(f"context must be >= 1, got {context}")
    if "batch" in validate and batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    count = two * (m.layers if with_layers else 1) * getattr(m, kv) * getattr(m, per_head)
    count *= context
    return count * (batch if with_batch else 1) * (size if with_bytes else 1)


def _size_d_model(model, context, batch, size):
    m = get_model(model)
    if context < 1 or batch < 1:
        raise ValueError("context and batch must be >= 1")
    return 2 * m.layers * m.d_model * context * batch * size  # every query head's width


# --- kv_quantize_int8 ---------------------------------------------------------------------------


def _quantize(x, *, levels=127, per_tensor=False, rounding=torch.round, clamp=True,
              zero_guard=True, keepdim=True, to_int8=True, absolute=True):  # fmt: skip
    magnitude = x.abs() if absolute else x
    if per_tensor:
        scale = magnitude.amax().reshape(1, 1).expand(x.shape[0], 1) / levels
    else:
        scale = magnitude.amax(dim=1, keepdim=True) / levels
    if zero_guard:
        scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    q = rounding(x / scale)
    if clamp:
        q = q.clamp(-127, 127)
    if to_int8:
        q = q.to(torch.int8)
    return q, (scale if keepdim else scale[:, 0])


def _quantize_per_channel(x):
    scale = x.abs().amax(dim=0, keepdim=True) / 127
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    return torch.round(x / scale).clamp(-127, 127).to(torch.int8), scale


def _quantize_inverse_scale(x):
    amax = x.abs().amax(dim=1, keepdim=True)
    scale = 127 / torch.where(amax == 0, torch.ones_like(amax), amax)
    return torch.round(x * scale).clamp(-127, 127).to(torch.int8), scale


def _quantize_in_place(x):
    scale = x.abs().amax(dim=1, keepdim=True) / 127
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    x /= scale
    return torch.round(x).clamp(-127, 127).to(torch.int8), scale


# --- kv_block_table_lookup --------------------------------------------------------------------


def _lookup(table, p, b, *, check=lambda p, cap: 0 <= p < cap):
    if not check(p, len(table) * b):
        raise ValueError(f"position {p} is outside the cache")
    return table[p // b], p % b


def _lookup_logical(table, p, b):
    _lookup(table, p, b)
    return p // b, p % b


def _lookup_swapped(table, p, b):
    block, offset = _lookup(table, p, b)
    return offset, block


def _lookup_one_based_boundary(table, p, b):
    _lookup(table, p, b)
    block = -(-p // b) - 1 if p else 0  # ⌈p / b⌉ - 1: wrong exactly at block starts
    return table[block], p - block * b


def _lookup_one_based_offset(table, p, b):
    block, offset = _lookup(table, p, b)
    return block, offset + 1


def _lookup_float_offset(table, p, b):
    block, offset = _lookup(table, p, b)
    return block, math.fmod(p, b)


WRONG = {
    "kv_cached_attention_step": [
        Wrong("new token prepended", _prepends, "prepended"),
        Wrong("K and V swapped", _swaps_k_and_v, "swapped"),
        Wrong("V's new row is k", lambda *a: _step(*a, values=lambda vc, v, k: torch.cat(
            [vc, k[None]])), "must be v, not k"),
        Wrong("V's new row duplicates the last cached row", lambda *a: _step(
            *a, values=lambda vc, v, k: torch.cat([vc, vc[-1:] if len(vc) else v[None]])),
              "repeats the last cached row"),
        Wrong("values lost (zeros)", lambda *a: _step(*a, values=lambda vc, v, k: torch.cat(
            [vc, torch.zeros_like(v)[None]])), "is zeros"),
        Wrong("cached keys lost (zeros)", lambda *a: _step(
            *a, keys=lambda kc, k, v, q: torch.cat([torch.zeros_like(kc), k[None]])),
              "cached rows must come first"),
        Wrong("K's new row is q", lambda *a: _step(*a, keys=lambda kc, k, v, q: torch.cat(
            [kc, q[None]])), "not q"),
        Wrong("the new token does not attend to itself", _forgets_itself, "attend to itself"),
        Wrong("out = v", lambda *a: _step(*a, attend=lambda q, keys, values, s: values[-1]),
              "every cached token"),
        Wrong("no 1/√d", lambda *a: _step(*a, scale=1.0), "1 / √d"),
        Wrong("1/d", lambda *a: _step(*a, scale=1 / a[0].shape[0]), "not by 1 / d"),
        Wrong("weights @ K", lambda *a: _step(*a, attend=lambda q, keys, values, s: torch.softmax(
            keys @ q * s, 0) @ keys), "not weights @ k"),
        Wrong("softmax over a size-1 dim", _softmax_over_a_column, "size 1"),
        Wrong("exp without the max: overflows", _overflowing_softmax, "overflowed"),
        Wrong("rebuilds the cache row by row", _rebuilds_the_cache, "linear in t"),
        Wrong("returns float64 for float32", _returns_float64, "dtype"),
        Wrong("scaled_dot_product_attention", lambda q, kc, vc, k, v: _step(
            q, kc, vc, k, v, attend=lambda q, keys, values, s: F.scaled_dot_product_attention(
                q[None], keys, values)[0]), "scaled_dot_product_attention"),
        Wrong("the course's cached_attention_step", kvcache.cached_attention_step,
              "kvcache.cached_attention_step"),
    ],
    "kv_model_cache_bytes": [
        Wrong("heads instead of kv_heads", lambda *a: _size(*a, kv="heads"), "kv_heads"),
        Wrong("d_model instead of kv_heads · head_dim", _size_d_model, "kv_heads"),
        Wrong("no factor 2", lambda *a: _size(*a, two=1), "factor 2"),
        Wrong("ignores the batch", lambda *a: _size(*a, with_batch=False), "× batch"),
        Wrong("ignores the bytes", lambda *a: _size(*a, with_bytes=False), "bytes_per_number"),
        Wrong("d_model per head", lambda *a: _size(*a, per_head="d_model"), "not d_model"),
        Wrong("forgets the layers", lambda *a: _size(*a, with_layers=False), "× layers"),
        Wrong("no validation", lambda *a: _size(*a, validate=()), "ValueError"),
        Wrong("checks the context only", lambda *a: _size(*a, validate=("context",)),
              "refuse batch < 1"),
        Wrong("the course's model_kv_cache_bytes", lambda model, context, batch, size:
              cost.model_kv_cache_bytes(model, context, batch=batch,
                                        dtype={1: "float8", 2: "bfloat16", 4: "float32"}[size]),
              "cost.model_kv_cache_bytes"),
        Wrong("the course's kv_cache_bytes", lambda model, context, batch, size: (lambda m: (
            cost.kv_cache_bytes(m.layers, m.kv_heads, m.head_dim, context, batch=batch,
                                dtype={1: "float8", 2: "bfloat16", 4: "float32"}[size])))(
            get_model(model)), "cost.kv_cache_bytes"),
    ],
    "kv_quantize_int8": [
        Wrong("one scale for the whole tensor", lambda x: _quantize(x, per_tensor=True),
              "per token"),
        Wrong("one scale per channel", _quantize_per_channel, "per channel"),
        Wrong("/255", lambda x: _quantize(x, levels=255), "not 255"),
        Wrong("/128", lambda x: _quantize(x, levels=128), "not 128"),
        Wrong("truncates instead of rounding", lambda x: _quantize(x, rounding=torch.trunc),
              "truncates toward zero"),
        Wrong("floor instead of rounding", lambda x: _quantize(x, rounding=torch.floor),
              "not down"),
        Wrong("no clamp", lambda x: _quantize(x, clamp=False), "clamp"),
        Wrong("nan scale for an all-zero token", lambda x: _quantize(x, zero_guard=False),
              "all-zero"),
        Wrong("scale of shape (n,)", lambda x: _quantize(x, keepdim=False), "keepdim"),
        Wrong("float q", lambda x: _quantize(x, to_int8=False), "torch.int8"),
        Wrong("max without abs", lambda x: _quantize(x, absolute=False), "magnitude"),
        Wrong("inverse scale", _quantize_inverse_scale, "not its inverse"),
        Wrong("(scale, q)", lambda x: _quantize(x)[::-1], "in that order"),
        Wrong("divides x in place", _quantize_in_place, "in place"),
        Wrong("the course's quantize", lambda x: kvcache.quantize(x, bits=8, axis="token"),
              "kvcache.quantize"),
    ],
    "kv_block_table_lookup": [
        Wrong("the logical block", _lookup_logical, "logical block"),
        Wrong("(offset, block) swapped", _lookup_swapped, "swapped"),
        Wrong("off by one at block boundaries", _lookup_one_based_boundary, "block boundary"),
        Wrong("offsets from 1", _lookup_one_based_offset, "offsets start at 0"),
        Wrong("a float offset", _lookup_float_offset, "integers"),
        Wrong("no validation", lambda t, p, b: (t[p // b], p % b), "ValueError"),
        Wrong("allows p = len · B", lambda t, p, b: _lookup(
            t, p, b, check=lambda p, c: 0 <= p <= c), "past the end"),
        Wrong("allows negative positions", lambda t, p, b: _lookup(
            t, p, b, check=lambda p, c: p < c), "negative"),
        Wrong("bounds in blocks, not tokens", lambda t, p, b: _lookup(
            t, p, b, check=lambda p, c: 0 <= p < len(t)), "refuse only"),
        Wrong("the course's block_table_lookup", kvcache.block_table_lookup,
              "kvcache.block_table_lookup"),
    ],
}

def _step_by_hand(q, k_cache, v_cache, k, v):
    # a softmax written out (max-shifted), and the caches built with torch.vstack
    keys, values = torch.vstack([k_cache, k]), torch.vstack([v_cache, v])
    scores = keys @ q / q.shape[0] ** 0.5
    weights = torch.exp(scores - scores.max())
    return weights / weights.sum() @ values, keys, values


def _quantize_float32(x):
    # computed in float32 from any input dtype; scale 1e-8 / 127 for an all-zero row
    xf = x.float()
    scale = xf.abs().amax(1, keepdim=True).clamp_min(1e-8) / 127
    return torch.round(xf / scale).clamp(-127, 127).to(torch.int8), scale


def _lookup_divmod(block_table, position, block_size):
    if position < 0 or position >= len(block_table) * block_size:
        raise ValueError(f"position {position} out of range")
    block, offset = divmod(position, block_size)
    return [block_table[block], offset]  # a list is fine too


RIGHT = {
    "kv_cached_attention_step": [_step, _step_by_hand],
    "kv_model_cache_bytes": [_size, lambda *a: float(_size(*a))],
    "kv_quantize_int8": [
        _quantize,
        _quantize_float32,
        # floor(x + 0.5): differs from torch.round only at exact ties
        lambda x: _quantize(x, rounding=lambda r: torch.floor(r + 0.5)),
    ],
    "kv_block_table_lookup": [_lookup, _lookup_divmod],
}

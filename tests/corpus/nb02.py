"""Wrong answers to notebook 02's exercises (cost arithmetic)."""

from __future__ import annotations

import math

from attn_course import cost
from tests.corpus import Wrong

# --- attention_flops -------------------------------------------------------------------------


def _flops_qk_right_pv_wrong(n, d_model):
    return 2 * n * n * d_model + 2 * n * d_model * d_model  # P V counted as (n × d)(d × d)


# --- crossover_n -----------------------------------------------------------------------------


def _crossover_forgot_n(d_model, d_ff):
    # 4 n² d = 8 d² + 4 d d_ff, the rest of the layer written without its factor n
    return math.sqrt((8 * d_model**2 + 4 * d_model * d_ff) / (4 * d_model))


# --- kv_cache_bytes --------------------------------------------------------------------------


def _kv(layers, d_model, heads, kv_heads, context, batch, bytes_per_element, *, keys_only=False,
        use_heads=False, no_batch=False, no_layers=False, no_bytes=False, bits=False,
        round_bytes=False, no_head_dim=False, validate=True):  # fmt: skip
    if validate and heads % kv_heads:
        raise ValueError(f"kv_heads={kv_heads} must divide heads={heads}")
    channels = d_model if no_head_dim else d_model // heads
    cached = heads if use_heads else kv_heads
    size = math.floor(bytes_per_element) if round_bytes else bytes_per_element
    elements = (1 if keys_only else 2) * (1 if no_layers else layers) * cached * channels
    elements *= context * (1 if no_batch else batch)
    if no_bytes:
        return elements
    return elements * size * (8 if bits else 1)


def _kv_assert(layers, d_model, heads, kv_heads, context, batch, bytes_per_element):
    assert heads % kv_heads == 0, "kv_heads must divide heads"
    return _kv(layers, d_model, heads, kv_heads, context, batch, bytes_per_element)


def _kv_only_checks_bigger(layers, d_model, heads, kv_heads, context, batch, bytes_per_element):
    if kv_heads > heads:
        raise ValueError(f"kv_heads={kv_heads} must be <= heads={heads}")
    return _kv(layers, d_model, heads, kv_heads, context, batch, bytes_per_element, validate=False)


def _kv_reversed_test(layers, d_model, heads, kv_heads, context, batch, bytes_per_element):
    if kv_heads % heads:  # the wrong way round: refuses every real GQA model
        raise ValueError(f"kv_heads={kv_heads} must divide heads={heads}")
    return _kv(layers, d_model, heads, kv_heads, context, batch, bytes_per_element)


def _kv_vague_error(layers, d_model, heads, kv_heads, context, batch, bytes_per_element):
    if heads % kv_heads:
        raise ValueError("invalid model shape")
    return _kv(layers, d_model, heads, kv_heads, context, batch, bytes_per_element)


def _kv_course(layers, d_model, heads, kv_heads, context, batch, bytes_per_element):
    dtype = {4: "float32", 2: "float16", 1: "int8", 0.5: "int4"}.get(bytes_per_element, "float16")
    return cost.kv_cache_bytes(layers, kv_heads, cost.head_dim(d_model, heads), context,
                               batch=batch, dtype=dtype)  # fmt: skip


def _kv_float_head_dim(layers, d_model, heads, kv_heads, context, batch, bytes_per_element):
    if heads % kv_heads != 0:
        raise ValueError(f"heads % kv_heads must be 0, got kv_heads={kv_heads}")
    head_dim = d_model / heads  # a float is fine
    return 2.0 * layers * kv_heads * head_dim * context * batch * bytes_per_element


# --- round_trip_time_s -----------------------------------------------------------------------


def _round_trip(n, size, bandwidth, *, passes=2, unit=1.0):
    if bandwidth <= 0:
        raise ValueError(f"bandwidth_bytes_per_s must be > 0, got {bandwidth}")
    return passes * n * n * size / bandwidth * unit


def _round_trip_zero_only(n, size, bandwidth):
    if bandwidth == 0:
        raise ValueError("bandwidth_bytes_per_s must not be 0")
    return 2 * n * n * size / bandwidth


def _round_trip_vague(n, size, bandwidth):
    if bandwidth <= 0:
        raise ValueError("must be positive")
    return 2 * n * n * size / bandwidth


def _round_trip_gb(n, size, bandwidth):
    if bandwidth <= 0:
        raise ValueError(f"bandwidth_bytes_per_s must be > 0, got {bandwidth}")
    return 2 * n * n * size / (bandwidth / 1e9)  # "GB/s"


def _round_trip_course(n, size, bandwidth):
    return cost.transfer_time_s(2 * n * n * size, bandwidth)


def _round_trip_score_bytes(n, size, bandwidth):
    if bandwidth <= 0:
        raise ValueError(f"bandwidth_bytes_per_s must be > 0, got {bandwidth}")
    dtype = {1: "int8", 2: "float16"}.get(size, "float32")
    return 2 * cost.score_matrix_bytes(n, dtype) / bandwidth


def _round_trip_n(n, size, bandwidth):
    if bandwidth <= 0:
        raise ValueError(f"bandwidth_bytes_per_s must be > 0, got {bandwidth}")
    return 2 * n * size / bandwidth


WRONG = {
    "attention_flops": [
        Wrong("one matmul", lambda n, d: 2 * n * n * d, "one matmul, or multiply-adds"),
        Wrong("multiply-adds of one matmul", lambda n, d: n * n * d, "multiply-adds of ONE"),
        Wrong("n and d swapped", lambda n, d: 4 * n * d * d, "swapped"),
        Wrong("causal triangle", lambda n, d: 4 * (n * (n + 1) // 2) * d, "no causal mask"),
        Wrong("n scores, not n²", lambda n, d: 4 * n * d, "quadratic in n"),
        Wrong("4 FLOPs per multiply-add", lambda n, d: 8 * n * n * d, "counted once"),
        Wrong("P V as (n × d)(d × d)", _flops_qk_right_pv_wrong, "grows 14.7×"),
        Wrong("returns None", lambda n, d: None, "expected a number"),
        Wrong("returns a string", lambda n, d: f"{4 * n * n * d:,}", "expected a number"),
        Wrong(
            "the course's attention_matmul_flops",
            cost.attention_matmul_flops,
            "cost.attention_matmul_flops",
        ),
        Wrong(
            "cost.attention_flops",
            lambda n, d: cost.attention_flops(1, 1, n, d),
            "cost.attention_flops",
        ),
    ],
    "crossover_n": [
        Wrong("the textbook's n = d", lambda d, d_ff: d, "textbook's claim"),
        Wrong("the FFN alone", lambda d, d_ff: d_ff, "add the projections"),
        Wrong("assumes d_ff = 4d", lambda d, d_ff: 6 * d, "assumes d_ff = 4·d"),
        Wrong("causal crossover", lambda d, d_ff: 2 * (d_ff + 2 * d), "causal"),
        Wrong("projections as multiply-adds", lambda d, d_ff: d_ff + d, "2 per multiply-add"),
        Wrong("three projections", lambda d, d_ff: d_ff + 1.5 * d, "output projection"),
        Wrong("gated FFN", lambda d, d_ff: 1.5 * d_ff + 2 * d, "2 matrices"),
        Wrong("attention counted double", lambda d, d_ff: (d_ff + 2 * d) / 2, "both sides"),
        Wrong("the rest without its n", _crossover_forgot_n, "grows linearly in n"),
        Wrong(
            "the course's crossover",
            lambda d, d_ff: cost.attention_ffn_crossover_n(d, d_ff, include_projections=True),
            "cost.attention_ffn_crossover_n",
        ),
    ],
    "kv_cache_bytes": [
        Wrong("keys only", lambda *a: _kv(*a, keys_only=True), "key AND a value"),
        Wrong("heads, not kv_heads", lambda *a: _kv(*a, use_heads=True), "kv_heads × head_dim"),
        Wrong("d_model per kv head", lambda *a: _kv(*a, no_head_dim=True), "d_model / heads"),
        Wrong("no batch", lambda *a: _kv(*a, no_batch=True), "multiply by batch"),
        Wrong("no layers", lambda *a: _kv(*a, no_layers=True), "multiply by layers"),
        Wrong("elements, not bytes", lambda *a: _kv(*a, no_bytes=True), "bytes_per_element"),
        Wrong("bits", lambda *a: _kv(*a, bits=True), "not bits"),
        Wrong("int4 rounded to 0 bytes", lambda *a: _kv(*a, round_bytes=True), "fractional"),
        Wrong("no validation", lambda *a: _kv(*a, validate=False), "raise ValueError"),
        Wrong("assert instead of ValueError", _kv_assert, "got AssertionError"),
        Wrong("refuses only kv_heads > heads", _kv_only_checks_bigger, "nothing was raised"),
        Wrong("divisibility tested backwards", _kv_reversed_test, "that input is valid"),
        Wrong("ValueError that names nothing", _kv_vague_error, "does not name kv_heads"),
        Wrong("the course's kv_cache_bytes", _kv_course, "cost.kv_cache_bytes"),
    ],
    "round_trip_time_s": [
        Wrong("one way", lambda n, b, bw: _round_trip(n, b, bw, passes=1), "one way"),
        Wrong("S and P both", lambda n, b, bw: _round_trip(n, b, bw, passes=4), "one matrix"),
        Wrong("milliseconds", lambda n, b, bw: _round_trip(n, b, bw, unit=1e3), "milliseconds"),
        Wrong("microseconds", lambda n, b, bw: _round_trip(n, b, bw, unit=1e6), "microseconds"),
        Wrong("bandwidth taken as GB/s", _round_trip_gb, "not GB/s"),
        Wrong("n entries, not n·n", _round_trip_n, "n·n entries"),
        Wrong("no bytes_per_element", lambda n, b, bw: _round_trip(n, 1, bw), "bytes_per_element"),
        Wrong("no validation", lambda n, b, bw: 2 * n * n * b / bw, "ZeroDivisionError"),
        Wrong("refuses only zero", _round_trip_zero_only, "negative"),
        Wrong("ValueError that names nothing", _round_trip_vague, "does not name bandwidth"),
        Wrong("the course's transfer_time_s", _round_trip_course, "cost.transfer_time_s"),
        Wrong(
            "the course's score_matrix_bytes", _round_trip_score_bytes, "cost.score_matrix_bytes"
        ),
    ],
}

RIGHT = {
    "attention_flops": [
        lambda n, d_model: 4 * n**2 * d_model,
        lambda n, d_model: 4.0 * n * n * d_model,  # a float is fine: FLOPs are a count
        lambda n, d_model: sum(2 * n * n * d_model for _ in ("QK", "PV")),
    ],
    "crossover_n": [
        lambda d, d_ff: (8 * d * d + 4 * d * d_ff) / (4 * d),
        lambda d, d_ff: float(d_ff + 2 * d),
    ],
    "kv_cache_bytes": [
        lambda *a: _kv(*a),
        _kv_float_head_dim,
    ],
    "round_trip_time_s": [
        lambda n, b, bw: _round_trip(n, b, bw),
        lambda n, b, bw: _round_trip(n, b, bw) * 1.0,
    ],
}

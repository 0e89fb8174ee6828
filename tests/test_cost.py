"""attn_course.cost: hand-checked values, measurements, bad input, and the exercise checks."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attn_course import cost
from attn_course.checks import get_exercise
from attn_course.presets import ModelShape

pytestmark = pytest.mark.nb02

# A model small enough to check every FLOP by hand:
# 2 layers, d = 8, 2 heads (head_dim 4), MHA, 2-matrix FFN of width 32, vocab 10.
TINY = ModelShape(
    name="tiny", layers=2, d_model=8, heads=2, kv_heads=2, d_ff=32, gated_ffn=False, vocab=10,
    context=16,
)  # fmt: skip


# --- dtypes and formatting ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "size"),
    [
        ("float64", 8),
        ("float32", 4),
        ("fp32", 4),
        ("tf32", 4),
        ("bfloat16", 2),
        ("bf16", 2),
        ("half", 2),
        ("float8", 1),
        ("float8_e4m3fn", 1),
        ("int8", 1),
        ("int4", 0.5),  # two 4-bit numbers per byte
        (torch.float16, 2),
        ("torch.bfloat16", 2),
    ],
)
def test_bytes_per_element(dtype, size):
    assert cost.bytes_per_element(dtype) == size


def test_unknown_dtype_names_the_parameter_and_the_choices():
    with pytest.raises(ValueError, match=r"dtype must be one of .*'float16'.*got 'float12'"):
        cost.bytes_per_element("float12")


def test_format_helpers_say_their_units():
    assert cost.format_bytes(2**31) == "2.15 GB"  # 2,147,483,648 B / 10^9
    assert cost.format_bytes(2**31, binary=True) == "2 GiB"  # / 2^30
    assert cost.format_bytes(512) == "512 B"
    assert cost.format_seconds(0.0021) == "2.1 ms"
    assert cost.format_seconds(125) == "2.08 min"  # 125 / 60
    assert cost.format_seconds(5e-10) == "0.5 ns"
    assert cost.format_flops(1.37e16) == "13.7 PFLOP"
    with pytest.raises(ValueError, match="n_bytes"):
        cost.format_bytes(-1)


# --- score-matrix memory ----------------------------------------------------------------


def test_score_count():
    assert cost.score_count(8000) == 64_000_000  # 8000^2
    assert cost.score_count(4, heads=2, layers=3, batch=5) == 480  # 16 * 2 * 3 * 5


def test_score_matrix_bytes_one_head():
    assert cost.score_matrix_bytes(4096, "float32") == 67_108_864  # 4096^2 * 4 = 64 MiB
    assert cost.score_matrix_bytes(4096, "float32") == 64 * 2**20
    assert cost.score_matrix_bytes(10**6, "fp16") == 2 * 10**12  # 10^12 * 2 B = 2 TB
    assert cost.score_matrix_bytes(3, "int4") == 4.5  # 9 scores * 0.5 B


def test_score_matrix_bytes_scales_with_heads_layers_batch():
    # 32768^2 = 1,073,741,824 scores * 2 B * 32 heads * 32 layers = 2,199,023,255,552 B = 2 TiB
    assert cost.score_matrix_bytes(32768, "float16", heads=32, layers=32) == 2_199_023_255_552
    assert cost.score_matrix_bytes(8, "float32", batch=3) == 768  # 64 * 4 * 3


def test_forward_peak_holds_s_and_p():
    # 2 tensors * batch 2 * 8 heads * 1024^2 * 2 B = 2 * 2 * 8 * 1,048,576 * 2 = 67,108,864
    assert cost.forward_peak_score_bytes(1024, 8, "bf16", batch=2) == 67_108_864


def test_saved_for_backward_formula():
    # P only: 4 layers * 8 heads * 1024^2 * 2 B = 67,108,864
    assert cost.saved_for_backward_bytes(1024, 8, 4, "bf16") == 67_108_864
    # dropout: P (2 B) + bool mask (1 B) + dropped P (2 B) = 5 B per score: 32 * 1024^2 * 5
    assert cost.saved_for_backward_bytes(1024, 8, 4, "bf16", dropout=True) == 167_772_160


@pytest.mark.parametrize(
    ("n", "heads", "batch", "dtype", "dropout"),
    [
        (64, 3, 2, "float32", 0.0),
        (48, 2, 1, "bfloat16", 0.0),
        (40, 4, 1, "float64", 0.1),
        (33, 1, 3, "float32", 0.5),
    ],
)
def test_saved_for_backward_matches_what_autograd_saves(n, heads, batch, dtype, dropout):
    """Measurement: count the n x n bytes autograd really keeps with saved_tensors_hooks."""
    measured = cost.measure_saved_score_bytes(n, heads, dtype, batch=batch, dropout=dropout)
    # On CPU PyTorch keeps the dropout mask in the input dtype (a bool on CUDA).
    formula = cost.saved_for_backward_bytes(
        n, heads, 1, dtype, batch=batch, dropout=bool(dropout), dropout_mask_dtype=dtype
    )
    assert measured == formula


def test_autograd_does_not_save_the_raw_scores():
    # Without dropout exactly ONE n x n matrix per head is saved (P), not two (S and P).
    one_matrix = cost.score_matrix_bytes(64, "float32", heads=2)
    assert cost.measure_saved_score_bytes(64, 2, "float32") == one_matrix


def test_measure_refuses_ambiguous_shapes():
    with pytest.raises(ValueError, match="head_dim"):
        cost.measure_saved_score_bytes(8, head_dim=8)
    with pytest.raises(ValueError, match="dropout"):
        cost.measure_saved_score_bytes(16, dropout=1.0)


def test_max_n_for_memory():
    # 80 GiB / (32 heads * 32 layers * 2 B) = 41,943,040 -> isqrt = 6476
    # (6476^2 = 41,938,576 fits; 6477^2 = 41,951,529 does not)
    assert cost.max_n_for_memory(80 * 2**30, "bf16", heads=32, layers=32) == 6476
    assert cost.max_n_for_memory(1, "float32") == 0  # not even one 4-byte score fits


def test_naive_attention_traffic():
    # write S, read S, write P, read P: 4 * 32768^2 * 2 B = 8,589,934,592
    assert cost.naive_attention_traffic_bytes(32768, 1, 1, "fp16") == 8_589_934_592


# --- FLOPs ------------------------------------------------------------------------------


def test_matmul_flops():
    assert cost.matmul_flops(2, 3, 4) == 48  # 2 * 3 * 4 multiply-adds * 2


def test_attention_matmul_flops():
    assert cost.attention_matmul_flops(4096, 4096) == 274_877_906_944  # 4 * 4096^3
    assert cost.attention_matmul_flops(4096, 4096, causal=True) == 137_438_953_472  # half
    assert cost.attention_matmul_flops(10, 8, batch=3) == 9600  # 4 * 100 * 8 * 3


def test_projection_flops_with_gqa_and_mqa():
    # MHA: 8 n d^2 = 8 * 10 * 64^2 = 327,680
    assert cost.projection_flops(10, 64, 8) == 327_680
    # GQA, 2 of 8 KV heads: Q,O 4 n d^2 = 163,840; K,V 4 n d^2 * 2/8 = 40,960
    assert cost.projection_flops(10, 64, 8, 2) == 204_800
    # MQA: 163,840 + 4 n d^2 / 8 = 163,840 + 20,480
    assert cost.projection_flops(10, 64, 8, 1) == 184_320


def test_ffn_flops():
    assert cost.ffn_flops(10, 64, 256) == 655_360  # 2 matrices * 2 * 10 * 64 * 256
    assert cost.ffn_flops(10, 64, 256, gated=True) == 983_040  # 3 matrices


def test_layer_flops_llama2():
    parts = cost.layer_flops("Llama-2-7B", 4096, causal=True)
    assert parts.attention == 137_438_953_472  # 2 * 4096^2 * 4096 (causal)
    assert parts.projections == 549_755_813_888  # 8 * 4096 * 4096^2
    assert parts.ffn == 1_108_101_562_368  # 3 * 2 * 4096 * 4096 * 11008
    assert parts.total == 137_438_953_472 + 549_755_813_888 + 1_108_101_562_368
    assert parts.attention_share == pytest.approx(137_438_953_472 / parts.total)


def test_crossover_against_ffn_and_against_the_rest_of_the_layer():
    assert cost.attention_ffn_crossover_n(4096, 16384) == 16384  # n* = d_ff = 4d
    # + projections (MHA): n* = d_ff + 2d = 16384 + 8192
    assert cost.attention_ffn_crossover_n(4096, 16384, include_projections=True) == 24576
    assert cost.attention_ffn_crossover_n(4096, 16384, causal=True) == 32768  # 2 d_ff
    # gated FFN (3 matrices): 6 n d d_ff = 4 n^2 d -> n* = 1.5 d_ff = 16,512
    assert cost.attention_ffn_crossover_n(4096, 11008, gated=True) == 16512
    # GQA 8 of 32 KV heads: rest = 4 d d_ff + 4 d^2 (1 + 1/4) per token;
    # / (4 d) -> d_ff + 1.25 d = 16384 + 5120 = 21,504
    gqa = cost.attention_ffn_crossover_n(
        4096, 16384, include_projections=True, heads=32, kv_heads=8
    )
    assert gqa == 21504


def test_attention_ffn_ratio():
    assert cost.attention_ffn_ratio(10**6, 12288, 49152) == pytest.approx(10**6 / 49152)


@settings(max_examples=40, deadline=None)
@given(
    d_model=st.sampled_from([64, 512, 4096, 12288]),
    d_ff_factor=st.sampled_from([2, 3, 4]),
    gated=st.booleans(),
    causal=st.booleans(),
    include_projections=st.booleans(),
)
def test_attention_equals_the_rest_at_the_crossover(
    d_model, d_ff_factor, gated, causal, include_projections
):
    d_ff = d_ff_factor * d_model
    options = dict(gated=gated, causal=causal, include_projections=include_projections)
    n_star = cost.attention_ffn_crossover_n(d_model, d_ff, **options)
    # n* is a whole number of tokens for these shapes, and the ratio there is exactly 1
    assert n_star == int(n_star)
    assert cost.attention_ffn_ratio(int(n_star), d_model, d_ff, **options) == pytest.approx(1)


def test_position_encodings_add_flops():
    assert cost.position_encoding_flops("rope", 10, 64, 8) == 3840  # 6 * 10 * 64
    assert cost.position_encoding_flops("alibi", 10, 64, 8) == 800  # 8 heads * 10^2
    assert cost.position_encoding_flops("alibi", 10, 64, 8, causal=True) == 400
    with pytest.raises(ValueError, match="kind must be 'rope' or 'alibi'"):
        cost.position_encoding_flops("sinusoidal", 10, 64, 8)


# --- KV cache ---------------------------------------------------------------------------


def test_kv_cache_bytes():
    # 2 * 32 layers * 32 heads * 128 dims * 100,000 tokens * 2 B = 52,428,800,000
    assert cost.kv_cache_bytes(32, 32, 128, 100_000) == 52_428_800_000
    assert cost.kv_cache_bytes_per_token(32, 32, 128) == 524_288  # 2 * 32 * 32 * 128 * 2
    assert cost.kv_cache_bytes(1, 1, 1, 1, dtype="int4") == 1  # 2 numbers * 0.5 B
    assert cost.kv_cache_bytes(2, 1, 8, 10, batch=3, dtype="float32") == 3840  # 2*2*8*10*3*4


def test_model_kv_cache_bytes_gqa_and_mqa():
    # Llama-3-8B: 8 KV heads of 128: 2 * 32 * 8 * 128 * 100,000 * 2 = 13,107,200,000
    assert cost.model_kv_cache_bytes("Llama-3-8B", 100_000) == 13_107_200_000
    # forced to MQA: 1 KV head, 8x less
    assert cost.model_kv_cache_bytes("Llama-3-8B", 100_000, kv_heads=1) == 1_638_400_000
    with pytest.raises(ValueError, match="kv_heads must divide heads"):
        cost.model_kv_cache_bytes("Llama-3-8B", 100, kv_heads=5)


def test_max_kv_context():
    # 1e9 B / (2 * 32 * 8 * 128 * 2 = 131,072 B per token) = 7629.4 -> 7629
    assert cost.max_kv_context(1e9, 32, 8, 128, dtype="bf16") == 7629


def test_latent_kv_cache_bytes():
    assert cost.latent_kv_cache_bytes(61, 576, 1000) == 70_272_000  # 61 * 576 * 1000 * 2


# --- parameters, prefill, decode --------------------------------------------------------


def test_parameter_count_of_the_tiny_model():
    # per layer: attention 4 * 8^2 = 256, FFN 2 * 8 * 32 = 512, 2 RMSNorms 16 -> 784
    # 2 layers = 1568, final norm 8, embeddings 10 * 8 = 80 in and 80 out -> 1736
    assert cost.parameter_count(TINY) == 1736
    assert cost.parameter_count(TINY, include_embeddings=False) == 1576
    assert cost.matmul_parameter_count(TINY) == 2 * 768 + 80  # layers' matrices + LM head
    assert cost.weight_bytes(TINY, "float32") == 1736 * 4


def test_weight_bytes_llama2():
    assert cost.weight_bytes("Llama-2-7B", "bf16") == 13_476_831_232  # 6,738,415,616 * 2


def test_prefill_flops_by_hand():
    # per layer at n = 4: attention 4 * 16 * 8 = 512, projections 8 * 4 * 64 = 2048,
    # FFN 4 * 4 * 8 * 32 = 4096 -> 6656; 2 layers = 13,312; LM head 2 * 4 * 8 * 10 = 640
    assert cost.prefill_flops(TINY, 4, causal=False) == 13_952
    assert cost.prefill_flops(TINY, 4, causal=True) == 13_952 - 2 * 256  # attention halved
    assert cost.prefill_flops(TINY, 4, causal=False, batch=2) == 2 * 13_952


def test_prefill_is_two_flops_per_weight_per_token_plus_attention():
    m, n = "Llama-3-8B", 2048
    expected = 2 * cost.matmul_parameter_count(m) * n + 32 * cost.attention_matmul_flops(
        n, 4096, causal=True
    )
    assert cost.prefill_flops(m, n) == expected


def test_decode_step_flops_by_hand():
    # with cache, context 5: 2 * P + layers * 4 * 5 * 8, P = 1616 -> 3232 + 320
    assert cost.decode_step_flops(TINY, 5) == 3552
    # without cache: a causal forward over 5 tokens, logits for the last token only:
    # per layer 2*25*8 + 8*5*64 + 4*5*8*32 = 400 + 2560 + 5120 = 8080; x2 + 2*8*10 = 16,320
    assert cost.decode_step_flops(TINY, 5, kv_cache=False) == 16_320
    # three cached steps: sum over c = 1..3 of 3232 + 64 c = 9696 + 384
    assert cost.decode_total_flops(TINY, 3) == 10_080
    assert cost.decode_attention_flops(5, 8) == 160  # 4 * 5 * 8


def test_time_to_first_token_llama3_8b_on_h100():
    est = cost.time_to_first_token("Llama-3-8B", "H100-SXM5-80GB", 200_000, mfu=0.5)
    # 2 * 7,504,658,432 * 200,000 + 32 * 2 * 200,000^2 * 4096 = 3.0019e15 + 1.0486e16
    assert est.flops == 13_487_623_372_800_000
    assert est.compute_s == pytest.approx(est.flops / (989.4e12 * 0.5))  # ~27.3 s
    assert est.time_s == pytest.approx(27.26, rel=1e-3)
    assert est.bound == "compute"


def test_decode_step_llama3_8b_is_memory_bound():
    est = cost.decode_step_cost("Llama-3-8B", "H100-SXM5-80GB", 8192)
    # weights 7,504,658,432 * 2 B + cache 2 * 32 * 8 * 128 * 8192 * 2 B = 1,073,741,824
    assert est.bytes_moved == 15_009_316_864 + 1_073_741_824
    assert est.memory_s == pytest.approx(16_083_058_688 / 3.35e12)  # ~4.8 ms
    assert est.bound == "memory"
    assert est.arithmetic_intensity == pytest.approx(est.flops / est.bytes_moved)
    # a big batch shares the weight reads and moves the step toward compute-bound
    assert cost.decode_step_cost("Llama-3-8B", "H100-SXM5-80GB", 128, batch=512).bound == "compute"


# --- time -------------------------------------------------------------------------------


def test_transfer_compute_and_roofline_times():
    # 2 * 2^31 B / 2.039e12 B/s = 2.106 ms
    assert cost.transfer_time_s(2 * 2**31, 2.039e12) == pytest.approx(2.1064086787641e-3)
    assert cost.compute_time_s(1e15, 1e15, utilization=0.5) == 2.0
    assert cost.roofline_time_s(1e12, 1e9, 1e12, 1e9) == 1.0  # both 1 s
    assert cost.roofline_time_s(1e12, 4e9, 1e12, 1e9) == 4.0  # memory-bound
    assert cost.peak_flops_per_s("H100-SXM5-80GB", "bf16") == 989.4e12


# --- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: cost.score_count(0), r"n must be an integer >= 1, got 0"),
        (lambda: cost.score_count(4.0), r"n must be an integer >= 1, got 4\.0"),
        (lambda: cost.score_count(True), r"n must be an integer >= 1"),
        (lambda: cost.score_count(8, heads=-2), r"heads must be an integer >= 1"),
        (lambda: cost.score_matrix_bytes(8, "float32", layers=0), r"layers must be"),
        (lambda: cost.score_matrix_bytes(8, "float32", batch=1.5), r"batch must be"),
        (lambda: cost.attention_matmul_flops(8, -64), r"d_model must be an integer >= 1"),
        (lambda: cost.projection_flops(10, 64, 3), r"heads must divide d_model"),
        (lambda: cost.projection_flops(10, 64, 8, 3), r"kv_heads must divide heads"),
        (lambda: cost.projection_flops(10, 64, 8, 16), r"kv_heads must divide heads"),
        (lambda: cost.head_dim(100, 7), r"heads must divide d_model"),
        (lambda: cost.kv_cache_bytes(32, 8, 128, 0), r"context must be an integer >= 1"),
        (lambda: cost.kv_cache_bytes(32, 8, 128, 10, dtype="fp12"), r"dtype must be one of"),
        (
            lambda: cost.transfer_time_s(1e9, 0),
            r"bandwidth_bytes_per_s must be a finite number > 0",
        ),
        (lambda: cost.transfer_time_s(-1, 1e9), r"n_bytes must be a finite number >= 0"),
        (lambda: cost.compute_time_s(1, 1, utilization=1.5), r"utilization must be in \(0, 1\]"),
        (lambda: cost.compute_time_s(1, math.nan), r"flops_per_s must be a finite number > 0"),
        (lambda: cost.compute_time_s(1, math.inf), r"flops_per_s must be a finite number > 0"),
        (lambda: cost.max_n_for_memory(0), r"memory_bytes must be a finite number > 0"),
        (lambda: cost.peak_flops_per_s("A100-SXM4-80GB", "fp8"), r"'float8' has no peak"),
        (lambda: cost.peak_flops_per_s("TPU-v9", "bf16"), r"hardware must be one of \["),
        (lambda: cost.prefill_flops("GPT-5", 10), r"model must be one of \[.*'Llama-2-7B'"),
        (
            lambda: cost.attention_ffn_crossover_n(64, 256, include_projections=True, kv_heads=2),
            r"kv_heads needs heads",
        ),
        (
            lambda: cost.time_to_first_token("Llama-3-8B", "H100-SXM5-80GB", 10, mfu=0),
            r"mfu must be a finite number > 0",
        ),
        (
            lambda: cost.decode_step_cost("Llama-3-8B", "L4-24GB", 10, bandwidth_utilization=2),
            r"bandwidth_utilization must be in \(0, 1\]",
        ),
        (lambda: cost.decode_total_flops(TINY, 3, prompt_tokens=-1), r"prompt_tokens must be"),
    ],
)
def test_bad_input_raises_value_error_naming_the_parameter(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- properties -------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 10**6), heads=st.integers(1, 128), dtype=st.sampled_from(["fp32", "bf16"]))
def test_doubling_n_quadruples_score_bytes(n, heads, dtype):
    assert cost.score_matrix_bytes(2 * n, dtype, heads=heads) == 4 * cost.score_matrix_bytes(
        n, dtype, heads=heads
    )


@settings(max_examples=40, deadline=None)
@given(context=st.integers(1, 10**6), batch=st.integers(1, 64))
def test_kv_cache_is_linear_in_context_and_batch(context, batch):
    per_token = cost.kv_cache_bytes_per_token(32, 8, 128)
    assert cost.kv_cache_bytes(32, 8, 128, context, batch=batch) == per_token * context * batch


# --- notebook 02's exercises (their checks: tests/test_checks.py, tests/corpus/nb02.py) ---


def test_exercise_ids_belong_to_notebook_02():
    for exercise_id in ("attention_flops", "crossover_n", "kv_cache_bytes", "round_trip_time_s"):
        assert get_exercise(exercise_id).notebook == "02_cost_arithmetic"


def test_timing_measurements_return_plausible_numbers():
    # tiny sizes: this checks the plumbing, not the machine
    bandwidth = cost.measure_copy_bandwidth(2**20, min_run_time_s=0.01)
    assert 1e8 < bandwidth < 1e13  # between 0.1 GB/s and 10 TB/s
    assert cost.measure_score_pass_s(64, min_run_time_s=0.01) > 0
    assert cost.measure_score_pass_s(64, op="softmax", min_run_time_s=0.01) > 0
    with pytest.raises(ValueError, match="op must be one of"):
        cost.measure_score_pass_s(64, op="exp")
    with pytest.raises(ValueError, match="dtype must be float64"):
        cost.measure_score_pass_s(64, dtype="int8")


def test_format_bytes_both_units():
    # 2·10¹² B = 2 TB = 2·10¹²/2⁴⁰ TiB = 1.82 TiB; 2,097,152 B = 2.10 MB = 2 MiB exactly.
    assert cost.format_bytes_both(2 * 10**12) == "2 TB (1.82 TiB)"
    assert cost.format_bytes_both(2_097_152) == "2.1 MB (2 MiB)"
    assert cost.format_bytes_both(999) == "999 B (999 B)"
    with pytest.raises(ValueError, match="n_bytes"):
        cost.format_bytes_both(-1)


def test_score_matrix_bytes_rectangular():
    # cross-attention: 10 queries x 7 keys x 3 heads x 2 sequences x 8 B (float64) = 3,360 B
    assert cost.score_matrix_bytes(10, "float64", heads=3, batch=2, n_k=7) == 3_360
    with pytest.raises(ValueError, match="^n_k"):
        cost.score_count(4, n_k=0)


# --- mixed-precision saved tensors, logits, GQA decode, backward matmuls per tile ----------


def test_backward_matmuls_per_tile_pair():
    assert [len(p) for p in cost.attention_tile_matmuls("forward")] == [2]
    assert [len(p) for p in cost.attention_tile_matmuls("fa2_backward")] == [5]
    two_pass = cost.attention_tile_matmuls("two_pass_backward")
    assert [len(p) for p in two_pass] == [4, 3]
    # Both passes recompute S and dP; dQ only in pass 2, dK and dV only in pass 1.
    assert all("S = Q Kᵀ" in p and "dP = dO Vᵀ" in p for p in two_pass)
    assert [sum(name.startswith(g) for p in two_pass for name in p)
            for g in ("dQ", "dK", "dV")] == [1, 1, 1]  # fmt: skip
    forward = cost.attention_tile_flops("forward", 128, 64, 64)
    assert forward == 2 * 2 * 128 * 64 * 64
    assert cost.attention_tile_flops("fa2_backward", 128, 64, 64) == 5 * forward // 2
    assert cost.attention_tile_flops("two_pass_backward", 128, 64, 64) == 7 * forward // 2
    assert cost.backward_flops_ratio() == pytest.approx(1.4)
    assert cost.backward_flops_ratio(32, 128, 80) == pytest.approx(1.4)
    with pytest.raises(ValueError, match="kernel must be one of"):
        cost.attention_tile_matmuls("fa3_backward")
    with pytest.raises(ValueError, match="block_m"):
        cost.attention_tile_flops("forward", 0, 64, 64)


def test_fa2_backward_count_is_the_benchmarks_convention():
    forward = cost.attention_tile_flops("forward", 64, 64, 64)
    backward = cost.attention_tile_flops("fa2_backward", 64, 64, 64)
    assert backward / forward == cost.BACKWARD_FLOPS_FACTOR


def _dots_in(tree, name, helpers):
    """tl.dot calls in the function ``name`` of ``tree``, with helper calls expanded."""
    import ast

    functions = {f.name: f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)}
    count = 0
    for node in ast.walk(functions[name]):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "dot":
                count += 1
            elif isinstance(func, ast.Name) and func.id in helpers:
                count += _dots_in(tree, func.id, helpers)
    return count


def test_two_pass_count_matches_the_kernel_source():
    """The matmuls counted for the course's backward are the tl.dot calls of its kernels."""
    import ast
    from pathlib import Path

    import attn_course

    # The kernels' own file and the helpers it shares with the others (tiles.py).
    kernels = Path(attn_course.__file__).parent / "kernels"
    tree = ast.parse("\n".join((kernels / name).read_text() for name in ("flash.py", "tiles.py")))
    helpers = {"_recompute_p", "online_softmax_step"}
    pass_1 = _dots_in(tree, "_dkdv_query_blocks", helpers)
    pass_2 = _dots_in(tree, "_dq_key_blocks", helpers)
    forward = _dots_in(tree, "_forward_key_blocks", helpers)
    assert [pass_1, pass_2] == [len(p) for p in cost.attention_tile_matmuls("two_pass_backward")]
    assert forward == len(cost.attention_tile_matmuls("forward")[0])


def test_mixed_precision_softmax_keeps_two_copies_formula():
    # bf16 scores, softmax in fp32, cast back: fp32 P (4 B) + bf16 P (2 B) = 6 B per score.
    plain = cost.saved_for_backward_bytes(1024, 8, 4, "bf16")
    mixed = cost.saved_for_backward_bytes(1024, 8, 4, "bf16", softmax_dtype="float32")
    assert mixed == 3 * plain == 32 * 1024**2 * 6
    # A softmax in the data's own dtype is no cast: the old count.
    assert cost.saved_for_backward_bytes(1024, 8, 4, "bf16", softmax_dtype="bfloat16") == plain
    # With dropout: fp32 P + bool mask + dropped bf16 P = 7 B per score.
    dropped = cost.saved_for_backward_bytes(
        1024, 8, 4, "bf16", dropout=True, softmax_dtype="float32"
    )
    assert dropped == 32 * 1024**2 * 7
    # The textbook's shape (32 layers x 32 heads, n = 32,768): 2.2 TB becomes 6.6 TB.
    kept = cost.saved_for_backward_bytes(32768, 32, 32, "bf16", softmax_dtype="float32")
    assert kept == 6 * 32 * 32 * 32768**2 == 6_597_069_766_656


@pytest.mark.parametrize(
    ("dtype", "softmax_dtype", "dropout", "bytes_per_score"),
    [
        ("bfloat16", "float32", 0.0, 6),  # 4 + 2
        ("float16", "float32", 0.0, 6),
        ("bfloat16", "float32", 0.1, 8),  # 4 + mask in bf16 on the CPU (2) + dropped copy (2)
        ("float32", "float32", 0.0, 4),  # no cast: P alone
        ("bfloat16", "float64", 0.0, 10),
    ],
)
def test_mixed_precision_softmax_matches_what_autograd_saves(
    dtype, softmax_dtype, dropout, bytes_per_score
):
    n, heads, batch = 40, 2, 2
    measured = cost.measure_saved_score_bytes(
        n, heads, dtype, batch=batch, dropout=dropout, softmax_dtype=softmax_dtype
    )
    formula = cost.saved_for_backward_bytes(
        n, heads, 1, dtype, batch=batch, dropout=bool(dropout), dropout_mask_dtype=dtype,
        softmax_dtype=softmax_dtype,
    )  # fmt: skip
    assert measured == formula == bytes_per_score * n * n * heads * batch


def test_measure_refuses_a_bad_softmax_dtype():
    with pytest.raises(ValueError, match="softmax_dtype"):
        cost.measure_saved_score_bytes(16, softmax_dtype="int8")


def test_prefill_flops_last_position_logits():
    # TINY at n = 4: the LM head is 2 * 4 * 8 * 10 = 640 for all positions, 160 for the last.
    assert cost.prefill_flops(TINY, 4, causal=False, logits="last") == 13_952 - 640 + 160
    assert cost.prefill_flops(TINY, 4, causal=False, logits="all") == 13_952
    m, n = "Llama-3-8B", 1024
    saved = 1 - cost.prefill_flops(m, n, logits="last") / cost.prefill_flops(m, n)
    # (n - 1) * 2 * 4096 * 128,256 of ~16.1 TFLOP: about 7 %.
    assert saved == pytest.approx((n - 1) * 2 * 4096 * 128_256 / cost.prefill_flops(m, n))
    assert 0.06 < saved < 0.075
    with pytest.raises(ValueError, match="logits"):
        cost.prefill_flops(TINY, 4, logits="first")


def test_decode_flops_per_cached_number_under_gqa():
    assert cost.decode_flops_per_cached_number(32) == 2  # multi-head: ~2 FLOPs per number
    assert cost.decode_flops_per_cached_number(32, 32) == 2
    assert cost.decode_flops_per_cached_number(32, 8) == 8  # Llama-3-8B: 2 * 32 / 8
    assert cost.decode_flops_per_cached_number(64, 8) == 16  # Llama-3-70B
    assert cost.decode_flops_per_cached_number(32, 1) == 64  # multi-query
    # The same quotient from the model-level counts: attention FLOPs of one decode step
    # over the cache bytes it reads (1-byte numbers), Llama-3-8B at 4096 tokens.
    layers, heads, kv, hd, context = 32, 32, 8, 128, 4096
    flops = layers * cost.decode_attention_flops(context, heads * hd)
    numbers = cost.kv_cache_bytes(layers, kv, hd, context, dtype="int8")
    assert flops / numbers == cost.decode_flops_per_cached_number(heads, kv)
    with pytest.raises(ValueError, match="kv_heads"):
        cost.decode_flops_per_cached_number(32, 5)

# --- softmax, mixture of experts, chunked prefill -------------------------------------------


def test_softmax_flops_are_small_next_to_the_matmuls():
    assert cost.softmax_flops(10, 2) == 5 * 2 * 100
    assert cost.softmax_flops(10, 2, causal=True) == 500
    # 4 n² d / (5 h n²) = 0.8 · head_dim: 102.4 for head_dim 128
    ratio = cost.attention_matmul_flops(4096, 4096) / cost.softmax_flops(4096, 32)
    assert ratio == pytest.approx(102.4)


def test_mla_flops_by_hand():
    # DeepSeek-V3: 2·128·(192 + 128) = 81,920 FLOPs per n² per layer
    assert cost.mla_attention_matmul_flops(1, "DeepSeek-V3") == 81_920
    assert cost.mla_attention_matmul_flops(10, "DeepSeek-V3", causal=True) == 81_920 * 50
    # weights: 7168·1536 + 1536·128·192 + 7168·576 + 512·128·256 + 128·128·7168 = 187,105,280
    assert cost.mla_projection_flops_per_token("DeepSeek-V3") == 2 * 187_105_280
    # 6·7168·18432 = 9·6·7168·2048 = 792,723,456; MoE layers add a 256-expert router
    router = 2 * 7168 * 256
    expected = (3 * 792_723_456 + 58 * (792_723_456 + router)) / 61
    assert cost.moe_ffn_flops_per_token("DeepSeek-V3") == pytest.approx(expected)


def test_moe_attention_outweighs_its_ffn_by_about_100x_at_a_million_tokens():
    ratio = cost.moe_attention_ffn_ratio("DeepSeek-V3", 10**6)
    assert ratio == pytest.approx(81_920e6 / cost.moe_ffn_flops_per_token("DeepSeek-V3"))
    assert 100 < ratio < 105
    assert cost.moe_attention_ffn_ratio("DeepSeek-V3", 10**6, causal=True) == pytest.approx(
        ratio / 2
    )
    assert cost.moe_attention_ffn_ratio(
        "DeepSeek-V3", 10**6, include_projections=True
    ) == pytest.approx(70.0, abs=0.1)


def test_mla_kv_cache_bytes():
    # 61 layers · 576 numbers · 2 B per token
    assert cost.mla_kv_cache_bytes("DeepSeek-V3", 1) == 61 * 576 * 2
    assert cost.mla_kv_cache_bytes("DeepSeek-V3", 1000, dtype="float8") == 61 * 576 * 1000


def test_prefill_chunk_flops_by_hand():
    # TINY: d = 8, MHA projections 8·n·d², FFN 4·n·d·d_ff; 3 new tokens after 5 cached
    per_layer = 8 * 3 * 64 + 4 * 3 * 8 * 32 + 4 * 3 * 5 * 8 + 2 * 9 * 8
    assert cost.prefill_chunk_flops(TINY, 5, 3) == 2 * per_layer
    # from an empty cache it is the causal prefill without the LM head
    lm_head = cost.matmul_flops(7, 8, 10)
    assert cost.prefill_chunk_flops(TINY, 0, 7) + lm_head == cost.prefill_flops(TINY, 7)


@pytest.mark.parametrize(("n", "chunk"), [(7, 1), (7, 3), (64, 8), (1000, 512), (4096, 4096)])
def test_chunking_moves_no_flops(n, chunk):
    whole = cost.prefill_chunk_flops("Llama-3-8B", 0, n)
    assert cost.chunked_prefill_flops("Llama-3-8B", n, chunk) == pytest.approx(whole, rel=1e-12)

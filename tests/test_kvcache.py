"""Notebook 07: cached generation equals uncached, cache bytes equal the formula,
quantisation error bounds, block-table lookup, and the exercise checks.

Tolerance for cached vs uncached logits: float32, the same sums in a different order
(the uncached pass computes all rows at once): 1e-5 absolute on logits of size ~1.
"""

from __future__ import annotations

import pytest
import torch

from attn_course.checks import exercises_for
from attn_course.cost import kv_cache_bytes
from attn_course.kvcache import (
    block_table_lookup,
    cache_bytes,
    cached_attention_step,
    dequantize,
    fill_cache,
    float8_available,
    generate_cached,
    generate_uncached,
    measure_prefill,
    measure_step_times,
    next_logits_error,
    paged_decode_grid_cost,
    predicted_cache_bytes,
    quantize,
    quantized_bytes,
    splits_to_fill,
    to_float8,
)
from attn_course.model import GPT, GPTConfig

pytestmark = pytest.mark.nb07


def model_with(kv_heads: int) -> GPT:
    return GPT(GPTConfig(vocab=13, context=40, layers=2, d_model=32, heads=4,
                         kv_heads=kv_heads, seed=1)).eval()  # fmt: skip


@pytest.mark.parametrize("kv_heads", [4, 2, 1], ids=["MHA", "GQA", "MQA"])
def test_cached_logits_equal_uncached_at_every_step(kv_heads):
    model = model_with(kv_heads)
    prompt = torch.randint(0, 13, (2, 4), generator=torch.Generator().manual_seed(0))
    plain = generate_uncached(model, prompt, 30)
    cached = generate_cached(model, prompt, 30)
    assert len(plain.step_logits) == len(cached.step_logits) == 30
    for a, b in zip(plain.step_logits, cached.step_logits, strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    assert torch.equal(plain.tokens, cached.tokens)
    assert cached.tokens.shape == (2, 34)


@pytest.mark.parametrize("kv_heads", [4, 2, 1])
def test_cache_bytes_equal_the_formula(kv_heads):
    model = model_with(kv_heads)
    caches = fill_cache(model, torch.zeros(3, 10, dtype=torch.long))
    # 2 (k, v) x 2 layers x kv_heads x head_dim 8 x 10 tokens x batch 3 x 4 bytes
    assert cache_bytes(caches) == 2 * 2 * kv_heads * 8 * 10 * 3 * 4
    assert cache_bytes(caches) == kv_cache_bytes(2, kv_heads, 8, 10, batch=3, dtype="float32")
    assert predicted_cache_bytes(model, 10, batch=3) == cache_bytes(caches)


def test_generation_validation():
    model = model_with(4)
    with pytest.raises(ValueError, match="new_tokens"):
        generate_cached(model, torch.zeros(1, 3, dtype=torch.long), 0)
    with pytest.raises(ValueError, match="context"):
        generate_cached(model, torch.zeros(1, 30, dtype=torch.long), 12)
    with pytest.raises(ValueError, match="prompt"):
        generate_uncached(model, torch.zeros(3, dtype=torch.long), 2)


def test_cached_attention_step_matches_full_softmax():
    g = torch.Generator().manual_seed(0)
    K = torch.randn(6, 4, generator=g, dtype=torch.float64)
    V = torch.randn(6, 4, generator=g, dtype=torch.float64)
    q = torch.randn(4, generator=g, dtype=torch.float64)
    out, keys, values = cached_attention_step(q, K[:5], V[:5], K[5], V[5])
    assert torch.equal(keys, K) and torch.equal(values, V)
    assert torch.allclose(out, torch.softmax(K @ q / 2.0, 0) @ V)  # sqrt(4) = 2
    with pytest.raises(ValueError):
        cached_attention_step(q, K[:5, :3], V[:5], K[5], V[5])


@pytest.mark.parametrize("axis", ["token", "channel"])
@pytest.mark.parametrize("bits", [8, 4])
def test_quantisation_error_is_at_most_half_a_step(bits, axis):
    x = torch.randn(64, 32, generator=torch.Generator().manual_seed(2))
    x[3] = 0
    q, scale = quantize(x, bits=bits, axis=axis)
    assert q.dtype == torch.int8
    assert q.abs().max() <= 2 ** (bits - 1) - 1  # 127 or 7
    assert scale.shape == ((64, 1) if axis == "token" else (1, 32))
    err = (dequantize(q, scale) - x).abs()
    assert (err <= scale / 2 + 1e-6).all()
    assert (dequantize(q, scale)[3] == 0).all()


def test_quantisation_hand_example_and_validation():
    # row max 2.54 -> scale 0.02; 1.0 / 0.02 = 50 exactly
    q, scale = quantize(torch.tensor([[2.54, -1.0, 0.0]]))
    assert torch.allclose(scale, torch.tensor([[0.02]]))
    assert q.tolist() == [[127, -50, 0]]
    with pytest.raises(ValueError, match="bits"):
        quantize(torch.ones(2, 2), bits=3)
    with pytest.raises(ValueError, match="axis"):
        quantize(torch.ones(2, 2), axis="head")
    with pytest.raises(ValueError, match="x must be"):
        quantize(torch.ones(2))


def test_quantized_bytes():
    # 128 tokens x 64 channels: int8 8192 B + 128 scales x 2 B = 8448; int4 4096 + 256
    assert quantized_bytes(128, 64) == 8448
    assert quantized_bytes(128, 64, bits=4) == 4352
    assert quantized_bytes(128, 64, axis="channel") == 8192 + 128


def test_quantised_cache_changes_logits_little_and_int4_more_than_int8():
    model = model_with(2)
    tokens = torch.randint(0, 13, (1, 30), generator=torch.Generator().manual_seed(4))
    e8 = next_logits_error(model, tokens, lambda s: dequantize(*quantize(s, bits=8)))
    e4 = next_logits_error(model, tokens, lambda s: dequantize(*quantize(s, bits=4)))
    assert 0 < e8 < e4 < 0.5


@pytest.mark.skipif(not float8_available(), reason="torch without float8_e4m3fn")
def test_float8_round_trip_relative_error():
    x = torch.randn(100, 16, generator=torch.Generator().manual_seed(0))
    # e4m3 keeps 3 mantissa bits: relative rounding error <= 2**-4 for normal numbers
    y = to_float8(x)
    big = x.abs() > x.abs().max() / 100
    assert ((y - x).abs()[big] <= x.abs()[big] * 2**-4 + 1e-6).all()


def test_block_table_lookup():
    table = [7, 2, 9]
    assert block_table_lookup(table, 0, 4) == (7, 0)
    assert block_table_lookup(table, 5, 4) == (2, 1)  # 5 // 4 = 1 -> block 2, 5 % 4 = 1
    assert block_table_lookup(table, 11, 4) == (9, 3)
    for bad in (12, -1):
        with pytest.raises(ValueError, match="position"):
            block_table_lookup(table, bad, 4)
    with pytest.raises(ValueError, match="block_size"):
        block_table_lookup(table, 0, 0)


# --- exercise checks ---------------------------------------------------------------------
# Each check against its wrong answers: tests/corpus/nb07.py, run by tests/test_checks.py.


def test_exercises_registered():
    ids = [e.id for e in exercises_for("07_kv_cache")]
    assert ids == ["kv_cached_attention_step", "kv_model_cache_bytes", "kv_quantize_int8",
                   "kv_block_table_lookup"]  # fmt: skip


def test_step_and_prefill_timings_have_one_entry_per_repeat_and_restore_threads():
    # Shapes and bookkeeping only: how fast the machine is never enters the test.
    model = model_with(2)
    prompt = torch.zeros(1, 3, dtype=torch.long)
    threads = torch.get_num_threads()
    steps = measure_step_times(model, prompt, 6, repeats=3, threads=1)
    assert torch.get_num_threads() == threads
    assert steps.positions == [3, 4, 5, 6, 7, 8] and steps.repeats == 3
    assert [len(r) for r in steps.uncached_runs + steps.cached_runs] == [3] * 12
    assert steps.uncached == [min(r) for r in steps.uncached_runs]
    assert steps.uncached_trend().points == 6 and steps.cached_trend().points == 5
    prefill = measure_prefill(model, torch.zeros(40, dtype=torch.long), [4, 8, 16],
                              rounds=2, min_total_s=0.0)  # fmt: skip
    assert [len(r) for r in prefill.runs] == [2, 2, 2] and len(prefill.seconds) == 3
    assert prefill.trend().points == 3
    with pytest.raises(ValueError, match="repeats"):
        measure_step_times(model, prompt, 6, repeats=0)
    with pytest.raises(ValueError, match="lengths"):
        measure_prefill(model, torch.zeros(40, dtype=torch.long), [4, 41])


def test_paged_decode_grid_gqa_reread_and_occupancy():
    # Llama-3-8B shape at 32,768 tokens, batch 1, bf16, on an H100 (132 SMs).
    shape = dict(heads=32, kv_heads=8, head_dim=128, sm_count=132)
    cost = paged_decode_grid_cost(32768, **shape)
    assert cost.programs == 32  # grid (batch, heads)
    assert cost.busy_sm_fraction == pytest.approx(32 / 132)
    assert cost.blocks_per_program == 32768 // 16
    assert cost.kv_bytes_cached == kv_cache_bytes(1, 8, 128, 32768, dtype="bfloat16")
    assert cost.reread_factor == 4  # every query head of a group loads the same blocks
    assert cost.partial_bytes == 0
    grouped = paged_decode_grid_cost(32768, group_queries=True, **shape)
    assert grouped.reread_factor == 1 and grouped.programs == 8
    # Split-K (FlashDecoding): enough splits to give every SM a program.
    splits = splits_to_fill(132, batch=1, heads=32)
    assert splits == 5
    split = paged_decode_grid_cost(32768, splits=splits, **shape)
    assert split.programs == 160 and split.busy_sm_fraction == 1
    assert split.blocks_per_program == -(-2048 // 5)
    # partial acc (128) + m + l in float32, written and read: 2 * 32 * 5 * 130 * 4 B
    assert split.partial_bytes == 2 * 32 * 5 * 130 * 4
    # A big batch fills the GPU without splitting.
    assert paged_decode_grid_cost(4096, batch=8, **shape).busy_sm_fraction == 1


def test_paged_decode_grid_bad_input():
    shape = dict(heads=32, kv_heads=8, head_dim=128, sm_count=132)
    with pytest.raises(ValueError, match="kv_heads must divide"):
        paged_decode_grid_cost(64, heads=32, kv_heads=5, head_dim=128, sm_count=132)
    with pytest.raises(ValueError, match="splits"):
        paged_decode_grid_cost(64, splits=5, **shape)  # 64 tokens = 4 blocks of 16
    with pytest.raises(ValueError, match="context"):
        paged_decode_grid_cost(0, **shape)


def test_grid_cost_describes_the_kernels_launch():
    """The modelled grid is the one kernels/paged.py launches: (batch, heads)."""
    from pathlib import Path

    import attn_course

    source = (Path(attn_course.__file__).parent / "kernels" / "paged.py").read_text()
    assert "paged_decode_kernel[(batch, heads)]" in source
    assert "kv_head = head // group_size" in source

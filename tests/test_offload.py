"""Notebook 08: the offload arithmetic — link presets, swap-in vs recompute time, the
break-even context (search == closed form on every preset), the figure and the engine's
counts priced on a GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from attn_course.cost import (
    kv_cache_bytes_per_token,
    matmul_parameter_count,
    model_kv_cache_bytes,
    peak_flops_per_s,
    prefill_chunk_flops,
    weight_bytes,
)
from attn_course.figures import figure_problems
from attn_course.offload import (
    LINKS,
    Link,
    OffloadCountsLike,
    break_even_closed_form,
    break_even_context,
    break_even_inputs,
    get_link,
    link_names,
    offload_cost,
    offload_figure,
    recompute_time_s,
    swap_in_time_s,
    weight_flops_per_token,
)
from attn_course.presets import ModelShape, get_hardware, model_names

pytestmark = pytest.mark.nb08

H100 = "H100-SXM5-80GB"
# The course's GPT of notebook 07 as a preset (MHA, d_ff = 4 d, tied, learned positions).
COURSE_GPT = ModelShape(name="course GPT", layers=4, d_model=128, heads=8, kv_heads=8,
                        d_ff=512, gated_ffn=False, vocab=64, context=256, tied_embeddings=True,
                        learned_positions=True, biases=True, norm="layernorm")  # fmt: skip


# --- links ----------------------------------------------------------------------------------


def test_link_presets_are_the_published_rates():
    assert link_names() == ["PCIe-4.0-x16", "PCIe-5.0-x16", "NVLink-C2C"]
    assert LINKS["PCIe-4.0-x16"].bytes_per_s == pytest.approx(31.5e9, rel=2e-3)
    assert LINKS["PCIe-5.0-x16"].bytes_per_s == pytest.approx(63.0e9, rel=2e-3)
    assert LINKS["NVLink-C2C"].bytes_per_s == 900e9 / 2  # 900 GB/s is both directions
    for link in LINKS.values():
        assert link.source and get_link(link.name) is link and get_link(link) is link


def test_a_custom_link_and_bad_links():
    slow = Link("USB", 1e9, source="made up")
    assert swap_in_time_s("Llama-3-8B", 10, slow) == pytest.approx(
        model_kv_cache_bytes("Llama-3-8B", 10, dtype="bfloat16") / 1e9
    )
    with pytest.raises(ValueError, match="link must be one of"):
        get_link("PCIe-3")
    with pytest.raises(ValueError, match="bytes_per_s"):
        Link("broken", 0.0, source="none")


# --- the two times --------------------------------------------------------------------------


def test_swap_in_is_cache_bytes_over_bandwidth_and_linear():
    one = swap_in_time_s("Llama-3-8B", 1000, "PCIe-5.0-x16")
    assert one == pytest.approx(2 * 32 * 8 * 128 * 2 * 1000 / LINKS["PCIe-5.0-x16"].bytes_per_s)
    assert swap_in_time_s("Llama-3-8B", 4000, "PCIe-5.0-x16", batch=3) == pytest.approx(12 * one)
    assert swap_in_time_s("Llama-3-8B", 1000, "PCIe-5.0-x16", kv_dtype="float32") == (
        pytest.approx(2 * one)
    )


def test_recompute_is_the_layers_flops_at_mfu_times_peak():
    flops = prefill_chunk_flops("Llama-2-7B", 0, 4096)
    expected = flops / (0.5 * peak_flops_per_s(H100))
    assert recompute_time_s("Llama-2-7B", H100, 4096) == pytest.approx(expected)
    assert recompute_time_s("Llama-2-7B", H100, 4096, mfu=0.25, batch=2) == pytest.approx(
        4 * expected
    )


def test_the_roofline_floor_is_reading_the_weights_once():
    floor = weight_bytes("Llama-3-8B") / get_hardware(H100).bandwidth_bytes_per_s
    assert recompute_time_s("Llama-3-8B", H100, 1, roofline=True) == pytest.approx(floor)
    long = recompute_time_s("Llama-3-8B", H100, 32768)
    assert recompute_time_s("Llama-3-8B", H100, 32768, roofline=True) == long  # compute-bound


# --- break-even -----------------------------------------------------------------------------


@pytest.mark.parametrize("model", model_names() + [COURSE_GPT])
@pytest.mark.parametrize("hardware", [H100, "H200-SXM-141GB", "A100-SXM4-80GB", "L4-24GB"])
def test_break_even_search_equals_the_closed_form(model, hardware):
    for link in link_names():
        for mfu in (0.2, 0.5, 1.0):
            for kv_dtype in ("bfloat16", "float32"):
                kw = {"mfu": mfu, "kv_dtype": kv_dtype}
                closed = break_even_closed_form(**break_even_inputs(model, hardware, link, **kw))
                assert break_even_context(model, hardware, link, **kw) == closed


@pytest.mark.parametrize("link", ["PCIe-4.0-x16", "PCIe-5.0-x16", "NVLink-C2C"])
def test_break_even_is_the_first_context_where_swapping_wins(link):
    for model in ("GPT-2-small", COURSE_GPT):
        n = break_even_context(model, H100, link)
        assert swap_in_time_s(model, n, link) <= recompute_time_s(model, H100, n)
        if n > 1:
            assert swap_in_time_s(model, n - 1, link) > recompute_time_s(model, H100, n - 1)


def test_gqa_models_on_an_h100_swap_from_the_first_token():
    # Llama-3-8B: 128 KiB of cache per token takes 4 µs over PCIe 4, its 14 GFLOP of
    # weights 28 µs at half of 989 TFLOP/s; Llama-2-7B (MHA, 512 KiB) 17 µs vs 26 µs.
    for model in ("Llama-3-8B", "Llama-2-7B"):
        for link in link_names():
            assert break_even_context(model, H100, link, mfu=0.5) == 1


def test_small_mha_models_recompute_short_contexts():
    # GPT-2-small does few FLOPs per cached byte: recomputing wins up to ~22k tokens on PCIe 4.
    pcie4 = break_even_context("GPT-2-small", H100, "PCIe-4.0-x16")
    pcie5 = break_even_context("GPT-2-small", H100, "PCIe-5.0-x16")
    assert pcie4 > pcie5 > break_even_context("GPT-2-small", H100, "NVLink-C2C")
    assert 20_000 < pcie4 < 25_000


def test_closed_form_by_hand():
    # F b / BW = 1e15 * 1e3 / 1e11 = 1e7; minus w = 2e6 -> 8e6 over 2 L d = 2 * 10 * 100 = 2000.
    assert break_even_closed_form(1e3, 1e11, 1e15, 2e6, 10, 100) == 4000
    assert break_even_closed_form(1e3, 1e11, 1e15, 2e6 + 1, 10, 100) == 4000  # ceil
    assert break_even_closed_form(1e3, 1e11, 1e15, 1e8, 10, 100) == 1  # weights dominate
    inputs = break_even_inputs("Llama-3-8B", H100, "NVLink-C2C")
    assert (
        inputs["weight_flops_per_token"]
        == 2 * matmul_parameter_count("Llama-3-8B", include_lm_head=False)
        == weight_flops_per_token("Llama-3-8B")
    )
    assert inputs["bytes_per_token"] == kv_cache_bytes_per_token(32, 8, 128, dtype="bfloat16")


# --- the figure and the engine's counts -----------------------------------------------------


def test_offload_figure():
    figure = offload_figure("GPT-2-small", H100, link_names(), [2**i for i in range(4, 18)])
    assert not figure_problems(figure)
    assert figure.layout.xaxis.type == "log" and figure.layout.yaxis.type == "log"
    assert "s)" in figure.layout.yaxis.title.text and "tokens" in figure.layout.xaxis.title.text
    assert figure.layout.title.text
    names = [t.name for t in figure.data if t.name]
    assert len(names) == 1 + len(link_names())
    assert not figure_problems(offload_figure("Llama-3-8B", H100))


@dataclass
class Counts:
    swapped_in_blocks: int = 6
    swapped_out_blocks: int = 10
    recomputed_tokens: int = 48
    bytes_in: int = 6 * 16 * 4096
    bytes_out: int = 10 * 16 * 4096


def test_offload_cost_prices_the_counts():
    counts = Counts()
    assert isinstance(counts, OffloadCountsLike)
    bw = LINKS["PCIe-5.0-x16"].bytes_per_s
    cost = offload_cost(counts, COURSE_GPT, H100, "PCIe-5.0-x16")
    assert cost["swap_in_s"] == pytest.approx(counts.bytes_in / bw)
    assert cost["swap_out_s"] == pytest.approx(counts.bytes_out / bw)
    flops = prefill_chunk_flops(COURSE_GPT, 0, 48)
    assert cost["recompute_s"] == pytest.approx(flops / (0.5 * peak_flops_per_s(H100)))
    assert cost["total_s"] == pytest.approx(cost["moving_s"] + cost["recompute_s"])
    priced = offload_cost(counts, "Llama-3-8B", H100, "PCIe-5.0-x16", block_size=16)
    assert priced["priced_bytes_in"] == 6 * 16 * kv_cache_bytes_per_token(32, 8, 128)
    assert (
        offload_cost(Counts(recomputed_tokens=0), COURSE_GPT, H100, "NVLink-C2C")["recompute_s"]
        == 0.0
    )


def test_offload_cost_rejects_bad_counts():
    with pytest.raises(ValueError, match="bytes_out"):
        offload_cost(object(), COURSE_GPT, H100, "NVLink-C2C")
    with pytest.raises(ValueError, match="recomputed_tokens"):
        offload_cost(Counts(recomputed_tokens=-1), COURSE_GPT, H100, "NVLink-C2C")
    with pytest.raises(ValueError, match="block_size"):
        offload_cost(Counts(), COURSE_GPT, H100, "NVLink-C2C", block_size=0)


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "match"),
    [(lambda: swap_in_time_s("Llama-3-8B", 0, "NVLink-C2C"), "context"),
     (lambda: swap_in_time_s("Llama-3-8B", 8, "NVLink-C2C", kv_dtype="float12"), "dtype"),
     (lambda: recompute_time_s("Llama-3-8B", H100, 8, mfu=0.0), "mfu"),
     (lambda: recompute_time_s("Llama-3-8B", H100, 8, mfu=1.5), "mfu"),
     (lambda: recompute_time_s("Llama-3-8B", "H300", 8), "hardware"),
     (lambda: break_even_context("Llama-9B", H100, "NVLink-C2C"), "model"),
     (lambda: break_even_context("Llama-3-8B", H100, "NVLink-C2C", mfu=2), "mfu"),
     (lambda: break_even_closed_form(0.0, 1e9, 1e15, 1e9, 2, 64), "bytes_per_token"),
     (lambda: break_even_closed_form(1e3, -1.0, 1e15, 1e9, 2, 64), "link_bytes_per_s"),
     (lambda: break_even_closed_form(1e3, 1e9, math.inf, 1e9, 2, 64), "flops_per_s"),
     (lambda: break_even_closed_form(1e3, 1e9, 1e15, -1.0, 2, 64), "weight_flops_per_token"),
     (lambda: break_even_closed_form(1e3, 1e9, 1e15, 1e9, 0, 64), "layers"),
     (lambda: break_even_closed_form(1e300, 1e-300, 1e300, 1e9, 2, 64), "overflows"),
     (lambda: offload_figure("Llama-3-8B", H100, [], [16]), "links"),
     (lambda: offload_figure("Llama-3-8B", H100, None, [0, 16]), "contexts")],
)  # fmt: skip
def test_bad_input_is_an_error_naming_the_parameter(call, match):
    with pytest.raises(ValueError, match=match):
        call()

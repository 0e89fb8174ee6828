"""attn_course.ui.cost (on ui.base): drive the calculators and check the figures' numbers."""

from __future__ import annotations

import ipywidgets as widgets
import plotly.graph_objects as go
import pytest

from attn_course import cost
from attn_course.presets import GiB, get_hardware
from attn_course.ui.base import log_grid, powers_of_two
from attn_course.ui.cost import FlopsCalculator, KVCacheCalculator, ScoreMemoryCalculator

pytestmark = pytest.mark.nb02


@pytest.fixture(scope="module")
def memory_calc():
    return ScoreMemoryCalculator()


@pytest.fixture(scope="module")
def flops_calc():
    return FlopsCalculator()


@pytest.fixture(scope="module")
def kv_calc():
    return KVCacheCalculator()


def test_grids():
    assert powers_of_two(8, 10) == [256, 512, 1024]
    grid = log_grid(256, 2**20)
    assert grid[0] == 256 and grid[-1] == 2**20
    assert grid == sorted(set(grid))  # increasing, no duplicates


@pytest.mark.parametrize("calc_fixture", ["memory_calc", "flops_calc", "kv_calc"])
def test_every_calculator_has_the_same_interface(calc_fixture, request):
    calc = request.getfixturevalue(calc_fixture)
    assert isinstance(calc.figure, go.FigureWidget)
    assert isinstance(calc.widget, widgets.VBox)
    assert calc.figure in calc.widget.children and calc.readout in calc.widget.children
    assert all(isinstance(c, widgets.Widget) for c in calc.controls.values())
    layout = calc.figure.layout
    assert layout.title.text
    # log axes with units in the titles
    assert layout.xaxis.type == "log" and "tokens" in layout.xaxis.title.text
    assert layout.yaxis.type == "log" and (
        "bytes" in layout.yaxis.title.text or "FLOPs" in layout.yaxis.title.text
    )
    assert calc.error == ""
    with pytest.raises(KeyError, match="no trace"):
        calc.trace("nope")


# --- score memory -----------------------------------------------------------------------


def test_memory_calculator_defaults_match_cost(memory_calc):
    calc = memory_calc
    calc.set(model="Llama-2-7B", dtype="bfloat16", batch=1, hardware="H100-SXM5-80GB", n=32768)
    kept = calc.trace("model_kept")
    ns = list(kept.x)
    assert list(kept.y) == [cost.saved_for_backward_bytes(n, 32, 32, "bf16") for n in ns]
    # at n = 32768: 32 * 32 * 32768^2 * 2 B = 2,199,023,255,552
    assert list(calc.trace("selected").y)[2] == 2_199_023_255_552
    assert list(calc.trace("device_memory").y) == [80 * GiB, 80 * GiB]
    # largest n whose kept scores fit 80 GiB: isqrt(80 GiB / (32 * 32 * 2)) = 6476
    assert list(calc.trace("fit_limit").x) == [6476, 6476]
    assert "6,476" in calc.readout.value and "2.2 TB" in calc.readout.value


def test_memory_calculator_follows_its_controls(memory_calc):
    calc = memory_calc
    calc.set(model="Llama-2-7B", n=4096)
    calc.controls["heads"].value = 8
    assert calc.controls["model"].value == "custom"  # the sliders left the preset
    calc.controls["dtype"].value = "float32"
    calc.controls["batch"].value = 2
    # kept: 8 heads * 32 layers * 2 sequences * 4096^2 * 4 B = 34,359,738,368
    assert list(calc.trace("selected").y)[2] == 34_359_738_368
    # forward peak of one layer: 2 * 8 * 2 * 4096^2 * 4 = 2,147,483,648
    assert list(calc.trace("selected").y)[1] == 2_147_483_648
    calc.controls["hardware"].value = "A100-SXM4-80GB"
    assert "A100-SXM4-80GB" in calc.trace("device_memory").name
    # choosing a preset loads its shape
    calc.controls["model"].value = "GPT-3-175B"
    assert (calc.controls["heads"].value, calc.controls["layers"].value) == (96, 96)
    ns = list(calc.trace("model_kept").x)
    assert list(calc.trace("model_kept").y) == [
        cost.saved_for_backward_bytes(n, 96, 96, "float32", batch=2) for n in ns
    ]


def test_memory_limit_moves_with_the_device(memory_calc):
    calc = memory_calc
    calc.set(model="Llama-2-7B", dtype="bfloat16", batch=1, hardware="L4-24GB")
    small = calc.trace("fit_limit").x[0]
    calc.controls["hardware"].value = "H200-SXM-141GB"
    large = calc.trace("fit_limit").x[0]
    assert small == cost.max_n_for_memory(24 * GiB, "bf16", heads=32, layers=32)
    assert large == cost.max_n_for_memory(141 * GiB, "bf16", heads=32, layers=32)
    assert large > small


# --- FLOPs ------------------------------------------------------------------------------


def test_flops_calculator_matches_cost(flops_calc):
    calc = flops_calc
    calc.set(model="GPT-3-175B", causal=False, n=8192)
    d, d_ff = 12288, 49152
    ns = list(calc.trace("attention").x)
    assert list(calc.trace("attention").y) == [cost.attention_matmul_flops(n, d) for n in ns]
    assert list(calc.trace("ffn").y) == [cost.ffn_flops(n, d, d_ff) for n in ns]
    # crossovers: n = d_ff = 4d vs the FFN, d_ff + 2d = 6d with the projections
    assert list(calc.trace("crossover_ffn").x) == [49152]
    assert list(calc.trace("crossover_layer").x) == [73728]
    # the marker sits on both curves: attention(n*) = FFN(n*) = 4 * n* * d * d_ff
    assert calc.trace("crossover_ffn").y[0] == cost.attention_matmul_flops(49152, d)
    assert "4·d" in calc.trace("crossover_ffn").text[0]


def test_crossover_moves_with_d_ff_and_causal(flops_calc):
    calc = flops_calc
    calc.set(model="GPT-3-175B", causal=False)
    calc.controls["d_ff"].value = 2 * 12288
    assert calc.controls["model"].value == "custom"
    assert calc.trace("crossover_ffn").x[0] == 2 * 12288  # n* = d_ff
    assert "full S" in calc.trace("attention").name
    calc.controls["causal"].value = True
    assert calc.trace("crossover_ffn").x[0] == 4 * 12288  # causal halves attention: 2 d_ff
    assert "causal" in calc.trace("attention").name  # the legend says which curve is drawn
    calc.controls["gated"].value = True
    assert calc.trace("crossover_ffn").x[0] == 6 * 12288  # 3 matrices: 3 d_ff


def test_flops_calculator_gqa_projections(flops_calc):
    calc = flops_calc
    calc.set(model="Llama-3-8B", causal=False)
    ns = list(calc.trace("ffn_projections").x)
    expected = [
        cost.ffn_flops(n, 4096, 14336, gated=True) + cost.projection_flops(n, 4096, 32, 8)
        for n in ns
    ]
    assert list(calc.trace("ffn_projections").y) == expected


def test_flops_calculator_shows_bad_shapes_and_keeps_the_last_figure(flops_calc):
    calc = flops_calc
    calc.set(model="Llama-2-7B")
    before = list(calc.trace("attention").y)
    calc.controls["heads"].value = 3  # 4096 is not divisible by 3
    assert "heads must divide d_model" in calc.error
    assert "heads must divide d_model" in calc.readout.value
    assert list(calc.trace("attention").y) == before
    calc.controls["heads"].value = 32
    calc.controls["kv_heads"].value = 5
    assert "kv_heads must divide heads" in calc.error
    calc.controls["kv_heads"].value = 8
    assert calc.error == ""


# --- KV cache ---------------------------------------------------------------------------


def test_kv_calculator_matches_cost(kv_calc):
    calc = kv_calc
    calc.set(model="Llama-3-8B", dtype="bfloat16", batch=1, hardware="H100-SXM5-80GB")
    assert calc.controls["kv_heads"].value == 8  # the preset's own GQA
    xs = list(calc.trace("gqa").x)
    assert list(calc.trace("gqa").y) == [
        cost.kv_cache_bytes(32, 8, 128, c, dtype="bf16") for c in xs
    ]
    assert list(calc.trace("mha").y) == [
        cost.kv_cache_bytes(32, 32, 128, c, dtype="bf16") for c in xs
    ]
    assert list(calc.trace("mqa").y) == [
        cost.kv_cache_bytes(32, 1, 128, c, dtype="bf16") for c in xs
    ]
    # memory left: 80 GiB - 8,030,261,248 * 2 B
    left = 80 * GiB - 16_060_522_496
    assert list(calc.trace("memory_after_weights").y) == [left, left]


def test_kv_calculator_follows_dtype_batch_and_model(kv_calc):
    calc = kv_calc
    calc.set(model="Llama-3-8B", dtype="bfloat16", batch=1, context=131072)
    before = calc.trace("selected").y[1]  # GQA at 128K: 2*32*8*128*131072*2 = 17,179,869,184
    assert before == 17_179_869_184
    calc.controls["dtype"].value = "int4"
    calc.controls["batch"].value = 4
    assert calc.trace("selected").y[1] == 17_179_869_184 / 4 * 4  # 1/4 the bytes, 4x the batch
    calc.controls["model"].value = "Llama-2-7B"  # an MHA preset: GQA line shows heads / 4
    assert calc.controls["kv_heads"].options == (1, 2, 4, 8, 16, 32)
    assert calc.controls["kv_heads"].value == 8
    calc.controls["kv_heads"].value = 2
    assert calc.trace("selected").y[1] == cost.kv_cache_bytes(
        32, 2, 128, 131072, batch=4, dtype="int4"
    )


def test_kv_calculator_says_when_weights_do_not_fit(kv_calc):
    calc = kv_calc
    calc.set(model="Llama-3-70B", hardware="H100-SXM5-80GB")
    assert list(calc.trace("memory_after_weights").y) == []
    assert "alone do not fit" in calc.readout.value
    calc.controls["hardware"].value = "H200-SXM-141GB"
    hw = get_hardware("H200-SXM-141GB")
    left = hw.memory_bytes - cost.weight_bytes("Llama-3-70B", "bf16")
    assert list(calc.trace("memory_after_weights").y) == [left, left]


def test_set_rejects_unknown_controls(kv_calc):
    with pytest.raises(ValueError, match="control must be one of"):
        kv_calc.set(heads=3)


# --- static prefill figure --------------------------------------------------------------


def test_prefill_time_figure():
    from attn_course.ui.cost import prefill_time_figure

    ns = [1024, 8192, 65536, 200_000]
    figure = prefill_time_figure("Llama-3-8B", "H100-SXM5-80GB", mfu=0.5, prompt_lengths=ns)
    traces = {t.meta: t for t in figure.data}
    expected_total = [
        cost.time_to_first_token("Llama-3-8B", "H100-SXM5-80GB", n, mfu=0.5).time_s for n in ns
    ]
    assert list(traces["total"].y) == expected_total
    # the two parts add up to the compute time, and attention overtakes the weights:
    # 2 P n = 32 * 2 n^2 d  <=>  n = P / (32 * 4096) = 7,504,658,432 / 131,072 ~ 57,256
    for n, total, weights, attention in zip(
        ns, traces["total"].y, traces["weights"].y, traces["attention"].y, strict=True
    ):
        assert weights + attention == pytest.approx(total)
        assert (attention > weights) == (n > 57_256)
    assert figure.layout.xaxis.type == "log" and figure.layout.yaxis.type == "log"
    assert "seconds" in figure.layout.yaxis.title.text

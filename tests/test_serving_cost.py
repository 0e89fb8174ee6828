"""attn_course.serving_cost (the analytic serving model) and its calculator, ui.serving."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import ipywidgets as widgets
import plotly.graph_objects as go
import pytest

from attn_course import cost, kvcache, serving_cost
from attn_course.figures import figure_problems
from attn_course.presets import MODELS, get_hardware
from attn_course.serving_cost import (
    chunked_prefill_effect,
    chunked_prefill_figure,
    fused_step,
    serving_estimate,
    throughput_figure,
)
from attn_course.ui.base import StaticSnapshot
from attn_course.ui.serving import CHUNK_SIZES, ServingCalculator, serving_calculator

pytestmark = pytest.mark.nb08

MODEL, GPU = serving_cost.DEFAULT_MODEL, serving_cost.DEFAULT_HARDWARE
LLAMA3 = Path(__file__).parent / "fixtures" / "hf_configs" / "meta-llama" / "Meta-Llama-3-8B"
ROOF = {"mfu": 0.5, "bandwidth_utilization": 0.8}  # serving_cost's defaults


# --- serving_estimate: each number is the cost function the docstring names ------------------


@pytest.mark.parametrize("batch", [1, 16, 64])
def test_serving_estimate_is_built_from_the_cost_functions(batch):
    e = serving_estimate(MODEL, GPU, prompt_tokens=4096, output_tokens=255, batch=batch)
    m = MODELS[MODEL]
    assert e.ttft_s == cost.time_to_first_token(m, GPU, 4096, **ROOF).time_s
    mean_context = 4096 + 128  # the cache grows from 4,097 to 4,351 tokens: mean 4,224
    assert e.tbt_s == cost.decode_step_cost(m, GPU, mean_context, batch=batch, **ROOF).time_s
    assert e.throughput_tokens_per_s == batch / e.tbt_s
    per_sequence = cost.model_kv_cache_bytes(m, 4096 + 255, dtype="bfloat16")
    assert e.kv_bytes_per_sequence == per_sequence and e.kv_bytes == batch * per_sequence
    assert e.memory_bytes == cost.weight_bytes(m) + batch * per_sequence
    assert e.fits == (e.memory_bytes <= get_hardware(GPU).memory_bytes)
    assert e.max_batch == kvcache.max_batch(m, GPU, 4096 + 255)  # the same rule, bf16 weights
    assert e.prefill_steps == 1
    assert e.request_latency_s == pytest.approx(e.ttft_s + 254 * e.tbt_s)


def test_memory_fits_up_to_max_batch_and_not_beyond():
    e = serving_estimate(MODEL, GPU, prompt_tokens=32768, output_tokens=1024)
    assert serving_estimate(MODEL, GPU, prompt_tokens=32768, output_tokens=1024,
                            batch=e.max_batch).fits  # fmt: skip
    assert not serving_estimate(MODEL, GPU, prompt_tokens=32768, output_tokens=1024,
                                batch=e.max_batch + 1).fits  # fmt: skip


def test_batching_raises_throughput_while_decode_is_memory_bound():
    one, many = (serving_estimate(MODEL, GPU, prompt_tokens=1024, output_tokens=128, batch=b)
                 for b in (1, 32))  # fmt: skip
    # The weights are read once per step for the whole batch: 32x the tokens, far less
    # than 32x the time.
    assert many.throughput_tokens_per_s > 10 * one.throughput_tokens_per_s
    assert many.tbt_s < 3 * one.tbt_s


def test_h200_decodes_faster_than_h100_by_its_bandwidth():
    kwargs = {"prompt_tokens": 2048, "output_tokens": 256, "batch": 8}
    h100 = serving_estimate(MODEL, "H100-SXM5-80GB", **kwargs)
    h200 = serving_estimate(MODEL, "H200-SXM-141GB", **kwargs)
    # memory-bound decode: TBT scales with 1 / bandwidth (4.8 vs 3.35 TB/s), same FLOP/s
    assert h100.tbt_s / h200.tbt_s == pytest.approx(4.8 / 3.35)
    assert h200.max_batch > h100.max_batch


# --- chunked prefill ----------------------------------------------------------------------------


def test_a_single_step_prefill_counts_the_flops_of_a_prefill():
    m = MODELS[MODEL]
    alone = fused_step(m, GPU, start=0, length=4096, running=0, running_context=1)
    assert alone.flops == cost.prefill_flops(m, 4096)
    with_decodes = fused_step(m, GPU, start=0, length=4096, running=8, running_context=2048)
    assert with_decodes.flops == alone.flops + cost.decode_step_flops(m, 2048, batch=8)


@pytest.mark.parametrize("chunk", [512, 2048, 3000])
def test_chunking_moves_no_prefill_flops(chunk):
    e = chunked_prefill_effect(MODEL, GPU, prompt_tokens=32768, chunk_size=chunk, running=16,
                               running_context=4096)  # fmt: skip
    assert e.prefill_flops == e.prefill_flops_unchunked
    assert e.prefill_flops == cost.chunked_prefill_flops(MODEL, 32768, chunk)
    assert e.prefill_flops_unchunked == cost.prefill_chunk_flops(MODEL, 0, 32768)
    assert e.steps == math.ceil(32768 / chunk) == len(e.step_times_s)
    assert e.ttft_s == pytest.approx(sum(e.step_times_s))


def test_chunking_trades_ttft_of_the_long_request_for_tbt_of_the_running_ones():
    kwargs = {"prompt_tokens": 65536, "running": 32, "running_context": 4096}
    plain = chunked_prefill_effect(MODEL, GPU, chunk_size=None, **kwargs)
    assert plain.ttft_s == cost.time_to_first_token(MODEL, GPU, 65536, **ROOF).time_s
    assert plain.worst_tbt_s == plain.ttft_s + plain.decode_step_s  # they wait it all out
    assert plain.steps == 1
    effects = [chunked_prefill_effect(MODEL, GPU, chunk_size=c, **kwargs) for c in CHUNK_SIZES]
    for e in effects:
        assert e.ttft_unchunked_s == plain.ttft_s and e.decode_step_s == plain.decode_step_s
        assert plain.decode_step_s < e.worst_tbt_s < plain.worst_tbt_s  # better than a stall
        assert e.ttft_s >= plain.ttft_s  # the long request pays: more steps, more weight reads
    tbts, ttfts = [e.worst_tbt_s for e in effects], [e.ttft_s for e in effects]
    assert tbts == sorted(tbts)  # bigger chunks, longer steps
    assert ttfts == sorted(ttfts, reverse=True)  # smaller chunks, more steps (weights re-read)
    # at 2,048-token chunks the running requests' worst gap drops by more than 10x
    assert effects[CHUNK_SIZES.index(2048)].worst_tbt_s < plain.worst_tbt_s / 10
    row = effects[0].row()
    assert row["chunk (tokens)"] == CHUNK_SIZES[0] and plain.row()["chunk (tokens)"] == "whole"
    assert row["running requests' worst TBT (ms)"] == 1e3 * effects[0].worst_tbt_s
    assert row["prefill FLOPs / one pass"] == 1.0


def test_serving_estimate_with_chunks_uses_the_fused_steps():
    kwargs = {"prompt_tokens": 8192, "output_tokens": 255}
    plain = serving_estimate(MODEL, GPU, batch=16, **kwargs)
    chunked = serving_estimate(MODEL, GPU, batch=16, chunk_size=1024, **kwargs)
    effect = chunked_prefill_effect(MODEL, GPU, prompt_tokens=8192, chunk_size=1024,
                                    running=15, running_context=8192 + 128)  # fmt: skip
    assert chunked.ttft_s == pytest.approx(effect.ttft_s) and chunked.prefill_steps == 8
    assert chunked.worst_tbt_s == effect.worst_tbt_s < plain.worst_tbt_s
    assert chunked.tbt_s == plain.tbt_s and chunked.memory_bytes == plain.memory_bytes
    alone = serving_estimate(MODEL, GPU, batch=1, chunk_size=1024, **kwargs)
    assert alone.worst_tbt_s == alone.tbt_s  # nobody else is waiting


def test_a_config_json_gives_the_same_estimate_as_its_preset():
    kwargs = {"prompt_tokens": 2048, "output_tokens": 64, "batch": 4, "chunk_size": 512}
    assert serving_estimate(LLAMA3, GPU, **kwargs) == serving_estimate(MODEL, GPU, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt_tokens": 0}, "prompt_tokens must be an integer >= 1"),
        ({"output_tokens": 1.5}, "output_tokens must be an integer"),
        ({"batch": 0}, "batch must be an integer >= 1"),
        ({"chunk_size": 0}, "chunk_size must be an integer >= 1"),
        ({"mfu": 0.0}, "mfu must be a finite number > 0"),
        ({"bandwidth_utilization": 2.0}, r"bandwidth_utilization must be in \(0, 1\]"),
        ({"dtype": "float12"}, "dtype must be one of"),
        ({"kv_dtype": "fp17"}, "kv_dtype must be one of"),
        ({"hardware": "B300"}, "hardware must be one of"),
        ({"model": "DeepSeek-V3"}, "model must be one of"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, message):
    args = {"model": MODEL, "hardware": GPU, "prompt_tokens": 64, "output_tokens": 8} | kwargs
    with pytest.raises(ValueError, match=message):
        serving_estimate(**args)


def test_effect_and_figures_validate_their_arguments():
    base = {"prompt_tokens": 64, "chunk_size": 8, "running": 1, "running_context": 64}
    for key, bad in (("running", 0), ("running_context", 0), ("prompt_tokens", 10**21)):
        with pytest.raises(ValueError, match=key):
            chunked_prefill_effect(MODEL, GPU, **(base | {key: bad}))
    with pytest.raises(ValueError, match="chunk_sizes must hold at least one"):
        chunked_prefill_figure(MODEL, GPU, prompt_tokens=64, running=1, running_context=64,
                               chunk_sizes=[])  # fmt: skip
    with pytest.raises(ValueError, match="batches must be an integer >= 1"):
        throughput_figure(MODEL, GPU, context=64, batches=[1, 0])


# --- figures --------------------------------------------------------------------------------


def test_chunked_prefill_figure_plots_the_effects():
    sizes = [256, 1024, 4096]
    fig = chunked_prefill_figure(MODEL, GPU, prompt_tokens=16384, running=8,
                                 running_context=2048, chunk_sizes=sizes)  # fmt: skip
    assert fig.layout.title.text and "16,384-token prompt" in fig.layout.title.text
    assert fig.layout.xaxis.type == "log" and "tokens" in fig.layout.xaxis.title.text
    assert fig.layout.yaxis.type == "log" and "(ms)" in fig.layout.yaxis.title.text
    assert figure_problems(fig) == []
    effects = [chunked_prefill_effect(MODEL, GPU, prompt_tokens=16384, chunk_size=c, running=8,
                                      running_context=2048) for c in sizes]  # fmt: skip
    traces = {t.meta: t for t in fig.data}
    assert list(traces["ttft"].y) == [e.ttft_s * 1e3 for e in effects]
    assert list(traces["tbt"].y) == [e.worst_tbt_s * 1e3 for e in effects]
    assert list(traces["tbt_unchunked"].y) == [effects[0].worst_tbt_unchunked_s * 1e3] * 2


def test_throughput_figure_goes_from_memory_bound_to_compute_bound():
    batches = [1, 4, 16, 64, 256, 1024]
    fig = throughput_figure(MODEL, GPU, context=128, batches=batches)
    assert figure_problems(fig) == []
    traces = {t.meta: t for t in fig.data}
    steps = [cost.decode_step_cost(MODEL, GPU, 128, batch=b, **ROOF) for b in batches]
    expected = [b / s.time_s for b, s in zip(batches, steps, strict=True)]
    assert list(traces["throughput"].y) == expected
    assert steps[0].bound == "memory" and steps[-1].bound == "compute"
    assert any("compute-bound from batch" in a.text for a in fig.layout.annotations)


# --- the calculator -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def calc():
    return ServingCalculator()


def _expected(values: dict) -> dict:
    estimate = serving_estimate(
        values.get("model", MODEL), values["hardware"], prompt_tokens=values["prompt"],
        output_tokens=values["output"], batch=values["batch"],
        chunk_size=values["chunk"] or None,
    )  # fmt: skip
    return dataclasses.asdict(estimate)


def test_the_calculator_has_the_course_interface(calc):
    assert isinstance(calc.figure, go.FigureWidget) and isinstance(calc.widget, widgets.VBox)
    assert calc.figure in calc.widget.children and calc.readout in calc.widget.children
    layout = calc.figure.layout
    assert layout.title.text and layout.xaxis.type == "log" and layout.yaxis.type == "log"
    assert "tokens" in layout.xaxis.title.text and "(ms)" in layout.yaxis.title.text
    assert calc.error == ""
    # the defaults: Llama-3-8B on an H100, as the notebook's examples
    assert calc.values()["model"] == "Llama-3-8B" and calc.values()["hardware"] == GPU


@pytest.mark.parametrize(
    "values",
    [
        {"model": "Llama-3-8B", "hardware": "H100-SXM5-80GB", "prompt": 4096, "output": 256,
         "batch": 16, "chunk": 0},
        {"model": "Mistral-7B", "hardware": "H200-SXM-141GB", "prompt": 32768, "output": 512,
         "batch": 64, "chunk": 2048},
        {"model": "Llama-3-70B", "hardware": "H100-SXM5-80GB", "prompt": 1024, "output": 64,
         "batch": 1, "chunk": 256},
    ],
)  # fmt: skip
def test_the_calculator_shows_serving_estimate(calc, values):
    calc.set(config="", **values)
    assert calc.error == ""
    assert calc.numbers == _expected(values)
    e = calc.numbers
    assert cost.format_seconds(e["ttft_s"]) in calc.readout.value
    assert f"{e['throughput_tokens_per_s']:,.0f} tokens/s" in calc.readout.value
    assert ("does not fit" in calc.readout.value) == (not e["fits"])
    # the diamonds sit at the selected chunk (the prompt length when unchunked)
    assert list(calc.trace("selected_ttft").x) == [values["chunk"] or values["prompt"]]
    assert list(calc.trace("selected_ttft").y) == [e["ttft_s"] * 1e3]
    assert list(calc.trace("ttft").x) == CHUNK_SIZES


def test_one_control_at_a_time_redraws(calc):
    calc.set(config="", model="Llama-3-8B", hardware=GPU, prompt=4096, output=256, batch=16,
             chunk=0)  # fmt: skip
    before = calc.numbers["tbt_s"]
    calc.controls["batch"].value = 128
    assert calc.numbers == _expected(calc.values()) and calc.numbers["tbt_s"] > before
    calc.controls["chunk"].value = 512
    assert calc.numbers["prefill_steps"] == 8


def test_the_calculator_takes_a_config_json(calc):
    values = {"hardware": GPU, "prompt": 8192, "output": 128, "batch": 8, "chunk": 1024}
    calc.set(model="Llama-2-7B", config=str(LLAMA3), **values)
    assert calc.error == "" and calc.model().name == "Meta-Llama-3-8B"
    assert calc.numbers == _expected(values | {"model": LLAMA3})
    assert "Meta-Llama-3-8B on one" in calc.readout.value
    calc.controls["config"].value = "/no/such/config.json"
    assert "cannot read /no/such/config.json" in calc.error
    assert "Not drawn" in calc.readout.value
    calc.controls["config"].value = ""
    assert calc.error == "" and calc.model().name == "Llama-2-7B"


def test_serving_calculator_is_live_in_jupyterlab_and_frozen_on_the_static_site(monkeypatch):
    monkeypatch.delenv("ATTN_COURSE_STATIC", raising=False)
    assert isinstance(serving_calculator(batch=32), widgets.VBox)
    monkeypatch.setenv("ATTN_COURSE_STATIC", "1")
    snapshot = serving_calculator()
    assert isinstance(snapshot, StaticSnapshot)
    note = snapshot.note_html()
    assert "<i>model preset</i>" in note and "model preset = Llama-3-8B" in note
    assert "<i>chunk (tokens)</i>" in note and "chunk (tokens) = off" in note

"""Every figure the lessons build fits its data and follows the course's layout conventions.

The check itself is :func:`attn_course.figures.axis_problems` (shapes, annotations and
explicit ranges near the data; on log axes annotations are log10 values, shapes data
values) and :func:`attn_course.figures.layout_problems` (a title, the legend outside the
plot area, titled axes). Its own tests come first; then each figure function and each
calculator or explorer that a lesson notebook imports is built here, at small sizes, and
checked. A lesson that imports a figure builder this file does not know fails the
coverage test, and a lesson that builds a figure inline (rather than calling the package)
fails another: the course's logic lives in the package.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable
from pathlib import Path

import plotly.graph_objects as go
import pytest
import torch

from attn_course.course import COURSE_ROOT, lesson_files
from attn_course.figures import (
    axis_problems,
    figure_problems,
    format_table,
    layout_problems,
    style,
    vline,
    wrap_title,
)

NOTEBOOKS = COURSE_ROOT / "notebooks"


# --- the check -------------------------------------------------------------------------------


def log_figure(**layout) -> go.Figure:
    figure = go.Figure(go.Scatter(x=[32, 64, 128], y=[1.0, 2.0, 4.0], name="a"))
    figure.update_layout(xaxis_type="log", yaxis_type="log", title="t", **layout)
    figure.update_xaxes(title="n (tokens)")
    figure.update_yaxes(title="time (ms)")
    return figure


def test_plotly_add_vline_label_on_a_log_axis_is_caught():
    # The bug of notebook 05: the label of a line at n = 65 is placed at 10**65.
    figure = log_figure()
    figure.add_vline(x=65, annotation_text="n = 65")
    problems = axis_problems(figure)
    assert len(problems) == 1 and "annotation 0" in problems[0] and "1e+65" in problems[0]


def test_vline_labels_log_axes_in_log10_units():
    figure = log_figure()
    vline(figure, 65, "n = 65")
    (note,) = figure.layout.annotations
    assert note.x == pytest.approx(math.log10(65)) and figure.layout.shapes[0].x0 == 65
    assert axis_problems(figure) == []
    linear = go.Figure(go.Scatter(x=[0, 10], y=[0, 1]))
    vline(linear, 5, "half")
    assert linear.layout.annotations[0].x == 5 and axis_problems(linear) == []


def test_vline_in_a_subplot_refers_to_that_subplot():
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=2)
    figure.add_scatter(x=[10, 1000], y=[1, 2], row=1, col=1)
    figure.add_scatter(x=[1, 2], y=[1, 2], row=1, col=2)
    figure.update_xaxes(type="log", row=1, col=1)
    vline(figure, 100, "log", row=1, col=1)
    vline(figure, 1.5, "linear", row=1, col=2)
    first, second = figure.layout.annotations[-2:]
    assert (first.xref, first.x) == ("x", 2) and (second.xref, second.x) == ("x2", 1.5)
    assert axis_problems(figure) == []


def test_shapes_far_from_the_data_are_caught_in_data_units():
    figure = log_figure()
    figure.add_shape(type="line", x0=100, x1=100, y0=0, y1=1, yref="y domain")  # fine
    figure.add_shape(type="line", x0=2, x1=2, y0=0, y1=1, yref="y domain")  # log10 by mistake
    problems = axis_problems(figure)
    assert len(problems) == 1 and "shape 1" in problems[0]


def test_explicit_ranges_must_cover_the_data_and_not_reach_far_beyond():
    assert axis_problems(log_figure(xaxis_range=[1, 3])) == []  # 10..1000 around 32..128
    assert "leaves out" in axis_problems(log_figure(xaxis_range=[1.6, 2]))[0]
    assert "far beyond" in axis_problems(log_figure(xaxis_range=[1, 88]))[0]
    linear = go.Figure(go.Bar(x=["a", "b"], y=[20, 30]))
    linear.update_layout(yaxis_range=[0, 100])
    assert axis_problems(linear) == []  # a percentage axis from 0 to 100 is fine
    linear.update_layout(yaxis_range=[0, 25])
    assert "leaves out" in axis_problems(linear)[0]


def test_log_axes_with_non_positive_data_are_caught():
    figure = go.Figure(go.Scatter(x=[1, 2, 3], y=[0, 1, 2]))
    figure.update_yaxes(type="log")
    assert "<= 0" in axis_problems(figure)[0]


def test_stacked_bars_and_heatmaps_have_extents():
    bars = go.Figure([go.Bar(x=["a"], y=[60]), go.Bar(x=["a"], y=[60])])
    bars.update_layout(barmode="stack", yaxis_range=[0, 100])
    assert "leaves out" in axis_problems(bars)[0]  # 120 stacked
    heat = go.Figure(go.Heatmap(z=[[0, 1], [1, 0]]))
    heat.add_shape(type="rect", x0=-0.5, x1=0.5, y0=-0.5, y1=0.5)
    assert axis_problems(heat) == []
    heat.add_shape(type="rect", x0=50, x1=60, y0=-0.5, y1=0.5)
    assert "shape 1" in axis_problems(heat)[0]


def test_layout_conventions():
    assert layout_problems(style(log_figure())) == []
    figure = log_figure(legend={"orientation": "h", "y": -0.35})
    figure.add_scatter(x=[1, 2], y=[1, 2], name="b")
    assert "legend" in layout_problems(figure)[0]  # below the plot: over the x axis
    assert layout_problems(style(figure)) == []
    untitled = go.Figure(go.Scatter(x=[1, 2], y=[1, 2]))
    assert set(layout_problems(untitled)) == {
        "the figure has no title",
        "xaxis has data but no title",
        "yaxis has data but no title",
    }


def test_wrap_title_keeps_words_and_breaks():
    text = "S, tile (2, 1): step 5 of 10 computed tiles (16 in all)"
    wrapped = wrap_title(text, 300)
    assert wrapped.replace("<br>", " ") == text and wrapped.count("<br>") >= 1
    assert wrap_title("short", 600) == "short"
    sub = wrap_title("Time<br><sub>recorded on a long device name, 2026-01-01</sub>", 200)
    assert all(line.startswith("<sub>") for line in sub.split("<br>")[1:])


def test_style_grows_the_figure_with_its_title():
    figure = style(log_figure(), "word " * 60, width=600, height=400)
    lines = figure.layout.title.text.count("<br>") + 1
    assert lines > 1 and figure.layout.height == 400 + 24 * (lines - 1)
    assert figure.layout.margin.t >= 24 * lines


# --- every figure the lessons build ------------------------------------------------------


def _memory_figures() -> list[go.Figure]:
    from attn_course.memory import measure_naive_attention
    from attn_course.ui.scores import memory_scaling_figure, time_scaling_figure

    rows = measure_naive_attention([32, 64, 128], head_dim=16, dtype="float32")
    return [memory_scaling_figure(rows, head_dim=16), time_scaling_figure(rows)]


def _score_explorer() -> list[go.Figure]:
    from attn_course.ui.scores import ScoreExplorer

    explorer = ScoreExplorer()
    figures = [explorer.figure]
    explorer.matrix.value = "scores"
    explorer.causal.value = True
    return [*figures, explorer.figure]


def _calculator(name: str) -> Callable[[], list[go.Figure]]:
    def build() -> list[go.Figure]:
        from attn_course.ui import cost, kvcache

        module = kvcache if hasattr(kvcache, name) else cost
        return [getattr(module, name)().figure]

    return build


def _prefill() -> list[go.Figure]:
    from attn_course.ui.cost import prefill_time_figure

    return [
        prefill_time_figure("Llama-3-8B", "H100-SXM5-80GB", mfu=0.5),
        prefill_time_figure("Llama-3-8B", "H100-SXM5-80GB", prompt_lengths=[1024, 8192, 65536]),
    ]


def _tiling_explorer() -> list[go.Figure]:
    from attn_course.ui.tiling import TilingExplorer

    explorer = TilingExplorer(n=40, head_dim=8, block_q=8, block_k=8, causal=True)
    figures = [go.Figure(explorer.grid_figure), go.Figure(explorer.row_figure)]
    explorer.controls["step"].value = explorer.controls["step"].max
    return [*figures, explorer.grid_figure, explorer.row_figure]


def _tiling_memory() -> list[go.Figure]:
    from attn_course.tiling import measure_tiled_memory, tiling_memory_figure

    rows = measure_tiled_memory([64, 128, 256], head_dim=16, block_k=32, naive_budget_bytes=2**20)
    return [tiling_memory_figure(rows, head_dim=16, block_k=32)]


def _hbm_traffic() -> list[go.Figure]:
    from attn_course.tiling import hbm_traffic_figure

    srams = [48 * 1024, 164 * 1024, 228 * 1024]
    return [hbm_traffic_figure([2**e for e in range(9, 18)], 64, srams, "float16")]


def _benchmarks() -> list[go.Figure]:
    from attn_course.bench import configs_from, load_records
    from attn_course.bench.flash import run_flash_benchmark
    from attn_course.bench.plots import benchmark_figure

    live = run_flash_benchmark(
        configs_from([32, 64], [16], ["float32"], "no", batch=1, heads=2),
        ["naive", "sdpa", "sdpa_flash", "sdpa_math"],
        min_run_time_s=0.0,
        command="tests/test_figures.py",
    )
    figures = [benchmark_figure(live, "peak_bytes"), benchmark_figure(live, "ms")]
    for record in load_records():
        if record["results"] and record["results"][0]["config"].get("mode"):
            figures.append(benchmark_figure(record, "ms"))
    return figures


def _crossover() -> list[go.Figure]:
    from attn_course.linear import (
        crossover_figure,
        measure_crossover,
        measured_crossover_n,
        predicted_crossover_n,
    )

    rows = measure_crossover([32, 64], head_dim=16, heads=2, min_total_s=0.0, progress=False)
    measured = measured_crossover_n(rows, "sdpa")
    return [
        crossover_figure(rows, predicted_n=predicted_crossover_n(64), measured_n=measured),
        # Both lines close together, as when the measurement agrees with the prediction.
        crossover_figure(rows, predicted_n=predicted_crossover_n(64), measured_n=70.0),
    ]


def _random_features() -> list[go.Figure]:
    from attn_course.linear import random_feature_error, random_feature_error_figure

    rows = random_feature_error([16, 64], [0.5, 1.5], n=32, head_dim=8, draws=1)
    return [random_feature_error_figure(rows, n=32, head_dim=8)]


def _retrieval() -> list[go.Figure]:
    from attn_course.linear import RETRIEVAL_METHODS, retrieval_accuracy, retrieval_figure

    ns = [16, 64]
    accuracy = {m: [retrieval_accuracy(m, n, queries=8) for n in ns] for m in RETRIEVAL_METHODS}
    return [retrieval_figure(ns, accuracy)]


def _sparse_layout() -> list[go.Figure]:
    from attn_course.sparse import make_pattern
    from attn_course.ui.sparse import sparse_layout_figure

    return [
        sparse_layout_figure(make_pattern(name, 32, window=4, global_tokens=2, random_blocks=1), 8)
        for name in ("sliding window", "BigBird")
    ]


def _sparsity_explorer() -> list[go.Figure]:
    from attn_course.ui.sparse import SparsityExplorer

    explorer = SparsityExplorer(n=64, pattern="sliding window", block=8)
    return [go.Figure(explorer.figure)]


def _window_scaling() -> list[go.Figure]:
    from attn_course.sparse import measure_window_scaling, window_scaling_figure

    rows = measure_window_scaling([64, 128], 16, 16, head_dim=16, dense_max_n=64)
    return [window_scaling_figure(rows, 16)]


def _window_error() -> list[go.Figure]:
    from attn_course.sparse import lagged_qkv, window_error_curve, window_error_figure

    q, k, v = lagged_qkv(64, lags=[1, 16])
    windows = [1, 2, 4, 16, 17, 64]
    curves = {
        f"head looking {lag} back": window_error_curve(
            q[:, h : h + 1], k[:, h : h + 1], v[:, h : h + 1], windows
        )
        for h, lag in enumerate([1, 16])
    }
    return [window_error_figure(curves)]


def _step_time() -> list[go.Figure]:
    from attn_course.kvcache import step_time_figure

    slow = [1e-3 * (1 + i / 10) for i in range(30)]
    return [step_time_figure(slow, [2e-4] * 30, 12)]


def _roofline() -> list[go.Figure]:
    from attn_course.kvcache import decode_roofline_figure

    return [
        decode_roofline_figure(
            "Llama-3-8B", "H100-SXM5-80GB", contexts=[512, 4096, 32768], batches=[1, 16, 128]
        )
    ]


def _paged() -> list[go.Figure]:
    from attn_course.paged import fragmentation_figure, prefix_sharing_figure, sample_requests

    requests = sample_requests(100, max_prompt=2048, max_output=2048, seed=0)
    return [
        fragmentation_figure(requests),
        prefix_sharing_figure(1000, [output for _, output in requests]),
    ]


def _speculative() -> list[go.Figure]:
    from attn_course.speculative import SpeculativeMeasurement, expected_speedup, speedup_figure

    rows = [
        SpeculativeMeasurement(k, 0.5, 0.7, 2.0, 0.3, 0.4, 0.4 / 0.3, 0.2,
                               expected_speedup(0.7, k, 0.2), 2.0, True, 1.2, 1.1)
        for k in (1, 2, 4, 8)
    ]  # fmt: skip
    return [speedup_figure(rows)]


def _offload() -> list[go.Figure]:
    from attn_course.offload import offload_figure

    return [offload_figure(m, "H100-SXM5-80GB") for m in ("GPT-2-small", "Llama-3-8B")]


def _serving() -> list[go.Figure]:
    from attn_course.model import GPT, GPTConfig
    from attn_course.serving import Engine, latency_figure, sample_workload, timeline_figure

    model = GPT(GPTConfig(vocab=16, context=64, layers=1, d_model=16, heads=2, kv_heads=2)).eval()
    requests = sample_workload(6, vocab=16, prompt_range=(3, 12), output_range=(2, 6),
                               rate_per_s=400.0, long_prompt=30)  # fmt: skip
    reports = {p: Engine(model, num_blocks=32, block_size=8, clock="model").run(requests, p)
               for p in ("continuous", "static")}  # fmt: skip
    return [latency_figure(reports), timeline_figure(reports["continuous"])]


def _chunked_prefill() -> list[go.Figure]:
    from attn_course.serving_cost import chunked_prefill_figure

    return [chunked_prefill_figure("Llama-3-8B", "H100-SXM5-80GB", prompt_tokens=32768,
                                   running=16, running_context=8192,
                                   chunk_sizes=[256, 1024, 4096, 16384, 32768])]  # fmt: skip


def _busy_sms() -> list[go.Figure]:
    from attn_course.splitk import busy_sm_figure

    return [busy_sm_figure("Llama-3-8B", "H100-SXM5-80GB", [1, 2, 4, 8, 16])]


# One entry per figure function or interactive display a lesson imports from the package.
BUILDERS: dict[str, Callable[[], list[go.Figure]]] = {
    "memory_scaling_figure": _memory_figures,
    "time_scaling_figure": _memory_figures,
    "ScoreExplorer": _score_explorer,
    "ScoreMemoryCalculator": _calculator("ScoreMemoryCalculator"),
    "FlopsCalculator": _calculator("FlopsCalculator"),
    "KVCacheCalculator": _calculator("KVCacheCalculator"),
    "KVBudgetCalculator": _calculator("KVBudgetCalculator"),
    "prefill_time_figure": _prefill,
    "TilingExplorer": _tiling_explorer,
    "tiling_memory_figure": _tiling_memory,
    "hbm_traffic_figure": _hbm_traffic,
    "benchmark_figure": _benchmarks,
    "crossover_figure": _crossover,
    "random_feature_error_figure": _random_features,
    "retrieval_figure": _retrieval,
    "sparse_layout_figure": _sparse_layout,
    "SparsityExplorer": _sparsity_explorer,
    "window_scaling_figure": _window_scaling,
    "window_error_figure": _window_error,
    "step_time_figure": _step_time,
    "decode_roofline_figure": _roofline,
    "fragmentation_figure": _paged,
    "prefix_sharing_figure": _paged,
    "speedup_figure": _speculative,
    "offload_figure": _offload,
    "latency_figure": _serving,
    "busy_sm_figure": _busy_sms,
    "chunked_prefill_figure": _chunked_prefill,
    "timeline_figure": _serving,
}

FIGURE_NAME = re.compile(r"(_figure|Calculator|Explorer)$")
INLINE_FIGURE = re.compile(r"\b(go\.Figure|go\.FigureWidget|make_subplots)\s*\(|\.add_scatter\(")


def lesson_scripts() -> list[Path]:
    return lesson_files(NOTEBOOKS, ".py")


def imported_figure_builders(script: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("attn_course"):
            names |= {alias.name for alias in node.names if FIGURE_NAME.search(alias.name)}
    return names


def test_every_figure_builder_a_lesson_imports_is_checked_here():
    imported = set().union(*(imported_figure_builders(s) for s in lesson_scripts()))
    assert {"crossover_figure", "ScoreMemoryCalculator", "TilingExplorer"} <= imported
    assert imported - set(BUILDERS) == set(), "add a builder to BUILDERS in this file"


@pytest.mark.parametrize("script", lesson_scripts(), ids=lambda path: path.stem)
def test_lessons_build_no_figure_inline(script: Path):
    inline = [
        f"line {number}: {line.strip()}"
        for number, line in enumerate(script.read_text().splitlines(), 1)
        if INLINE_FIGURE.search(line)
    ]
    assert not inline, "build figures with a function in attn_course, not in the notebook"


@pytest.fixture(autouse=True)
def few_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_figure_fits_its_data_and_follows_the_layout_conventions(name: str):
    figures = BUILDERS[name]()
    assert figures
    problems = {
        f"figure {index} ({figure.layout.title.text!r})": found
        for index, figure in enumerate(figures)
        if (found := figure_problems(figure))
    }
    assert not problems


def test_format_table_aligns_columns_and_formats_numbers():
    rows = [{"policy": "static", "throughput (tok/s)": 562.619, "steps": 314, "flops": 2.76e8},
            {"policy": "continuous", "throughput (tok/s)": 12345.6, "steps": 7, "flops": 0.0}]
    lines = format_table(rows).splitlines()
    assert lines[0].split() == ["policy", "throughput", "(tok/s)", "steps", "flops"]
    assert len({len(line) for line in lines[:2]}) == 1  # the rule is as wide as the header
    assert lines[2].split() == ["static", "562.6", "314", "2.760e+08"]
    assert lines[3].split() == ["continuous", "12,346", "7", "0.0"]
    # numbers are right-aligned: their last characters line up
    assert lines[2].index("314") + 3 == lines[3].index(" 7") + 2
    for bad in ([], [1], [{"a": 1}, {"b": 2}]):
        with pytest.raises(ValueError, match="rows"):
            format_table(bad)
    with pytest.raises(ValueError, match="digits"):
        format_table(rows, digits=0)
    picked = format_table(rows, columns=["steps", "policy"]).splitlines()
    assert picked[0].split() == ["steps", "policy"] and picked[3].split() == ["7", "continuous"]
    with pytest.raises(ValueError, match="columns"):
        format_table(rows, columns=["nope"])

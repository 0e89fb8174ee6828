"""Notebook 02's screens: interactive cost calculators, and the prefill-time figure.

Three calculators, one class each, all :class:`attn_course.ui.base.Calculator`:

* :class:`ScoreMemoryCalculator` — bytes of the n x n score matrices vs n (one head, one
  layer's forward peak, every layer's matrices kept for backward), against device memory.
* :class:`FlopsCalculator` — FLOPs per layer of attention vs the FFN (and + projections)
  vs n, with the crossovers marked.
* :class:`KVCacheCalculator` — KV-cache bytes vs context for MHA, GQA and MQA, against
  device memory and the memory left after the weights.

and one static figure, :func:`prefill_time_figure` (time to first token vs prompt length).
It lives here rather than in :mod:`attn_course.cost` so that the cost arithmetic stays free
of plotly (the checks and kernels import it).

All numbers come from :mod:`attn_course.cost`; this module only wires them to the screen.
The calculators are written side by side on purpose: each one's ``_make_controls``,
``_redraw`` and read-out have the same shape and different formulas, so that one reads as
its figure; the wiring they share is :class:`~attn_course.ui.base.Calculator`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from attn_course import cost
from attn_course.figures import style
from attn_course.presets import Hardware, get_hardware, get_model, hardware_names, model_names
from attn_course.ui.base import (
    CUSTOM,
    Calculator,
    checkbox,
    choice_slider,
    divisors,
    dropdown,
    int_slider,
    log_grid,
    powers_of_two,
)

__all__ = [
    "FlopsCalculator",
    "KVCacheCalculator",
    "ScoreMemoryCalculator",
    "prefill_time_figure",
]


def _line(key: str, name: str, dash: str | None = None, width: float = 2.5) -> go.Scatter:
    return go.Scatter(meta=key, name=name, mode="lines", line=dict(dash=dash, width=width))


def _markers(key: str, name: str, symbol: str = "circle") -> go.Scatter:
    return go.Scatter(
        meta=key,
        name=name,
        mode="markers",
        marker=dict(size=10, symbol=symbol, color="black"),
        showlegend=False,
    )


def _device_memory_line(trace: go.Scatter, xs: Sequence[int], hw: Hardware) -> None:
    """``trace`` as a level line at the device's memory across the plotted range."""
    memory = cost.format_bytes(hw.memory_bytes, binary=True)
    trace.update(x=[xs[0], xs[-1]], y=[hw.memory_bytes] * 2, name=f"{hw.name} memory ({memory})")


# --- 1. score-matrix memory -----------------------------------------------------------


class ScoreMemoryCalculator(Calculator):
    """Memory of the n x n score matrices vs n, against one device's memory (log-log)."""

    title = "Score-matrix memory vs sequence length"
    N_VALUES = log_grid(2**8, 2**20)

    def _make_controls(self) -> dict[str, widgets.Widget]:
        return {
            "model": dropdown("model preset", [*model_names(), CUSTOM], "Llama-2-7B"),
            "heads": int_slider("heads", 32, 1, 128),
            "layers": int_slider("layers", 32, 1, 128),
            "batch": int_slider("batch", 1, 1, 64),
            "dtype": dropdown("dtype", ["float32", "bfloat16", "float16", "float8"], "bfloat16"),
            "hardware": dropdown("device", hardware_names(), "H100-SXM5-80GB"),
            "n": choice_slider("n (tokens)", powers_of_two(8, 20), 32768),
        }

    def _model_values(self, model_name: str) -> dict[str, Any]:
        m = get_model(model_name)
        return {"heads": m.heads, "layers": m.layers}

    def _make_traces(self) -> list[go.Scatter]:
        return [
            _line("one_head", "one head, one layer (one n x n matrix)", width=2),
            _line("layer_forward_peak", "one layer, forward peak (S and P, all heads)"),
            _line("model_kept", "all layers, kept for backward (P, all heads)", width=3.5),
            _line("device_memory", "device memory", dash="dash"),
            _line("fit_limit", "largest n whose kept scores fit", dash="dot", width=1.5),
            _markers("selected", "selected n"),
        ]

    def _style_axes(self) -> None:
        self.figure.update_xaxes(title="sequence length n (tokens)", type="log")
        self.figure.update_yaxes(
            title="memory (bytes; k, M, G, T = 10³, 10⁶, 10⁹, 10¹²)", type="log", tickformat="~s"
        )

    def _redraw(self) -> None:
        v = self.values()
        hw = get_hardware(v["hardware"])
        ns = self.N_VALUES
        shape = dict(dtype=v["dtype"], batch=v["batch"])
        one = [cost.score_matrix_bytes(n, **shape) for n in ns]
        peak = [cost.forward_peak_score_bytes(n, v["heads"], **shape) for n in ns]
        kept = [cost.saved_for_backward_bytes(n, v["heads"], v["layers"], **shape) for n in ns]
        fit = cost.max_n_for_memory(hw.memory_bytes, heads=v["heads"], layers=v["layers"], **shape)
        y_low, y_high = min(one), max(max(kept), hw.memory_bytes) * 2

        self.trace("one_head").update(x=ns, y=one)
        self.trace("layer_forward_peak").update(x=ns, y=peak)
        self.trace("model_kept").update(x=ns, y=kept)
        _device_memory_line(self.trace("device_memory"), ns, hw)
        self.trace("fit_limit").update(
            x=[fit, fit], y=[y_low, y_high], name=f"kept scores fit up to n = {fit:,}"
        )
        n = v["n"]
        at_n = [
            cost.score_matrix_bytes(n, **shape),
            cost.forward_peak_score_bytes(n, v["heads"], **shape),
            cost.saved_for_backward_bytes(n, v["heads"], v["layers"], **shape),
        ]
        self.trace("selected").update(x=[n] * 3, y=at_n)
        b = cost.format_bytes
        self.readout.value = (
            f"At <b>n = {n:,}</b> ({v['dtype']}, batch {v['batch']}): one score matrix "
            f"<b>{b(at_n[0])}</b>; one layer's forward peak, S and P for {v['heads']} heads, "
            f"<b>{b(at_n[1])}</b>; P of all {v['layers']} layers kept for backward "
            f"<b>{b(at_n[2])}</b>. On the {hw.name} ({b(hw.memory_bytes, binary=True)}) the kept "
            f"scores alone fit up to <b>n = {fit:,}</b>."
        )


# --- 2. attention vs FFN FLOPs ----------------------------------------------------------


class FlopsCalculator(Calculator):
    """FLOPs per layer of attention, FFN and FFN + projections vs n, crossovers marked."""

    title = "FLOPs per layer: attention vs feed-forward"
    N_VALUES = log_grid(2**6, 2**21)

    def _make_controls(self) -> dict[str, widgets.Widget]:
        return {
            "model": dropdown("model preset", [*model_names(), CUSTOM], "Llama-2-7B"),
            "d_model": int_slider("d_model", 4096, 128, 16384, step=128),
            "d_ff": int_slider("d_ff", 11008, 128, 65536, step=64),
            "heads": int_slider("heads", 32, 1, 128),
            "kv_heads": int_slider("kv_heads", 32, 1, 128),
            "gated": checkbox("gated FFN (SwiGLU: 3 matrices)", True),
            "causal": checkbox("causal (skip the masked half)", True),
            "n": choice_slider("n (tokens)", powers_of_two(6, 21), 8192),
        }

    def _model_values(self, model_name: str) -> dict[str, Any]:
        m = get_model(model_name)
        return {
            "d_model": m.d_model,
            "d_ff": m.d_ff,
            "heads": m.heads,
            "kv_heads": m.kv_heads,
            "gated": m.gated_ffn,
        }

    def _make_traces(self) -> list[go.Scatter]:
        return [
            _line("attention", "attention: Q Kᵀ and P V", width=3.5),
            _line("ffn", "feed-forward network"),
            _line("ffn_projections", "FFN + Q/K/V/O projections", dash="dash"),
            go.Scatter(
                meta="crossover_ffn",
                name="attention = FFN",
                mode="markers+text",
                marker=dict(size=12, symbol="x", color="black"),
                textposition="top left",
            ),
            go.Scatter(
                meta="crossover_layer",
                name="attention = FFN + projections",
                mode="markers+text",
                marker=dict(size=12, symbol="diamond", color="black"),
                textposition="bottom right",
            ),
            _markers("selected", "selected n"),
        ]

    def _style_axes(self) -> None:
        self.figure.update_xaxes(title="sequence length n (tokens)", type="log")
        self.figure.update_yaxes(
            title="FLOPs per layer (G, T, P = 10⁹, 10¹², 10¹⁵)", type="log", tickformat="~s"
        )

    def _redraw(self) -> None:
        v = self.values()
        d, d_ff, gated, causal = v["d_model"], v["d_ff"], v["gated"], v["causal"]
        heads, kv_heads = v["heads"], v["kv_heads"]
        cost.head_dim(d, heads)  # refuse heads that do not divide d_model before drawing
        ns = self.N_VALUES
        attention = [cost.attention_matmul_flops(n, d, causal=causal) for n in ns]
        ffn = [cost.ffn_flops(n, d, d_ff, gated=gated) for n in ns]
        layer = [
            f + cost.projection_flops(n, d, heads, kv_heads) for n, f in zip(ns, ffn, strict=True)
        ]
        crossing = dict(gated=gated, causal=causal, heads=heads, kv_heads=kv_heads)
        n_ffn = cost.attention_ffn_crossover_n(d, d_ff, **crossing)
        n_layer = cost.attention_ffn_crossover_n(d, d_ff, include_projections=True, **crossing)
        # At a crossover attention equals the other curve, which is linear in n.
        ffn_per_token = cost.ffn_flops(1, d, d_ff, gated=gated)
        layer_per_token = ffn_per_token + cost.projection_flops(1, d, heads, kv_heads)

        # Say on the plot itself whether the masked half is skipped: it moves the crossover 2x.
        mask_note = "causal, half of S" if causal else "full S"
        attention_name = f"attention: QKᵀ and PV ({mask_note})"
        self.trace("attention").update(x=ns, y=attention, name=attention_name)
        self.trace("ffn").update(x=ns, y=ffn, name=f"FFN ({3 if gated else 2} matrices)")
        self.trace("ffn_projections").update(x=ns, y=layer)
        self.trace("crossover_ffn").update(
            x=[n_ffn], y=[n_ffn * ffn_per_token], text=[f"n = {n_ffn:,.0f} = {n_ffn / d:.2g}·d"]
        )
        self.trace("crossover_layer").update(
            x=[n_layer],
            y=[n_layer * layer_per_token],
            text=[f"n = {n_layer:,.0f} = {n_layer / d:.2g}·d"],
        )
        n = v["n"]
        parts = cost.LayerFlops(
            attention=cost.attention_matmul_flops(n, d, causal=causal),
            projections=cost.projection_flops(n, d, heads, kv_heads),
            ffn=cost.ffn_flops(n, d, d_ff, gated=gated),
        )
        self.trace("selected").update(
            x=[n] * 3, y=[parts.attention, parts.ffn, parts.ffn + parts.projections]
        )
        f = cost.format_flops
        self.readout.value = (
            f"At <b>n = {n:,}</b>: attention {f(parts.attention)}, FFN {f(parts.ffn)}, "
            f"projections {f(parts.projections)} per layer; attention is "
            f"<b>{100 * parts.attention_share:.0f} %</b> of the layer. Attention overtakes the "
            f"FFN at <b>n = {n_ffn:,.0f}</b> ({n_ffn / d:.2g}·d) and FFN + projections at "
            f"<b>n = {n_layer:,.0f}</b> ({n_layer / d:.2g}·d)."
        )


# --- 3. KV cache ------------------------------------------------------------------------


class KVCacheCalculator(Calculator):
    """KV-cache bytes vs context for MHA / GQA / MQA, against device memory."""

    title = "KV-cache memory vs context length"
    CONTEXTS = log_grid(2**10, 2**21)

    def _make_controls(self) -> dict[str, widgets.Widget]:
        return {
            "model": dropdown("model preset", model_names(), "Llama-3-8B"),
            "kv_heads": dropdown("GQA KV heads", divisors(32), 8),
            "dtype": dropdown("cache dtype", ["float32", "bfloat16", "float8", "int4"], "bfloat16"),
            "batch": int_slider("batch", 1, 1, 256),
            "hardware": dropdown("device", hardware_names(), "H100-SXM5-80GB"),
            "context": choice_slider("context (tokens)", powers_of_two(10, 21), 131072),
        }

    def _model_values(self, model_name: str) -> dict[str, Any]:
        m = get_model(model_name)
        # An MHA preset has no GQA of its own: show a quarter of its heads as an example.
        kv = m.kv_heads if 1 < m.kv_heads < m.heads else max(1, m.heads // 4)
        return {"kv_heads": kv}

    def _apply_model(self, model_name: str) -> None:
        self.controls["kv_heads"].options = divisors(get_model(model_name).heads)
        super()._apply_model(model_name)

    def _make_traces(self) -> list[go.Scatter]:
        return [
            _line("mha", "MHA"),
            _line("gqa", "GQA", width=3.5),
            _line("mqa", "MQA (1 KV head)"),
            _line("device_memory", "device memory", dash="dash"),
            _line("memory_after_weights", "memory left after the weights", dash="dot"),
            _markers("selected", "selected context"),
        ]

    def _style_axes(self) -> None:
        self.figure.update_xaxes(title="context length (tokens)", type="log")
        self.figure.update_yaxes(
            title="KV-cache memory (bytes; M, G, T = 10⁶, 10⁹, 10¹²)", type="log", tickformat="~s"
        )

    def _redraw(self) -> None:
        v = self.values()
        m, hw = get_model(v["model"]), get_hardware(v["hardware"])
        xs = self.CONTEXTS
        shape = dict(batch=v["batch"], dtype=v["dtype"])
        kv_options = {"mha": m.heads, "gqa": v["kv_heads"], "mqa": 1}
        curves = {
            key: [cost.model_kv_cache_bytes(m, c, kv_heads=kv, **shape) for c in xs]
            for key, kv in kv_options.items()
        }
        weights = cost.weight_bytes(m, "bfloat16")
        left = hw.memory_bytes - weights

        self.trace("mha").update(x=xs, y=curves["mha"], name=f"MHA ({m.heads} KV heads)")
        self.trace("gqa").update(x=xs, y=curves["gqa"], name=f"GQA ({v['kv_heads']} KV heads)")
        self.trace("mqa").update(x=xs, y=curves["mqa"])
        _device_memory_line(self.trace("device_memory"), xs, hw)
        self.trace("memory_after_weights").update(
            x=[xs[0], xs[-1]] if left > 0 else [],
            y=[left] * 2 if left > 0 else [],
            name=f"left after {m.name} bf16 weights ({cost.format_bytes(weights)})",
        )
        context = v["context"]
        at_context = {
            key: cost.model_kv_cache_bytes(m, context, kv_heads=kv, **shape)
            for key, kv in kv_options.items()
        }
        self.trace("selected").update(x=[context] * 3, y=list(at_context.values()))
        b = cost.format_bytes
        if left > 0:
            longest = cost.max_kv_context(left, m.layers, v["kv_heads"], m.head_dim, **shape)
            fits = (
                f"After its bf16 weights ({b(weights)}) the {hw.name} has {b(left)} left: enough "
                f"GQA cache for <b>{longest:,} tokens</b> per sequence at batch {v['batch']}."
            )
        else:
            fits = f"{m.name}'s bf16 weights ({b(weights)}) alone do not fit the {hw.name}."
        self.readout.value = (
            f"{m.name}, <b>{context:,} tokens</b>, batch {v['batch']}, {v['dtype']} cache: "
            f"MHA <b>{b(at_context['mha'])}</b>, GQA with {v['kv_heads']} KV heads "
            f"<b>{b(at_context['gqa'])}</b>, MQA <b>{b(at_context['mqa'])}</b>. {fits}"
        )


# --- a static figure: prefill time ------------------------------------------------------


def prefill_time_figure(
    model: str,
    hardware: str,
    *,
    mfu: float = 0.5,
    dtype: str = "bfloat16",
    prompt_lengths: Sequence[int] | None = None,
) -> go.Figure:
    """Time to first token vs prompt length, split into the weight matmuls and attention.

    Compute time at ``mfu`` x peak for: the whole causal prefill
    (:func:`attn_course.cost.time_to_first_token`), its weight part ``2 * P * n`` (linear
    in n) and its attention part ``layers * 2 * n**2 * d`` (quadratic). Log-log axes.
    """
    m, hw = get_model(model), get_hardware(hardware)
    ns = list(prompt_lengths) if prompt_lengths is not None else log_grid(2**10, 2**21, 45)
    peak = cost.peak_flops_per_s(hw, dtype)
    total = [cost.time_to_first_token(m, hw, n, dtype=dtype, mfu=mfu).time_s for n in ns]
    weights = [
        cost.compute_time_s(2 * cost.matmul_parameter_count(m) * n, peak, utilization=mfu)
        for n in ns
    ]
    attention = [
        cost.compute_time_s(
            m.layers * cost.attention_matmul_flops(n, m.d_model, causal=True),
            peak,
            utilization=mfu,
        )
        for n in ns
    ]
    figure = go.Figure(
        [
            go.Scatter(
                x=ns, y=total, name="time to first token", meta="total", line=dict(width=3.5)
            ),
            go.Scatter(
                x=ns,
                y=weights,
                name="weight matmuls: 2·P·n",
                meta="weights",
                line=dict(dash="dash"),
            ),
            go.Scatter(
                x=ns,
                y=attention,
                name="attention: L·2·n²·d",
                meta="attention",
                line=dict(dash="dot"),
            ),
        ]
    )
    figure.update_layout(
        xaxis=dict(title="prompt length n (tokens)", type="log"),
        yaxis=dict(title="time (seconds; m = 10⁻³, µ = 10⁻⁶)", type="log", tickformat="~s"),
        template="plotly_white",
    )
    title = f"Prefill of {m.name} on one {hw.name} ({dtype}, {mfu:.0%} of peak FLOP/s)"
    return style(figure, title, width=900, height=430)

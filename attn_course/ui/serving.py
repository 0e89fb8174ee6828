"""Notebook 08's screen: what serving a model costs — TTFT, TBT, throughput, memory.

:class:`ServingCalculator` is a :class:`attn_course.ui.base.Calculator` (controls, figure,
``update()``, ``widget``; testable without a browser through ``set`` and ``numbers``).
The model is a preset or, when the text box holds a path, a Hugging Face config.json
(:func:`attn_course.presets.get_model`). Every number comes from
:func:`attn_course.serving_cost.serving_estimate`; the figure is
:func:`attn_course.serving_cost.chunked_prefill_figure` for the selected prompt, with the
selected chunk size marked.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from attn_course import cost, serving_cost
from attn_course.presets import ModelShape, get_hardware, get_model, hardware_names, model_names
from attn_course.ui.base import (
    Calculator,
    StaticSnapshot,
    choice_slider,
    dropdown,
    int_slider,
    powers_of_two,
    text_box,
)

__all__ = ["CHUNK_SIZES", "ServingCalculator", "serving_calculator"]

# The chunk sizes on the figure's x axis; the dropdown offers them, or no chunking (0).
CHUNK_SIZES = powers_of_two(6, 15)
_CHUNK_OPTIONS = [("off", 0), *((f"{c:,}", c) for c in CHUNK_SIZES)]
_CURVES = (
    ("ttft", "TTFT of the long request", "#1565c0", None),
    ("tbt", "worst TBT of the running requests", "#e65100", None),
    ("ttft_unchunked", "TTFT without chunking", "#1565c0", "dash"),
    ("tbt_unchunked", "worst TBT without chunking", "#e65100", "dash"),
    ("decode", "decode step alone", "#555", "dash"),
)


class ServingCalculator(Calculator):
    """TTFT, TBT, throughput and memory of serving; the figure shows chunked prefill's trade."""

    title = "Serving one model on one GPU: chunked prefill trades TTFT for TBT"

    def _make_controls(self) -> dict[str, widgets.Widget]:
        return {
            "model": dropdown("model preset", model_names(), serving_cost.DEFAULT_MODEL),
            "config": text_box("config.json", placeholder="path (replaces the preset)"),
            "hardware": dropdown("device", hardware_names(), serving_cost.DEFAULT_HARDWARE),
            "prompt": choice_slider("prompt (tokens)", powers_of_two(6, 17), 4096),
            "output": choice_slider("output (tokens)", powers_of_two(0, 14), 256),
            "batch": int_slider("batch", 16, 1, 512),
            "chunk": dropdown("chunk (tokens)", _CHUNK_OPTIONS, 0),
        }

    def _make_traces(self) -> list[go.Scatter]:
        curves = [
            go.Scatter(meta=key, name=name, mode="lines" if dash else "lines+markers",
                       line={"color": colour, "dash": dash})
            for key, name, colour, dash in _CURVES
        ]  # fmt: skip
        marks = [
            go.Scatter(meta=f"selected_{key}", name=f"selected: {key.upper()}",
                       mode="markers", marker={"size": 13, "color": colour, "symbol": "diamond"})
            for key, colour in (("ttft", "#1565c0"), ("tbt", "#e65100"))
        ]  # fmt: skip
        return [*curves, *marks]

    def _style_axes(self) -> None:
        self.figure.update_xaxes(title="chunk size (tokens per prefill step)", type="log")
        self.figure.update_yaxes(title="time (ms)", type="log")

    def model(self) -> ModelShape:
        """The model the calculator costs: the config.json in the text box, else the preset."""
        path = self.controls["config"].value.strip()
        return get_model(path if path else self.controls["model"].value)

    def _redraw(self) -> None:
        v = self.values()
        m, hw = self.model(), get_hardware(v["hardware"])
        chunk = v["chunk"] or None
        estimate = serving_cost.serving_estimate(
            m, hw, prompt_tokens=v["prompt"], output_tokens=v["output"], batch=v["batch"],
            chunk_size=chunk,
        )  # fmt: skip
        # The figure: the same prompt arriving while the rest of the batch decodes.
        running = max(1, v["batch"] - 1)
        context = v["prompt"] + (v["output"] + 1) // 2
        figure = serving_cost.chunked_prefill_figure(
            m, hw, prompt_tokens=v["prompt"], running=running, running_context=context,
            chunk_sizes=CHUNK_SIZES,
        )  # fmt: skip
        for trace in figure.data:
            self.trace(trace.meta).update(x=trace.x, y=trace.y)
        at = [chunk or v["prompt"]]  # unchunked: one chunk as long as the prompt
        self.trace("selected_ttft").update(x=at, y=[estimate.ttft_s * 1e3])
        self.trace("selected_tbt").update(x=at, y=[estimate.worst_tbt_s * 1e3])
        self.numbers = dataclasses.asdict(estimate)
        self.readout.value = _readout(m, hw.name, v, estimate, running)


def _readout(
    m: ModelShape, hw_name: str, v: dict[str, Any], e: serving_cost.ServingEstimate, running: int
) -> str:
    t, b = cost.format_seconds, cost.format_bytes
    verdict = "fits" if e.fits else "<b style='color:#c62828'>does not fit</b>"
    chunking = f"chunks of {v['chunk']:,} tokens" if v["chunk"] else "no chunking"
    return (
        f"{m.name} on one {hw_name}, batch {v['batch']}, prompt {v['prompt']:,} + output "
        f"{v['output']:,} tokens, {chunking}: TTFT <b>{t(e.ttft_s)}</b>, TBT "
        f"<b>{t(e.tbt_s)}</b> (worst while a prompt prefills: {t(e.worst_tbt_s)}), "
        f"throughput <b>{e.throughput_tokens_per_s:,.0f} tokens/s</b>. Memory: weights "
        f"{b(e.weight_bytes)} + KV cache {b(e.kv_bytes)} = {b(e.memory_bytes)} — {verdict}; "
        f"at most <b>{e.max_batch}</b> such sequences fit. The figure: the prompt arrives "
        f"while {running} requests decode (diamonds: the selected chunk size; without "
        "chunking they sit at the prompt length)."
    )


def serving_calculator(**values: Any) -> widgets.Widget | StaticSnapshot:
    """The serving calculator to display, with any controls preset (``batch=32`` ...)."""
    calc = ServingCalculator()
    if values:
        calc.set(**values)
    return calc.widget

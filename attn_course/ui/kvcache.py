"""Notebook 07's screen: the memory budget of serving, weights + KV cache + what is left.

:class:`KVBudgetCalculator` is a :class:`attn_course.ui.base.Calculator` (controls, figure,
``update()``, ``widget``; testable without a browser through ``set`` and ``numbers``).
Every number comes from :mod:`attn_course.cost` and :func:`attn_course.kvcache.max_batch`.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from attn_course import cost
from attn_course.kvcache import WEIGHT_DTYPE, max_batch
from attn_course.presets import get_hardware, get_model, hardware_names, model_names
from attn_course.ui.base import (
    Calculator,
    choice_slider,
    divisors,
    dropdown,
    int_slider,
    powers_of_two,
)

__all__ = ["CACHE_DTYPES", "KVBudgetCalculator"]

# The cache dtypes the calculator offers (the weights stay in WEIGHT_DTYPE).
CACHE_DTYPES = ("bfloat16", "float8", "int8", "int4")


class KVBudgetCalculator(Calculator):
    """Stacked bars of device memory: weights, KV cache, free — for MHA, your GQA, and MQA."""

    title = "Device memory while serving: weights + KV cache"
    BARS = ("mha", "gqa", "mqa")

    def _make_controls(self) -> dict[str, widgets.Widget]:
        return {
            "model": dropdown("model preset", model_names(), "Llama-3-8B"),
            "hardware": dropdown("device", hardware_names(), "H100-SXM5-80GB"),
            "kv_heads": dropdown("GQA KV heads", divisors(32), 8),
            "dtype": dropdown("cache dtype", list(CACHE_DTYPES), "bfloat16"),
            "context": choice_slider("context (tokens)", powers_of_two(9, 20), 8192),
            "batch": int_slider("batch", 8, 1, 512),
        }

    def _model_values(self, model_name: str) -> dict[str, Any]:
        m = get_model(model_name)
        return {"kv_heads": m.kv_heads if m.kv_heads < m.heads else max(1, m.heads // 4)}

    def _apply_model(self, model_name: str) -> None:
        self.controls["kv_heads"].options = divisors(get_model(model_name).heads)
        super()._apply_model(model_name)

    def _make_traces(self) -> list[go.Bar]:  # type: ignore[override]
        colors = {"weights": "#607d8b", "kv": "#e65100", "free": "#a5d6a7"}
        names = {"weights": "weights (bf16)", "kv": "KV cache", "free": "free"}
        bars = [go.Bar(meta=key, name=names[key], marker_color=c) for key, c in colors.items()]
        return [*bars, go.Scatter(meta="memory", name="device memory", mode="lines",
                                  line=dict(dash="dash", color="black"))]  # fmt: skip

    def _style_axes(self) -> None:
        self.figure.update_layout(barmode="stack")
        self.figure.update_xaxes(title="attention variant (KV heads)")
        self.figure.update_yaxes(title="memory (bytes; G = 10⁹)", tickformat="~s")

    def _redraw(self) -> None:
        v = self.values()
        m, hw = get_model(v["model"]), get_hardware(v["hardware"])
        kv_options = {"mha": m.heads, "gqa": v["kv_heads"], "mqa": 1}
        labels = [f"MHA ({m.heads})", f"GQA ({v['kv_heads']})", "MQA (1)"]
        weights = cost.weight_bytes(m, WEIGHT_DTYPE)
        kv = {
            key: cost.model_kv_cache_bytes(
                m, v["context"], batch=v["batch"], dtype=v["dtype"], kv_heads=heads
            )
            for key, heads in kv_options.items()
        }
        free = {key: max(0.0, hw.memory_bytes - weights - kv[key]) for key in self.BARS}
        self.trace("weights").update(x=labels, y=[weights] * 3)
        self.trace("kv").update(x=labels, y=[kv[key] for key in self.BARS])
        self.trace("free").update(x=labels, y=[free[key] for key in self.BARS])
        self.trace("memory").update(x=labels, y=[hw.memory_bytes] * 3)
        batches = {
            key: max_batch(m, hw, v["context"], kv_heads=heads, dtype=v["dtype"])
            for key, heads in kv_options.items()
        }
        self.numbers = {
            "weights_bytes": weights,
            "kv_bytes": kv["gqa"],
            "free_bytes": free["gqa"],
            "fits": weights + kv["gqa"] <= hw.memory_bytes,
            "max_batch": batches["gqa"],
            "max_batch_mha": batches["mha"],
            "max_batch_mqa": batches["mqa"],
        }
        b = cost.format_bytes
        verdict = "fits" if self.numbers["fits"] else "<b style='color:#c62828'>does not fit</b>"
        self.readout.value = (
            f"{m.name} on one {hw.name}: weights {b(weights)}, GQA KV cache {b(kv['gqa'])} "
            f"({v['batch']} x {v['context']:,} tokens, {v['dtype']}) — {verdict}. "
            f"Largest batch at this context: MHA <b>{batches['mha']}</b>, "
            f"GQA <b>{batches['gqa']}</b>, MQA <b>{batches['mqa']}</b>."
        )

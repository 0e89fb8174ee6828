"""Interactive cost calculators for notebook 02: ipywidgets controls driving plotly figures.

Three calculators, one class each:

* :class:`ScoreMemoryCalculator` — bytes of the n x n score matrices vs n (one head, one
  layer's forward peak, every layer's matrices kept for backward), against device memory.
* :class:`FlopsCalculator` — FLOPs per layer of attention vs the FFN (and + projections)
  vs n, with the crossovers marked.
* :class:`KVCacheCalculator` — KV-cache bytes vs context for MHA, GQA and MQA, against
  device memory and the memory left after the weights.

and one static figure, :func:`prefill_time_figure` (time to first token vs prompt length).

Every calculator has the same small interface, so it can be driven (and tested)
without a browser:

    calc = FlopsCalculator()
    calc.controls["d_model"].value = 8192   # any control; the figure updates in place
    calc.trace("crossover_ffn").x           # traces are found by a stable key
    calc.widget                             # the box to display in a notebook

``controls`` is a dict of widgets, ``figure`` a ``plotly.graph_objects.FigureWidget``
(updated in place, no re-render), ``readout`` an HTML widget with the numbers at the
selected point, ``error`` the message of the last rejected input (or ""). All numbers
come from :mod:`attn_course.cost`; this module only wires them to the screen.

In the static HTML edition (``python -m attn_course.site``) there is no kernel to react to
the controls, so every calculator and explorer of the course displays through
:func:`live_or_static`: the live widget in JupyterLab, a frozen :class:`StaticSnapshot`
(figures at the default settings, plus a note naming the controls) on a static page.
"""

from __future__ import annotations

import html
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
from IPython.display import HTML, display

from attn_course import cost
from attn_course.config import static_site
from attn_course.figures import style
from attn_course.presets import get_hardware, get_model, hardware_names, model_names

__all__ = [
    "FlopsCalculator",
    "KVCacheCalculator",
    "ScoreMemoryCalculator",
    "StaticSnapshot",
    "live_or_static",
    "log_grid",
    "powers_of_two",
    "prefill_time_figure",
    "static_note_html",
]

CUSTOM = "custom"
_STYLE = {"description_width": "110px"}
_WIDE = widgets.Layout(width="330px")


def log_grid(low: int, high: int, points: int = 61) -> list[int]:
    """About ``points`` integers spaced evenly on a log axis from ``low`` to ``high``."""
    values = np.unique(np.round(np.geomspace(low, high, points)).astype(int))
    return [int(v) for v in values]


def powers_of_two(low_exponent: int, high_exponent: int) -> list[int]:
    """``[2**low, ..., 2**high]``."""
    return [2**e for e in range(low_exponent, high_exponent + 1)]


def _choice_slider(description: str, options: Sequence[int], value: int) -> widgets.Widget:
    """A slider over a fixed list of sizes (e.g. powers of two), labelled with commas."""
    return widgets.SelectionSlider(
        description=description,
        options=[(f"{v:,}", v) for v in options],
        value=value,
        continuous_update=False,
        style=_STYLE,
        layout=_WIDE,
    )


def _int_slider(description: str, value: int, low: int, high: int, step: int = 1) -> Any:
    return widgets.IntSlider(
        description=description,
        value=value,
        min=low,
        max=high,
        step=step,
        continuous_update=False,
        style=_STYLE,
        layout=_WIDE,
    )


def _dropdown(description: str, options: Sequence[Any], value: Any) -> Any:
    return widgets.Dropdown(
        description=description, options=list(options), value=value, style=_STYLE, layout=_WIDE
    )


def _checkbox(description: str, value: bool) -> Any:
    return widgets.Checkbox(description=description, value=value, indent=False)


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


def static_note_html(kind: str, controls: Sequence[tuple[str, str]], figures: int) -> str:
    """The note a static page shows in place of an interactive display's controls.

    ``controls`` are (description, value as shown) pairs; ``figures`` is how many figures
    follow the note (the wording differs for none, one and several).
    """
    names = ", ".join(f"<i>{html.escape(name)}</i>" for name, _ in controls) or "its controls"
    settings = "; ".join(html.escape(f"{name} = {value}") for name, value in controls)
    frozen = f"frozen at one setting ({settings})" if settings else "frozen"
    if figures == 1:
        frozen += "; the figure below still zooms and hovers"
    elif figures > 1:
        frozen += "; the figures below still zoom and hover"
    return (
        "<div class='attn-course-static-note' style='border-left:4px solid #1976d2;"
        "background:#e3f2fd;padding:6px 10px;margin:4px 0'>"
        f"<b>Live in JupyterLab.</b> When you run this notebook, this is an interactive "
        f"{html.escape(kind)} with these controls: {names}. This page shows it {frozen}.</div>"
    )


class StaticSnapshot:
    """A calculator or explorer frozen for a static page: its figures, read-outs and a note.

    ``parts`` are shown in order: a plotly figure (a ``FigureWidget`` is copied into a plain
    ``go.Figure``, which a static page can still zoom and hover) or an HTML widget (its
    text). They are read when the snapshot is displayed, so they show the settings of that
    moment (the defaults, in a notebook that just built the calculator).
    """

    def __init__(
        self,
        kind: str,
        controls: Mapping[str, widgets.Widget],
        parts: Sequence[go.Figure | widgets.HTML],
    ) -> None:
        self.kind = kind
        self.controls = controls
        self.parts = parts

    def note_html(self) -> str:
        """The note that stands in for the controls (see :func:`static_note_html`)."""

        def shown(control: widgets.Widget) -> str:
            # Dropdowns and selection sliders have a label ("32,768"); the rest show the value.
            value = getattr(control, "label", None) or control.value
            if isinstance(value, bool):
                return "on" if value else "off"
            return str(value)

        controls = [(c.description, shown(c)) for c in self.controls.values()]
        figures = sum(not isinstance(part, widgets.HTML) for part in self.parts)
        return static_note_html(self.kind, controls, figures)

    def _ipython_display_(self) -> None:
        display(HTML(self.note_html()))
        for part in self.parts:
            if isinstance(part, widgets.HTML):
                if part.value:
                    display(HTML(part.value))
            else:
                display(go.Figure(part))


def live_or_static(
    widget: widgets.Widget,
    *,
    kind: str,
    controls: Mapping[str, widgets.Widget],
    parts: Sequence[go.Figure | widgets.HTML],
) -> widgets.Widget | StaticSnapshot:
    """``widget`` itself, or a :class:`StaticSnapshot` of it while the static site is built.

    The one place where the course's interactive displays learn about the static HTML edition
    (:func:`attn_course.config.static_site`); JupyterLab always gets the live widget.
    """
    if not static_site():
        return widget
    return StaticSnapshot(kind, controls, parts)


class _Calculator(ABC):
    """Shared wiring: build controls and figure, observe every control, update in place."""

    title = ""

    def __init__(self) -> None:
        self._loading = False
        self.error = ""
        self.controls: dict[str, widgets.Widget] = self._make_controls()
        self.figure = go.FigureWidget(data=self._make_traces())
        # No width: the figure fills its cell; the legend goes to the right of the plot.
        self.figure.update_layout(template="plotly_white")
        style(self.figure, self.title, height=460)
        self._style_axes()
        self.readout = widgets.HTML()
        for name, control in self.controls.items():
            control.observe(self._on_change, names="value")
            control.add_class(f"attn-course-{name}")
        left, right = self._split_controls()
        self.widget = live_or_static(
            widgets.VBox(
                [widgets.HBox([widgets.VBox(left), widgets.VBox(right)]), self.figure, self.readout]
            ),
            kind="calculator",
            controls=self.controls,
            parts=[self.figure, self.readout],
        )
        if "model" in self.controls:
            self._load_model(self.controls["model"].value)
        self.update()

    # -- to override ------------------------------------------------------------------
    @abstractmethod
    def _make_controls(self) -> dict[str, widgets.Widget]:
        """The calculator's sliders and dropdowns, by name."""

    @abstractmethod
    def _make_traces(self) -> list[go.Scatter]:
        """Empty traces, one per curve, each keyed by ``meta``; ``_redraw`` fills them."""

    @abstractmethod
    def _style_axes(self) -> None:
        """Axis titles (with units) and scales."""

    def _model_values(self, model_name: str) -> dict[str, Any]:
        """Control values that a model preset sets."""
        return {}

    @abstractmethod
    def _redraw(self) -> None:
        """Recompute every trace and the readout from the current control values."""

    # -- shared -----------------------------------------------------------------------
    def _split_controls(self) -> tuple[list[widgets.Widget], list[widgets.Widget]]:
        controls = list(self.controls.values())
        half = (len(controls) + 1) // 2
        return controls[:half], controls[half:]

    def trace(self, key: str) -> go.Scatter:
        """The figure's trace with this key (kept in ``trace.meta``; names change with the data)."""
        for trace in self.figure.data:
            if trace.meta == key:
                return trace
        raise KeyError(f"no trace {key!r}; traces: {[t.meta for t in self.figure.data]}")

    def values(self) -> dict[str, Any]:
        """Current value of every control."""
        return {name: control.value for name, control in self.controls.items()}

    def set(self, **values: Any) -> None:
        """Set several controls at once and redraw once (a model preset is applied first)."""
        self._loading = True
        try:
            if "model" in values:
                self.controls["model"].value = values.pop("model")
                self._apply_model(self.controls["model"].value)
            for name, value in values.items():
                if name not in self.controls:
                    raise ValueError(f"control must be one of {list(self.controls)}, got {name!r}")
                self.controls[name].value = value
        finally:
            self._loading = False
        self._mark_custom_if_edited()
        self.update()

    def _on_change(self, change: dict[str, Any]) -> None:
        if self._loading:
            return
        if change["owner"] is self.controls.get("model"):
            self._load_model(change["new"])
        else:
            self._mark_custom_if_edited()
        self.update()

    def _load_model(self, model_name: str) -> None:
        self._loading = True
        try:
            self._apply_model(model_name)
        finally:
            self._loading = False

    def _apply_model(self, model_name: str) -> None:
        if model_name == CUSTOM:
            return
        for name, value in self._model_values(model_name).items():
            self.controls[name].value = value

    def _mark_custom_if_edited(self) -> None:
        """Show "custom" in the preset dropdown once a shape control leaves the preset."""
        model = self.controls.get("model")
        if model is None or CUSTOM not in model.options or model.value == CUSTOM:
            return
        preset = self._model_values(model.value)
        if any(self.controls[name].value != value for name, value in preset.items()):
            self._loading = True
            try:
                model.value = CUSTOM
            finally:
                self._loading = False

    def update(self) -> None:
        """Recompute every trace from the controls; a bad combination shows its ValueError."""
        try:
            # Not inside figure.batch_update(): a batch sends all traces' changes as one
            # restyle, and plotly.js then clears a property (such as a trace's name) on every
            # trace the batch did not set it for, so the legends would read "trace 0, 1, ...".
            self._redraw()
        except ValueError as err:
            self.error = str(err)
            self.readout.value = (
                f"<span style='color:#c62828'><b>Not drawn:</b> {html.escape(self.error)}</span>"
            )
            return
        self.error = ""


def _divisors(value: int) -> list[int]:
    return [k for k in range(1, value + 1) if value % k == 0]


# --- 1. score-matrix memory -----------------------------------------------------------


class ScoreMemoryCalculator(_Calculator):
    """Memory of the n x n score matrices vs n, against one device's memory (log-log)."""

    title = "Score-matrix memory vs sequence length"
    N_VALUES = log_grid(2**8, 2**20)

    def _make_controls(self) -> dict[str, widgets.Widget]:
        return {
            "model": _dropdown("model preset", [*model_names(), CUSTOM], "Llama-2-7B"),
            "heads": _int_slider("heads", 32, 1, 128),
            "layers": _int_slider("layers", 32, 1, 128),
            "batch": _int_slider("batch", 1, 1, 64),
            "dtype": _dropdown("dtype", ["float32", "bfloat16", "float16", "float8"], "bfloat16"),
            "hardware": _dropdown("device", hardware_names(), "H100-SXM5-80GB"),
            "n": _choice_slider("n (tokens)", powers_of_two(8, 20), 32768),
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
        self.trace("device_memory").update(
            x=[ns[0], ns[-1]],
            y=[hw.memory_bytes] * 2,
            name=f"{hw.name} memory ({cost.format_bytes(hw.memory_bytes, binary=True)})",
        )
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


class FlopsCalculator(_Calculator):
    """FLOPs per layer of attention, FFN and FFN + projections vs n, crossovers marked."""

    title = "FLOPs per layer: attention vs feed-forward"
    N_VALUES = log_grid(2**6, 2**21)

    def _make_controls(self) -> dict[str, widgets.Widget]:
        return {
            "model": _dropdown("model preset", [*model_names(), CUSTOM], "Llama-2-7B"),
            "d_model": _int_slider("d_model", 4096, 128, 16384, step=128),
            "d_ff": _int_slider("d_ff", 11008, 128, 65536, step=64),
            "heads": _int_slider("heads", 32, 1, 128),
            "kv_heads": _int_slider("kv_heads", 32, 1, 128),
            "gated": _checkbox("gated FFN (SwiGLU: 3 matrices)", True),
            "causal": _checkbox("causal (skip the masked half)", True),
            "n": _choice_slider("n (tokens)", powers_of_two(6, 21), 8192),
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


class KVCacheCalculator(_Calculator):
    """KV-cache bytes vs context for MHA / GQA / MQA, against device memory."""

    title = "KV-cache memory vs context length"
    CONTEXTS = log_grid(2**10, 2**21)

    def _make_controls(self) -> dict[str, widgets.Widget]:
        return {
            "model": _dropdown("model preset", model_names(), "Llama-3-8B"),
            "kv_heads": _dropdown("GQA KV heads", _divisors(32), 8),
            "dtype": _dropdown(
                "cache dtype", ["float32", "bfloat16", "float8", "int4"], "bfloat16"
            ),
            "batch": _int_slider("batch", 1, 1, 256),
            "hardware": _dropdown("device", hardware_names(), "H100-SXM5-80GB"),
            "context": _choice_slider("context (tokens)", powers_of_two(10, 21), 131072),
        }

    def _model_values(self, model_name: str) -> dict[str, Any]:
        m = get_model(model_name)
        # An MHA preset has no GQA of its own: show a quarter of its heads as an example.
        kv = m.kv_heads if 1 < m.kv_heads < m.heads else max(1, m.heads // 4)
        return {"kv_heads": kv}

    def _apply_model(self, model_name: str) -> None:
        self.controls["kv_heads"].options = _divisors(get_model(model_name).heads)
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
        self.trace("device_memory").update(
            x=[xs[0], xs[-1]],
            y=[hw.memory_bytes] * 2,
            name=f"{hw.name} memory ({cost.format_bytes(hw.memory_bytes, binary=True)})",
        )
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

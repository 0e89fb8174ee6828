"""Notebook 01's screens: heatmaps of S and P, the ScoreExplorer, and memory/time against n.

Everything here returns plain plotly figures or ipywidgets objects, so tests can build
them, flip the controls and read the figure data without a browser. The figures live here
with the explorer that draws them (:func:`heatmap_figure`) rather than in
:mod:`attn_course.scores`, so that the lesson's arithmetic, which the kernels' argument
checks import, stays free of plotly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go
import torch
from IPython.display import clear_output, display

from attn_course.figures import style
from attn_course.memory import MemoryRow
from attn_course.scores import (
    TOY_HEAD_NAMES,
    TOY_SENTENCE,
    naive_attention,
    token_labels,
    toy_sentence_qkv,
)
from attn_course.validate import resolve_dtype

__all__ = [
    "ScoreExplorer",
    "heatmap_figure",
    "memory_scaling_figure",
    "time_scaling_figure",
]


def heatmap_figure(
    matrix: torch.Tensor,
    tokens: Sequence[str],
    title: str,
    colorbar_title: str,
    zmin: float | None = None,
    zmax: float | None = None,
) -> go.Figure:
    """Heatmap of one (n_q, n_k) matrix with query tokens down and key tokens across.

    Entries that are -inf (masked scores) are left blank rather than coloured.
    """
    if not isinstance(matrix, torch.Tensor) or matrix.dim() != 2:
        raise ValueError(f"matrix must be a 2-d tensor, got {getattr(matrix, 'shape', matrix)!r}")
    if matrix.shape != (len(tokens), len(tokens)):
        raise ValueError(
            f"matrix has shape {tuple(matrix.shape)} but there are {len(tokens)} tokens"
        )
    values = matrix.detach().to(torch.float64).cpu()
    z = [[None if math.isinf(x) else x for x in row] for row in values.tolist()]
    labels = token_labels(tokens)
    figure = go.Figure(
        go.Heatmap(
            z=z,
            x=labels,
            y=labels,
            zmin=zmin,
            zmax=zmax,
            colorscale="Viridis",
            colorbar={"title": {"text": colorbar_title}},
            hovertemplate="query %{y}<br>key %{x}<br>value %{z:.3f}<extra></extra>",
        )
    )
    figure.update_layout(
        xaxis={"title": {"text": "key j (position, token)"}, "tickangle": -45},
        # Query 0 at the top, like a matrix printed on paper.
        yaxis={"title": {"text": "query i (position, token)"}, "autorange": "reversed"},
    )
    return style(figure, title, width=640, height=600)


class ScoreExplorer:
    """Interactive S and P for a sentence: pick the head, the matrix, the causal mask.

    ``explorer.widget`` is what a notebook displays. Every change of a control recomputes
    :func:`~attn_course.scores.naive_attention` on :func:`~attn_course.scores.toy_sentence_qkv`
    and redraws ``explorer.figure`` into ``explorer.output``.
    """

    def __init__(self, text: str = TOY_SENTENCE, head_dim: int = 32) -> None:
        self.head_dim = head_dim
        self.text = widgets.Text(value=text, description="sentence", continuous_update=False)
        self.matrix = widgets.ToggleButtons(
            options=[("scores S", "scores"), ("probabilities P", "probs")],
            value="probs",
            description="show",
        )
        self.head = widgets.Dropdown(
            options=[(name, index) for index, name in enumerate(TOY_HEAD_NAMES)],
            value=0,
            description="head",
        )
        self.causal = widgets.Checkbox(value=False, description="causal mask")
        self.output = widgets.Output()
        self.figure = go.Figure()
        self._set_sentence(text)
        for control in (self.matrix, self.head, self.causal):
            control.observe(lambda _change: self.update(), names="value")
        self.text.observe(lambda change: self._set_sentence(change["new"]), names="value")
        self.widget = widgets.VBox(
            [widgets.HBox([self.text, self.head]), widgets.HBox([self.matrix, self.causal]),
             self.output]
        )  # fmt: skip

    def _set_sentence(self, text: str) -> None:
        try:
            self.toy = toy_sentence_qkv(text, self.head_dim)
        except ValueError as error:  # e.g. no words: say so, keep the last picture's data
            with self.output:
                clear_output(wait=True)
                print(f"Can't use that sentence: {error}")
            return
        self.update()

    def update(self) -> go.Figure:
        """Recompute for the current controls, redraw, and return the figure."""
        result = naive_attention(self.toy.q, self.toy.k, self.toy.v, causal=self.causal.value)
        head = self.head.value
        name = self.toy.head_names[head]
        mask_note = ", causal" if self.causal.value else ""
        n = len(self.toy.tokens)
        if self.matrix.value == "scores":
            matrix = result.scores[0, head]
            title = f"Scores S = QKᵀ/√d, head '{name}'{mask_note} ({n}×{n})"
            self.figure = heatmap_figure(matrix, self.toy.tokens, title, "score")
        else:
            matrix = result.probs[0, head]
            title = f"Probabilities P = softmax(S), head '{name}'{mask_note} ({n}×{n})"
            self.figure = heatmap_figure(matrix, self.toy.tokens, title, "weight", 0.0, 1.0)
        with self.output:
            clear_output(wait=True)
            display(self.figure)
        return self.figure


def _loglog_layout(figure: go.Figure, title: str, x_title: str, y_title: str) -> go.Figure:
    figure.update_layout(
        xaxis={"title": {"text": x_title}, "type": "log"},
        yaxis={"title": {"text": y_title}, "type": "log"},
    )
    return style(figure, title, width=900, height=540)


def _guide(ns: Sequence[int], anchor: float, power: int) -> list[float]:
    """anchor · (n / n₀)^power: a straight line of slope ``power`` on log-log axes."""
    return [anchor * (n / ns[0]) ** power for n in ns]


def memory_scaling_figure(
    rows: Sequence[MemoryRow], head_dim: int, dtype: torch.dtype | str = "float32"
) -> go.Figure:
    """Log-log plot of predicted and measured bytes of naive attention against n.

    Lines are formulas, markers are measurements. A linear (∝ n) line for the inputs
    q, k, v = 3 · n · head_dim · bytes shows what attention would cost without the n².
    """
    if not rows:
        raise ValueError("rows must hold at least one measurement")
    ns = [row.n for row in rows]
    element = resolve_dtype(dtype).itemsize
    figure = go.Figure()

    # Formulas are lines, measurements markers; the traces differ only in data and look.
    def formula(y: Sequence[float], name: str, **line: Any) -> None:
        figure.add_scatter(x=ns, y=y, mode="lines", name=name, line=line)

    def measured(y: Sequence[float], name: str, **marker: Any) -> None:
        figure.add_scatter(x=ns, y=y, mode="markers", name=name, marker=marker)

    inputs = [3 * n * head_dim * element for n in ns]
    formula(inputs, "inputs q, k, v (formula, ∝ n)", dash="dot", color="grey")
    formula([r.formula_score_bytes for r in rows], "S alone (formula)", color="#1f77b4")
    measured([r.score_bytes for r in rows], "S tensor (measured storage)", color="#1f77b4", size=9)
    formula([r.formula_peak_bytes for r in rows], "peak S + P + O (formula)", color="#d62728")
    measured([r.peak_bytes for r in rows], "peak (measured, PyTorch allocator)",
             color="#d62728", size=9, symbol="circle-open", line={"width": 2})  # fmt: skip
    if all(r.rss_peak_bytes is not None for r in rows):
        measured([r.rss_peak_bytes for r in rows], "peak (measured, resident memory)",
                 color="black", size=7, symbol="x")  # fmt: skip
    formula(_guide(ns, 8 * rows[0].formula_peak_bytes, 2), "slope-2 guide: ×4 per doubling of n",
            dash="dash", color="#2ca02c")  # fmt: skip
    name = str(dtype).removeprefix("torch.")
    title = f"Naive attention memory vs sequence length ({name}, 1 head, head_dim {head_dim})"
    return _loglog_layout(figure, title, "sequence length n (tokens)", "memory (bytes)")


def time_scaling_figure(rows: Sequence[MemoryRow]) -> go.Figure:
    """Log-log plot of the measured time of naive attention against n, with an n² guide."""
    if not rows:
        raise ValueError("rows must hold at least one measurement")
    ns = [row.n for row in rows]
    figure = go.Figure()
    figure.add_scatter(
        x=ns, y=[r.seconds for r in rows], mode="lines+markers", name="measured (fastest run)"
    )
    figure.add_scatter(
        x=ns, y=_guide(ns, rows[-1].seconds / (ns[-1] / ns[0]) ** 2, 2), mode="lines",
        name="slope-2 guide through the largest n", line={"dash": "dash", "color": "#2ca02c"},
    )  # fmt: skip
    title = "Naive attention time on this CPU vs sequence length"
    return _loglog_layout(figure, title, "sequence length n (tokens)", "time (s)")

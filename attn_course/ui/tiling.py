"""Notebook 03's screen: :class:`TilingExplorer` steps through the tiled algorithm's schedule.

Every number it shows comes from :mod:`attn_course.tiling`
(:func:`~attn_course.tiling.tiling_schedule`, :func:`~attn_course.tiling.trace_row`); this
module only draws them and wires the controls.
"""

from __future__ import annotations

import math
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from attn_course.figures import style
from attn_course.tiling import TileStep, tiling_schedule, trace_row
from attn_course.ui.base import add_state_legend, discrete_colourscale, live_or_static
from attn_course.validate import check_count

__all__ = ["TilingExplorer"]

# Tile states, drawn as a discrete colour scale.
_FUTURE, _DONE, _SKIPPED, _MASKED, _CURRENT = 0, 1, 2, 3, 4
_STATE_COLOURS = ["#f4f4f4", "#9ecae1", "#d9d9d9", "#fdd0a2", "#e6550d"]
_STATE_NAMES = [
    "not yet computed",
    "computed (folded into m, ℓ, acc)",
    "skipped: above the diagonal",
    "masked inside a computed tile",
    "computing now",
]


class TilingExplorer:
    """Step through the (query block, key block) schedule of the tiled algorithm.

    ``explorer.widget`` is what a notebook displays; ``explorer.controls`` holds the widgets
    (``step``, ``causal``, ``block_q``, ``block_k``, ``row``); ``explorer.grid_figure`` is the
    n x n picture of S (which tiles are done, skipped, being computed), ``explorer.row_figure``
    how m and ℓ of the chosen row evolve, ``explorer.on_chip`` an HTML read-out of what is on
    chip at this step. Every change calls :meth:`update`; tests can set controls directly.
    """

    def __init__(
        self,
        n: int = 40,
        head_dim: int = 8,
        block_q: int = 8,
        block_k: int = 8,
        causal: bool = True,
        seed: int = 0,
    ) -> None:
        self.n = check_count("n", n)
        self.head_dim = check_count("head_dim", head_dim)
        generator = torch.Generator().manual_seed(seed)
        self.q, self.k, self.v = (
            torch.randn(self.n, self.head_dim, generator=generator, dtype=torch.float64)
            for _ in range(3)
        )
        choices = {b for b in (2, 4, 5, 8, 10, 16, 20) if b <= self.n}
        block_options = sorted(choices | {block_q, block_k})
        style = {"description_width": "90px"}
        self.controls: dict[str, widgets.Widget] = {
            "block_q": widgets.Dropdown(
                options=block_options, value=block_q, description="block_q", style=style
            ),
            "block_k": widgets.Dropdown(
                options=block_options, value=block_k, description="block_k", style=style
            ),
            "causal": widgets.Checkbox(value=causal, description="causal", indent=False),
            "row": widgets.IntSlider(
                value=min(self.n - 1, block_q + 1),
                min=0,
                max=self.n - 1,
                description="traced row",
                style=style,
            ),
            "step": widgets.IntSlider(
                value=0,
                min=0,
                max=0,
                description="step",
                style=style,
                layout=widgets.Layout(width="520px"),
            ),
        }
        self.on_chip = widgets.HTML()
        self.grid_figure = go.FigureWidget()
        self.row_figure = go.FigureWidget(
            make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12)
        )
        self._build_figures()
        self._refresh_schedule()
        for name, control in self.controls.items():
            handler = self._on_structure if name in ("block_q", "block_k", "causal") else None
            control.observe(handler or (lambda _change: self.update()), names="value")
        top = widgets.HBox(
            [self.controls["block_q"], self.controls["block_k"], self.controls["causal"]]
        )
        self.widget = live_or_static(
            widgets.VBox(
                [
                    top,
                    widgets.HBox([self.controls["step"], self.controls["row"]]),
                    widgets.HBox([self.grid_figure, self.row_figure]),
                    self.on_chip,
                ]
            ),
            kind="explorer",
            controls=self.controls,
            parts=[self.grid_figure, self.row_figure, self.on_chip],
        )
        self.update()

    # -- the schedule of visited tiles ------------------------------------------------------
    def _refresh_schedule(self) -> None:
        c = self.controls
        self.schedule = tiling_schedule(
            self.n, c["block_q"].value, c["block_k"].value, c["causal"].value
        )
        self.visited = [s for s in self.schedule if not s.skipped]
        step = c["step"]
        step.max = len(self.visited) - 1
        step.value = min(step.value, step.max)

    def _on_structure(self, _change: dict[str, Any]) -> None:
        self._refresh_schedule()
        self.update()

    def _build_figures(self) -> None:
        colourscale = discrete_colourscale(_STATE_COLOURS)
        self.grid_figure.add_heatmap(
            z=[[0]],
            zmin=-0.5,
            zmax=len(_STATE_COLOURS) - 0.5,
            colorscale=colourscale,
            showscale=False,
            hovertemplate="query %{y}, key %{x}<br>%{text}<extra></extra>",
        )
        add_state_legend(self.grid_figure, _STATE_COLOURS, _STATE_NAMES)
        self.grid_figure.update_layout(
            xaxis={"title": {"text": "key j (token index)"}, "constrain": "domain"},
            yaxis={
                "title": {"text": "query i (token index)"},
                "autorange": "reversed",
                "scaleanchor": "x",
                "constrain": "domain",  # else the square grid pads y far past the matrix
            },
        )
        # Both titles change at every step (update()): two lines each, room kept for two.
        style(self.grid_figure, "Score matrix S,<br>tile by tile", width=560, height=520,
              title_lines_reserved=2)  # fmt: skip
        rf = self.row_figure
        rf.add_scatter(
            row=1, col=1, mode="lines+markers", name="running max m", line={"color": "#e6550d"}
        )
        rf.add_scatter(
            row=1,
            col=1,
            mode="markers",
            name="block max",
            marker={"symbol": "x", "color": "#555", "size": 9},
        )
        rf.add_scatter(
            row=2, col=1, mode="lines+markers", name="running sum ℓ", line={"color": "#3182bd"}
        )
        style(rf, "One row's<br>running statistics", width=400, height=520,
              title_lines_reserved=2)  # fmt: skip
        rf.update_yaxes(title_text="m (score units)", row=1, col=1)
        rf.update_yaxes(title_text="ℓ = Σ exp(s − m) (no unit)", row=2, col=1)
        rf.update_xaxes(title_text="key block j (processed so far)", row=2, col=1, dtick=1)

    # -- drawing ------------------------------------------------------------------------
    def _states(self, current: TileStep) -> tuple[list[list[int]], list[list[str]]]:
        """Per (query, key) cell: its state at the current step, and a hover text."""
        index = self.visited.index(current)
        done = set(self.visited[:index])
        causal = self.controls["causal"].value
        z = [[_FUTURE] * self.n for _ in range(self.n)]
        for tile in self.schedule:
            state = (
                _SKIPPED
                if tile.skipped
                else _CURRENT
                if tile == current
                else _DONE
                if tile in done
                else _FUTURE
            )
            for i in range(tile.q_start, tile.q_end):
                for j in range(tile.k_start, tile.k_end):
                    masked = causal and j > i and state in (_DONE, _CURRENT)
                    z[i][j] = _MASKED if masked else state
        text = [[_STATE_NAMES[s] for s in row] for row in z]
        return z, text

    def update(self) -> None:
        """Redraw both figures and the on-chip read-out for the current controls."""
        c = self.controls
        current = self.visited[c["step"].value]
        z, text = self._states(current)
        with self.grid_figure.batch_update():
            self.grid_figure.data[0].update(z=z, text=text)
            row = c["row"].value
            self.grid_figure.layout.shapes = [
                {
                    "type": "rect",
                    "x0": current.k_start - 0.5,
                    "x1": current.k_end - 0.5,
                    "y0": current.q_start - 0.5,
                    "y1": current.q_end - 0.5,
                    "line": {"color": "black", "width": 3},
                },
                {
                    "type": "line",
                    "x0": -0.5,
                    "x1": self.n - 0.5,
                    "y0": row,
                    "y1": row,
                    "line": {"color": "black", "width": 1, "dash": "dot"},
                },
            ]
            self.grid_figure.layout.title.text = (
                f"S, tile ({current.q_block}, {current.k_block}): step {c['step'].value + 1} "
                f"of {len(self.visited)}<br>computed tiles ({len(self.schedule)} in all)"
            )
        self._update_row(current)
        self._update_on_chip(current)

    def _update_row(self, current: TileStep) -> None:
        """m and ℓ of the traced row, for the key blocks processed by this step."""
        c = self.controls
        row = c["row"].value
        trace = trace_row(
            self.q, self.k, self.v, row, block_k=c["block_k"].value, causal=c["causal"].value
        )
        if row >= current.q_end:  # its query block has not started yet
            shown = []
        elif row < current.q_start:  # its query block is finished
            shown = trace
        else:
            shown = [s for s in trace if s.k_block <= current.k_block]
        xs = [s.k_block for s in shown]
        with self.row_figure.batch_update():
            self.row_figure.data[0].update(x=xs, y=[s.m for s in shown])
            self.row_figure.data[1].update(
                x=xs, y=[None if math.isinf(s.block_max) else s.block_max for s in shown]
            )
            self.row_figure.data[2].update(x=xs, y=[s.l for s in shown])
            self.row_figure.layout.title.text = (
                f"Row {row}: m and ℓ after each key block<br>({len(shown)} of {len(trace)} done)"
            )
            self.row_figure.update_xaxes(range=[-0.5, max(len(trace), 1) - 0.5])

    def _update_on_chip(self, current: TileStep) -> None:
        rows, keys, d = (
            current.q_end - current.q_start,
            current.k_end - current.k_start,
            self.head_dim,
        )
        parts = {
            f"Q block (rows {current.q_start}–{current.q_end - 1})": rows * d,
            f"K, V blocks (keys {current.k_start}–{current.k_end - 1})": 2 * keys * d,
            f"score tile S_ij ({rows}×{keys})": rows * keys,
            f"m, ℓ ({rows} each)": 2 * rows,
            f"acc ({rows}×{d})": rows * d,
        }
        total = sum(parts.values())
        items = "".join(f"<li>{name}: {count} numbers</li>" for name, count in parts.items())
        note = (
            " The tile straddles the diagonal: entries with j > i are masked."
            if (current.partial)
            else ""
        )
        self.on_chip.value = (
            f"<b>On chip now</b> (n = {self.n}, d = {d}):<ul style='margin:2px 0'>{items}</ul>"
            f"<b>{total} numbers</b> in all, however large n is; the whole S would be "
            f"n² = {self.n**2}.{note}"
        )

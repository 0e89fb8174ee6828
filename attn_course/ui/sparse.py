"""Notebook 06's screens: a sparse pattern's mask and block layout, and SparsityExplorer.

:func:`sparse_layout_figure` draws two panels (the dense mask, the tiles a kernel visits);
:class:`SparsityExplorer` redraws the same two panels in place as its controls change,
which is why the figure lives here beside the explorer. Every number comes from
:mod:`attn_course.sparse`.
"""

from __future__ import annotations

import ipywidgets as widgets
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from attn_course.figures import style
from attn_course.sparse import PATTERN_NAMES, BlockLayout, SparsePattern, make_pattern
from attn_course.ui.base import add_state_legend, discrete_colourscale, live_or_static
from attn_course.validate import check_count

__all__ = ["SparsityExplorer", "sparse_layout_figure"]

_LAYOUT_COLOURS = ("#f0f0f0", "#9ecae1", "#08519c")  # skipped, partial, full
_LAYOUT_NAMES = ("skipped tile", "partial tile (element mask)", "full tile (no mask)")


def _layout_cells(layout: BlockLayout) -> list[list[int]]:
    """Per (query, key) entry: 0 if its tile is skipped, 1 partial, 2 full."""
    state = layout.tiles.long() + layout.full.long()
    per_entry = state.repeat_interleave(layout.block, 0).repeat_interleave(layout.block, 1)
    return per_entry[: layout.n, : layout.n].tolist()


def sparse_layout_figure(pattern: SparsePattern, block: int) -> go.Figure:
    """Two panels: the dense mask (allowed pairs) and the tiles a kernel visits."""
    layout = pattern.layout(block)
    figure = make_subplots(
        rows=1, cols=2, horizontal_spacing=0.12,
        subplot_titles=("mask: which (query, key) pairs may attend",
                        f"block layout, tiles of {block} x {block}"),
    )  # fmt: skip
    _draw(figure, pattern, layout)
    return figure


def _draw(figure: go.Figure, pattern: SparsePattern, layout: BlockLayout) -> None:
    mask = pattern.dense_mask().long().tolist()
    scale = [[0, "#f0f0f0"], [1, "#d62728"]]
    if len(figure.data) == 0:
        figure.add_heatmap(z=mask, colorscale=scale, showscale=False, zmin=0, zmax=1,
                           hovertemplate="query %{y}, key %{x}: %{z}<extra></extra>",
                           row=1, col=1)  # fmt: skip
        steps = discrete_colourscale(_LAYOUT_COLOURS)
        figure.add_heatmap(z=_layout_cells(layout), colorscale=steps, showscale=False,
                           zmin=-0.5, zmax=2.5,
                           hovertemplate="query %{y}, key %{x}<extra></extra>",
                           row=1, col=2)  # fmt: skip
        add_state_legend(figure, _LAYOUT_COLOURS, _LAYOUT_NAMES, row=1, col=2)
        for col in (1, 2):
            figure.update_xaxes(title_text="key j (token index)", row=1, col=col)
            figure.update_yaxes(title_text="query i (token index)", autorange="reversed",
                                row=1, col=col)  # fmt: skip
    else:
        figure.data[0].z = mask
        figure.data[1].z = _layout_cells(layout)
    # Two lines, always: the title changes with the explorer's controls, its margin does not.
    title = (f"{pattern.name}, n = {pattern.n}: {pattern.density():.1%} of pairs allowed<br>"
             f"{layout.visited_tiles} of {layout.blocks ** 2} tiles visited "
             f"({layout.computed_fraction():.1%} of the n² scores computed)")  # fmt: skip
    style(figure, title, width=960, height=520, title_lines_reserved=2)


class SparsityExplorer:
    """Pick a pattern and its knobs; see the mask, its block layout and the work done.

    ``explorer.controls``: ``pattern``, ``window``, ``dilation``, ``global_tokens``,
    ``random_blocks``, ``block`` (widgets); ``explorer.figure`` (a FigureWidget, two panels);
    ``explorer.summary`` (HTML with the fractions); ``explorer.widget`` is what a notebook
    displays. Every change calls :meth:`update`; tests set controls directly.
    """

    def __init__(self, n: int = 64, pattern: str = "sliding window", block: int = 8) -> None:
        self.n = check_count("n", n)
        if pattern not in PATTERN_NAMES:
            raise ValueError(f"pattern must be one of {PATTERN_NAMES}, got {pattern!r}")
        style = {"description_width": "110px"}
        blocks = sorted({b for b in (2, 4, 8, 16, 32) if b <= self.n} | {block})
        self.controls: dict[str, widgets.Widget] = {
            "pattern": widgets.Dropdown(options=PATTERN_NAMES, value=pattern,
                                        description="pattern", style=style),
            "window": widgets.IntSlider(value=min(8, self.n), min=1, max=self.n,
                                        description="window", style=style),
            "dilation": widgets.IntSlider(value=2, min=1, max=8, description="dilation",
                                          style=style),
            "global_tokens": widgets.IntSlider(value=2, min=0, max=min(16, self.n),
                                               description="global tokens", style=style),
            "random_blocks": widgets.IntSlider(value=1, min=0, max=4,
                                               description="random blocks", style=style),
            "block": widgets.Dropdown(options=blocks, value=block, description="block",
                                      style=style),
        }  # fmt: skip
        self.summary = widgets.HTML()
        self.figure = go.FigureWidget(
            make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                          subplot_titles=("mask: which (query, key) pairs may attend",
                                          "block layout: tiles a kernel visits"))
        )  # fmt: skip
        for control in self.controls.values():
            control.observe(lambda _change: self.update(), names="value")
        c = self.controls
        self.widget = live_or_static(widgets.VBox([
            widgets.HBox([c["pattern"], c["block"], c["window"]]),
            widgets.HBox([c["dilation"], c["global_tokens"], c["random_blocks"]]),
            self.summary, self.figure,
        ]), kind="explorer", controls=self.controls, parts=[self.summary, self.figure])  # fmt: skip
        self.update()

    def pattern(self) -> SparsePattern:
        c = self.controls
        return make_pattern(
            c["pattern"].value, self.n, window=c["window"].value, dilation=c["dilation"].value,
            global_tokens=c["global_tokens"].value, random_blocks=c["random_blocks"].value,
            block=c["block"].value,
        )  # fmt: skip

    def update(self) -> None:
        """Rebuild the pattern from the controls and redraw both panels and the summary."""
        pattern = self.pattern()
        layout = pattern.layout(self.controls["block"].value)
        self.layout = layout
        self.density = pattern.density()
        with self.figure.batch_update():
            _draw(self.figure, pattern, layout)
        self.summary.value = (
            f"<b>{pattern.name}</b>: {self.density:.1%} of the {self.n}² pairs allowed; "
            f"{layout.visited_tiles} of {layout.blocks**2} tiles visited "
            f"({layout.full_tiles} full, {layout.partial_tiles} partial) = "
            f"{layout.computed_fraction():.1%} of the dense work."
        )

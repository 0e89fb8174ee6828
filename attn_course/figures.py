"""The course's figure conventions, in one place, and a check that a figure's axes fit its data.

Every figure of the course is laid out by :func:`style`:

* a title, left-aligned at the top, wrapped to the figure's width (a plotly title never
  wraps by itself: a long one is cut at the figure's edge), with a top margin that grows
  with its lines and makes room for subplot titles;
* the legend to the right of the plot area, outside it, so that it never covers tick
  labels, axis titles or data (plotly widens the right margin to fit it);
* axes that grow their margins to fit their tick labels and titles.

Axis titles, with their units, stay with each figure's own code.

:func:`vline` draws a labelled vertical line that is right on log axes too: plotly's
``add_vline(..., annotation_text=...)`` puts the label at ``x`` in *log10 units* on a log
axis (shapes take data values there, annotations take log10 values), so a line at
n = 65 got a label at n = 10⁶⁵ and an x axis stretched to 10⁸⁸.

:func:`format_table` prints rows of results (dicts with one key per column, the keys
naming their units) as an aligned plain-text table, for the cells that show numbers rather
than a picture.

:func:`axis_problems` finds that kind of mistake in any figure, without a browser: it
computes each axis's data extent from the traces and reports shapes and annotations far
outside it, explicit ranges that miss data or reach far beyond it, and data a log axis
cannot show. :func:`layout_problems` reports figures that break the conventions above.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

import plotly.graph_objects as go

__all__ = [
    "DEFAULT_WIDTH",
    "LEGEND_RIGHT",
    "axis_problems",
    "figure_problems",
    "format_table",
    "layout_problems",
    "style",
    "vline",
    "wrap_title",
]

# The width assumed for wrapping the title of a figure that sets none (a FigureWidget fills
# its cell, about 900-1000 px in JupyterLab at a 1400 px wide window; assume less).
DEFAULT_WIDTH = 700
TITLE_FONT_PX = 17  # plotly's default title size (1.2 x 14 px)
# Average width of a character of plotly's default font (Open Sans), in ems, a little
# generous so that a wrapped line fits.
_CHAR_EM = 0.56
_LINE_PX = 24  # one title line
_SUBPLOT_TITLE_PX = 26  # subplot titles sit in the top margin, above the plot area
LEGEND_RIGHT = {
    "orientation": "v",
    "x": 1.02,
    "xanchor": "left",
    "y": 1.0,
    "yanchor": "top",
    "xref": "paper",
    "yref": "paper",
}
_MARGIN = {"l": 70, "r": 20, "b": 60}

_TAG = re.compile(r"<[^>]+>")


def _visible_length(text: str) -> int:
    return len(_TAG.sub("", text))


def _wrap_line(line: str, max_chars: int) -> list[str]:
    """Greedy word wrap of one line; a line wholly inside <sub>...</sub> stays so."""
    sub = line.startswith("<sub>") and line.endswith("</sub>")
    inner = line[5:-6] if sub else line
    limit = int(max_chars / 0.8) if sub else max_chars  # <sub> text is smaller
    lines: list[str] = []
    current = ""
    for word in inner.split(" "):
        candidate = f"{current} {word}" if current else word
        if current and _visible_length(candidate) > limit:
            lines.append(current)
            current = word
        else:
            current = candidate
    lines.append(current)
    return [f"<sub>{part}</sub>" for part in lines] if sub else lines


def wrap_title(text: str, width_px: float, font_px: float = TITLE_FONT_PX) -> str:
    """``text`` with ``<br>`` breaks so that each line fits ``width_px``.

    Existing ``<br>`` breaks are kept; words are never split.
    """
    max_chars = max(10, int(width_px / (_CHAR_EM * font_px)))
    lines = re.split(r"<br\s*/?>", text)
    return "<br>".join(part for line in lines for part in _wrap_line(line, max_chars))


def title_lines(text: str) -> int:
    return len(re.split(r"<br\s*/?>", text)) if text else 0


def _has_subplot_titles(figure: go.Figure) -> bool:
    return any(
        a.yref == "paper" and a.y is not None and a.y >= 1 for a in figure.layout.annotations or ()
    )


def style(
    figure: go.Figure,
    title: str | None = None,
    *,
    width: int | None = None,
    height: int | None = None,
    title_lines_reserved: int | None = None,
) -> go.Figure:
    """Lay ``figure`` out by the course's conventions (see the module docstring); returns it.

    ``title`` replaces the figure's title (else its own is wrapped); ``width`` and ``height``
    are the figure's size before the title's extra lines (``height`` grows by one line per
    line of title beyond the first, so the plot area keeps its size); ``width`` None keeps
    the figure's own, or lets it fill its cell. ``title_lines_reserved`` keeps room for that
    many title lines, for a figure whose title changes as it is used (an explorer's).
    """
    layout = figure.layout
    width = width if width is not None else layout.width
    height = height if height is not None else layout.height
    text = title if title is not None else (layout.title.text or "")
    text = wrap_title(text, (width or DEFAULT_WIDTH) - 40)
    lines = max(title_lines(text), title_lines_reserved or 0, 1)
    top = 16 + _LINE_PX * lines + (_SUBPLOT_TITLE_PX if _has_subplot_titles(figure) else 8)
    figure.update_layout(
        title={
            "text": text,
            "x": 0.01,
            "xref": "container",
            "xanchor": "left",
            "y": 1.0,
            "yref": "container",
            "yanchor": "top",
            "pad": {"t": 12, "l": 6},
        },
        legend=LEGEND_RIGHT,
        margin={**_MARGIN, "t": top},
    )
    if width is not None:
        figure.update_layout(width=width)
    if height is not None:
        figure.update_layout(height=height + _LINE_PX * (lines - 1))
    figure.update_xaxes(automargin=True)
    figure.update_yaxes(automargin=True)
    return figure


def vline(
    figure: go.Figure,
    x: float,
    text: str,
    *,
    row: int | None = None,
    col: int | None = None,
    dash: str = "solid",
    color: str = "grey",
    label_y: float = 1.0,
) -> go.Figure:
    """A vertical line at data value ``x`` across a (sub)plot, labelled ``text``.

    Right on log x axes too (the label's x is log10(x) there, the line's x is x), so the x
    axis's type must be set before the call. ``label_y`` is the label's height as a fraction
    of the plot (stagger it for lines close together).
    """
    grid = {"row": row, "col": col} if row is not None else {}
    figure.add_vline(x=x, line_dash=dash, line_color=color, **grid)
    shape = figure.layout.shapes[-1]
    axis = _axis(figure.layout, shape.xref or "x")
    log = axis is not None and axis.type == "log"
    figure.add_annotation(
        x=math.log10(x) if log else x,
        xref=shape.xref,
        y=label_y,
        yref=shape.yref,
        text=text,
        showarrow=False,
        xanchor="left",
        yanchor="top",
        bgcolor="rgba(255,255,255,0.7)",
    )
    return figure


# --- the check -------------------------------------------------------------------------------


def _axis(layout: go.Layout, ref: str) -> Any:
    """The layout axis of a trace/shape reference such as "x", "y2"; None if it has none."""
    match = re.fullmatch(r"([xy])(\d*)", ref)
    if not match:
        return None
    name = f"{match[1]}axis{match[2] if match[2] not in ('', '1') else ''}"
    return layout[name] if name in layout else None


def _axis_ref(ref: str | None, letter: str) -> str | None:
    """"x2" for a data reference, None for "paper", "x domain" and the like."""
    ref = ref or letter
    return ref if re.fullmatch(rf"{letter}\d*", ref) else None


def _numbers(values: Iterable[Any] | None) -> tuple[list[float], bool]:
    """The finite numbers of ``values`` and whether every present value was a number."""
    numbers, numeric = [], True
    for value in values if values is not None else ():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            try:
                value = float(value)  # numpy scalars
            except (TypeError, ValueError):
                numeric = False
                continue
        if math.isfinite(value):
            numbers.append(float(value))
    return numbers, numeric


class _Extent:
    """What the traces put on one axis."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.categorical = False

    def add(self, values: Iterable[Any] | None) -> None:
        numbers, numeric = _numbers(values)
        self.values += numbers
        self.categorical |= not numeric


def _heatmap_cells(trace: Any) -> tuple[int, int]:
    z = trace.z
    rows = len(z) if z is not None else 0
    cols = max((len(row) for row in z), default=0) if rows else 0
    return rows, cols


def _extents(figure: go.Figure) -> dict[str, _Extent]:
    extents: dict[str, _Extent] = {}
    stacked = figure.layout.barmode in ("stack", "relative")
    stacks: dict[tuple[str, Any], float] = {}
    for trace in figure.data:
        if not hasattr(trace, "xaxis") or trace.visible is False:
            continue  # not on cartesian axes (pie, table, ...)
        x_ref, y_ref = trace.xaxis or "x", trace.yaxis or "y"
        ex = extents.setdefault(x_ref, _Extent())
        ey = extents.setdefault(y_ref, _Extent())
        if trace.type == "heatmap":
            rows, cols = _heatmap_cells(trace)
            if trace.x is not None:
                ex.add(trace.x)
            elif cols:
                ex.add([-0.5, cols - 0.5])
            if trace.y is not None:
                ey.add(trace.y)
            elif rows:
                ey.add([-0.5, rows - 0.5])
            continue
        xs, ys = trace.x, trace.y
        if trace.type == "bar" and (trace.orientation or "v") == "v" and ys is not None:
            ey.add([0])
            if stacked and xs is not None:
                for x, y in zip(xs, ys, strict=False):
                    if isinstance(y, (int, float)) and math.isfinite(y):
                        stacks[y_ref, x] = stacks.get((y_ref, x), 0.0) + y
                        ey.add([stacks[y_ref, x]])
        if trace.type in ("scatter", "scattergl", "bar", "box", "histogram", "violin"):
            ex.add(xs)
            ey.add(ys)
    return extents


def _to_data(value: float, log: bool) -> float:
    """An annotation or a range value in the axis's data units (log axes: 10**value)."""
    return 10.0**value if log else value


def axis_problems(figure: go.Figure, decades: float = 1.0, spans: float = 5.0) -> list[str]:
    """What in ``figure`` lies absurdly far from its data; ``[]`` when nothing does.

    For each cartesian axis with numeric data, the data extent [lo, hi] comes from its
    traces (scatter and bar points, heatmap cells; stacked bars summed). Reported:

    * a log axis with data <= 0 (plotly drops those points);
    * a shape (data values) or annotation (log10 values on a log axis) referring to the
      axis at a position outside [lo / 10**decades, hi * 10**decades] on a log axis,
      [lo - spans * s, hi + spans * s] on a linear one, with s = max(hi - lo, |lo|, |hi|);
    * an explicit ``range`` (log10 values on a log axis) that leaves data out, or reaches
      outside those same bounds.

    Categorical axes, and axes without numeric data, are not checked.
    """
    layout = figure.layout
    problems: list[str] = []
    extents = _extents(figure)
    for ref, extent in sorted(extents.items()):
        axis = _axis(layout, ref)
        kind = axis.type if axis is not None else None
        if extent.categorical or kind in ("category", "multicategory", "date") or not extent.values:
            continue
        log = kind == "log"
        name = f"{ref}axis"
        values = extent.values
        if log:
            bad = [v for v in values if v <= 0]
            if bad:
                problems.append(f"{name} is log but its data hold {len(bad)} values <= 0")
            values = [v for v in values if v > 0]
            if not values:
                continue
        lo, hi = min(values), max(values)
        if log:
            low, high = lo / 10**decades, hi * 10**decades
        else:
            scale = max(hi - lo, abs(lo), abs(hi)) or 1.0
            low, high = lo - spans * scale, hi + spans * scale

        def outside(value: float, low: float = low, high: float = high) -> bool:
            return not (low <= value <= high)

        for index, shape in enumerate(layout.shapes or ()):
            letter = ref[0]
            if _axis_ref(shape[f"{letter}ref"], letter) != ref:
                continue
            far = [
                f"{key} = {shape[key]:g}"
                for key in (f"{letter}0", f"{letter}1")
                if isinstance(shape[key], (int, float)) and outside(shape[key])
            ]
            if far:
                problems.append(
                    f"shape {index} has {', '.join(far)}, far outside {name}'s data "
                    f"[{lo:g}, {hi:g}]"
                )
        for index, note in enumerate(layout.annotations or ()):
            letter = ref[0]
            if _axis_ref(note[f"{letter}ref"], letter) != ref:
                continue
            value = note[letter]
            if isinstance(value, (int, float)) and outside(_to_data(value, log)):
                where = f"{letter} = {value:g}" + (
                    f" (log10 units: {_to_data(value, log):.3g})" if log else ""
                )
                problems.append(
                    f"annotation {index} ({note.text!r}) has {where}, far outside "
                    f"{name}'s data [{lo:g}, {hi:g}]"
                )
        explicit = axis.range if axis is not None else None
        if explicit is not None and axis.autorange is not True and None not in explicit:
            r0, r1 = sorted(_to_data(v, log) for v in explicit)
            tolerance = 1e-9 * max(abs(lo), abs(hi), 1e-300)
            if r0 > lo + tolerance or r1 < hi - tolerance:
                problems.append(
                    f"{name}.range {list(explicit)} leaves out data in [{lo:g}, {hi:g}]"
                )
            if outside(r0) or outside(r1):
                problems.append(
                    f"{name}.range {list(explicit)} reaches far beyond its data [{lo:g}, {hi:g}]"
                )
    return problems


def layout_problems(figure: go.Figure) -> list[str]:
    """Where ``figure`` breaks the conventions :func:`style` sets; ``[]`` when nowhere.

    A title; a legend, if one is shown, outside the plot area to the right or above it (a
    legend inside the plot covers data, one below it covers the x axis's tick labels and
    title); a title on every axis that shows numeric or categorical data with tick labels
    (an axis whose labels another one shares, as in stacked subplots, may go without).
    """
    layout = figure.layout
    problems: list[str] = []
    if not (layout.title.text or "").strip():
        problems.append("the figure has no title")
    legend_entries = [
        t for t in figure.data if t.showlegend is not False and (t.name or t.showlegend)
    ]
    shows_legend = layout.showlegend is not False and (
        len(legend_entries) > 1 or (legend_entries and layout.showlegend)
    )
    if shows_legend:
        legend = layout.legend
        horizontal = legend.orientation == "h"
        # plotly's defaults: a vertical legend right of the plot, a horizontal one below it.
        x = legend.x if legend.x is not None else (0.0 if horizontal else 1.02)
        y = legend.y if legend.y is not None else (-0.1 if horizontal else 1.0)
        x_ref = legend.xref or "paper"
        y_ref = legend.yref or "paper"
        anchor_x = legend.xanchor or "left"
        anchor_y = legend.yanchor or "auto"
        right = x_ref == "paper" and x >= 1 and anchor_x in ("left", "auto")
        above = y_ref == "paper" and y >= 1 and anchor_y in ("bottom", "auto")
        if not (right or above):
            problems.append(
                f"the legend (x = {x}, y = {y}) is neither right of nor above the plot area"
            )
    titled = {ref: _axis(layout, ref) for ref in _extents(figure)}
    for ref, axis in sorted(titled.items()):
        if axis is None:
            problems.append(f"{ref}axis has data but no title")
            continue
        if axis.showticklabels is False or axis.visible is False:
            continue
        if not (axis.title.text or "").strip() and not _shares_title(layout, ref, axis):
            problems.append(f"{ref}axis has data but no title")
    return problems


def _shares_title(layout: go.Layout, ref: str, axis: Any) -> bool:
    """An x axis matched to (or shared with) a titled one, as in stacked subplots."""
    partner = axis.matches
    if partner and (other := _axis(layout, partner)) is not None:
        if (other.title.text or "").strip():
            return True
    for name in layout:
        if name.startswith(f"{ref[0]}axis"):
            other = layout[name]
            wanted = ref if ref[1:] else ref[0]
            if other.matches == wanted and (other.title.text or "").strip():
                return True
    return False


def figure_problems(figure: go.Figure) -> list[str]:
    """:func:`axis_problems` and :func:`layout_problems` together."""
    return axis_problems(figure) + layout_problems(figure)



# --- plain-text tables --------------------------------------------------------------------


def format_table(
    rows: list[dict[str, Any]], *, digits: int = 4, columns: list[str] | None = None
) -> str:
    """Rows of results as an aligned text table: one column per key of the first row, or
    per name in ``columns`` (a selection, in that order).

    Floats print with ``digits`` significant digits, in fixed point with thousands
    separators between 10⁻³ and 10⁷ (``12,346``, ``1.235``) and in scientific notation
    outside (``2.760e+08``); everything else with ``str``. Each column is as wide as its
    widest cell, numbers right-aligned.
    """
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise ValueError("rows must be a non-empty list of dicts (one key per column)")
    if not isinstance(digits, int) or isinstance(digits, bool) or digits < 1:
        raise ValueError(f"digits must be an int >= 1, got {digits!r}")
    keys = list(rows[0]) if columns is None else list(columns)
    missing = [i for i, r in enumerate(rows) if not set(keys) <= set(r)
               or (columns is None and list(r) != keys)]  # fmt: skip
    if missing or not keys:
        raise ValueError(f"every row needs the keys (columns) {keys}; rows {missing} differ")

    def cell(value: Any) -> str:
        if not isinstance(value, float):
            return str(value)
        if value == 0 or not math.isfinite(value):
            return str(value)
        if 1e-3 <= abs(value) < 1e7:
            decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
            return f"{value:,.{decimals}f}"
        return f"{value:.{digits - 1}e}"

    cells = [[cell(r[k]) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    numeric = [all(isinstance(r[k], int | float) for r in rows) for k in keys]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric, strict=True)).rstrip()

    return "\n".join([line(keys), line(["-" * w for w in widths]), *map(line, cells)])

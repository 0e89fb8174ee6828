"""The course's screen framework: control factories, the calculator base, live or static.

Every screen of the course is built from these pieces:

* :func:`choice_slider`, :func:`int_slider`, :func:`dropdown`, :func:`checkbox`,
  :func:`text_box` — the controls, all with the same label width and layout, so the
  calculators line up;
* :func:`log_grid`, :func:`powers_of_two`, :func:`divisors` — the values they offer;
* :func:`discrete_colourscale`, :func:`add_state_legend` — a plotly colour scale of flat
  bands and its legend, for heatmaps whose cells are states (0, 1, 2, ...), not numbers;
* :class:`Calculator` — the abstract base of every calculator: controls, a
  ``FigureWidget`` updated in place, an HTML read-out, ``set()``/``values()``/``trace()``;
* :func:`live_or_static` — how every calculator and explorer displays: the live widget in
  JupyterLab, a frozen :class:`StaticSnapshot` (figures at the default settings, plus the
  note of :func:`static_note_html` naming the controls) while the static HTML edition is
  built, where no kernel could react to the controls.

A calculator has the same small interface everywhere, so it can be driven (and tested)
without a browser::

    calc = FlopsCalculator()
    calc.controls["d_model"].value = 8192   # any control; the figure updates in place
    calc.trace("crossover_ffn").x           # traces are found by a stable key
    calc.widget                             # the box to display in a notebook

``controls`` is a dict of widgets, ``figure`` a ``plotly.graph_objects.FigureWidget``
(updated in place, no re-render), ``readout`` an HTML widget with the numbers at the
selected point, ``error`` the message of the last rejected input (or "").
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

from attn_course.config import static_site
from attn_course.figures import style

__all__ = [
    "CUSTOM",
    "Calculator",
    "add_state_legend",
    "StaticSnapshot",
    "checkbox",
    "choice_slider",
    "discrete_colourscale",
    "divisors",
    "dropdown",
    "int_slider",
    "live_or_static",
    "log_grid",
    "powers_of_two",
    "static_note_html",
    "text_box",
]

# The model-preset dropdown's entry for "the shape controls no longer match a preset".
CUSTOM = "custom"
_STYLE = {"description_width": "110px"}
_WIDE = widgets.Layout(width="330px")


# --- values the controls offer ----------------------------------------------------------


def log_grid(low: int, high: int, points: int = 61) -> list[int]:
    """About ``points`` integers spaced evenly on a log axis from ``low`` to ``high``."""
    values = np.unique(np.round(np.geomspace(low, high, points)).astype(int))
    return [int(v) for v in values]


def powers_of_two(low_exponent: int, high_exponent: int) -> list[int]:
    """``[2**low, ..., 2**high]``."""
    return [2**e for e in range(low_exponent, high_exponent + 1)]


def divisors(value: int) -> list[int]:
    """Every k in 1..value that divides ``value`` (e.g. the KV-head counts a model allows)."""
    return [k for k in range(1, value + 1) if value % k == 0]


def discrete_colourscale(colours: Sequence[str]) -> list[list[Any]]:
    """A plotly colour scale of ``len(colours)`` flat bands: state i is drawn in colours[i].

    Use it with ``zmin=-0.5, zmax=len(colours) - 0.5`` (or the equivalent) so that the
    integer states fall in the middle of their bands.
    """
    scale = []
    for index, colour in enumerate(colours):
        scale += [[index / len(colours), colour], [(index + 1) / len(colours), colour]]
    return scale


def add_state_legend(
    figure: go.Figure, colours: Sequence[str], names: Sequence[str], **subplot: Any
) -> None:
    """One legend entry per state: a square of its colour (a heatmap has no legend of its own).

    ``subplot`` places the entries (``row=1, col=2``) in a figure of several panels.
    """
    for colour, name in zip(colours, names, strict=True):
        figure.add_scatter(
            x=[None],
            y=[None],
            mode="markers",
            name=name,
            marker={"size": 12, "symbol": "square", "color": colour,
                    "line": {"width": 1, "color": "#555"}},
            **subplot,
        )  # fmt: skip


# --- controls ---------------------------------------------------------------------------


def choice_slider(description: str, options: Sequence[int], value: int) -> widgets.Widget:
    """A slider over a fixed list of sizes (e.g. powers of two), labelled with commas."""
    return widgets.SelectionSlider(
        description=description,
        options=[(f"{v:,}", v) for v in options],
        value=value,
        continuous_update=False,
        style=_STYLE,
        layout=_WIDE,
    )


def int_slider(description: str, value: int, low: int, high: int, step: int = 1) -> Any:
    """An integer slider from ``low`` to ``high``; it reports only when released."""
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


def dropdown(description: str, options: Sequence[Any], value: Any) -> Any:
    """A dropdown over ``options`` (values, or (label, value) pairs)."""
    return widgets.Dropdown(
        description=description, options=list(options), value=value, style=_STYLE, layout=_WIDE
    )


def text_box(description: str, value: str = "", placeholder: str = "") -> Any:
    """A one-line text field (a path, a name); it reports on Enter or when it loses focus."""
    return widgets.Text(
        description=description, value=value, placeholder=placeholder,
        continuous_update=False, style=_STYLE, layout=_WIDE,
    )  # fmt: skip


def checkbox(description: str, value: bool) -> Any:
    """A checkbox with its label beside it (no indent)."""
    return widgets.Checkbox(description=description, value=value, indent=False)


# --- live in JupyterLab, frozen on a static page -----------------------------------------


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


# --- the calculator base ------------------------------------------------------------------


class Calculator(ABC):
    """Shared wiring: build controls and figure, observe every control, update in place.

    A subclass says what is on screen (the ``_make_*`` and ``_style_axes`` hooks) and how
    to draw it (``_redraw``); a model-preset dropdown named ``model`` is optional
    (``_model_values`` says which controls a preset sets).
    """

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

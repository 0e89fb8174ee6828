"""Figures of benchmark records (plotly): kept apart so that measuring never imports plotly.

:func:`benchmark_figure` draws any suite's record (flash, linear, sparse), one line per
implementation, on log-log axes, titled with where and when it was recorded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from attn_course.bench.records import measured_points, record_label
from attn_course.figures import style
from attn_course.validate import canonical_dtype

__all__ = ["benchmark_figure"]

_METRICS = {
    "ms": ("time per call (ms)", "Time"),
    "tflops": ("throughput (TFLOP/s)", "Throughput"),
    "peak_bytes": ("peak memory added by the call (bytes)", "Peak memory"),
}


def benchmark_figure(
    records: dict[str, Any] | Sequence[dict[str, Any]],
    metric: str = "ms",
    *,
    head_dim: int | None = None,
    dtype: str | None = None,
    causal: bool | None = None,
    backward: bool | None = None,
    implementations: Sequence[str] | None = None,
) -> go.Figure:
    """Log-log plot of ``metric`` ("ms", "tflops" or "peak_bytes") against n.

    One line per implementation (per record, when several records are given). The other
    configuration values are fixed by the keyword filters; each left as None takes the
    value of the record's first result. Only measured ("ok") results are drawn. The title
    names the device and the date of every record: "recorded on <device>, <date>".
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {sorted(_METRICS)}, got {metric!r}")
    records = [records] if isinstance(records, dict) else list(records)
    if not records or not any(r["results"] for r in records):
        raise ValueError("records must hold at least one record with results")
    first = next(r["results"][0]["config"] for r in records if r["results"])
    chosen = {
        "head_dim": head_dim,
        "dtype": None if dtype is None else canonical_dtype(dtype),
        "causal": causal,
        "mode": None if backward is None else ("fwd+bwd" if backward else "fwd"),
    }
    # Records of other suites (linear, sparse) may lack some of these fields.
    wanted = {key: first[key] if value is None else value for key, value in chosen.items()
              if key in first}  # fmt: skip
    y_title, what = _METRICS[metric]
    figure = go.Figure()
    drawn: list[tuple[list[tuple[int, float]], str]] = []  # points and name of each line
    for record in records:
        suffix = f" — {record['device']['name']}" if len(records) > 1 else ""
        labels = {r["implementation"]: r.get("label", r["implementation"])
                  for r in record["results"]}  # fmt: skip
        for name in implementations or labels:
            points = measured_points(record, name, metric, wanted)
            if not points:
                continue
            label = labels.get(name, name) + suffix
            index = len(drawn)
            symbol, dash = _SYMBOLS[index % len(_SYMBOLS)], _DASHES[index % len(_DASHES)]
            marker: dict[str, Any] = {"symbol": symbol, "size": 8}
            same = next((other for seen, other in drawn if _coincide(seen, points)), None)
            if same is not None:
                # Drawn exactly over an earlier line (SDPA's default is often its flash
                # backend): say so, and draw it as large open markers and a dashed line
                # around the other, so that both stay visible.
                label += f" (same as {same.split(' (')[0]})"  # short: legends squeeze plots
                marker = {"symbol": f"{symbol}-open", "size": 14, "line": {"width": 2}}
                dash = "dash"
            figure.add_scatter(
                x=[n for n, _ in points], y=[y for _, y in points], mode="lines+markers",
                name=label, marker=marker, line={"dash": dash},
            )  # fmt: skip
            drawn.append((points, labels.get(name, name) + suffix))
    describe = {
        "dtype": str,
        "head_dim": lambda value: f"head_dim {value}",
        "causal": lambda value: "causal" if value else "no mask",
        "mode": str,
    }
    setting = ", ".join(describe[key](value) for key, value in wanted.items())
    where = "; ".join(record_label(r) for r in records)
    figure.update_layout(
        xaxis={"title": {"text": "sequence length n (tokens)"}, "type": "log"},
        yaxis={"title": {"text": y_title}, "type": "log"},
    )
    title = f"{what} of attention vs sequence length ({setting})<br><sub>{where}</sub>"
    return style(figure, title, width=900, height=520)


_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "cross", "star")
_DASHES = ("solid", "dot", "dashdot", "longdash", "solid", "dot", "dashdot")


def _coincide(a: Sequence[tuple[int, float]], b: Sequence[tuple[int, float]]) -> bool:
    """Same n and values within 0.5 %: on a log axis the two lines would draw as one."""
    return len(a) == len(b) and all(
        na == nb and math.isclose(ya, yb, rel_tol=5e-3)
        for (na, ya), (nb, yb) in zip(a, b, strict=True)
    )

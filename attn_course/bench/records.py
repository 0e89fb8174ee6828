"""What a benchmark record is, and reading records back: the schema of ``records/README.md``.

A record is a JSON object: provenance (device, date, versions, command, how things were
measured; written by :func:`attn_course.bench.harness.new_record`) and ``results``, one
:class:`BenchResult` per (configuration, implementation). Everything here works on records
as plain dicts, so a record committed years ago, or written by another suite, reads the
same way; nothing here needs torch's devices, the kernels or plotly.
"""

from __future__ import annotations

import glob
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from attn_course.course import COURSE_ROOT
from attn_course.measure import loglog_slope

__all__ = [
    "CHECKED",
    "FAILED",
    "OK",
    "SCHEMA",
    "UNAVAILABLE",
    "BenchResult",
    "default_records_dir",
    "load_records",
    "measured_points",
    "ratios",
    "record_label",
    "results_table",
    "scaling_exponent",
    "write_record",
]

SCHEMA = "attn_course.bench/1"

# Statuses of one result.
OK = "ok"  # timed
CHECKED = "checked, not timed"  # ran once for correctness (the interpreter)
UNAVAILABLE = "unavailable"  # cannot run this configuration here; `reason` says why
FAILED = "failed"  # ran and raised (out of memory, ...); `reason` says what


@dataclass
class BenchResult:
    """One implementation on one configuration, as the record stores it. Units: ms, TFLOP/s, bytes.

    label: the suite's human-readable name of the implementation (legends use it).
    config: the configuration's record fields (``BenchConfig.to_dict()``, plus any fields
    of the suite's own, such as the sparse suite's window and tiles).
    status: :data:`OK`, :data:`CHECKED`, :data:`UNAVAILABLE` or :data:`FAILED`; ``reason``
    says why for all but OK. max_abs_error: largest |out − reference| against float64
    (None where no reference was computed); grad_max_abs_error: the same over dq, dk, dv.
    """

    implementation: str
    label: str
    config: dict[str, Any]
    status: str = OK
    ms: float | None = None
    tflops: float | None = None
    peak_bytes: int | None = None
    max_abs_error: float | None = None
    grad_max_abs_error: float | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- records on disk --------------------------------------------------------------------


def write_record(record: dict[str, Any], path: str | Path) -> Path:
    """Write ``record`` as indented JSON to ``path`` (folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def default_records_dir() -> Path:
    """The course's ``records/`` folder (next to the package)."""
    return COURSE_ROOT / "records"


def load_records(pattern: str | Path | None = None) -> list[dict[str, Any]]:
    """Read every record whose path matches the glob ``pattern``, oldest date first.

    ``pattern`` defaults to ``records/*.json`` of this checkout. Files that are not
    benchmark records of this schema are skipped; an empty list means none matched.
    """
    pattern = str(pattern or default_records_dir() / "*.json")
    records = []
    for name in sorted(glob.glob(pattern)):
        with open(name) as file:
            try:
                record = json.load(file)
            except json.JSONDecodeError:
                continue
        if isinstance(record, dict) and record.get("schema") == SCHEMA:
            record["path"] = name
            records.append(record)
    return sorted(records, key=lambda r: r["date"])


# --- reading a record -------------------------------------------------------------------


def record_label(record: dict[str, Any]) -> str:
    """ "recorded on <device>, <date>": what every figure of a record says."""
    return f"recorded on {record['device']['name']}, {record['date'][:10]}"


def results_table(record: dict[str, Any]) -> str:
    """A fixed-width text table of a record's results (ms, TFLOP/s, MiB, max error)."""
    header = (
        f"{'n':>6} {'d':>4} {'dtype':>8} {'causal':>6} {'mode':>7} | {'implementation':<16}|"
        f" {'ms':>9} {'TFLOP/s':>8} {'peak MiB':>9} {'max err':>8} | note"
    )
    lines = [header, "-" * len(header)]
    for r in record["results"]:
        c = r["config"]

        def number(value: float | None, spec: str) -> str:
            return "—" if value is None else format(value, spec)

        peak = None if r["peak_bytes"] is None else r["peak_bytes"] / 2**20
        note = "" if r["status"] == OK else f"{r['status']}: {r['reason']}"[:70]
        lines.append(
            f"{c['n']:>6} {c['head_dim']:>4} {c['dtype']:>8} {c['causal']!s:>6} {c['mode']:>7} | "
            f"{r['implementation']:<16}| {number(r['ms'], '9.3f'):>9} "
            f"{number(r['tflops'], '8.3f'):>8} {number(peak, '9.2f'):>9} "
            f"{number(r['max_abs_error'], '8.1e'):>8} | {note}"
        )
    return "\n".join(lines)


def measured_points(
    record: dict[str, Any], implementation: str, metric: str, wanted: dict[str, Any]
) -> list[tuple[int, float]]:
    """Sorted (n, value) of one implementation's measured ("ok") results whose config
    matches every field of ``wanted``."""
    return sorted(
        (r["config"]["n"], r[metric])
        for r in record["results"]
        if r["implementation"] == implementation
        and r["status"] == OK
        and r[metric]
        and all(r["config"][key] == value for key, value in wanted.items())
    )


def scaling_exponent(
    record: dict[str, Any], implementation: str, metric: str = "ms", **config: Any
) -> float:
    """Fitted p in metric ∝ n^p (:func:`attn_course.measure.loglog_slope`) over a record.

    ``config`` fixes configuration fields (``causal=False``, ``mode="fwd"``, ...);
    the points must then differ only in n.
    """
    points = measured_points(record, implementation, metric, config)
    if len(points) < 2:
        raise ValueError(f"{implementation} has {len(points)} measured points matching {config}")
    return loglog_slope([n for n, _ in points], [y for _, y in points])


def ratios(
    record: dict[str, Any],
    baseline: str = "naive",
    contender: str = "sdpa_flash",
    metric: str = "ms",
) -> list[dict[str, Any]]:
    """baseline / contender for every configuration both measured: a speed-up for "ms",
    a memory saving for "peak_bytes" (above 1: the contender needs less)."""
    measured: dict[tuple, dict[str, float]] = {}
    for r in record["results"]:
        if r["status"] == OK and r[metric] and r["implementation"] in (baseline, contender):
            key = tuple(sorted(r["config"].items()))
            measured.setdefault(key, {})[r["implementation"]] = r[metric]
    rows = []
    for key, values in measured.items():
        if len(values) == 2:
            rows.append({**dict(key), "ratio": values[baseline] / values[contender]})
    return sorted(rows, key=lambda row: (row["dtype"], row["mode"], row["causal"], row["n"]))

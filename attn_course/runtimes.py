"""How long each lesson takes to run, in one place.

The notebooks' headers, their "Run time" cell comments and the instructor guide's table
all quote the sentences these functions build; ``tests/test_runtimes.py`` checks that
they agree, so a new measurement is entered here once and copied from
``python -m attn_course.runtimes`` (which prints every sentence and the table).

What a run time depends on: the number of cores, what else runs on the machine, and the
size knob ``ATTN_COURSE_SIZE`` (``small`` runs every cell on tiny inputs). The times
below were measured on an idle machine; a learner's runs on a shared 2-core machine took
2 to 4 times as long, so the course states a range from the idle time to
:data:`SHARED_SLOWDOWN` times it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "MEASURED_ON",
    "REPORTED_SLOWDOWN",
    "RUN_TIMES",
    "SHARED_SLOWDOWN",
    "RunTime",
    "cell_duration",
    "cell_run_time",
    "format_duration",
    "header_run_time",
    "run_time_table",
    "size_knob",
]

MEASURED_ON = (
    "a 2-core AMD EPYC cloud VM (24 GiB RAM, torch 2.13 CPU build, Triton 3.9 in interpreter "
    "mode), idle, with `jupyter nbconvert --execute`, 2026-11-23"
)
MEASURED_DATE = "2026-11-23"
# A learner's runs on a shared 2-core machine took 2-4x the quiet machine's times.
REPORTED_SLOWDOWN = (2, 4)
SHARED_SLOWDOWN = REPORTED_SLOWDOWN[1]  # the busy end of every stated range


@dataclass(frozen=True)
class RunTime:
    """One lesson at full size on the CPU of :data:`MEASURED_ON`.

    idle_s:  the whole notebook, seconds (the typical of the runs)
    runs:    what the idle time summarises, e.g. "43–51 s in three runs" ("" if one run)
    ram:     free RAM the full size needs, as the guide's table shows it
    small_s: the whole notebook with ``ATTN_COURSE_SIZE=small``, seconds (None: not timed)
    cells_s: the cells that carry a "# Run time:" comment, in order, seconds
    """

    title: str
    idle_s: float
    runs: str
    ram: str
    small_s: float | None
    cells_s: tuple[float, ...] = ()


RUN_TIMES: dict[str, RunTime] = {
    "00_start_here": RunTime("start here", 5, "", "—", None),
    "01_score_matrix": RunTime("score matrix", 45, "43–51 s in three runs", "≈ 3 GB", 15, (31,)),
    "02_cost_arithmetic": RunTime("cost arithmetic", 13, "", "< 1 GB", None),
    "03_tiling": RunTime("tiling", 30, "25–50 s in three runs", "≈ 2.5 GB", 25, (10,)),
    "04_flash_attention": RunTime("FlashAttention in Triton", 80, "", "≈ 2 GB", None, (23, 20)),
    "05_linear_attention": RunTime(
        "linear attention", 45, "43–48 s in three runs", "≈ 1.1 GB", 10, (29,)
    ),
    "06_sparse_attention": RunTime(
        "sparse attention",
        30,
        "20–55 s in three runs, some with other jobs running",
        "≈ 1 GB",
        30,
        (8,),
    ),
    # 07 was timed before its timing cells took more repeats; on 2026-12-02 the new version ran
    # in 63 s on the same kind of VM with other programs running (load average ≈ 1).
    "07_kv_cache": RunTime("KV cache", 37, "", "< 0.5 GB", 10, (11, 11)),
}


def format_duration(seconds: float) -> str:
    """``"45 s"`` below 90 s (to 5 s above 20 s), else half minutes: ``"2.5 min"``, ``"5 min"``."""
    if seconds < 0:
        raise ValueError(f"seconds must be >= 0, got {seconds}")
    if seconds < 90:
        value = round(seconds) if seconds < 20 else 5 * round(seconds / 5)
        return f"{value:.0f} s"
    minutes = round(seconds / 60 * 2) / 2  # to the half minute
    return f"{minutes:g} min"


def _get(stem: str) -> RunTime:
    if stem not in RUN_TIMES:
        raise ValueError(f"no run time recorded for {stem!r}; known: {sorted(RUN_TIMES)}")
    return RUN_TIMES[stem]


def _cpu_range(seconds: float) -> str:
    return f"{format_duration(seconds)}–{format_duration(SHARED_SLOWDOWN * seconds)}"


def header_run_time(stem: str) -> str:
    """The run-time sentence at the top of lesson ``stem`` (one line, no line breaks)."""
    rt = _get(stem)
    runs = f", {rt.runs}" if rt.runs else ""
    return (
        f"CPU {_cpu_range(rt.idle_s)}: ≈ {format_duration(rt.idle_s)} on a quiet 2-core "
        f"machine ({MEASURED_DATE}{runs}), up to {SHARED_SLOWDOWN}× as long when other "
        "programs share its cores."
    )


def size_knob(stem: str) -> str:
    """The size-knob sentence at the top of lesson ``stem``: what the run time depends on."""
    rt = _get(stem)
    quick = f"in about {format_duration(rt.small_s)}" if rt.small_s is not None else "in seconds"
    return (
        "The run time depends on the number of cores, on what else the machine is doing, and "
        "on the size knob `ATTN_COURSE_SIZE`: with `small` (start the course with "
        "`ATTN_COURSE_SIZE=small make lab`, or run `%env ATTN_COURSE_SIZE=small` before the "
        f"first code cell) every cell runs on tiny inputs, {quick}; the text describes the "
        "full size."
    )


def cell_run_time(stem: str, index: int = 0) -> str:
    """The ``# Run time:`` comment of the ``index``-th timed cell of lesson ``stem``."""
    cells = _get(stem).cells_s
    if not 0 <= index < len(cells):
        raise ValueError(f"{stem} has {len(cells)} timed cells, got index {index}")
    seconds = cells[index]
    return (
        f"# Run time at full size: ≈ {format_duration(seconds)} on a quiet 2-core CPU, up to "
        f"{format_duration(SHARED_SLOWDOWN * seconds)} on a busy one ({MEASURED_DATE}); "
        "GPU: not measured."
    )


def cell_duration(stem: str, index: int = 0) -> str:
    """The same cell's range for prose: ``"≈ 31 s on a quiet 2-core CPU, up to 2 min on a
    busy one"``."""
    seconds = _get(stem).cells_s[index]
    return (
        f"≈ {format_duration(seconds)} on a quiet 2-core CPU, up to "
        f"{format_duration(SHARED_SLOWDOWN * seconds)} on a busy one"
    )


def run_time_table() -> str:
    """The instructor guide's table (Markdown), one row per lesson."""
    lines = [
        "| notebook | CPU, full size: quiet – busy | free RAM needed | `small` | GPU |",
        "|---|---|---|---|---|",
    ]
    for stem, rt in RUN_TIMES.items():
        small = "—" if rt.small_s is None else f"≈ {format_duration(rt.small_s)}"
        lines.append(
            f"| {stem[:2]} {rt.title} | {_cpu_range(rt.idle_s)} | {rt.ram} | {small} "
            "| not measured |"
        )
    return "\n".join(lines)


def main() -> int:
    for stem in RUN_TIMES:
        print(f"{stem}:\n  {header_run_time(stem)}\n  {size_knob(stem)}")
        for i in range(len(RUN_TIMES[stem].cells_s)):
            print(f"  {cell_run_time(stem, i)}")
    print()
    print(run_time_table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

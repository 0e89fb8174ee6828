"""How long each lesson takes to run: the sentences every notebook and guide quotes.

The measurements are in the lesson map (:data:`attn_course.course.LESSONS`, one
:class:`~attn_course.course.RunTime` each). The notebooks' headers, their "Run time" cell
comments and the instructor guide's table all quote the sentences these functions build;
``tests/test_runtimes.py`` checks that they agree, so a new measurement is entered in the
map once and copied from ``python -m attn_course.runtimes`` (which prints every sentence
and the table).

What a run time depends on: the number of cores, what else runs on the machine, and the
size knob ``ATTN_COURSE_SIZE`` (``small`` runs every cell on tiny inputs). The times
below were measured on an idle machine; a learner's runs on a shared 2-core machine took
2 to 4 times as long, so the course states a range from the idle time to
:data:`SHARED_SLOWDOWN` times it.
"""

from __future__ import annotations

from attn_course import course
from attn_course.course import RunTime

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


# The lessons' run times by slug, in course order, as the map had them at import.
RUN_TIMES: dict[str, RunTime] = {lesson.slug: lesson.run_time for lesson in course.LESSONS}


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
    return course.get_lesson(stem).run_time


def _cpu_range(seconds: float) -> str:
    return f"{format_duration(seconds)}–{format_duration(SHARED_SLOWDOWN * seconds)}"


def header_run_time(stem: str) -> str:
    """The run-time sentence at the top of lesson ``stem`` (one line, no line breaks)."""
    rt = _get(stem)
    runs = f", {rt.runs}" if rt.runs else ""
    return (
        f"CPU {_cpu_range(rt.idle_s)}: ≈ {format_duration(rt.idle_s)} on a quiet 2-core "
        f"machine ({rt.date or MEASURED_DATE}{runs}), up to {SHARED_SLOWDOWN}× as long when other "
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
    date = _get(stem).date or MEASURED_DATE
    return (
        f"# Run time at full size: ≈ {format_duration(seconds)} on a quiet 2-core CPU, up to "
        f"{format_duration(SHARED_SLOWDOWN * seconds)} on a busy one ({date}); "
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
    for lesson in course.LESSONS:
        rt = lesson.run_time
        small = "—" if rt.small_s is None else f"≈ {format_duration(rt.small_s)}"
        lines.append(
            f"| {lesson.slug[:2]} {lesson.title} | {_cpu_range(rt.idle_s)} | {rt.ram} | {small} "
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

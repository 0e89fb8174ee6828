"""The lesson map: the one place that says which lessons the course has, and what each is.

One :class:`Lesson` per notebook, in course order (:data:`LESSONS`): its slug (the stem of
its files, ``03_tiling``), title, the package modules it teaches, the module of its
exercise checks, its Triton kernel and benchmark suite if it has them, and its run time.
Everything else that lists lessons is generated from this map or checked against it: the
README's and the instructor guide's tables, notebook 00's map, each lesson's "Next" link,
the checks registry (:func:`attn_course.checks.topic_modules`), the per-lesson pytest
markers (``conftest.py``) and the test suite's lists of notebooks.

It also holds the two facts every tool shares: where the course is (:data:`COURSE_ROOT`)
and how a lesson's files are named (``NN_topic``: :func:`parse_stem`, :func:`lesson_stem`,
:func:`lesson_files`). The machinery of ``attn_course.classroom`` finds a course's files
on disk with that rule, so it works on any course folder (the tests build throw-away
ones); the tests check that the files of this course and the map agree.

This module imports nothing of the package: every other module may import it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "COURSE_ROOT",
    "LESSONS",
    "STEM_GLOB",
    "Lesson",
    "RunTime",
    "course_map_table",
    "get_lesson",
    "lesson_files",
    "lesson_paths",
    "lesson_stem",
    "link_to",
    "marker_name",
    "next_lesson",
    "parse_stem",
    "readme_table",
]

# The checkout this package lives in (attn_course/ is a folder of it). In an installed
# copy outside a checkout it holds no notebooks: the classroom tools say so where it matters.
COURSE_ROOT = Path(__file__).resolve().parent.parent

# --- the naming rule ---------------------------------------------------------------------

# Every lesson's files are named ``NN_topic``: two digits (its place in the course), an
# underscore, the topic in words joined by ``_``. ``STEM_GLOB`` is the same rule for
# glob() and make; a file it finds that parse_stem rejects is not a lesson.
STEM_GLOB = "[0-9][0-9]_*"
_STEM = re.compile(r"^(\d\d)_(\w+)$", re.ASCII)


def parse_stem(stem: str) -> tuple[int, str] | None:
    """``"03_tiling"`` -> ``(3, "tiling")``; None when ``stem`` is not ``NN_topic``."""
    match = _STEM.match(stem)
    return (int(match[1]), match[2]) if match else None


def lesson_stem(number: int, topic: str) -> str:
    """``(3, "tiling")`` -> ``"03_tiling"``; the inverse of :func:`parse_stem`."""
    stem = f"{number:02d}_{topic}"
    if not 0 <= number <= 99 or parse_stem(stem) != (number, topic):
        raise ValueError(f"a lesson is numbered 00-99 and named in words_like_this, got "
                         f"number={number!r}, topic={topic!r}")  # fmt: skip
    return stem


def marker_name(stem: str) -> str | None:
    """``"01_score_matrix"`` → ``"nb01"``: the pytest marker of a lesson's tests
    (``pytest -m nb01``); None for a stem that is not ``NN_topic``."""
    parsed = parse_stem(stem)
    return f"nb{parsed[0]:02d}" if parsed else None


def lesson_files(folder: Path, suffix: str = ".ipynb") -> list[Path]:
    """The lesson files ``NN_topic<suffix>`` directly in ``folder``, in course order."""
    found = folder.glob(f"{STEM_GLOB}{suffix}")
    return sorted(p for p in found if p.is_file() and parse_stem(p.name[: -len(suffix)]))


# --- the map -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunTime:
    """How long a lesson runs at full size, on the CPU of ``attn_course.runtimes.MEASURED_ON``.

    idle_s:  the whole notebook, seconds (the typical of the runs)
    runs:    what the idle time summarises, e.g. "43–51 s in three runs" ("" if one run)
    ram:     free RAM the full size needs, as the guide's table shows it
    small_s: the whole notebook with ``ATTN_COURSE_SIZE=small``, seconds (None: not timed)
    cells_s: the cells that carry a "# Run time:" comment, in order, seconds
    date:    when it was measured, if not on the course's common date
             (``attn_course.runtimes.MEASURED_DATE``)
    """

    idle_s: float
    runs: str
    ram: str
    small_s: float | None
    cells_s: tuple[float, ...] = ()
    date: str = ""


@dataclass(frozen=True)
class Lesson:
    """One lesson of the course.

    slug:    stem of its files: ``notebooks/<slug>.py``, ``solutions/<slug>.py`` …
    title:   as its heading reads after ``NN · `` (the heading may go on: ``Cost arithmetic:
             FLOPs, …``); the "Next" link to it and every table use it
    learn:   what a learner learns, for notebook 00's map
    does:    what a learner does, for the README's table
    modules: the package modules it teaches, as ``attn_course.<name>`` (``kernels.flash``)
    checks:  the module registering its exercises (None: no exercise notebook)
    screens: its calculators and explorers, as ``attn_course.<name>`` (``ui.cost``)
    kernel:  its Triton kernel's module, if it writes one
    bench:   its suite of ``python -m attn_course.bench``, if it has one
    gpu:     whether it needs an NVIDIA GPU, as notebook 00's map says it
    run_time: its measured run time (the sentences are in :mod:`attn_course.runtimes`)
    """

    slug: str
    title: str
    learn: str
    does: str
    modules: tuple[str, ...]
    checks: str | None
    run_time: RunTime
    screens: tuple[str, ...] = ()
    kernel: str | None = None
    bench: str | None = None
    gpu: str = "no"

    def __post_init__(self) -> None:
        if parse_stem(self.slug) is None:
            raise ValueError(f"a lesson's slug is NN_topic, e.g. 03_tiling, got {self.slug!r}")

    @property
    def number(self) -> int:
        """Its place in the course: 3 for ``03_tiling``."""
        return int(self.slug[:2])

    @property
    def marker(self) -> str:
        """``"nb03"``: the pytest marker of its tests."""
        return f"nb{self.number:02d}"

    @property
    def label(self) -> str:
        """``"03 · Tiling and the online softmax"``: how headings and links name it."""
        return f"{self.slug[:2]} · {self.title}"

    @property
    def has_exercises(self) -> bool:
        return self.checks is not None

    def module_files(self) -> list[str]:
        """Its modules, kernel and screens as paths in the course: ``attn_course/ui/cost.py``."""
        kernel = [self.kernel] if self.kernel not in self.modules else []
        names = [*self.modules, *kernel, *self.screens]
        return [f"attn_course/{name.replace('.', '/')}.py" for name in names if name]


LESSONS: tuple[Lesson, ...] = (
    Lesson(
        "00_start_here", "Start here",
        learn="the course map, how exercises and `check` work",
        does="the course map, how exercises and `check` work, and the environment report",
        modules=("start_here",), checks=None,
        run_time=RunTime(5, "", "—", None),
    ),
    Lesson(
        "01_score_matrix", "The n × n score matrix",
        learn="build S = QKᵀ/√d, softmax it, weigh it in bytes, measure its n² memory",
        does="build the n×n score matrix, look at it, measure its bytes and the peak memory "
        "of naive attention as n grows",
        modules=("scores", "memory"), screens=("ui.scores",),
        checks="attn_course.checks.scores",
        run_time=RunTime(45, "43–51 s in three runs", "≈ 3 GB", 15, (31,)),
    ),
    Lesson(
        "02_cost_arithmetic", "Cost arithmetic",
        learn="FLOPs, bytes and seconds of attention, FFN and KV cache; interactive "
        "calculators; claims checked",
        does="FLOPs, bytes and time of attention vs the FFN, the KV cache, prefill vs decode; "
        "interactive calculators; the published claims rechecked",
        modules=("cost", "presets", "claims"), screens=("ui.cost",),
        checks="attn_course.checks.cost",
        run_time=RunTime(13, "", "< 1 GB", None),
    ),
    Lesson(
        "03_tiling", "Tiling and the online softmax",
        learn="exact attention in O(n) memory, proved by measurement",
        does="exact attention block by block with the online softmax; O(n) memory and the "
        "Θ(n²d²/M) memory traffic, both measured",
        modules=("tiling",), screens=("ui.tiling",),
        checks="attn_course.checks.tiling",
        run_time=RunTime(30, "25–50 s in three runs", "≈ 2.5 GB", 25, (10,)),
    ),
    Lesson(
        "04_flash_attention", "FlashAttention in Triton",
        learn="a real kernel: forward, causal, backward, against PyTorch's SDPA",
        does="FlashAttention in Triton, forward and backward, causal (top-left and "
        "bottom-right) and GQA, any head dim to 256; what the compiler makes of it for six GPU "
        "generations; benchmarked against PyTorch's SDPA",
        modules=("kernels.flash", "kernels.compile"), checks="attn_course.checks.flash",
        kernel="kernels.flash", bench="flash", gpu="no (the live speed benchmark does)",
        run_time=RunTime(80, "", "≈ 2 GB", None, (23, 20)),
    ),
    Lesson(
        "05_linear_attention", "Linear (kernel) attention",
        learn="the kernel trick, random features, attention as a recurrence, chunking",
        does="the kernel trick, Performer features, Linformer; causal linear attention as a "
        "recurrence and in chunks (Triton); measured crossover and what is lost",
        modules=("linear",), checks="attn_course.checks.linear",
        kernel="kernels.linear", bench="linear",
        run_time=RunTime(45, "43–48 s in three runs", "≈ 1.1 GB", 10, (29,)),
    ),
    Lesson(
        "06_sparse_attention", "Sparse attention",
        learn="sliding windows, global + local, random and block-sparse kernels",
        does="sliding window, Longformer, BigBird masks and their block layouts; a "
        "block-sparse Triton kernel; FlexAttention; O(n·w) measured",
        modules=("sparse",), screens=("ui.sparse",),
        checks="attn_course.checks.sparse",
        kernel="kernels.sparse", bench="sparse",
        run_time=RunTime(
            30, "20–55 s in three runs, some with other jobs running", "≈ 1 GB", 30, (8,)
        ),
    ),
    Lesson(
        "07_kv_cache", "The KV cache",
        learn="the decode loop, prefill vs decode, MQA/GQA, quantised and paged caches",
        does="a small GPT decoding with and without a cache; prefill vs decode; GQA/MQA, "
        "int8/int4/float8 and MLA compression; a paged cache with copy-on-write and a Triton "
        "paged-decode kernel",
        modules=("model", "kvcache", "paged"), screens=("ui.kvcache",),
        checks="attn_course.checks.kvcache",
        kernel="kernels.paged",
        # Timed before its timing cells took more repeats; on 2026-12-02 the new version ran
        # in 63 s on the same kind of VM with other programs running (load average ≈ 1).
        run_time=RunTime(37, "", "< 0.5 GB", 10, (11, 11)),
    ),
    Lesson(
        "08_serving", "Serving at long context",
        learn="TTFT vs TBT, continuous batching, chunked prefill, prefix caching, offloading, "
        "split-K and speculative decoding",
        does="a serving engine over notebook 07's GPT: continuous vs static batching measured; "
        "chunked prefill, prefix caching and an offload tier; a split-K (FlashDecoding) Triton "
        "kernel; speculative decoding; a serving calculator for your own config.json",
        modules=("serving", "serving_cost", "offload", "splitk", "speculative"),
        screens=("ui.serving",),
        checks="attn_course.checks.serving",
        kernel="kernels.splitk",
        run_time=RunTime(48, "", "< 0.5 GB", 16, date="2026-12-02"),
    ),
)  # fmt: skip


def get_lesson(slug: str) -> Lesson:
    """The lesson whose files are named ``slug``; the error lists the slugs of the map."""
    for lesson in LESSONS:
        if lesson.slug == slug:
            return lesson
    raise ValueError(f"no lesson {slug!r} in the course map; known: {[x.slug for x in LESSONS]}")


def next_lesson(lesson: Lesson) -> Lesson | None:
    """The lesson after ``lesson`` in the map; None after the last one."""
    index = LESSONS.index(lesson)
    return LESSONS[index + 1] if index + 1 < len(LESSONS) else None


def link_to(lesson: Lesson) -> str:
    """The Markdown link from one lesson to another: ``[03 · Tiling …](03_tiling.ipynb)``.

    Every lesson's "Next" link is this link to the lesson after it (the last one links back
    to the first, the course map).
    """
    return f"[{lesson.label}]({lesson.slug}.ipynb)"


def lesson_paths(folder: str, root: Path = COURSE_ROOT) -> list[Path]:
    """The notebooks the map says ``root/folder`` holds: every lesson in ``notebooks/``,
    those with exercises in ``solutions/`` and ``exercises/``."""
    chosen = LESSONS if folder == "notebooks" else [x for x in LESSONS if x.has_exercises]
    return [root / folder / f"{lesson.slug}.ipynb" for lesson in chosen]


# --- tables made from the map ------------------------------------------------------------


def course_map_table() -> str:
    """Notebook 00's map (Markdown, links relative to ``notebooks/``): every other lesson."""
    lines = [
        "| # | lesson | what you learn | exercises | needs a GPU? |",
        "|---|---|---|---|---|",
    ]
    for lesson in LESSONS[1:]:
        exercises = (f"[{lesson.slug[:2]}](../exercises/{lesson.slug}.ipynb)"
                     if lesson.has_exercises else "—")  # fmt: skip
        lines.append(
            f"| {lesson.slug[:2]} | [{lesson.title}]({lesson.slug}.ipynb) | {lesson.learn} "
            f"| {exercises} | {lesson.gpu} |"
        )
    return "\n".join(lines)


def readme_table() -> str:
    """The README's table of the course (Markdown): notebook, modules, benchmark, what you do."""
    lines = [
        "| # | notebook | package modules | benchmark | what you do |",
        "|---|----------|-----------------|-----------|-------------|",
    ]
    for lesson in LESSONS:
        modules = ", ".join(f"`{path}`" for path in lesson.module_files())
        bench = f"`python -m attn_course.bench {lesson.bench}`" if lesson.bench else "—"
        lines.append(
            f"| {lesson.slug[:2]} | `notebooks/{lesson.slug}.ipynb` | {modules} | {bench} "
            f"| {lesson.does} |"
        )
    return "\n".join(lines)


def main() -> int:
    """Print the tables the README and notebook 00 quote (the instructor guide's table of
    run times: ``python -m attn_course.runtimes``)."""
    for heading, table in (
        ("README.md, 'The course'", readme_table()),
        ("notebooks/00_start_here.py, '1 · The course, in order'", course_map_table()),
    ):
        print(f"{heading}:\n\n{table}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

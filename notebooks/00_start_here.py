# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · Start here: the quadratic wall
#
# Attention compares every token with every other token. For a sequence of *n* tokens
# that is an *n × n* table of scores: double the context and the table grows four times.
# This course is about that table: why it exists, what it costs in FLOPs, bytes and
# seconds, and the four ways the field gets around it (compute it in tiles so it is
# never stored, change the maths so it is never formed, skip most of it, and cache
# what decoding would otherwise recompute).
#
# **You will be able to**
#
# 1. find your way through the course: which notebook teaches what, in which order;
# 2. use the exercises and read the feedback of their `check` cells;
# 3. read this machine's environment report and fix what it says is missing.
#
# **Prerequisites:** none. Python and a little linear algebra help for the rest.
#
# **Run time:** CPU 5 s–20 s: ≈ 5 s on a quiet 2-core machine (2026-11-23), up to 4× as
# long when other programs share its cores. The environment report runs one Triton kernel
# in the interpreter. GPU: not measured.

# %%
from IPython.display import display

from attn_course.checks import CheckFailed, Exercise, expect_equal
from attn_course.grade import run_check
from attn_course.start_here import environment_report

# %% [markdown]
# ## 1 · The course, in order
#
# Each notebook is a lesson: intuition first, then the formula, then code you can run,
# then a measurement or a picture that checks the formula. Its exercises are a separate
# notebook of the same name in `exercises/`. Take them in order; each lists what it
# builds on.
#
# | # | lesson | what you learn | exercises | needs a GPU? |
# |---|---|---|---|---|
# | 01 | [The n × n score matrix](01_score_matrix.ipynb) | build S = QKᵀ/√d, softmax it, weigh it in bytes, measure its n² memory | [01](../exercises/01_score_matrix.ipynb) | no |
# | 02 | [Cost arithmetic](02_cost_arithmetic.ipynb) | FLOPs, bytes and seconds of attention, FFN and KV cache; interactive calculators; claims checked | [02](../exercises/02_cost_arithmetic.ipynb) | no |
# | 03 | [Tiling and the online softmax](03_tiling.ipynb) | exact attention in O(n) memory, proved by measurement | [03](../exercises/03_tiling.ipynb) | no |
# | 04 | [FlashAttention in Triton](04_flash_attention.ipynb) | a real kernel: forward, causal, backward, against PyTorch's SDPA | [04](../exercises/04_flash_attention.ipynb) | no (the live speed benchmark does) |
# | 05 | [Linear (kernel) attention](05_linear_attention.ipynb) | the kernel trick, random features, attention as a recurrence, chunking | [05](../exercises/05_linear_attention.ipynb) | no |
# | 06 | [Sparse attention](06_sparse_attention.ipynb) | sliding windows, global + local, random and block-sparse kernels | [06](../exercises/06_sparse_attention.ipynb) | no |
# | 07 | [The KV cache](07_kv_cache.ipynb) | the decode loop, prefill vs decode, MQA/GQA, quantised and paged caches | [07](../exercises/07_kv_cache.ipynb) | no |
# | 08 | [Serving at long context](08_serving.ipynb) | TTFT vs TBT, continuous batching, chunked prefill, prefix caching, offloading, split-K and speculative decoding | [08](../exercises/08_serving.ipynb) | no |
#
# Every notebook runs on a CPU. Triton kernels then run in Triton's *interpreter*: the
# same kernel code, executed program by program in NumPy. That is exact enough to learn
# from and to test, but far too slow to time, so the notebooks time the CPU with
# PyTorch and show GPU benchmarks as recorded results, labelled with the device and date
# they were measured on.
#
# **Size of the experiments.** Heavy cells (large n, training, benchmarks) take their
# sizes from one knob, the environment variable `ATTN_COURSE_SIZE`: `full` (the default,
# what the text talks about) or `small` (tiny inputs, every code path still runs; the
# test suite uses it). Each notebook states at its top its run time at full size, from a
# quiet 2-core machine to a busy one, and how to switch it to `small`.

# %% [markdown]
# ## 2 · How the exercises work
#
# An exercise is a function you write. In the exercise notebook it starts as a stub:
#
# ```python
# def attention_flops(n, d_model):
#     # YOUR CODE HERE
#     raise NotImplementedError()
# ```
#
# Replace the `raise` line with your code, run the cell, then run the **check cell**
# right below it, which looks like `check("attention_flops", attention_flops)`. The check
# calls your function on several inputs, edge cases included, and shows one of three
# boxes. Here is a made-up exercise (the mean of a list) with three attempts at it, so
# you can see all three.

# %%
def _check_mean(mean):
    expect_equal(mean([1, 2, 3]), 2, "mean([1, 2, 3])", hint="sum the items, divide by how many")
    expect_equal(mean([5]), 5, "mean([5])")
    try:
        mean([])
    except ValueError:
        return
    raise CheckFailed("mean([]) should raise ValueError", hint="an empty list has no mean")


demo = Exercise("demo_mean", "00_start_here", "mean", "The mean of a list", 1.0, _check_mean)


def untouched(xs):
    # YOUR CODE HERE
    raise NotImplementedError()


def first_try(xs):
    return sum(xs) / len(xs)


def second_try(xs):
    if not xs:
        raise ValueError("the mean of an empty list is undefined")
    return sum(xs) / len(xs)


for attempt in (untouched, first_try, second_try):
    display(run_check(demo, attempt))

# %% [markdown]
# * **… not attempted**: the stub is still there. Nothing is wrong yet.
# * **✗ failed**: the message says which input went wrong and how; the hint says what
#   to look at. Here `first_try([])` divides by zero instead of saying "no mean".
# * **✓ passed**: every case is right.
#
# A few things worth knowing:
#
# * **Check cells are locked** and the checks themselves live in the course package
#   (`attn_course/checks/`), so you cannot break them by accident, and the grader runs
#   the same checks whatever the notebook's check cells say.
# * Every check has a **time limit** (an endless loop fails instead of hanging), and
#   a check never stops "Run All": an unattempted or wrong exercise shows its box and
#   the notebook goes on.
# * **Your work is saved in your workspace**: `make lab` opened copies of the lessons
#   and exercises, in `workspace/` of the course folder, and no command of the course
#   overwrites a notebook you changed (an update of the course refreshes only the ones you
#   have not touched, and says so).
# * Worked answers come with the course repository; a class release leaves them out, and
#   your instructor decides when you see them. Try first: the feedback is the point.
# * Your instructor grades a whole notebook with the same checks. To see the report they
#   will see, run `make check` in a terminal in the course folder (every notebook in
#   `workspace/exercises/`, or one: `make check NOTEBOOK=workspace/exercises/01_score_matrix.ipynb`).

# %% [markdown]
# ## 3 · Is this machine ready?
#
# The report below is made by `attn_course.start_here.environment_report()`: versions,
# whether Triton kernels run compiled on a GPU or in the interpreter on the CPU, memory,
# the notebook libraries, the size knob, and a smoke test that runs the course's
# FlashAttention kernel once and compares it with PyTorch's attention. ✓ is fine, **!**
# is a note (it works; read why), ✗ means part of the course will not run. The same
# report prints in a terminal with `python -m attn_course.start_here`.

# %%
report = environment_report()
display(report)

# %% [markdown]
# ### If something is missing
#
# | you see | what it means | what to do |
# |---|---|---|
# | ✗ PyTorch, Triton or a library "not installed" | this kernel's Python lacks a course package | in a terminal, in the course folder: `make lab` (it creates `.venv` and installs everything); then pick the `.venv` kernel, or start JupyterLab with `make lab` |
# | ✗ Triton on macOS or Windows | Triton is built for Linux only | notebooks 01–03 work; for 04–08 use Linux: WSL2, a container, or a cloud machine |
# | ! GPU: none | kernels run in Triton's interpreter | nothing: everything runs, just slowly for kernels; timings come from recorded GPU runs |
# | ! Memory below 8 GiB | full-size experiments may not fit | start JupyterLab with `ATTN_COURSE_SIZE=small make lab` |
# | ✗ Kernel smoke test | the kernel ran but gave a wrong answer, or failed to run | run `make test` in a terminal; the failing test names the problem |
# | calculators show no plot | the widget libraries are missing in the browser | reload the page; check ipywidgets and anywidget above are ✓ |
# | "Kernel died" while running a cell | the machine ran out of memory | restart the kernel, use `ATTN_COURSE_SIZE=small` |
#
# **Instructors**: how to build the student release, grade a class and run a workshop is
# in the instructor guide of the course repository (its `docs` folder); a class release
# does not include it.
#
# ## Summary
#
# * Seven lessons, in order, each with an exercise notebook; everything runs on a CPU.
# * Exercises are functions; check cells give ✓ / ✗ with a hint / … not attempted.
# * The report above says whether this machine is ready, and what to do if not.
#
# **Next:** [01 · The n × n score matrix](01_score_matrix.ipynb), where the table is
# built, looked at and weighed.

# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · FlashAttention in Triton
#
# Notebook 03 showed, with loops in PyTorch, that exact attention never needs the whole
# n × n score matrix: walk over the keys block by block, keep a running maximum and a
# running sum per query row, rescale what you have whenever the maximum grows, and the
# result is softmax(S)V to the last bit of rounding. That is the *algorithm* of
# FlashAttention. This notebook is about the *kernel*: the same algorithm written for a GPU
# in [Triton](https://triton-lang.org), where each tile of S lives for a moment in on-chip
# memory and is gone, and where the speed claims of the textbook are decided.
#
# **You will be able to**
#
# 1. read a Triton kernel: programs, the launch grid, offsets and masked loads;
# 2. find, in the course's FlashAttention kernel, the online-softmax loop, the exp2 trick,
#    the causal block skip, the grouped-query head mapping and the saved logsumexp;
# 3. explain the course's two-pass backward, how it differs from FlashAttention-2's, and
#    why both recompute P instead of storing it;
# 4. check the kernel against PyTorch and a float64 reference, outputs and gradients;
# 5. run the course's benchmark, read its record, and say what has (and has not yet) been
#    measured about "FlashAttention is 2–4× (or 3–5×) faster";
# 6. read what the compiler makes of the kernel for a real GPU (registers, shared memory,
#    the tensor-core instructions) and work out how many blocks an SM can hold.
#
# **Prerequisites:** notebooks 01 (the score matrix), 02 (cost arithmetic) and 03 (tiling
# and the online softmax). No Triton experience needed.
#
# **Run time at full size:** CPU 80 s–5.5 min: ≈ 80 s on a quiet 2-core machine
# (2026-11-23), up to 4× as long when other programs share its cores. One run with other
# jobs sharing the two cores took 111 s. Peak memory of the kernel process 1.8 GB, so have
# about 2 GB free. GPU: not measured yet (no GPU run has been recorded for this course).
#
# **Size knob.** The run time depends on the number of cores, on what else the machine is
# doing, and on the size knob `ATTN_COURSE_SIZE`: with `small` (start the course with
# `ATTN_COURSE_SIZE=small make lab`, or run `%env ATTN_COURSE_SIZE=small` before the first
# code cell) every cell runs on tiny inputs, in seconds; the text describes the full size.
#
# The exercises for this notebook are in [`exercises/04_flash_attention.ipynb`](../exercises/04_flash_attention.ipynb).

# %%
import inspect

import torch
import torch.nn.functional as F
from IPython.display import Code, display

from attn_course import kernels
from attn_course.bench import (
    configs_from,
    load_records,
    ratios,
    record_label,
    results_table,
    scaling_exponent,
)
from attn_course.bench.flash import naive_gqa_attention, run_flash_benchmark
from attn_course.bench.plots import benchmark_figure
from attn_course.config import course_size, pick
from attn_course.kernels import flash as flash_kernels
from attn_course.kernels import tiles as kernel_tiles

MODE = kernels.kernel_mode()
DEVICE = kernels.kernel_device()
print(f"size: {course_size()}, torch {torch.__version__}, kernels run in {MODE!r} mode on {DEVICE}")

# %% [markdown]
# **Which mode is this?** Importing `attn_course.kernels` decided it, from the line above:
#
# * **`gpu`**: a CUDA GPU is present; every `@triton.jit` kernel is compiled to GPU code
#   and runs at full speed. Timings in this notebook are then real GPU timings.
# * **`interpreter`**: no GPU. Triton's interpreter (`TRITON_INTERPRET=1`) runs the *same*
#   kernel source in NumPy on the CPU, one program after another. The results are correct
#   (this is how the course tests its kernels on machines without a GPU), but a kernel is
#   thousands of times slower than on a GPU, so this notebook **never times it** in the
#   interpreter: it runs it at small sizes only, to check that it is right.
#   One caveat: the interpreter has no bfloat16 arithmetic (NumPy has no such type), so
#   the kernel converts bf16 tiles to float32 right after loading them there; the bf16
#   numbers you get in the interpreter are therefore a little *more* accurate than on a GPU.

# %%
def show_source(kernel):
    """Display the Python source of a Triton kernel (unwrapping autotune and jit)."""
    while not inspect.isfunction(kernel):
        kernel = kernel.fn  # Autotuner -> JITFunction (or InterpretedFunction) -> function
    display(Code(inspect.getsource(kernel), language="python"))


# %% [markdown]
# ## 1 · Triton in five minutes
#
# A GPU runs thousands of threads, grouped in *thread blocks* that share a small, very fast
# on-chip memory (SRAM, a few hundred kB per streaming multiprocessor). The big memory,
# HBM, holds your tensors; it is large (80 GB) but, per byte, far slower to reach. Notebook
# 02 showed that naive attention is slow because it writes S and P to HBM and reads them
# back. FlashAttention's whole point is to keep each tile of S in SRAM.
#
# Triton lets you write one **program**: the work of one thread block, on *blocks* of
# numbers rather than single numbers. You launch it over a **grid**; each copy of the
# program asks `tl.program_id(axis)` which one it is and computes the addresses of its
# own block:
#
# ```python
# rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)        # my query rows
# q = tl.load(q_base + rows[:, None] * HEAD_DIM + dims[None, :],    # a BLOCK_M × HEAD_DIM tile
#             mask=rows[:, None] < n, other=0.0)                    # rows past n read as 0
# ```
#
# `tl.load` moves a tile from HBM into registers/SRAM; `tl.dot` multiplies two tiles on the
# tensor cores; `tl.store` writes a tile back. The `mask` handles the last block, which
# may stick out past the end of the tensor. Everything between a load and a store stays on
# chip. That is the whole programming model we need.
#
# ## 2 · The forward kernel
#
# The course's kernel lives in `attn_course/kernels/flash.py`, with the pieces it shares
# with the course's other kernels (tile loads and stores, the online-softmax update) in
# `attn_course/kernels/tiles.py`. Its launch grid is
#
# $$
# \text{grid} = \left(\left\lceil n_q / \text{BLOCK\_M} \right\rceil,\ \text{batch} \cdot \text{heads}\right):
# $$
#
# one program per block of BLOCK_M query rows of one head. Each program keeps three
# things per query row, in registers, and never anything of size n:
#
# | name in the kernel | meaning | size per program |
# |---|---|---|
# | `row_max` | largest score seen so far, m | BLOCK_M |
# | `row_sum` | Σ exp(s − m) over the keys seen so far, ℓ | BLOCK_M |
# | `acc` | Σ exp(s − m) · v over the keys seen so far | BLOCK_M × head_dim |
#
# Here is the kernel a program runs. Read it top to bottom with these landmarks:
#
# * **program ids**: `block_m` picks the query block, `batch_head` the (sequence, head) pair.
# * **GQA head mapping**: with grouped-query attention several query heads share one
#   key/value head; `kv_batch_head` (in `tiles.py`) computes
#   `kv_head = (batch_head % heads) // group_size` with `group_size = heads // kv_heads`. No copy of k and v is made: the pointer simply points
#   at the shared head.
# * **base pointers and offsets**: tensors are contiguous, so element (b, h, i, c) sits at
#   `((b·heads + h)·n + i)·head_dim + c`; `q_base` points at this head's first row.
# * **the causal block skip**: with `CAUSAL`, the key blocks are split into those entirely
#   in the past (no mask needed), those that straddle the diagonal (masked), and those in
#   the future, which are **never loaded** at all: the loop bound stops at
#   `first_row + BLOCK_M` (plus `causal_offset`, n_k − n_q, for the bottom-right alignment
#   a decoder with a KV cache uses). That is where causal attention saves half the work.
# * **the saved logsumexp**: after the loop, `lse = m + log ℓ` per row is stored: n numbers
#   per head, everything the backward will need to rebuild P.

# %%
show_source(flash_kernels.forward_kernel)

# %% [markdown]
# And the inner loop, called once or twice above. This is notebook 03's online softmax,
# tile by tile:
#
# 1. `s = tl.dot(q, tl.trans(k)) * scale`: a BLOCK_M × BLOCK_N tile of scores. It exists
#    only here, on chip.
# 2. **exp2, after the subtraction.** GPUs compute `exp` through their native `exp2`
#    instruction (eˣ = 2^(x·log₂e)), so the kernel computes `exp2((s − m) · log₂e)`
#    (`exp_via_exp2`).
#    Triton's tutorial (and the exercise below) folds log₂e into the scale instead and
#    keeps scores in base 2, one multiply per score cheaper. This kernel subtracts first
#    because it saves lse for the backward: converting lse between bases rounds, and with
#    fp16 q, k of size 10⁴ (scores ~10⁸, where one float32 step is 8) the backward's
#    exp(s − lse) came out 2³² instead of 1 and overflowed fp16. s − m near the maximum is
#    exact at any magnitude.
# 3. **diagonal masking**: only blocks with `ON_DIAGONAL` build the `cols <= rows` mask;
#    the others skip that work.
# 4. **the update** (`online_softmax_step`, in `tiles.py`: the block-sparse kernel of
#    notebook 06 runs the same one): the new maximum, the correction factor
#    e^(m_old − m_new) that shrinks the old sum and accumulator, then the new block is added:
#    `acc = acc · correction + p @ v` (the `tl.dot(p, v, acc)` form adds into acc directly).

# %%
show_source(flash_kernels._forward_key_blocks)
show_source(kernel_tiles.online_softmax_step)

# %% [markdown]
# ## 3 · Does it compute attention?
#
# A kernel is only as good as its comparison with a reference. We run it, PyTorch's
# `scaled_dot_product_attention`, and naive attention in float64 (our "truth", from
# notebook 01) on the same random inputs. In the interpreter the sizes are small; on a GPU
# they can be larger.

# %%
# Run time at full size: ≈ 25 s on a quiet 2-core CPU, up to 1.5 min on a busy one (2026-11-23); GPU: not measured.
def random_inputs(batch, heads, kv_heads, n, head_dim, dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, n, head_dim, generator=generator, dtype=torch.float64)
    k, v = (torch.randn(batch, kv_heads, n, head_dim, generator=generator, dtype=torch.float64)
            for _ in range(2))  # fmt: skip
    return q, k, v, [t.to(dtype).to(DEVICE) for t in (q, k, v)]


n_check = pick(full=256, small=64) if MODE == "interpreter" else 2048
print(f"n = {n_check}, batch 1, 4 query heads, head_dim 64")
print(f"{'dtype':>9} {'causal':>6} {'kv heads':>8} | {'max |ours − float64|':>21} {'max |SDPA − float64|':>21}")
for dtype in (torch.float32, torch.float16, torch.bfloat16):
    for causal in (False, True):
        for kv_heads in (4, 2):
            q64, k64, v64, (q, k, v) = random_inputs(1, 4, kv_heads, n_check, 64, dtype)
            ours = kernels.flash_attention(q, k, v, causal=causal)
            theirs = F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=kv_heads != 4)
            truth = naive_gqa_attention(q64, k64, v64, causal)  # float64 in, float64 out
            error_ours = (ours.cpu().double() - truth).abs().max().item()
            error_sdpa = (theirs.cpu().double() - truth).abs().max().item()
            print(f"{str(dtype).removeprefix('torch.'):>9} {causal!s:>6} {kv_heads:>8} | "
                  f"{error_ours:21.2e} {error_sdpa:21.2e}")  # fmt: skip

# %% [markdown]
# Read the columns against each other, not against zero:
#
# * **float32**: both errors are at float32 rounding (about 10⁻⁶ for outputs of size ~1).
# * **float16 / bfloat16**: the inputs themselves were rounded to 16 bits before anyone
#   saw them, so the "truth" here is attention on the *unrounded* inputs: an error of
#   around 10⁻³ (float16, 10 mantissa bits) or 10⁻² (bfloat16, 7 bits) is the dtype
#   talking, not the kernel. What matters is that our kernel's error is the same order
#   as PyTorch's. (In the interpreter our bf16 error can even be smaller, see the caveat
#   at the top.)
# * **kv heads 2**: grouped-query attention (two query heads per key/value head) agrees
#   with SDPA's `enable_gqa=True`.
#
# The kernel also returns the **logsumexp** it saved, lse_i = ln Σ_j exp(s_ij): per head, one
# number per query row, not one per (row, key) pair. It is exactly the log of softmax's
# denominator, which we can check directly:

# %%
q64, k64, v64, (q, k, v) = random_inputs(1, 2, 2, n_check, 64, torch.float32, seed=1)
out, lse = kernels.flash_attention_forward(q, k, v, causal=True)
scores = (q64 @ k64.transpose(-2, -1)) / 64**0.5
scores = scores.masked_fill(torch.ones(n_check, n_check, dtype=torch.bool).triu(1), float("-inf"))
print("lse shape:", tuple(lse.shape), "   (batch, heads, n): no n × n anywhere")
print(f"max |lse − logsumexp(S)|: {(lse.cpu().double() - scores.logsumexp(-1)).abs().max().item():.2e}")
print(f"bytes saved for the backward besides q, k, v, out: lse {lse.element_size() * lse.nelement():,} B"
      f"  vs  P {scores.nelement() * 4:,} B in float32")  # fmt: skip

# %% [markdown]
# ## 4 · The backward pass: recompute, don't store
#
# Training needs dQ, dK, dV. With P = softmax(S), O = PV and the incoming gradient dO:
#
# $$
# \begin{aligned}
# dV &= P^\top dO, & dP &= dO\,V^\top,\\
# dS &= P \circ (dP - D), & D_i &= \sum_j P_{ij}\, dP_{ij} = \sum_c dO_{ic}\, O_{ic},\\
# dQ &= \text{scale}\cdot dS\,K, & dK &= \text{scale}\cdot dS^\top Q.
# \end{aligned}
# $$
#
# Naive autograd keeps P (n × n per head) from the forward pass to evaluate these. The
# kernel instead **recomputes** each tile of P from q, k and the saved lse:
# P_ij = exp(s_ij − lse_i). No running maximum is needed the second time, because lse
# already is the final normaliser. Recomputing costs matmuls and saves all the n × n
# memory: a good trade on a GPU, where arithmetic is cheap and memory traffic is not. How
# many matmuls it costs depends on how the backward is organised.
#
# **FlashAttention-2's backward** (Dao 2023, Algorithm 2 and §3.2) is one pass. A program
# owns one block of keys and loops over the query blocks; for each (query tile, key tile)
# pair it recomputes S, then forms dV, dP, dK and the tile's share of dQ, dS·K. Many
# key-block programs contribute to the same rows of dQ, so FA-2 adds those shares into dQ
# in main memory with **atomic additions**.
#
# **The course's backward is a different, deterministic variant**, in three launches:
#
# 1. **preprocess**: D = rowsum(dO ∘ O), n numbers per head (the identity in the formula
#    above turns a row sum over n keys into one over head_dim channels);
# 2. **dK, dV over key blocks**: a program owns one block of keys and loops over all query
#    blocks (of every query head in its GQA group), accumulating dK and dV in registers;
# 3. **dQ over query blocks**: a program owns one block of queries and loops over the key
#    blocks, like the forward.
#
# Splitting by ownership means no two programs ever write the same output: no atomic
# additions. Why a course (or anyone who needs reproducible gradients) might choose this:
# the gradients come out bit for bit the same on every run (atomic float additions land in
# a different order each time, and float addition is not associative); no float32 dQ
# buffer in main memory; the GQA sum of dK and dV stays in registers; and each kernel is a
# plain loop that behaves the same in Triton's CPU interpreter. The price: pass 2 needs P
# and dS again, so **both passes recompute S = QKᵀ and dP = dO Vᵀ**, and Q, dO, K and V are
# each read by both passes. The matmuls per (query tile, key tile) pair, counted by
# `cost.attention_tile_matmuls` (a test holds the count equal to the `tl.dot` calls of the
# kernels):

# %%
from attn_course import cost

tile = (128, 64, 64)  # BLOCK_M query rows, BLOCK_N keys, head_dim: any sizes give the same ratios
forward_flops = cost.attention_tile_flops("forward", *tile)
executed = {}
for design, label in [("forward", "forward"), ("fa2_backward", "FlashAttention-2 backward"),
                      ("two_pass_backward", "the course's backward")]:  # fmt: skip
    passes = cost.attention_tile_matmuls(design)
    executed[design] = cost.attention_tile_flops(design, *tile)
    print(f"{label:>26}: {sum(map(len, passes))} matmuls = {executed[design] / forward_flops:.1f}× "
          f"the forward's FLOPs   " + "  |  ".join(", ".join(one_pass) for one_pass in passes))
total_ratio = ((executed["forward"] + executed["two_pass_backward"])
               / (executed["forward"] + executed["fa2_backward"]))  # fmt: skip
print(f"\nbackward: {cost.backward_flops_ratio(*tile):.2f}× FlashAttention-2's FLOPs; "
      f"forward + backward: {total_ratio:.2f}×")

# %% [markdown]
# The course's backward does the arithmetic of FA-2's plus one S and one dP per tile pair
# (the ratio printed above). It is the price of determinism, not of recomputation: FA-2
# recomputes S too. The benchmark in section 5 credits every implementation with FA-2's
# count, so the TFLOP/s it reports for this kernel's backward understate the arithmetic the
# kernel actually executes by that ratio.
#
# The causal skip appears in both passes: pass 2 skips the key blocks after its queries,
# as the forward does; pass 1 is its mirror image and skips the query blocks *before* its
# keys (those queries cannot see them).

# %%
show_source(flash_kernels.backward_preprocess_kernel)
show_source(flash_kernels.backward_dkdv_kernel)

# %%
show_source(flash_kernels._dq_key_blocks)

# %% [markdown]
# Gradients against float64 autograd through naive attention, on the same inputs
# (GQA included: dK and dV of a shared head sum over the query heads that read it):

# %%
n_grad = pick(full=128, small=64) if MODE == "interpreter" else 1024
print(f"n = {n_grad}, batch 1, 4 query heads, head_dim 64, float32")
for causal in (False, True):
    for kv_heads in (4, 2):
        q64, k64, v64, (q, k, v) = random_inputs(1, 4, kv_heads, n_grad, 64, torch.float32, seed=2)
        grad_out = torch.randn(q64.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
        for t in (q, k, v, q64, k64, v64):
            t.requires_grad_(True)
        kernels.flash_attention(q, k, v, causal=causal).backward(grad_out.to(q.dtype).to(DEVICE))
        naive_gqa_attention(q64, k64, v64, causal).backward(grad_out)
        errors = [(ours.grad.cpu().double() - truth.grad).abs().max().item()
                  for ours, truth in ((q, q64), (k, k64), (v, v64))]  # fmt: skip
        print(f"causal={causal!s:5} kv_heads={kv_heads}: max error dQ {errors[0]:.1e}, "
              f"dK {errors[1]:.1e}, dV {errors[2]:.1e}")  # fmt: skip

# %% [markdown]
# ## 5 · Measured: how fast, and how much memory?
#
# Now the numbers the textbook quotes. The course's benchmark command,
#
# ```
# python -m attn_course.bench flash --n 1024 2048 4096 8192 --head-dim 64 128 \
#     --dtype bf16 --causal both --backward --out records/<name>.json
# ```
#
# times every implementation (the course's Triton kernel, naive attention, PyTorch SDPA
# with its default choice and with each backend forced), converts time into TFLOP/s with
# the FLOP formula of notebook 02 (4·b·h·n²·d for the forward, halved when causal, ×3.5 for
# forward + backward: FlashAttention-2's count of the backward, section 4), measures peak memory, and writes a JSON record that names the
# device, the date, the library versions and the exact command (`records/README.md`
# describes it). A backend that cannot run a configuration is recorded with the reason.
#
# ### 5a · Live, on this machine

# %%
# Run time at full size: ≈ 20 s on a quiet 2-core CPU, up to 80 s on a busy one (2026-11-23); GPU: not measured.
live_ns = pick(full=[256, 512, 1024, 2048, 4096], small=[64, 128])
if MODE == "gpu":
    live_ns = pick(full=[1024, 2048, 4096, 8192, 16384], small=[256, 512])
    live = run_flash_benchmark(
        configs_from(live_ns, [64], ["bfloat16"], "both", batch=4, heads=16),
        command="notebook 04, live GPU run",
    )
else:
    # Triton is not timed in the interpreter, so the live CPU run compares the PyTorch paths.
    live = run_flash_benchmark(
        configs_from(live_ns, [64], ["float32"], "no", batch=1, heads=8),
        ["naive", "sdpa", "sdpa_flash", "sdpa_math"],
        min_run_time_s=pick(full=0.2, small=0.02),
        command="notebook 04, live CPU run",
    )
print(record_label(live), f"(kernels: {live['kernel_mode']})")
print(results_table(live))

# %% [markdown]
# On a CPU, PyTorch has two SDPA backends: `math` (the textbook formula, S and P in
# memory, like our naive attention) and `flash`, a CPU implementation of the same tiled
# algorithm as our kernel; the default picks `flash` when it can. (The memory-efficient
# and cuDNN backends exist only for CUDA, and the record says so.) So even without a GPU,
# the comparison is the one this course is about: materialise S, or tile it.

# %%
benchmark_figure(live, "peak_bytes")

# %% [markdown]
# Memory first, because it is the clearest. The naive and math lines climb ×4 per
# doubling of n: they hold S and P. The flash line climbs ×2: it holds only the output
# and O(n) bookkeeping. Where two lines coincide, the second is drawn with large open
# markers around the first and its legend entry says "same as": SDPA's default choice
# *is* its flash backend here, so the two measure the same bytes. The fitted exponents:

# %%
baseline, tiled = ("naive", "triton") if MODE == "gpu" else ("naive", "sdpa_flash")
for name in (baseline, tiled):
    print(f"{name:>10}: peak memory ∝ n^{scaling_exponent(live, name, 'peak_bytes', causal=False):.2f}, "
          f"time ∝ n^{scaling_exponent(live, name, 'ms', causal=False):.2f}")  # fmt: skip

# %%
benchmark_figure(live, "ms")

# %% [markdown]
# Time is the other story. Both algorithms do the same O(n²·d) arithmetic, so both time
# lines bend towards slope 2; tiling changes the *constant*, by not writing and re-reading
# S and P. How much it changes it depends on the machine, the sizes and the dtype, which is
# exactly why a speed-up has to be measured, not quoted.
#
# ### 5b · Recorded runs
#
# `load_records()` reads every JSON record committed under `records/`. Each figure says
# where and when its numbers were measured.

# %%
records = load_records()
for record in records:
    kind = "GPU" if record["device"]["type"] == "cuda" else "CPU"
    print(f"{kind}: {record_label(record)}  ({record['command']})")
gpu_records = [r for r in records if r["device"]["type"] == "cuda"]
cpu_records = [r for r in records if r["device"]["type"] == "cpu"]

# %%
if cpu_records:
    display(benchmark_figure(cpu_records[0], "ms", causal=True))

# %% [markdown]
# The committed CPU records were measured while this notebook was written, with the
# PyTorch implementations only. How many times faster than naive attention, and how many
# times less memory, was SDPA's flash path there? Computed from the records:

# %%
for record in cpu_records:
    print(record_label(record), "—", record["command"].removeprefix("python -m attn_course.bench "))
    speed = ratios(record, "naive", "sdpa_flash", "ms")
    memory = {(r["n"], r["causal"], r["mode"]): r["ratio"]
              for r in ratios(record, "naive", "sdpa_flash", "peak_bytes")}  # fmt: skip
    for row in speed:
        key = (row["n"], row["causal"], row["mode"])
        print(f"  n={row['n']:>5} {'causal' if row['causal'] else 'full':>6} {row['mode']:>7}: "
              f"naive / flash time ×{row['ratio']:5.2f}, peak memory ×{memory[key]:6.1f}")  # fmt: skip

# %% [markdown]
# On this CPU, at the largest n of each record, the tiled path was several times faster
# and needed tens to a hundred times less memory, and its advantage grows with n (the
# memory ratio roughly doubles per doubling of n, as ×4 against ×2 predicts). Single points are noisy
# (a shared 2-core machine; rerun the benchmark and some ratios move by tens of percent),
# and these are CPU numbers: they say nothing about a GPU. Print the full table of any
# record with `print(results_table(record))`.
#
# **GPU records.** The cell below shows every committed GPU record. If it prints that
# there are none, that is the honest state of this course: the Triton kernel's speed on a
# GPU has not been measured yet. To produce a record, run on a machine with a CUDA GPU:
#
# ```
# python -m attn_course.bench flash --n 1024 2048 4096 8192 16384 --head-dim 64 128 \
#     --dtype bf16 fp16 --causal both --batch 4 --heads 16 --out records/flash_<gpu>_<date>.json
# python -m attn_course.bench flash --n 1024 2048 4096 8192 16384 --head-dim 64 128 \
#     --dtype bf16 --causal both --batch 4 --heads 16 --backward \
#     --out records/flash_<gpu>_<date>_bwd.json
# ```
#
# and commit the JSON files; this notebook will plot them.

# %%
if not gpu_records:
    print("No GPU record is committed yet: no GPU timing of the Triton kernel exists in this course.")
for record in gpu_records:
    display(benchmark_figure(record, "tflops"))
    display(benchmark_figure(record, "ms"))

# %% [markdown]
# ## 6 · What the compiler makes of it
#
# A Triton kernel becomes GPU code in stages: Triton IR, then LLVM IR, then PTX (NVIDIA's
# virtual assembly), then a cubin that `ptxas` assembles for one GPU generation. None of it
# needs a GPU: the compiler and `ptxas` ship inside the Triton package, so this CPU can
# compile the course's kernels for a T4 (sm_75), an A100 (sm_80), an H100 (sm_90) or a B200
# (sm_100), launching nothing. `python -m attn_course.kernels.compile` does it for every
# kernel of the course; here is the forward kernel, fp16, head dim 64, its first autotune
# configuration (a 64 × 32 tile, 4 warps, 3 stages), compiled now for four generations:

# %%
# Four compilations, in a compiler process of their own: about 10–20 s.
from attn_course.kernels.compile import compile_now
from attn_course.kernels.fit import recorded_resources
from attn_course.kernels.targets import get_target, occupancy

for r in compile_now("forward", ["sm_75", "sm_80", "sm_90", "sm_100"], head_dim=64, dtype="float16"):
    target = get_target(r["target"])
    instruction = f"{r['mma_count']:3} × {r['mma_instruction']}" if r["mma_instruction"] else "none: FMA loops"
    print(f"{r['target']:>6} ({target.gpus[0]:<20}) {r['dtype']}: {r['registers']:3} registers/thread, "
          f"{r['shared_bytes']:6,} B shared; tensor-core instructions: {instruction}")

# %% [markdown]
# **Three generations of tensor-core instructions.** On an A100 each warp (32 threads)
# multiplies its own small tile from registers: `mma.sync … m16n8k16` is one 16 × 8 × 16
# product, so one 64 × 32 × 64 block product takes many of them. On an H100 four warps
# (a *warpgroup*) issue one `wgmma.mma_async … m64n32k16` together: the whole 64 × 32 tile,
# 16 deep, in one asynchronous instruction that reads an operand straight from shared
# memory; the FlashAttention-3 paper (Shah et al., 2024, §2) builds its H100 kernel on it,
# because Hopper's tensor cores reach their full throughput through wgmma. On a B200,
# `tcgen05.mma` goes a step further (its accumulator lives in a dedicated tensor memory).
# On the T4 (sm_75) this Triton emits no tensor-core instruction at all (the first line
# above), though Turing's tensor cores do multiply fp16: the dots become ordinary
# multiply-adds, and the tile needs every register a thread may have. The kernel runs on
# Colab's free T4, but not on its tensor cores. The source is the same on all four; the
# compiler chooses.
#
# **What fits on an SM.** A block's tiles live in registers (each thread's share of q, the
# accumulator, the scores) and in shared memory (the K and V tiles, several of them when
# `num_stages` > 1: the compiler prefetches the next tiles with asynchronous copies while the
# current ones are multiplied). An SM holds as many blocks at once as the scarcest of four
# resources allows:
#
# $$
# \text{blocks per SM} = \min\Big(
# \Big\lfloor \frac{R_\text{SM}}{\lceil 32 r / 256 \rceil \cdot 256 \cdot w} \Big\rfloor,\
# \Big\lfloor \frac{M_\text{SM}}{m + m_\text{reserved}} \Big\rfloor,\
# \Big\lfloor \frac{W_\text{SM}}{w} \Big\rfloor,\ B_\text{SM} \Big)
# $$
#
# with r registers per thread (given to a warp in units of 256), m bytes of shared memory
# per block (plus the 1 KiB the system keeps per block from sm_80 on), w warps per block,
# and the SM's registers R (65,536), shared memory M, warp slots W and block slots B
# (`attn_course/kernels/targets.py`, from NVIDIA's CUDA programming guide). The committed
# compile record holds every configuration the autotuner may try; here are the forward
# kernel's at head dim 128, fp16, on an A100 and an H100:

# %%
print(f"{'GPU':>6} {'tile, warps, stages':<38} {'regs':>4} {'spill':>6} {'shared':>9}  blocks/SM (limit)   warps/SM")
for row in recorded_resources("forward", ["sm_80", "sm_90"], dtype="float16", head_dim=128):
    fit = occupancy(get_target(row["target"]), registers=row["registers"], shared_bytes=row["shared_bytes"],
                    num_warps=row["num_warps"])
    print(f"{row['target']:>6} {row['config_key']:<38} {row['registers']:>4} {row['stack_bytes']:>4} B "
          f"{row['shared_bytes']:>7,} B  {fit.blocks} ({fit.limiter:<13})    {fit.warps:>2} of "
          f"{get_target(row['target']).max_warps_per_sm}")

# %% [markdown]
# **Reading the table.** At head dim 128 every configuration keeps few blocks per SM and
# few of its 64 warp slots busy (the last two columns): the accumulator of 64 or 128 rows ×
# 128 columns in fp32 takes most of the registers, and some configurations spill (a nonzero *spill*: values
# parked in local memory). Low occupancy is normal for attention kernels; they hide memory
# latency with the pipelined copies above rather than with many warps. What the table
# predicts is which tiles *cannot* be fast: one that spills badly or does not fit is never
# tried (`attn_course/kernels/fit.py` drops the configurations the record refuses before
# the autotuner times anything), and between the rest only a timed run on the GPU decides.
# Exercise 5 asks you to compute the blocks-per-SM column yourself.

# %% [markdown]
# ## Summary
#
# * A Triton program owns one tile of the output: BLOCK_M query rows of one head. The
#   launch grid is (query blocks, batch · heads); offsets and masks address its tiles.
# * The forward kernel is notebook 03's online softmax, tile by tile: running max, running
#   sum, rescaled accumulator, exp2 of (s − m)·log₂e taken after the maximum is subtracted.
#   S and P exist only as one tile at a time, on chip.
# * Causal attention skips the key blocks in a query block's future (the loop bound) and
#   masks only the blocks on the diagonal: about half the work.
# * Grouped-query attention is a pointer calculation: query head h reads kv head
#   h // (heads / kv_heads).
# * The forward saves the logsumexp (n numbers per head). The backward recomputes P from it
#   in two passes, dK/dV over key blocks and dQ over query blocks, after D = rowsum(dO ∘ O):
#   deterministic and free of atomics, unlike FlashAttention-2's one-pass backward with
#   atomic dQ additions, at the price of recomputing S and dP in both passes (section 4
#   counts the matmuls).
# * Checked: outputs, logsumexp and gradients agree with a float64 reference to the
#   rounding of each dtype, and with PyTorch's SDPA.
#
# **The speed claims.** The textbook says FlashAttention cuts wall-clock time "by a factor
# of two to four on real GPUs"; the interview answer says "roughly 3–5×" over naive
# attention. Neither is arithmetic: they are measurements, and they depend on the GPU, n,
# head_dim, dtype and on what "naive" means. Notebook 02's audit compares them with the
# papers' own measurements (FlashAttention-1 on A100s: 3× on GPT-2, 2.4× on long-range
# arena; FlashAttention-2's summary of its predecessor: 2–4×) and judges both "roughly
# holds"; our own GPU measurement is the open part. What this course has measured so far:
#
# * **memory**: the tiled algorithm's peak grows like n, naive attention's like n²
#   (measured here, on a CPU, and in the committed CPU records);
# * **CPU time**: PyTorch's tiled CPU path against naive attention, in the live run and the
#   records above (a CPU is not the hardware either claim is about);
# * **GPU time**: not yet. No GPU record is committed, so this notebook makes no claim about
#   the Triton kernel's GPU speed, or about 2–4× versus 3–5×. The commands above produce
#   the record that settles it for one GPU.
#
# **Next:** [05 · Linear (kernel) attention](05_linear_attention.ipynb): changing the maths itself, to escape the n²
# in compute as well as in memory. Practise first with the exercises in
# [`exercises/04_flash_attention.ipynb`](../exercises/04_flash_attention.ipynb).

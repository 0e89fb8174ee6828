# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Exercises: FlashAttention in Triton
#
# Five exercises, from counting to a real kernel and what the compiler makes of it. They go with
# [`notebooks/04_flash_attention.ipynb`](../notebooks/04_flash_attention.ipynb); read its sections 1 to 4 first,
# and section 6 before exercise 5.
#
# **How it works.** Write each function where it says `# YOUR CODE HERE` (delete the
# `raise NotImplementedError()` line), run the cell, then run the check cell right below
# it. The check calls your function on several inputs, edge cases included, and prints
# ✓ when all are right, or ✗ with what went wrong and a hint. An exercise you have not
# started shows "not attempted". Check cells are locked: the checks live in the course
# package (`attn_course/checks/flash.py`).
#
# Run time: under a minute. No GPU needed: without one, exercise 4's kernel runs in
# Triton's interpreter on the CPU (slowly, but correctly, at the tiny sizes the check uses).

# %%
import math

import torch
import torch.nn.functional as F

# attn_course must be imported before any @triton.jit below: it switches Triton to its CPU
# interpreter when there is no GPU, and Triton reads that switch at decoration time.
from attn_course import kernels  # isort: skip
import triton
import triton.language as tl

from attn_course.bench import load_records
from attn_course.checks.flash import launch_exercise_kernel
from attn_course.cost import attention_flops, tflops_per_s
from attn_course.grade import check
from attn_course.kernels.fit import recorded_resources
from attn_course.kernels.targets import get_target  # noqa: F401 (exercise 5 looks GPUs up with it)

print(f"kernels run in {kernels.kernel_mode()!r} mode on {kernels.kernel_device()}")

# %% [markdown]
# ## Exercise 1 · The causal loop bound (1 point)
#
# With a causal mask, query row r may only see keys 0 … r. A program that owns query block
# i (rows i·BLOCK_M … (i+1)·BLOCK_M − 1) therefore needs keys 0 … (i+1)·BLOCK_M − 1 and
# nothing after them: the key blocks beyond are in its future, and the kernel stops its loop
# before them. That loop bound is where causal attention saves half its work.
#
# Write `causal_kv_blocks(q_block_index, block_m, block_n)`: how many key blocks of
# `block_n` keys query block `q_block_index` visits (assume the sequence is long enough
# that it does not end earlier).
#
# $$\text{blocks} = \left\lceil \frac{(i+1)\cdot \text{block\_m}}{\text{block\_n}} \right\rceil$$
#
# *Hint:* for integers, ⌈a / b⌉ = (a + b − 1) // b. Example: block 3 of 64 rows with key
# blocks of 64: rows 192–255 need keys 0–255, that is 4 blocks.
#
# *The check* asks for query blocks 0 to 7 with eight pairs of block sizes (equal, one a
# multiple of the other, 48 and 32 that divide neither way, 1 and 7) and compares the
# whole list, then forty random cases; the answer must be an `int` (it is a loop bound).
# It recognises a forgotten diagonal block, rounding down, the index of the last block
# instead of the count, a // b + 1, i + 1, and swapped block sizes.

# %% nbgrader={"grade": false, "grade_id": "causal_kv_blocks", "locked": false, "schema_version": 3, "solution": true}
def causal_kv_blocks(q_block_index, block_m, block_n):
    """Key blocks (of block_n keys) that causal query block q_block_index must visit."""
    ### BEGIN SOLUTION
    keys_needed = (q_block_index + 1) * block_m  # the block's last row sees keys up to here
    return (keys_needed + block_n - 1) // block_n  # ceil: a partly needed block is visited
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "causal_kv_blocks_check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check("causal_kv_blocks", causal_kv_blocks)

# %% [markdown]
# **Why it halves the work.** Add it up over all query blocks: with n = 4096 and blocks of
# 64 × 64 there are 64 query blocks, visiting 1, 2, … 64 key blocks, instead of 64 each:

# %%
n, block = 4096, 64
query_blocks = n // block
try:
    visited = sum(causal_kv_blocks(i, block, block) for i in range(query_blocks))
    print(f"causal: {visited} tiles of {query_blocks * query_blocks} -> {visited / query_blocks**2:.3f} of the work")
except NotImplementedError:
    print("write causal_kv_blocks above first")

# %% [markdown]
# Slightly more than half: the diagonal tiles are visited in full and half-masked. The
# course's kernel splits exactly these visits into the fully visible blocks and the
# `BLOCK_M // BLOCK_N` diagonal ones, and masks only the latter.

# %% [markdown]
# ## Exercise 2 · Which key/value head? (1 point)
#
# In grouped-query attention (GQA) `heads` query heads share `kv_heads` key/value heads
# (`kv_heads` divides `heads`). Consecutive query heads form a group of
# `heads // kv_heads` that reads the same key/value head: with 8 query heads and 2 kv heads,
# query heads 0–3 read kv head 0 and 4–7 read kv head 1. (That is the convention of
# `torch.repeat_interleave` and of SDPA's `enable_gqa=True`.)
#
# Write `kv_head_for(q_head, heads, kv_heads)`: the kv head that query head `q_head` reads.
# Multi-head attention (kv_heads = heads) and multi-query attention (kv_heads = 1) are the
# two ends of the same formula.
#
# *The check* asks for the kv head of every query head of nine models, from multi-head
# to multi-query (groups of 1, 2, 3, 4, 8), then forty random ones; the answer must be
# an `int`. It recognises the interleaved mapping (`%`), a division by kv_heads, the
# group size or the query head itself returned, the position inside the group, rounding
# up, and the groups in reverse order.

# %% nbgrader={"grade": false, "grade_id": "kv_head_for", "locked": false, "schema_version": 3, "solution": true}
def kv_head_for(q_head, heads, kv_heads):
    """The key/value head read by query head q_head under grouped-query attention."""
    ### BEGIN SOLUTION
    group_size = heads // kv_heads  # query heads per kv head
    return q_head // group_size
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "kv_head_for_check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check("kv_head_for", kv_head_for)

# %% [markdown]
# **In the kernel** the same line appears with the program id: `kv_head = (batch_head %
# heads) // group_size`. No copy of k or v is made; the program's pointer simply lands on
# the shared head. The KV cache of notebook 02 shrinks by heads / kv_heads; the attention
# arithmetic does not.

# %% [markdown]
# ## Exercise 3 · TFLOP/s of a measured run (1 point)
#
# A timing means little on its own; divided into the work done, it says how close to the
# hardware's peak a kernel runs. Write `attention_tflops(batch, heads, n, head_dim, causal,
# ms)`: the throughput, in TFLOP/s, of an attention **forward** over q, k, v of shape
# (batch, heads, n, head_dim) that took `ms` milliseconds.
#
# $$
# \text{FLOPs} = 4 \cdot \text{batch} \cdot \text{heads} \cdot n^2 \cdot \text{head\_dim}
# \ \ (\div 2 \text{ if causal}), \qquad
# \text{TFLOP/s} = \frac{\text{FLOPs}}{\text{ms} \cdot 10^{-3}\ \text{s}} \cdot 10^{-12}
# $$
#
# (Two matmuls per head, QKᵀ and PV, each 2·n²·head_dim FLOPs; a causal kernel skips
# about half of them, exercise 1.) Example: batch 1, 1 head, n = 1000, head_dim 100, not
# causal, 1 ms: 4·10⁸ FLOP in 10⁻³ s = 0.4 TFLOP/s.
#
# *The check* tries seven runs (batch 3 with 5 heads, so that each factor shows; n = 17,
# where n(n+1)/2 is far from n²/2) and forty random ones. It recognises a missing causal
# halving, halving a non-causal run, one matmul instead of two, n(n+1)/2 instead of ÷ 2,
# milliseconds taken as seconds, FLOP/s or GFLOP/s instead of TFLOP/s, a forgotten batch
# or heads factor, heads counted twice, and a backward factor. Calling
# `cost.attention_flops` or `cost.tflops_per_s` does not count: write the formula.

# %% nbgrader={"grade": false, "grade_id": "attention_tflops", "locked": false, "schema_version": 3, "solution": true}
def attention_tflops(batch, heads, n, head_dim, causal, ms):
    """TFLOP/s of an attention forward of this shape that took ms milliseconds."""
    ### BEGIN SOLUTION
    flops = 4 * batch * heads * n * n * head_dim  # QKᵀ and PV: 2·n²·d FLOPs each, per head
    if causal:
        flops /= 2  # the masked half is skipped
    return flops / (ms * 1e-3) / 1e12
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "attention_tflops_check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check("attention_tflops", attention_tflops)

# %% [markdown]
# **Use it on a measurement.** The committed benchmark records (see `records/`) store the
# time of every run; your function applied to one of them should reproduce the record's
# own TFLOP/s column:

# %%
timed = [(record, r) for record in load_records() for r in record["results"]
         if r["status"] == "ok" and r["config"]["mode"] == "fwd"]  # fmt: skip
if timed:
    record, run = max(timed, key=lambda pair: pair[1]["config"]["n"])
    c = run["config"]
    try:
        mine = attention_tflops(c["batch"], c["heads"], c["n"], c["head_dim"], c["causal"], run["ms"])
        print(f"{run['implementation']} on {record['device']['name']}, n={c['n']}, causal={c['causal']}: "
              f"{run['ms']:.1f} ms -> yours {mine:.4f} TFLOP/s, the record's {run['tflops']:.4f}")
    except NotImplementedError:
        print("write attention_tflops above first")
else:
    flops = attention_flops(1, 8, 1024, 64)
    print(f"no record yet; e.g. 1·8 heads, n=1024, d=64: {flops:.3g} FLOP in 5 ms = "
          f"{tflops_per_s(flops, 5.0):.3f} TFLOP/s")

# %% [markdown]
# For scale: a CPU core manages tens of GFLOP/s at best, a modern data-centre GPU's tensor
# cores hundreds of TFLOP/s in bf16. The FlashAttention papers report their kernels as a
# fraction of that peak, which is a fairer yardstick than "× faster than naive", because
# it does not depend on how bad the baseline is.

# %% [markdown]
# ## Exercise 4 · The online-softmax update, in Triton (2 points)
#
# Below is a complete, small FlashAttention forward kernel, except for the six lines that
# make it FlashAttention. One program owns `BLOCK_M` query rows of one head (the grid is
# `(ceil(n / BLOCK_M), batch · heads)`); it loads its q tile once, then walks over the keys
# in blocks of `BLOCK_N`. For each key block it has already computed `s`, the
# BLOCK_M × BLOCK_N tile of scores **in base-2 units** (`qk_scale_log2` = log₂e / √d is
# folded in), with masked entries set to −∞. The running state per row is
#
# * `m_i`: the largest score so far (starts at −∞),
# * `l_i`: Σ 2^(s − m_i) over the keys so far (starts at 0),
# * `acc`: Σ 2^(s − m_i) · v over the keys so far (BLOCK_M × HEAD_DIM, starts at 0).
#
# Complete the update inside the loop (notebook 03's online softmax, in base 2):
#
# $$
# m_{\text{new}} = \max\!\big(m_i, \max_j s_{ij}\big), \quad
# \alpha = 2^{\,m_i - m_{\text{new}}}, \quad
# p_{ij} = 2^{\,s_{ij} - m_{\text{new}}}, \quad
# \ell_i \leftarrow \alpha\,\ell_i + \textstyle\sum_j p_{ij}, \quad
# \text{acc} \leftarrow \alpha\,\text{acc} + p\,v, \quad
# m_i \leftarrow m_{\text{new}}.
# $$
#
# *Triton you need:* `tl.max(x, 1)` and `tl.sum(x, 1)` reduce along a tile's rows;
# `tl.maximum(a, b)` is element-wise; `tl.exp2(x)`; `x[:, None]` turns a row vector into a
# column that broadcasts over the tile; `tl.dot(p, v)` multiplies two tiles.
#
# *The check* launches your kernel (`launch_exercise_kernel` in `attn_course.checks.flash`)
# on tiny inputs, n = 1 to 48 with blocks of 16 (so every row meets several key blocks,
# and the last blocks are partial) and once with BLOCK_M = 32, BLOCK_N = 16 (rows that
# see none of a key block), causal and not: random scores, keys that grow along the
# sequence (the maximum rises in every block), rows of very different scale, and scores
# large enough that 2^s overflows float32. It compares with a float64 reference and
# recognises a forgotten rescaling of `acc` or of `l_i`, α computed after `m_i = m_new`,
# a maximum that is never stored, `tl.exp` instead of `tl.exp2`, `tl.sum(p, 0)`, `acc`
# normalised inside the loop, and an overflow; and, if you change the given lines, a
# dropped causal mask or diagonal, a missing padding mask, and K, V read with the wrong
# stride.

# %% nbgrader={"grade": false, "grade_id": "flash_inner_loop", "locked": false, "schema_version": 3, "solution": true}
@triton.jit
def attention_forward_kernel(
    Q, K, V, Out, n, qk_scale_log2,
    CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
):  # fmt: skip
    block_index = tl.program_id(0)  # which block of query rows
    head = tl.program_id(1)  # which (batch, head) pair
    base = head * n * HEAD_DIM  # Q, K, V, Out are contiguous (batch·heads, n, HEAD_DIM)
    rows = block_index * BLOCK_M + tl.arange(0, BLOCK_M)
    dims = tl.arange(0, HEAD_DIM)
    q = tl.load(Q + base + rows[:, None] * HEAD_DIM + dims[None, :], mask=rows[:, None] < n, other=0.0)

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)  # noqa: F841 (read by your update)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)

    stop = n
    if CAUSAL:  # exercise 1: the keys after this block's last row are never needed
        stop = tl.minimum((block_index + 1) * BLOCK_M, n)
    for start_n in range(0, stop, BLOCK_N):
        cols = start_n + tl.arange(0, BLOCK_N)
        k = tl.load(K + base + cols[:, None] * HEAD_DIM + dims[None, :], mask=cols[:, None] < n, other=0.0)
        v = tl.load(V + base + cols[:, None] * HEAD_DIM + dims[None, :], mask=cols[:, None] < n, other=0.0)  # noqa: F841
        s = tl.dot(q, tl.trans(k)) * qk_scale_log2  # BLOCK_M × BLOCK_N scores, base-2 units
        visible = cols[None, :] < n
        if CAUSAL:
            visible = visible & (cols[None, :] <= rows[:, None])
        s = tl.where(visible, s, float("-inf"))
        # The online-softmax update: fold this key block into m_i, l_i and acc.
        ### BEGIN SOLUTION
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)  # shrinks what was accumulated under the old maximum
        p = tl.exp2(s - m_new[:, None])  # every exponent <= 0: no overflow
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p, v)
        m_i = m_new
        ### END SOLUTION

    out = acc / l_i[:, None]
    tl.store(Out + base + rows[:, None] * HEAD_DIM + dims[None, :], out, mask=rows[:, None] < n)


# %% nbgrader={"grade": true, "grade_id": "flash_inner_loop_check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check("flash_inner_loop", attention_forward_kernel)

# %% [markdown]
# **Run your kernel yourself.** Same launch as the check, against PyTorch:

# %%
generator = torch.Generator().manual_seed(0)
q, k, v = (torch.randn(1, 2, 40, 16, generator=generator).to(kernels.kernel_device()) for _ in range(3))
for causal in (False, True):
    try:
        mine = launch_exercise_kernel(attention_forward_kernel, q, k, v, causal=causal)
    except Exception as error:  # the untouched exercise raises NotImplementedError inside
        print(f"complete attention_forward_kernel above first ({type(error).__name__}: {error})")
        break
    reference = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    print(f"causal={causal}: max |yours − SDPA| = {(mine - reference).abs().max().item():.1e}")

# %% [markdown]
# **What you built, and what the course's kernel adds.** Your kernel is the heart of
# FlashAttention: S exists only as one `s` tile at a time, and the memory it needs per
# program is O(BLOCK_M · HEAD_DIM) whatever n is. The kernel in
# `attn_course/kernels/flash.py` adds what a production kernel needs: a causal loop split
# into unmasked and diagonal blocks, GQA, float16/bfloat16 inputs with float32
# accumulation, guards against rows with no visible key, the saved logsumexp
# (m_i + log₂ l_i, converted to natural log) for the backward pass, and autotuned block
# sizes on a GPU.
#
# Base 2 changes nothing but speed: 2^(x·log₂e) = eˣ, so exp2 of base-2 scores is exp of
# the natural ones.

# %%
x = 3.0
print(f"2^(x·log2 e) = {2 ** (x * math.log2(math.e)):.12f},  e^x = {math.exp(x):.12f}")

# %% [markdown]
# ## Exercise 5 · How many blocks of a compiled kernel fit on an SM? (1 point)
#
# Notebook 04's section 6 compiles the course's kernels for real GPUs: the compiler says how
# many registers each thread of a kernel uses and how much shared memory each block
# (program) takes. An SM runs several blocks at once only if all of them fit. Write
# `resident_blocks(registers, shared_bytes, num_warps, gpu)`: how many blocks of a kernel
# using `registers` per thread, `shared_bytes` per block and `num_warps` warps (of 32
# threads) per block one SM of the GPU generation `gpu` (a name such as `"sm_80"`) holds at
# once. `get_target(gpu)` gives that generation's limits as attributes: `registers_per_sm`,
# `shared_per_sm`, `shared_per_block`, `max_warps_per_sm` and `max_blocks_per_sm`. It is
# the smallest of four limits:
#
# $$
# \begin{aligned}
# \text{registers:}\ & \left\lfloor \frac{\text{registers\_per\_sm}}
#   {\lceil 32 \cdot \text{registers} / 256 \rceil \cdot 256 \cdot \text{num\_warps}}
#   \right\rfloor
# & \text{shared memory:}\ & \left\lfloor \frac{\text{shared\_per\_sm}}
#   {\text{shared\_bytes} + (\text{shared\_per\_sm} - \text{shared\_per\_block})}
#   \right\rfloor \\
# \text{warps:}\ & \left\lfloor \frac{\text{max\_warps\_per\_sm}}{\text{num\_warps}}
#   \right\rfloor
# & \text{blocks:}\ & \text{max\_blocks\_per\_sm}
# \end{aligned}
# $$
#
# Registers go to a warp in units of 256, and from sm_80 on the system keeps 1 KiB of
# shared memory per block, the difference `shared_per_sm − shared_per_block`. A block that
# uses no shared memory (and reserves none, as on sm_75) is not limited by it. Example: 183
# registers, 53,248 bytes, 4 warps on an A100 (sm_80): registers ⌊65536 / (23 · 256 · 4)⌋
# = 2, shared memory ⌊167936 / 54272⌋ = 3, warps 64 / 4 = 16, blocks 32: **2 blocks**.
#
# *The check* tries ten kernels, each held back by another limit, on four GPU generations, and forty
# random ones. It recognises registers not rounded to 256, the forgotten reserved 1 KiB,
# shared_per_block taken for the SM's pool, a missing warp or block limit, and warps
# returned instead of blocks. Calling `attn_course.kernels.targets.occupancy` does not
# count: write the formula.

# %% nbgrader={"grade": false, "grade_id": "resident_blocks", "locked": false, "schema_version": 3, "solution": true}
def resident_blocks(registers, shared_bytes, num_warps, gpu):
    """Blocks of this kernel that one SM of the GPU generation ``gpu`` holds at once."""
    ### BEGIN SOLUTION
    target = get_target(gpu)  # its limits
    per_warp = -(-32 * registers // 256) * 256  # registers go to a warp in units of 256
    limits = [target.registers_per_sm // (per_warp * num_warps),
              target.max_warps_per_sm // num_warps, target.max_blocks_per_sm]
    reserved = target.shared_per_sm - target.shared_per_block  # kept by the system, per block
    if shared_bytes + reserved:
        limits.append(target.shared_per_sm // (shared_bytes + reserved))
    return min(limits)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "resident_blocks_check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check("resident_blocks", resident_blocks)

# %% [markdown]
# **Use it on the compiler's numbers.** The flash forward's configurations on an A100 and an
# H100, from the committed compile record: registers and shared memory decide how many
# blocks, and so how many warps, each SM keeps busy.

# %%
for row in recorded_resources("forward", ["sm_80", "sm_90"], dtype="float16", head_dim=128):
    try:
        blocks = resident_blocks(row["registers"], row["shared_bytes"], row["num_warps"], row["target"])
    except NotImplementedError:
        print("write resident_blocks above first")
        break
    print(f"{row['target']} {row['config_key']}: {row['registers']} registers, "
          f"{row['shared_bytes']:,} B shared -> {blocks} block(s) per SM, {blocks * row['num_warps']} warps")

# %% [markdown]
# Next, notebook 05 (linear attention) changes the maths itself, to remove the n² from the
# compute as well.

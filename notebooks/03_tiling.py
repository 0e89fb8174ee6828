# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Tiling and the online softmax
#
# Notebooks 01 and 02 showed the quadratic wall: naive attention writes an n × n score
# matrix S and its softmax P to memory, so memory grows as n² and so does the traffic to
# and from it. This notebook takes the wall apart. The *work* of attention really is
# quadratic (every query meets every key), but *storing* the n × n matrices is not
# necessary. Computed block by block, with a running maximum and a running sum,
# attention gives exactly the same output while holding only one small tile of S at a
# time. That is the algorithm inside FlashAttention.
#
# **You will be able to**
#
# 1. explain why the output of attention (n × d) does not require storing S or P (n × n);
# 2. derive the online-softmax recurrence, including the rescaling factor
#    $e^{m_\text{old} - m_\text{new}}$, and run one step of it by hand;
# 3. follow the tiled loop (query blocks outside, key blocks inside) step by step;
# 4. measure that it is exact (to rounding) and that its peak memory grows linearly in n;
# 5. count the bytes it moves to and from main memory, check the count against the
#    FlashAttention paper's Θ(n² d² / M), and say what M is on an A100 or H100;
# 6. explain why causal attention needs only about half the tiles.
#
# **Prerequisites:** notebook 01 (S, P, the stable softmax, the causal mask) and
# notebook 02 (bytes and bandwidth). No GPU needed: everything runs on a CPU.
#
# **Run time at full size:** CPU 30 s–2 min: ≈ 30 s on a quiet 2-core machine (2026-11-23,
# 25–50 s in three runs), up to 4× as long when other programs share its cores. Needs
# about 2.5 GB of free RAM (naive attention at n = 16,384). GPU: not measured yet (no GPU
# run has been recorded for this course).
#
# **Size knob.** The run time depends on the number of cores, on what else the machine is
# doing, and on the size knob `ATTN_COURSE_SIZE`: with `small` (start the course with
# `ATTN_COURSE_SIZE=small make lab`, or run `%env ATTN_COURSE_SIZE=small` before the first
# code cell) every cell runs on tiny inputs, in about 25 s; the text describes the full
# size.
#
# The exercises for this notebook are in [`exercises/03_tiling.ipynb`](../exercises/03_tiling.ipynb).

# %%
import math

import torch
from IPython.display import display

from attn_course.config import course_size, pick
from attn_course.cost import (
    format_bytes,
    format_bytes_both,
    kv_cache_bytes,
    max_n_for_memory,
    score_matrix_bytes,
)
from attn_course.measure import loglog_slope, physical_memory_bytes, random_qkv
from attn_course.presets import get_hardware
from attn_course.scores import naive_attention, naive_attention_peak_bytes
from attn_course.tiling import (
    ON_CHIP_MEMORY,
    HBMTraffic,
    causal_visited_fraction,
    compare_with_naive,
    flash_block_sizes,
    hbm_traffic_figure,
    hbm_traffic_ratio,
    measure_tiled_memory,
    naive_hbm_bytes,
    online_softmax_finish,
    online_softmax_init,
    online_softmax_update,
    tiled_attention,
    tiled_attention_loops,
    tiled_attention_peak_bytes,
    tiled_hbm_bytes,
    tiled_hbm_bytes_for_blocks,
    tiling_memory_figure,
    tiling_schedule,
    visited_tiles,
)
from attn_course.ui.tiling import TilingExplorer

torch.set_printoptions(precision=4, sci_mode=False, linewidth=110)
print(f"size: {course_size()}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")

# %% [markdown]
# ## 1 · The output is small; only the middle is big
#
# Look at the shapes. Attention takes Q, K, V (n × d each) and returns O (n × d). Only
# the intermediate S and P are n × n. For one head with d = 64 in float32:

# %%
for n in (4096, 32_768, 131_072):
    io_bytes = 4 * n * 64 * 4  # Q, K, V and O: n x 64 float32 each
    print(f"n = {n:>7,}: Q, K, V, O together {format_bytes_both(io_bytes):>22}   "
          f"S alone {format_bytes_both(score_matrix_bytes(n, 'float32')):>22}")  # fmt: skip

# %% [markdown]
# S has n/d times as many numbers as one n × d input: at n = 131,072 and d = 64 a single
# score matrix takes 64 GiB, the inputs and the output together only 128 MiB.
#
# And nothing downstream needs S or P. Row i of the output is a weighted average of the
# value vectors, with weights from row i of P. So one could compute row i of S, turn it
# into weights, use them, and throw the row away: memory n (one row) instead of n². The
# catch is the softmax. Its denominator $\sum_j e^{S_{ij}}$ and the stabilising maximum
# $\max_j S_{ij}$ involve the **whole** row. A GPU wants to work on small tiles that fit
# its on-chip memory, not on whole rows of 100,000 scores. Does softmax really need the
# whole row before it can start?

# %% [markdown]
# ## 2 · Softmax needs the whole row — or does it?
#
# Write one row of scores as $s_1, \dots, s_n$. Attention's output for that row is
#
# $$
# o = \frac{\sum_j e^{s_j - m}\, v_j}{\sum_j e^{s_j - m}}, \qquad m = \max_j s_j ,
# $$
#
# where subtracting m (notebook 01, section 4) keeps every exponent ≤ 0. Now suppose the
# keys arrive in two blocks, A and B. For block A alone we can compute
#
# $$
# m_A = \max_{j \in A} s_j, \qquad \ell_A = \sum_{j\in A} e^{s_j - m_A}, \qquad
# \text{acc}_A = \sum_{j\in A} e^{s_j - m_A} v_j .
# $$
#
# When block B arrives, the true maximum so far is $m = \max(m_A, m_B)$. The sums of
# block A were taken relative to the wrong maximum, but that is fixed by one
# multiplication, because $e^{s_j - m} = e^{s_j - m_A}\, e^{m_A - m}$:
#
# $$
# \ell = e^{m_A - m}\,\ell_A + \sum_{j \in B} e^{s_j - m}, \qquad
# \text{acc} = e^{m_A - m}\,\text{acc}_A + \sum_{j\in B} e^{s_j - m}\, v_j .
# $$
#
# No score of block A is needed again: three running quantities per row — the **max**
# m, the **sum** ℓ and the unnormalised **accumulator** acc — summarise everything seen so
# far. This is the *online softmax* (Milakov & Gimelshein 2018), and FlashAttention
# (Dao et al. 2022) applies it to blocks of rows at once. In general, for each new block
# with scores s and values V:
#
# $$
# m_\text{new} = \max\big(m_\text{old}, \operatorname{rowmax}(s)\big),\quad
# \alpha = e^{\,m_\text{old} - m_\text{new}},\quad
# p = e^{\,s - m_\text{new}},
# $$
# $$
# \ell_\text{new} = \alpha\,\ell_\text{old} + \operatorname{rowsum}(p),\qquad
# \text{acc}_\text{new} = \alpha\,\text{acc}_\text{old} + p\,V .
# $$
#
# The factor α is ≤ 1 (the max can only grow) and equals 1 when the max did not move.
# Start from m = −∞, ℓ = 0, acc = 0 (then α = e^(−∞) = 0 on the first block); at the end,
# $o = \text{acc} / \ell$. Everything is exact: it is the same sum, regrouped.
#
# Here it is on one row of 12 scores, in blocks of 4, next to the ordinary softmax:

# %%
generator = torch.Generator().manual_seed(3)
s_row = torch.randn(1, 12, generator=generator, dtype=torch.float64) * 3  # one row, 12 keys
v_row = torch.randn(12, 2, generator=generator, dtype=torch.float64)  # values, d_v = 2

m, l, acc = online_softmax_init((1,), 2, torch.float64)  # noqa: E741 - ℓ
print(f"{'keys':>7} | {'block max':>9} | {'m':>7} | {'α':>7} | {'ℓ':>8} | acc / ℓ so far")
for start in range(0, 12, 4):
    block = slice(start, start + 4)
    m_old = m
    m, l, acc = online_softmax_update(m, l, acc, s_row[:, block], v_row[block])  # noqa: E741
    alpha = math.exp(m_old.item() - m.item())
    print(f"{start:>2}..{start + 3:<3} | {s_row[0, block].max().item():9.3f} | {m.item():7.3f} | "
          f"{alpha:7.4f} | {l.item():8.4f} | {(acc / l[:, None])[0].tolist()}")  # fmt: skip
out, lse = online_softmax_finish(m, l, acc)
print("online result :", out[0].tolist())
print("softmax(s) @ v:", (torch.softmax(s_row, -1) @ v_row)[0].tolist())
print(f"logsumexp: online m + log ℓ = {lse.item():.12f}, torch = {torch.logsumexp(s_row, -1).item():.12f}")

# %% [markdown]
# Read the α column: on the first block α is 0 (nothing to rescale); whenever a block
# brings a larger max, α < 1 shrinks the old ℓ and acc; when the max stays, α = 1. The
# final output agrees with the ordinary softmax to the last printed digits (float64).
#
# `online_softmax_finish` also returns the **logsumexp** L = m + log ℓ = log Σ_j e^(s_j),
# one number per row. FlashAttention stores it instead of P: in the backward pass it
# recomputes any tile of P as e^(S − L) from Q and K, without having kept it.

# %% [markdown]
# ## 3 · One block step, for a block of rows
#
# Nothing in the recurrence is specific to one row: m and ℓ become vectors (one entry
# per query row of the block) and acc a matrix. `online_softmax_update(m, l, acc,
# scores_block, v_block)` does exactly the five lines above for r rows and c keys at a
# time. Inputs and outputs of one step, for a 4-row query block meeting a 3-key block:

# %%
q, k, v = (torch.randn(4, 8, generator=generator, dtype=torch.float64) for _ in range(3))
scores = q @ k[:3].T / math.sqrt(8)  # 4 query rows x the first 3 keys: one tile of S
state = online_softmax_init((4,), 8, torch.float64)
state = online_softmax_update(*state, scores, v[:3])
print("m  :", state[0])
print("ℓ  :", state[1])
print("acc:", tuple(state[2].shape), "(rows x d_v)")
state = online_softmax_update(*state, q @ k[3:].T / math.sqrt(8), v[3:])  # the last key
print("after the second block, largest difference to naive attention:",
      (online_softmax_finish(*state)[0] - naive_attention(q, k, v).out).abs().max().item())  # fmt: skip

# %% [markdown]
# This step is exercise 1 in [`exercises/03_tiling.ipynb`](../exercises/03_tiling.ipynb), and the final division
# exercise 2.

# %% [markdown]
# ## 4 · The whole tiled loop
#
# Now cut Q into blocks of `block_q` rows and K, V into blocks of `block_k` keys. The
# loop of FlashAttention-2's forward pass (Dao 2023, Algorithm 1), which
# `tiled_attention_loops` follows line by line:
#
# ```
# for each query block Q_i:                        # outer loop: independent, in parallel on a GPU
#     load Q_i;  m = −∞, ℓ = 0, acc = 0            # kept on chip for the whole inner loop
#     for each key block j:                        # inner loop
#         (causal: stop once the block starts after Q_i's last row)
#         load K_j, V_j
#         S_ij = Q_i K_jᵀ · scale, masked          # a block_q × block_k tile: the only piece of S
#         m, ℓ, acc = online_softmax_update(m, ℓ, acc, S_ij, V_j)
#     O_i = acc / ℓ,  L_i = m + log ℓ;  store O_i, L_i
# ```
#
# On a GPU the outer loop is spread over the streaming multiprocessors, one query block
# per thread block, and the inner loop streams K and V through on-chip memory. On our CPU
# it is simply two Python loops, with batch and heads handled by broadcasting:

# %%
q, k, v = random_qkv(1000, 64, "float64", heads=2)  # (batch 1, heads 2, n 1000, d 64)
tiled = tiled_attention_loops(q, k, v, block_q=128, block_k=64, causal=True)
reference = naive_attention(q, k, v, causal=True)
print("output:", tuple(tiled.out.shape), "  logsumexp:", tuple(tiled.lse.shape))
print("largest difference to naive attention:", (tiled.out - reference.out).abs().max().item())
print("largest difference of L to torch.logsumexp(S):",
      (tiled.lse - torch.logsumexp(reference.scores, -1)).abs().max().item())  # fmt: skip

# %% [markdown]
# 1000 is not a multiple of 128 or 64: the last blocks are shorter, and nothing else
# changes. The readable loop runs a few hundred small matrix products through Python, so
# it is slow for long sequences. `tiled_attention` is the same recurrence vectorised: it
# keeps the loop over key blocks and processes **all** query rows in each step (one
# block of keys at a time against every row). Its working memory is one n × `block_k`
# slice of S at a time, still linear in n, and it is the version we measure below.

# %%
vectorised = tiled_attention(q, k, v, block_k=256, causal=True)
print("vectorised vs loops:", (vectorised.out - tiled.out).abs().max().item())

# %% [markdown]
# ## 5 · Watching the schedule
#
# Step through the tiles with the slider. The left picture is the n × n score matrix,
# one cell per (query, key) pair: the tile computed at this step is outlined, tiles
# already folded into (m, ℓ, acc) are blue, and with **causal** on, grey tiles lie
# entirely above the diagonal and are never computed or loaded; orange cells inside
# computed tiles are masked. The right picture follows one query row (the dotted line):
# its running max m (with each block's own max as ×) and its running sum ℓ, after each
# key block that has been processed so far. Below: what is on chip at this step.
#
# Things to try:
#
# * Watch the traced row's m: it only ever goes up. Whenever it jumps, the old ℓ is first
#   multiplied by α < 1 before the new block's terms are added, so ℓ can even shrink.
# * Count the tiles with causal on and off: for 5 query blocks, 15 against 25.
# * Change the block sizes: the amount on chip depends on the blocks and on d, never on n.

# %%
explorer = TilingExplorer(n=40, head_dim=8, block_q=8, block_k=8, causal=True)
display(explorer.widget)

# %% [markdown]
# The schedule itself is a plain list, so the counts can be checked:

# %%
schedule = tiling_schedule(40, 8, 8, causal=True)
print("tiles:", len(schedule), " computed:", sum(not t.skipped for t in schedule),
      " on the diagonal (partly masked):", sum(t.partial for t in schedule))  # fmt: skip
print("first steps (query block, key block):", [(t.q_block, t.k_block) for t in schedule if not t.skipped][:6])

# %% [markdown]
# ## 6 · Exact, measured
#
# "Exact" means: the same sum, regrouped, so the only differences are floating-point
# rounding. Each line compares both tiled versions with naive attention (which
# materialises S and P) on the same random inputs (n = 1000 at full size, head_dim 64,
# 2 heads, blocks of 64); and, for float32, all three with naive attention computed in
# float64.

# %%
print(f"{'dtype':>8} {'causal':>6} | {'loops−naive':>11} {'vect.−naive':>11} | "
      f"{'naive−exact':>11} {'loops−exact':>11} {'vect.−exact':>11}")  # fmt: skip
n_check = pick(full=1000, small=200)
exactness = [compare_with_naive(n_check, dtype=dtype, causal=causal)
             for dtype in ("float64", "float32") for causal in (False, True)]  # fmt: skip
for row in exactness:
    print(f"{row.dtype:>8} {row.causal!s:>6} | {row.loops_vs_naive:11.1e} "
          f"{row.vectorised_vs_naive:11.1e} | {row.naive_vs_exact:11.1e} "
          f"{row.loops_vs_exact:11.1e} {row.vectorised_vs_exact:11.1e}")  # fmt: skip
worst64 = max(max(r.loops_vs_naive, r.vectorised_vs_naive) for r in exactness if r.dtype == "float64")
ratio32 = max(max(r.loops_vs_exact, r.vectorised_vs_exact) / r.naive_vs_exact
              for r in exactness if r.dtype == "float32")  # fmt: skip
print(f"\nfloat64: largest difference {worst64:.1e};  "
      f"float32: tiled error / naive error ≤ {ratio32:.2f}")

# %% [markdown]
# In float64 the tiled results differ from naive attention by about 10⁻¹⁵, a few units
# of float64 rounding. In float32 the error of the tiled versions, measured against a
# float64 computation, is about 10⁻⁷ — the same size as the error naive attention makes
# in float32 itself: tiling adds no error of its own beyond rounding in a different
# order. (The test suite checks this on hundreds of random shapes, including n smaller
# than a block, n not a multiple of the block, and rows with every key masked, which
# give zeros and never nan.)

# %% [markdown]
# ## 7 · Memory, measured
#
# What does the vectorised version hold at its busiest moment? The first key block
# against all n rows: the score slice and its exponentials (n × B each, B = `block_k`),
# the accumulator and the new one being formed (n × d each), and six vectors of n
# numbers (m, ℓ and their updates):
#
# $$
# \text{peak}_\text{tiled} = (2nB + 2nd + 6n)\cdot b
# \qquad\text{vs.}\qquad
# \text{peak}_\text{naive} = (2n^2 + nd)\cdot b .
# $$
#
# Linear against quadratic. We measure both with the PyTorch allocator's peak
# (`attn_course.measure.measure_peak_bytes`, the method of notebook 01).
#
# **Where naive attention stops.** Its peak is 2 GiB at n = 16,384 in float32, 8 GiB at
# 32,768 and 32 GiB at 65,536. We run it only while its predicted peak stays within a
# budget of 4 GiB or a quarter of this machine's RAM, whichever is smaller, so that the
# notebook runs on a 16 GiB laptop too; the formula line continues beyond. The tiled
# version runs at every size.

# %%
HEAD_DIM, BLOCK_K = 64, 256
ram = physical_memory_bytes() or 16 * 2**30
NAIVE_BUDGET = min(4 * 2**30, ram // 4)
n_naive_max = max_n_for_memory(NAIVE_BUDGET, "float32", copies=2)  # 2 n² · 4 B <= budget
print(f"RAM {format_bytes_both(ram)}; naive budget {format_bytes_both(NAIVE_BUDGET)}: "
      f"naive runs up to n ≈ {n_naive_max:,} (S and P alone)")
for n in (16_384, 32_768, 65_536):
    print(f"  naive peak at n = {n:>6,}: {format_bytes_both(naive_attention_peak_bytes(n, HEAD_DIM, 'float32')):>22}"
          f"   tiled: {format_bytes_both(tiled_attention_peak_bytes(n, HEAD_DIM, 'float32', BLOCK_K)):>22}")  # fmt: skip

# %%
# Run time at full size: ≈ 10 s on a quiet 2-core CPU, up to 40 s on a busy one (2026-11-23); GPU: not measured.
sizes = pick(full=[512, 1024, 2048, 4096, 8192, 16_384, 32_768], small=[256, 512, 1024, 2048])
memory_rows = measure_tiled_memory(sizes, head_dim=HEAD_DIM, dtype="float32", block_k=BLOCK_K,
                                   naive_budget_bytes=NAIVE_BUDGET, progress=True)  # fmt: skip
print(f"{'n':>7} | {'tiled formula':>13} {'tiled measured':>14} | {'naive formula':>13} {'naive measured':>14}")
for row in memory_rows:
    naive = "not run" if row.naive_peak_bytes is None else format_bytes(row.naive_peak_bytes)
    print(f"{row.n:>7,} | {format_bytes(row.tiled_formula_bytes):>13} {format_bytes(row.tiled_peak_bytes):>14} | "
          f"{format_bytes(row.naive_formula_bytes):>13} {naive:>14}")  # fmt: skip

# %%
tiling_memory_figure(memory_rows, head_dim=HEAD_DIM, dtype="float32", block_k=BLOCK_K)

# %%
ns = [r.n for r in memory_rows]
measured_naive = [r for r in memory_rows if r.naive_peak_bytes is not None]
tiled_slope = loglog_slope(ns, [r.tiled_peak_bytes for r in memory_rows])
naive_slope = loglog_slope([r.n for r in measured_naive], [r.naive_peak_bytes for r in measured_naive])
exact_matches = sum(r.tiled_peak_bytes == r.tiled_formula_bytes for r in memory_rows)
print(f"fitted log-log slope: tiled {tiled_slope:.3f}, naive {naive_slope:.3f}")
print(f"tiled peak equal to the formula to the byte at {exact_matches} of {len(memory_rows)} sizes")
largest = memory_rows[-1]
print(f"at n = {largest.n:,}: tiled {format_bytes_both(largest.tiled_peak_bytes)}, naive would need "
      f"{format_bytes_both(largest.naive_formula_bytes)} ({largest.naive_formula_bytes / largest.tiled_peak_bytes:.0f}×)")  # fmt: skip

# %% [markdown]
# The tiled peak grows with slope 1 on the log-log plot (double n, double the memory),
# naive attention's with slope 2. The measured tiled peaks equal the formula to the
# byte. At short lengths the tiled version is not smaller at all: with n ≤ B the "slice"
# is the whole matrix. The difference is what happens as n grows, and it is the
# difference between a memory bill of n² and one of n.
#
# Two honest caveats. First, on a CPU the vectorised version still handles an
# n × B slice per step; a GPU kernel keeps only block_q × block_k per thread block, so
# its extra memory is just the output and L. Second, memory was never the only cost:
# the work is still ~4n²d FLOPs either way. What tiling changes on a GPU is *where*
# the n² intermediate values live, which is the next section.

# %% [markdown]
# ## 8 · Counting the bytes that cross the memory bus
#
# A GPU has two kinds of memory: a large main memory (HBM: tens of GiB at a few TB/s,
# numbers below) and a small on-chip memory (SRAM: shared memory /
# L1, a few hundred KiB per streaming multiprocessor; the FlashAttention paper estimates
# its bandwidth at about 19 TB/s on the A100, an order of magnitude more). Arithmetic
# happens on chip, so the question is how many bytes must travel between the two.
#
# **Naive attention** (three separate steps, each reading its input from HBM and
# writing its output back): read Q and K, write S; read S, write P; read P and V,
# write O:
#
# $$ \text{naive} = (4nd + 4n^2)\cdot b . $$
#
# **Tiled attention**, with on-chip memory of M elements: Q is read once, O and L are
# written once, and K and V are read once **per query block**. FlashAttention's
# analysis (Dao et al. 2022, Algorithm 1 and Theorem 2) sizes blocks to fill the chip:
# four d-wide blocks of about M / 4 elements, so the block that *stays* on chip while the
# other matrix streams past has about M / (4d) rows. The paper's loop keeps K, V on chip
# and streams Q; FlashAttention-2 (our loop) keeps Q on chip and streams K, V, so here the
# query block gets that size:
#
# $$
# B_r = \lceil M / 4d \rceil,\quad T_r = \lceil n / B_r \rceil,\qquad
# \text{tiled} = (2nd + 2nd\,T_r + n)\cdot b \;\approx\; 8\,\frac{n^2 d^2}{M}\cdot b .
# $$
#
# Θ(n² d² / M): still quadratic in n — every query block must see every key — but
# divided by M / d², the number of d × d blocks the chip can hold. (With the paper's
# B_r = min(M/4d, d) for the query block instead, K and V would travel n/d times,
# 2n² elements, barely better than naive: which block stays on chip matters.)
#
# First the check that the formula counts what the algorithm does. `HBMTraffic` counts
# every block the readable loop loads and stores, as it runs:

# %%
print(f"{'n':>5} {'block_q':>7} {'block_k':>7} {'causal':>6} | {'counted':>10} {'formula':>10}")
for n_io, bq, bk, causal in [(1000, 128, 64, False), (1000, 128, 64, True), (777, 100, 37, False),
                             (777, 100, 37, True), (256, 256, 256, False)]:  # fmt: skip
    q, k, v = random_qkv(n_io, 64, "float32")
    traffic = HBMTraffic()
    tiled_attention_loops(q, k, v, block_q=bq, block_k=bk, causal=causal, traffic=traffic)
    formula = tiled_hbm_bytes_for_blocks(n_io, 64, bq, bk, "float32", causal=causal)
    print(f"{n_io:>5} {bq:>7} {bk:>7} {causal!s:>6} | {traffic.total_bytes:>10,} {formula:>10,.0f}"
          f"  {'equal' if traffic.total_bytes == formula else 'DIFFERENT'}")  # fmt: skip

# %% [markdown]
# Counted and predicted agree to the byte, tails and causal skipping included. Now the
# comparison on real hardware sizes. What is M? The datasheet values, main memory and
# on-chip memory per streaming multiprocessor (SM):

# %%
for key, preset in (("A100", "A100-SXM4-80GB"), ("H100", "H100-SXM5-80GB")):
    chip, hbm = ON_CHIP_MEMORY[key], get_hardware(preset)  # notebook 02's hardware presets
    print(f"{chip.name}: HBM {format_bytes(hbm.memory_bytes, binary=True)} at "
          f"{hbm.bandwidth_bytes_per_s / 1e12:.2f} TB/s; on chip {chip.sm_count} SMs × "
          f"{format_bytes(chip.l1_shared_bytes_per_sm, binary=True)} L1/shared = "
          f"{format_bytes_both(chip.total_l1_shared_bytes)}, of which a kernel may use up to "
          f"{format_bytes(chip.max_shared_bytes_per_sm, binary=True)} per SM as shared memory")  # fmt: skip
    for head_dim in (64, 128):
        blocks = flash_block_sizes(head_dim, chip.max_shared_bytes_per_sm, "float16")
        print(f"    fp16, head_dim {head_dim}: M = {chip.max_shared_bytes_per_sm // 2:,} elements -> "
              f"block_q = {blocks.block_q}, block_k = {blocks.block_k}")  # fmt: skip

# %% [markdown]
# (Source: NVIDIA's A100 and H100 architecture whitepapers; the FlashAttention paper
# quotes "192 KB of on-chip SRAM per each of 108 streaming multiprocessors" for the A100,
# about 20 MB in all against 40–80 GB of HBM.) Real kernels use smaller, power-of-two
# tiles such as 128 × 64, because registers, pipelining (several K/V blocks in flight)
# and occupancy also compete for the same memory; we come back to what the formula says
# for those tiles after the figure.
#
# Traffic against n, for the A100's and H100's shared memory and for a small 48 KiB:

# %%
io_ns = [2**e for e in range(9, 18)]
srams = [48 * 1024, ON_CHIP_MEMORY["A100"].max_shared_bytes_per_sm, ON_CHIP_MEMORY["H100"].max_shared_bytes_per_sm]
hbm_traffic_figure(io_ns, head_dim=64, sram_sizes=srams, dtype="float16")

# %%
print(f"{'n':>7} | " + " | ".join(f"naive/tiled, M = {s // 1024} KiB" for s in srams))
for n in (1024, 4096, 16_384, 131_072):
    ratios = [naive_hbm_bytes(n, 64, "float16") / tiled_hbm_bytes(n, 64, s, "float16") for s in srams]
    print(f"{n:>7,} | " + " | ".join(f"{r:>25.1f}" for r in ratios))
n_big, sram = 131_072, ON_CHIP_MEMORY["A100"].max_shared_bytes_per_sm
constant = tiled_hbm_bytes(n_big, 64, sram, "float16") / 2 / (n_big**2 * 64**2 / (sram / 2))
print(f"\ntiled traffic / (n² d² / M) at n = {n_big:,}, A100: {constant:.2f} (→ 8 as n grows)")

# %% [markdown]
# For head_dim 64 in fp16 and long sequences, with query blocks that fill all of an
# A100's or an H100's shared memory, the formula says the tiled algorithm moves an order
# of magnitude fewer bytes than naive attention; with only 48 KiB, a few times fewer
# (the table). More on-chip memory means bigger query blocks and fewer trips for K and V.
# Both curves have slope 2: tiling does not make attention's traffic linear, it divides
# it by a constant (about M / (2d²)) and removes the n² *storage* entirely.
#
# **With the tiles real kernels use.** No kernel gives one query block all of shared
# memory: K/V tiles for the pipeline, the score tile and the accumulator's registers
# compete for it. For n ≫ block_q the same formula gives naive / tiled → 4n² / (2n²d /
# block_q) = 2·block_q / d, so with a 128 × 64 tile (the largest forward tile of the
# course's kernel, and a common one in FlashAttention-2) it is much smaller, and it halves
# from head_dim 64 to 128. `hbm_traffic_ratio` computes it; in brackets, against an
# unfused eager implementation whose scaling and masking are passes of their own
# (`naive_hbm_bytes(..., extra_passes=2)`: each pass writes and reads the n × n matrix
# once more):

# %%
n_ratio, real_tile = 131_072, (128, 64)
print(f"naive / tiled traffic at n = {n_ratio:,}, fp16, non-causal, per head")
print(f"{'head_dim':>8} | {'128 × 64 tiles (unfused naive)':>30} | {'blocks filling A100 shared memory':>34} | "
      f"{'blocks filling H100 shared memory':>34}")
for head_dim in (64, 128):
    real = hbm_traffic_ratio(n_ratio, head_dim, *real_tile)
    unfused = hbm_traffic_ratio(n_ratio, head_dim, *real_tile, extra_passes=2)
    cells = [f"{real:.1f}× ({unfused:.1f}×)"]
    for key in ("A100", "H100"):
        blocks = flash_block_sizes(head_dim, ON_CHIP_MEMORY[key].max_shared_bytes_per_sm, "float16")
        cells.append(f"{hbm_traffic_ratio(n_ratio, head_dim, *blocks):.1f}× ({blocks.block_q} × {blocks.block_k} tiles)")
    print(f"{head_dim:>8} | {cells[0]:>30} | {cells[1]:>34} | {cells[2]:>34}")

# %% [markdown]
# With real tiles the bytes alone predict only a few times less traffic at head_dim 64,
# and less at 128: the traffic formula by itself does not account for the "2–4×" and
# "3–5×" speed-ups quoted in the course's sources. The byte count leaves out:
#
# * **the L2 cache.** The formula charges every pass over K and V to HBM. Between the SMs
#   and HBM sits an L2 cache of tens of MB (printed below); the query-block programs of one
#   head run at about the same time and read the same K/V blocks, so many re-reads are L2
#   hits, and a real kernel's HBM traffic is closer to reading Q, K and V once and writing
#   O once than the formula says.
# * **the extra n² passes of unfused code.** The formula's naive baseline is the
#   FlashAttention paper's Algorithm 0, with 4n² of score traffic. Eager code runs the
#   scaling, the mask, the softmax and dropout as kernels of their own, each reading and
#   writing the n × n matrix again (the bracketed column: two more passes double the naive
#   bill), and dropout writes its mask besides.
# * **launch overhead.** Each of those passes is a kernel launch with a fixed cost, which
#   dominates at short n; a fused kernel pays it once.
# * **the arithmetic itself.** Once the n² traffic is gone, the exp and max work and how it
#   is spread over thread blocks and warps decide the speed: FlashAttention-2's gain over
#   FlashAttention-1 comes from that (Dao 2023, §3: fewer non-matmul FLOPs, parallelism
#   over the sequence, a better split of work between warps), with the same order of HBM
#   traffic.
#
# So the formula explains why a fused kernel escapes naive attention's n² traffic; how much
# faster it is on a given GPU has to be measured (notebook 04).

# %%
for key in ("A100", "H100"):
    chip = ON_CHIP_MEMORY[key]
    for head_dim in (64, 128):
        kv_one_head = kv_cache_bytes(1, 1, head_dim, 16_384, dtype="float16")  # K and V of one head
        print(f"{chip.name}: L2 {format_bytes_both(chip.l2_bytes)}; K and V of one head at n = 16,384, "
              f"head_dim {head_dim}, fp16: {format_bytes_both(kv_one_head)}, "
              f"{chip.l2_bytes // kv_one_head} heads' worth")  # fmt: skip

# %% [markdown]
# ## 9 · Causal attention: skip half the tiles
#
# With a causal mask, query i may only see keys j ≤ i. A tile whose first key comes
# after its query block's last row is entirely masked, so the loop does not compute it,
# does not load its K and V, and stops the inner loop there. With T blocks per side, query
# block i visits key blocks 0 … i: 1 + 2 + … + T = T(T + 1)/2 tiles out of T².

# %%
print(f"{'n':>7} {'block':>5} | {'all tiles':>9} {'causal':>7} {'fraction':>8} | {'K/V bytes causal / full':>23}")
for n, block in [(1024, 128), (4096, 128), (16_384, 128), (131_072, 128)]:
    full_tiles, causal_tiles = visited_tiles(n, block, block), visited_tiles(n, block, block, True)
    qo = (2 * n * 64 + n) * 2  # Q, O and L: the same either way
    kv_full = tiled_hbm_bytes_for_blocks(n, 64, block, block, "float16") - qo
    kv_causal = tiled_hbm_bytes_for_blocks(n, 64, block, block, "float16", causal=True) - qo
    print(f"{n:>7,} {block:>5} | {full_tiles:>9,} {causal_tiles:>7,} "
          f"{causal_visited_fraction(n, block, block):>8.3f} | {kv_causal / kv_full:>23.3f}")  # fmt: skip

# %% [markdown]
# The fraction is 1/2 + 1/(2T): 56 % of the tiles at T = 8, and within a fraction of a
# percent of one half for long sequences. The same holds for the FLOPs and the K/V
# traffic. Our vectorised CPU version does the same skipping (each key block only meets
# the rows at or after its first key). Exercise 4 asks for this count.

# %% [markdown]
# ## Summary
#
# * Attention's output is n × d; the n × n matrices S and P are only intermediate values,
#   and storing them is a choice, not a necessity.
# * Softmax does not need the whole row at once. A running max m, a running sum ℓ and an
#   unnormalised accumulator, rescaled by α = e^(m_old − m_new) whenever the max grows,
#   summarise all the scores seen so far: the online softmax.
# * Tiling Q into query blocks and K, V into key blocks and applying that update tile by
#   tile gives exactly the same output (measured: ~10⁻¹⁵ in float64, naive attention's
#   own rounding level in float32) and the logsumexp L = m + log ℓ for free.
# * Peak memory becomes linear in n: measured slope ≈ 1 for the tiled version against ≈ 2
#   for naive attention, and the tiled peak matches its formula to the byte.
# * The traffic to main memory is still quadratic, Θ(n² d² / M), but divided by the
#   number of d × d blocks that fit on chip. With query blocks that fill shared memory
#   that is an order of magnitude less than naive attention for head_dim 64 in fp16; with
#   the 128 × 64 tiles real kernels use, 2·block_q / d, a few times less (section 8
#   prints both). L2 hits, the extra passes of unfused code and launch overhead are not in
#   the formula. The byte count of an instrumented run equals the formula exactly.
# * Causal attention skips the tiles above the diagonal: T(T + 1)/2 of T², about half.
#
# **Next:** [04 · FlashAttention in Triton](04_flash_attention.ipynb) writes this loop as
# a GPU kernel, where the tiles really live in on-chip memory, and measures the speed-up.
# Practise first with the exercises in [`exercises/03_tiling.ipynb`](../exercises/03_tiling.ipynb).

# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · The n × n score matrix
#
# Attention lets every token look at every other token. That one design choice is
# where the quadratic cost comes from: a sequence of *n* tokens produces an *n × n*
# table of scores, and that table has to be computed, normalised and (in the naive
# algorithm) stored. In this notebook you build that table, look at it, and weigh it.
#
# **You will be able to**
#
# 1. say what one entry of the score matrix S = QKᵀ/√d means, and why there are n² of them;
# 2. compute S, the probabilities P = softmax(S) and the output O = PV with a small
#    reference implementation, and confirm it against PyTorch's own attention;
# 3. read an attention heatmap, and see what a causal mask does to it;
# 4. explain why a textbook softmax overflows, and fix it by subtracting the row maximum;
# 5. predict the bytes of S and P for any n, head count and dtype, and check the
#    prediction against three measurements on this machine;
# 6. scale the numbers up to real context lengths (8 K, 32 K, 1 M tokens).
#
# **Prerequisites:** matrix multiplication, what softmax does, basic PyTorch tensors.
# No GPU needed: everything runs on a CPU.
#
# **Run time at full size:** CPU 45 s–3 min: ≈ 45 s on a quiet 2-core machine (2026-11-23,
# 43–51 s in three runs), up to 4× as long when other programs share its cores. Needs
# about 3 GB of free RAM. GPU: not measured yet (no GPU run has been recorded for this
# course).
#
# **Size knob.** The run time depends on the number of cores, on what else the machine is
# doing, and on the size knob `ATTN_COURSE_SIZE`: with `small` (start the course with
# `ATTN_COURSE_SIZE=small make lab`, or run `%env ATTN_COURSE_SIZE=small` before the first
# code cell) every cell runs on tiny inputs, in about 15 s; the text describes the full
# size.
#
# The exercises for this notebook are in [`exercises/01_score_matrix.ipynb`](../exercises/01_score_matrix.ipynb).

# %%
from itertools import pairwise

import torch
import torch.nn.functional as F
from IPython.display import display

from attn_course.config import course_size, pick
from attn_course.cost import format_bytes_both, max_n_for_memory, score_count, score_matrix_bytes
from attn_course.measure import fit_trend, loglog_slope, machine_load, physical_memory_bytes
from attn_course.memory import format_table, measure_naive_attention
from attn_course.scores import (
    DTYPE_NAMES,
    largest_safe_exponent,
    naive_attention,
    naive_softmax,
    stable_softmax,
    toy_sentence_qkv,
)
from attn_course.ui.scores import ScoreExplorer, memory_scaling_figure, time_scaling_figure

torch.set_printoptions(precision=3, sci_mode=False, linewidth=110)
print(f"size: {course_size()}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")

# %% [markdown]
# ## 1 · Every query meets every key
#
# Picture each token doing two things at once. As a **query** it asks a question
# ("which earlier word is my subject?"); as a **key** it advertises what it has to
# offer. Both are vectors of length *d*. How well key *j* answers query *i* is their
# dot product, one number.
#
# Nothing tells a token in advance which other tokens matter, so attention asks the
# question of *all* of them: query 0 against keys 0 … n−1, query 1 against keys
# 0 … n−1, and so on. That is n · n = **n²** dot products. Lay them out with one row
# per query and one column per key and you have the score matrix.
#
# Doubling the length of the text doubles the rows *and* the columns: four times the
# scores.

# %% [markdown]
# ## 2 · The formula
#
# Stack the n query vectors as rows of Q (n × d), the keys as rows of K (n × d) and the
# values as rows of V (n × d). Then
#
# $$
# S = \frac{Q K^\top}{\sqrt d}\ \ (n \times n), \qquad
# P = \operatorname{softmax}_{\text{rows}}(S)\ \ (n \times n), \qquad
# O = P\,V\ \ (n \times d).
# $$
#
# * $S_{ij}$ is the score of key *j* for query *i*.
# * Softmax turns each row into weights that are positive and sum to 1: $P_{ij}$ is the
#   share of attention query *i* gives to token *j*.
# * Row *i* of O is the weighted average of the value vectors: what token *i* takes away.
# * Why divide by $\sqrt d$? A dot product of *d* random unit-variance terms has variance
#   *d*; dividing by $\sqrt d$ brings it back to 1, so the softmax neither saturates
#   nor flattens as *d* changes.
#
# Real models run this for several **heads** in parallel (each with its own Q, K, V of
# width d = d_model / heads) and for a whole **batch** of sequences, so tensors have shape
# `(batch, heads, n, d)`, and every head of every sequence gets its own n × n matrices.
#
# `attn_course.scores.naive_attention` implements exactly these three lines, keeps S and
# P, and hands them back. First, is it right? Compare it with PyTorch's
# `scaled_dot_product_attention` on random inputs:

# %%
generator = torch.Generator().manual_seed(0)
q, k, v = (torch.randn(2, 4, 50, 16, generator=generator, dtype=torch.float64) for _ in range(3))
for causal in (False, True):
    ours = naive_attention(q, k, v, causal=causal).out
    theirs = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    print(f"causal={causal}: largest difference {(ours - theirs).abs().max().item():.1e}")

# %% [markdown]
# Differences at the level of float64 rounding (about 10⁻¹⁶): the same function.

# %% [markdown]
# ## 3 · Looking at S and P
#
# Random vectors give a random-looking matrix. To see *structure*, we need queries and
# keys that mean something. `toy_sentence_qkv` builds them for a short sentence, with no
# trained model and no download: every word gets a fixed random vector (the same one each
# time the word appears), every position a sinusoidal code as in the original
# Transformer, and three hand-made heads combine them:
#
# | head | query of token *i* | key of token *j* | so the score is high when … |
# |---|---|---|---|
# | same word | word(i) | word(j) | *j* is the same word as *i* |
# | neighbours | position(i) | position(j) | *j* is close to *i* |
# | previous token | position(i) | position(j + 1) | *j* = *i* − 1 |
#
# Trained models learn heads like these (a "previous token" head is one half of the
# induction-head circuit that lets models continue repeated patterns).

# %%
toy = toy_sentence_qkv()
result = naive_attention(toy.q, toy.k, toy.v)
n = len(toy.tokens)
print("tokens:", toy.tokens)
print("q, k, v:", tuple(toy.q.shape), "   (batch, heads, n, head_dim)")
print("S and P:", tuple(result.scores.shape), "   (batch, heads, n, n): n² =", n * n, "per head")
print("O:      ", tuple(result.out.shape))

# %% [markdown]
# Explore it. Switch between **S** (raw scores) and **P** (after softmax), pick a head,
# and toggle the **causal mask**. Type your own sentence, too: repeated words make the
# stripes of the "same word" head.
#
# What to look for:
#
# * **same word**: the four copies of "the" form a grid: each "the" spreads its attention
#   equally, 1/4 each, over all four. "cat", "sat" and "on" appear twice: 1/2 each.
# * **neighbours**: a band along the diagonal. Position codes of nearby tokens are
#   similar, so their dot products are large; they fall off with distance.
# * **previous token**: a band one step *below* the diagonal: token *i* looks at *i* − 1.
# * **causal mask**: a decoder (GPT-style) may not look ahead, so everything above the
#   diagonal is masked: scores become −∞ (drawn blank) and probabilities exactly 0. Each
#   row then spreads its weight only over the past, e.g. the first "the" can only attend
#   to itself.

# %%
explorer = ScoreExplorer()
display(explorer.widget)

# %% [markdown]
# The pictures are small, but the claims about them can be checked in numbers. Rows of P
# sum to 1; under the causal mask, P is exactly zero above the diagonal:

# %%
causal_result = naive_attention(toy.q, toy.k, toy.v, causal=True)
future = torch.ones(n, n, dtype=torch.bool).triu(1)
print("row sums of P, head 0:", result.probs[0, 0].sum(-1))
print("largest P above the diagonal with the causal mask:", causal_result.probs[..., future].max().item())
print('"same word" head, row of the first "the":', result.probs[0, 0, 0])

# %% [markdown]
# ## 4 · Softmax, safely
#
# Straight from the definition, softmax is exp(x) / Σ exp(x). That is fine on paper and
# fragile in floating point: exp grows so fast that modest scores overflow.
# The largest x whose exp is still finite is ln(largest representable number):

# %%
for name in DTYPE_NAMES:
    print(f"{name:9s} exp(x) overflows above x = {largest_safe_exponent(name):7.2f}")

# %% [markdown]
# In float16 that is a score of about **11**. The toy sentence's "previous token" head
# already produces larger scores than that:

# %%
print("largest score per head:", result.scores.amax(dim=(-2, -1))[0])
scores_fp16 = result.scores[0, 2].half()
print("naive softmax of that head in float16 -> nan entries:", naive_softmax(scores_fp16).isnan().sum().item())

# %% [markdown]
# Here is the failure in miniature: once exp gives inf, inf / inf is nan. At the other
# end, if every score is very negative, every exp underflows to 0 and 0 / 0 is nan too.

# %%
print("float32 [1000, 1001, 1002]   naive:", naive_softmax(torch.tensor([1000.0, 1001.0, 1002.0])))
print("float16 [10, 11, 12]         naive:", naive_softmax(torch.tensor([10.0, 11.0, 12.0]).half()))
print("float32 [-1000, -1001, -1002] naive:", naive_softmax(torch.tensor([-1000.0, -1001.0, -1002.0])))

# %% [markdown]
# **The fix** costs nothing: subtract the row's maximum *m* before exponentiating.
#
# $$
# \frac{e^{x_j - m}}{\sum_k e^{x_k - m}} = \frac{e^{-m}\,e^{x_j}}{e^{-m}\sum_k e^{x_k}}
# = \frac{e^{x_j}}{\sum_k e^{x_k}}
# $$
#
# The result is mathematically identical, but now every exponent is ≤ 0, so every exp
# lies in (0, 1] (no overflow), and the largest is exactly 1, so the sum is at least 1
# (no 0 / 0). That is what `stable_softmax` does (and what `torch.softmax` does inside):

# %%
for x in (torch.tensor([1000.0, 1001.0, 1002.0]), torch.tensor([10.0, 11.0, 12.0]).half(),
          torch.tensor([-1000.0, -1001.0, -1002.0])):  # fmt: skip
    print(f"{str(x.dtype):14s} stable: {stable_softmax(x)}   torch.softmax: {torch.softmax(x, -1)}")

# %% [markdown]
# Remember this trick: it is also the seed of FlashAttention. Keeping a *running*
# maximum and rescaling partial sums lets softmax be computed block by block, without
# ever holding a whole row of S.
#
# One more corner: masked scores are −∞ and get weight exactly 0. If a query has *every*
# key masked, its row has no meaningful softmax; `stable_softmax` returns a row of zeros
# for it (and attention returns a zero output) instead of nan.

# %% [markdown]
# ## 5 · Counting bytes
#
# S has one entry per (query, key) pair, per head, per sequence in the batch, and each
# entry takes as many bytes as its dtype (4 for float32, 2 for float16/bfloat16):
#
# $$
# \text{bytes}(S) = n^2 \cdot \text{heads} \cdot \text{batch} \cdot \text{bytes per element}.
# $$
#
# P is the same size. For n = 1024 in float16, one head: 1024 · 1024 · 2 = 2,097,152 bytes
# = 2 MiB. The function and the real tensors agree:

# %%
for dtype in ("float32", "float16"):
    q, k, v = (torch.randn(1, 8, 1024, 64).to(DTYPE_NAMES[dtype]) for _ in range(3))
    S = naive_attention(q, k, v).scores
    print(f"{dtype}, 8 heads, n=1024: formula {score_matrix_bytes(1024, dtype, heads=8):>11,} B"
          f"   tensor {S.element_size() * S.nelement():>11,} B")  # fmt: skip
del q, k, v, S

# %% [markdown]
# ### How much memory does naive attention need at its peak?
#
# The tensors you hold are not the whole story: at its busiest moment, naive attention
# holds S and P at once (softmax needs S to write P) plus the output O. Our model:
#
# $$
# \text{peak} = \underbrace{2\,n^2 \cdot \text{heads} \cdot \text{batch} \cdot b}_{S\ \text{and}\ P}
#   + \underbrace{n \cdot d \cdot \text{heads} \cdot \text{batch} \cdot b}_{O}
# $$
#
# (inputs q, k, v not counted; `naive_attention` applies the scale and the mask in place,
# so no third n × n buffer appears). A model is only as good as its agreement with a
# measurement, so we measure the peak two independent ways:
#
# * **PyTorch allocator peak.** `torch.profiler` with `profile_memory=True` records every
#   allocation and free PyTorch makes; the maximum of their running sum is the peak. It
#   sees temporaries, and it counts exactly what PyTorch asked for.
# * **Peak resident memory.** Linux keeps a high-water mark of a process's physical
#   memory (`VmHWM` in `/proc/self/status`), which can be reset by writing to
#   `/proc/self/clear_refs`. Each n runs in a fresh Python process: baseline, reset, one
#   call, read the mark. This is what the machine really spent, including library
#   workspaces, so it may come out a little higher.
#
# Together with the storage of the returned S tensor, that gives three measurements to
# set against the formula. (At full size the run below takes ≈ 30 s on a quiet 2-core
# CPU, up to 2 min on a busy one; the largest n needs about 2 GiB.)

# %%
# Run time at full size: ≈ 30 s on a quiet 2-core CPU, up to 2 min on a busy one (2026-11-23); GPU: not measured.
sizes = pick(full=[256, 512, 1024, 2048, 4096, 8192, 16384], small=[128, 256, 512])
HEAD_DIM = 64
rows = measure_naive_attention(sizes, head_dim=HEAD_DIM, dtype="float32", progress=True)
print(format_table(rows))

# %% [markdown]
# Read the table column by column:
#
# * the formula and the measured S tensor agree to the byte;
# * the allocator peak matches the S + P + O model exactly: the small vectors the model
#   leaves out (each row's max and sum) have been freed by the time O is allocated;
# * the resident memory is the rough one. For small n (tensors under about a megabyte)
#   it is noise: the C library hands out memory the process already holds, so the ratio
#   can even drop below 1, and fixed library workspaces of about a megabyte push it above.
#   From a few thousand tokens on, where the n² term dominates, it lands within a few
#   percent above the formula: the physical machine confirms the model.
#
# On log-log axes a power law is a straight line whose slope is the exponent:

# %%
memory_scaling_figure(rows, head_dim=HEAD_DIM, dtype="float32")

# %%
ns = [row.n for row in rows]
print(f"fitted exponent of the allocator peak: {loglog_slope(ns, [r.peak_bytes for r in rows]):.3f}")
upper = rows[-4:]  # the largest sizes, where the n² work should dominate
time_trend = fit_trend([r.n for r in upper], [r.seconds for r in upper])
print(time_trend.sentence(f"the time for n >= {upper[0].n}", "n", expected=2, load=machine_load()))
for before, after in pairwise(rows):
    print(f"n {before.n:>6} -> {after.n:>6}: peak ×{after.peak_bytes / before.peak_bytes:.2f}, "
          f"time ×{after.seconds / before.seconds:.2f}")  # fmt: skip

# %% [markdown]
# The memory grows ×4 per doubling (a bit less while the linear O term still counts),
# like clockwork, whatever else the machine is doing. Time is a noisier measurement:
#
# * at small n, fixed per-call overheads dominate, so it grows more slowly than n²;
# * for larger n the n² work takes over (two n × n × d matrix products and a few passes
#   over the n × n matrix for the softmax), and a step can exceed ×4 when S outgrows a
#   level of the CPU cache and every pass has to go out to main memory;
# * if other programs compete for the cores, single points can be far off: the table
#   reports the fastest of several runs, which removes most but not all of that.
#
# So the work predicts an exponent near 2 for the larger sizes. The sentence printed for
# the time is decided by the fit, not written in advance: it says "climbs" only when the
# whole 95 % confidence interval of the fitted exponent is above 0 and the line explains
# most of the variation, says whether that interval contains 2, and otherwise prints "too
# noisy on this machine" with the reasons (`attn_course/measure.py`). Rerun the cell if it
# does.

# %%
time_scaling_figure(rows)

# %% [markdown]
# ## 6 · Scaling up to real context lengths
#
# The formula needs no measurement to extrapolate. Here are the sizes quoted by the two
# texts this course responds to, a textbook section on attention's quadratic cost and a
# model answer to an interview question about it (notebook 02, section 8, describes both
# and checks every claim they make), **per head and per layer**, computed:

# %%
print(f"{'n':>9} | {'scores (one head)':>18} | {'S in float32':>22} | {'S in float16':>22}")
for n_tokens in (4096, 8000, 8192, 32_000, 32_768, 131_072, 1_000_000):
    print(f"{n_tokens:>9,} | {score_count(n_tokens):>18,.0f} | "
          f"{format_bytes_both(score_matrix_bytes(n_tokens, 'float32')):>22} | "
          f"{format_bytes_both(score_matrix_bytes(n_tokens, 'float16')):>22}")  # fmt: skip

# %% [markdown]
# Checking the quoted figures against the table:
#
# * **8 000 tokens → "sixty-four million scores per head per layer":** 8000² = 64,000,000
#   exactly (8192² = 67,108,864 = 64 Mi). ✓
# * **1 M tokens → 10¹² scores → "2 TB in FP16":** 10¹² · 2 B = 2 · 10¹² B = 2.00 TB
#   (1.82 TiB) for **one** head of **one** layer. ✓
# * **n = 4096, 32-bit floats → "64 MB per head":** 4096² · 4 = 67,108,864 B = 64 MiB. ✓
# * **n = 32 000 → "~4 GB per head":** 4.1 GB in float32 (half that in float16). ✓ The
#   interview answer calls this "infeasible without approximation"; FlashAttention shows that
#   it is avoidable *exactly*, with no approximation at all, by never storing S in full
#   (the running-maximum trick from section 4 is the key).
#
# Turn it around: how long a sequence fits in this machine's memory, if one head's S and
# P must both fit in it?

# %%
ram = physical_memory_bytes()
if ram is not None:
    for dtype in ("float32", "float16"):
        print(f"{format_bytes_both(ram)} of RAM, {dtype}: n <= {max_n_for_memory(ram, dtype, copies=2):,} tokens")
    print("with twice the RAM, float32:", f"{max_n_for_memory(2 * ram, 'float32', copies=2):,}", "tokens (×√2)")

# %% [markdown]
# Doubling the memory buys only √2 ≈ 1.41× the context: that is the quadratic wall seen
# from the other side. And this is one head of one layer, for one sequence: a real model
# multiplies it by heads, by layers (if activations are kept for training) and by batch
# size.

# %% [markdown]
# ## Summary
#
# * Attention scores every query against every key: an n × n matrix S per head, per
#   sequence. Softmax turns its rows into weights P, also n × n; the output is O = PV.
# * The pattern in P is the model's routing: same-word stripes, local bands,
#   previous-token diagonals; a causal mask zeroes everything above the diagonal.
# * Softmax must subtract the row maximum before exp, or it overflows (in float16 a score
#   of about 11 suffices). Same result, no inf, no nan.
# * bytes(S) = n² · heads · batch · bytes per element, and naive attention's peak is about
#   twice that (S and P alive together) plus the output. Measurements on this machine
#   agree: to the byte for the tensors, within a fraction of a percent for the allocator
#   peak, within a few percent for physical memory at large n.
# * Double n, quadruple the memory. At 1 M tokens a single head's S is 2 TB in float16.
#
# **Next:** [02 · Cost arithmetic](02_cost_arithmetic.ipynb) multiplies these per-head numbers out to whole
# models (heads, layers, batch, training vs inference), counts the FLOPs, and asks how
# long moving those bytes takes on real hardware. Practise first with the exercises in
# [`exercises/01_score_matrix.ipynb`](../exercises/01_score_matrix.ipynb).

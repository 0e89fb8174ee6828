# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Exercises: tiling and the online softmax
#
# Four small functions, the pieces FlashAttention is made of. They go with
# [`notebooks/03_tiling.ipynb`](../notebooks/03_tiling.ipynb); read its sections 2 to 7 first.
#
# **How it works.** Write each function where it says `# YOUR CODE HERE` (delete the
# `raise NotImplementedError()` line), run the cell, then run the check cell right below
# it. The check calls your function on several inputs, edge cases included, and prints
# ✓ when all are right, or ✗ with what went wrong and a hint. An exercise you have not
# started shows "not attempted". The checks live in the course package
# (`attn_course/checks/tiling.py`).
#
# Run time: a few seconds. No GPU needed.

# %%
import math

import torch

from attn_course.grade import check

# %% [markdown]
# ## Exercise 1 · One step of the online softmax (2 points)
#
# A tiled attention keeps, for each of r query rows, a running max `m` (shape `(r,)`),
# a running sum `l` (shape `(r,)`) and an unnormalised output `acc` (shape `(r, d_v)`).
# Write `online_softmax_step(m, l, acc, s_block, v_block)` that folds one more block of
# keys into them and returns the new `(m_new, l_new, acc_new)`:
#
# * `s_block` (r × c): the scaled scores of the r rows against the c new keys; masked
#   entries are `-inf`;
# * `v_block` (c × d_v): the values of those keys.
#
# $$
# m_{\text{new}} = \max(m, \operatorname{rowmax}(s)), \quad
# \alpha = e^{m - m_{\text{new}}}, \quad
# p = e^{s - m_{\text{new}}}, \quad
# \ell_{\text{new}} = \alpha\,\ell + \operatorname{rowsum}(p), \quad
# \text{acc}_{\text{new}} = \alpha\,\text{acc} + p\,V.
# $$
#
# Before the first block, `m` is `-inf` and `l`, `acc` are zeros; then α = e^(−∞) = 0
# and the empty sums are simply replaced. One case needs care: a row whose keys have
# **all** been masked so far (the first blocks of a causal row, padding) still has
# m_new = −∞ after the block, and e^(−∞ − (−∞)) is `nan`. Such a row must stay m = −∞,
# ℓ = 0, acc = 0: inside the exponentials, shift by 0 instead of m_new where m_new is −∞.
# Don't modify the inputs in place, and return tensors of the inputs' dtype.
#
# *Hints:* `torch.maximum` (element-wise max of two tensors), `s_block.amax(dim=-1)`,
# `m_new.masked_fill(m_new == -math.inf, 0.0)`, and `[:, None]` to turn a per-row vector
# into a column that broadcasts over a matrix.
#
# *The check* tries a first block, a block that raises the max in some rows and not in
# others, one that raises it nowhere, a first block with a fully masked row, a later
# block fully masked for a row that had a finite max, rows of very different scale
# (scores near ±800, and ±100 in float32) and a single row and key; then it chains three
# masked blocks and compares acc / ℓ with softmax(S) V. It recognises the usual slips:
# forgetting to rescale ℓ or acc, the block's own max or one max for all rows, the
# inverted factor, α without `[:, None]`, normalising too early, exp overflowing, and
# `nan` in a fully masked row.
#
# First, why a correction is needed at all: the softmax of each half of a row, glued
# together, is not the softmax of the row. Each half was normalised on its own.

# %%
row = torch.tensor([[1.0, 3.0, 2.0, 5.0]], dtype=torch.float64)
halves = [torch.softmax(row[:, :2], dim=-1), torch.softmax(row[:, 2:], dim=-1)]
print("softmax of the whole row:   ", torch.softmax(row, dim=-1))
print("two halves, glued together: ", torch.cat(halves, dim=-1))


# %% nbgrader={"grade": false, "grade_id": "online_softmax_step", "locked": false, "schema_version": 3, "solution": true}
def online_softmax_step(m, l, acc, s_block, v_block):  # noqa: E741
    """Fold one block of scores and values into the running (m, l, acc)."""
    ### BEGIN SOLUTION
    m_new = torch.maximum(m, s_block.amax(dim=-1))
    # A row with no unmasked key yet has m_new = -inf: shift it by 0, not by -inf
    # (-inf - -inf would be nan); its exponentials are then exp(-inf) = 0.
    shift = m_new.masked_fill(m_new == -math.inf, 0.0)
    alpha = torch.exp(m - shift)  # rescales sums taken under the old max; 0 on the first block
    p = torch.exp(s_block - shift[:, None])  # every exponent <= 0: no overflow
    l_new = alpha * l + p.sum(dim=-1)
    acc_new = alpha[:, None] * acc + p @ v_block
    return m_new, l_new, acc_new
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "online_softmax_step_check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check("online_softmax_step", online_softmax_step)

# %% [markdown]
# **Why it works.** After any number of blocks, ℓ = Σ e^(s − m) and acc = Σ e^(s − m) v
# over all keys seen, with m the max over all of them. When a larger max arrives, every
# old term e^(s − m_old) must become e^(s − m_new) = e^(s − m_old) · e^(m_old − m_new):
# one multiplication by α fixes the whole sum at once, without revisiting a single old
# score. That is why the scores never need to be stored.

# %% [markdown]
# ## Exercise 2 · The final division and the logsumexp (1 point)
#
# When every key block has been folded in, write `finish(m, l, acc)` that returns
# `(out, lse)`:
#
# $$ \text{out} = \text{acc} / \ell \ \ (\text{row by row}), \qquad
#    \text{lse} = m + \log \ell = \log \textstyle\sum_j e^{s_j}. $$
#
# FlashAttention saves `lse` (one number per row) for the backward pass instead of a row
# of P. A row whose keys were **all** masked has ℓ = 0 and m = −∞: return `out = 0` and
# `lse = -inf` for it, never `nan`.
#
# *Hints:* `l.masked_fill(l == 0, 1.0)` avoids 0 / 0; `torch.where(cond, a, b)`.
#
# *The check* tries rows after one block, a fully masked row, every row masked, rows with
# m near ±1000 (e^1000 overflows), float32, one row, and as many rows as value columns.
# It recognises dividing by e^m instead of ℓ, ℓ not broadcast with `[:, None]`, leaving m
# out of lse, log(e^m · ℓ) overflowing, and `nan` or lse = 0 for an empty row.


# %% nbgrader={"grade": false, "grade_id": "online_softmax_final", "locked": false, "schema_version": 3, "solution": true}
def finish(m, l, acc):  # noqa: E741
    """Output acc / l and logsumexp m + log l; zeros and -inf for rows with l == 0."""
    ### BEGIN SOLUTION
    empty = l == 0
    out = acc / l.masked_fill(empty, 1.0)[:, None]  # acc is 0 in an empty row: out = 0
    lse = torch.where(empty, torch.full_like(m, -math.inf), m + torch.log(l))
    return out, lse
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "online_softmax_final_check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check("online_softmax_final", finish)

# %% [markdown]
# **Why m + log ℓ.** ℓ = Σ e^(s − m) = e^(−m) Σ e^s, so log Σ e^s = m + log ℓ: the
# logsumexp of the whole row, computed without ever exponentiating a large score.

# %% [markdown]
# ## Exercise 3 · Bytes the tiled algorithm moves (1 point)
#
# Count the main-memory (HBM) traffic of the tiled algorithm of the notebook (query
# blocks outside, key blocks inside) for one head, sequence length `n`, head dimension
# `d`, on-chip memory `sram_bytes`, and `bytes_per_element` bytes per number:
#
# 1. on-chip capacity in elements: M = `sram_bytes // bytes_per_element`;
# 2. query block: B_r = ⌈M / (4d)⌉ rows; number of query blocks T_r = ⌈n / B_r⌉;
# 3. traffic in elements: Q read once (n·d), K and V read once **per query block**
#    (2·n·d·T_r), O written once (n·d), the logsumexp L written once (n);
# 4. return the total in **bytes**, an integer.
#
# For n = 1024, d = 64, 100 KiB, 2 bytes: M = 51,200, B_r = 200, T_r = ⌈5.12⌉ = 6, so
# 2 · (65,536 + 786,432 + 65,536 + 1,024) = 1,837,056 bytes. The block sizes of that
# example, and the rounding that matters:

# %%
print("M   =", 100 * 1024 // 2, "elements")
print("B_r =", math.ceil(51_200 / (4 * 64)), "rows;  n / B_r =", 1024 / 200,
      "-> T_r =", math.ceil(1024 / 200), "passes over K and V")  # fmt: skip

# %% [markdown]
# *The check* tries seven worked cases (one where a single block covers everything, one
# token, an odd number of bytes) and 40 drawn at random, and recognises a floor instead
# of a ceiling, a forgotten L or O, K and V read only once (or only K), M taken in bytes
# or as a fraction, elements instead of bytes, and a float instead of an integer.


# %% nbgrader={"grade": false, "grade_id": "tiled_hbm_bytes", "locked": false, "schema_version": 3, "solution": true}
def tiled_hbm_bytes(n, d, sram_bytes, bytes_per_element):
    """Bytes moved between HBM and the chip by the tiled forward pass of one head."""
    ### BEGIN SOLUTION
    m_elements = sram_bytes // bytes_per_element
    block_q = math.ceil(m_elements / (4 * d))
    passes = math.ceil(n / block_q)  # each query block streams all of K and V past it
    elements = n * d + 2 * n * d * passes + n * d + n
    return elements * bytes_per_element
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "tiled_hbm_bytes_check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check("tiled_hbm_bytes", tiled_hbm_bytes)

# %% [markdown]
# **What it shows.** The K/V term is 2·n·d·⌈n / B_r⌉ ≈ 8·n²·d² / M: quadratic in n (the
# work is still n²), but divided by M / d². A bigger on-chip memory means bigger query
# blocks and fewer passes over K and V. Naive attention moves 4·n² elements of S and P on
# top of the same Q, K, V, O.

# %% [markdown]
# ## Exercise 4 · Tiles a causal attention computes (1 point)
#
# With causal masking, a tile whose keys all lie in the future of all its queries is
# skipped entirely. Write `causal_tiles(n, block)`: how many (query block, key block)
# tiles are **computed** for a sequence of `n` tokens with square blocks of `block`
# (the last block may be shorter), as an integer. Diagonal tiles are partly masked but
# still computed.
#
# *The check* tries n = 64, 100, 16, 5, 1024, 1000 and 1 by hand and 30 random
# (n, block), and names an off-by-one on the diagonal, a forgotten short last block,
# counting every tile or every entry, and a float count.


# %% nbgrader={"grade": false, "grade_id": "causal_tiles", "locked": false, "schema_version": 3, "solution": true}
def causal_tiles(n, block):
    """Number of tiles computed by a causal tiled attention with square blocks."""
    ### BEGIN SOLUTION
    blocks = math.ceil(n / block)
    return blocks * (blocks + 1) // 2  # query block i needs key blocks 0..i
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "causal_tiles_check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check("causal_tiles", causal_tiles)

# %% [markdown]
# **Half, plus the diagonal.** T(T + 1)/2 out of T² tiles is 1/2 + 1/(2T): for 1024
# tokens in blocks of 128 (T = 8), 36 of 64 tiles, 56 %; as T grows it tends to one
# half. A causal FlashAttention does about half the work and moves about half the K/V
# bytes of a non-causal one.
#
# Next, notebook 04 turns these pieces into a Triton GPU kernel and times it.

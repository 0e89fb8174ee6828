# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · Exercises: sparse attention
#
# Four small functions: two masks and two counts. They go with
# [`notebooks/06_sparse_attention.ipynb`](../notebooks/06_sparse_attention.ipynb); read its sections 1 to 4 first.
#
# **How it works.** Write each function where it says `# YOUR CODE HERE` (delete the
# `raise NotImplementedError()` line), run the cell, then run the check cell right below
# it. The check calls your function on several inputs, edge cases included, and prints
# ✓ when all are right, or ✗ with what went wrong and a hint. An exercise you have not
# started shows "not attempted". The checks live in the course package
# (`attn_course/checks/sparse.py`).
#
# Run time: a few seconds. No GPU needed.

# %%
import math  # noqa: F401  (math.ceil, for your answers)

import torch  # noqa: F401  (torch.arange, for your answers)

from attn_course.grade import check
from attn_course.sparse import (
    causal_pattern,
    longformer_pattern,
    sliding_window_pattern,
    sliding_window_tiles,
)

# %% [markdown]
# ## Exercise 1 · The sliding-window mask (1 point)
#
# Mistral's attention lets query i see the `window` most recent keys, itself included:
# keys i − window + 1, …, i. Write `sliding_window_mask(n, window)` returning an (n, n)
# **bool** tensor, True where query i (row) may attend key j (column). Refuse `n < 1` or
# `window < 1` with a `ValueError` naming the parameter.
#
# `window` counts keys here, as in Mistral's code. FlexAttention's examples and
# attention-gym write `q_idx - kv_idx <= window_size` instead, a distance: one key more
# (notebook 06, section 2).
#
# Tip: `i = torch.arange(n)[:, None]` and `j = torch.arange(n)[None, :]` broadcast to an
# n × n grid; comparisons on them give bool tensors, combined with `&`.
#
# *The check* tries n from 1 to 10 with windows 1 (only itself), wider than n (plain
# causal) and in between, then 30 (n, window) pairs drawn at random up to n = 40, and
# bad sizes (the error must name `n` or `window`). It names a window one key too wide or
# too narrow, one that looks into the future, and rows and columns swapped. The
# package's `sliding_window_pattern` does not count.


# %% nbgrader={"grade": false, "grade_id": "sliding_window_mask", "locked": false, "schema_version": 3, "solution": true}
def sliding_window_mask(n, window):
    """(n, n) bool: True where query i may attend key j, i.e. i - window < j <= i."""
    ### BEGIN SOLUTION
    for name, value in (("n", n), ("window", window)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    i = torch.arange(n)[:, None]
    j = torch.arange(n)[None, :]
    return (j <= i) & (i - j < window)  # the past only, and at most window - 1 steps back
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "sliding_window_mask_check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check("sliding_window_mask", sliding_window_mask)

# %% [markdown]
# **A band of width `window`.** Each row holds at most `window` True entries, so the
# mask has about n · window of them instead of n²/2: the work of a kernel that skips the
# rest grows linearly in n. Stacked layers widen the *receptive field*: after L layers,
# information can flow L · (window − 1) tokens back (Mistral 7B: 32 layers x 4096).
# The package's version of this mask, n = 6, window = 3 (your answer must print the same):

# %%
print(sliding_window_pattern(6, 3).dense_mask().int())

# %% [markdown]
# ## Exercise 2 · A Longformer mask (2 points)
#
# Longformer (Beltagy et al., 2020) combines a local band, |i − j| ≤ radius (both sides:
# it is an encoder), with a few *global* tokens, such as [CLS] or the question in
# question answering. A global token attends to every token, **and** every token attends
# to it. Write `longformer_mask(n, radius, global_tokens)` returning the (n, n) bool mask;
# `global_tokens` is a list of token indices (possibly empty).
#
# *The check* tries several n, radius 0 to 9 (wider than n too) and 0 to 3 global
# tokens, unsorted or none, then 40 cases drawn at random up to n = 40. It names the
# usual slips: a global token that sees but is not seen (or the reverse), no global
# tokens at all, a one-sided band, a band one too narrow or too wide, and reading
# `global_tokens` as a count. The package's `longformer_pattern` does not count.


# %% nbgrader={"grade": false, "grade_id": "longformer_mask", "locked": false, "schema_version": 3, "solution": true}
def longformer_mask(n, radius, global_tokens):
    """(n, n) bool: |i - j| <= radius, or i global, or j global."""
    ### BEGIN SOLUTION
    i = torch.arange(n)[:, None]
    j = torch.arange(n)[None, :]
    is_global = torch.zeros(n, dtype=torch.bool)
    is_global[list(global_tokens)] = True
    # a global query's row is all True, a global key's column is all True
    return ((i - j).abs() <= radius) | is_global[:, None] | is_global[None, :]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "longformer_mask_check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check("longformer_mask", longformer_mask)

# %% [markdown]
# **Still linear.** The band contributes about n · (2 · radius + 1) pairs and g global
# tokens about 2 · g · n more: for a fixed radius and g, O(n). The global tokens are
# what lets information cross the whole sequence in two steps (token → global → token).
# The package's version, n = 8, radius 1, token 0 global:

# %%
print(longformer_pattern(8, 1, [0]).dense_mask().int())

# %% [markdown]
# ## Exercise 3 · Tiles a sliding window visits (1 point)
#
# A kernel works in square tiles of `block` queries × `block` keys and visits a tile when
# at least one of its entries is allowed. Write `window_tile_count(n, window, block)`:
# how many tiles a causal sliding window of `window` keys visits on n tokens (the last
# block may be short). Query block I holds rows I·block … I·block + block − 1; its
# earliest key is max(0, I·block − window + 1) and its latest I·block + block − 1.
# Refuse n, window or block < 1 with a `ValueError` naming the parameter. Count per
# query block, without building the n × n mask: the check asks for n = 1 000 000 too.
#
# *The check* compares with the package's closed form on nine (n, window, block)
# triples, 40 drawn at random up to n = 5000, and two with n ≈ 10⁶, where the n × n
# mask (10¹² entries) cannot be built; then it tries bad sizes. It names: counting
# every causal tile, floor instead of ceiling (for the window's reach, or for a short
# last block), forgetting that the first query blocks have fewer key blocks behind them,
# and building the mask. The package's `sliding_window_tiles` does not count.


# %% nbgrader={"grade": false, "grade_id": "window_tile_count", "locked": false, "schema_version": 3, "solution": true}
def window_tile_count(n, window, block):
    """Number of (query block, key block) tiles a causal sliding window visits."""
    ### BEGIN SOLUTION
    for name, value in (("n", n), ("window", window), ("block", block)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    total = 0
    for query_block in range(math.ceil(n / block)):
        first_key = max(0, query_block * block - window + 1)
        total += query_block - first_key // block + 1  # key blocks first_key // block .. I
    return total
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "window_tile_count_check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check("window_tile_count", window_tile_count)

# %% [markdown]
# **The closed form.** Once the window is fully inside the sequence, every query block
# sees the same c = 1 + ⌈(window − 1)/block⌉ key blocks, so the count is c · T − c(c − 1)/2
# for T = ⌈n / block⌉ query blocks: linear in n. For n = 4096, window 512, block 128:
# T = 32, c = 5, 5 · 32 − 10 = 150 tiles, against 32 · 33 / 2 = 528 for causal attention.
# The package's closed form and its count from the mask:

# %%
print(sliding_window_tiles(4096, 512, 128), "by the formula,",
      sliding_window_pattern(4096, 512).layout(128).visited_tiles, "counted from the mask,",
      causal_pattern(4096).layout(128).visited_tiles, "for causal attention")

# %% [markdown]
# ## Exercise 4 · Tiles of a Longformer layout (1 point)
#
# The Longformer pattern of exercise 2 again, now counted in tiles: write
# `global_window_tile_count(n, radius, global_tokens, block)`, the number of `block` ×
# `block` tiles (the last block may be short) that hold at least one allowed entry of
# the band |i − j| ≤ radius plus the global tokens, whose rows and columns are all True.
# `global_tokens` is a list of token indices (possibly empty); T = ⌈n / block⌉.
#
# * A query block that holds a global token visits all T key blocks.
# * Any other query block I visits the key blocks of its band, from the block of key
#   max(0, I·block − radius) to the block of key min(n − 1, I·block + block − 1 + radius),
#   **and** every key block that holds a global token (its column is all True). A tile
#   that is both counts once.
#
# Count per query block, without building the n × n mask: the check asks for
# n = 1 000 000 too.
#
# *The check* compares with the package's `BlockLayout` (counted from the mask) on eight
# hand-picked cases and 40 drawn at random (n up to 100, radius up to 40, blocks of 1 to
# 16, up to 4 global tokens), then on three with n ≈ 10⁶. It names: forgotten global
# rows or columns, a tile counted twice (band and global, or two global tokens in one
# block), a band one block too narrow or too wide, floor instead of ceiling for a short
# last block, and building the mask. The package's `longformer_pattern` and its layout do
# not count.


# %% nbgrader={"grade": false, "grade_id": "global_window_tile_count", "locked": false, "schema_version": 3, "solution": true}
def global_window_tile_count(n, radius, global_tokens, block):
    """Number of (query block, key block) tiles of the Longformer pattern."""
    ### BEGIN SOLUTION
    blocks = math.ceil(n / block)
    global_blocks = {token // block for token in global_tokens}  # a set: each block once
    total = 0
    for query_block in range(blocks):
        if query_block in global_blocks:
            total += blocks  # a global query's row of tiles is full
            continue
        first = max(0, query_block * block - radius) // block
        last = min(n - 1, query_block * block + block - 1 + radius) // block
        outside = [b for b in global_blocks if not first <= b <= last]
        total += (last - first + 1) + len(outside)  # the band ∪ the global columns
    return total
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "global_window_tile_count_check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check("global_window_tile_count", global_window_tile_count)

# %% [markdown]
# **Still linear, plus a cross.** The band gives about T · (1 + 2⌈radius / block⌉) tiles
# and g global blocks a full row and a full column each, about 2 · g · T more: O(n) for
# a fixed radius and g. The global rows are what a kernel finds expensive: a single
# global token makes its whole query block attend all n keys. The package counts from
# the mask (n = 4096, radius 256, tokens 0 to 2 global, blocks of 128):

# %%
layout = longformer_pattern(4096, 256, [0, 1, 2]).layout(128)
print(layout.visited_tiles, "of", layout.blocks**2, "tiles visited,",
      f"{layout.computed_fraction():.1%} of the dense work")

# %% [markdown]
# Next, notebook 07 looks at inference: the KV cache.

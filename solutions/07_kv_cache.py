# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · Exercises: the KV cache
#
# Four small functions: the attention step that uses a cache, the size of a published
# model's cache, int8 quantisation of a cache block, and finding a token in a paged cache.
# They go with [`notebooks/07_kv_cache.ipynb`](../notebooks/07_kv_cache.ipynb); read its sections 2, 3, 5 and 6 first.
#
# **How it works.** Write each function where it says `# YOUR CODE HERE` (delete the
# `raise NotImplementedError()` line), run the cell, then run the check cell right below
# it. The check calls your function on several inputs, edge cases included, and prints
# ✓ when all are right, or ✗ with what went wrong and a hint. An exercise you have not
# started shows "not attempted". The checks live in the course package
# (`attn_course/checks/kvcache.py`).
#
# Run time: a few seconds. No GPU needed.

# %%
import torch

from attn_course.grade import check
from attn_course.presets import get_model

torch.set_printoptions(precision=4, sci_mode=False)
llama = get_model("Llama-3-8B")  # the shape fields exercise 2 needs
print(f"Llama-3-8B: layers {llama.layers}, heads {llama.heads}, kv_heads {llama.kv_heads}, "
      f"head_dim {llama.head_dim}")  # fmt: skip

# %% [markdown]
# ## Exercise 1 · One decode step with a cache (2 points)
#
# Single-head attention, one new token with query q, key k and value v (vectors of d
# numbers). The cache holds the earlier tokens' keys and values, `k_cache` and `v_cache`,
# each (t, d), where t may be 0. Append the new token's k and v, then let q attend to all
# t + 1 keys:
#
# $$K = \begin{bmatrix} K_\text{cache} \\ k \end{bmatrix},\quad
# V = \begin{bmatrix} V_\text{cache} \\ v \end{bmatrix},\quad
# \text{out} = \operatorname{softmax}\!\left(\frac{K q}{\sqrt d}\right) V .$$
#
# Write `cached_step(q, k_cache, v_cache, k, v)` returning `(out, K, V)`.
#
# Write the attention yourself: `torch.softmax` is fine, `scaled_dot_product_attention`
# (and the course's own attention functions) are not.
#
# *Hints:* `torch.cat([k_cache, k[None]], dim=0)` appends a row; softmax over dim 0.
#
# *The check* tries an empty cache, 1, 3 and 10 cached tokens, float32, d = 1 and scores
# in the hundreds. It compares K and V row by row (the cached rows first, in order, the
# new token's last) and out with softmax attention, and measures that one step's work
# grows linearly with t. It recognises the new token prepended, K and V swapped, a wrong
# or missing new row, forgetting the new token's own key, a missing or wrong 1/√d, and
# an overflowing softmax.


# %% nbgrader={"grade": false, "grade_id": "kv_cached_attention_step", "locked": false, "schema_version": 3, "solution": true}
def cached_step(q, k_cache, v_cache, k, v):
    """Append (k, v) to the cache, attend with q. Returns (out, K, V)."""
    ### BEGIN SOLUTION
    keys = torch.cat([k_cache, k[None]], dim=0)  # the new token sees itself too
    values = torch.cat([v_cache, v[None]], dim=0)
    weights = torch.softmax(keys @ q / q.shape[0] ** 0.5, dim=0)  # t + 1 weights
    return weights @ values, keys, values
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "kv_cached_attention_step_check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check("kv_cached_attention_step", cached_step)

# %% [markdown]
# **Why it works.** Causal attention for the newest token only needs its own query and
# every key and value so far; earlier tokens' keys and values never change, so they can be
# kept instead of recomputed. The work is t + 1 dot products: linear in t, not quadratic.
#
# ## Exercise 2 · The cache of a published model (1 point)
#
# Write `cache_size(model, context, batch, bytes_per_number)` returning the KV-cache bytes
# of a model preset (`get_model(name)` gives `.layers`, `.kv_heads`, `.head_dim`):
#
# $$2 \cdot \text{layers} \cdot \text{kv\_heads} \cdot \text{head\_dim} \cdot
# \text{context} \cdot \text{batch} \cdot \text{bytes per number}.$$
#
# Refuse `context < 1` or `batch < 1` with a ValueError.
#
# *The check* tries Llama-3-8B at 128k tokens in fp8 and in bf16, Llama-2-7B with batch 8
# in float32, GPT-2, Mistral-7B and Llama-3-70B at one token, then 40 random (model,
# context, batch, bytes) over every preset, and context 0, context −5 and batch 0, which
# must raise ValueError. It names heads instead of kv_heads, a missing 2, batch, bytes or
# layers, and d_model where head_dim belongs.


# %% nbgrader={"grade": false, "grade_id": "kv_model_cache_bytes", "locked": false, "schema_version": 3, "solution": true}
def cache_size(model, context, batch, bytes_per_number):
    """KV-cache bytes of preset `model` for `context` tokens and `batch` sequences."""
    ### BEGIN SOLUTION
    if context < 1 or batch < 1:
        raise ValueError(f"context and batch must be >= 1, got {context}, {batch}")
    m = get_model(model)
    # keys and values (2), per layer, per key/value head (not per query head)
    return 2 * m.layers * m.kv_heads * m.head_dim * context * batch * bytes_per_number
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "kv_model_cache_bytes_check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check("kv_model_cache_bytes", cache_size)

# %% [markdown]
# **Worked number.** Llama-3-8B: 2 × 32 layers × 8 kv heads × 128 × 131,072 tokens × 2 B
# = 17,179,869,184 B = 16 GiB for one sequence, more than its 16 GB of bf16 weights.
#
# ## Exercise 3 · int8 with one scale per token (2 points)
#
# Quantise a cache block x of shape (tokens, channels): for each row (token)
# s = max|x_row| / 127, q = round(x / s) clamped to [-127, 127], stored as `torch.int8`.
# Return `(q, scale)` with `scale` of shape (tokens, 1). A row of zeros has max 0: give it
# scale 1 so nothing divides by zero.
#
# *The check* uses a float32 block with one loud token and one all-zero token, rows whose
# largest |x| is negative, a single token, a single channel, a float64, a bfloat16 and an
# empty block. It compares every scale with max|x_row| / 127 and every q with
# round(x / s), and names a per-tensor or per-channel scale, /128 or /255, truncation,
# a missing clamp, a zero or `nan` scale, the shape (n,) and a float q.


# %% nbgrader={"grade": false, "grade_id": "kv_quantize_int8", "locked": false, "schema_version": 3, "solution": true}
def quantize_per_token(x):
    """Symmetric int8 quantisation with one scale per row. Returns (q int8, scale (n, 1))."""
    ### BEGIN SOLUTION
    scale = x.abs().amax(dim=1, keepdim=True) / 127
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)  # all-zero rows stay 0
    q = torch.round(x / scale).clamp(-127, 127).to(torch.int8)
    return q, scale
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "kv_quantize_int8_check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check("kv_quantize_int8", quantize_per_token)

# %% [markdown]
# **Why per token.** One scale for the whole block would be set by its loudest token;
# every quiet token would then use only a few of the 255 levels. A scale per row costs one
# extra number per token (2 bytes next to head_dim bytes of int8) and keeps every token's
# error below half of its own step.
#
# ## Exercise 4 · Find a token in a paged cache (1 point)
#
# A paged cache stores a sequence in blocks of `block_size` tokens that can sit anywhere in
# a pool; the sequence's `block_table` lists the physical block of each logical block.
# Write `block_table_lookup(block_table, position, block_size)` returning
# `(physical block id, offset in the block)`, two integers. Refuse a position outside
# [0, len(block_table) × block_size) with a ValueError.
#
# *The check* tries positions at and next to block boundaries and 40 random tables, then
# positions −1, −16, len(block_table) × block_size and beyond, which must raise
# ValueError. It names the logical block, (offset, block) swapped, off-by-ones at the
# boundaries and offsets counted from 1.


# %% nbgrader={"grade": false, "grade_id": "kv_block_table_lookup", "locked": false, "schema_version": 3, "solution": true}
def block_table_lookup(block_table, position, block_size):
    """(block_table[position // block_size], position % block_size)."""
    ### BEGIN SOLUTION
    if not 0 <= position < len(block_table) * block_size:
        raise ValueError(f"position {position} is outside the {len(block_table)} blocks")
    return block_table[position // block_size], position % block_size
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "kv_block_table_lookup_check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check("kv_block_table_lookup", block_table_lookup)

# %% [markdown]
# **Why it works.** Tokens fill a sequence's blocks in order, so token p is in its
# ⌊p / B⌋-th block at slot p mod B; the table turns that logical block into a physical one.
# This is exactly what a paged-attention kernel does for every key it reads.

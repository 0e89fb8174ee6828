# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Exercises: cost arithmetic
#
# Four functions that turn shapes into FLOPs, bytes and seconds. They go with
# [`notebooks/02_cost_arithmetic.ipynb`](../notebooks/02_cost_arithmetic.ipynb); read its sections 1 to 5 first.
#
# **How it works.** Write each function where it says `# YOUR CODE HERE` (delete the
# `raise NotImplementedError()` line), run the cell, then run the check cell right below
# it. The check calls your function on several inputs, edge cases included, and prints
# ✓ when all are right, or ✗ with what went wrong and a hint. An exercise you have not
# started shows "not attempted". Check cells are locked: the checks live in the course
# package (`attn_course/checks/cost.py`), so grading always runs the same code.
#
# **Conventions** (the same as the notebook's): a multiply-add is **2 FLOPs**, so an
# (m × k) @ (k × p) matmul costs 2·m·k·p FLOPs; bytes are plain bytes; time is in
# seconds and bandwidth in bytes per second.
#
# Run time: a few seconds. No GPU needed.

# %%
from attn_course import cost
from attn_course.grade import check

# %% [markdown]
# ## Exercise 1 · FLOPs of attention (1 point)
#
# Write `attention_flops(n, d_model)`: the FLOPs of **one layer's two attention
# matmuls**, QKᵀ and PV, summed over all heads, for one sequence of n tokens and no
# causal mask.
#
# Per head, Q and K are (n × d_h) with d_h = d_model / heads. Work out the FLOPs of QKᵀ
# and of PV for one head, multiply by the number of heads, and notice that the heads
# cancel out.
#
# *The check* first measures how your count grows (16× when n grows 4×, 4× when d
# does), then tries n ≠ d (so a swapped n and d shows), n = d = 1, n = 32768 and forty
# random shapes. It recognises a forgotten factor 2, multiply-adds instead of FLOPs, one
# matmul instead of two, n instead of n², and the causal triangle n(n+1)/2. Calling the
# package's `cost.attention_matmul_flops` does not count: write the formula.

# %% nbgrader={"grade": false, "grade_id": "attention_flops", "locked": false, "schema_version": 3, "solution": true}
def attention_flops(n, d_model):
    """FLOPs of Q Kᵀ and P V in one layer, all heads, one sequence, no mask."""
    ### BEGIN SOLUTION
    scores = 2 * n * n * d_model  # Q Kᵀ: n x n dot products of length d (summed over heads)
    weighted_values = 2 * n * n * d_model  # P V: n x d outputs, each a length-n dot product
    return scores + weighted_values
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "attention_flops_check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check("attention_flops", attention_flops)

# %% [markdown]
# **Why the heads cancel.** One head does 2·n²·d_h FLOPs per matmul; h heads do
# 2·n²·(h·d_h) = 2·n²·d. Splitting into heads changes *what* is computed, not how much.
# The package's version is `cost.attention_matmul_flops`; with `causal=True` it halves
# the count (a kernel can skip the masked triangle):

# %%
for n in (4096, 32768):
    full = cost.attention_matmul_flops(n, 4096)
    causal = cost.attention_matmul_flops(n, 4096, causal=True)
    print(f"n = {n:>6,}, d = 4096: {cost.format_flops(full)} (causal: {cost.format_flops(causal)})")

# %% [markdown]
# ## Exercise 2 · Where attention overtakes the rest of the layer (1 point)
#
# Write `crossover_n(d_model, d_ff)`: the sequence length n at which attention's two
# matmuls cost exactly as many FLOPs as **everything else** in the layer, for a model
# with multi-head attention, a classic 2-matrix FFN of width d_ff, and no causal mask.
#
# "Everything else" is the four projections (Q, K, V and O, each (n × d)·(d × d)) and
# the FFN (up: (n × d)·(d × d_ff), down: (n × d_ff)·(d_ff × d)). Write both sides as
# functions of n, set them equal and solve; the answer is a simple expression in
# d_model and d_ff. It may be a float.
#
# *The check* uses d_ff = 11008 with d = 4096 (Llama-2's, not 4·d), d_ff = 4·d
# (GPT-style), tiny widths and forty random ones, and recognises n = d (the textbook's
# claim), n = d_ff (the projections forgotten), 6·d (d_ff = 4·d assumed), projections
# counted in multiply-adds or only three of them, a gated FFN, the causal crossover, and
# the rest of the layer written without its factor n.

# %% nbgrader={"grade": false, "grade_id": "crossover_n", "locked": false, "schema_version": 3, "solution": true}
def crossover_n(d_model, d_ff):
    """n where 4·n²·d = FFN + Q/K/V/O projection FLOPs (MHA, 2-matrix FFN, non-causal)."""
    ### BEGIN SOLUTION
    # attention: 4 n^2 d; projections: 4 x 2 n d^2 = 8 n d^2; FFN: 2 x 2 n d d_ff = 4 n d d_ff
    # 4 n^2 d = 8 n d^2 + 4 n d d_ff   -> divide by 4 n d ->   n = 2 d + d_ff
    return d_ff + 2 * d_model
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "crossover_n_check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check("crossover_n", crossover_n)

# %% [markdown]
# **Reading the answer.** With d_ff = 4d the crossover is at 6d: for a model of width
# 4096, about 24,600 tokens. Below it, the per-token matmuls dominate the layer's FLOPs;
# above it, attention does, and its share keeps growing linearly. The package solves
# the general case (gated FFNs, grouped-query attention, causal masking):

# %%
for name, options in [
    ("FFN only", {}),
    ("FFN + projections", {"include_projections": True}),
    ("FFN + projections, causal", {"include_projections": True, "causal": True}),
]:
    n_star = cost.attention_ffn_crossover_n(4096, 4 * 4096, **options)
    print(f"d = 4096, d_ff = 4d, attention = {name:<27}: n = {n_star:>9,.0f} = {n_star / 4096:g}·d")

# %% [markdown]
# ## Exercise 3 · Bytes of a KV cache (1 point)
#
# Write `kv_cache_bytes(layers, d_model, heads, kv_heads, context, batch,
# bytes_per_element)`: the bytes of the key/value cache of a decoder that has cached
# `context` tokens for each of `batch` sequences.
#
# For every layer, every cached token and every **key/value head**, the cache holds one
# key vector and one value vector of head_dim = d_model / heads numbers. With
# grouped-query attention several query heads share one KV head, so only `kv_heads`
# (not `heads`) are cached; multi-head attention is kv_heads = heads, multi-query
# attention kv_heads = 1. `bytes_per_element` may be fractional (0.5 for int4).
#
# Query heads share KV heads in equal groups, so `kv_heads` must divide `heads`:
# otherwise **raise `ValueError`** with a message that names `kv_heads`.
#
# *The check* tries a small GQA model (groups of 6, batch 3), Llama-2-7B (MHA) and
# Llama-3-8B (GQA) at 100,000 tokens, an MQA model, an int4 cache, groups of 4 with
# head_dim 6, and forty random shapes. It recognises a missing factor 2 (keys *and*
# values), heads in place of kv_heads, d_model in place of head_dim, a forgotten batch or
# layers, elements or bits instead of bytes, and 0.5 rounded away. Then it passes
# kv_heads = 5 with 32 heads, 8 with 12, 16 with 8 and 4 with 6, and expects a
# `ValueError` naming `kv_heads` each time.

# %% nbgrader={"grade": false, "grade_id": "kv_cache_bytes", "locked": false, "schema_version": 3, "solution": true}
def kv_cache_bytes(layers, d_model, heads, kv_heads, context, batch, bytes_per_element):
    """Bytes of a KV cache: 2 x layers x kv_heads x head_dim x context x batch x bytes."""
    ### BEGIN SOLUTION
    if heads % kv_heads:
        raise ValueError(f"kv_heads must divide heads, got heads={heads}, kv_heads={kv_heads}")
    head_dim = d_model // heads
    numbers = 2 * layers * kv_heads * head_dim * context * batch  # 2: a key and a value
    return numbers * bytes_per_element
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "kv_cache_bytes_check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check("kv_cache_bytes", kv_cache_bytes)

# %% [markdown]
# **What GQA buys.** Llama-3-8B has the same width and depth as Llama-2-7B but caches 8
# KV heads instead of 32: a 4× smaller cache, which is why it can hold much longer
# contexts on the same GPU. The package's `cost.model_kv_cache_bytes` does this for the
# model presets:

# %%
for model in ("Llama-2-7B", "Llama-3-8B", "Llama-3-70B"):
    size = cost.model_kv_cache_bytes(model, 100_000, dtype="bf16")
    print(f"{model:<12} 100,000 tokens, bf16: {cost.format_bytes(size)}")

# %% [markdown]
# ## Exercise 4 · Moving a score matrix in and out of memory (1 point)
#
# Write `round_trip_time_s(n, bytes_per_element, bandwidth_bytes_per_s)`: the time, in
# seconds, to **write** one n × n score matrix to GPU memory and **read it back** once,
# at the given bandwidth (in bytes per second, e.g. 2.039e12 for an A100 80GB). Ignore
# latency and assume the full bandwidth is reached.
#
# A bandwidth of zero or less is not a device: **raise `ValueError`** for it, with a
# message that names `bandwidth_bytes_per_s` (a `ZeroDivisionError` is not good enough:
# it does not say which input was wrong).
#
# *The check* tries the textbook's A100 example (n = 32768, fp16), three small cases
# (one in int4) and forty random ones, and recognises a one-way transfer, S and P both
# moved, milliseconds or microseconds instead of seconds, GB/s instead of bytes/s, n
# entries instead of n·n, and a forgotten bytes_per_element. Then it passes bandwidths 0,
# 0.0, −1 and −2.039e12, and expects a `ValueError` that names the bandwidth.

# %% nbgrader={"grade": false, "grade_id": "round_trip_time_s", "locked": false, "schema_version": 3, "solution": true}
def round_trip_time_s(n, bytes_per_element, bandwidth_bytes_per_s):
    """Seconds to write an n x n matrix to memory and read it back once."""
    ### BEGIN SOLUTION
    if bandwidth_bytes_per_s <= 0:
        raise ValueError(f"bandwidth_bytes_per_s must be > 0, got {bandwidth_bytes_per_s!r}")
    matrix_bytes = n * n * bytes_per_element
    return 2 * matrix_bytes / bandwidth_bytes_per_s  # write it, then read it back
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "round_trip_time_s_check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check("round_trip_time_s", round_trip_time_s)

# %% [markdown]
# **The textbook's A100 example.** One 32,768² fp16 matrix is 2³¹ bytes; there and back
# at 2,039 GB/s is about 2.1 ms, not the 30 ms the textbook states. The package gives
# the same figure:

# %%
a100 = cost.score_matrix_bytes(32768, "fp16")
print(cost.format_seconds(cost.transfer_time_s(2 * a100, 2.039e12)))

# %% [markdown]
# Small per matrix; but a naive attention layer moves S and P for every head, and a
# model has dozens of layers. Next, notebook 03 removes that traffic altogether by
# tiling.

# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Exercises: the n × n score matrix
#
# Four small functions, each one piece of naive attention. They go with
# [`notebooks/01_score_matrix.ipynb`](../notebooks/01_score_matrix.ipynb); read its sections 2 to 5 first.
#
# **How it works.** Write each function where it says `# YOUR CODE HERE` (delete the
# `raise NotImplementedError()` line), run the cell, then run the check cell right below
# it. The check calls your function on several inputs, edge cases included, and prints
# ✓ when all are right, or ✗ with what went wrong and a hint. An exercise you have not
# started shows "not attempted". Check cells are locked: the checks themselves live in the
# course package (`attn_course/checks/scores.py`), so grading always runs the same code.
#
# Run time: a few seconds. No GPU needed.

# %%
import torch

from attn_course.grade import check

# %% [markdown]
# ## Exercise 1 · Bytes of the score matrices (1 point)
#
# A layer with `heads` attention heads computes one n × n score matrix **per head**.
# Write `score_matrix_bytes(n, heads, bytes_per_element)` that returns how many bytes
# those matrices take together, as an integer.
#
# $$\text{bytes} = n \cdot n \cdot \text{heads} \cdot \text{bytes per element}$$
#
# *Hint:* float32 has 4 bytes per element, float16 and bfloat16 have 2. For n = 1024,
# one head, float16: 1024 · 1024 · 1 · 2 = 2,097,152 bytes (2 MiB).
#
# *The check* tries seven cases, from n = 1 to n = 2²⁸ tokens with 1024 heads (2⁶⁹ bytes,
# more than a float holds exactly, so the answer must be an integer), then 40 more drawn at
# random (the same 40 every time; when one fails you see the smallest failing case). It
# recognises the usual slips: a forgotten heads factor, n instead of n², bits instead of
# bytes, a causal half, a float result.

# %% nbgrader={"grade": false, "grade_id": "score_bytes", "locked": false, "schema_version": 3, "solution": true}
def score_matrix_bytes(n, heads, bytes_per_element):
    """Bytes of the `heads` score matrices (each n x n) of one layer, for one sequence."""
    ### BEGIN SOLUTION
    entries = n * n * heads  # one score per (query, key) pair, per head
    return entries * bytes_per_element
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "score_bytes_check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check("score_bytes", score_matrix_bytes)

# %% [markdown]
# **Why it matters.** The formula is quadratic in n and linear in everything else. With 32
# heads in float16, n = 8192 gives 8192² · 32 · 2 bytes = 4 GiB, for one layer and one
# sequence, and only S; naive attention also keeps P, which is as big.

# %% [markdown]
# ## Exercise 2 · A softmax that does not overflow (1 point)
#
# Write `stable_softmax(x)`: softmax of a torch tensor `x` along its **last** dimension,
# for any number of dimensions. It must not produce `nan` or `inf` for huge or tiny
# inputs such as `[1000., 1001., 1002.]` in float32 or `[10., 11., 12.]` in float16.
#
# $$\operatorname{softmax}(x)_j = \frac{e^{x_j - m}}{\sum_k e^{x_k - m}}, \qquad m = \max_k x_k$$
#
# *Hints:* `x.amax(dim=-1, keepdim=True)` gives each row's maximum with a shape that
# broadcasts back over the row; `torch.exp`; `.sum(dim=-1, keepdim=True)`. Don't modify
# `x` in place (no `x -= ...`): the caller may still need it. Entries equal to `-inf`
# (masked scores) should get weight 0, which this formula gives for free.
#
# *The check* compares with softmax in float64 on random matrices, a 3-d tensor, the
# overflowing and underflowing inputs above, rows of very different scale in one tensor
# (one maximum for the whole tensor is not enough), a row spread over 200, float16 and
# bfloat16 inputs, rows with `-inf` entries, rows of length 1 and an empty batch. The
# result must keep `x`'s dtype, and `x` must be unchanged afterwards. It does not accept
# `torch.softmax`, `F.softmax`, `log_softmax` or `logsumexp`: the point is to write it.
#
# First, see the problem with the textbook formula exp(x) / Σ exp(x):

# %%
x = torch.tensor([1000.0, 1001.0, 1002.0])
print("exp(x):           ", torch.exp(x))
print("exp(x) / sum:     ", torch.exp(x) / torch.exp(x).sum())
print("torch.softmax(x): ", torch.softmax(x, dim=-1))

# %% nbgrader={"grade": false, "grade_id": "stable_softmax", "locked": false, "schema_version": 3, "solution": true}
def stable_softmax(x):
    """Softmax of x along its last dimension, safe from overflow."""
    ### BEGIN SOLUTION
    row_max = x.amax(dim=-1, keepdim=True)
    weights = torch.exp(x - row_max)  # every exponent <= 0, so every weight is in (0, 1]
    return weights / weights.sum(dim=-1, keepdim=True)  # the sum is >= 1: no 0 / 0
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "stable_softmax_check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check("stable_softmax", stable_softmax)

# %% [markdown]
# **Why it works.** Multiplying the numerator and the denominator by the same factor
# e^(−m) changes nothing, so the result is exactly softmax. But the largest exponent is
# now 0, so nothing overflows, and the denominator contains e⁰ = 1, so it cannot
# underflow to 0. (A row whose entries are *all* −∞ still gives 0 / 0; the package's
# version, `attn_course.scores.stable_softmax`, special-cases it and returns zeros.)

# %% [markdown]
# ## Exercise 3 · The causal mask (1 point)
#
# In a decoder, token i may attend to tokens 0 … i (itself and the past) but never to
# the future. Write `causal_mask(n)`: a boolean tensor of shape (n, n) that is `True`
# where query i (row) **may** attend to key j (column), i.e. where j ≤ i, and `False`
# elsewhere. For n = 3:
#
# ```
# [[ True, False, False],
#  [ True,  True, False],
#  [ True,  True,  True]]
# ```
#
# *Hint:* `torch.ones(n, n, dtype=torch.bool)` and `torch.tril`.
#
# *The check* tries n = 5, 1, 2, 8 and 20 more sizes up to 300, and recognises a missing
# diagonal, a mask of the forbidden positions instead of the allowed ones, a transposed
# mask, a mask one key into the future, and a wrong dtype (an additive 0/−∞ mask included).

# %% nbgrader={"grade": false, "grade_id": "causal_mask", "locked": false, "schema_version": 3, "solution": true}
def causal_mask(n):
    """Boolean (n, n) tensor, True where key j <= query i."""
    ### BEGIN SOLUTION
    return torch.ones(n, n, dtype=torch.bool).tril()  # lower triangle, diagonal included
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "causal_mask_check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check("causal_mask", causal_mask)

# %% [markdown]
# **Why the diagonal is True.** A token's own key is not the future: leaving it out would
# leave the first token with nothing at all to attend to, an all-masked row whose softmax
# is 0 / 0.

# %% [markdown]
# ## Exercise 4 · Naive attention (2 points)
#
# Put it together. Write `attention(q, k, v, causal=False)` that returns the attention
# output for queries `q` (…, n_q, d), keys `k` (…, n_k, d) and values `v` (…, n_k, d_v);
# the leading dimensions (batch, heads) may be absent or present.
#
# 1. scores S = q kᵀ / √d, with d = `q.shape[-1]` (`k.transpose(-2, -1)` swaps the last
#    two dimensions);
# 2. if `causal`, set the scores where the mask is False to `-inf`
#    (`scores.masked_fill(~mask, float("-inf"))`); causal is only used with n_q = n_k;
# 3. P = softmax of S along the last dimension;
# 4. return P @ v (only the output, shape (…, n_q, d_v)).
#
# You may use your `stable_softmax` and `causal_mask` from above (then finish those
# first), or `torch.softmax` and `torch.tril`.
#
# *The check* compares with PyTorch's `torch.nn.functional.scaled_dot_product_attention`
# on single-head and batched multi-head inputs, with and without the causal mask, with
# fewer queries than keys, values wider than the keys, one token, and float32 scores in the
# hundreds. When the answer is wrong, it tries to reproduce your mistake (missing scale,
# 1/d instead of 1/√d, softmax over the wrong dimension, shifted mask diagonal, masking
# after the softmax, overflow) and names it. Calling `scaled_dot_product_attention` (or
# the course's `naive_attention`) is not accepted: this exercise is attention itself.

# %% nbgrader={"grade": false, "grade_id": "naive_attention", "locked": false, "schema_version": 3, "solution": true}
def attention(q, k, v, causal=False):
    """softmax(q kᵀ / √d) v, with future keys masked out when causal."""
    ### BEGIN SOLUTION
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5  # (..., n_q, n_k)
    if causal:
        scores = scores.masked_fill(~causal_mask(scores.shape[-1]), float("-inf"))
    probs = stable_softmax(scores)
    return probs @ v
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "naive_attention_check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check("naive_attention", attention)

# %% [markdown]
# **What you just built.** Every line of `attention` touches an n_q × n_k tensor: the
# scores, the masked scores, the probabilities. That is why its memory grows as n², as
# the notebook measured. The package's version, `attn_course.scores.naive_attention`,
# does the same with fewer copies (the scale and the mask are applied in place) and
# returns S and P alongside the output so you can inspect them.
#
# Next, notebook 02 turns these per-head numbers into the cost of whole models.

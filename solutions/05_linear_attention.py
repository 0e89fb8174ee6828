# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Exercises: linear (kernel) attention
#
# Three small functions: the recurrence that makes causal linear attention an RNN, the
# sequence length where it starts to pay off, and the elu + 1 attention itself. They go
# with [`notebooks/05_linear_attention.ipynb`](../notebooks/05_linear_attention.ipynb); read its sections 1, 2 and 5 first.
#
# **How it works.** Write each function where it says `# YOUR CODE HERE` (delete the
# `raise NotImplementedError()` line), run the cell, then run the check cell right below
# it. The check calls your function on several inputs, edge cases included, and prints
# ✓ when all are right, or ✗ with what went wrong and a hint. An exercise you have not
# started shows "not attempted". The checks live in the course package
# (`attn_course/checks/linear.py`).
#
# Run time: a few seconds. No GPU needed.

# %%
import torch
import torch.nn.functional as F

from attn_course.grade import check

# %% [markdown]
# ## Exercise 1 · One step of causal linear attention (2 points)
#
# Causal linear attention keeps a state S (m × d_v) and a normaliser z (m). For each new
# token t, with features φ(q_t), φ(k_t) (m numbers each) and value v_t (d_v numbers):
#
# $$
# S_t = S_{t-1} + \varphi(k_t)^\top v_t, \qquad z_t = z_{t-1} + \varphi(k_t), \qquad
# \text{out}_t = \frac{\varphi(q_t)\, S_t}{\varphi(q_t)\cdot z_t}.
# $$
#
# Write `linear_step(state, normaliser, phi_q, phi_k, v)` returning
# `(out, new_state, new_normaliser)`. Don't change the inputs in place.
#
# *Hints:* `torch.outer(a, b)` is the m × d_v matrix aᵀb; `phi_q @ state` is a
# vector–matrix product.
#
# *The check* tries a first token (S = 0, z = 0), a later token and a key whose features
# are all 0, then chains six steps and compares with the parallel form
# tril(φ(Q)φ(K)ᵀ)V / rowsum. It recognises reading out before adding the current token,
# a missing normaliser, and a state built from the query.


# %% nbgrader={"grade": false, "grade_id": "linear_recurrent_step", "locked": false, "schema_version": 3, "solution": true}
def linear_step(state, normaliser, phi_q, phi_k, v):
    """Add token t to (S, z), then read out with φ(q_t). Returns (out, S_t, z_t)."""
    ### BEGIN SOLUTION
    new_state = state + torch.outer(phi_k, v)  # token t attends to itself: add first
    new_normaliser = normaliser + phi_k
    out = (phi_q @ new_state) / (phi_q @ new_normaliser)
    return out, new_state, new_normaliser
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "linear_recurrent_step_check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check("linear_recurrent_step", linear_step)

# %% [markdown]
# **Why it works.** S_t = Σ_{j≤t} φ(k_j)ᵀ v_j holds every key–value pair seen so far,
# summed; multiplying by φ(q_t) gives Σ_{j≤t} (φ(q_t)·φ(k_j)) v_j, the numerator of the
# causal weighted average, and φ(q_t)·z_t its denominator. The state has m·d_v + m numbers
# whatever t is: this is the RNN hidden inside causal linear attention, and the reason
# decoding needs no KV cache.

# %% [markdown]
# ## Exercise 2 · The crossover sequence length (1 point)
#
# Per head, counting matmul FLOPs (a multiply-add = 2 FLOPs):
#
# * softmax attention: QKᵀ and PV, 2n²d each, **4 n² d** in all;
# * linear attention with m features: φ(K)ᵀ[V 1] and φ(Q)[S z], where the column of ones
#   carries the normaliser: 2·n·m·(d + 1) each, **4 n m (d + 1)** in all.
#
# Write `crossover_n(head_dim, features)` returning the n (a float) where the two counts
# are equal. Raise `ValueError` if either argument is smaller than 1.


# %% nbgrader={"grade": false, "grade_id": "linear_crossover_n", "locked": false, "schema_version": 3, "solution": true}
def crossover_n(head_dim, features):
    """n where 4 n² d = 4 n m (d + 1)."""
    ### BEGIN SOLUTION
    if head_dim < 1 or features < 1:
        raise ValueError(f"head_dim and features must be >= 1, got {head_dim}, {features}")
    # Divide both sides by 4 n d: n = m (d + 1) / d.
    return features * (head_dim + 1) / head_dim
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "linear_crossover_n_check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check("linear_crossover_n", crossover_n)

# %% [markdown]
# For elu + 1 (m = d = 64) that is n* = 65: "linear" attention does fewer FLOPs than
# softmax attention from about 65 tokens on, but the notebook measures the real crossover
# on a CPU a few times later. With Performer's m = 256 random features it moves to 260.

# %% [markdown]
# ## Exercise 3 · Linear attention with the elu + 1 feature map (2 points)
#
# Write `elu_linear_attention(q, k, v)` for non-causal attention with φ(x) = elu(x) + 1,
# for tensors of shape (n, d) or (batch, heads, n, d):
#
# $$
# \text{out} = \frac{\varphi(Q)\,\big(\varphi(K)^\top V\big)}{\varphi(Q)\,\big(\varphi(K)^\top \mathbf 1\big)} .
# $$
#
# It must **not** build an n × n matrix: the check measures your function's peak memory
# at n = 2048.
#
# *Hints:* `F.elu(x) + 1`; `k.transpose(-2, -1)` works for both shapes; a sum over tokens
# is `.sum(-2)`; `[..., None]` turns a per-row number into a column.
#
# What the feature map does to a few numbers: x + 1 above zero, e^x below, never negative.

# %%
x = torch.tensor([-3.0, -1.0, 0.0, 0.5, 2.0])
print("x          ", x)
print("elu(x)     ", F.elu(x))
print("elu(x) + 1 ", F.elu(x) + 1)


# %% nbgrader={"grade": false, "grade_id": "elu_linear_attention", "locked": false, "schema_version": 3, "solution": true}
def elu_linear_attention(q, k, v):
    """φ(Q)(φ(K)ᵀV) / φ(Q)(φ(K)ᵀ1) with φ = elu + 1, in O(n d²)."""
    ### BEGIN SOLUTION
    phi_q, phi_k = F.elu(q) + 1, F.elu(k) + 1
    state = phi_k.transpose(-2, -1) @ v  # (d × d_v): the brackets moved, no n × n
    normaliser = phi_k.sum(-2)  # (d,)
    return (phi_q @ state) / (phi_q @ normaliser[..., None])
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "elu_linear_attention_check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check("elu_linear_attention", elu_linear_attention)

# %% [markdown]
# **Why the + 1.** elu(x) is negative for x < 0, so without the + 1 some weights
# φ(q)·φ(k) are negative and the normaliser can be 0 or change sign: the "average" is no
# longer an average and can blow up. elu(x) + 1 > 0 everywhere. Note also what does *not*
# appear: there is no max to subtract, because nothing is exponentiated across keys, and
# no n × n matrix, because φ(K)ᵀV is summed before any query is looked at.

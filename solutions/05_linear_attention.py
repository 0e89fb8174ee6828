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
# Four small functions: the recurrence that makes causal linear attention an RNN, the
# sequence length where it starts to pay off, the elu + 1 attention itself, and one chunk
# of the chunked form that fast kernels run. They go
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
# *The check* tries a later token, a first token (S = 0, z = 0), a key whose features are
# all 0 and a float32 token after 1000 others, and compares all three results (out, and
# the contents of S_t and z_t) with the package's recurrence in float64; then it chains
# six steps and compares with the parallel form tril(φ(Q)φ(K)ᵀ)V / rowsum. It recognises
# reading out before adding the current token, a missing normaliser, a state or
# normaliser built from the query, returning the old S or z, and changing the inputs in
# place. Calling the package's `recurrent_step` does not count.


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
#
# *The check* tries seven (head_dim, features) pairs and 30 drawn at random, and sizes
# below 1. It names a forgotten normaliser column, d and m swapped, a rounded n, and a
# causal (halved) softmax count.


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
# It must **not** build an n × n matrix, nor do n × n work: the check measures your
# function's peak memory at n = 2048, and how its work (matmul FLOPs and tensor elements
# computed) grows from n = 256 to n = 1024: about 4× if it is linear in n, 16× if it
# computes every weight φ(q_i)·φ(k_j), even a few rows at a time.
#
# *Hints:* `F.elu(x) + 1`; `k.transpose(-2, -1)` works for both shapes; a sum over tokens
# is `.sum(-2)`; `[..., None]` turns a per-row number into a column.
#
# *The check* also tries a batch of heads, values narrower than the keys, one token, a
# float32 case with rows of very different scale (the result keeps the inputs' dtype) and
# no tokens at all, and names a missing normaliser, a missing + 1, a causal mask, a
# 1/√d scale and φ left out on one side. The package's `linear_attention` and its
# relatives do not count.
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

# %% [markdown]
# ## Exercise 4 · One chunk of causal linear attention (2 points)
#
# Fast kernels use neither the n × n form nor one token at a time: they cut the sequence
# into chunks of c tokens. Inside a chunk the work is a small masked c × c product
# (parallel, matmul-friendly); across chunks it goes through the state. With S (m × d_v)
# and z (m) summing every *earlier* chunk, row i of the chunk is
#
# $$
# \text{out}_i = \frac{\varphi(q_i)\, S + \sum_{j \le i} \big(\varphi(q_i)\cdot\varphi(k_j)\big)\, v_j}
#                      {\varphi(q_i)\cdot z + \sum_{j \le i} \varphi(q_i)\cdot\varphi(k_j)},
# \qquad S' = S + \varphi(K_c)^\top V_c, \qquad z' = z + \textstyle\sum_j \varphi(k_j),
# $$
#
# with j running over the chunk's own tokens. Write
# `linear_chunk_step(state, normaliser, phi_q, phi_k, v)` for phi_q, phi_k (c × m) and
# v (c × d_v), returning `(out, new_state, new_normaliser)`, out being c × d_v. Don't
# change the inputs in place; the package's `causal_linear_attention_*` and
# `recurrent_step` do not count.
#
# *Hints:* `(phi_q @ phi_k.T).tril()` is the chunk's masked c × c weights, and its
# `.sum(-1)` each row's share of the denominator; the rows read the *old* S and z.
#
# *The check* tries a chunk after earlier ones, the first chunk (S = 0, z = 0), a
# one-token chunk, a chunk longer than the features, a float32 chunk with rows of very
# different scale and an empty chunk (c = 0); it compares out, S' and z' with the
# package's recurrence run one token at a time in float64. Then it chains chunks of 3, 1,
# 5 and 2 tokens from S = 0 and compares with causal linear attention on all 11. It names
# an unmasked (or strictly masked) c × c product, forgotten earlier chunks, rows that
# read the updated state (double counting), a missing normaliser or half of one, and a
# state that is not updated or built from the queries.


# %% nbgrader={"grade": false, "grade_id": "linear_chunk_step", "locked": false, "schema_version": 3, "solution": true}
def linear_chunk_step(state, normaliser, phi_q, phi_k, v):
    """One chunk: earlier chunks through (S, z), this one by a masked c × c product."""
    ### BEGIN SOLUTION
    inside = (phi_q @ phi_k.T).tril()  # (c × c) weights within the chunk, keys j <= i
    numerator = phi_q @ state + inside @ v  # earlier chunks through S, this one directly
    denominator = phi_q @ normaliser + inside.sum(-1)
    out = numerator / denominator[:, None]
    new_state = state + phi_k.T @ v  # add the chunk only now: its rows read the old S, z
    new_normaliser = normaliser + phi_k.sum(0)
    return out, new_state, new_normaliser
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "linear_chunk_step_check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check("linear_chunk_step", linear_chunk_step)

# %% [markdown]
# **Between the two extremes.** c = 1 is exercise 1's recurrence, c = n the parallel form
# tril(φ(Q)φ(K)ᵀ)V. Per chunk the work is 2c²(m + d_v) for the c × c part and 4c·m·d_v
# for the state, so O(n·c·m + n·m·d_v) over the sequence: linear in n for a fixed c. And
# every product has c rows, which keeps a GPU's matrix units busy where the recurrence's
# one-token vector operations cannot; the state is written n / c times instead of n.

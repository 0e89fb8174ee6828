# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · Exercises: serving at long context
#
# Four small functions a serving engine is made of: merging two partial softmaxes (the
# combine step of split-K decoding), admitting waiting requests under a budget of KV-cache
# blocks, the context length above which bringing an offloaded cache back beats recomputing
# it, and the number of tokens one verification pass of speculative decoding yields on
# average. They go with [`notebooks/08_serving.ipynb`](../notebooks/08_serving.ipynb); read its sections 2, 5, 6 and 7 first.
#
# **How it works.** Write each function where it says `# YOUR CODE HERE` (delete the
# `raise NotImplementedError()` line), run the cell, then run the check cell right below
# it. The check calls your function on several inputs, edge cases included, and prints
# ✓ when all are right, or ✗ with what went wrong and a hint. An exercise you have not
# started shows "not attempted". The checks live in the course package
# (`attn_course/checks/serving.py`).
#
# Run time: a few seconds. No GPU needed.

# %%
import math  # noqa: F401  (exercise 3 rounds up with math.ceil)

import torch

from attn_course.grade import check

torch.set_printoptions(precision=4, sci_mode=False)

# %% [markdown]
# ## Exercise 1 · Merge two partial softmaxes (2 points)
#
# Split-K decoding gives the keys of one long context to several programs. Program i
# returns, for every query head, its *normalised* output over its keys and the
# logsumexp of its scaled scores:
#
# $$o_i = \sum_{j \in \text{split } i} \frac{e^{s_j}}{\sum_{j' \in \text{split } i} e^{s_{j'}}}\, v_j,
# \qquad \ell_i = \log \sum_{j \in \text{split } i} e^{s_j}.$$
#
# Attention over all the keys is the merge of the two: the softmax mass of split i is
# $e^{\ell_i}$, so
#
# $$\ell = \log\left(e^{\ell_1} + e^{\ell_2}\right), \qquad
# o = e^{\ell_1 - \ell}\, o_1 + e^{\ell_2 - \ell}\, o_2 .$$
#
# Write `merge_partials(o1, lse1, o2, lse2)` for `o1`, `o2` of shape (heads, d) and
# `lse1`, `lse2` of shape (heads,), returning `(o, lse)` with the inputs' shapes and dtype.
# A split with no keys has `lse = -inf` and `o = 0`; if *both* are empty for a head, return
# `o = 0` and `lse = -inf` there, not NaN.
#
# *Hints:* `torch.logaddexp(lse1, lse2)` is ℓ without overflow; `torch.where` picks per
# head; never compute `exp(lse1)` on its own (it overflows
# above ℓ ≈ 709).
#
# *The check* splits the keys of a few heads into two parts, computes both partials in
# float64 and compares your merge with attention over all keys, head by head: large
# scores, logsumexps near 800 and near −1000, an empty split on some heads only, a head
# with no keys at all, float32. It recognises the average of the two outputs, the max (or the sum) as the
# merged lse, weights that are not divided by the merged mass, swapped weights, base 2
# instead of base e, overflow and NaN on empty splits.


# %% nbgrader={"grade": false, "grade_id": "serve_merge_partials", "locked": false, "schema_version": 3, "solution": true}
def merge_partials(o1, lse1, o2, lse2):
    """Merge two normalised partial attentions with their logsumexps. Returns (o, lse)."""
    ### BEGIN SOLUTION
    lse = torch.logaddexp(lse1, lse2)  # log(e^lse1 + e^lse2), no overflow
    empty = torch.isneginf(lse)  # both splits empty: no mass at all
    safe = torch.where(empty, torch.zeros_like(lse), lse)  # avoid -inf - -inf = NaN
    w1 = torch.where(empty, 0.0, torch.exp(lse1 - safe))[:, None]
    w2 = torch.where(empty, 0.0, torch.exp(lse2 - safe))[:, None]
    return w1 * o1 + w2 * o2, lse
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "serve_merge_partials_check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check("serve_merge_partials", merge_partials)

# %% [markdown]
# **Why it works.** The weights $e^{\ell_i - \ell}$ are the shares of the softmax mass
# each split holds; they sum to 1. It is the online softmax of notebook 03 seen from
# the other side: there a running (max, sum, output) absorbs one tile at a time; here two
# finished partials meet. Because the merge is associative, any number of splits can be
# combined in any tree, which is what the combine kernel of section 6 does.
#
# ## Exercise 2 · Admit requests under a block budget (2 points)
#
# A scheduler holds a queue of waiting requests (their prompt lengths, oldest first), a
# number of free KV-cache blocks of `block_size` tokens, and a batch that already runs
# `running` requests out of at most `max_batch`. Admitting a request reserves the blocks
# for its prompt *and* the first token it generates:
#
# $$\text{blocks}(p) = \left\lceil \frac{p + 1}{\text{block\_size}} \right\rceil .$$
#
# Write `admit(prompt_lengths, free_blocks, block_size, *, running=0, max_batch=8)`
# returning how many requests from the head of the queue are admitted, first come first
# served: stop at the first request that does not fit (a later, shorter one must not jump
# the queue) or when the batch is full. Refuse `block_size < 1`, `free_blocks < 0`,
# `max_batch < 1` and a prompt of fewer than 1 token with a ValueError.
#
# *The check* tries hand-made queues (exact fits, a prompt that fills its last block, a
# long prompt at the head, a full batch, no free block, an empty queue), then 60 random
# queues, and the four bad inputs. It names skipping ahead, forgetting the first generated
# token, floor instead of ceil, tokens instead of blocks, blocks that are never
# subtracted, and a batch cap that ignores `running` or is missing.


# %% nbgrader={"grade": false, "grade_id": "serve_admit", "locked": false, "schema_version": 3, "solution": true}
def admit(prompt_lengths, free_blocks, block_size, *, running=0, max_batch=8):
    """How many requests from the head of the queue fit, FCFS."""
    ### BEGIN SOLUTION
    if block_size < 1 or free_blocks < 0 or max_batch < 1:
        raise ValueError(f"need block_size >= 1, free_blocks >= 0, max_batch >= 1; got "
                         f"{block_size}, {free_blocks}, {max_batch}")  # fmt: skip
    if any(p < 1 for p in prompt_lengths):
        raise ValueError(f"every prompt needs >= 1 token, got {prompt_lengths}")
    admitted = 0
    for prompt in prompt_lengths:
        need = -(-(prompt + 1) // block_size)  # ceil: the prompt and its first new token
        if running + admitted >= max_batch or need > free_blocks:
            break  # first come, first served: nobody overtakes the head of the queue
        free_blocks -= need
        admitted += 1
    return admitted
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "serve_admit_check", "locked": true, "points": 2, "schema_version": 3, "solution": false}
check("serve_admit", admit)

# %% [markdown]
# **Why FCFS stops at the head.** Letting short prompts overtake a long one fills the batch
# better for a while, but the long prompt can wait forever (starvation). vLLM's default
# scheduler admits in arrival order for that reason; the engine of section 2 does too.
#
# ## Exercise 3 · When bringing a cache back beats recomputing it (1 point)
#
# A preempted request's KV cache can be copied to host memory and brought back later, or
# dropped and recomputed by running its prefill again. For n tokens, with b bytes of cache
# per token, a link of BW bytes/s, a GPU doing F FLOP/s, w weight FLOPs per token and
# causal attention over L layers of width d:
#
# $$t_\text{swap}(n) = \frac{n\, b}{BW}, \qquad
# t_\text{recompute}(n) = \frac{w\, n + 2 L d\, n^2}{F}.$$
#
# Swapping is no slower once $b / BW \le (w + 2 L d\, n) / F$, i.e. from
#
# $$n^* = \max\left(1, \left\lceil \frac{F\, b / BW - w}{2 L d} \right\rceil\right).$$
#
# Write `break_even_context(bytes_per_token, link_bytes_per_s, flops_per_s,
# weight_flops_per_token, layers, d_model)` returning n* as an int. Refuse a non-positive
# bytes per token, bandwidth, FLOP/s, layers or d_model with a ValueError.
#
# *The check* uses GPT-2 small on an H100 over PCIe 4.0 and 5.0, Llama-2-7B on an A100
# (where swapping always wins), two toys with exact quotients, 40 random inputs and four bad
# ones. It names floor or round for ceil, a missing max(1, …), the non-causal 4·L·d, a
# forgotten w, bits for bytes and a float result.


# %% nbgrader={"grade": false, "grade_id": "serve_offload_break_even", "locked": false, "schema_version": 3, "solution": true}
def break_even_context(bytes_per_token, link_bytes_per_s, flops_per_s, weight_flops_per_token,
                       layers, d_model):  # fmt: skip
    """Smallest context (tokens) at which swapping the cache in is no slower than recomputing."""
    ### BEGIN SOLUTION
    positive = {"bytes_per_token": bytes_per_token, "link_bytes_per_s": link_bytes_per_s,
                "flops_per_s": flops_per_s, "layers": layers, "d_model": d_model}  # fmt: skip
    for name, value in positive.items():
        if value <= 0:
            raise ValueError(f"{name} must be > 0, got {value}")
    excess = flops_per_s * bytes_per_token / link_bytes_per_s - weight_flops_per_token
    return max(1, math.ceil(excess / (2 * layers * d_model)))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "serve_offload_break_even_check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check("serve_offload_break_even", break_even_context)

# %% [markdown]
# **Reading it.** Per token, recomputing costs $(w + 2Ld\,n)/F$ and swapping $b/BW$. For a
# 7–8 B model w alone is ≈ 14 GFLOP per token, more than an H100 at half its peak spends in
# the time PCIe moves a token's cache: swapping wins at every length. For a small model with
# a large cache per parameter the recompute is cheap until attention's n² term grows.
#
# ## Exercise 4 · Expected tokens per target pass (1 point)
#
# In speculative decoding a draft model proposes k tokens and the target model checks them
# in one pass; the target keeps the longest prefix it agrees with and adds one token of its
# own. If each draft token is accepted with probability α, independently (the assumption of
# Leviathan et al. 2023), the i-th draft token survives with probability α^i and
#
# $$E[\text{tokens per pass}] = 1 + \alpha + \alpha^2 + \dots + \alpha^k
# = \frac{1 - \alpha^{k+1}}{1 - \alpha}, \qquad k + 1 \text{ at } \alpha = 1.$$
#
# Write `expected_tokens(alpha, k)`. Refuse α outside [0, 1] and k < 1 with a ValueError.
#
# *The check* tries α = 0, 0.3, 0.5, 0.8, 0.9, 0.999 and 1 with k from 1 to 16, 40 random
# pairs, and three bad inputs. It names the missing bonus term, counting only accepted
# draft tokens, 1 + kα, the infinite series, and 0 / 0 at α = 1.


# %% nbgrader={"grade": false, "grade_id": "serve_spec_expected_tokens", "locked": false, "schema_version": 3, "solution": true}
def expected_tokens(alpha, k):
    """Expected tokens one target pass yields: (1 - alpha^(k+1)) / (1 - alpha)."""
    ### BEGIN SOLUTION
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha is a probability in [0, 1], got {alpha}")
    if k < 1:
        raise ValueError(f"k must be >= 1 draft tokens, got {k}")
    if alpha == 1:
        return k + 1.0  # every draft token accepted, plus the bonus token
    return (1 - alpha ** (k + 1)) / (1 - alpha)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "serve_spec_expected_tokens_check", "locked": true, "points": 1, "schema_version": 3, "solution": false}
check("serve_spec_expected_tokens", expected_tokens)

# %% [markdown]
# **From tokens to time.** A pass costs one target step plus k draft steps; with c the cost
# of a draft step relative to a target step, the speed-up over plain decoding is
# $E / (k c + 1)$ (Leviathan et al. 2023, Theorem 3.8). Notebook 08, section 7 measures α and
# c for the course's models and compares the formula with the clock.

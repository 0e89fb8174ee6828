# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Linear (kernel) attention
#
# Notebooks 03 and 04 made attention's *memory* linear in n, but its *work* stayed
# quadratic: every query still meets every key. This notebook looks at the family of
# methods that claim "O(n)" attention: linear attention with a feature map, Performer's
# random features, Linformer's low-rank projection, and, further out, RetNet, RWKV and
# Mamba. We take the claim apart: where the n² goes, what it costs instead, when that is
# actually faster (measured), and what the model can no longer do.
#
# **You will be able to**
#
# 1. rewrite softmax(QKᵀ)V as φ(Q)(φ(K)ᵀV) / φ(Q)(φ(K)ᵀ1) and say why it costs O(n·m·d);
# 2. use two feature maps, elu + 1 and Performer's positive random features, and measure
#    how well the second approximates softmax, and where it breaks;
# 3. show that Linformer's projection along the sequence cannot be made causal;
# 4. write causal linear attention three ways, parallel, recurrent (an RNN) and chunked,
#    and check that they agree; run the chunked form as a Triton kernel;
# 5. predict the sequence length where linear attention overtakes softmax attention from a
#    FLOP count, then measure it;
# 6. show on a retrieval task what a fixed-size state cannot remember;
# 7. place RetNet, RWKV and Mamba in a cost table of prefill FLOPs and decoding memory.
#
# **Prerequisites:** notebooks 01 (S, P, softmax, the causal mask), 02 (FLOPs, bytes, the
# KV cache), 03 (tiling) and 04 (Triton kernels). No GPU needed.
#
# **Run time at full size:** CPU 45 s–3 min: ≈ 45 s on a quiet 2-core machine (2026-11-23,
# 43–48 s in three runs), up to 4× as long when other programs share its cores. Needs
# about 1.1 GB of free RAM (naive attention's measured peak at n = 4,096, 8 heads). GPU:
# not measured yet (no GPU run has been recorded for this course).
#
# **Size knob.** The run time depends on the number of cores, on what else the machine is
# doing, and on the size knob `ATTN_COURSE_SIZE`: with `small` (start the course with
# `ATTN_COURSE_SIZE=small make lab`, or run `%env ATTN_COURSE_SIZE=small` before the first
# code cell) every cell runs on tiny inputs, in about 10 s; the text describes the full
# size.
#
# The exercises for this notebook are in [`exercises/05_linear_attention.ipynb`](../exercises/05_linear_attention.ipynb).

# %%
import math

import torch

from attn_course.config import course_size, pick
from attn_course.cost import format_bytes, format_flops, kv_cache_bytes
from attn_course.kernels import kernel_device, kernel_mode
from attn_course.kernels.linear import linear_attention_forward
from attn_course.linear import (
    RETRIEVAL_METHODS,
    causal_linear_attention_chunked,
    causal_linear_attention_parallel,
    causal_linear_attention_recurrent,
    crossover_figure,
    decode_memory_table,
    elu_feature_map,
    future_influence,
    kernel_attention_explicit,
    linear_attention,
    linear_attention_flops,
    linear_state_bytes,
    linformer_attention,
    linformer_projections,
    measure_crossover,
    measured_crossover_n,
    performer_features,
    performer_projection,
    predicted_crossover_n,
    random_feature_error,
    random_feature_error_figure,
    recurrent_step,
    retrieval_accuracy,
    retrieval_figure,
    softmax_attention_flops,
)
from attn_course.measure import fit_trend, loglog_slope, machine_load
from attn_course.scores import naive_attention

torch.set_printoptions(precision=4, sci_mode=False, linewidth=110)
print(f"size: {course_size()}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
      f"Triton kernels: {kernel_mode()}")

# %% [markdown]
# ## 1 · The kernel trick: move the brackets
#
# **Intuition.** Softmax attention computes, for query i, a weighted average of the
# values with weights exp(q_i · k_j). The weight couples q_i and k_j inside an exponential,
# so every pair (i, j) has to be visited: n² weights. Suppose instead the weight were an
# ordinary dot product of two feature vectors, sim(q, k) = φ(q) · φ(k). Then the sum over
# keys can be done *before* looking at any query.
#
# **Formula.** With φ: ℝ^d → ℝ^m applied row by row,
#
# $$
# \text{out}_i = \frac{\sum_j \varphi(q_i)\cdot\varphi(k_j)\, v_j}{\sum_j \varphi(q_i)\cdot\varphi(k_j)}
# = \frac{\varphi(q_i)\,\overbrace{\textstyle\sum_j \varphi(k_j)^\top v_j}^{S\ (m\times d_v)}}
#        {\varphi(q_i)\cdot\underbrace{\textstyle\sum_j \varphi(k_j)}_{z\ (m)}} .
# $$
#
# In matrices: (φ(Q) φ(K)ᵀ) V = φ(Q) (φ(K)ᵀ V). Matrix products are associative; only the
# cost differs. Left: an n × n matrix, O(n² m). Right: an m × d_v matrix, O(n m d_v).
# The n × n matrix disappears because nothing non-linear (no exp, no row-wise softmax) sits
# between the two products any more.
#
# **Code.** `kernel_attention_explicit` builds the n × n weights; `linear_attention`
# moves the brackets. Same answer:

# %%
g = torch.Generator().manual_seed(0)
n, d = 512, 64
q, k, v = (torch.randn(n, d, generator=g, dtype=torch.float64) for _ in range(3))
phi_q, phi_k = elu_feature_map(q), elu_feature_map(k)
explicit = kernel_attention_explicit(phi_q, phi_k, v)  # builds n × n
reordered = linear_attention(phi_q, phi_k, v)  # builds m × d_v
print(f"max |explicit − linear| = {(explicit - reordered).abs().max():.2e}  (float64)")
print(f"intermediate: n × n = {n * n:,} numbers  vs  S, z: m × d_v + m = {d * d + d:,} numbers")

# %% [markdown]
# **But it is not softmax attention.** The feature map used here, φ(x) = elu(x) + 1
# (Katharopoulos et al., 2020), gives positive weights, so the output is still a weighted
# average, but of a different similarity than exp(q · k):

# %%
softmax_out = naive_attention(q, k, v).out
print(f"relative difference to softmax attention: "
      f"{((reordered - softmax_out).norm() / softmax_out.norm()):.2f}")

# %% [markdown]
# A model trained with elu + 1 learns to use its own similarity; a trained softmax model
# cannot just switch. To *approximate* softmax we need a φ with φ(q)·φ(k) ≈ exp(q·k)
# (section 3).

# %% [markdown]
# ## 2 · What "O(n)" costs
#
# Counting matmul FLOPs per head, as notebook 02 did (a multiply-add is 2 FLOPs), with the
# normaliser as one extra value column (V extended by a column of ones):
#
# $$
# \text{softmax: } 4 n^2 d, \qquad \text{linear: } 4 n m (d + 1).
# $$
#
# They are equal at n* = m (d + 1) / d ≈ m. Below n*, "O(n)" is *more* work than "O(n²)";
# the win is the ratio n / m, not n itself. Decoding is the other half of the story: the
# state S, z has a fixed size, while a KV cache grows with every token.

# %%
head_dim = 64
print(f"predicted crossover, head_dim {head_dim}: elu+1 (m = d): n* = "
      f"{predicted_crossover_n(head_dim):.0f};  Performer m = 256: n* = "
      f"{predicted_crossover_n(head_dim, features=256):.0f}")
print(f"\n{'n':>8} | {'softmax FLOPs':>13} {'linear FLOPs':>13} {'ratio':>7} | "
      f"{'KV cache / head':>15} {'linear state / head':>19}")
for n_tokens in (64, 1024, 16_384, 131_072):
    soft, lin = softmax_attention_flops(n_tokens, head_dim), linear_attention_flops(n_tokens, head_dim)
    cache = kv_cache_bytes(1, 1, head_dim, n_tokens, dtype="float16")
    print(f"{n_tokens:>8,} | {format_flops(soft):>13} {format_flops(lin):>13} {soft / lin:>7.1f} | "
          f"{format_bytes(cache):>15} {format_bytes(linear_state_bytes(head_dim, dtype='float16')):>19}")

# %% [markdown]
# Per head in fp16: the KV cache of 131,072 tokens is thousands of times the linear
# state, which never grows. That constant-size state is the real attraction for
# decoding, and, as section 7 shows, also the real limitation.

# %% [markdown]
# ## 3 · Approximating softmax: Performer's positive random features
#
# **Intuition.** exp(q · k) is an inner product in an *infinite*-dimensional feature
# space. Random features pick m random directions of that space and estimate the inner
# product from them, like a Monte-Carlo average.
#
# **Formula** (Choromanski et al., 2021). For w ~ N(0, I_d),
# E[exp(w·q − |q|²/2) · exp(w·k − |k|²/2)] = exp(q · k). So with m draws w_1 … w_m,
#
# $$
# \varphi(x) = \tfrac{1}{\sqrt m}\big(e^{w_1\cdot x - |x|^2/2}, \dots, e^{w_m\cdot x - |x|^2/2}\big),
# \qquad \varphi(q)\cdot\varphi(k) \approx e^{q\cdot k}.
# $$
#
# Every feature is positive (unlike sin/cos features, whose estimate of a small weight can
# go negative and wreck the normaliser). Drawing the w's orthogonal to each other in blocks
# of d lowers the variance further. Scaling q and k by d^(−1/4) gives exp(q·k/√d).
#
# **Code.** An estimate of one kernel value, then of whole attention outputs:

# %%
qv = torch.full((1, 8), 0.3, dtype=torch.float64)
kv = torch.linspace(-0.4, 0.4, 8, dtype=torch.float64)[None]
exact = math.exp(float(qv @ kv.T))
for m in (16, 256, 4096):
    w = performer_projection(8, m, generator=torch.Generator().manual_seed(1))
    estimate = float((performer_features(qv, w) * performer_features(kv, w)).sum())
    print(f"m = {m:>5}: φ(q)·φ(k) = {estimate:.4f}   exp(q·k) = {exact:.4f}")

# %% [markdown]
# The estimate converges, but slowly: a Monte-Carlo error shrinks like 1/√m, so each
# extra digit costs 100 times more features.
#
# **Measurement.** The relative error of random-feature attention against exact softmax
# attention (float64, n = 256, d = 32), as a function of the number of features m and of
# the spread of the scaled scores q·k/√d (q and k drawn from N(0, σ²)):

# %%
rf_features = pick(full=[16, 32, 64, 128, 256, 512, 1024, 2048], small=[16, 64, 256])
rf_sigmas = pick(full=[0.25, 0.5, 0.75, 1.0, 1.5], small=[0.5, 1.5])
rf_rows = random_feature_error(rf_features, rf_sigmas, n=256, head_dim=32, draws=pick(full=3, small=1))
random_feature_error_figure(rf_rows, n=256, head_dim=32)

# %%
for sigma in rf_sigmas:
    rows = [r for r in rf_rows if r["qk_std"] == sigma]
    print(f"σ = {sigma:<4}: error at m = {rows[0]['features']:>4}: {rows[0]['rel_error']:.3f}, "
          f"at m = {rows[-1]['features']:>4}: {rows[-1]['rel_error']:.3f}")

# %% [markdown]
# For the flattest scores (σ = 0.25) the error falls like 1/√m, as a Monte-Carlo estimate
# should: the cell above prints the two ends of each line. Once the scaled scores spread by
# about 1 or more, which is where softmax attention becomes *selective*, the error stays
# near or above 100 % even with thousands of features: the estimator's variance grows like
# exp(|q|² + |k|²), and averaging m samples only divides it by m. Random features
# approximate softmax well exactly where softmax is close to uniform, and badly where it
# matters most.

# %% [markdown]
# ## 4 · Linformer: low rank along the sequence, and why it cannot be causal
#
# Linformer (Wang et al., 2020) keeps the softmax but shrinks the *sequence*: two k × n
# matrices E and F mix the n keys and values into k summaries, K' = E K, V' = F V, and
# attention runs against those: softmax(Q K'ᵀ) V' costs O(n k d).
#
# Every row of E is a mixture of **all** n positions, including positions after the
# query. A causal mask has nothing to mask: there is no "key j" any more, only mixtures.
# Test it: change token 12 and see whether the outputs of tokens 0 … 11 move.

# %%
g = torch.Generator().manual_seed(0)
q16, k16, v16 = (torch.randn(16, 8, generator=g, dtype=torch.float64) for _ in range(3))
e, f = linformer_projections(16, 4, generator=g)
candidates = {
    "Linformer (k = 4)": lambda q, k, v: linformer_attention(q, k, v, e, f),
    "causal softmax attention": lambda q, k, v: naive_attention(q, k, v, causal=True).out,
    "causal linear attention (elu+1)":
        lambda q, k, v: linear_attention(elu_feature_map(q), elu_feature_map(k), v, causal=True),
}
for name, attention in candidates.items():
    print(f"{name:<34} max |Δ out_0..11| after changing token 12: "
          f"{future_influence(attention, q16, k16, v16, 12):.3e}")

# %% [markdown]
# Linformer leaks the future, so it can encode (like BERT) but not generate
# autoregressively. Linear attention, below, can be exactly causal.

# %% [markdown]
# ## 5 · Causal linear attention, three ways
#
# With a causal mask, token i may only sum over j ≤ i, so S and z become running sums:
#
# $$
# S_i = S_{i-1} + \varphi(k_i)^\top v_i, \quad z_i = z_{i-1} + \varphi(k_i), \quad
# \text{out}_i = \frac{\varphi(q_i) S_i}{\varphi(q_i)\cdot z_i}.
# $$
#
# That is a recurrent neural network with a state of m × d_v + m numbers: *causal linear
# attention is an RNN* (the title of Katharopoulos et al.). Three ways to compute it:
#
# | form | how | work | good for |
# |---|---|---|---|
# | parallel | tril(φ(Q)φ(K)ᵀ) V, row-normalised | O(n² m) | short sequences, checking |
# | recurrent | one state update per token | O(n m d_v), n sequential steps | decoding |
# | chunked | chunks of C: parallel inside, state across | O(n C m + n m d_v) | training kernels |

# %%
g = torch.Generator().manual_seed(1)
qc, kc, vc = (torch.randn(2, 4, 300, 32, generator=g, dtype=torch.float64) for _ in range(3))
pq, pk = elu_feature_map(qc), elu_feature_map(kc)
parallel = causal_linear_attention_parallel(pq, pk, vc)
recurrent = causal_linear_attention_recurrent(pq, pk, vc)
print(f"n = 300: max |recurrent − parallel| = {(recurrent - parallel).abs().max():.1e}")
for chunk in (1, 7, 64, 300):
    chunked = causal_linear_attention_chunked(pq, pk, vc, chunk_size=chunk)
    print(f"          max |chunked(C = {chunk:>3}) − parallel| = {(chunked - parallel).abs().max():.1e}")

# %% [markdown]
# The recurrent form is how such a model decodes: one `recurrent_step` per new token, with
# memory that does not depend on how many tokens came before.

# %%
m_feat, d_v = pq.shape[-1], vc.shape[-1]
state, z = torch.zeros(m_feat, d_v, dtype=torch.float64), torch.zeros(m_feat, dtype=torch.float64)
for t in range(5):
    out_t, state, z = recurrent_step(state, z, pq[0, 0, t], pk[0, 0, t], vc[0, 0, t])
print(f"token 4 decoded step by step == row 4 of the parallel form: "
      f"{torch.allclose(out_t, parallel[0, 0, 4])};  state: {state.numel() + z.numel()} numbers, "
      "whatever the context length")

# %% [markdown]
# **The chunked form as a Triton kernel.** `attn_course/kernels/linear.py` runs one
# program per (batch, head); it walks along the sequence in chunks of 16 (interpreter) or
# 64 (GPU) tokens and keeps S (m × d_v) and z in registers the whole way: the sequence is
# read once, and nothing n × n or even n × m is ever written. Here it runs in Triton's
# CPU interpreter (slow, one program after another; correctness only), with elu + 1
# applied inside the kernel:

# %%
g = torch.Generator().manual_seed(2)
qt, kt = (torch.randn(1, 2, 40, 16, generator=g, dtype=torch.float64) for _ in range(2))
vt = torch.randn(1, 2, 40, 32, generator=g, dtype=torch.float64)
reference = causal_linear_attention_recurrent(elu_feature_map(qt), elu_feature_map(kt), vt)
for dtype in (torch.float32, torch.float16, torch.bfloat16):
    got = linear_attention_forward(*(t.to(dtype).to(kernel_device()) for t in (qt, kt, vt)),
                                   feature_map="elu")
    print(f"{str(dtype):>15}: max |kernel − float64 recurrence| = "
          f"{(got.cpu().double() - reference).abs().max():.1e}")

# %% [markdown]
# The fp16 and bf16 errors are those of rounding the inputs and the output to 10 and 7
# mantissa bits; the state is accumulated in fp32 either way.

# %% [markdown]
# ## 6 · Measured: when is linear attention faster?
#
# The FLOP count predicted a crossover near n* ≈ 65 for head_dim 64 (elu + 1, m = d).
# Now the clock: non-causal, float32, 8 heads, head_dim 64, on this CPU; softmax
# attention as the naive implementation (S and P stored, notebook 01) and as torch's
# `scaled_dot_product_attention`; linear attention with its feature maps included. All on
# one CPU thread, for both sides alike: on a shared machine a multi-threaded call waits for
# its slowest thread, which made small-n timings jump by 100× in our runs. Time is
# the best of many runs in three sweeps over all n (so that a burst of load from another
# program spoils one sweep, not the result); memory is the extra peak of the PyTorch
# allocator.

# %%
# Run time at full size: ≈ 30 s on a quiet 2-core CPU, up to 2 min on a busy one (2026-11-23); GPU: not measured.
cross_ns = pick(full=[64, 128, 256, 512, 1024, 2048, 4096], small=[32, 64, 128])
cross_rows = measure_crossover(cross_ns, head_dim=64, heads=8, min_total_s=pick(full=0.1, small=0.0),
                               rounds=pick(full=3, small=1), threads=1)
measured_sdpa = measured_crossover_n(cross_rows, "sdpa")
measured_naive = measured_crossover_n(cross_rows, "naive")
predicted = predicted_crossover_n(64)
crossover_figure(cross_rows, predicted_n=predicted, measured_n=measured_sdpa)

# %%
print(f"{'n':>6} | {'naive ms':>9} {'SDPA ms':>8} {'linear ms':>9} | {'naive MiB':>9} {'SDPA MiB':>8} {'linear MiB':>10}")
for r in cross_rows:
    print(f"{r.n:>6,} | {r.naive_s * 1e3:>9.3f} {r.sdpa_s * 1e3:>8.3f} {r.linear_s * 1e3:>9.3f} | "
          f"{r.naive_bytes / 2**20:>9.2f} {r.sdpa_bytes / 2**20:>8.2f} {r.linear_bytes / 2**20:>10.2f}")
ns_ = [r.n for r in cross_rows]
print(f"\nslopes (log-log) of the memory: naive {loglog_slope(ns_, [r.naive_bytes for r in cross_rows]):.2f}, "
      f"linear {loglog_slope(ns_, [r.linear_bytes for r in cross_rows]):.2f}")
above = cross_rows[-4:]  # the largest sizes, beyond the crossover
for name, times, expected in (("naive", [r.naive_s for r in above], 2),
                              ("linear", [r.linear_s for r in above], 1)):  # fmt: skip
    trend = fit_trend([r.n for r in above], times)
    print(trend.sentence(f"{name} attention's time for n >= {above[0].n}", "n",
                         expected=expected, load=machine_load()))  # fmt: skip
for name, measured in (("SDPA", measured_sdpa), ("naive", measured_naive)):
    if measured is None:
        print(f"vs {name}: linear attention never became faster in the measured range")
    else:
        print(f"vs {name}: measured crossover n ≈ {measured:.0f}, predicted {predicted:.0f}: "
              f"factor {measured / predicted:.1f}")

# %% [markdown]
# On the 2-core CPU this notebook was written on (2026-11-23, one thread), linear attention
# overtook SDPA at n ≈ 250 and naive attention at n ≈ 190: about 4× and 3× later than the
# FLOP count's n* = 65 (the cell above prints the factors of your run). So the prediction
# holds to within a factor of about 4, and the reasons for the gap are concrete: linear
# attention pays for the two feature maps, the normaliser and a division, none of which
# the FLOP count includes, and its matmuls are badly shaped (a d × d result summed over
# n rows), while SDPA is one fused kernel. Beyond the crossover the FLOP counts predict
# that linear attention's time and memory grow like n¹ and naive attention's like n².
# The memory slopes are printed as measured (the allocator does not care about load);
# the time sentences are decided by a fit of the four largest sizes:
# they say "climbs" only when the exponent's 95 % confidence interval is above 0, say
# whether it contains the predicted 1 or 2, and print "too noisy on this machine" with
# the reasons otherwise. (SDPA's memory is linear too, a fused FlashAttention-style kernel
# as in notebook 04, but its time stays quadratic.)

# %% [markdown]
# ## 7 · What is lost: exact retrieval from a fixed-size state
#
# A softmax attention head can act as a look-up table: with a sharp enough query it puts
# almost all its weight on the one key that matches, however many others there are. A
# linear-attention head must squeeze all n key–value pairs into S, an m × d_v matrix.
# No training is needed to see the consequence; write the ideal look-up down directly:
#
# * n random unit keys k_j and random values v_j (d = 64);
# * for a random target t, the query q = 16 · k_t (16 acts as an inverse temperature);
# * success if the output is closer (cosine) to v_t than to any other of the n values.
#
# We compare softmax attention, elu + 1 linear attention fed the same q, k, v, and the
# best case for a fixed-size state: the plain outer-product memory out = q (Σ_j k_jᵀ v_j)
# (φ = identity, no normaliser), whose crosstalk from the other n − 1 pairs grows like
# √(n / d).

# %%
retrieval_ns = pick(full=[16, 32, 64, 128, 256, 512, 1024, 2048, 4096], small=[16, 64, 256])
accuracy = {m: [retrieval_accuracy(m, n, queries=pick(full=128, small=32)) for n in retrieval_ns]
            for m in RETRIEVAL_METHODS}
retrieval_figure(retrieval_ns, accuracy)

# %%
print(f"{'n':>6} | " + " | ".join(f"{label:>36}" for label in RETRIEVAL_METHODS.values()))
for i, n_pairs in enumerate(retrieval_ns):
    print(f"{n_pairs:>6,} | " + " | ".join(f"{100 * accuracy[m][i]:>35.0f}%" for m in RETRIEVAL_METHODS))

# %% [markdown]
# Softmax attention retrieves every pair at every n tried. elu + 1 linear attention fails
# almost from the start: its similarity φ(q)·φ(k) is far too flat to single out one key,
# so the output is close to the average value. Even the outer-product memory, which is
# sharp, works only while n is up to about 2d = 128 and collapses as n grows beyond:
# a d × d state holds about d associations. This is a property of the fixed-size state,
# not of the test: it is the price of O(1) decoding memory, and it matches the reported
# weakness of linear-attention and state-space models on recall-heavy tasks
# (associative recall, copying, needle-in-a-haystack).

# %% [markdown]
# ## 8 · Where the field went
#
# The recurrent view of section 5 is the bridge to the "attention-free" models:
#
# * **RetNet** (Sun et al., 2023) and **RWKV** (Peng et al.; RWKV-5/6) keep the linear
#   recurrence but *decay* the state: S_t = γ S_{t−1} + k_tᵀ v_t (RetNet: a fixed decay
#   γ per head; RWKV-6: a data-dependent decay per channel). Old associations fade, which
#   frees room for new ones; no normaliser, a group norm instead. Training uses the same
#   parallel or chunked forms as above; decoding the O(1) recurrence.
# * **State-space models**, and **Mamba** (Gu & Dao, 2023) in particular, run a linear
#   recurrence h_t = Ā_t h_{t−1} + B̄_t x_t, y_t = C_t h_t per channel, where Ā, B̄ and C
#   depend on the input ("selective"). There is no query–key product at all. Training
#   computes it with a parallel scan: O(n) work, O(log n) depth. Its state is d_inner ×
#   N numbers (N = 16), again independent of n.
#
# All of them trade the KV cache for a fixed-size state. In numbers, for one layer of a
# GPT-2-small-sized model (d_model 768, 12 heads, fp16) at a context of 100,000 tokens
# (token-mixing only; the projections and the FFN are the same for all and not counted):

# %%
context, d_model, heads = 100_000, 768, 12
print(f"{'method':<46} {'complexity':>10} {'prefill FLOPs':>13} | {'decode memory':>13} {'':<12}")
table = decode_memory_table(context, d_model, heads, dtype="float16")
for row in table:
    print(f"{row['method']:<46} {row['complexity']:>10} {format_flops(row['prefill_flops']):>13} | "
          f"{format_bytes(row['decode_bytes']):>13} {row['decode_growth']:<12}")
softmax_row = table[0]
for row in table[1:]:
    print(f"softmax / {row['method'].split(' (')[0]}: prefill FLOPs "
          f"{softmax_row['prefill_flops'] / row['prefill_flops']:,.0f}×, decode memory "
          f"{softmax_row['decode_bytes'] / row['decode_bytes']:,.0f}×")

# %% [markdown]
# (Formulas: `attn_course.linear.decode_memory_table`; Mamba with the paper's defaults,
# expand 2, N = 16, convolution width 4; its scan counted as 7 FLOPs per token,
# channel and state entry.) At 100,000 tokens the KV cache of one layer is thousands of
# times any of the recurrent states, and the token-mixing FLOPs of the prefill drop by
# several hundred times (the last lines print the ratios). What the table
# cannot show is section 7: all these models forget, and most recent large models that use
# them are *hybrids* that keep a few softmax-attention layers for exact recall.

# %% [markdown]
# ## Summary
#
# * Linear attention replaces exp(q·k) by φ(q)·φ(k); moving the brackets,
#   φ(Q)(φ(K)ᵀV), removes the n × n matrix: O(n m d) work and O(m d) state. Same answer as
#   the explicit n × n form, to rounding.
# * "O(n)" is cheaper only above n* = m (d + 1) / d ≈ m by FLOPs; measured on a CPU the
#   crossover comes a few times later (section 6 prints the factor).
# * elu + 1 is a *different* attention, not an approximation; Performer's positive random
#   features approximate softmax, with an error that falls like 1/√m for flat scores and
#   stays near 100 % once scores spread by about one unit or more.
# * Linformer compresses along the sequence and therefore sees the future: not causal.
# * Causal linear attention is an RNN: parallel, recurrent and chunked forms agree to
#   ~1e-16 in float64; the chunked form is what kernels (ours in Triton) implement.
# * The fixed-size state is both the gain (decode memory independent of n) and the loss
#   (exact recall of one key among n ≫ d fails). RetNet, RWKV and Mamba refine the
#   recurrence with decay and selectivity, but keep a fixed-size state.
#
# **Next:** [06 · Sparse attention](06_sparse_attention.ipynb) keeps exact softmax but lets
# each query see only some keys. Practise first with the exercises in
# [`exercises/05_linear_attention.ipynb`](../exercises/05_linear_attention.ipynb).

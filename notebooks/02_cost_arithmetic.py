# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Cost arithmetic: FLOPs, bytes and seconds
#
# Notebook 01 built the n × n score matrix and weighed one copy of it. A real model
# holds many copies (one per head, per layer, per sequence in the batch), computes
# them with matmuls whose price we can count exactly, and has to push every byte
# through a memory bus of finite width. This notebook turns "attention is O(n²)" into
# numbers with units: how many FLOPs, how many bytes, how many seconds, on which GPU.
#
# **You will be able to**
#
# 1. count the FLOPs of each part of a Transformer layer and find the sequence length at
#    which attention overtakes the feed-forward network (it is not n = d);
# 2. compute the bytes of the score matrices per head, per layer and per model, and say
#    which of them training keeps for the backward pass (checked against autograd);
# 3. turn bytes into seconds with a bandwidth, FLOPs into seconds with a peak rate, and
#    decide which of the two bounds a step;
# 4. size a KV cache for multi-head, grouped-query and multi-query attention;
# 5. estimate time to first token (prefill) and the cost of each generated token (decode);
# 6. check every checkable statement of two popular explanations of the quadratic wall,
#    with a verdict computed from the numbers, and correct the ones that are wrong.
#
# **Prerequisites:** notebook 01 (the score matrix, its bytes, softmax). Matrix shapes and
# a little algebra. No GPU needed: the GPU figures come from datasheets, and the few
# measurements run on your CPU.
#
# **Run time at full size:** CPU 13 s–50 s: ≈ 13 s on a quiet 2-core machine (2026-11-23),
# up to 4× as long when other programs share its cores. Most cells are arithmetic and
# finish at once; the timing measurements in section 4 take the rest. GPU: not measured
# yet (no GPU run has been recorded for this course).
#
# **Size knob.** The run time depends on the number of cores, on what else the machine is
# doing, and on the size knob `ATTN_COURSE_SIZE`: with `small` (start the course with
# `ATTN_COURSE_SIZE=small make lab`, or run `%env ATTN_COURSE_SIZE=small` before the first
# code cell) every cell runs on tiny inputs, in seconds; the text describes the full size.
#
# The exercises for this notebook are in [`exercises/02_cost_arithmetic.ipynb`](../exercises/02_cost_arithmetic.ipynb).

# %%
from IPython.display import HTML, Markdown, display

from attn_course import claims, cost
from attn_course.config import course_size, pick
from attn_course.presets import HARDWARE, MODELS, get_hardware, get_model
from attn_course.ui.cost import (
    FlopsCalculator,
    KVCacheCalculator,
    ScoreMemoryCalculator,
    prefill_time_figure,
)

fb, ff, fs = cost.format_bytes, cost.format_flops, cost.format_seconds


def table(header, rows):
    """A small Markdown table: a header row and rows of already formatted cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    display(Markdown("\n".join(lines)))


print(f"size: {course_size()}")

# %% [markdown]
# ## 1 · Units first
#
# Three conventions, used everywhere below:
#
# * **FLOPs** count floating-point operations, and a multiply-add counts as **two**. A
#   matmul of an (m × k) matrix by a (k × p) one computes m·p dot products of length k:
#   **2·m·k·p FLOPs**. Some texts count multiply-adds ("MACs") instead, which is half.
#   Mixing the two is the most common factor-of-2 error in this subject.
# * **Bytes** are bytes, and we always say which unit we print: **GB = 10⁹ B**, **GiB =
#   2³⁰ B** (7 % more). GPU memory *capacities* are binary (an "80 GB" card holds 80 GiB);
#   bandwidths are decimal ("2,039 GB/s" is 2.039 × 10¹² B/s).
# * **Seconds**, bytes per second, FLOPs per second.
#
# A dtype decides how many bytes each number takes:

# %%
table(
    ["dtype", "bytes per element"],
    [(name, cost.bytes_per_element(name)) for name in cost.DTYPE_BYTES if name != "bool"],
)
print(fb(2**31), "=", fb(2**31, binary=True))

# %% [markdown]
# Bad input is refused with a message that names the parameter, rather than giving a
# silently wrong number. (This cell is meant to fail.)

# %% tags=["raises-exception"]
cost.projection_flops(4096, d_model=4096, heads=3)  # 4096 channels cannot split into 3 heads

# %% [markdown]
# ## 2 · FLOPs: attention against the feed-forward network
#
# **Intuition.** A Transformer layer does four kinds of matmul. Three of them treat each
# token on its own: the Q/K/V/O projections and the two (or three) matrices of the
# feed-forward network (FFN). Their cost is "per token × tokens": **linear** in n. The
# remaining two, QKᵀ and PV, pair every token with every other: **quadratic** in n. At
# short context the per-token work dominates, because the weight matrices are big
# (d × 4d); at long context the pairs win. Where is the switch?
#
# **Formulas** (one layer, one sequence of n tokens, width d, FFN width d_ff):
#
# | part | shapes | FLOPs |
# |---|---|---|
# | QKᵀ, all heads | (n × d_h)·(d_h × n), h times, h·d_h = d | 2·n²·d |
# | PV, all heads | (n × n)·(n × d_h), h times | 2·n²·d |
# | Q and O projections | (n × d)·(d × d), twice | 4·n·d² |
# | K and V projections | (n × d)·(d × kv·d_h), twice | 4·n·d²·kv/h |
# | FFN, 2 matrices (GPT) | up and down | 4·n·d·d_ff |
# | FFN, 3 matrices (SwiGLU, Llama) | gate, up and down | 6·n·d·d_ff |
#
# The number of heads does not change the attention FLOPs: splitting d channels into h
# heads of d/h channels does h times less work per head, h times. A causal model needs
# only the lower triangle of the score matrix, so a kernel that skips the rest does
# about half: 2·n²·d.

# %%
model = get_model("Llama-2-7B")
lengths = pick(full=[1024, 4096, 16384, 65536, 262144], small=[1024, 4096])
rows = []
for n in lengths:
    parts = cost.layer_flops(model, n, causal=True)
    rows.append(
        (f"{n:,}", ff(parts.attention), ff(parts.projections), ff(parts.ffn),
         f"{parts.attention_share:.0%}")
    )  # fmt: skip
print(f"{model.name}: d = {model.d_model}, d_ff = {model.d_ff} (SwiGLU), causal, one layer")
table(["n", "attention QKᵀ+PV", "Q/K/V/O projections", "FFN", "attention share"], rows)

# %% [markdown]
# **The crossover.** Set attention equal to the FFN and divide by 4·n·d:
#
# 4·n²·d = 4·n·d·d_ff  ⟹  **n = d_ff** (= 4d for the classic FFN with d_ff = 4d).
#
# Against everything else in the layer (FFN + projections, multi-head attention):
#
# 4·n²·d = 4·n·d·d_ff + 8·n·d²  ⟹  **n = d_ff + 2d** (= 6d when d_ff = 4d).
#
# Causal masking halves the attention side, which doubles both answers; a gated FFN and
# grouped-query attention (smaller K and V projections) move them again. So the
# switch-over lies several times beyond d, not at n ≈ d as one of our source texts says.
# For the presets, and the range they span:

# %%
rows, multiples = [], {"= FFN": [], "= FFN + projections": [], "= FFN + projections, causal": []}
for m in MODELS.values():
    shape = dict(gated=m.gated_ffn, heads=m.heads, kv_heads=m.kv_heads)
    vs_ffn = cost.attention_ffn_crossover_n(m.d_model, m.d_ff, **shape)
    vs_layer = cost.attention_ffn_crossover_n(
        m.d_model, m.d_ff, include_projections=True, **shape
    )
    causal = cost.attention_ffn_crossover_n(
        m.d_model, m.d_ff, include_projections=True, causal=True, **shape
    )
    rows.append(
        (m.name, f"{m.d_model:,}", f"{vs_ffn:,.0f} ({vs_ffn / m.d_model:.1f} d)",
         f"{vs_layer:,.0f} ({vs_layer / m.d_model:.1f} d)",
         f"{causal:,.0f} ({causal / m.d_model:.1f} d)")
    )  # fmt: skip
    for column, n_star in zip(multiples, (vs_ffn, vs_layer, causal), strict=True):
        multiples[column].append(n_star / m.d_model)
table(["model", "d", *multiples], rows)
all_multiples = [x for column in multiples.values() for x in column]
print(f"range over the presets: {min(all_multiples):.1f} d to {max(all_multiples):.1f} d; "
      + "; ".join(f"{column}: {min(xs):.1f}-{max(xs):.1f} d" for column, xs in multiples.items()))

# %% [markdown]
# **Where "n ≈ d" comes from.** Vaswani et al. (2017, §4 and Table 1) compare a
# self-attention layer, O(n²·d) per layer, with a *recurrent* layer, O(n·d²), and note that
# self-attention is the faster of the two when n < d. That answers a different question:
# a recurrent layer is not the feed-forward network of the same Transformer, and orders of
# growth carry no constants. The comparison inside one Transformer is in Kaplan et al.
# (2020, §2.1): forward FLOPs per token C ≈ 2N + 2·n_layer·n_ctx·d_model, with
# N ≈ 12·n_layer·d_model² weights in the layers, so the context-dependent (attention)
# term equals the weight term at n_ctx ≈ 12·d_model. That is the causal "FFN +
# projections" column above for a GPT-shaped model (MHA, d_ff = 4d):

# %%
gpt = get_model("GPT-3-175B")
kaplan_n = cost.attention_ffn_crossover_n(
    gpt.d_model, gpt.d_ff, include_projections=True, causal=True, heads=gpt.heads,
    kv_heads=gpt.kv_heads,
)  # fmt: skip
print(f"{gpt.name}: causal attention = FFN + projections at n = {kaplan_n:,.0f} = "
      f"{kaplan_n / gpt.d_model:g}·d_model")

# %% [markdown]
# Above the crossover the ratio grows linearly: attention / FFN = n / n\*. At n = 10⁶
# with GPT-3's width that ratio is about 20, which is one order of magnitude, not two.

# %%
gpt3 = get_model("GPT-3-175B")
for causal in (False, True):
    ratio = cost.attention_ffn_ratio(10**6, gpt3.d_model, gpt3.d_ff, causal=causal)
    print(f"GPT-3 shape, n = 1,000,000, causal={causal}: attention / FFN = {ratio:.1f}")

# %% [markdown]
# ## 3 · Memory: the score matrices, and what training keeps
#
# **Intuition.** One score matrix is n² numbers. A model has one per head per layer,
# and a batch multiplies again. Whether they all exist *at the same time* depends on
# what you are doing:
#
# * **Inference, naive attention:** a layer builds S, turns it into P, uses P, and can
#   drop both before the next layer. Peak: S and P of **one layer** (all its heads).
# * **Training:** the backward pass needs some forward results, so autograd keeps them
#   until the backward pass reaches that layer. For `O = softmax(QKᵀ·scale)·V`:
#   softmax's gradient needs only its output P, and the PV matmul's gradient needs P
#   and V. Nobody needs S, so S is freed. **Every layer's P is kept**: heads × layers ×
#   n² numbers. Dropout on P adds its mask and a second, dropped-out copy of P.
#
# **Formulas** (b = bytes per element):
#
# * one matrix: n²·b
# * forward peak of one layer: 2·h·n²·b (S and P)
# * kept for backward, whole model: L·h·n²·b (+ L·h·n²·(b + mask) with dropout)

# %%
model = get_model("Llama-2-7B")
rows = []
for n in pick(full=[4096, 32768, 131072, 1_000_000], small=[4096, 32768]):
    rows.append(
        (f"{n:,}", fb(cost.score_matrix_bytes(n, "bf16")),
         fb(cost.forward_peak_score_bytes(n, model.heads, "bf16")),
         fb(cost.saved_for_backward_bytes(n, model.heads, model.layers, "bf16")))
    )  # fmt: skip
print(f"{model.name}: {model.heads} heads x {model.layers} layers, bf16, batch 1")
table(["n", "one matrix", "one layer, forward peak (S+P)", "all layers, kept for backward"], rows)
h100 = get_hardware("H100-SXM5-80GB")
fits = cost.max_n_for_memory(h100.memory_bytes, "bf16", heads=model.heads, layers=model.layers)
print(f"Kept scores alone fill an {h100.name} ({fb(h100.memory_bytes, binary=True)}) at n = {fits:,}")

# %% [markdown]
# **Measurement.** Is "autograd keeps P, not S" true? PyTorch lets us watch every tensor
# autograd saves (`torch.autograd.graph.saved_tensors_hooks`).
# `cost.measure_saved_score_bytes` runs a naive attention under such a hook and adds up
# the n × n tensors it saw; we compare with the formula. (On the CPU the dropout mask is
# stored in the data's dtype; PyTorch's CUDA kernel stores it as 1-byte booleans.)

# %%
rows = []
for n, heads, dtype, dropout, softmax_dtype in [
    (256, 4, "float32", 0.0, None), (256, 4, "bfloat16", 0.0, None), (256, 4, "float32", 0.1, None),
    (256, 4, "bfloat16", 0.0, "float32"),  # mixed precision: softmax in fp32, cast to bf16
]:  # fmt: skip
    measured = cost.measure_saved_score_bytes(
        n, heads, dtype, dropout=dropout, softmax_dtype=softmax_dtype
    )
    predicted = cost.saved_for_backward_bytes(
        n, heads, 1, dtype, dropout=bool(dropout), dropout_mask_dtype=dtype,
        softmax_dtype=softmax_dtype,
    )  # fmt: skip
    one_matrix_per_head = cost.score_matrix_bytes(n, dtype, heads=heads)
    rows.append(
        (n, heads, dtype, softmax_dtype or dtype, dropout, fb(measured, binary=True),
         fb(predicted, binary=True), f"{measured / one_matrix_per_head:g}",
         f"{measured / cost.score_count(n, heads=heads):g} B")
    )  # fmt: skip
table(["n", "heads", "dtype", "softmax in", "dropout", "measured", "formula",
       "n×n matrices per head (in dtype)", "per score"], rows)  # fmt: skip

# %% [markdown]
# One matrix per head without dropout (P, not S), three with dropout on the CPU (P, the
# mask, the dropped-out P).
#
# The last row is mixed-precision eager code as it is commonly written: scores in bf16,
# then `torch.softmax(S, dim=-1, dtype=torch.float32).to(torch.bfloat16)` (Hugging Face's
# "eager" attention, for one, does this). The softmax keeps its float32 output for its own
# backward, and the PV matmul keeps the bf16 copy: two copies of P, float32 and bf16,
# measured above with the same hook. One of our source texts says naive implementations
# "materialise it twice"; for this common pattern that is closer to the truth than the
# course's own naive attention, which keeps P once.
#
# Scale it up: a 32-layer, 32-head model at 32,768 tokens in bf16.

# %%
n, layers, heads = 32768, 32, 32
one_head_per_layer = cost.score_matrix_bytes(n, "bf16", layers=layers)
kept = cost.saved_for_backward_bytes(n, heads, layers, "bf16")
kept_mixed = cost.saved_for_backward_bytes(n, heads, layers, "bf16", softmax_dtype="float32")
print(f"one head per layer (the textbook's product): {fb(one_head_per_layer)}")
print(f"every head, P kept once (bf16):              {fb(kept)} ({kept / one_head_per_layer:.0f}x)")
print(f"every head, fp32 softmax cast to bf16:       {fb(kept_mixed)} ({kept_mixed / kept:.0f}x that)")

# %% [markdown]
# Section 8 checks the textbook's "≈ 70 GB" against these figures.

# %% [markdown]
# ## 4 · Bytes ÷ bandwidth = seconds
#
# **Intuition.** A GPU does arithmetic far faster than it can fetch operands from its
# memory (HBM). Moving B bytes at bandwidth W takes at least **B / W seconds**; doing F
# FLOPs at peak rate R takes at least **F / R** (divide R by the fraction of peak you
# really get, the *utilisation* or MFU). A kernel that overlaps the two takes about the
# **larger** of them: the *roofline* estimate. Which one is larger says whether the
# kernel is *memory-bound* or *compute-bound*; the dividing line is its arithmetic
# intensity F / B against the device's R / W (hundreds of FLOPs per byte on these GPUs).
#
# Writing one 32,768 × 32,768 fp16 score matrix to HBM and reading it back:

# %%
one_matrix = cost.score_matrix_bytes(32768, "fp16")
rows = []
for hw in HARDWARE.values():
    seconds = cost.transfer_time_s(2 * one_matrix, hw.bandwidth_bytes_per_s)
    ridge = cost.peak_flops_per_s(hw, "bf16") / hw.bandwidth_bytes_per_s
    rows.append(
        (hw.name, f"{hw.bandwidth_bytes_per_s / 1e9:,.0f} GB/s", fs(seconds), f"{ridge:.0f}")
    )
print(f"one matrix: {fb(one_matrix)} = {fb(one_matrix, binary=True)}; round trip moves twice that")
table(["device", "HBM bandwidth", "write + read once", "bf16 FLOPs per byte to be compute-bound"], rows)

# %% [markdown]
# About 2 ms on an A100, not the 30 ms one source text gives. But a naive layer does
# this for every head, and more than once: it writes S, reads it for the softmax, writes
# P, reads it for PV. Compare that traffic with the layer's attention FLOPs:

# %%
model, hw, n = get_model("Llama-2-7B"), get_hardware("A100-SXM4-80GB"), 32768
traffic = cost.naive_attention_traffic_bytes(n, model.heads, 1, "bf16")
flops = cost.attention_matmul_flops(n, model.d_model, causal=False)
memory_s = cost.transfer_time_s(traffic, hw.bandwidth_bytes_per_s)
compute_s = cost.compute_time_s(flops, cost.peak_flops_per_s(hw, "bf16"))
print(f"{model.name}, one layer, n = {n:,}, on {hw.name}:")
print(f"  n×n traffic  {fb(traffic)} -> {fs(memory_s)} at full bandwidth")
print(f"  QKᵀ and PV   {ff(flops)} -> {fs(compute_s)} at full bf16 peak")
print(f"  arithmetic intensity of the n×n part: {flops / traffic:.0f} FLOPs/byte")

# %% [markdown]
# The score traffic alone takes longer than all the attention arithmetic: naive
# attention is memory-bound, and the n² bytes are the reason. Keeping those tiles on chip
# instead (tiling, next notebook) removes that traffic without changing a single FLOP.
#
# **Measurement on this machine.** Does "bytes / bandwidth" predict real timings? Measure
# this CPU's bandwidth with one large copy, then time one pass over a score matrix
# (multiply S by a constant: one read and one write of n² numbers) and compare with the
# prediction. A softmax makes several passes and computes an exponential per element.

# %%
bandwidth = cost.measure_copy_bandwidth(pick(full=2**28, small=2**22))
print(f"this CPU: {bandwidth / 1e9:.1f} GB/s (copy of {fb(pick(full=2**28, small=2**22), binary=True)})")
rows = []
for n in pick(full=[2048, 4096, 8192], small=[256, 512]):
    predicted = cost.transfer_time_s(2 * cost.score_matrix_bytes(n, "float32"), bandwidth)
    scale_s = cost.measure_score_pass_s(n, op="scale")
    softmax_s = cost.measure_score_pass_s(n, op="softmax")
    rows.append(
        (f"{n:,}", fb(cost.score_matrix_bytes(n, "float32")), fs(predicted), fs(scale_s),
         f"{scale_s / predicted:.2f}", fs(softmax_s), f"{softmax_s / scale_s:.1f}")
    )  # fmt: skip
table(["n", "S (fp32)", "predicted pass", "measured pass", "measured / predicted",
       "softmax", "softmax / pass"], rows)  # fmt: skip

# %% [markdown]
# The single pass lands close to its prediction at sizes beyond the CPU caches, and grows
# 4× per doubling of n, as n² bytes should. (Small matrices that fit in cache run faster
# than the DRAM bandwidth predicts.)
#
# ## 5 · The KV cache
#
# **Intuition.** When a model generates text, token t + 1 attends to the keys and
# values of all earlier tokens. Those never change, so every inference engine computes
# them once and keeps them: the **KV cache**. Per layer, per token, per key/value head it
# stores one key and one value vector of head_dim numbers.
#
# **Formula:** bytes = **2 × layers × kv_heads × head_dim × context × batch × b**.
#
# Multi-head attention caches every head (kv_heads = heads, so kv_heads × head_dim = d).
# Grouped-query attention (GQA) lets groups of query heads share one K/V head;
# multi-query attention (MQA) shares a single one. Quantising the cache (fp8, int4)
# shrinks b.

# %%
rows = []
for name in ["Llama-2-7B", "Llama-3-8B", "Mistral-7B", "Llama-3-70B"]:
    m = get_model(name)
    row = [m.name, f"{m.kv_heads}/{m.heads}", fb(cost.weight_bytes(m, "bf16"))]
    for context in (8192, 131072, 1_000_000):
        row.append(fb(cost.model_kv_cache_bytes(m, context, dtype="bf16")))
    rows.append(row)
table(["model", "KV heads / heads", "weights (bf16)", "cache @ 8K", "@ 128K", "@ 1M"], rows)

# %% [markdown]
# At 128K tokens the cache of a 7-8B model rivals or exceeds its weights; GQA's 8 KV
# heads cut it 4× relative to Llama-2's full multi-head cache.
#
# **Memory vs bytes read.** The cache grows by a *constant* amount per token, so after
# n tokens it is O(n) in size. What grows per token is the *reading*: step t reads all t
# cached tokens, so a generation of n tokens reads O(n²) bytes in total.

# %%
m = get_model("Llama-2-7B")
per_token = cost.kv_cache_bytes_per_token(m.layers, m.kv_heads, m.head_dim, dtype="bf16")
for n in pick(full=[1024, 4096, 16384], small=[256, 512]):
    size = cost.model_kv_cache_bytes(m, n, dtype="bf16")
    reads = sum(cost.model_kv_cache_bytes(m, t, dtype="bf16") for t in range(1, n + 1))
    print(f"n = {n:>6,}: +{fb(per_token)} per token, cache {fb(size):>9}, "
          f"read over the generation {fb(reads):>9}")  # fmt: skip

# %% [markdown]
# ## 6 · Prefill and decode
#
# Serving a prompt has two phases with opposite bottlenecks.
#
# **Prefill** runs the whole prompt (n tokens) through the model at once. Every weight
# does one multiply-add per token (2·P·n FLOPs for P matmul weights) and attention adds
# L·2·n²·d (causal). That is a lot of arithmetic per byte of weights read: prefill is
# **compute-bound**, and its time is what you wait for before the first token appears,
# the *time to first token* (TTFT). Its attention part is quadratic, so long prompts pay
# most of it. (`cost.prefill_flops` counts the output projection, the LM head, at all n
# positions, as a training forward does; a server needs the logits of the last position
# only, `logits="last"`: notebook 07 computes the difference.)
#
# **Decode** then produces one token per step. Each step still reads every weight (and
# the whole KV cache) but does only 2 FLOPs per weight per sequence: at batch 1 it is
# firmly **memory-bound**.
#
# Estimates below assume 50 % of peak FLOP/s for prefill (a common level for well-tuned
# long-sequence kernels; it is an assumption, not a measurement) and full bandwidth for
# decode (a lower bound on its time).

# %%
model, hw, mfu = "Llama-3-8B", "H100-SXM5-80GB", 0.5
rows = []
for n in pick(full=[1024, 8192, 32768, 131072, 200_000, 1_000_000], small=[1024, 8192]):
    est = cost.time_to_first_token(model, hw, n, mfu=mfu)
    attention = get_model(model).layers * cost.attention_matmul_flops(n, 4096, causal=True)
    rows.append((f"{n:,}", ff(est.flops), f"{attention / est.flops:.0%}", fs(est.time_s), est.bound))
print(f"{model} on one {hw}, bf16, {mfu:.0%} MFU")
table(["prompt tokens", "prefill FLOPs", "of which attention", "time to first token", "bound"], rows)

# %%
prefill_time_figure(model, hw, mfu=mfu, prompt_lengths=pick(full=None, small=[1024, 8192, 65536]))

# %%
memory = get_hardware(hw).memory_bytes
rows = []
for context in (1024, 32768):
    for batch in (1, 16, 256):
        est = cost.decode_step_cost(model, hw, context, batch=batch)
        needed = cost.weight_bytes(model, "bf16") + cost.model_kv_cache_bytes(
            model, context, batch=batch, dtype="bf16"
        )
        rows.append(
            (f"{context:,}", batch, fb(est.bytes_moved), f"{est.arithmetic_intensity:.0f}",
             fs(est.time_s), est.bound, f"{batch / est.time_s:,.0f}",
             "yes" if needed <= memory else f"no ({fb(needed)})")
        )  # fmt: skip
print(f"{model} on one {hw}: one decode step (one new token per sequence)")
table(["context", "batch", "bytes read", "FLOPs/byte", "time per step", "bound", "tokens/s",
       "weights + cache fit?"], rows)  # fmt: skip

# %% [markdown]
# Batching shares the weight reads among sequences, so short-context decode moves
# toward the compute roof. But every sequence reads its *own* cache and does only a few
# FLOPs per byte of it (4 here, where 4 query heads share each KV head; 1 for full
# multi-head attention), so at long context decode stays memory-bound whatever the
# batch, and the cache soon stops fitting at all.

# %% [markdown]
# **Without the cache** every step would re-run the whole prefix: a full causal forward
# over t tokens. The attention part alone then sums to O(T³·d) FLOPs over T generated
# tokens, against O(T²·d) with the cache; the weight part to O(T²·d²) against O(T·d²).

# %%
tokens = pick(full=4096, small=512)
with_cache = cost.decode_total_flops("Llama-2-7B", tokens, kv_cache=True)
without_cache = cost.decode_total_flops("Llama-2-7B", tokens, kv_cache=False)
print(f"Llama-2-7B, {tokens:,} generated tokens: {ff(with_cache)} with a KV cache, "
      f"{ff(without_cache)} without ({without_cache / with_cache:,.0f}x)")  # fmt: skip

# %% [markdown]
# ## 7 · Three calculators
#
# Each calculator redraws in place when you move a control; the text under the plot
# gives the exact numbers at the selected point. Things to try:
#
# * **Score memory:** pick GPT-3-175B and find the longest sequence whose kept scores fit
#   on an H200. Switch dtype to float8: how much longer does n get? (√2, because bytes
#   grow as n².)
# * **FLOPs:** set d_ff = 4·d_model with the gated box off and causal off: the ✕ marker
#   lands on n = d_ff. Tick "causal" and watch it double.
# * **KV cache:** Llama-3-70B on an H100: the weights alone do not fit. On an H200, how
#   long a context fits at batch 1? At batch 8?

# %%
memory_calculator = ScoreMemoryCalculator()
display(memory_calculator.widget)

# %%
flops_calculator = FlopsCalculator()
display(flops_calculator.widget)

# %%
kv_calculator = KVCacheCalculator()
display(kv_calculator.widget)

# %% [markdown]
# ## 8 · Check the claims
#
# This course answers two texts that make many claims about attention's cost. Neither ships
# with the course, so here is what they are (the table's `source` column names them this
# way):

# %%
display(Markdown(claims.sources_markdown()))

# %% [markdown]
# Below is every statement of both texts that a number or a document can settle, in the
# order the texts make them and in the course's own words (`where` says where each one
# stands). A statement is judged by **checks**: the text's figure (*stated*) beside ours
# (*found*), under a named rule.
#
# * **ratio**: within 10 % *holds*, within 2× *roughly holds*, else *wrong*;
# * **exponent**: how a cost grows when n doubles (2 for n², 1 for n): within 0.1 holds,
#   within 0.5 roughly;
# * **range**: for a stated range such as "2–4×": inside holds, within 2× of it roughly;
# * **more than / less than**: an inequality, true or false;
# * **same**: a fact (yes or no, or a name) against the document that settles it.
#
# Our figure is computed by the functions of this notebook and the ones after it, or, for a
# published measurement (a speed-up, with the GPU it was measured on) or a product fact (a
# context length, with the date it was announced or its page consulted), taken from the
# document named in the `reference` column. A statement that asserts several things is
# split into *parts*, all of which must hold; one whose words can be read two ways has
# *readings*, and holds roughly if one of them holds. A statement with some parts right and
# some wrong is **partly wrong**. The few that assert nothing a number can settle say so, and
# why: "not checkable, because …".

# %%
all_claims = claims.all_claims()
display(HTML(claims.claims_html(all_claims)))

# %% [markdown]
# The tally, and which claims got each verdict:

# %%
display(Markdown(claims.verdicts_markdown(all_claims)))

# %% [markdown]
# Where the texts are wrong or partly wrong, the correction with its arithmetic:

# %%
for claim in all_claims:
    if claim.verdict in (claims.WRONG, claims.PARTLY):
        print(f"✗ {claim.claim} [{claim.verdict}]\n    stated: {claim.stated}; "
              f"recomputed: {claim.recomputed}\n    {claim.correction}\n")  # fmt: skip

# %% [markdown]
# **A verdict is a function of the stated figure.** Give a check the figure we compute and it
# holds; give it ten times that and it fails. Had the textbook said the A100 moves the 2 GB
# tensor in 2.1 ms, or that attention overtakes the FFN at n = 4d, both would hold; had it
# said 640 million scores at 8K, that would be wrong:

# %%
for claim_id, change in [
    ("a100_30ms", lambda check: check.found),
    ("crossover_n_d", lambda check: check.found),
    ("scores_8k", lambda check: 10 * check.stated),
]:
    claim = claims.get_claim(claim_id)
    changed = claim.with_stated(change)
    print(f"{claim_id}: stated {claim.stated_value:.3g} -> {claim.verdict}; "
          f"stated {changed.stated_value:.3g} -> {changed.verdict}")  # fmt: skip

# %% [markdown]
# In short: the raw sizes hold (64 M scores at 8K, 2 TB at a million tokens, 64 MiB at 4096
# in fp32, the 50 GB cache), and so do most of the dated product facts. The errors are in the
# comparisons: the training figure forgets the heads, the A100 figure is 14× too slow, and
# attention overtakes the FFN at several times d, not at d. Many sentences hold under one
# reading only: "two orders of magnitude" fits a mixture-of-experts model (≈ 100×) but not a
# dense one (≈ 20×); the KV cache grows by a constant per token while the bytes read add up
# to O(n²); ALiBi is cheaper only because it can be trained on shorter sequences; the
# published FlashAttention speed-ups run from 1.15× to 3× end to end (our own GPU measurement
# is still open). And a few mix right and wrong: Mamba has a convolution, but its selective
# part is a scan; Performer's features are random but not Fourier; mixture-of-experts
# routing picks FFN experts, not keys; chunked prefill moves no FLOPs.
#
# ## 9 · Summary
#
# * Per layer, attention's two matmuls cost **4·n²·d** FLOPs (half with a causal
#   kernel); projections and FFN cost a fixed amount **per token**. Attention overtakes
#   the FFN at **n = d_ff** and the rest of the layer at **n = d_ff + 2d** (MHA, 2-matrix
#   FFN; twice that causal): several times d, not d (section 2 prints the presets' range;
#   Kaplan et al. 2020 give 12·d_model for the causal case).
# * A naive implementation stores **heads × n²** scores per layer; training keeps P of
#   **every** layer (S is not saved), so the bill is **L·h·n²·b** per sequence, and
#   mixed-precision eager code (softmax in fp32, cast to bf16) keeps two copies of P.
# * Time is bounded below by **bytes / bandwidth** and **FLOPs / (peak × MFU)**; naive
#   attention at long n is memory-bound because of its n² traffic.
# * The KV cache is **2·L·kv_heads·head_dim·n·b**: linear in n, cut by GQA/MQA and by
#   smaller dtypes; decode reads all of it every step and is memory-bound.
# * Prefill is compute-bound and its attention part is quadratic: that is the wait
#   before the first token on a long prompt.
#
# **Next:** [03 · Tiling and the online softmax](03_tiling.ipynb) computes exactly the same
# attention without ever storing the n × n matrix, by processing it in tiles with an online
# softmax. Practise first with the exercises in
# [`exercises/02_cost_arithmetic.ipynb`](../exercises/02_cost_arithmetic.ipynb).

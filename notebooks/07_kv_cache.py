# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · The KV cache
#
# Notebook 02 claimed that generating text one token at a time is cheap *only because* of a
# cache of keys and values, and that this cache, not the n × n score matrix, is what fills a
# GPU's memory at long context. This notebook builds a small GPT, generates with and without
# the cache, and measures both claims. Then it shrinks the cache: fewer key/value heads
# (GQA, MQA), fewer bits (int8, int4, float8), a latent vector (MLA), and paging.
#
# **You will be able to**
#
# 1. say why decoding without a cache costs O(t²·d) attention FLOPs per step and with a
#    cache O(t·d);
# 2. write the cached attention step and check it gives the same logits, token for token;
# 3. size a published model's cache: 2 × layers × kv_heads × head_dim × context × bytes;
# 4. explain why decoding is limited by memory bandwidth and prefill by compute (roofline);
# 5. compress the cache with GQA/MQA, quantisation and MLA, and measure what it costs;
# 6. follow a token through a paged cache's block table.
#
# **Prerequisites:** notebooks 01 (scores, softmax, the causal mask), 02 (FLOPs, bytes,
# the KV-cache formula) and 04 (Triton kernels, for the paged kernel). No GPU needed.
#
# **Run time at full size:** CPU 35 s–2.5 min: ≈ 35 s on a quiet 2-core machine
# (2026-11-23), up to 4× as long when other programs share its cores. Needs under 0.5 GB
# of RAM. GPU: not measured yet (no GPU run has been recorded for this course).
#
# **Size knob.** The run time depends on the number of cores, on what else the machine is
# doing, and on the size knob `ATTN_COURSE_SIZE`: with `small` (start the course with
# `ATTN_COURSE_SIZE=small make lab`, or run `%env ATTN_COURSE_SIZE=small` before the first
# code cell) every cell runs on tiny inputs, in about 10 s; the text describes the full
# size.
#
# The exercises for this notebook are in [`exercises/07_kv_cache.ipynb`](../exercises/07_kv_cache.ipynb).

# %%
import torch

from attn_course.config import course_size, pick
from attn_course.cost import (
    bytes_per_element,
    decode_flops_per_cached_number,
    decode_step_cost,
    format_bytes,
    format_flops,
    format_seconds,
    kv_cache_bytes,
    latent_kv_cache_bytes,
    model_kv_cache_bytes,
    prefill_flops,
    time_to_first_token,
    weight_bytes,
)
from attn_course.kvcache import (
    cache_bytes,
    decode_roofline_figure,
    dequantize,
    fill_cache,
    float8_available,
    generate_cached,
    generate_uncached,
    measure_prefill,
    measure_step_times,
    next_logits_error,
    predicted_cache_bytes,
    quantize,
    quantized_bytes,
    step_time_figure,
    to_float8,
)
from attn_course.measure import machine_load
from attn_course.model import GPT, CharTokenizer, GPTConfig, corpus_text, evaluate_loss, train
from attn_course.presets import get_model

# One thread: this model is small, its calls last microseconds to milliseconds, and on a
# shared machine a two-thread call waits for its slower thread (in a learner's run on a
# busy 2-core machine two threads were several times slower than one). The timing
# functions below also run with one thread.
torch.set_num_threads(1)
print(f"size: {course_size()}, torch {torch.__version__}, {torch.get_num_threads()} CPU thread")

# %% [markdown]
# ## 1 · A small GPT that we can read
#
# `attn_course/model.py` is a compact GPT: character embeddings plus learned positions,
# pre-norm blocks of causal self-attention and an MLP, and a head that reuses the embedding
# matrix. Its attention has `heads` query heads and `kv_heads` key/value heads; each
# key/value head serves `heads / kv_heads` query heads. That one knob gives multi-head
# (kv_heads = heads), grouped-query and multi-query (kv_heads = 1) attention.
#
# We train it briefly on text that ships with Python (the Zen of Python and two module
# docstrings). A few seconds of training teaches it little more than which characters are
# common (the loss drops from ln 79 ≈ 4.4 towards 2.8 nats), so its text is mostly spaces
# and frequent letters. That is enough here: the cache is about *how* tokens are computed,
# and the checks below compare logits, which do not care whether the text is good. Training
# is not the point; the model is small and the text tiny, so it mostly memorises. It trains on
# 64-character windows to stay fast, so positions past 64 keep their random initial
# embeddings: the timings below go further, but the sample text stays within 64.

# %%
# Run time at full size: ≈ 11 s on a quiet 2-core CPU, up to 45 s on a busy one (2026-11-23); GPU: not measured.
text = corpus_text()
tok = CharTokenizer(text)
data = tok.encode(text)
cfg = GPTConfig(vocab=tok.vocab, context=pick(full=256, small=64), layers=pick(full=4, small=2),
                d_model=pick(full=128, small=32), heads=8, kv_heads=8)  # fmt: skip
model = GPT(cfg)
losses = train(model, data, steps=pick(full=150, small=20), batch=16, window=64, progress=True)
print(f"{sum(p.numel() for p in model.parameters()):,} parameters, vocabulary {tok.vocab}")
print(f"training loss {losses[0]:.2f} -> {losses[-1]:.2f} nats per character")
prompt = tok.encode("Beautiful is ")[None]
print(repr(tok.decode(generate_cached(model, prompt, 64 - prompt.shape[1]).tokens[0])))

# %% [markdown]
# ## 2 · Generating without and with a cache
#
# **Intuition.** To pick token t + 1 the model needs the last position's output, which
# attends to the keys and values of all t earlier positions. Without a cache we run the
# model on the whole prefix again at every step, recomputing t keys and values that have
# not changed. With a cache we keep them: at each step we project only the new token,
# append its k and v to every layer's cache, and let its single query attend to the cache.
#
# **Formula.** Per step, per layer, with width d:
#
# | | projections | attention scores |
# |---|---|---|
# | no cache, step t | ≈ 2 · t · 12 d² FLOPs (every position again) | t² (causal ≈ t²/2) |
# | KV cache, step t | ≈ 2 · 12 d² FLOPs (one token) | t |
#
# so generating n tokens computes O(n³) attention scores without a cache and O(n²) with
# one. Each (query, key) pair costs 4·d FLOPs per layer (its q·k and its share of p·V,
# summed over the heads), so in FLOPs that is O(n³·d) against O(n²·d).
#
# **Code.** `generate_uncached` calls `model(tokens)` on everything; `generate_cached`
# does one prefill `model(prompt)` that returns the caches, then `model(new_token, caches)`.
# Both are greedy. First the check that matters: identical logits at every step, for
# multi-head, grouped-query and multi-query attention.

# %%
for kv_heads in (8, 2, 1):
    m = GPT(GPTConfig(vocab=tok.vocab, context=64, layers=2, d_model=32, heads=8,
                      kv_heads=kv_heads)).eval()  # fmt: skip
    a, b = generate_uncached(m, prompt, 40), generate_cached(m, prompt, 40)
    worst = max((x - y).abs().max().item() for x, y in zip(a.step_logits, b.step_logits, strict=True))
    same = torch.equal(a.tokens, b.tokens)
    print(f"kv_heads = {kv_heads}: max |logit difference| over 40 steps {worst:.1e}, "
          f"same tokens: {same}")  # fmt: skip

# %% [markdown]
# The differences are float32 rounding (the same sums in a different order), and the
# generated tokens are identical. Now the measurement: seconds per generated token against
# the position it is generated at. A busy machine can hide any trend in a single run, so
# `measure_step_times` generates both ways several times, alternating the two so that a
# burst of load from another program spoils one repeat of each, and keeps the fastest
# repeat of every step (load only ever adds time).
#
# The sentences it prints are not written in advance: a least-squares fit of log(time)
# against log(position) gives an exponent and its 95 % confidence interval, and the fit
# decides. "Climbs" needs the whole interval above 0 and a line that explains most of
# the variation; an interval close to 0 is "nearly flat"; anything else prints "too noisy
# on this machine", with the numbers that made it so (`attn_course/measure.py`).

# %%
new = pick(full=cfg.context - prompt.shape[1], small=40)
steps = measure_step_times(model, prompt, new, repeats=pick(full=5, small=3))
slow, fast, positions = steps.uncached, steps.cached, steps.positions
half = new // 2
print(f"fastest of {steps.repeats} runs, {steps.threads} thread:")
print(f"no cache: step at position {positions[half]} {format_seconds(slow[half])}, "
      f"at {positions[-1]} {format_seconds(slow[-1])}")  # fmt: skip
print(f"KV cache: step at position {positions[half]} {format_seconds(fast[half])}, "
      f"at {positions[-1]} {format_seconds(fast[-1])}")  # fmt: skip
print(f"total for {new} tokens: no cache {format_seconds(sum(slow))}, "
      f"KV cache {format_seconds(sum(fast))} (prefill included)")  # fmt: skip
print(steps.uncached_trend().sentence("without a cache, the step time", "position",
                                      load=machine_load()))  # fmt: skip
print(steps.cached_trend().sentence("with the KV cache, the decode step time", "position",
                                    load=machine_load()))  # fmt: skip
step_time_figure(slow, fast, prompt.shape[1])

# %% [markdown]
# What the work predicts: without a cache step t re-runs the whole prefix, so its time
# should climb with t (exponent near 1 while the projections and the MLP, linear in t,
# dominate; towards 2 once the t² scores do). With a cache step t projects one token and
# reads t cached keys and values; on this tiny model that read is cheap next to the fixed
# per-call overheads, so expect a nearly flat curve. On a real model the cached step does
# grow with t, linearly. If the cell printed "too noisy", the machine was too busy to
# tell: rerun it when it is quieter.
#
# ## 3 · How big is the cache? Bytes from real tensors
#
# **Formula** (notebook 02): per token, every layer stores a key and a value (the 2) for
# each key/value head:
#
# $$\text{bytes} = 2 \cdot \text{layers} \cdot \text{kv\_heads} \cdot \text{head\_dim}
# \cdot \text{context} \cdot \text{batch} \cdot \text{bytes per number}.$$
#
# We fill our model's cache and count the bytes of the tensors it actually holds.

# %%
caches = fill_cache(model, data[: cfg.context][None])
print(f"measured: {cache_bytes(caches):,} B; formula: {predicted_cache_bytes(model, cfg.context):,.0f} B")
for name, context in [("Llama-3-8B", 8192), ("Llama-3-8B", 131072), ("Llama-3-70B", 131072)]:
    cache = model_kv_cache_bytes(name, context, dtype="bfloat16")
    print(f"{name:12} at {context:>7,} tokens (bf16): cache {format_bytes(cache)}, "
          f"weights {format_bytes(weight_bytes(name))}")  # fmt: skip

# %% [markdown]
# At 128k tokens a single Llama-3-8B sequence's cache is as big as all of its weights
# (and every further sequence in the batch adds another): this is the memory wall of
# long-context serving.
#
# ## 4 · Prefill and decode
#
# Generation has two phases. **Prefill** runs the whole prompt in one pass: n tokens at
# once, big matrix multiplications, the n² attention. Its time is the *time to first
# token*. **Decode** then produces one token per step. We measure prefill time against
# prompt length on this CPU: nine lengths, five sweeps over all of them (alternately up
# and down), the fastest of each; the same fit as above decides the sentence.

# %%
lengths = pick(full=[16, 24, 32, 48, 64, 96, 128, 192, 256], small=[8, 12, 16, 24, 32])
prefill = measure_prefill(model, data, lengths, rounds=pick(full=5, small=3))
for n, s in zip(lengths, prefill.seconds, strict=True):
    print(f"prompt {n:4} tokens: time to first token {format_seconds(s)}")
print(prefill.trend().sentence("the time to first token", "prompt length", load=machine_load()))
print("(exponent 1 = linear in the prompt, 2 = quadratic)")

# %% [markdown]
# What the work predicts for this small model: the projections and the MLP, linear in n,
# dominate, so the exponent should come out near 1 rather than 2; the n² term takes over
# only at longer prompts or larger models. For real models we use the roofline
# estimates of notebook 02, `cost.time_to_first_token` and `cost.decode_step_cost`:

# %%
for hardware in ("H100-SXM5-80GB", "L4-24GB"):
    for n in (1024, 8192, 32768):
        pre = time_to_first_token("Llama-3-8B", hardware, n)
        dec = decode_step_cost("Llama-3-8B", hardware, n)
        print(f"{hardware:15} prompt {n:6}: TTFT ≥ {format_seconds(pre.time_s):>9} "
              f"({pre.bound}-bound); one decode step ≥ {format_seconds(dec.time_s):>9} "
              f"({dec.bound}-bound, {dec.arithmetic_intensity:.1f} FLOP/B)")  # fmt: skip

# %% [markdown]
# `time_to_first_token` takes its FLOPs from `cost.prefill_flops`, which counts the output
# projection (the LM head) at all n positions, as a training forward does and as
# `model(prompt)` in this notebook's GPT does. To pick the first token a server needs the
# logits of the last position only (`logits="last"`). The difference, for Llama-3-8B and
# its large vocabulary:

# %%
for n in (1024, 8192, 32768):
    every_position = prefill_flops("Llama-3-8B", n)
    last_position = prefill_flops("Llama-3-8B", n, logits="last")
    print(f"prompt {n:6}: {format_flops(every_position)} with logits at every position, "
          f"{format_flops(last_position)} with the last only ({1 - last_position / every_position:.1%} less)")

# %% [markdown]
# The estimates above count every position, so they are slightly pessimistic; the share
# shrinks as the quadratic attention term grows.
#
# **Why decode is bandwidth-bound.** One decode step reads every weight once (2 bytes in
# bf16) and does 2 FLOPs with it per sequence in the batch: about `batch` FLOPs per byte.
# It also reads the whole KV cache, and does few FLOPs per cached number: per layer and
# cached token the new query does 4·heads·head_dim FLOPs (q·k and p·v for every query
# head) on the 2·kv_heads·head_dim numbers of the token's keys and values, so
# **2·heads / kv_heads FLOPs per cached number**. That is 2 for multi-head attention; under
# grouped-query attention each cached number serves a whole group of query heads:

# %%
for name in ("Llama-2-7B", "Llama-3-8B", "Llama-3-70B"):
    shape = get_model(name)
    per_number = decode_flops_per_cached_number(shape.heads, shape.kv_heads)
    print(f"{name:12} ({shape.heads} query heads, {shape.kv_heads} KV heads): {per_number:g} FLOPs per "
          f"cached number, {per_number / bytes_per_element('bf16'):g} FLOP per byte in bf16")

# %% [markdown]
# An H100 needs about 300 FLOPs per byte to keep its tensor cores busy, far more than
# either figure. Prefill reuses each weight for all n
# prompt tokens, so its intensity grows with n. The roofline shows it: decode points sit on
# the sloped (memory) part, prefill points on the flat (compute) part.

# %%
decode_roofline_figure("Llama-3-8B", "H100-SXM5-80GB", contexts=[512, 4096, 32768],
                       batches=[1, 16, 128])  # fmt: skip

# %% [markdown]
# Batching raises decode's intensity (the weights are read once for the whole batch), but
# at long context the cache, which is *per sequence*, dominates the bytes and pulls the
# points back left. Shrinking the cache is therefore worth as much as faster memory.
#
# ## 5 · Compressing the cache
#
# ### Fewer key/value heads: GQA and MQA
#
# Grouped-query attention keeps all query heads but shares each key/value head among a
# group: the cache shrinks by heads / kv_heads. Llama-3-8B has 32 query heads and 8
# key/value heads, a factor 4.

# %%
for kv in (32, 8, 1):
    b = model_kv_cache_bytes("Llama-3-8B", 32768, dtype="bfloat16", kv_heads=kv)
    print(f"Llama-3-8B shape, kv_heads = {kv:2}: {format_bytes(b)} at 32k tokens")

# %% [markdown]
# Does it hurt quality? We train three small models that differ *only* in kv_heads, same
# seed, same steps, and compare the loss on held-out text (the last tenth of the corpus).
# This is a tiny experiment on a tiny corpus, so read it as "roughly equal or not", not as
# a benchmark. At this amount of training all three models are still near the
# character-frequency level, so the experiment can show only that sharing key/value heads
# did not break training, not the small quality cost that GQA papers measure on real models.

# %%
# Run time at full size: ≈ 11 s on a quiet 2-core CPU, up to 45 s on a busy one (2026-11-23); GPU: not measured.
split = int(0.9 * len(data))
train_data, held_out = data[:split], data[split:]
for kv in (8, 2, 1):
    small_cfg = GPTConfig(vocab=tok.vocab, context=64, layers=2, d_model=pick(full=64, small=16),
                          heads=8, kv_heads=kv)  # fmt: skip
    m = GPT(small_cfg)
    train(m, train_data, steps=pick(full=200, small=10), batch=16, progress=True)
    kv_bytes = predicted_cache_bytes(m, 64)
    print(f"kv_heads = {kv}: held-out loss {evaluate_loss(m, held_out):.3f} nats/char, "
          f"cache {kv_bytes:,.0f} B for 64 tokens")  # fmt: skip

# %% [markdown]
# ### Fewer bits: int8, int4, float8
#
# **Intuition.** Store each cached number in 8 or 4 bits plus a scale. With symmetric
# absmax quantisation and one scale per token (row):
#
# $$s = \frac{\max_j |x_j|}{2^{b-1}-1}, \qquad q_j = \operatorname{round}(x_j / s),
# \qquad |x_j - s\,q_j| \le s/2 .$$
#
# Per-token scales suit values; keys often have a few loud *channels*, for which a scale
# per channel works better (KIVI quantises keys per channel, values per token).

# %%
head_dim = cfg.head_dim
k_block = caches[-1][0][0, 0]  # last layer, first head: (tokens, head_dim)
print(f"fp32 block: {k_block.numel() * 4:,} B")
for bits in (8, 4):
    for axis in ("token", "channel"):
        q, scale = quantize(k_block, bits=bits, axis=axis)
        err = (dequantize(q, scale) - k_block).abs().max().item()
        size = quantized_bytes(*k_block.shape, bits=bits, axis=axis)
        print(f"int{bits} per {axis:7}: {size:>8,.0f} B, max error {err:.4f} "
              f"(bound scale/2 = {scale.max().item() / 2:.4f})")  # fmt: skip
if float8_available():
    err = (to_float8(k_block) - k_block).abs().max().item()
    print(f"float8 e4m3     : {k_block.numel():>8,} B, max error {err:.4f}")

# %% [markdown]
# What matters is the effect on the model's output. We quantise every layer's cache after
# a prefill, decode one more token, and compare its logits with the exact cache.

# %%
tokens = data[: pick(full=256, small=32)][None]
schemes = {
    "int8 per token": lambda s: dequantize(*quantize(s, bits=8, axis="token")),
    "int4 per token": lambda s: dequantize(*quantize(s, bits=4, axis="token")),
    "int4 per channel": lambda s: dequantize(*quantize(s, bits=4, axis="channel")),
}
if float8_available():
    schemes["float8 e4m3"] = to_float8
for name, fn in schemes.items():
    print(f"{name:17}: max |logit error| {next_logits_error(model, tokens, fn):.4f}")

# %% [markdown]
# int8 barely moves the logits; int4 moves them tens of times more. Per-channel scales
# did better than per-token ones for int4 here, as the key-outlier argument predicts (the
# run above quantises keys and values the same way; KIVI would mix them).
#
# ### A latent vector: MLA
#
# DeepSeek-V2/V3's multi-head latent attention caches, per token and layer, one compressed
# vector c (512 numbers) plus a small decoupled RoPE key (64), shared by all 128 heads; the
# keys and values are reconstructed from c by up-projections that can be folded into the
# query and output matrices. Cache per token and layer: 576 numbers instead of
# 2 × 128 × 128 = 32,768 for full multi-head attention at the same head count.

# %%
layers, context = 61, 131072  # DeepSeek-V3: 61 layers, 128k context
mla = latent_kv_cache_bytes(layers, 512 + 64, context, dtype="bfloat16")
mha = kv_cache_bytes(layers, 128, 128, context, dtype="bfloat16")
print(f"MLA cache {format_bytes(mla)} vs MHA {format_bytes(mha)}: {mha / mla:.0f}x smaller")


# %% [markdown]
# ## 6 · Paging the cache
#
# A contiguous cache has a planning problem. When a request arrives, nobody knows how long
# its answer will be, so the server reserves room for the longest possible sequence,
# `max_len` tokens, for every request. A short answer leaves most of that reservation
# empty, and empty reserved memory is memory that no other request can use.
#
# vLLM's PagedAttention borrows the trick operating systems use for RAM: cut the cache into
# fixed-size **blocks** of `block_size` tokens, hand blocks out one at a time from a free
# list, and give every sequence a **block table** that says where its blocks are. Token `t`
# of a sequence lives in
#
# $$\text{block} = \text{table}[\lfloor t / B \rfloor], \qquad \text{slot} = t \bmod B .$$
#
# The blocks of one sequence can be anywhere in the pool. The only memory left unused is
# the tail of each sequence's last block: at most $B - 1$ slots per sequence, instead of
# `max_len - length`.

# %%
import torch
from IPython.display import display

from attn_course.config import pick
from attn_course.kernels import kernel_device
from attn_course.kernels.paged import paged_decode
from attn_course.paged import (
    PagedKVCache,
    dense_decode_attention,
    fragmentation,
    fragmentation_figure,
    paged_attention_decode,
    prefix_sharing,
    prefix_sharing_figure,
    sample_requests,
)
from attn_course.ui.kvcache import KVBudgetCalculator

# %% [markdown]
# A small cache: 2 layers, a pool of 16 blocks of 4 tokens, 2 key/value heads of 16
# channels. Each layer owns one K pool and one V pool of shape
# `(num_blocks, block_size, kv_heads, head_dim)`. We add three sequences of 5, 9 and 3
# tokens: they need ⌈5/4⌉ + ⌈9/4⌉ + ⌈3/4⌉ = 2 + 3 + 1 = 6 blocks.

# %%
torch.manual_seed(0)
layers, kv_heads, head_dim = 2, 2, 16
cache = PagedKVCache(layers, num_blocks=16, block_size=4, kv_heads=kv_heads, head_dim=head_dim)
appended = {}
for seq, n in enumerate([5, 9, 3]):
    k, v = torch.randn(2, layers, n, kv_heads, head_dim)
    cache.add_sequence(seq)
    cache.append(seq, k, v)
    appended[seq] = (k, v)
print("block tables:", cache.block_tables)
print("blocks in use:", cache.allocator.num_used, "of", cache.allocator.num_blocks)
print("pool bytes (measured on the tensors):", cache.nbytes)

# %% [markdown]
# `gather` follows a block table and returns the sequence's keys and values as one
# contiguous tensor. It must give back exactly what we appended:

# %%
k, v = cache.gather(1, layer=0)
print(k.shape, torch.equal(k, appended[1][0][0]), torch.equal(v, appended[1][1][0]))

# %% [markdown]
# ### Attention through a block table
#
# During decoding each sequence brings one new query token, which attends to the whole
# cache of its sequence. `paged_attention_decode` does that for a batch of sequences of
# different lengths: `block_tables` is `(batch, max_blocks)`, `context_lens` says how many
# tokens of each table are real. Its answer must equal ordinary dense attention over the
# gathered cache. The query has 4 heads and the cache 2: grouped-query attention, each
# key/value head serves 2 query heads.

# %%
tables, lens = cache.batch_tables([0, 1, 2])
q = torch.randn(3, 4, head_dim)
paged = paged_attention_decode(q, cache.k_pools[0], cache.v_pools[0], tables, lens)
dense = torch.stack([dense_decode_attention(q[s], *cache.gather(s, 0)) for s in range(3)])
print(tables, lens)
print("largest difference paged vs dense:", (paged - dense).abs().max().item())

# %% [markdown]
# The Triton kernel in `attn_course.kernels.paged` never builds the contiguous copy: one
# program per (sequence, query head) walks the block table, loads one block of keys and
# values at a time, and folds it into the online softmax of notebook 04. Here it runs in
# whatever mode this machine offers (on a CPU: Triton's interpreter).

# %%
device = kernel_device()
for dtype in (torch.float32, torch.float16, torch.bfloat16):
    inputs = [t.to(device=device, dtype=dtype) for t in (q, cache.k_pools[0], cache.v_pools[0])]
    out = paged_decode(*inputs, tables.to(device), lens.to(device))
    error = (out.cpu().float() - paged).abs().max()
    print(f"{str(dtype):15} largest error vs reference: {error:.2e}")

# %% [markdown]
# **What this grid costs.** The kernel is written to be read, and its launch grid, one
# program per (sequence, query head), shows two things that production decode kernels do
# differently:
#
# * **GQA re-reads.** The heads / kv_heads programs of one group each walk the same K/V
#   blocks, so the kernel loads the cache heads / kv_heads times over (L2 may serve some of
#   the repeats, if the programs of a group happen to run side by side). Each program does
#   2 FLOPs per number it loads, the multi-head figure of section 4: only a kernel that
#   serves the whole group from one load reaches 2·heads / kv_heads.
# * **No split over the context.** At batch 1 the grid has only `heads` programs, fewer than
#   a GPU has SMs, and each walks its whole context one block after another.
#   FlashDecoding (Dao, Haziza, Massa and Sizov, 2023, "Flash-Decoding for long-context
#   inference") adds a grid axis that splits the context into chunks, computes a partial
#   (acc, m, ℓ) per chunk, and combines the partials with the online-softmax rescaling of
#   notebook 03 in a small second kernel.
#
# The arithmetic (`kvcache.paged_decode_grid_cost`) for one layer of Llama-3-8B's shape at
# 32,768 tokens, bf16, on an H100's SMs:

# %%
from attn_course.kvcache import paged_decode_grid_cost, splits_to_fill
from attn_course.tiling import ON_CHIP_MEMORY

llama3, sms, long_context = get_model("Llama-3-8B"), ON_CHIP_MEMORY["H100"].sm_count, 32768
grid_shape = dict(heads=llama3.heads, kv_heads=llama3.kv_heads, head_dim=llama3.head_dim, sm_count=sms)
split_heads = splits_to_fill(sms, batch=1, heads=llama3.heads)
split_groups = splits_to_fill(sms, batch=1, heads=llama3.kv_heads)
designs = [
    ("this kernel, batch 1", {}),
    ("one program per KV head", {"group_queries": True}),
    (f"split-K, {split_heads} splits", {"splits": split_heads}),
    (f"per KV head + split-K, {split_groups} splits", {"group_queries": True, "splits": split_groups}),
    ("this kernel, batch 8", {"batch": 8}),
]
for label, options in designs:
    grid = paged_decode_grid_cost(long_context, **grid_shape, **options)
    print(f"{label:<34}: {grid.programs:>4} programs, ≤ {grid.busy_sm_fraction:4.0%} of {sms} SMs busy, "
          f"{grid.blocks_per_program:>5,} blocks each; K/V loaded {format_bytes(grid.kv_bytes_read):>8} "
          f"= {grid.reread_factor:.0f}× the cache; partial results {format_bytes(grid.partial_bytes)}")

# %% [markdown]
# At batch 1 this kernel leaves most SMs without work and loads the cache heads / kv_heads
# times over (first line). Splitting the context fills the GPU for a small amount of
# partial results; serving each group from one load removes the re-reads; production
# kernels do both. At a large batch the (batch, heads) grid fills the GPU by itself (the
# last line), but the GQA re-reads remain.

# %% [markdown]
# ### Sharing a prefix: fork and copy-on-write
#
# Many requests start with the same system prompt. With a block table, two sequences can
# point at the same blocks; a reference count on each block says how many do. `fork` makes
# a child that shares all of its parent's blocks without copying anything. The first time
# the child writes into a block that is shared *and* partly filled, that one block is
# copied (copy-on-write), so the parent never sees the child's tokens.

# %%
before = cache.allocator.num_used
cache.fork(0, 10)  # sequence 0 has 5 tokens: one full block + one block with 1 token
print("after fork:   ", cache.block_tables[0], cache.block_tables[10], end=" ")
print("blocks used", cache.allocator.num_used)
parent_k = cache.gather(0, 0)[0].clone()
cache.append(10, *torch.randn(2, layers, 1, kv_heads, head_dim))
print("after a write:", cache.block_tables[0], cache.block_tables[10], end=" ")
print("blocks used", cache.allocator.num_used)
print("parent unchanged:", torch.equal(parent_k, cache.gather(0, 0)[0]))
print("blocks before the fork:", before)

# %% [markdown]
# ### How much memory does paging save?
#
# A simulation: requests with prompt and answer lengths drawn uniformly (seeded). For each
# finished request count the token slots written, the slots a contiguous cache reserved
# (`max_len` per request), and the slots paging reserved (whole blocks):
#
# $$\text{waste}_\text{contiguous} = 1 - \frac{\sum_i n_i}{R \cdot \text{max\_len}},\qquad
# \text{waste}_\text{paged} = 1 - \frac{\sum_i n_i}{\sum_i B\lceil n_i / B\rceil}.$$

# %%
requests = sample_requests(pick(full=1000, small=100), max_prompt=2048, max_output=2048, seed=0)
for block_size in (1, 16, 128):
    r = fragmentation(requests, block_size)
    print(
        f"block {block_size:4}: contiguous wastes {r.contiguous_waste:6.1%}, "
        f"paged wastes {r.paged_waste:6.2%} of what it reserves"
    )
fragmentation_figure(requests)

# %% [markdown]
# Contiguous reservation wastes about half of its memory here (with uniform lengths the
# average request uses half of `max_len`); paging with 16-token blocks wastes well under
# 1 %. Bigger blocks waste more (a longer tail) but mean fewer table entries and larger,
# faster memory reads: vLLM defaults to 16.
#
# Now the shared prompt: every request starts with the same 1000-token system prompt. Its
# full blocks are stored once; only the partly filled last prompt block is copied per
# request when it writes its own tokens.

# %%
system_prompt = 1000
answers = [output for _, output in requests]
sharing = prefix_sharing(system_prompt, answers, block_size=16)
print(
    f"{len(answers)} requests: {sharing.private_blocks:,} blocks without sharing, "
    f"{sharing.shared_blocks:,} with sharing -> {sharing.saving:.1%} saved"
)
prefix_sharing_figure(system_prompt, answers)

# %% [markdown]
# ### The budget of one GPU
#
# What does the cache compete with? The weights. Pick a model and a device, slide the
# context and the batch, and watch what is left. The bars compare full multi-head attention,
# your choice of grouped-query heads, and multi-query attention; the cache dtype (bf16,
# fp8, int8, int4) scales every cache bar. The readout gives the largest batch that fits
# at this context: that number, more than FLOP/s, limits how many users one GPU serves.

# %%
budget = KVBudgetCalculator()
display(budget.widget)

# %% [markdown]
# ## Summary: closing the arc
#
# Notebook 02 made three claims about attention's cost; here is where they ended up.
#
# * **Training and prefill pay n².** The score matrix is n × n. Notebooks 03–04 removed
#   its *memory* (tiling, FlashAttention); notebooks 05–06 cut its *work* (linear and
#   sparse attention) at a price in what the model can recall.
# * **Decoding pays n per token, because of the cache.** Measured above: without the
#   cache each step re-runs the prefix; with it each step projects one token and reads t
#   cached keys and values. The logits are the same.
# * **At long context the cache is the wall.** It grows linearly, but per sequence:
#   2 · layers · kv_heads · head_dim · bytes per token, tens of GB at 128k tokens. Decode
#   reads it all every step for 2 · heads / kv_heads FLOPs per cached number (a few FLOPs
#   per byte), so it is bandwidth-bound. The answers are
#   to store fewer numbers (GQA, MQA, MLA), in fewer bits (int8, int4, fp8), and to waste
#   none of the memory (paging, prefix sharing).
#
# The quadratic wall was never one wall: compute in prefill, memory traffic in decode.
# **Next:** try the exercises in [`exercises/07_kv_cache.ipynb`](../exercises/07_kv_cache.ipynb),
# then [08 · Serving at long context](08_serving.ipynb), where many users share one GPU and
# its cache.

# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · Serving at long context
#
# Notebook 07 generated text for one prompt at a time. A server answers many users at once,
# and each of them watches two clocks: how long until the first token appears, and how long
# between the tokens after it. This notebook builds a small but real serving engine over
# notebook 07's GPT and its paged cache, measures both clocks on this CPU, and then takes
# apart what production servers (vLLM, SGLang, TensorRT-LLM) do about long contexts:
# continuous batching, chunked prefill, prefix caching, offloading the cache, split-K
# decoding, speculative decoding. Each idea comes with its arithmetic for a real model on a
# real GPU.
#
# **You will be able to**
#
# 1. say what sets time to first token (TTFT) and time between tokens (TBT), and estimate
#    both for a published model on a published GPU;
# 2. explain what continuous batching buys over static batching, and measure it;
# 3. say why a long prompt stalls every running request, and what chunked prefill changes
#    (and what it does not: the prefill's FLOPs);
# 4. count what a prefix cache saves, and when bringing an offloaded cache back beats
#    recomputing it;
# 5. merge partial softmaxes with their logsumexps, the algebra of split-K decoding, and say
#    why a batch-1 decode needs it;
# 6. predict the speed-up of speculative decoding from its acceptance rate and check it.
#
# **Prerequisites:** notebooks 02 (FLOPs, bytes, rooflines), 03 (the online softmax), 04
# (Triton kernels) and 07 (the KV cache, the paged cache). No GPU needed.
#
# **Run time at full size:** CPU 50 s–3 min: ≈ 50 s on a quiet 2-core machine (2026-12-02),
# up to 4× as long when other programs share its cores. Needs under 0.5 GB of RAM. GPU: not
# measured yet (no GPU run has been recorded for this course).
#
# **Size knob.** The run time depends on the number of cores, on what else the machine is
# doing, and on the size knob `ATTN_COURSE_SIZE`: with `small` (start the course with
# `ATTN_COURSE_SIZE=small make lab`, or run `%env ATTN_COURSE_SIZE=small` before the first
# code cell) every cell runs on tiny inputs, in about 16 s; the text describes the full
# size.
#
# The exercises for this notebook are in [`exercises/08_serving.ipynb`](../exercises/08_serving.ipynb).

# %%
import torch

import attn_course.kernels  # noqa: F401  (fixes the kernel mode before anything imports triton)
from attn_course.config import course_size, pick
from attn_course.cost import (
    chunked_prefill_flops,
    format_bytes,
    format_seconds,
    prefill_chunk_flops,
)

torch.set_num_threads(1)  # one thread, as in notebook 07: small calls, a shared machine
print(f"size: {course_size()}, torch {torch.__version__}, {torch.get_num_threads()} CPU thread")

# %% [markdown]
# ## 1 · Two clocks: time to first token and time between tokens
#
# **Intuition.** A request's life on a server has two phases (notebook 07, section 4). The
# *prefill* reads the whole prompt in one pass: many tokens at once, large matrix products,
# compute-bound. The user waits for it before seeing anything: that wait, plus any time the
# request spent queued, is the **time to first token** (TTFT). Then *decode* produces one
# token per step for every running request: each step reads every weight and every
# running request's cache for a handful of FLOPs, so it is bandwidth-bound. The gap between
# two tokens a user sees is the **time between tokens** (TBT, also "inter-token latency").
#
# **Formula** (the rooflines of notebook 02; F = peak FLOP/s × MFU, BW = memory bandwidth):
#
# $$\text{TTFT} \approx \text{queueing} + \frac{\text{prefill FLOPs}(n)}{F}, \qquad
# \text{TBT} \approx \max\left(\frac{2P \cdot B + 4 L d \cdot B\, c}{F},\;
# \frac{\text{weights} + B \cdot \text{cache}(c)}{BW}\right)$$
#
# for a batch of B requests at context c. The weights are read once per step whoever asks,
# so batching divides their cost; the caches are not shared, so they grow with B and c.
#
# **Code.** `serving_cost.serving_estimate` puts the pieces of `attn_course.cost` together
# (section 8 has it as a calculator):

# %%
from attn_course.serving_cost import serving_estimate

for prompt in (4096, 32768, 131072):
    for batch in (1, 16):
        est = serving_estimate("Llama-3-8B", "H100-SXM5-80GB", prompt_tokens=prompt,
                               output_tokens=512, batch=batch)  # fmt: skip
        fits = "fits" if est.fits else "does NOT fit"
        print(f"prompt {prompt:>7,}, batch {batch:>2}: TTFT {format_seconds(est.ttft_s):>9}, "
              f"TBT {format_seconds(est.tbt_s):>9}, {est.throughput_tokens_per_s:>7,.0f} tokens/s, "
              f"memory {format_bytes(est.memory_bytes)} ({fits} on the GPU)")  # fmt: skip

# %% [markdown]
# Read the rows in pairs. The TTFT of a 128K-token prompt is seconds: the prefill's
# 2·L·d·n² attention FLOPs have overtaken the 2·P·n of the weights. At 4K tokens sixteen
# requests share a step that takes well under twice as long as one request's, because the
# step is bound by reading the weights once: throughput grows about tenfold. The caches are
# not shared, so as they grow the step grows with them, and at 128K sixteen of them no
# longer fit next to the weights at all. These are estimates
# from published peak figures at 50 % MFU and 80 % of peak bandwidth (`serving_estimate`'s
# defaults), not measurements.
#
# ## 2 · A serving engine on this CPU
#
# **Intuition.** Requests arrive at random times with prompts and answers of random
# lengths. The simplest server takes one at a time: every other user waits for the whole
# answer of the one before. *Static batching* groups requests and decodes them together,
# one step for all, but the batch runs until its longest answer is done: finished requests
# keep their seats, new ones wait outside. *Continuous batching* (Orca, Yu et al., OSDI
# 2022; vLLM, Kwon et al., SOSP 2023) re-forms the batch at every step: a request that
# finishes leaves at once and frees its cache blocks, a waiting one joins as soon as its
# blocks fit (the admission rule of exercise 2).
#
# **Code.** `attn_course/serving.py` is such an engine over notebook 07's GPT and paged
# cache: a scheduler, a block allocator, a model forward that reads and writes the paged
# cache, greedy decoding. Its clock is measured: every step advances it by the step's
# seconds on this CPU, and idle time jumps to the next arrival. First a model: notebook 07's
# GPT, trained for a few seconds (section 7 needs it trained; the engine does not care).

# %%
from attn_course.speculative import train_pair

target, draft, tok, data = train_pair(steps=pick(full=150, small=20),
                                      draft_steps=pick(full=150, small=20))  # fmt: skip
for name, m in (("target", target), ("draft", draft)):
    c = m.cfg
    print(f"{name}: {c.layers} layers, d_model {c.d_model}, {c.heads} heads, "
          f"{sum(p.numel() for p in m.parameters()):,} parameters")  # fmt: skip

# %% [markdown]
# A workload: requests with seeded Poisson arrivals, prompts of 8–48 tokens, answers of
# 4–24. The engine has a pool of KV blocks of 16 tokens and a batch of at most 8. We serve
# the same requests three ways, then check what matters first: every request's tokens are
# exactly what `generate_cached` (notebook 07) produces for it alone. Batching changes
# *when* a token is computed, never *which* token.

# %%
from attn_course.figures import format_table
from attn_course.serving import (
    Engine,
    greedy_outputs,
    latency_figure,
    sample_workload,
    summary_rows,
)

requests = sample_workload(pick(full=40, small=10), vocab=tok.vocab, rate_per_s=400.0,
                           output_range=(4, 64), seed=0)  # fmt: skip
alone = greedy_outputs(target, requests)  # each request decoded by itself, notebook 07's way
engine = Engine(target, num_blocks=160, block_size=16, max_batch=8)
reports = {policy: engine.run(requests, policy) for policy in ("sequential", "static", "continuous")}
for policy, report in reports.items():
    print(f"{policy:>10}: every request's tokens equal generate_cached's: {report.outputs == alone}")
print(format_table(summary_rows(reports)))
latency_figure(reports)

# %% [markdown]
# What the table shows (the numbers are this run's; your machine gives others, the order
# should hold). One request at a time has the best time between tokens — nobody shares its
# steps — and by far the worst time to first token: requests queue behind whole answers.
# Static batching shares the steps, so throughput rises, but a request that arrives while a
# batch runs waits for the batch's longest answer, and finished requests keep their seats.
# Continuous batching admits a request as soon as a seat and its blocks are free: the
# lowest TTFT and the highest throughput of the three, with TBT paying for the company.
# Requests arrive here faster than any of the three serves them, so every TTFT includes
# queueing. On a GPU the trade is starker: a decode step for 8 requests costs about what it
# costs for one (section 1), so continuous batching multiplies throughput almost for free.
# On this CPU a step's cost grows with the batch, so the gain is smaller; the scheduling
# effects (queueing, seats held by finished requests) are the same.

# %% [markdown]
# ## 3 · Chunked prefill: a long prompt stalls everyone
#
# **Intuition.** Without chunking, a step that admits a new request runs its whole prefill,
# and every running request waits for that step to end before it gets its next token. One
# long prompt — a document to summarise — freezes the stream of every other user for the
# whole prefill. *Chunked prefill* (Agrawal et al., "Sarathi-Serve", OSDI 2024; vLLM's
# `enable_chunked_prefill`) gives each step a token budget: first one token for every
# running request, then as many prompt tokens as still fit. The long prompt is spread over
# many steps, each of them short, so the others keep streaming.
#
# **Formula.** Chunking moves no FLOPs. Chunk i's queries attend to the i·c cached keys in
# full and to each other causally; the blocks tile the same lower triangle as one pass:
#
# $$\sum_{i} \Big( 4\, c \cdot i c \cdot d + 2 c^2 d \Big) = 2 n^2 d \quad (n = \text{chunks} \cdot c),$$
#
# per layer, plus the same projections and MLP per token.

# %%
for n, chunk in ((4096, 512), (32768, 2048), (131072, 8192)):
    whole = prefill_chunk_flops("Llama-3-8B", 0, n)
    chunked = chunked_prefill_flops("Llama-3-8B", n, chunk)
    print(f"prompt {n:>7,} in chunks of {chunk:>5}: {chunked / whole:.12f} × the FLOPs of one pass")

# %% [markdown]
# In the engine: a workload plus one prompt of 200 tokens arriving mid-run, served
# with and without a budget of 32 tokens per step. The timeline shows the tokens of each
# step: without chunking, one tall step of prefill; with it, the prompt spread over steps
# that also carry everybody's decode token.

# %%
from attn_course.serving import long_prompt_rows, timeline_figure

stalled = sample_workload(pick(full=24, small=8), vocab=tok.vocab, rate_per_s=400.0, seed=1,
                          long_prompt=pick(full=200, small=48))  # fmt: skip
long_id = stalled[-1].request_id  # the long prompt is the last request; it arrives mid-run
chunking = {
    "whole prefill": Engine(target, num_blocks=160, max_batch=8).run(stalled),
    "chunks of 32": Engine(target, num_blocks=160, max_batch=8, chunk_size=32).run(stalled),
}
print(format_table(long_prompt_rows(chunking, long_id)))
timeline_figure(chunking["whole prefill"])

# %%
timeline_figure(chunking["chunks of 32"])

# %% [markdown]
# On a GPU the effect is the same at a larger scale. A 32K-token prompt of Llama-3-8B
# arrives while 16 requests decode at 8K context on an H100 (`chunked_prefill_effect`):

# %%
from attn_course.serving_cost import chunked_prefill_effect, chunked_prefill_figure

effects = [chunked_prefill_effect("Llama-3-8B", "H100-SXM5-80GB", prompt_tokens=32768, chunk_size=chunk,
                                  running=16, running_context=8192) for chunk in (None, 8192, 2048, 512)]  # fmt: skip
print(format_table([e.row() for e in effects], digits=3))
chunked_prefill_figure("Llama-3-8B", "H100-SXM5-80GB", prompt_tokens=32768, running=16,
                       running_context=8192, chunk_sizes=[256, 512, 1024, 2048, 4096, 8192, 16384, 32768])  # fmt: skip

# %% [markdown]
# Smaller chunks cap the running requests' TBT near one decode step plus one chunk; the
# long request's TTFT grows a little, because each of its chunks rereads the weights and
# its growing cache and shares its step with the decodes. Servers pick a budget (vLLM's
# `max_num_batched_tokens`, 2048–8192 are common) that keeps TBT under a target.

# %% [markdown]
# ## 4 · Prefix caching: the same system prompt, computed once
#
# **Intuition.** Many requests begin with the same tokens: a system prompt, the few-shot
# examples of an app, a document several questions are asked about. Their keys and values
# are the same too (causal attention: a token's k and v depend only on the tokens before
# it). A prefix cache (vLLM's automatic prefix caching, SGLang's RadixAttention, Zheng et
# al. 2024) keeps the blocks of finished prompts, indexed by a hash of their tokens and of
# everything before them, and a new request whose prompt starts the same way borrows those
# blocks (copy-on-write, notebook 07) instead of computing them.
#
# **Formula.** A hit on h prompt tokens saves the prefill of those tokens:
# `prefill_chunk_flops(model, 0, h)` of attention and weights — and the request's own
# prefill starts at position h, attending to the borrowed keys.
#
# **Measured.** A workload whose prompts all start with the same 32-token system prompt,
# served without and with the prefix cache:

# %%
system_prompt = tuple(tok.encode("Beautiful is better than ugly. Ex").tolist())
shared = sample_workload(pick(full=32, small=8), vocab=tok.vocab, rate_per_s=40.0, seed=2,
                         shared_prefix=system_prompt)  # fmt: skip
prefix = {
    "no prefix cache": Engine(target, num_blocks=96, max_batch=8).run(shared),
    "prefix cache": Engine(target, num_blocks=96, max_batch=8, prefix_caching=True).run(shared),
}
print(format_table(summary_rows(prefix)))
for name, report in prefix.items():
    print(f"{name:>15}: hit rate {report.prefix_hit_rate:.0%}, prefill FLOPs {report.prefill_flops:.3g}, "
          f"saved {report.prefill_flops_saved:.3g}")  # fmt: skip

# %% [markdown]
# Only whole blocks are shared: with blocks of 16 tokens a 32-token system prompt gives two
# shareable blocks, and the first request of a run always misses. The saving in *time* is
# smaller than in FLOPs on this CPU, where a short prefill costs little next to the fixed
# cost of a step; at long shared prefixes (a 100K-token document) it is most of the TTFT.
#
# ## 5 · Offloading the cache to host memory
#
# **Intuition.** When the KV blocks run out, a server must take blocks from someone. It can
# *preempt* a running request and either drop its cache (and recompute the prefill when the
# request resumes) or copy it to host memory over the CPU–GPU link and copy it back later.
# Which is cheaper depends on the link and on how expensive the prefill is.
#
# **Formula** (exercise 3). For n tokens, b bytes of cache per token, link bandwidth BW,
# weight FLOPs w per token, L layers of width d, and F FLOP/s:
#
# $$t_\text{swap}(n) = \frac{n\, b}{BW}, \qquad t_\text{recompute}(n) = \frac{w\, n + 2 L d\, n^2}{F}.$$
#
# The link presets, with their sources:

# %%
from attn_course.offload import (
    LINKS,
    break_even_context,
    break_even_inputs,
    offload_cost,
    offload_figure,
)

for link in LINKS.values():
    print(f"{link.name:>13}: {link.bytes_per_s / 1e9:6.1f} GB/s one way  ({link.source})")
for model in ("GPT-2-small", "Llama-2-7B", "Llama-3-8B"):
    for link in LINKS:
        n = break_even_context(model, "H100-SXM5-80GB", link, mfu=0.5)
        print(f"{model:>12} on H100 over {link:>13}: swapping wins from {n:>7,} tokens")
per = break_even_inputs("Llama-3-8B", "H100-SXM5-80GB", "PCIe-5.0-x16", mfu=0.5)
print(f"Llama-3-8B, per token: recompute the weights {per['weight_flops_per_token'] / 1e9:.1f} GFLOP = "
      f"{format_seconds(per['weight_flops_per_token'] / per['flops_per_s'])} on an H100 at MFU 0.5; "
      f"copy {format_bytes(per['bytes_per_token'])} over PCIe 5.0 = "
      f"{format_seconds(per['bytes_per_token'] / per['link_bytes_per_s'])}")  # fmt: skip
offload_figure("Llama-3-8B", "H100-SXM5-80GB", list(LINKS), [2**k for k in range(8, 18)])

# %% [markdown]
# For a 7–8 B model the answer is "swap, always": per token, recomputing the weights alone
# takes an order of magnitude longer than PCIe 5.0 needs to move the token's cache (the last
# line above). Recomputing wins only for small models with large caches
# per parameter (GPT-2 small up to thousands of tokens). vLLM nevertheless recomputes by
# default: PCIe transfers of many small blocks reach a fraction of the link's bandwidth,
# and a swapped request holds host memory. The engine has both paths. With a pool too small
# for the workload it must preempt; with host blocks it swaps, without them it recomputes:

# %%
tight = {
    "swap to host": Engine(target, num_blocks=24, max_batch=8, host_blocks=256).run(requests),
    "recompute": Engine(target, num_blocks=24, max_batch=8, host_blocks=0).run(requests),
}
for name, report in tight.items():
    same = report.outputs == reports["continuous"].outputs
    print(f"{name:>12}: {report.offload}; outputs unchanged: {same}")

# %% [markdown]
# The engine's counts are what a cost model needs. Priced as if its blocks of 16 tokens held
# Llama-3-8B's cache, on an H100 over PCIe 5.0 (`offload_cost`):

# %%
for name, report in tight.items():
    priced = offload_cost(report.offload, "Llama-3-8B", "H100-SXM5-80GB", "PCIe-5.0-x16",
                          block_size=16)  # fmt: skip
    print(f"{name:>12}: moving {format_seconds(priced['moving_s'])}, "
          f"recomputing {format_seconds(priced['recompute_s'])}")  # fmt: skip

# %% [markdown]
# ## 6 · Split-K decoding (FlashDecoding) in Triton
#
# **Intuition.** The paged-decode kernel of notebook 07 gives one program to each (sequence,
# query head) and lets it walk the whole context. At batch 1 that is `heads` programs: 32
# for Llama-3-8B, on a GPU with 132 SMs. Three quarters of the GPU idles while 32 programs
# each read a 128K-token cache in sequence. FlashDecoding (Dao, Haziza, Massa and Sizov,
# 2023) splits the context too: program (sequence, head, split) reads one range of blocks
# and writes a *partial* result, its normalised output and the logsumexp of its scores; a
# second, small kernel merges the partials.
#
# **Formula** (exercise 1). The merge is the online softmax of notebook 03 applied to
# finished partials: with $\ell_i$ the logsumexp of split i,
#
# $$\ell = \log \sum_i e^{\ell_i}, \qquad o = \sum_i e^{\ell_i - \ell}\, o_i .$$
#
# First the arithmetic: how much of the GPU the unsplit grid keeps busy.

# %%
from attn_course.splitk import busy_sm_figure, decode_grid_rows

grid = decode_grid_rows("Llama-3-8B", "H100-SXM5-80GB", contexts=[8192, 131072], batches=[1, 2, 4, 8])
print(format_table(grid, columns=["context", "batch", "programs_unsplit", "busy_unsplit", "splits",
                                  "busy_split", "extra_traffic"]))  # fmt: skip
busy_sm_figure("Llama-3-8B", "H100-SXM5-80GB", [1, 2, 4, 8, 16])

# %% [markdown]
# **Code.** `attn_course/kernels/splitk.py` holds the two kernels, `split_decode_kernel`
# (grid batch × heads × splits) and `combine_kernel` (grid batch × heads). On this CPU they
# run in Triton's interpreter: far too slow to time, exact enough to check. We compare them
# with the float64 reference, with the unsplit kernel of notebook 07, for several split
# counts and ragged context lengths (so that some splits of short sequences are empty):

# %%
from attn_course.kernels.paged import paged_decode
from attn_course.kernels.splitk import split_decode
from attn_course.paged import paged_attention_decode

g = torch.Generator().manual_seed(0)
heads, kv_heads, head_dim, block = 8, 2, 32, 16
lens = torch.tensor(pick(full=[300, 17, 160, 1], small=[40, 17, 1]), dtype=torch.int32)
max_blocks = -(-int(lens.max()) // block)
k_pool = torch.randn(len(lens) * max_blocks, block, kv_heads, head_dim, generator=g)
v_pool = torch.randn(len(lens) * max_blocks, block, kv_heads, head_dim, generator=g)
tables = torch.randperm(len(lens) * max_blocks, generator=g).reshape(len(lens), max_blocks).int()
q = torch.randn(len(lens), heads, head_dim, generator=g)
exact = paged_attention_decode(q.double(), k_pool.double(), v_pool.double(), tables, lens)
unsplit = paged_decode(q, k_pool, v_pool, tables, lens)
print(f"unsplit kernel (notebook 07): max |error| {(unsplit.double() - exact).abs().max():.1e}")
for splits in sorted({1, 2, 4, max_blocks} & set(range(1, max_blocks + 1))):
    out = split_decode(q, k_pool, v_pool, tables, lens, splits=splits)
    print(f"{splits:>2} splits: max |error| vs float64 {(out.double() - exact).abs().max():.1e}, "
          f"vs unsplit {(out - unsplit).abs().max():.1e}")  # fmt: skip

# %% [markdown]
# The errors are float32 rounding. What the splits cost: each program writes head_dim + 1
# floats per split, the combine reads them back — kilobytes, against the megabytes of cache
# every split reads. `python -m attn_course.kernels.compile` compiles both kernels for the
# course's six GPU generations and prints their registers and shared memory; it runs in the
# test suite, so a learner's GPU gets kernels that are known to build.
#
# ## 7 · Speculative decoding
#
# **Intuition.** A decode step of a large model is bound by reading its weights, not by
# arithmetic: checking 5 tokens in one pass costs about what producing 1 does. A small
# *draft* model guesses k tokens cheaply, one at a time; the large *target* model scores
# all k in one pass, keeps the longest prefix it agrees with, and adds one token of its
# own (Leviathan, Kalman and Matias, ICML 2023; Chen et al. 2023). With greedy acceptance
# the output is exactly the target's greedy output, only sooner.
#
# **Formula** (exercise 4). If each draft token is accepted with probability α, a pass
# yields $E = (1-\alpha^{k+1})/(1-\alpha)$ tokens and costs one target step plus k draft
# steps; with c the cost of a draft step relative to a target step the speed-up is
#
# $$S = \frac{1 - \alpha^{k+1}}{(1 - \alpha)(k c + 1)} .$$
#
# **Code.** `speculative_generate` first proves the claim that matters, identical tokens:

# %%
from attn_course.kvcache import generate_cached
from attn_course.speculative import (
    expected_speedup,
    measure_speculative,
    speculative_generate,
    speedup_figure,
)

prompt = tok.encode("Beautiful is better than ")[None]
new = pick(full=64, small=16)
plain = generate_cached(target, prompt, new).tokens
for k in (1, 2, 4, 8):
    spec = speculative_generate(target, draft, prompt, new, k=k)
    print(f"k = {k}: same tokens as greedy decoding: {torch.equal(spec.tokens, plain)}; "
          f"acceptance {spec.acceptance_rate:.0%}, {spec.tokens_per_pass:.2f} tokens per target pass")

# %%
prompts = [tok.encode(p)[None] for p in ("Beautiful is ", "Explicit is ", "Simple is better ")]
measured = measure_speculative(target, draft, prompts, new, [1, 2, 4, 8], repeats=pick(full=3, small=1))
print(format_table([m.row() for m in measured]))
speedup_figure(measured)

# %% [markdown]
# Read the table from the left. α is the share of draft tokens the target agrees with
# (counted up to each pass's first mismatch); c, measured, is what a draft step costs
# relative to a target step; v is what verifying k + 1 tokens costs relative to one target
# step (1 in the paper's formula, more on a CPU, where the extra tokens are extra work and
# not free bandwidth). Both models here are tiny and briefly trained, so the draft guesses
# poorly and c is far from the few per cent of a real pair: the measured speed-up stays near
# or below 1, and the prediction fed the measured α, c and v tracks it. On a GPU, with a
# 1 B draft for a 70 B target, c is a few per cent, v is close to 1 (the step is
# bandwidth-bound) and acceptance rates of 0.6–0.8 give the 2–3× speed-ups reported in the
# papers:

# %%
for alpha in (0.6, 0.8):
    for k in (2, 4, 8):
        print(f"α = {alpha}, k = {k}, c = 0.05: predicted speed-up {expected_speedup(alpha, k, 0.05):.2f}×")

# %% [markdown]
# ## 8 · A serving calculator, for your own model
#
# Every function above that takes a model preset also takes a Hugging Face `config.json`,
# as a path or a dict. Here is Mistral-7B's published config, typed in (no download), and
# the same numbers for it as for the presets:

# %%
from attn_course.presets import model_from_config

mistral = {"architectures": ["MistralForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336,
           "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
           "vocab_size": 32000, "max_position_embeddings": 32768, "hidden_act": "silu",
           "tie_word_embeddings": False, "rms_norm_eps": 1e-5}  # fmt: skip
shape = model_from_config(mistral, name="my-mistral")
print(f"{shape.name}: {shape.layers} layers, d_model {shape.d_model}, {shape.heads} heads, "
      f"{shape.kv_heads} KV heads, head_dim {shape.head_dim}")  # fmt: skip
est = serving_estimate(mistral, "H200-SXM-141GB", prompt_tokens=16384, output_tokens=1024, batch=32)
print(f"on an H200, 16K-token prompts, batch 32: TTFT {format_seconds(est.ttft_s)}, "
      f"TBT {format_seconds(est.tbt_s)}, {est.throughput_tokens_per_s:,.0f} tokens/s, "
      f"memory {format_bytes(est.memory_bytes)} (max batch {est.max_batch})")  # fmt: skip

# %% [markdown]
# From a shell, the same for any config file:
#
# ```
# python -m attn_course.cost path/to/config.json --context 131072 --gpu H100-SXM5-80GB
# ```
#
# The calculator below puts the serving model together: pick a model (or type the path of
# a `config.json`), a GPU, the prompt and answer lengths, the batch and the chunk size.

# %%
from attn_course.ui.serving import serving_calculator

serving_calculator()

# %% [markdown]
# ## Summary
#
# * **Two clocks.** TTFT is queueing plus prefill, compute-bound, quadratic in the prompt at
#   long context; TBT is one decode step, bound by reading the weights and the caches.
# * **Batching** shares the weight reads among requests. Continuous batching re-forms the
#   batch every step, so nobody waits for someone else's answer to end.
# * **Chunked prefill** bounds how long any step takes, so a long prompt no longer stalls
#   everyone; it moves no FLOPs.
# * **Prefix caching** computes a shared prefix once; **offloading** trades link bandwidth
#   for recompute, and for large models the link wins.
# * **Split-K decoding** fills the GPU when the batch is small and the context long, with
#   the logsumexp merge; **speculative decoding** turns a bandwidth-bound step into one that
#   checks several tokens, without changing them.
#
# **Next:** try the exercises in [`exercises/08_serving.ipynb`](../exercises/08_serving.ipynb),
# and go back to the [course map](00_start_here.ipynb) for anything you skipped.

# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · Sparse attention: skip most of the score matrix
#
# FlashAttention (notebooks 03 and 04) computes every one of the n² scores, just without
# storing them. Sparse attention changes the question: **does every query need every
# key?** If token i only looks at a window of w recent tokens, plus a few special ones,
# then most of the n × n matrix is never computed, and the work drops from O(n²) to
# O(n · w). This is what Longformer, BigBird and Mistral's sliding window do. It is also
# an *approximation*: whatever attention the model would have paid outside the pattern is
# lost. This notebook measures both sides.
#
# **You will be able to**
#
# 1. write the common patterns (causal, sliding window, dilated, Longformer's local +
#    global, BigBird's window + global + random blocks) as masks and compose them;
# 2. turn a mask into a *block layout*: which tiles a kernel must visit, which of them
#    need an element mask, and what fraction of the dense work that is;
# 3. derive the number of tiles a sliding window visits, and check it against a count;
# 4. measure how the work and the time of window attention grow with n;
# 5. read a block-sparse Triton kernel, and express the same patterns in PyTorch's
#    FlexAttention;
# 6. measure what a window misses: the softmax mass outside it and the output error.
#
# **Prerequisites:** notebooks 01 (S, P, masks), 02 (FLOPs), 03 (tiles, online softmax)
# and 04 (the Triton FlashAttention kernel). No GPU needed.
#
# **Run time at full size:** CPU 30 s–2 min: ≈ 30 s on a quiet 2-core machine (2026-11-23,
# 20–55 s in three runs, some with other jobs running), up to 4× as long when other
# programs share its cores. Needs about 1 GB of free RAM (dense attention at n = 8192).
# GPU: not measured yet (no GPU run has been recorded for this course).
#
# **Size knob.** The run time depends on the number of cores, on what else the machine is
# doing, and on the size knob `ATTN_COURSE_SIZE`: with `small` (start the course with
# `ATTN_COURSE_SIZE=small make lab`, or run `%env ATTN_COURSE_SIZE=small` before the first
# code cell) every cell runs on tiny inputs, in about 30 s; the text describes the full
# size.
#
# The exercises for this notebook are in [`exercises/06_sparse_attention.ipynb`](../exercises/06_sparse_attention.ipynb).

# %%
import torch
from IPython.display import display

from attn_course.config import course_size, pick
from attn_course.kernels import kernel_mode
from attn_course.kernels.sparse import block_sparse_attention
from attn_course.measure import fit_trend, loglog_slope, machine_load
from attn_course.scores import naive_attention, toy_sentence_qkv
from attn_course.sparse import (
    SparsePattern,
    bigbird_pattern,
    causal_pattern,
    dilated_pattern,
    flex_attention_output,
    flex_available,
    flex_block_layout,
    lagged_qkv,
    layout_from_flex,
    layout_to_flex,
    local_pattern,
    longformer_pattern,
    measure_window_scaling,
    sliding_window_pattern,
    sliding_window_tiles,
    window_distance_to_keys,
    window_error_curve,
    window_error_figure,
    window_keys_to_distance,
    window_scaling_figure,
)
from attn_course.ui.sparse import SparsityExplorer, sparse_layout_figure

torch.set_printoptions(precision=4, sci_mode=False, linewidth=110)
print(f"size: {course_size()}, torch {torch.__version__}, kernels: {kernel_mode()}")

# %% [markdown]
# ## 1 · Most attention is local
#
# In notebook 01 the toy sentence had three heads: "same word", "neighbours" and
# "previous token". Two of the three put nearly all their weight within a couple of
# positions of the diagonal. Trained language models have many such heads. If most of a
# row of P is near the diagonal, computing the far-away scores is mostly wasted work.
#
# Here is how much of each head's softmax mass lies within 3 tokens of the query (causal
# attention on the toy sentence):

# %%
toy = toy_sentence_qkv()
n_toy = len(toy.tokens)
probs = naive_attention(toy.q, toy.k, toy.v, causal=True).probs[0]
near = sliding_window_pattern(n_toy, 4).dense_mask()  # the query itself and 3 before it
for name, p in zip(toy.head_names, probs, strict=True):
    print(f"{name:>15}: {(p * near).sum(-1).mean().item():.1%} of the mass within 3 tokens")

# %% [markdown]
# ## 2 · Patterns as masks
#
# A pattern is a boolean n × n mask, True where query i may attend key j. Written as a
# rule on (i, j):
#
# | pattern | rule | keys per query |
# |---|---|---|
# | causal | j ≤ i | i + 1 |
# | sliding window w (Mistral) | i − w < j ≤ i | ≤ w |
# | dilated, w keys, dilation r | j ≤ i, (i − j) mod r = 0, i − j < w·r | ≤ w |
# | local band, radius r | \|i − j\| ≤ r | ≤ 2r + 1 |
# | Longformer | band, or i global, or j global | ≤ 2r + 1 + g (n for a global token) |
# | BigBird (blocks of b) | neighbouring blocks, global blocks, r random blocks | ≈ b · (3 + g + r) |
#
# In the package every pattern is a function `allowed(q_idx, kv_idx)` of index tensors,
# the same shape of function that PyTorch's FlexAttention calls a `mask_mod`. Patterns
# compose with `&` (both) and `|` (either): a local band & causal is a sliding window.

# %%
n = 16
print("sliding window, w = 4:")
print(sliding_window_pattern(n, 4).dense_mask().int())
band_and_causal = local_pattern(n, 3) & causal_pattern(n)
print("local band (radius 3) & causal == sliding window 4:",
      torch.equal(band_and_causal.dense_mask(), sliding_window_pattern(n, 4).dense_mask()))

# %% [markdown]
# **Two ways to write a window.** Here w counts *keys*, the query itself included, as
# Mistral's `sliding_window` does in its reference code: mistral-inference builds the mask
# with xformers' `make_local_attention(sliding_window)` and keeps a rolling cache of
# `sliding_window` entries, and Hugging Face transformers writes
# `kv_idx > q_idx - sliding_window`. FlexAttention's examples and attention-gym write
# `q_idx - kv_idx <= window_size`: a *distance*, so `window_size` lets a query see
# window_size + 1 keys; flash-attn's `window_size=(left, right)` is a distance too. A
# window of w keys is `window_size = w − 1`; `window_keys_to_distance` and
# `window_distance_to_keys` convert. One key is easy to lose: mistral-inference's own
# one-file reference built its prefill mask with `torch.triu(mask, diagonal=-sliding_window)`,
# one key more than its cache held, until a fix in March 2024.

# %%
def distance_window(n, window_size):
    """FlexAttention's examples, attention-gym: q_idx - kv_idx <= window_size, and causal."""
    return SparsePattern(n, lambda q, k: (q - k <= window_size) & (k <= q),
                         f"window_size {window_size}")  # fmt: skip


w = 4
print("keys per query, w = 4 (keys):              ",
      sliding_window_pattern(n, w).dense_mask().sum(dim=1)[:7].tolist())  # fmt: skip
print("keys per query, window_size = 4 (distance):",
      distance_window(n, 4).dense_mask().sum(dim=1)[:7].tolist())  # fmt: skip
d = window_keys_to_distance(w)
print(f"w = {w} keys is window_size = {d}:",
      torch.equal(distance_window(n, d).dense_mask(), sliding_window_pattern(n, w).dense_mask()))
print(f"window_size = {w} is w = {window_distance_to_keys(w)} keys:",
      torch.equal(distance_window(n, w).dense_mask(),
                  sliding_window_pattern(n, window_distance_to_keys(w)).dense_mask()))  # fmt: skip

# %% [markdown]
# ## 3 · From the mask to the tiles a kernel visits
#
# A GPU kernel does not work entry by entry; it works in tiles of block × block scores
# (notebook 03). Per tile there are three cases:
#
# * **empty**: no entry allowed, skip it entirely (no load, no matmul): this is the saving;
# * **full**: every entry allowed, compute it as FlashAttention would, with no mask;
# * **partial**: some entries allowed, compute it and set the others to −∞.
#
# When b does not divide n the last block is short; its tiles are judged by their entries
# inside the sequence, so they can be full. FlexAttention counts them otherwise
# (section 7).
#
# The *block layout* records which tiles are non-empty and which are full. The work is
# the number of visited tiles times block² · 4d FLOPs, so a pattern with few allowed
# entries spread over many tiles saves little. The pictures below show the mask (left) and
# its layout (right) for three patterns at n = 64 with tiles of 8.

# %%
for pattern in (
    sliding_window_pattern(64, 12),
    longformer_pattern(64, 4, [0, 1]),
    bigbird_pattern(64, 8, window_blocks=1, global_blocks=1, random_blocks=1, seed=0),
):
    display(sparse_layout_figure(pattern, 8))

# %% [markdown]
# Every title states the measured numbers: the share of allowed pairs, and the share of the
# n² scores actually computed (the visited tiles). The computed share is always at least
# the allowed share; the gap is the waste inside partial tiles. BigBird is designed at the
# granularity of blocks, so its tiles are all full or empty: no waste.
#
# Try it yourself: change the pattern, the window, the number of global tokens and random
# blocks, and the tile size. Larger tiles are faster on a GPU but waste more on a thin band.

# %%
explorer = SparsityExplorer(n=64, pattern="sliding window", block=8)
display(explorer.widget)

# %% [markdown]
# ## 4 · How many tiles does a sliding window visit?
#
# Take square tiles of b tokens, T = ⌈n / b⌉ query blocks. Query block I holds rows
# I·b … I·b + b − 1. Its earliest key is max(0, I·b − w + 1), in key block
# ⌊max(0, I·b − w + 1) / b⌋, and its latest key is in block I. Once the window is entirely
# inside the sequence, that is always the same number of key blocks,
#
# $$ c = 1 + \left\lceil \frac{w - 1}{b} \right\rceil , $$
#
# and before that, block I has only I + 1 blocks behind it. So
#
# $$
# \text{tiles}(n, w, b) = \sum_{I=0}^{T-1} \min(I + 1, c) =
# \begin{cases} T(T+1)/2 & T \le c \\ c\,T - c(c-1)/2 & T > c \end{cases}
# \;\approx\; \frac{n}{b}\left(1 + \frac{w}{b}\right).
# $$
#
# Each tile costs b² scores, so the work is about n · (b + w) scores: **linear in n** for
# a fixed window, against n²/2 for causal attention. Below, the formula against the tiles
# counted from the mask (`pattern.layout(b).visited_tiles`):

# %%
print(f"{'n':>6} {'w':>5} {'b':>4} | {'counted':>8} {'formula':>8} | {'causal':>7} {'share':>6}")
for n, w, b in [(1024, 128, 64), (1024, 100, 64), (4096, 512, 128), (4096, 4096, 128),
                (2000, 256, 32), (8192, 1024, 64)]:  # fmt: skip
    counted = sliding_window_pattern(n, w).layout(b).visited_tiles
    causal_tiles = causal_pattern(n).layout(b).visited_tiles
    print(f"{n:>6} {w:>5} {b:>4} | {counted:>8} {sliding_window_tiles(n, w, b):>8} | "
          f"{causal_tiles:>7} {counted / causal_tiles:>6.1%}")  # fmt: skip

# %% [markdown]
# The formula and the count agree on every line (the test suite checks this for hundreds
# of random (n, w, b) too). Note the line w = 100: a window that is not a multiple of b
# straddles one more block boundary, so it costs as much as w = 128. And w = n is causal
# attention: the formula then gives T(T + 1)/2.

# %% [markdown]
# ## 5 · Measured: do work and time grow as n · w or as n²?
#
# Now a real computation. `blocked_sparse_attention` is plain PyTorch that follows the
# layout: for each query block it gathers only its visited key blocks, computes that short
# strip of scores, masks the partial tiles, and applies the softmax. Its FLOPs are those
# of the visited tiles; dense causal attention (`naive_attention`) computes all n² scores.
# One head, head_dim 64, float32, window 256, tiles of 64.

# %%
# Run time at full size: ≈ 8 s on a quiet 2-core CPU, up to 30 s on a busy one (2026-11-23); GPU: not measured.
ns = pick(full=[1024, 2048, 4096, 8192, 16384], small=[128, 256, 512])
window, block = pick(full=256, small=32), pick(full=64, small=16)
rows = measure_window_scaling(ns, window, block, head_dim=64,
                              dense_max_n=pick(full=8192, small=512), progress=True)  # fmt: skip
print(f"{'n':>6} | {'tiles':>6} {'formula':>7} | {'window FLOPs':>13} {'dense FLOPs':>13} | "
      f"{'window ms':>9} {'dense ms':>9}")
for r in rows:
    dense_ms = "—" if r.dense_seconds is None else f"{r.dense_seconds * 1e3:9.2f}"
    print(f"{r.n:>6} | {r.tiles:>6} {r.formula_tiles:>7} | {r.flops:>13.3e} {r.dense_flops:>13.3e}"
          f" | {r.seconds * 1e3:>9.2f} {dense_ms:>9}")
dense_rows = [r for r in rows if r.dense_seconds is not None]
print(f"fitted exponents p in y ∝ n^p: window FLOPs {loglog_slope(ns, [r.flops for r in rows]):.2f}, "
      f"dense FLOPs {loglog_slope(ns, [r.dense_flops for r in rows]):.2f}")
print(fit_trend(ns, [r.seconds for r in rows]).sentence(
    "the window's time", "n", expected=1, load=machine_load()))  # fmt: skip
print(fit_trend([r.n for r in dense_rows], [r.dense_seconds for r in dense_rows]).sentence(
    "dense attention's time", "n", expected=2, load=machine_load()))  # fmt: skip
window_scaling_figure(rows, window)

# %% [markdown]
# The window's FLOPs grow with exponent ≈ 1 (they are proportional to the tile count, which
# the formula predicts; 1.04 rather than 1 because the first query blocks see fewer tiles),
# dense attention's with exactly 2. Whether the times follow on this machine, the two
# sentences about time say: each comes from a fit of log(time) against log(n), asserts a
# climb only when the exponent's 95 % confidence interval lies above 0, says whether the
# interval contains the FLOP count's exponent, and prints "too noisy on this machine" with
# the reasons otherwise (`attn_course/measure.py`); rerun the cell if it does. In two quiet
# runs on the VM named above the fitted time exponents were 1.07 and 1.17 for the window,
# 2.37 and 2.30 for dense attention (above 2: the larger n × n matrices no longer fit in
# the CPU caches). Compare the window's and dense attention's times at the smallest n in
# the table: where the window is no faster, its Python loop over query blocks costs as
# much as the work it saves. Sparse attention pays off when n is several times the window.

# %% [markdown]
# ## 6 · A Triton kernel that skips tiles
#
# `attn_course/kernels/sparse.py` is the FlashAttention forward kernel of notebook 04 with
# one change: instead of looping over *all* key blocks, the program for query block I
# reads two short lists, the key blocks of its full tiles and of its partial tiles (the
# same lists FlexAttention's `BlockMask` stores as `full_kv_indices` and `kv_indices`),
# and loops over those only. Partial tiles also load their slice of the mask. Everything
# else, the online softmax and the guards that turn a row with no allowed key into zeros,
# is unchanged. Without a GPU it runs in Triton's interpreter, slowly, so we check it at
# a small size against masked attention computed in float64:

# %%
n_kernel = pick(full=128, small=64)
g = torch.Generator().manual_seed(0)
q, k, v = (torch.randn(1, 2, n_kernel, 32, generator=g) for _ in range(3))
for pattern in (sliding_window_pattern(n_kernel, 20), longformer_pattern(n_kernel, 8, [0]),
                bigbird_pattern(n_kernel, 16, seed=1), dilated_pattern(n_kernel, 6, 4)):  # fmt: skip
    expected = naive_attention(q.double(), k.double(), v.double(), mask=pattern.dense_mask()).out
    got = block_sparse_attention(q, k, v, pattern, block=16)
    layout = pattern.layout(16)
    print(f"{pattern.name:>38}: {layout.visited_tiles:>2} of {layout.blocks ** 2} tiles, "
          f"max |error| {(got.double() - expected).abs().max().item():.1e}")

# %% [markdown]
# The error is float32 rounding. No GPU timing of this kernel has been recorded yet:
# `python -m attn_course.bench sparse` on a CUDA machine would produce one.

# %% [markdown]
# ## 7 · The same patterns in FlexAttention
#
# PyTorch's `torch.nn.attention.flex_attention` takes exactly this description: a
# `mask_mod(b, h, q_idx, kv_idx)` function, from which `create_block_mask` computes the
# block layout, and a kernel (generated by `torch.compile`) that skips the empty tiles.
# Every package pattern converts with `pattern.flex_mask_mod()`. Two checks: that
# FlexAttention's block mask is our layout, tile for tile (n is a multiple of the tile
# size here; the other case follows), and that its output equals the masked reference. On a CPU, un-compiled FlexAttention runs (it warns that it computes
# the full score matrix; we silence that warning), so the output check runs here too.

# %%
available, why = flex_available()
if not available:
    print("FlexAttention is not available here:", why)
else:
    n_flex, block_flex = 256, 32
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 2, n_flex, 32, generator=g) for _ in range(3))
    for pattern in (sliding_window_pattern(n_flex, 40), longformer_pattern(n_flex, 10, [0, 100]),
                    bigbird_pattern(n_flex, 32, seed=2), dilated_pattern(n_flex, 5, 7)):  # fmt: skip
        ours, theirs = pattern.layout(block_flex), flex_block_layout(pattern, block_flex)
        same = torch.equal(ours.tiles, theirs.tiles) and torch.equal(ours.full, theirs.full)
        expected = naive_attention(q.double(), k.double(), v.double(),
                                   mask=pattern.dense_mask()).out  # fmt: skip
        error = (flex_attention_output(q, k, v, pattern, block_flex).double() - expected)
        print(f"{pattern.name:>38}: same layout {same}, {ours.full_tiles:>2} full + "
              f"{ours.partial_tiles:>2} partial tiles, max |error| {error.abs().max().item():.1e}")

# %% [markdown]
# **A short last tile.** When the tile size does not divide n, `create_block_mask` first
# pads the mask to whole tiles with *disallowed* entries, so no tile that touches the
# padding is full: every visited tile of the last block row and column is partial. The
# course's layout judges those tiles by their entries inside the sequence and can call
# them full. The visited tiles, and so the work, are the same; only which tiles apply the
# element mask differs (the course's kernel masks the keys past n in every tile, so it
# accepts either). `layout_to_flex` and `layout_from_flex` convert. Causal attention,
# n = 40, tiles of 16 (blocks of 16, 16 and 8 tokens):

# %%
if available:
    pattern = causal_pattern(40)
    ours, theirs = pattern.layout(16), flex_block_layout(pattern, 16)
    print("full tiles, course:       ", ours.full.int().tolist())
    print("full tiles, FlexAttention:", theirs.full.int().tolist())
    print("same visited tiles:", torch.equal(ours.tiles, theirs.tiles))
    print("layout_to_flex(course) == FlexAttention:",
          torch.equal(layout_to_flex(ours).full, theirs.full))
    print("layout_from_flex(FlexAttention) == course:",
          torch.equal(layout_from_flex(theirs, pattern).full, ours.full))

# %% [markdown]
# ## 8 · What a window misses
#
# The savings are real; so is the loss. A sliding window of w keys cannot see anything
# more than w − 1 tokens back *in one layer*. How much that costs depends on where the
# attention was going. A synthetic task makes this sharp: head h's queries look for the
# key exactly `lag` tokens back (`lagged_qkv`), with lags 1, 16 and 64. For each window
# we measure two things against full causal attention: the softmax mass that falls
# outside the window (what the mask throws away) and the relative error of the output.

# %%
n_lag = 256
q, k, v = lagged_qkv(n_lag, lags=[1, 16, 64])
windows = [1, 2, 4, 8, 16, 17, 32, 64, 65, 128, 256]
curves = {}
for h, lag in enumerate([1, 16, 64]):
    curves[f"head looking {lag} back"] = window_error_curve(
        q[:, h : h + 1], k[:, h : h + 1], v[:, h : h + 1], windows
    )
for label, curve in curves.items():
    print(f"{label:>22}: " + ", ".join(f"w={r.window}: {r.mass_outside:.2f}" for r in curve[:9]))
window_error_figure(curves)

# %% [markdown]
# Each head falls off a cliff: with w ≤ lag, the key it wants is outside the window,
# its mass is lost and the output error is of the order of 100 %; with w = lag + 1 the
# error drops to a few thousandths (the small weights the head gave to other keys). (For
# the lag-64 head the lost mass plateaus at 0.75, not 1: its first 64 queries have no key
# 64 back and attend to themselves, which every window contains.) No window size is
# "safe" in general; it depends on the distances the task needs.
#
# Stacking layers helps: after L layers of window w, information can travel L · (w − 1)
# tokens. That is why Mistral 7B (w = 4096, 32 layers) can use context far beyond its
# window, and why Longformer and BigBird add global tokens: any two tokens are then two
# hops apart. On the toy sentence, where the three heads are local or repetitive, small
# windows lose some mass but the "same word" head barely changes its output, because the
# earlier occurrences of a word carry the same value vector as the later ones:

# %%
toy_curves = {
    name: window_error_curve(toy.q[:, h : h + 1].double(), toy.k[:, h : h + 1].double(),
                             toy.v[:, h : h + 1].double(), [1, 2, 4, 8, n_toy])
    for h, name in enumerate(toy.head_names)
}  # fmt: skip
for name, curve in toy_curves.items():
    print(f"{name:>15}: " + ", ".join(
        f"w={r.window}: mass out {r.mass_outside:.2f}, error {r.relative_error:.3f}"
        for r in curve[:4]))  # fmt: skip

# %% [markdown]
# ## 9 · "O(n)" and "O(n log n)": what the claims mean
#
# Course notes and interview answers say that sparse attention (Longformer, BigBird) is
# O(n), that a sliding window is O(n · w), and that some sparse patterns reduce the score
# matrix to O(n log n) entries. With what we measured:
#
# * **O(n · w)** is the honest statement for a window: the tile count is ≈ (n / b)(1 + w / b)
#   (section 4), the measured FLOPs grow with exponent ≈ 1 in n, and section 5 prints
#   whether this machine's timings were clean enough to show the time doing the same.
# * **O(n)** holds when w, the number of global tokens and the number of random blocks
#   stay fixed as n grows. If a task needs the window to grow with n (section 8: the
#   window must reach the distance that matters), the cost grows with it; at w = n it is
#   causal attention again, O(n²).
# * **O(n log n)** describes patterns whose keys per query grow like log n (for instance
#   keys at distances 1, 2, 4, 8, …). None is measured in this notebook; the same tools
#   (a `SparsePattern` and its `layout`) count their tiles.
# * Sparse attention is exact on its own terms (the kernel equals the masked reference to
#   rounding) but it is a different function from full attention. FlashAttention, by
#   contrast, computes full attention exactly.
#
# ## Summary
#
# * A sparse pattern is a mask; a kernel sees it as a block layout: empty tiles are
#   skipped, full tiles need no mask, partial tiles need one.
# * A sliding window of w keys visits c · T − c(c − 1)/2 tiles, c = 1 + ⌈(w − 1)/b⌉,
#   T = ⌈n/b⌉: linear in n. Measured here: FLOP exponents ≈ 1 against 2 for dense
#   attention; the time exponents follow on a quiet machine, and section 5 says whether
#   they did on yours.
# * The block-sparse Triton kernel is FlashAttention with a loop over a list of key blocks;
#   FlexAttention builds the same layout from a `mask_mod`.
# * Other code counts differently: FlexAttention's examples and attention-gym give a window
#   as a distance (`window_size = w − 1` for w keys), and `create_block_mask` calls a short
#   last tile partial where the course can call it full (`window_keys_to_distance`,
#   `layout_to_flex` convert).
# * What the mask drops is lost: a head that needs a key beyond the window gets the wrong
#   answer, which is why real models add global tokens, random blocks, or many layers.
#
# **Next:** [07 · The KV cache](07_kv_cache.ipynb), where attention meets inference.
# Practise first with the exercises in
# [`exercises/06_sparse_attention.ipynb`](../exercises/06_sparse_attention.ipynb).

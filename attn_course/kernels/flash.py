"""FlashAttention in Triton: the forward pass and a deterministic two-pass backward.

The n_q x n_k score matrix is never stored. Each *program* (one instance of a kernel,
think "one thread block") owns a block of BLOCK_M query rows, walks over the keys in
blocks of BLOCK_N, and keeps three running quantities per row in registers:

    m   the largest score seen so far
    l   Σ exp(s - m) over the keys seen so far
    acc Σ exp(s - m) · v  (a BLOCK_M x head_dim tile)

When a new key block raises the maximum from m to m', everything accumulated so far is
rescaled by exp(m - m') (the "online softmax"), so at the end out = acc / l is exactly
softmax(S) V.

What this saves, and what it does not. The extra *memory* is O(n) per head: the saved
``lse`` (n floats) besides the output that any attention returns, instead of the n x n of
S and P. The *traffic* to main memory stays quadratic: every program reads all the K and
V rows it needs, so K and V travel once per query block, 2 · n · d · ⌈n / BLOCK_M⌉ elements
(about n²d/BLOCK_M causal, 2n²d/BLOCK_M not): Θ(n²d²/M) with BLOCK_M ∝ M/d, the
FlashAttention paper's Theorem 2, counted exactly by
:func:`attn_course.tiling.tiled_hbm_bytes_for_blocks` (notebook 03, section 8). What the
kernel removes is the n² traffic of writing and re-reading S and P.

Launch grid (forward, and the dQ pass of the backward)::

    grid = (cdiv(n_q, BLOCK_M), batch * heads)
    tl.program_id(0) -> which block of query rows     rows = pid0 * BLOCK_M + arange(BLOCK_M)
    tl.program_id(1) -> which (batch, head) pair      batch = pid1 // heads, head = pid1 % heads

Grouped-query attention: query head ``h`` reads key/value head ``h // (heads // kv_heads)``,
so several query heads read the same k, v without any copy.

Tensors are made contiguous on the host (a copy only when they are not already), so the
element (b, h, i, c) of a (batch, heads, n, head_dim) tensor lives at offset
``((b · heads + h) · n + i) · head_dim + c``: a program finds its head's rows from one base
pointer and two ``arange`` vectors.

Head dimensions. Triton's block shapes are powers of two, but models use head_dim 40, 80,
96, 112, 160, 192, ... Every kernel therefore carries two constexprs: HEAD_DIM, the real
width (the row stride in memory), and BLOCK_D = next power of two >= HEAD_DIM, the width
of its tiles. Loads mask the columns HEAD_DIM .. BLOCK_D - 1 and read them as 0, so they
add nothing to q·k or to dO·v, and stores mask them, so nothing is written past a row.
When head_dim is a power of two, BLOCK_D == HEAD_DIM and the column mask is compiled out.
Accepted: any multiple of 8 from 16 to 256 (``validate.FLASH_HEAD_DIMS``); a padded tile
costs up to 2x the work of the real one (head_dim 80 runs 128-wide tiles).

Units. ``tl.exp2`` is the native instruction on GPUs (exp is computed through it). Scores
are kept in natural units, s = scale · (q · k), and converted to base 2 only after the
maximum is subtracted: p = exp2((s - m) · log2(e)). Folding log2(e) into the scale
(exp2(s·log2e - m·log2e), the Triton tutorial's form and notebook 04's exercise) saves
one multiply per score, but then the saved lse has to be converted between bases, and
each conversion rounds: at |s| ~ 1e8 (fp16 q and k of size ~1e4) one float32 ulp is 8,
so the backward's exp2(s - lse) came out 2^±32 instead of 1 and fp16 dK, dV overflowed to
inf. Subtracting first is exact near the maximum (Sterbenz), whatever the magnitude.
The saved logsumexp ``lse`` = m + ln Σ exp(s - m), float32, shape (batch, heads, n_q),
natural-log units: lse_i = ln Σ_j exp(scale · q·k_j) over the visible keys, -inf for a row
that sees none.

Causal masking. ``causal=True`` or ``"top_left"`` is top-left aligned like
``is_causal=True`` in ``torch.nn.functional.scaled_dot_product_attention``: query i attends
keys j <= i, for any n_q and n_k (if n_q > n_k the rows i >= n_k see every key; if
n_q < n_k the last keys are seen by nobody). ``causal="bottom_right"`` aligns the diagonal
with the last key, as flash-attn >= 2.1 does and as a decoder with a KV cache needs (its
n_q new queries come after n_k - n_q cached keys): query i attends keys
j <= i + (n_k - n_q), the last query sees every key; ``causal_lower_right`` in
``torch.nn.attention.bias`` is the same mask. The two agree when n_q == n_k. The kernels
take one runtime integer, ``causal_offset`` d (0 top-left, n_k - n_q bottom-right), and
mask ``j <= i + d``. A query block skips the key blocks entirely in its future (a shorter
loop: about half the work at n_q = n_k) and applies the mask only on the blocks that
straddle the diagonal; d moves both boundaries and need not be a multiple of BLOCK_N
(:func:`_causal_key_range`, :func:`_causal_query_range`).
With bottom-right and n_q > n_k the first n_q - n_k rows see no key at all: their output
is 0, their lse -inf, and the backward reads that lse as +inf so that their P is
exp2(-inf) = 0 (not NaN): they add nothing to dK and dV, and their dq is 0.

Precision of the backward. Three rules keep the 16-bit matmuls of the backward finite and
accurate, found with fp16 q, k ~1e4 (scores ~1e8, a saturated softmax):

* P is recomputed from the forward's lse in the forward's units (above) and clamped to
  [0, 1], its mathematical range, before it is cast: that cast cannot overflow.
* scale · dS is cast, not dS: the rounded tile is exactly what dQ = (scale·dS) K and
  dK = (scale·dS)ᵀ Q need, and at scale = 1/√d it is several times further from fp16's
  limit of 65504.
* Recomputing S must give the forward's numbers bit for bit: at |s| ~ 1e8 one ulp changes
  P = exp(s - lse) by a factor e^8. In the interpreter the dK/dV tile has the forward's
  shape for this reason (NumPy rounds each matmul shape differently). On a GPU the MMA
  reduction over head_dim runs in the same order for every tile shape, which flash-attn
  relies on too; scores this large are beyond what any recomputing kernel can promise.

Two facts about where the kernels run (found by experiment with triton 3.9.0):

* Triton's CPU interpreter stores bfloat16 as raw uint16 bit patterns and has no bfloat16
  arithmetic: ``tl.dot`` of two bf16 tiles calls ``np.matmul`` on the integers, so a
  16-term dot of 1.0 (bits 16256) and 2.0 (bits 16384) returns 16 · 16256 · 16384 =
  4261412864 instead of 32, and an element-wise bf16 product is garbage too. The casts
  fp32 -> bf16 is correct but *truncates* (rounds toward zero; a GPU and torch round to
  nearest even), while bf16 -> fp32 is exact. So in interpreter mode every bf16 tile is
  upcast to fp32 right after it is loaded (the constexpr ``UPCAST``) and all arithmetic is
  fp32, and results are stored in float32 buffers that torch rounds to bf16 on the host.
  On a GPU bf16 tiles go to the tensor cores as they are, accumulating in fp32, and are
  stored as bf16. float16 is a real NumPy dtype: it needs no such help.
* On NVIDIA GPUs ``tl.dot`` of two float32 tiles uses TF32 by default (10-bit mantissa,
  ~1e-3 relative error). For float32 inputs we ask for ``input_precision="ieee"`` (exact
  fp32 products, slower: no tensor cores for fp32), because a course that compares against
  a float64 reference should not hide a 1e-3 error in its "exact" path. Use float16 or
  bfloat16 inputs for speed. (The keyword exists since triton 3.0.)

Map of this file, in reading order:

* :mod:`attn_course.kernels.tiles` holds the pieces shared with the other kernels:
  ``load_tile`` / ``store_tile`` (a (rows x BLOCK_D) tile from/to memory, masked past the
  end of the sequence and past head_dim), ``kv_batch_head`` (GQA), ``online_softmax_step``
  and ``finish_rows`` (the running (m, l, acc) update and the final out, lse), ``LOG2E``,
  ``dtype_flags`` (UPCAST, DOT_PRECISION) and ``result_buffer``.
* forward: :func:`_forward_key_blocks` (the inner loop over key blocks, online softmax),
  :func:`_causal_key_range` (which key blocks a causal query block visits, masked or not),
  :func:`forward_kernel` (one program: load q, run the loop, normalise, store out and
  lse), :func:`flash_attention_forward` (host: validate, allocate, grid, launch).
* backward: :func:`backward_preprocess_kernel` (D = rowsum(dO ∘ O)),
  :func:`_recompute_p` (one tile of P from the saved lse),
  :func:`backward_dkdv_kernel` with its loop :func:`_dkdv_query_blocks` and
  :func:`_causal_query_range` (pass 1),
  :func:`backward_dq_kernel` with its loop :func:`_dq_key_blocks` (pass 2),
  :func:`flash_attention_backward` (host).
* :class:`FlashAttentionFunction` and :func:`flash_attention`: autograd.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from attn_course.kernels.fit import prune_hook
from attn_course.kernels.tiles import (
    INTERPRETED,
    dtype_flags,
    exp_via_exp2,
    finish_rows,
    kv_batch_head,
    load_tile,
    online_softmax_step,
    result_buffer,
    store_tile,
)
from attn_course.kernels.validate import (
    FLASH_HEAD_DIMS,
    resolve_causal,
    validate_backward_inputs,
    validate_inputs,
)

__all__ = [
    "FlashAttentionFunction",
    "block_sizes",
    "flash_attention",
    "flash_attention_backward",
    "flash_attention_forward",
]



# --- block sizes ------------------------------------------------------------------------
#
# The interpreter runs the programs one after another in NumPy and tests run there at tiny
# n, so it uses one small fixed configuration, with BLOCK_M != BLOCK_N so that the tests
# exercise the causal block arithmetic. Its dK/dV tile has the forward's shape (32 queries
# x 16 keys): NumPy's float32 matmul rounds differently for different shapes, and the
# backward must recompute S bit for bit (see "Precision of the backward").
# On a GPU, triton.autotune times every configuration below (x 2 pipeline depths) the first
# time it sees a new (n_q, n_k, head_dim, causal) and keeps the fastest: warm up before
# timing. Before timing, a configuration that the committed compile record
# (records/compile_*.json, from `python -m attn_course.kernels.compile`) says does not fit
# the GPU's shared memory or register file for this dtype and head_dim is dropped
# (attn_course/kernels/fit.py): e.g. float32 tiles at head_dim 128.
#
# Causal masking works for any block sizes and any diagonal offset; top-left masking is
# cheapest (one straddling tile fewer) when BLOCK_M is a multiple of BLOCK_N in the forward
# and dQ kernels, as in every GPU configuration.

_INTERPRETER_BLOCKS = {
    "forward": (32, 16),  # (BLOCK_M, BLOCK_N)
    "dkdv": (32, 16),
    "dq": (32, 16),
}
_GPU_BLOCKS = {
    "forward": [(64, 32), (64, 64), (128, 32), (128, 64)],
    "dkdv": [(32, 64), (32, 128), (64, 64), (64, 128)],
    "dq": [(64, 32), (64, 64), (128, 32), (128, 64)],
}
PREPROCESS_BLOCK_M = 32 if INTERPRETED else 128


def block_sizes(kernel: str) -> list[tuple[int, int]]:
    """The (BLOCK_M, BLOCK_N) pairs tried for ``kernel`` ("forward", "dkdv" or "dq") in this mode.

    BLOCK_M counts query rows and BLOCK_N key rows of one tile, in every kernel.
    """
    if kernel not in _GPU_BLOCKS:
        raise ValueError(f"kernel must be one of {sorted(_GPU_BLOCKS)}, got {kernel!r}")
    return [_INTERPRETER_BLOCKS[kernel]] if INTERPRETED else list(_GPU_BLOCKS[kernel])


def _configs(kernel: str) -> list[triton.Config]:
    configs = []
    for block_m, block_n in block_sizes(kernel):
        big = max(block_m, block_n) >= 128
        for stages in (1,) if INTERPRETED else (3, 4):
            configs.append(
                triton.Config(
                    {"BLOCK_M": block_m, "BLOCK_N": block_n},
                    num_warps=8 if big else 4,
                    num_stages=stages,
                )
            )
    return configs


# --- forward ----------------------------------------------------------------------------


@triton.jit
def _forward_key_blocks(
    acc, row_sum, row_max, q, k_base, v_base, rows, n_k, scale, causal_offset,
    start, stop,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
    ON_DIAGONAL: tl.constexpr, UPCAST: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """The inner loop: fold key blocks [start, stop) into (acc, row_sum, row_max)."""
    for start_n in range(start, stop, BLOCK_N):
        cols = start_n + tl.arange(0, BLOCK_N)
        # Only the last block can stick out past n_k, but checking every block costs one
        # compare per column and keeps one loop; tuned kernels peel the last block off.
        key_ok = cols < n_k
        k = load_tile(k_base, cols, n_k, HEAD_DIM, BLOCK_D, UPCAST)
        v = load_tile(v_base, cols, n_k, HEAD_DIM, BLOCK_D, UPCAST)

        # Scores of this tile in natural units, s = scale · q·k (see "Units").
        s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * scale
        visible = key_ok[None, :]
        if ON_DIAGONAL:  # only blocks that straddle the diagonal pay for the causal mask
            visible = visible & (cols[None, :] <= rows[:, None] + causal_offset)
        s = tl.where(visible, s, float("-inf"))

        # Online softmax: rescale what was folded so far, add this tile (tiles.py).
        acc, row_sum, row_max = online_softmax_step(acc, row_sum, row_max, s, v, DOT_PRECISION)
    return acc, row_sum, row_max


@triton.jit
def _causal_key_range(first_row, n_k, causal_offset, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Split the keys of query rows first_row .. first_row + BLOCK_M - 1 for causal masking.

    Row i sees keys j <= i + causal_offset. Returns (full_end, stop): key blocks [0,
    full_end) are visible to every row of the block (no mask: full_end is the last multiple
    of BLOCK_N <= first_row + causal_offset + 1); [full_end, stop) straddle the diagonal
    (mask); keys >= stop = min(first_row + BLOCK_M + causal_offset, n_k) are seen by no row
    of the block: never loaded. causal_offset need not be a multiple of BLOCK_N.
    """
    full_end = tl.maximum(first_row + causal_offset + 1, 0) // BLOCK_N * BLOCK_N
    stop = tl.minimum(first_row + BLOCK_M + causal_offset, n_k)
    return tl.minimum(full_end, n_k), stop


@triton.autotune(
    configs=_configs("forward"),
    key=["n_q", "n_k", "HEAD_DIM", "CAUSAL"],
    prune_configs_by={"early_config_prune": prune_hook("forward")},
)
@triton.jit
def forward_kernel(
    Q, K, V, Out, LSE,
    n_q, n_k, heads, group_size, scale, causal_offset,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, CAUSAL: tl.constexpr,
    UPCAST: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """One program = BLOCK_M query rows of one (batch, head). Grid (cdiv(n_q, BLOCK_M), B·H)."""
    block_m = tl.program_id(0)
    batch_head = tl.program_id(1)
    kv_index = kv_batch_head(batch_head, heads, group_size)  # grouped-query attention

    # Base pointers of this head's (n, head_dim) matrices; int64 so that huge tensors
    # (more than 2**31 elements) do not overflow the offset.
    q_base = Q + batch_head.to(tl.int64) * n_q * HEAD_DIM
    k_base = K + kv_index.to(tl.int64) * n_k * HEAD_DIM
    v_base = V + kv_index.to(tl.int64) * n_k * HEAD_DIM

    rows = block_m * BLOCK_M + tl.arange(0, BLOCK_M)
    q = load_tile(q_base, rows, n_q, HEAD_DIM, BLOCK_D, UPCAST)

    row_max = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    row_sum = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)

    if CAUSAL:
        # Key blocks entirely in the past of every row: no mask; those that straddle the
        # diagonal: mask; the rest are in the future: skipped (see _causal_key_range).
        full_end, stop = _causal_key_range(block_m * BLOCK_M, n_k, causal_offset, BLOCK_M, BLOCK_N)
        acc, row_sum, row_max = _forward_key_blocks(
            acc, row_sum, row_max, q, k_base, v_base, rows, n_k, scale, causal_offset,
            0, full_end,
            HEAD_DIM, BLOCK_D, BLOCK_N, False, UPCAST, DOT_PRECISION,
        )  # fmt: skip
        acc, row_sum, row_max = _forward_key_blocks(
            acc, row_sum, row_max, q, k_base, v_base, rows, n_k, scale, causal_offset,
            full_end, stop,
            HEAD_DIM, BLOCK_D, BLOCK_N, True, UPCAST, DOT_PRECISION,
        )  # fmt: skip
    else:
        acc, row_sum, row_max = _forward_key_blocks(
            acc, row_sum, row_max, q, k_base, v_base, rows, n_k, scale, causal_offset,
            0, n_k,
            HEAD_DIM, BLOCK_D, BLOCK_N, False, UPCAST, DOT_PRECISION,
        )  # fmt: skip

    # out = acc / ℓ and lse = m + ln ℓ (natural log); a row that saw no key (bottom-right
    # causal with n_q > n_k: the first n_q - n_k rows) gets out 0 and lse -inf.
    out, lse = finish_rows(acc, row_sum, row_max)
    store_tile(Out + batch_head.to(tl.int64) * n_q * HEAD_DIM, rows, n_q, out, HEAD_DIM, BLOCK_D)
    tl.store(LSE + batch_head.to(tl.int64) * n_q + rows, lse, mask=rows < n_q)


def _shape_args(head_dim: int, n_q: int, n_k: int, causal: object) -> dict[str, object]:
    """The launch arguments that follow from head_dim and the causal alignment.

    BLOCK_D = next power of two >= head_dim (the padded tile width). CAUSAL says whether
    to mask at all; causal_offset is the d of "query i sees keys j <= i + d": 0 top-left,
    n_k - n_q bottom-right (0 and unused when not causal).
    """
    alignment = resolve_causal(causal)
    return {
        "causal_offset": n_k - n_q if alignment == "bottom_right" else 0,
        "HEAD_DIM": head_dim,
        "BLOCK_D": triton.next_power_of_2(head_dim),
        "CAUSAL": alignment is not None,
    }


def flash_attention_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool | str = False,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the forward kernel: returns ``(out, lse)``.

    q: (batch, heads, n_q, head_dim); k, v: (batch, kv_heads, n_k, head_dim) with
    heads % kv_heads == 0; float32, float16 or bfloat16, all alike; head_dim a multiple of
    8 from 16 to 256 (:data:`~attn_course.kernels.validate.FLASH_HEAD_DIMS`). ``scale``
    defaults to 1/√head_dim.

    causal: False (no mask); True or "top_left": query i sees keys j <= i (SDPA's
    ``is_causal=True``); "bottom_right": query i sees keys j <= i + (n_k - n_q), the last
    query sees every key (flash-attn >= 2.1, a decoder with a KV cache, SDPA's
    ``causal_lower_right``). The two agree when n_q == n_k.

    out: (batch, heads, n_q, head_dim) in the inputs' dtype, out = softmax(scale · q kᵀ) v.
    lse: (batch, heads, n_q) float32, lse_i = ln Σ_j exp(scale · q_i·k_j) over visible j:
    all the backward pass needs to rebuild any row of P as exp(scale · q_i·k_j - lse_i).
    A row that sees no key (bottom-right with n_q > n_k: rows i < n_q - n_k) gets out 0
    and lse -inf.

    Inputs that are not contiguous are copied into contiguous memory first.
    """
    scale = validate_inputs(q, k, v, causal, scale, head_dims=FLASH_HEAD_DIMS)
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    batch, heads, n_q, head_dim = q.shape
    kv_heads, n_k = k.shape[1], k.shape[2]

    out = result_buffer(q)
    lse = torch.empty((batch, heads, n_q), dtype=torch.float32, device=q.device)

    def grid(meta: dict) -> tuple[int, int]:
        return (triton.cdiv(n_q, meta["BLOCK_M"]), batch * heads)

    forward_kernel[grid](
        q, k, v, out, lse,
        n_q, n_k, heads, heads // kv_heads, scale,
        **_shape_args(head_dim, n_q, n_k, causal), **dtype_flags(q.dtype),
    )  # fmt: skip
    return out.to(q.dtype), lse


# --- backward ---------------------------------------------------------------------------
#
# With P = softmax(S), O = P V and dO given (S already includes the scale):
#
#     dV = Pᵀ dO
#     dP = dO Vᵀ
#     dS = P ∘ (dP - D),   D_i = Σ_j P_ij dP_ij = Σ_c dO_ic O_ic  ("rowsum(dO ∘ O)")
#     dQ = scale · dS K,   dK = scale · dSᵀ Q
#
# P is recomputed tile by tile from the saved logsumexp, P_ij = exp(S_ij - lse_i): no running
# max is needed the second time.
#
# This is NOT FlashAttention-2's backward. FA-2 (Dao 2023, Algorithm 2 and §3.2) runs one
# pass, a program per key block, and adds each tile's dS K into dQ in main memory with
# atomic additions (many key-block programs update the same dQ rows). The course splits
# the work in two passes so that every program owns what it writes:
#
#   pass 1, grid (cdiv(n_k, BLOCK_N), batch · kv_heads): a program owns one block of keys,
#           loops over every query block (of every query head in its GQA group) and sums dK,
#           dV for its keys in registers.
#   pass 2, grid (cdiv(n_q, BLOCK_M), batch · heads): a program owns one block of queries,
#           loops over the key blocks and sums dQ, like the forward.
#
# What it buys: no atomics, so the gradients are deterministic (float additions in a
# different order each run round differently), no float32 dQ buffer in main memory, the
# GQA sum of dK and dV done in registers, and kernels that behave the same in Triton's
# interpreter. What it costs: pass 2 needs P and dS again, so both passes recompute
# S = Q Kᵀ and dP = dO Vᵀ. Per (query tile, key tile) pair that is 4 + 3 = 7 matmuls
# against FA-2's 5, 1.4x the backward FLOPs (9/7 of FA-2's for forward + backward), and
# Q, dO, K and V are each read by both passes:
# attn_course.cost.attention_tile_matmuls and backward_flops_ratio count it (notebook 04,
# section 4).
#
# What goes into the 16-bit matmuls (see "Precision of the backward" in the module
# docstring): p is clamped to [0, 1], its mathematical range, and dS is multiplied by the
# scale *before* it is cast, so the tile that is rounded is exactly the scale · dS that dQ
# and dK need and, at the usual scale 1/√d < 1, a few times smaller than dS.


@triton.jit
def backward_preprocess_kernel(
    Out, DO, Delta, n_q,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr,
):  # fmt: skip
    """D_i = Σ_c dO_ic · O_ic, float32. Grid (cdiv(n_q, BLOCK_M), batch · heads)."""
    block_m = tl.program_id(0)
    batch_head = tl.program_id(1)
    rows = block_m * BLOCK_M + tl.arange(0, BLOCK_M)
    base = batch_head.to(tl.int64) * n_q * HEAD_DIM
    # Multiply in fp32 (UPCAST=True for every dtype): also right for bf16 in the interpreter.
    out = load_tile(Out + base, rows, n_q, HEAD_DIM, BLOCK_D, True)
    do = load_tile(DO + base, rows, n_q, HEAD_DIM, BLOCK_D, True)
    delta = tl.sum(out * do, axis=1)
    tl.store(Delta + batch_head.to(tl.int64) * n_q + rows, delta, mask=rows < n_q)


@triton.jit
def _recompute_p(q, k, lse, rows, cols, n_q, n_k, scale, causal_offset,
                 ON_DIAGONAL: tl.constexpr, DOT_PRECISION: tl.constexpr):  # fmt: skip
    """One tile of P = exp(scale · q kᵀ - lse), 0 where masked, clamped to <= 1.

    ``lse`` must already have -inf replaced by +inf (rows that see no key), so that such a
    row's p is exp2(-inf) = 0 and never exp2(+inf - inf) = NaN.
    """
    s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * scale
    visible = (rows < n_q)[:, None] & (cols < n_k)[None, :]
    if ON_DIAGONAL:
        visible = visible & (cols[None, :] <= rows[:, None] + causal_offset)
    # s - lse first, in natural units as in the forward (see "Units"), then base 2.
    p = exp_via_exp2(tl.where(visible, s - lse[:, None], float("-inf")))
    # P <= 1 exactly; a tl.dot that rounds s one ulp differently from the forward's (other
    # tile shapes on a GPU) could push p above 1, and at |s| ~ 1e8 an ulp is ~8: e^8 = 3000.
    return tl.minimum(p, 1.0)


@triton.jit
def _load_lse(LSE, rows, n_q):
    """The saved lse of ``rows``, with -inf (a row with no visible key) read as +inf."""
    lse = tl.load(LSE + rows, mask=rows < n_q, other=0.0)
    return tl.where(lse == float("-inf"), float("inf"), lse)


@triton.jit
def _dkdv_query_blocks(
    dk, dv, k, v, q_base, do_base, lse_base, delta_base, cols, n_q, n_k, scale, causal_offset,
    start, stop,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr,
    ON_DIAGONAL: tl.constexpr, UPCAST: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """Pass 1's inner loop: add the query blocks [start, stop) to dK and dV of one key block.

    dk accumulates scale · dSᵀ Q directly (the scale is applied before the cast).
    """
    for start_m in range(start, stop, BLOCK_M):
        rows = start_m + tl.arange(0, BLOCK_M)
        q = load_tile(q_base, rows, n_q, HEAD_DIM, BLOCK_D, UPCAST)
        do = load_tile(do_base, rows, n_q, HEAD_DIM, BLOCK_D, UPCAST)
        lse = _load_lse(lse_base, rows, n_q)
        delta = tl.load(delta_base + rows, mask=rows < n_q, other=0.0)

        p = _recompute_p(q, k, lse, rows, cols, n_q, n_k, scale, causal_offset,
                         ON_DIAGONAL, DOT_PRECISION)  # fmt: skip
        dv = tl.dot(tl.trans(p.to(do.dtype)), do, dv, input_precision=DOT_PRECISION)
        dp = tl.dot(do, tl.trans(v), input_precision=DOT_PRECISION)
        scaled_ds = p * (dp - delta[:, None]) * scale
        dk = tl.dot(tl.trans(scaled_ds.to(q.dtype)), q, dk, input_precision=DOT_PRECISION)
    return dk, dv


@triton.jit
def _causal_query_range(
    first_key, n_q, causal_offset, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr
):
    """Split the queries that see keys first_key .. first_key + BLOCK_N - 1 (causal).

    Query i sees key j when i >= j - causal_offset. Returns (start, full_start): query
    blocks before start see none of these keys (skipped); [start, full_start) straddle
    the diagonal (mask); from full_start on every query sees every key of the block (no
    mask). Both are multiples of BLOCK_M, rounded outwards, so causal_offset need not be
    a multiple of anything.
    """
    start = tl.maximum(first_key - causal_offset, 0) // BLOCK_M * BLOCK_M
    last_key = first_key + BLOCK_N - 1
    full_start = (tl.maximum(last_key - causal_offset, 0) + BLOCK_M - 1) // BLOCK_M * BLOCK_M
    return tl.minimum(start, n_q), tl.minimum(full_start, n_q)


@triton.autotune(
    configs=_configs("dkdv"),
    key=["n_q", "n_k", "HEAD_DIM", "CAUSAL"],
    prune_configs_by={"early_config_prune": prune_hook("dkdv")},
)
@triton.jit
def backward_dkdv_kernel(
    Q, K, V, DO, DK, DV, LSE, Delta,
    n_q, n_k, heads, group_size, scale, causal_offset,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, CAUSAL: tl.constexpr,
    UPCAST: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """Pass 1: one program = BLOCK_N keys of one (batch, kv_head).

    Grid (cdiv(n_k, BLOCK_N), batch · kv_heads).
    """
    block_n = tl.program_id(0)
    kv_index = tl.program_id(1)
    kv_heads = heads // group_size
    batch = kv_index // kv_heads
    kv_head = kv_index % kv_heads

    cols = block_n * BLOCK_N + tl.arange(0, BLOCK_N)
    kv_base = kv_index.to(tl.int64) * n_k * HEAD_DIM  # same offset in K, V, dK and dV
    k = load_tile(K + kv_base, cols, n_k, HEAD_DIM, BLOCK_D, UPCAST)
    v = load_tile(V + kv_base, cols, n_k, HEAD_DIM, BLOCK_D, UPCAST)
    dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)

    # Every query head of the group read these keys in the forward, so each adds its share
    # of dK and dV here: the GQA sum happens in registers, without atomics.
    for member in range(group_size):
        batch_head = batch * heads + kv_head * group_size + member
        q_base = Q + batch_head.to(tl.int64) * n_q * HEAD_DIM
        do_base = DO + batch_head.to(tl.int64) * n_q * HEAD_DIM
        lse_base = LSE + batch_head.to(tl.int64) * n_q
        delta_base = Delta + batch_head.to(tl.int64) * n_q
        if CAUSAL:
            # Query blocks before `start` see none of these keys: skipped; [start,
            # full_start) straddle the diagonal: mask; later ones see all of them: no mask.
            start, full_start = _causal_query_range(block_n * BLOCK_N, n_q, causal_offset,
                                                    BLOCK_M, BLOCK_N)  # fmt: skip
            dk, dv = _dkdv_query_blocks(
                dk, dv, k, v, q_base, do_base, lse_base, delta_base, cols, n_q, n_k, scale,
                causal_offset, start, full_start,
                HEAD_DIM, BLOCK_D, BLOCK_M, True, UPCAST, DOT_PRECISION,
            )  # fmt: skip
            dk, dv = _dkdv_query_blocks(
                dk, dv, k, v, q_base, do_base, lse_base, delta_base, cols, n_q, n_k, scale,
                causal_offset, full_start, n_q,
                HEAD_DIM, BLOCK_D, BLOCK_M, False, UPCAST, DOT_PRECISION,
            )  # fmt: skip
        else:
            dk, dv = _dkdv_query_blocks(
                dk, dv, k, v, q_base, do_base, lse_base, delta_base, cols, n_q, n_k, scale,
                causal_offset, 0, n_q,
                HEAD_DIM, BLOCK_D, BLOCK_M, False, UPCAST, DOT_PRECISION,
            )  # fmt: skip

    store_tile(DK + kv_base, cols, n_k, dk, HEAD_DIM, BLOCK_D)
    store_tile(DV + kv_base, cols, n_k, dv, HEAD_DIM, BLOCK_D)


# Parameters and loop header mirror _forward_key_blocks on purpose: jit helpers, kept side by side.
@triton.jit
def _dq_key_blocks(
    dq, q, do, lse, delta, k_base, v_base, rows, n_q, n_k, scale, causal_offset,
    start, stop,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
    ON_DIAGONAL: tl.constexpr, UPCAST: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """Pass 2's inner loop: add the key blocks [start, stop) to dQ (= scale · dS K)."""
    for start_n in range(start, stop, BLOCK_N):
        cols = start_n + tl.arange(0, BLOCK_N)
        k = load_tile(k_base, cols, n_k, HEAD_DIM, BLOCK_D, UPCAST)
        v = load_tile(v_base, cols, n_k, HEAD_DIM, BLOCK_D, UPCAST)

        p = _recompute_p(q, k, lse, rows, cols, n_q, n_k, scale, causal_offset,
                         ON_DIAGONAL, DOT_PRECISION)  # fmt: skip
        dp = tl.dot(do, tl.trans(v), input_precision=DOT_PRECISION)
        scaled_ds = p * (dp - delta[:, None]) * scale
        dq = tl.dot(scaled_ds.to(k.dtype), k, dq, input_precision=DOT_PRECISION)
    return dq


@triton.autotune(
    configs=_configs("dq"),
    key=["n_q", "n_k", "HEAD_DIM", "CAUSAL"],
    prune_configs_by={"early_config_prune": prune_hook("dq")},
)
@triton.jit
def backward_dq_kernel(
    Q, K, V, DO, DQ, LSE, Delta,
    n_q, n_k, heads, group_size, scale, causal_offset,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, CAUSAL: tl.constexpr,
    UPCAST: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """Pass 2: one program = BLOCK_M queries of one (batch, head).

    Grid (cdiv(n_q, BLOCK_M), batch · heads), like the forward.
    """
    block_m = tl.program_id(0)
    batch_head = tl.program_id(1)
    kv_index = kv_batch_head(batch_head, heads, group_size)  # grouped-query attention
    k_base = K + kv_index.to(tl.int64) * n_k * HEAD_DIM
    v_base = V + kv_index.to(tl.int64) * n_k * HEAD_DIM

    rows = block_m * BLOCK_M + tl.arange(0, BLOCK_M)
    q_base = batch_head.to(tl.int64) * n_q * HEAD_DIM  # same offset in Q, dO and dQ
    q = load_tile(Q + q_base, rows, n_q, HEAD_DIM, BLOCK_D, UPCAST)
    do = load_tile(DO + q_base, rows, n_q, HEAD_DIM, BLOCK_D, UPCAST)
    lse = _load_lse(LSE + batch_head.to(tl.int64) * n_q, rows, n_q)
    delta = tl.load(Delta + batch_head.to(tl.int64) * n_q + rows, mask=rows < n_q, other=0.0)
    dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)

    if CAUSAL:  # the same block split as the forward
        full_end, stop = _causal_key_range(block_m * BLOCK_M, n_k, causal_offset, BLOCK_M, BLOCK_N)
        dq = _dq_key_blocks(
            dq, q, do, lse, delta, k_base, v_base, rows, n_q, n_k, scale, causal_offset,
            0, full_end,
            HEAD_DIM, BLOCK_D, BLOCK_N, False, UPCAST, DOT_PRECISION,
        )  # fmt: skip
        dq = _dq_key_blocks(
            dq, q, do, lse, delta, k_base, v_base, rows, n_q, n_k, scale, causal_offset,
            full_end, stop,
            HEAD_DIM, BLOCK_D, BLOCK_N, True, UPCAST, DOT_PRECISION,
        )  # fmt: skip
    else:
        dq = _dq_key_blocks(
            dq, q, do, lse, delta, k_base, v_base, rows, n_q, n_k, scale, causal_offset,
            0, n_k,
            HEAD_DIM, BLOCK_D, BLOCK_N, False, UPCAST, DOT_PRECISION,
        )  # fmt: skip

    store_tile(DQ + q_base, rows, n_q, dq, HEAD_DIM, BLOCK_D)


def flash_attention_backward(
    do: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    causal: bool | str,
    scale: float | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients ``(dq, dk, dv)`` of a loss whose gradient with respect to ``out`` is ``do``.

    ``out`` and ``lse`` are what :func:`flash_attention_forward` returned for the same q, k,
    v, causal and scale. dq has q's shape, dk and dv k's shape (for grouped-query attention
    they sum over the query heads that share a key/value head), all in the inputs' dtype.
    A query row that sees no key (lse -inf) contributes nothing: its dq row is 0.

    Three launches: D = rowsum(dO ∘ O) (preprocess), dK and dV per key block (pass 1),
    dQ per query block (pass 2): deterministic, no atomics, 7 matmuls per tile pair against
    FlashAttention-2's 5. See the comment above :func:`backward_preprocess_kernel`.
    """
    scale = validate_backward_inputs(
        do, q, k, v, out, lse, causal, scale, head_dims=FLASH_HEAD_DIMS
    )
    do, q, k, v = do.contiguous(), q.contiguous(), k.contiguous(), v.contiguous()
    out, lse = out.contiguous(), lse.contiguous()
    batch, heads, n_q, head_dim = q.shape
    kv_heads, n_k = k.shape[1], k.shape[2]
    group_size = heads // kv_heads
    flags = dtype_flags(q.dtype)
    shape_args = _shape_args(head_dim, n_q, n_k, causal)

    delta = torch.empty_like(lse)
    preprocess_grid = (triton.cdiv(n_q, PREPROCESS_BLOCK_M), batch * heads)
    backward_preprocess_kernel[preprocess_grid](
        out, do, delta, n_q,
        HEAD_DIM=head_dim, BLOCK_D=shape_args["BLOCK_D"], BLOCK_M=PREPROCESS_BLOCK_M,
    )  # fmt: skip

    dq, dk, dv = result_buffer(q), result_buffer(k), result_buffer(v)

    def dkdv_grid(meta: dict) -> tuple[int, int]:
        return (triton.cdiv(n_k, meta["BLOCK_N"]), batch * kv_heads)

    backward_dkdv_kernel[dkdv_grid](
        q, k, v, do, dk, dv, lse, delta,
        n_q, n_k, heads, group_size, scale,
        **shape_args, **flags,
    )  # fmt: skip

    def dq_grid(meta: dict) -> tuple[int, int]:
        return (triton.cdiv(n_q, meta["BLOCK_M"]), batch * heads)

    backward_dq_kernel[dq_grid](
        q, k, v, do, dq, lse, delta,
        n_q, n_k, heads, group_size, scale,
        **shape_args, **flags,
    )  # fmt: skip
    return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype)


# --- autograd -----------------------------------------------------------------------------


class FlashAttentionFunction(torch.autograd.Function):
    """autograd glue: the forward saves q, k, v, out and lse (O(n·d) memory, no n x n)."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        causal: bool | str = False,
        scale: float | None = None,
    ) -> torch.Tensor:
        out, lse = flash_attention_forward(q, k, v, causal, scale)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.causal, ctx.scale = causal, scale
        return out

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad_out: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = flash_attention_backward(grad_out, q, k, v, out, lse, ctx.causal, ctx.scale)
        return dq, dk, dv, None, None  # no gradient for causal and scale


def flash_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool | str = False,
    scale: float | None = None,
) -> torch.Tensor:
    """softmax(scale · q kᵀ [causal mask]) v without ever storing the n_q x n_k matrix.

    Shapes, dtypes and semantics as :func:`flash_attention_forward`; differentiable with
    respect to q, k and v (through :class:`FlashAttentionFunction`). Bad input raises
    ValueError before anything is launched.
    """
    validate_inputs(q, k, v, causal, scale, head_dims=FLASH_HEAD_DIMS)
    return FlashAttentionFunction.apply(q, k, v, causal, scale)

"""FlashAttention in Triton: the forward pass and the FlashAttention-2 backward pass.

The n_q x n_k score matrix is never stored. Each *program* (one instance of a kernel,
think "one thread block") owns a block of BLOCK_M query rows, walks over the keys in
blocks of BLOCK_N, and keeps three running quantities per row in registers:

    m   the largest score seen so far (base-2 units, see below)
    l   Σ exp2(s - m) over the keys seen so far
    acc Σ exp2(s - m) · v  (a BLOCK_M x head_dim tile)

When a new key block raises the maximum from m to m', everything accumulated so far is
rescaled by exp2(m - m') (the "online softmax"), so at the end out = acc / l is exactly
softmax(S) V. Memory traffic is O(n · d) per head instead of O(n²).

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

Units. ``tl.exp2`` is the native instruction on GPUs (exp is computed through it), so the
scores are kept in base 2: s = (q · k) · scale · log2(e), and exp(x · scale) = exp2(s).
The saved logsumexp ``lse`` is converted back to natural-log units:
lse = ln Σ_j exp(scale · q·k_j), float32, shape (batch, heads, n_q).

Causal masking (``causal=True``) is top-left aligned like ``is_causal=True`` in
``torch.nn.functional.scaled_dot_product_attention``: query i attends keys j <= i, for any
n_q and n_k. (If n_q > n_k the rows i >= n_k see every key; if n_q < n_k the last keys are
seen by nobody.) Key 0 is visible to every query, so no row is ever fully masked; the
kernel still guards its arithmetic so that a row with no visible key would give zeros,
never NaN. A query block skips the key blocks entirely in its future (a shorter loop:
about half the work at n_q = n_k) and applies the mask only on the blocks that straddle
the diagonal.

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

* :func:`_load_rows` / :func:`_store_rows`: a (rows x head_dim) tile from/to memory, masked
  past the end of the sequence.
* forward: :func:`_forward_key_blocks` (the inner loop over key blocks, online softmax),
  :func:`_forward_kernel` (one program: load q, run the loop, normalise, store out and
  lse), :func:`flash_attention_forward` (host: validate, allocate, grid, launch).
* backward: :func:`_backward_preprocess_kernel` (D = rowsum(dO ∘ O)),
  :func:`_backward_dkdv_kernel` with its loop :func:`_dkdv_query_blocks` (pass 1),
  :func:`_backward_dq_kernel` with its loop :func:`_dq_key_blocks` (pass 2),
  :func:`flash_attention_backward` (host).
* :class:`FlashAttentionFunction` and :func:`flash_attention`: autograd.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from attn_course.kernels.fit import prune_hook
from attn_course.kernels.validate import validate_backward_inputs, validate_inputs
from attn_course.triton_mode import kernel_mode

__all__ = [
    "FlashAttentionFunction",
    "block_sizes",
    "flash_attention",
    "flash_attention_backward",
    "flash_attention_forward",
]

LOG2E = math.log2(math.e)  # 1.4426950408889634: exp(x) = exp2(x · log2 e)

_INTERPRETED = kernel_mode() == "interpreter"


# --- block sizes ------------------------------------------------------------------------
#
# The interpreter runs the programs one after another in NumPy and tests run there at tiny
# n, so it uses one small fixed configuration, with BLOCK_M != BLOCK_N so that the tests
# exercise the causal block arithmetic that the GPU configurations rely on.
# On a GPU, triton.autotune times every configuration below (x 2 pipeline depths) the first
# time it sees a new (n_q, n_k, head_dim, causal) and keeps the fastest: warm up before
# timing. Before timing, a configuration that the committed compile record
# (records/compile_*.json, from `python -m attn_course.kernels.compile`) says does not fit
# the GPU's shared memory or register file for this dtype and head_dim is dropped
# (attn_course/kernels/fit.py): e.g. float32 tiles at head_dim 128.
#
# Causal masking needs the query blocks to start on key-block boundaries: BLOCK_M must be a
# multiple of BLOCK_N in the forward and dQ kernels, BLOCK_N of BLOCK_M in the dK/dV kernel.

_INTERPRETER_BLOCKS = {
    "forward": (32, 16),  # (BLOCK_M, BLOCK_N)
    "dkdv": (16, 32),
    "dq": (32, 16),
}
_GPU_BLOCKS = {
    "forward": [(64, 32), (64, 64), (128, 32), (128, 64)],
    "dkdv": [(32, 64), (32, 128), (64, 64), (64, 128)],
    "dq": [(64, 32), (64, 64), (128, 32), (128, 64)],
}
_PREPROCESS_BLOCK_M = 32 if _INTERPRETED else 128


def block_sizes(kernel: str) -> list[tuple[int, int]]:
    """The (BLOCK_M, BLOCK_N) pairs tried for ``kernel`` ("forward", "dkdv" or "dq") in this mode.

    BLOCK_M counts query rows and BLOCK_N key rows of one tile, in every kernel.
    """
    if kernel not in _GPU_BLOCKS:
        raise ValueError(f"kernel must be one of {sorted(_GPU_BLOCKS)}, got {kernel!r}")
    return [_INTERPRETER_BLOCKS[kernel]] if _INTERPRETED else list(_GPU_BLOCKS[kernel])


def _configs(kernel: str) -> list[triton.Config]:
    configs = []
    for block_m, block_n in block_sizes(kernel):
        big = max(block_m, block_n) >= 128
        for stages in (1,) if _INTERPRETED else (3, 4):
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
def _load_rows(base, rows, n, HEAD_DIM: tl.constexpr, UPCAST: tl.constexpr):
    """Load the (len(rows), HEAD_DIM) tile whose row r starts at base + r · HEAD_DIM.

    Rows >= n (a block sticking out past the end of the sequence) read as zeros.
    """
    offsets = rows[:, None] * HEAD_DIM + tl.arange(0, HEAD_DIM)[None, :]
    tile = tl.load(base + offsets, mask=(rows < n)[:, None], other=0.0)
    if UPCAST:  # interpreter + bf16: see the module docstring
        tile = tile.to(tl.float32)
    return tile


@triton.jit
def _store_rows(base, rows, n, tile, HEAD_DIM: tl.constexpr):
    """Store ``tile`` (fp32) into rows < n of base, in the dtype base points to."""
    offsets = rows[:, None] * HEAD_DIM + tl.arange(0, HEAD_DIM)[None, :]
    tl.store(base + offsets, tile.to(base.dtype.element_ty), mask=(rows < n)[:, None])


@triton.jit
def _forward_key_blocks(
    acc, row_sum, row_max, q, k_base, v_base, rows, n_k, qk_scale,
    start, stop,
    HEAD_DIM: tl.constexpr, BLOCK_N: tl.constexpr,
    ON_DIAGONAL: tl.constexpr, UPCAST: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """The inner loop: fold key blocks [start, stop) into (acc, row_sum, row_max)."""
    for start_n in range(start, stop, BLOCK_N):
        cols = start_n + tl.arange(0, BLOCK_N)
        # Only the last block can stick out past n_k, but checking every block costs one
        # compare per column and keeps one loop; tuned kernels peel the last block off.
        key_ok = cols < n_k
        k = _load_rows(k_base, cols, n_k, HEAD_DIM, UPCAST)
        v = _load_rows(v_base, cols, n_k, HEAD_DIM, UPCAST)

        # Scores of this tile, in base-2 units: s = q·k · scale · log2(e).
        s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * qk_scale
        visible = key_ok[None, :]
        if ON_DIAGONAL:  # only blocks that straddle the diagonal pay for the causal mask
            visible = visible & (cols[None, :] <= rows[:, None])
        s = tl.where(visible, s, float("-inf"))

        # Online softmax: the new running max, and the factor that rescales the old sums.
        new_max = tl.maximum(row_max, tl.max(s, 1))
        # A row with no visible key so far has max -inf; subtracting 0 instead keeps
        # exp2(-inf - (-inf)) = NaN out: its p and correction are then exp2(-inf) = 0.
        shift = tl.where(new_max == float("-inf"), 0.0, new_max)
        p = tl.exp2(s - shift[:, None])
        correction = tl.exp2(row_max - shift)
        row_sum = row_sum * correction + tl.sum(p, 1)
        # p goes into the second matmul in the inputs' dtype (fp16/bf16 tensor cores on a
        # GPU); the accumulator stays fp32.
        acc = tl.dot(p.to(v.dtype), v, acc * correction[:, None], input_precision=DOT_PRECISION)
        row_max = new_max
    return acc, row_sum, row_max


@triton.autotune(
    configs=_configs("forward"),
    key=["n_q", "n_k", "HEAD_DIM", "CAUSAL"],
    prune_configs_by={"early_config_prune": prune_hook("forward")},
)
@triton.jit
def _forward_kernel(
    Q, K, V, Out, LSE,
    n_q, n_k, heads, group_size, qk_scale,
    HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr,
    UPCAST: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """One program = BLOCK_M query rows of one (batch, head). Grid (cdiv(n_q, BLOCK_M), B·H)."""
    block_m = tl.program_id(0)
    batch_head = tl.program_id(1)
    # Which key/value head this query head reads (grouped-query attention).
    batch = batch_head // heads
    kv_head = (batch_head % heads) // group_size
    kv_batch_head = batch * (heads // group_size) + kv_head

    # Base pointers of this head's (n, head_dim) matrices; int64 so that huge tensors
    # (more than 2**31 elements) do not overflow the offset.
    q_base = Q + batch_head.to(tl.int64) * n_q * HEAD_DIM
    k_base = K + kv_batch_head.to(tl.int64) * n_k * HEAD_DIM
    v_base = V + kv_batch_head.to(tl.int64) * n_k * HEAD_DIM

    rows = block_m * BLOCK_M + tl.arange(0, BLOCK_M)
    q = _load_rows(q_base, rows, n_q, HEAD_DIM, UPCAST)

    row_max = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    row_sum = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)

    if CAUSAL:
        # Rows first_row .. first_row + BLOCK_M - 1 see keys j <= row. Key blocks that end
        # before first_row are fully visible (no mask); the BLOCK_M // BLOCK_N blocks from
        # first_row on straddle the diagonal (mask); the rest are in the future: skipped.
        first_row = block_m * BLOCK_M
        acc, row_sum, row_max = _forward_key_blocks(
            acc, row_sum, row_max, q, k_base, v_base, rows, n_k, qk_scale,
            0, tl.minimum(first_row, n_k),
            HEAD_DIM, BLOCK_N, False, UPCAST, DOT_PRECISION,
        )  # fmt: skip
        acc, row_sum, row_max = _forward_key_blocks(
            acc, row_sum, row_max, q, k_base, v_base, rows, n_k, qk_scale,
            first_row, tl.minimum(first_row + BLOCK_M, n_k),
            HEAD_DIM, BLOCK_N, True, UPCAST, DOT_PRECISION,
        )  # fmt: skip
    else:
        acc, row_sum, row_max = _forward_key_blocks(
            acc, row_sum, row_max, q, k_base, v_base, rows, n_k, qk_scale,
            0, n_k,
            HEAD_DIM, BLOCK_N, False, UPCAST, DOT_PRECISION,
        )  # fmt: skip

    # A row that saw no key has row_sum 0: divide by 1 instead, so its output is 0, not NaN
    # (and its lse -inf). Top-left causal masking never produces such a row; this is a guard.
    safe_sum = tl.where(row_sum == 0.0, 1.0, row_sum)
    out = acc / safe_sum[:, None]
    # logsumexp in natural-log units: ln Σ exp(x) = ln 2 · (m + log2 Σ exp2(s - m)).
    lse = (row_max + tl.log2(safe_sum)) * 0.6931471805599453
    _store_rows(Out + batch_head.to(tl.int64) * n_q * HEAD_DIM, rows, n_q, out, HEAD_DIM)
    tl.store(LSE + batch_head.to(tl.int64) * n_q + rows, lse, mask=rows < n_q)


def _kernel_flags(dtype: torch.dtype) -> dict[str, object]:
    """The dtype-dependent constexprs: see "Two facts" in the module docstring."""
    return {
        "UPCAST": _INTERPRETED and dtype == torch.bfloat16,
        # "ieee" only matters for float32 tiles (16-bit tiles multiply exactly on tensor
        # cores); "tf32" is Triton's default, i.e. "no change" for 16-bit inputs.
        "DOT_PRECISION": "ieee" if dtype == torch.float32 else "tf32",
    }


def _result_buffer(like: torch.Tensor) -> torch.Tensor:
    """Where a kernel stores a result shaped like ``like``: fp32 for bf16 in the interpreter."""
    if _kernel_flags(like.dtype)["UPCAST"]:
        return torch.empty_like(like, dtype=torch.float32)
    return torch.empty_like(like)


def flash_attention_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the forward kernel: returns ``(out, lse)``.

    q: (batch, heads, n_q, head_dim); k, v: (batch, kv_heads, n_k, head_dim) with
    heads % kv_heads == 0; float32, float16 or bfloat16, all alike; head_dim in
    {16, 32, 64, 128}. ``scale`` defaults to 1/√head_dim.

    out: (batch, heads, n_q, head_dim) in the inputs' dtype, out = softmax(scale · q kᵀ) v.
    lse: (batch, heads, n_q) float32, lse_i = ln Σ_j exp(scale · q_i·k_j) over visible j:
    all the backward pass needs to rebuild any row of P as exp(scale · q_i·k_j - lse_i).

    Inputs that are not contiguous are copied into contiguous memory first.
    """
    scale = validate_inputs(q, k, v, causal, scale)
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    batch, heads, n_q, head_dim = q.shape
    kv_heads, n_k = k.shape[1], k.shape[2]

    out = _result_buffer(q)
    lse = torch.empty((batch, heads, n_q), dtype=torch.float32, device=q.device)

    def grid(meta: dict) -> tuple[int, int]:
        return (triton.cdiv(n_q, meta["BLOCK_M"]), batch * heads)

    _forward_kernel[grid](
        q, k, v, out, lse,
        n_q, n_k, heads, heads // kv_heads, scale * LOG2E,
        HEAD_DIM=head_dim, CAUSAL=causal, **_kernel_flags(q.dtype),
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
# max, no second pass. FlashAttention-2 splits the work in two passes so that no two
# programs ever write the same output (no atomics, deterministic, fine in the interpreter):
#
#   pass 1, grid (cdiv(n_k, BLOCK_N), batch · kv_heads): a program owns one block of keys,
#           loops over every query block (of every query head in its GQA group) and sums dK,
#           dV for its keys in registers.
#   pass 2, grid (cdiv(n_q, BLOCK_M), batch · heads): a program owns one block of queries,
#           loops over the key blocks and sums dQ, like the forward.
#
# Both recompute S and P; that is the price of not storing n_q x n_k numbers.


@triton.jit
def _backward_preprocess_kernel(
    Out, DO, Delta, n_q,
    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr,
):  # fmt: skip
    """D_i = Σ_c dO_ic · O_ic, float32. Grid (cdiv(n_q, BLOCK_M), batch · heads)."""
    block_m = tl.program_id(0)
    batch_head = tl.program_id(1)
    rows = block_m * BLOCK_M + tl.arange(0, BLOCK_M)
    base = batch_head.to(tl.int64) * n_q * HEAD_DIM
    # Multiply in fp32 (UPCAST=True for every dtype): also right for bf16 in the interpreter.
    out = _load_rows(Out + base, rows, n_q, HEAD_DIM, True)
    do = _load_rows(DO + base, rows, n_q, HEAD_DIM, True)
    delta = tl.sum(out * do, axis=1)
    tl.store(Delta + batch_head.to(tl.int64) * n_q + rows, delta, mask=rows < n_q)


@triton.jit
def _dkdv_query_blocks(
    dk, dv, k, v, q_base, do_base, lse_base, delta_base, cols, n_q, n_k, qk_scale,
    start, stop,
    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr,
    ON_DIAGONAL: tl.constexpr, UPCAST: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """Pass 1's inner loop: add the query blocks [start, stop) to dK and dV of one key block."""
    col_ok = cols < n_k
    for start_m in range(start, stop, BLOCK_M):
        rows = start_m + tl.arange(0, BLOCK_M)
        row_ok = rows < n_q
        q = _load_rows(q_base, rows, n_q, HEAD_DIM, UPCAST)
        do = _load_rows(do_base, rows, n_q, HEAD_DIM, UPCAST)
        lse = tl.load(lse_base + rows, mask=row_ok, other=0.0)
        delta = tl.load(delta_base + rows, mask=row_ok, other=0.0)

        # Recompute this tile of P: exp(scale·q·k - lse) = exp2(s - lse · log2 e).
        s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * qk_scale
        visible = row_ok[:, None] & col_ok[None, :]
        if ON_DIAGONAL:
            visible = visible & (cols[None, :] <= rows[:, None])
        p = tl.exp2(tl.where(visible, s - lse[:, None] * 1.4426950408889634, float("-inf")))

        dv = tl.dot(tl.trans(p.to(do.dtype)), do, dv, input_precision=DOT_PRECISION)
        dp = tl.dot(do, tl.trans(v), input_precision=DOT_PRECISION)
        ds = p * (dp - delta[:, None])
        dk = tl.dot(tl.trans(ds.to(q.dtype)), q, dk, input_precision=DOT_PRECISION)
    return dk, dv


@triton.autotune(
    configs=_configs("dkdv"),
    key=["n_q", "n_k", "HEAD_DIM", "CAUSAL"],
    prune_configs_by={"early_config_prune": prune_hook("dkdv")},
)
@triton.jit
def _backward_dkdv_kernel(
    Q, K, V, DO, DK, DV, LSE, Delta,
    n_q, n_k, heads, group_size, qk_scale, scale,
    HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr,
    UPCAST: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """Pass 1: one program = BLOCK_N keys of one (batch, kv_head).

    Grid (cdiv(n_k, BLOCK_N), batch · kv_heads).
    """
    block_n = tl.program_id(0)
    kv_batch_head = tl.program_id(1)
    kv_heads = heads // group_size
    batch = kv_batch_head // kv_heads
    kv_head = kv_batch_head % kv_heads

    cols = block_n * BLOCK_N + tl.arange(0, BLOCK_N)
    kv_base = kv_batch_head.to(tl.int64) * n_k * HEAD_DIM  # same offset in K, V, dK and dV
    k = _load_rows(K + kv_base, cols, n_k, HEAD_DIM, UPCAST)
    v = _load_rows(V + kv_base, cols, n_k, HEAD_DIM, UPCAST)
    dk = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)

    # Every query head of the group read these keys in the forward, so each adds its share
    # of dK and dV here: the GQA sum happens in registers, without atomics.
    for member in range(group_size):
        batch_head = batch * heads + kv_head * group_size + member
        q_base = Q + batch_head.to(tl.int64) * n_q * HEAD_DIM
        do_base = DO + batch_head.to(tl.int64) * n_q * HEAD_DIM
        lse_base = LSE + batch_head.to(tl.int64) * n_q
        delta_base = Delta + batch_head.to(tl.int64) * n_q
        if CAUSAL:
            # Keys first_key .. first_key + BLOCK_N - 1 are seen by queries i >= key. Query
            # blocks before first_key: skipped (they see none of these keys); the
            # BLOCK_N // BLOCK_M blocks from first_key on straddle the diagonal (mask); later
            # ones see all of them (no mask).
            first_key = block_n * BLOCK_N
            dk, dv = _dkdv_query_blocks(
                dk, dv, k, v, q_base, do_base, lse_base, delta_base, cols, n_q, n_k, qk_scale,
                first_key, tl.minimum(first_key + BLOCK_N, n_q),
                HEAD_DIM, BLOCK_M, True, UPCAST, DOT_PRECISION,
            )  # fmt: skip
            dk, dv = _dkdv_query_blocks(
                dk, dv, k, v, q_base, do_base, lse_base, delta_base, cols, n_q, n_k, qk_scale,
                first_key + BLOCK_N, n_q,
                HEAD_DIM, BLOCK_M, False, UPCAST, DOT_PRECISION,
            )  # fmt: skip
        else:
            dk, dv = _dkdv_query_blocks(
                dk, dv, k, v, q_base, do_base, lse_base, delta_base, cols, n_q, n_k, qk_scale,
                0, n_q,
                HEAD_DIM, BLOCK_M, False, UPCAST, DOT_PRECISION,
            )  # fmt: skip

    # S = scale · q kᵀ, so dK = scale · dSᵀ Q: the scale is applied once, here.
    dk = dk * scale
    _store_rows(DK + kv_base, cols, n_k, dk, HEAD_DIM)
    _store_rows(DV + kv_base, cols, n_k, dv, HEAD_DIM)


@triton.jit
def _dq_key_blocks(
    dq, q, do, lse, delta, k_base, v_base, rows, n_q, n_k, qk_scale,
    start, stop,
    HEAD_DIM: tl.constexpr, BLOCK_N: tl.constexpr,
    ON_DIAGONAL: tl.constexpr, UPCAST: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """Pass 2's inner loop: add the key blocks [start, stop) to dQ of one query block."""
    row_ok = rows < n_q
    for start_n in range(start, stop, BLOCK_N):
        cols = start_n + tl.arange(0, BLOCK_N)
        col_ok = cols < n_k
        k = _load_rows(k_base, cols, n_k, HEAD_DIM, UPCAST)
        v = _load_rows(v_base, cols, n_k, HEAD_DIM, UPCAST)

        s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * qk_scale
        visible = row_ok[:, None] & col_ok[None, :]
        if ON_DIAGONAL:
            visible = visible & (cols[None, :] <= rows[:, None])
        p = tl.exp2(tl.where(visible, s - lse[:, None] * 1.4426950408889634, float("-inf")))

        dp = tl.dot(do, tl.trans(v), input_precision=DOT_PRECISION)
        ds = p * (dp - delta[:, None])
        dq = tl.dot(ds.to(k.dtype), k, dq, input_precision=DOT_PRECISION)
    return dq


@triton.autotune(
    configs=_configs("dq"),
    key=["n_q", "n_k", "HEAD_DIM", "CAUSAL"],
    prune_configs_by={"early_config_prune": prune_hook("dq")},
)
@triton.jit
def _backward_dq_kernel(
    Q, K, V, DO, DQ, LSE, Delta,
    n_q, n_k, heads, group_size, qk_scale, scale,
    HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr,
    UPCAST: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """Pass 2: one program = BLOCK_M queries of one (batch, head).

    Grid (cdiv(n_q, BLOCK_M), batch · heads), like the forward.
    """
    block_m = tl.program_id(0)
    batch_head = tl.program_id(1)
    batch = batch_head // heads
    kv_head = (batch_head % heads) // group_size
    kv_batch_head = batch * (heads // group_size) + kv_head
    k_base = K + kv_batch_head.to(tl.int64) * n_k * HEAD_DIM
    v_base = V + kv_batch_head.to(tl.int64) * n_k * HEAD_DIM

    rows = block_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < n_q
    q_base = batch_head.to(tl.int64) * n_q * HEAD_DIM  # same offset in Q, dO and dQ
    q = _load_rows(Q + q_base, rows, n_q, HEAD_DIM, UPCAST)
    do = _load_rows(DO + q_base, rows, n_q, HEAD_DIM, UPCAST)
    lse = tl.load(LSE + batch_head.to(tl.int64) * n_q + rows, mask=row_ok, other=0.0)
    delta = tl.load(Delta + batch_head.to(tl.int64) * n_q + rows, mask=row_ok, other=0.0)
    dq = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)

    if CAUSAL:  # the same block skip as the forward
        first_row = block_m * BLOCK_M
        dq = _dq_key_blocks(
            dq, q, do, lse, delta, k_base, v_base, rows, n_q, n_k, qk_scale,
            0, tl.minimum(first_row, n_k),
            HEAD_DIM, BLOCK_N, False, UPCAST, DOT_PRECISION,
        )  # fmt: skip
        dq = _dq_key_blocks(
            dq, q, do, lse, delta, k_base, v_base, rows, n_q, n_k, qk_scale,
            first_row, tl.minimum(first_row + BLOCK_M, n_k),
            HEAD_DIM, BLOCK_N, True, UPCAST, DOT_PRECISION,
        )  # fmt: skip
    else:
        dq = _dq_key_blocks(
            dq, q, do, lse, delta, k_base, v_base, rows, n_q, n_k, qk_scale,
            0, n_k,
            HEAD_DIM, BLOCK_N, False, UPCAST, DOT_PRECISION,
        )  # fmt: skip

    dq = dq * scale
    _store_rows(DQ + q_base, rows, n_q, dq, HEAD_DIM)


def flash_attention_backward(
    do: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    causal: bool,
    scale: float | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients ``(dq, dk, dv)`` of a loss whose gradient with respect to ``out`` is ``do``.

    ``out`` and ``lse`` are what :func:`flash_attention_forward` returned for the same q, k,
    v, causal and scale. dq has q's shape, dk and dv k's shape (for grouped-query attention
    they sum over the query heads that share a key/value head), all in the inputs' dtype.

    Three launches: D = rowsum(dO ∘ O) (preprocess), dK and dV per key block (pass 1),
    dQ per query block (pass 2). See the comment above :func:`_backward_preprocess_kernel`.
    """
    scale = validate_backward_inputs(do, q, k, v, out, lse, causal, scale)
    do, q, k, v = do.contiguous(), q.contiguous(), k.contiguous(), v.contiguous()
    out, lse = out.contiguous(), lse.contiguous()
    batch, heads, n_q, head_dim = q.shape
    kv_heads, n_k = k.shape[1], k.shape[2]
    group_size = heads // kv_heads
    flags = _kernel_flags(q.dtype)

    delta = torch.empty_like(lse)
    preprocess_grid = (triton.cdiv(n_q, _PREPROCESS_BLOCK_M), batch * heads)
    _backward_preprocess_kernel[preprocess_grid](
        out, do, delta, n_q, HEAD_DIM=head_dim, BLOCK_M=_PREPROCESS_BLOCK_M
    )

    dq, dk, dv = _result_buffer(q), _result_buffer(k), _result_buffer(v)

    def dkdv_grid(meta: dict) -> tuple[int, int]:
        return (triton.cdiv(n_k, meta["BLOCK_N"]), batch * kv_heads)

    _backward_dkdv_kernel[dkdv_grid](
        q, k, v, do, dk, dv, lse, delta,
        n_q, n_k, heads, group_size, scale * LOG2E, scale,
        HEAD_DIM=head_dim, CAUSAL=causal, **flags,
    )  # fmt: skip

    def dq_grid(meta: dict) -> tuple[int, int]:
        return (triton.cdiv(n_q, meta["BLOCK_M"]), batch * heads)

    _backward_dq_kernel[dq_grid](
        q, k, v, do, dq, lse, delta,
        n_q, n_k, heads, group_size, scale * LOG2E, scale,
        HEAD_DIM=head_dim, CAUSAL=causal, **flags,
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
        causal: bool = False,
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
    causal: bool = False,
    scale: float | None = None,
) -> torch.Tensor:
    """softmax(scale · q kᵀ [causal mask]) v without ever storing the n_q x n_k matrix.

    Shapes, dtypes and semantics as :func:`flash_attention_forward`; differentiable with
    respect to q, k and v (through :class:`FlashAttentionFunction`). Bad input raises
    ValueError before anything is launched.
    """
    validate_inputs(q, k, v, causal, scale)
    return FlashAttentionFunction.apply(q, k, v, causal, scale)

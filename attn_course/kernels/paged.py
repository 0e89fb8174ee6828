"""Paged decode attention in Triton: one new query token per sequence, K/V read by block.

The torch reference is :func:`attn_course.paged.paged_attention_decode`; this kernel computes
the same thing without ever gathering a sequence's cache into a contiguous tensor. One
program owns one (sequence, query head): it loads its query vector, then walks the
sequence's block table

    for j in range(ceil(context_len / BLOCK_SIZE)):
        block = block_tables[seq, j]                   # which block of the pool
        k = k_pool[block, :, kv_head, :]               # (BLOCK_SIZE, HEAD_DIM)

and folds each block of keys and values into the online-softmax state (m, ℓ, acc) exactly
as :mod:`attn_course.kernels.flash` folds key tiles. The last block is masked past
``context_len``. GQA: query head h reads key/value head ``h // (heads // kv_heads)``.

Launch grid::

    grid = (batch, heads)
    tl.program_id(0) -> sequence       tl.program_id(1) -> query head

What this simple grid costs (:func:`attn_course.kvcache.paged_decode_grid_cost` does the
arithmetic; notebook 07, section 6, prints it):

* GQA re-read: the ``heads // kv_heads`` programs of one group each load the same K/V
  blocks, so the kernel loads heads / kv_heads times the cache (4x for Llama-3-8B), unless
  L2 happens to serve the repeats. A GQA-aware kernel gives one program the whole group.
* No split over the context (FlashDecoding, Dao et al. 2023): at batch 1 the grid has
  only ``heads`` programs, fewer than the GPU's SMs, each walking the whole context in
  sequence. Splitting the context over a third grid axis, then combining the partial
  (acc, m, ℓ) with the online-softmax rescaling, fills the GPU at long context:
  :mod:`attn_course.kernels.splitk` (notebook 08) does that with this kernel's loop.

With one query row there is nothing for ``tl.dot`` to multiply (it needs >= 16 rows), so the
scores are an elementwise product and a sum over head_dim, in float32. That also means
bf16 needs no special case in the interpreter: every tile is converted to float32 right after
loading. The output is stored in float32 and rounded to q's dtype by torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from attn_course.kernels.tiles import LOG2E
from attn_course.kernels.validate import ALLOWED_DTYPES, ALLOWED_HEAD_DIMS
from attn_course.paged import validate_paged_inputs
from attn_course.triton_mode import kernel_device, kernel_mode

__all__ = [
    "ALLOWED_BLOCK_SIZES",
    "PagedLaunch",
    "attend_blocks",
    "fold_block",
    "paged_decode",
    "paged_launch_inputs",
]

# tl.arange needs a power of two; 16 is vLLM's default block size.
ALLOWED_BLOCK_SIZES = (1, 2, 4, 8, 16, 32, 64, 128)


@triton.jit
def fold_block(
    acc, row_sum, row_max, q, KPool, VPool, BlockTables, seq, j, max_blocks, context_len,
    kv_heads, kv_head, qk_scale, HEAD_DIM: tl.constexpr, BLOCK_SIZE: tl.constexpr,
):  # fmt: skip
    """Fold logical block ``j`` of sequence ``seq`` into the online-softmax state.

    Looks the block up in the sequence's row of ``BlockTables``, loads its keys and values
    for ``kv_head`` (slots past ``context_len`` masked), and returns the new
    (acc, row_sum, row_max) in log2 units: ``qk_scale`` already holds log2(e). The caller
    makes sure block j holds at least one token (j < ⌈context_len / BLOCK_SIZE⌉), so the
    new maximum is finite and no exp2(-inf - (-inf)) = NaN can appear.
    """
    dims = tl.arange(0, HEAD_DIM)
    slots = tl.arange(0, BLOCK_SIZE)
    block = tl.load(BlockTables + seq.to(tl.int64) * max_blocks + j).to(tl.int64)
    # Pool layout (num_blocks, BLOCK_SIZE, kv_heads, HEAD_DIM): slot s of block b, head g
    # starts at ((b * BLOCK_SIZE + s) * kv_heads + g) * HEAD_DIM.
    offsets = (
        (block * BLOCK_SIZE + slots[:, None]) * (kv_heads * HEAD_DIM)
        + kv_head * HEAD_DIM
        + dims[None, :]
    )
    valid = j * BLOCK_SIZE + slots < context_len  # the last block may be partly filled
    k = tl.load(KPool + offsets, mask=valid[:, None], other=0.0).to(tl.float32)
    v = tl.load(VPool + offsets, mask=valid[:, None], other=0.0).to(tl.float32)
    s = tl.sum(k * q[None, :], 1) * qk_scale  # (BLOCK_SIZE,), in log2 units
    s = tl.where(valid, s, float("-inf"))
    # Online softmax: rescale what we have by 2^(old max - new max), add the new block.
    new_max = tl.maximum(row_max, tl.max(s, 0))
    p = tl.exp2(s - new_max)
    correction = tl.exp2(row_max - new_max)
    row_sum = row_sum * correction + tl.sum(p, 0)
    acc = acc * correction + tl.sum(p[:, None] * v, 0)
    return acc, row_sum, new_max


@triton.jit
def attend_blocks(
    Q, KPool, VPool, BlockTables, seq, head, first, last, context_len, max_blocks, heads,
    kv_heads, group_size, qk_scale, HEAD_DIM: tl.constexpr, BLOCK_SIZE: tl.constexpr,
):  # fmt: skip
    """Load the query of (seq, head) and fold logical blocks ``first .. last - 1`` of its cache.

    Returns the online-softmax state (acc, row_sum, row_max) in log2 units; with
    first == last (an empty range) that is (0, 0, -inf). GQA: query head h reads key/value
    head h // group_size.
    """
    kv_head = head // group_size
    dims = tl.arange(0, HEAD_DIM)
    q = tl.load(Q + (seq * heads + head).to(tl.int64) * HEAD_DIM + dims).to(tl.float32)
    row_max = tl.full([], float("-inf"), dtype=tl.float32)
    row_sum = tl.full([], 0.0, dtype=tl.float32)
    acc = tl.zeros([HEAD_DIM], dtype=tl.float32)
    for j in range(first, last):
        acc, row_sum, row_max = fold_block(
            acc, row_sum, row_max, q, KPool, VPool, BlockTables, seq, j, max_blocks,
            context_len, kv_heads, kv_head, qk_scale, HEAD_DIM, BLOCK_SIZE,
        )  # fmt: skip
    return acc, row_sum, row_max


@triton.jit
def paged_decode_kernel(
    Q, KPool, VPool, Out, BlockTables, ContextLens,
    max_blocks, heads, kv_heads, group_size, qk_scale,
    HEAD_DIM: tl.constexpr, BLOCK_SIZE: tl.constexpr,
):  # fmt: skip
    """One program = one query head of one sequence. Grid (batch, heads)."""
    seq = tl.program_id(0)
    head = tl.program_id(1)
    context_len = tl.load(ContextLens + seq)
    acc, row_sum, _ = attend_blocks(
        Q, KPool, VPool, BlockTables, seq, head, 0, tl.cdiv(context_len, BLOCK_SIZE),
        context_len, max_blocks, heads, kv_heads, group_size, qk_scale, HEAD_DIM, BLOCK_SIZE,
    )  # fmt: skip
    # context_len >= 1 is checked on the host, so row_sum > 0 here.
    dims = tl.arange(0, HEAD_DIM)
    tl.store(Out + (seq * heads + head).to(tl.int64) * HEAD_DIM + dims, acc / row_sum)


@dataclass(frozen=True)
class PagedLaunch:
    """The checked inputs of a paged-decode launch, ready for a kernel.

    q, k_pool, v_pool contiguous in their dtype; tables and lens contiguous int32; scale
    the softmax scale in natural units (the kernels multiply it by log2 e).
    """

    q: torch.Tensor
    k_pool: torch.Tensor
    v_pool: torch.Tensor
    tables: torch.Tensor
    lens: torch.Tensor
    scale: float

    @property
    def max_blocks(self) -> int:
        """Width of the block tables: the most blocks any sequence may own."""
        return self.tables.shape[1]


def paged_launch_inputs(
    q: torch.Tensor,
    k_pool: torch.Tensor,
    v_pool: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    scale: float | None = None,
) -> PagedLaunch:
    """Check a paged-decode kernel's inputs; return them ready to launch (:class:`PagedLaunch`).

    Everything :func:`attn_course.paged.validate_paged_inputs` checks, and what the kernels
    add: head_dim in :data:`ALLOWED_HEAD_DIMS`, block_size in :data:`ALLOWED_BLOCK_SIZES`,
    one float dtype among float32/float16/bfloat16, every tensor on
    :func:`attn_course.kernels.kernel_device`. Shared by :func:`paged_decode` and
    :func:`attn_course.kernels.splitk.split_decode`. ValueError naming the parameter.
    """
    scale = validate_paged_inputs(q, k_pool, v_pool, block_tables, context_lens, scale)
    head_dim = q.shape[-1]
    block_size = k_pool.shape[1]
    if head_dim not in ALLOWED_HEAD_DIMS:
        raise ValueError(f"head_dim must be one of {ALLOWED_HEAD_DIMS}, got {head_dim}")
    if block_size not in ALLOWED_BLOCK_SIZES:
        raise ValueError(f"block_size must be one of {ALLOWED_BLOCK_SIZES}, got {block_size}")
    for name, t in (("k_pool", k_pool), ("v_pool", v_pool)):
        if t.dtype != q.dtype or q.dtype not in ALLOWED_DTYPES:
            raise ValueError(
                f"q and {name} must share one dtype among {ALLOWED_DTYPES}, "
                f"got {q.dtype} and {t.dtype}"
            )
    expected = kernel_device()
    named = {"q": q, "k_pool": k_pool, "v_pool": v_pool, "block_tables": block_tables,
             "context_lens": context_lens}  # fmt: skip
    for name, t in named.items():
        if t.device.type != expected.type:
            raise ValueError(
                f"{name} is on {t.device} but the kernels run on {expected.type} "
                f"({kernel_mode()} mode); move it with .to(attn_course.kernels.kernel_device())"
            )
    return PagedLaunch(
        q.contiguous(), k_pool.contiguous(), v_pool.contiguous(),
        block_tables.to(torch.int32).contiguous(), context_lens.to(torch.int32).contiguous(),
        scale,
    )  # fmt: skip


# Same signature as paged.paged_attention_decode on purpose: the kernel and its torch reference.
def paged_decode(
    q: torch.Tensor,
    k_pool: torch.Tensor,
    v_pool: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    scale: float | None = None,
) -> torch.Tensor:
    """Paged decode attention with the Triton kernel; same contract as the torch reference.

    q: ``(batch, heads, head_dim)``; k_pool, v_pool: ``(num_blocks, block_size, kv_heads,
    head_dim)``; block_tables ``(batch, max_blocks)`` and context_lens ``(batch,)`` integer
    tensors; the kernel's own limits are :func:`paged_launch_inputs`'. Returns
    ``(batch, heads, head_dim)`` in q's dtype.
    """
    x = paged_launch_inputs(q, k_pool, v_pool, block_tables, context_lens, scale)
    batch, heads, head_dim = x.q.shape
    _, block_size, kv_heads, _ = x.k_pool.shape
    out = torch.empty(x.q.shape, dtype=torch.float32, device=x.q.device)
    paged_decode_kernel[(batch, heads)](
        x.q, x.k_pool, x.v_pool, out, x.tables, x.lens,
        x.max_blocks, heads, kv_heads, heads // kv_heads, x.scale * LOG2E.value,
        HEAD_DIM=head_dim, BLOCK_SIZE=block_size,
    )  # fmt: skip
    return out.to(q.dtype)

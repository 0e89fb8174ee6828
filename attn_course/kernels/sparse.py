"""Block-sparse attention forward in Triton: visit only the non-empty tiles of a layout.

Same program structure as :mod:`attn_course.kernels.flash` (read it first): one program
owns BLOCK query rows of one (batch, head), keeps the online-softmax state (m, ℓ, acc) in
registers and folds key blocks into it. The difference is *which* key blocks. Instead of
the loop ``for start_n in range(0, n_k, BLOCK_N)``, a program reads two short lists for
its query block I, as FlexAttention's BlockMask stores them:

    full_num[I], full_idx[I, :]        key blocks whose tiles are entirely allowed
    partial_num[I], partial_idx[I, :]  key blocks whose tiles are partly allowed

and runs the loop over the full tiles with no element mask, then over the partial tiles
loading the tile's slice of the dense boolean mask (uint8, n x n) and setting the
disallowed scores to -inf. "Entirely allowed" is the course's convention: it counts the
entries inside the sequence, so a short last tile can be full. FlexAttention's
``create_block_mask`` pads that tile with disallowed entries and lists it as partial
(:func:`attn_course.sparse.layout_to_flex` converts); this kernel accepts either, because
every tile, full or partial, masks the keys past n (``cols < n``). Skipped tiles cost
nothing: no load, no dot, no exp. The work is proportional to the number of visited tiles
(:attr:`attn_course.sparse.BlockLayout.visited_tiles`).

Launch grid::

    grid = (layout.blocks, batch * heads)
    tl.program_id(0) -> query block I            rows = I * BLOCK + arange(BLOCK)
    tl.program_id(1) -> (batch, head) pair

One layout and one mask serve every batch and head (the pattern depends on positions
only). Square tiles: BLOCK_M = BLOCK_N = layout.block, which must be 16, 32, 64 or 128
(tl.dot needs every dimension >= 16). A row with no allowed key (its lists are empty, or
every loaded mask entry is False) ends with ℓ = 0 and gets zeros, never NaN.

The mask is n² bytes: fine for teaching and for tests. A production kernel computes the
element mask from indices inside the kernel (FlexAttention compiles ``mask_mod`` into it),
so it never reads an n x n array; the tile lists are what make it sparse.

Units, interpreter and bfloat16: exactly as in flash.py, whose online-softmax step this
kernel shares (:func:`attn_course.kernels.tiles.online_softmax_step`): scores in natural
units, converted to base 2 after the maximum is subtracted; bf16 tiles upcast to fp32
after loading in the interpreter, results stored in float32 and rounded by torch. Forward
only: there is no backward pass.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from attn_course.kernels.tiles import (
    dtype_flags,
    finish_rows,
    kv_batch_head,
    load_rows,
    online_softmax_step,
    result_buffer,
    store_rows,
)
from attn_course.kernels.validate import validate_inputs
from attn_course.sparse import BlockLayout, SparsePattern

__all__ = ["ALLOWED_BLOCKS", "block_sparse_attention", "block_sparse_attention_forward"]

ALLOWED_BLOCKS = (16, 32, 64, 128)


@triton.jit
def _sparse_key_blocks(
    acc, row_sum, row_max, q, k_base, v_base, mask_base, rows, n, scale,
    num_ptr, idx_ptr, max_blocks, block_m,
    HEAD_DIM: tl.constexpr, BLOCK: tl.constexpr, APPLY_MASK: tl.constexpr,
    UPCAST: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """Fold the key blocks listed in idx_ptr[block_m, :num] into (acc, row_sum, row_max)."""
    count = tl.load(num_ptr + block_m)
    for t in range(0, count):
        key_block = tl.load(idx_ptr + block_m * max_blocks + t)
        cols = key_block * BLOCK + tl.arange(0, BLOCK)
        k = load_rows(k_base, cols, n, HEAD_DIM, UPCAST)
        v = load_rows(v_base, cols, n, HEAD_DIM, UPCAST)
        s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * scale  # natural units
        visible = (cols < n)[None, :]
        if APPLY_MASK:  # partial tile: read its slice of the element mask
            in_range = (rows < n)[:, None] & (cols < n)[None, :]
            offsets = rows[:, None].to(tl.int64) * n + cols[None, :]
            allowed = tl.load(mask_base + offsets, mask=in_range, other=0)
            visible = visible & (allowed != 0)
        s = tl.where(visible, s, float("-inf"))
        # The online softmax of flash.py, guarded the same way against rows with no key.
        acc, row_sum, row_max = online_softmax_step(acc, row_sum, row_max, s, v, DOT_PRECISION)
    return acc, row_sum, row_max


@triton.jit
def sparse_forward_kernel(
    Q, K, V, Out, LSE, Mask,
    FullNum, FullIdx, PartialNum, PartialIdx, max_blocks,
    n, heads, group_size, scale,
    HEAD_DIM: tl.constexpr, BLOCK: tl.constexpr,
    UPCAST: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """One program = BLOCK query rows of one (batch, head). Grid (blocks, batch · heads)."""
    block_m = tl.program_id(0)
    batch_head = tl.program_id(1)
    kv_index = kv_batch_head(batch_head, heads, group_size)
    q_base = Q + batch_head.to(tl.int64) * n * HEAD_DIM
    k_base = K + kv_index.to(tl.int64) * n * HEAD_DIM
    v_base = V + kv_index.to(tl.int64) * n * HEAD_DIM

    rows = block_m * BLOCK + tl.arange(0, BLOCK)
    q = load_rows(q_base, rows, n, HEAD_DIM, UPCAST)
    row_max = tl.full([BLOCK], float("-inf"), dtype=tl.float32)
    row_sum = tl.zeros([BLOCK], dtype=tl.float32)
    acc = tl.zeros([BLOCK, HEAD_DIM], dtype=tl.float32)

    # Full tiles first (no mask), then partial tiles (mask). The order of key blocks does
    # not matter to the online softmax: it is exact in any order.
    acc, row_sum, row_max = _sparse_key_blocks(
        acc, row_sum, row_max, q, k_base, v_base, Mask, rows, n, scale,
        FullNum, FullIdx, max_blocks, block_m,
        HEAD_DIM, BLOCK, False, UPCAST, DOT_PRECISION,
    )  # fmt: skip
    acc, row_sum, row_max = _sparse_key_blocks(
        acc, row_sum, row_max, q, k_base, v_base, Mask, rows, n, scale,
        PartialNum, PartialIdx, max_blocks, block_m,
        HEAD_DIM, BLOCK, True, UPCAST, DOT_PRECISION,
    )  # fmt: skip

    # No visible key: ℓ = 0 and m = -inf, so the output row is 0 and lse -inf, not NaN.
    out, lse = finish_rows(acc, row_sum, row_max)
    store_rows(Out + batch_head.to(tl.int64) * n * HEAD_DIM, rows, n, out, HEAD_DIM)
    tl.store(LSE + batch_head.to(tl.int64) * n + rows, lse, mask=rows < n)


def _validate_layout(layout: object, mask: object, n: int, device: torch.device) -> BlockLayout:
    if not isinstance(layout, BlockLayout):
        raise ValueError(
            f"layout must be an attn_course.sparse.BlockLayout, got {type(layout).__name__}"
        )
    if layout.n != n:
        raise ValueError(f"layout is for n = {layout.n} but q, k, v have n = {n}")
    if layout.block not in ALLOWED_BLOCKS:
        raise ValueError(
            f"layout.block must be one of {ALLOWED_BLOCKS} (tl.dot), got {layout.block}"
        )
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != (n, n):
        raise ValueError(f"mask must be a bool tensor of shape ({n}, {n}), True = may attend")
    if mask.device.type != device.type:
        raise ValueError(f"mask is on {mask.device} but q is on {device}; use one device")
    return layout


def block_sparse_attention_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    layout: BlockLayout,
    mask: torch.Tensor,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the kernel: returns ``(out, lse)`` as :func:`flash_attention_forward` does.

    q: (batch, heads, n, head_dim); k, v: (batch, kv_heads, n, head_dim) (self-attention:
    one n), dtypes and head_dim as the flash kernel. ``layout``: the BlockLayout of ``mask``
    (``pattern.layout(block)``), block in :data:`ALLOWED_BLOCKS`; ``mask``: (n, n) bool,
    True = may attend. The caller guarantees that layout and mask agree (a tile the layout
    skips is never read; a full tile is not masked): :func:`block_sparse_attention` builds
    both from one pattern.
    """
    scale = validate_inputs(q, k, v, False, scale)
    n = q.shape[2]
    if k.shape[2] != n:
        raise ValueError(
            f"self-attention only: k and v must have n = {n} rows like q, got {k.shape[2]}"
        )
    _validate_layout(layout, mask, n, q.device)
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    batch, heads, _, head_dim = q.shape
    group_size = heads // k.shape[1]

    device = q.device
    full_num, full_idx = (t.to(device) for t in layout.kv_lists("full"))
    partial_num, partial_idx = (t.to(device) for t in layout.kv_lists("partial"))
    mask_bytes = mask.to(device=device, dtype=torch.uint8).contiguous()

    out = result_buffer(q)
    lse = torch.empty((batch, heads, n), dtype=torch.float32, device=device)
    grid = (layout.blocks, batch * heads)
    sparse_forward_kernel[grid](
        q, k, v, out, lse, mask_bytes,
        full_num, full_idx, partial_num, partial_idx, layout.blocks,
        n, heads, group_size, scale,
        HEAD_DIM=head_dim, BLOCK=layout.block, **dtype_flags(q.dtype),
    )  # fmt: skip
    return out.to(q.dtype), lse


def block_sparse_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    pattern: SparsePattern,
    block: int = 16,
    scale: float | None = None,
) -> torch.Tensor:
    """softmax(scale · q kᵀ restricted to ``pattern``) v, visiting only the non-empty tiles.

    Builds the layout and the dense mask from ``pattern`` (so n² bytes of mask: a teaching
    kernel) and runs :func:`block_sparse_attention_forward`. Rows with no allowed key are 0.
    """
    if not isinstance(pattern, SparsePattern):
        raise ValueError(
            "pattern must be an attn_course.sparse.SparsePattern, "
            f"got {type(pattern).__name__}"
        )
    if block not in ALLOWED_BLOCKS:
        raise ValueError(f"block must be one of {ALLOWED_BLOCKS}, got {block!r}")
    validate_inputs(q, k, v, False, scale)
    if q.shape[2] != pattern.n:
        raise ValueError(f"q has n = {q.shape[2]} but the pattern is for n = {pattern.n}")
    layout = pattern.layout(block)
    out, _ = block_sparse_attention_forward(q, k, v, layout, pattern.dense_mask(q.device), scale)
    return out

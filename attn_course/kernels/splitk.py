"""Split-K paged decode (FlashDecoding) in Triton: split the context over programs, then merge.

The torch reference is :func:`attn_course.splitk.split_decode_reference`; the maths (partial
results, their logsumexp merge) is in :mod:`attn_course.splitk`. Two kernels:

**split_decode_kernel**, grid ``(batch, heads, splits)``::

    tl.program_id(0) -> sequence   tl.program_id(1) -> query head   tl.program_id(2) -> split

Program (b, h, s) owns blocks ``[⌊s·B / splits⌋, ⌊(s+1)·B / splits⌋)`` of sequence b's
block table, B = ⌈context_lens[b] / BLOCK_SIZE⌉ (whole blocks, balanced:
:func:`attn_course.splitk.split_ranges`). It folds them into the online-softmax state
(m, ℓ, acc) with the unsplit kernel's loop (:func:`attn_course.kernels.paged.attend_blocks`,
log2 units; :func:`attn_course.kernels.tiles.online_softmax_step` does not fit: it multiplies
with ``tl.dot``, which needs >= 16 query rows, and decode has one), then writes, in float32,

* its partial output **normalised**, ``o = acc / ℓ``, to ``partial_out[b, h, s, :]``;
* its logsumexp in **natural-log units**, ``lse = (m + log2 ℓ) · ln 2``, to
  ``partial_lse[b, h, s]`` (the convention of :func:`attn_course.splitk.partial_attention`
  and of the flash kernels' lse).

A split whose range is empty (a sequence with fewer blocks than ``splits``) runs no loop
iteration: ℓ = 0 and m = -inf, and it writes o = 0 and lse = -inf (ℓ is replaced by 1
before dividing and taking the log), never NaN. The merge then gives it weight e^-inf = 0.

**combine_kernel**, grid ``(batch, heads)``: program (b, h) reads the ``splits`` partial
results of its row one after another and merges them with the running rescaling
(:func:`attn_course.splitk.merge_partials`: lse = log(e^lse + e^lse_s), o rescaled by
e^(lse_old - lse) and e^(lse_s - lse)), in log2 units inside (lse · log2 e), guarding the
max so that two -inf make no NaN. It stores ``o`` in float32; torch rounds to q's dtype.

**Why split.** The unsplit kernel (:mod:`attn_course.kernels.paged`) launches one program
per (sequence, query head): at batch 1, ``heads`` programs, 32 for Llama-3-8B, on an H100's
132 SMs (:data:`attn_course.splitk.SM_COUNTS`): three quarters of the GPU idle while 32
programs each walk all ⌈context / 16⌉ blocks in sequence. Splitting the context multiplies
the programs by ``splits`` and divides each one's walk by the same.

**What it costs.** The partial results go through memory: per (sequence, head, split)
head_dim + 1 floats written by the split kernel and read by the combine (the cost model,
:func:`attn_course.kvcache.paged_decode_grid_cost`, counts acc, m, ℓ: head_dim + 2), plus a
second launch. Against the K/V bytes the splits read this is small (a fraction of a percent
for Llama-3-8B at 4K context: :func:`attn_course.splitk.decode_grid_rows`), which is why
splitting wins whenever the unsplit grid leaves SMs idle.

The default ``splits`` (``splits=None``): just enough to give every SM a program,
``⌈SMs / (batch · heads)⌉`` (:func:`attn_course.kvcache.splits_to_fill`), at most the
longest sequence's block count (more splits would all be empty). SMs: the device's
``multi_processor_count`` on a GPU; in the interpreter, an H100's 132, so the CPU runs the
grid an H100 would.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from attn_course.kernels.paged import attend_blocks, paged_launch_inputs
from attn_course.kernels.tiles import LOG2E
from attn_course.kvcache import splits_to_fill
from attn_course.paged import blocks_needed
from attn_course.splitk import SM_COUNTS
from attn_course.triton_mode import kernel_mode
from attn_course.validate import check_count

__all__ = ["default_splits", "device_sm_count", "split_decode", "split_decode_partials"]

#: The GPU whose SMs the interpreter's default ``splits`` fills.
INTERPRETER_GPU = "H100-SXM5-80GB"


@triton.jit
def split_decode_kernel(
    Q, KPool, VPool, PartialOut, PartialLse, BlockTables, ContextLens,
    max_blocks, heads, kv_heads, group_size, splits, qk_scale,
    HEAD_DIM: tl.constexpr, BLOCK_SIZE: tl.constexpr,
):  # fmt: skip
    """One program = one split of one query head of one sequence. Grid (batch, heads, splits)."""
    seq = tl.program_id(0)
    head = tl.program_id(1)
    split = tl.program_id(2)
    context_len = tl.load(ContextLens + seq)
    # Balanced whole blocks, as attn_course.splitk.split_ranges: empty when blocks < splits.
    num_blocks_used = tl.cdiv(context_len, BLOCK_SIZE)
    acc, row_sum, row_max = attend_blocks(
        Q, KPool, VPool, BlockTables, seq, head,
        split * num_blocks_used // splits, (split + 1) * num_blocks_used // splits,
        context_len, max_blocks, heads, kv_heads, group_size, qk_scale, HEAD_DIM, BLOCK_SIZE,
    )  # fmt: skip

    # An empty split: row_sum 0, row_max -inf -> o = 0, lse = -inf + log2(1) = -inf.
    safe_sum = tl.where(row_sum == 0.0, 1.0, row_sum)
    row = ((seq * heads + head) * splits + split).to(tl.int64)
    dims = tl.arange(0, HEAD_DIM)
    tl.store(PartialOut + row * HEAD_DIM + dims, acc / safe_sum)
    tl.store(PartialLse + row, (row_max + tl.log2(safe_sum)) / LOG2E)


@triton.jit
def combine_kernel(PartialOut, PartialLse, Out, heads, splits, HEAD_DIM: tl.constexpr):
    """One program = one query head of one sequence: merge its splits. Grid (batch, heads)."""
    seq = tl.program_id(0)
    head = tl.program_id(1)
    dims = tl.arange(0, HEAD_DIM)
    first_row = ((seq * heads + head) * splits).to(tl.int64)
    lse = tl.full([], float("-inf"), dtype=tl.float32)  # log2 units inside this loop
    o = tl.zeros([HEAD_DIM], dtype=tl.float32)
    for s in range(0, splits):
        lse_s = tl.load(PartialLse + first_row + s) * LOG2E
        o_s = tl.load(PartialOut + (first_row + s) * HEAD_DIM + dims)
        new_lse_max = tl.maximum(lse, lse_s)
        shift = tl.where(new_lse_max == float("-inf"), 0.0, new_lse_max)  # no -inf - -inf
        w_old = tl.exp2(lse - shift)
        w_new = tl.exp2(lse_s - shift)
        total = w_old + w_new
        safe = tl.where(total == 0.0, 1.0, total)
        o = (o * w_old + o_s * w_new) / safe
        # No split seen so far had a key: the running lse stays log 0 = -inf.
        lse = tl.where(total == 0.0, float("-inf"), shift + tl.log2(safe))
    tl.store(Out + (seq * heads + head).to(tl.int64) * HEAD_DIM + dims, o)


def device_sm_count() -> int:
    """SMs of the GPU the kernels run on; in the interpreter, :data:`INTERPRETER_GPU`'s."""
    if kernel_mode() != "gpu":
        return SM_COUNTS[INTERPRETER_GPU]
    return torch.cuda.get_device_properties(torch.cuda.current_device()).multi_processor_count


def default_splits(
    batch: int, heads: int, max_context_blocks: int, sm_count: int | None = None
) -> int:
    """The ``splits=None`` rule: ``min(⌈SMs / (batch · heads)⌉, max_context_blocks)``.

    ``sm_count`` None: the current GPU's SMs, or :data:`INTERPRETER_GPU`'s in the interpreter.
    """
    for name, value in (
        ("batch", batch),
        ("heads", heads),
        ("max_context_blocks", max_context_blocks),
    ):
        check_count(name, value)
    if sm_count is None:
        sm_count = device_sm_count()
    return min(splits_to_fill(sm_count, batch=batch, heads=heads), max_context_blocks)


# split_decode's signature on purpose: the same launch, stopped before the combine.
def split_decode_partials(
    q: torch.Tensor,
    k_pool: torch.Tensor,
    v_pool: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    scale: float | None = None,
    *,
    splits: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run split_decode_kernel alone: the partial results before the combine.

    Returns ``(partial_out, partial_lse)``, float32 ``(batch, heads, splits, head_dim)`` and
    ``(batch, heads, splits)``: each split's normalised output and natural-log logsumexp
    (0 and -inf for an empty split); :func:`attn_course.splitk.merge_many` over dim 2 gives
    :func:`split_decode`'s result. Inputs and ``splits`` as :func:`split_decode`.
    """
    x = paged_launch_inputs(q, k_pool, v_pool, block_tables, context_lens, scale)
    batch, heads, head_dim = x.q.shape
    _, block_size, kv_heads, _ = x.k_pool.shape
    if splits is None:
        longest = blocks_needed(int(x.lens.max()), block_size)
        splits = default_splits(batch, heads, longest)
    splits = check_count("splits", splits, 1, x.max_blocks)
    partial_out = torch.empty(
        batch, heads, splits, head_dim, dtype=torch.float32, device=x.q.device
    )
    partial_lse = torch.empty(batch, heads, splits, dtype=torch.float32, device=x.q.device)
    split_decode_kernel[(batch, heads, splits)](
        x.q, x.k_pool, x.v_pool, partial_out, partial_lse, x.tables, x.lens,
        x.max_blocks, heads, kv_heads, heads // kv_heads, splits, x.scale * LOG2E.value,
        HEAD_DIM=head_dim, BLOCK_SIZE=block_size,
    )  # fmt: skip
    return partial_out, partial_lse


# Same signature as paged.paged_attention_decode (plus splits) on purpose, as kernels/paged.py.
def split_decode(
    q: torch.Tensor,
    k_pool: torch.Tensor,
    v_pool: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    scale: float | None = None,
    *,
    splits: int | None = None,
) -> torch.Tensor:
    """Paged decode attention with the context split over ``splits`` programs per head.

    Same contract and input checks as :func:`attn_course.kernels.paged.paged_decode`
    (:func:`attn_course.kernels.paged.paged_launch_inputs`), plus ``splits`` an integer in
    ``[1, max_blocks]`` (the block tables' width); None picks :func:`default_splits`, enough
    programs for every SM. Launches split_decode_kernel ``(batch, heads, splits)`` then
    combine_kernel ``(batch, heads)``. Returns ``(batch, heads, head_dim)`` in q's dtype.
    """
    partial_out, partial_lse = split_decode_partials(
        q, k_pool, v_pool, block_tables, context_lens, scale, splits=splits
    )
    batch, heads, splits, head_dim = partial_out.shape
    out = torch.empty(batch, heads, head_dim, dtype=torch.float32, device=partial_out.device)
    combine_kernel[(batch, heads)](partial_out, partial_lse, out, heads, splits, HEAD_DIM=head_dim)
    return out.to(q.dtype)

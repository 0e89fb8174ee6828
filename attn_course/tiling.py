"""Tiling and the online softmax: exact attention without ever holding the n x n matrix.

Notebook 03 builds on this module. Naive attention (:mod:`attn_course.scores`) writes the
whole score matrix S = Q Kᵀ · scale and its softmax P to memory. Here the same output is
computed one (query block, key block) *tile* at a time, as FlashAttention does, keeping
three small running statistics per query row:

    m    the largest score seen so far                     (running max)
    ℓ    Σ exp(s - m) over the scores seen so far          (running sum)
    acc  Σ exp(s - m) · v over the keys seen so far        (unnormalised output)

When a new block of scores s (and its values V_j) arrives:

    m_new   = max(m, rowmax(s))
    α       = exp(m - m_new)                  rescales what was summed under the old max
    p       = exp(s - m_new)
    ℓ_new   = α · ℓ + rowsum(p)
    acc_new = α · acc + p V_j

and at the end O = acc / ℓ and the logsumexp L = m + log ℓ. Nothing is approximated: the
result equals softmax(S) V up to rounding.

Contents

* :func:`online_softmax_update` / :func:`online_softmax_finish` — one step, and the end.
* :func:`tiled_attention_loops` — the readable version: explicit loops over query blocks
  and key blocks in FlashAttention-2's order, optionally counting every block it loads
  from and stores to main memory (:class:`HBMTraffic`).
* :func:`tiled_attention` — the vectorised version: a loop over key blocks only, every
  query row at once; memory O(n · block_k) instead of O(n²).
* :func:`tiling_schedule`, :func:`visited_tiles`, :func:`trace_row` — what the loops do,
  step by step, for the interactive :class:`attn_course.ui.tiling.TilingExplorer`.
* The IO argument of the FlashAttention paper (Dao et al. 2022, Theorem 2):
  :func:`naive_hbm_bytes`, :func:`flash_block_sizes`, :func:`tiled_hbm_bytes`,
  :func:`tiled_hbm_bytes_for_blocks`, and on-chip memory sizes of real GPUs
  (:data:`ON_CHIP_MEMORY`).
* :func:`measure_tiled_memory` — peak memory of tiled vs naive attention on this machine.

Shapes follow :func:`attn_course.scores.naive_attention`: ``(batch, heads, n, head_dim)``
or a single head ``(n, head_dim)``; ``causal=True`` lets query i see keys j <= i (aligned
at the top-left when n_q != n_k).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import plotly.graph_objects as go
import torch

from attn_course.cost import naive_attention_traffic_bytes
from attn_course.figures import style
from attn_course.measure import measure_peak_bytes, random_qkv
from attn_course.scores import naive_attention, naive_attention_peak_bytes, validate_qkv
from attn_course.validate import (
    bytes_per_element,
    check_count,
    check_flag,
    check_loop_size,
    describe_value,
    resolve_dtype,
    resolve_scale,
)

__all__ = [
    "HBMTraffic",
    "ON_CHIP_MEMORY",
    "BlockSizes",
    "OnChipMemory",
    "RowTraceStep",
    "TileStep",
    "TiledMemoryRow",
    "TiledResult",
    "ExactnessRow",
    "causal_visited_fraction",
    "compare_with_naive",
    "hbm_traffic_figure",
    "hbm_traffic_ratio",
    "flash_block_sizes",
    "measure_tiled_memory",
    "naive_hbm_bytes",
    "online_softmax_finish",
    "online_softmax_init",
    "online_softmax_update",
    "tiled_attention",
    "tiled_attention_loops",
    "tiled_attention_peak_bytes",
    "tiled_hbm_bytes",
    "tiled_hbm_bytes_for_blocks",
    "tiling_memory_figure",
    "tiling_schedule",
    "trace_row",
    "visited_tiles",
]

NEG_INF = float("-inf")


# --- 1. one step of the online softmax ----------------------------------------------------


def online_softmax_init(
    rows: Sequence[int] | torch.Size, v_dim: int, dtype: torch.dtype, device: Any = "cpu"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The state before any key is seen: m = -inf, ℓ = 0, acc = 0.

    ``rows`` is the shape of the row statistics, e.g. ``(batch, heads, block_q)``; acc gets
    one more dimension of size ``v_dim``.
    """
    rows = tuple(rows)
    m = torch.full(rows, NEG_INF, dtype=dtype, device=device)
    l = torch.zeros(rows, dtype=dtype, device=device)  # noqa: E741 - ℓ, as in the paper
    acc = torch.zeros((*rows, v_dim), dtype=dtype, device=device)
    return m, l, acc


def online_softmax_update(
    m: torch.Tensor,
    l: torch.Tensor,  # noqa: E741 - ℓ, as in the paper
    acc: torch.Tensor,
    scores_block: torch.Tensor,
    v_block: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fold one block of scores into the running (m, ℓ, acc); returns new tensors.

    Shapes: m and ℓ are (..., r), acc is (..., r, v_dim), ``scores_block`` is (..., r, c):
    the scaled scores of r query rows against c keys, masked entries already -inf, and
    ``v_block`` is (..., c, v_dim), the values of those c keys.

        m_new   = max(m, rowmax(s))
        α       = exp(m - m_new)        ≤ 1: the old terms were exp(s - m), now exp(s - m_new)
        p       = exp(s - m_new)
        ℓ_new   = α ℓ + rowsum(p)
        acc_new = α acc + p V

    A row that has seen only masked scores keeps m = -inf, ℓ = 0, acc = 0; the shift is
    then taken as 0 instead of -inf, so no -inf - (-inf) = nan appears.
    Inputs are not modified.
    """
    m_new = torch.maximum(m, scores_block.amax(dim=-1))
    # Rows with nothing unmasked yet: shift by 0 (every exp is then exp(-inf) = 0).
    shift = m_new.masked_fill(torch.isneginf(m_new), 0.0)
    alpha = torch.exp(m - shift)  # exp(-inf) = 0 on the first block: nothing to rescale
    # exp_ works in place on the fresh difference: one block-sized buffer instead of two.
    p = (scores_block - shift.unsqueeze(-1)).exp_()
    l_new = alpha * l + p.sum(dim=-1)
    # α·acc + p V, with addcmul_ adding α·acc into p V's buffer: no third acc-sized tensor.
    acc_new = (p @ v_block).addcmul_(alpha.unsqueeze(-1), acc)
    return m_new, l_new, acc_new


def online_softmax_finish(
    m: torch.Tensor,
    l: torch.Tensor,  # noqa: E741 - ℓ, as in the paper
    acc: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Output and logsumexp from the final state: O = acc / ℓ, L = m + log ℓ.

    L = log Σ_j exp(s_j) is what FlashAttention stores for the backward pass (one number
    per row instead of a row of P). A row with every key masked has ℓ = 0: its output is
    0 (as :func:`attn_course.scores.stable_softmax` gives) and its L is -inf.
    """
    empty = l == 0
    out = acc / l.masked_fill(empty, 1.0).unsqueeze(-1)
    lse = (m + torch.log(l)).masked_fill(empty, NEG_INF)
    return out, lse


# --- 2. the tiled algorithm -----------------------------------------------------------------


class TiledResult(NamedTuple):
    """What the tiled algorithms compute.

    out: O = softmax(S) V                       (..., n_q, v_dim)
    lse: L = log Σ_j exp(S_ij), one per row     (..., n_q); -inf for a fully masked row
    """

    out: torch.Tensor
    lse: torch.Tensor


@dataclass
class HBMTraffic:
    """Counts the bytes a tiled run moves between main memory (HBM) and the chip.

    Pass one to :func:`tiled_attention_loops`; every block it loads (Q, K, V) and every
    block it stores (O, L) is added here, by ``tensor.element_size() * tensor.numel()``.
    """

    read_bytes: dict[str, int] = field(default_factory=lambda: {"Q": 0, "K": 0, "V": 0})
    written_bytes: dict[str, int] = field(default_factory=lambda: {"O": 0, "L": 0})
    tiles: int = 0  # (query block, key block) tiles computed

    def load(self, name: str, block: torch.Tensor) -> torch.Tensor:
        self.read_bytes[name] += block.element_size() * block.numel()
        return block

    def store(self, name: str, block: torch.Tensor) -> None:
        self.written_bytes[name] += block.element_size() * block.numel()

    @property
    def total_bytes(self) -> int:
        return sum(self.read_bytes.values()) + sum(self.written_bytes.values())


def _allowed_view(
    mask: torch.Tensor | None, causal: bool, q: torch.Tensor, n_k: int
) -> torch.Tensor | None:
    """Validate the options; return ``mask`` broadcast (a view, no copy) to (..., n_q, n_k)."""
    causal = check_flag("causal", causal)
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise ValueError(
            f"mask must be a boolean torch.Tensor (True = may attend), got {describe_value(mask)}"
        )
    shape = (*q.shape[:-2], q.shape[-2], n_k)
    try:
        return mask.expand(shape)
    except RuntimeError:
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to the scores' shape {shape}"
        ) from None


def _mask_block_(
    scores: torch.Tensor,
    q_start: int,
    k_start: int,
    causal: bool,
    allowed: torch.Tensor | None,
) -> None:
    """Set the forbidden entries of one score block to -inf, in place.

    ``scores`` holds query rows q_start.. against keys k_start..; causal forbids j > i.
    """
    rows, cols = scores.shape[-2], scores.shape[-1]
    if causal and k_start + cols - 1 > q_start:  # some key of the block lies in some row's future
        i = torch.arange(q_start, q_start + rows, device=scores.device).unsqueeze(-1)
        j = torch.arange(k_start, k_start + cols, device=scores.device)
        scores.masked_fill_(j > i, NEG_INF)  # a (rows, cols) bool: block-sized, not n²
    if allowed is not None:
        block = allowed[..., q_start : q_start + rows, k_start : k_start + cols]
        scores.masked_fill_(block.logical_not(), NEG_INF)


def tiled_attention_loops(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    mask: torch.Tensor | None = None,
    scale: float | None = None,
    block_q: int = 64,
    block_k: int = 64,
    traffic: HBMTraffic | None = None,
) -> TiledResult:
    """Exact attention, tile by tile, written as FlashAttention-2's forward pass.

    For each query block Q_i (``block_q`` rows; the last may be shorter):
        load Q_i; m = -inf, ℓ = 0, acc = 0                      (on chip)
        for each key block j (``block_k`` keys):
            if causal and the whole tile lies above the diagonal: stop (it is all masked)
            load K_j, V_j; S_ij = Q_i K_jᵀ · scale; mask it
            (m, ℓ, acc) = online_softmax_update(m, ℓ, acc, S_ij, V_j)
        O_i = acc / ℓ, L_i = m + log ℓ; store O_i and L_i

    Only one block_q x block_k tile of S ever exists. ``traffic`` (an :class:`HBMTraffic`)
    counts every load and store as the loops run. Batch and heads are processed together
    (they are independent problems, like the parallel thread blocks of a GPU kernel).
    """
    validate_qkv(q, k, v)
    n_q, n_k, head_dim = q.shape[-2], k.shape[-2], q.shape[-1]
    block_q, block_k = check_count("block_q", block_q), check_count("block_k", block_k)
    scale = resolve_scale(scale, head_dim)
    allowed = _allowed_view(mask, causal, q, n_k)
    count = traffic if traffic is not None else HBMTraffic()
    lead = q.shape[:-2]
    out = torch.empty((*lead, n_q, v.shape[-1]), dtype=q.dtype, device=q.device)
    lse = torch.empty((*lead, n_q), dtype=q.dtype, device=q.device)

    for q_start in range(0, n_q, block_q):
        q_end = min(q_start + block_q, n_q)
        q_block = count.load("Q", q[..., q_start:q_end, :])
        m, l, acc = online_softmax_init((*lead, q_end - q_start), v.shape[-1], q.dtype, q.device)  # noqa: E741
        for k_start in range(0, n_k, block_k):
            if causal and k_start > q_end - 1:
                break  # every key from here on is in the future of every row of Q_i
            k_end = min(k_start + block_k, n_k)
            k_block = count.load("K", k[..., k_start:k_end, :])
            v_block = count.load("V", v[..., k_start:k_end, :])
            scores = q_block @ k_block.transpose(-2, -1)  # one block_q x block_k tile
            scores.mul_(scale)
            _mask_block_(scores, q_start, k_start, causal, allowed)
            m, l, acc = online_softmax_update(m, l, acc, scores, v_block)  # noqa: E741
            count.tiles += 1
        out_block, lse_block = online_softmax_finish(m, l, acc)
        out[..., q_start:q_end, :] = out_block
        lse[..., q_start:q_end] = lse_block
        count.store("O", out_block)
        count.store("L", lse_block)
    return TiledResult(out, lse)


# Same arguments as tiled_attention_loops and scores.naive_attention on purpose: one call, 3 ways.
def tiled_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    mask: torch.Tensor | None = None,
    scale: float | None = None,
    block_k: int = 256,
) -> TiledResult:
    """Exact attention, vectorised: one loop over key blocks, all query rows at once.

    The same recurrence as :func:`tiled_attention_loops`, with the query loop replaced by
    whole-tensor operations: the state (m, ℓ, acc) has one row per query, and each step
    folds in one block of ``block_k`` keys. With ``causal=True`` the rows before the
    block's first key are left out of the step entirely (they may not see any of it), so
    about half the work is skipped, as in the loop version.

    Memory: besides the output, O(n_q) statistics and one n_q x block_k block of scores
    (and its exponentials) at a time: linear in n for a fixed block size, see
    :func:`tiled_attention_peak_bytes`.
    """
    validate_qkv(q, k, v)
    n_q, n_k, head_dim = q.shape[-2], k.shape[-2], q.shape[-1]
    block_k = check_count("block_k", block_k)
    scale = resolve_scale(scale, head_dim)
    allowed = _allowed_view(mask, causal, q, n_k)
    m, l, acc = online_softmax_init(q.shape[:-1], v.shape[-1], q.dtype, q.device)  # noqa: E741

    for k_start in range(0, n_k, block_k):
        k_end = min(k_start + block_k, n_k)
        first = k_start if causal else 0  # causal: rows i < k_start see none of these keys
        if first >= n_q:
            break
        scores = q[..., first:, :] @ k[..., k_start:k_end, :].transpose(-2, -1)
        scores.mul_(scale)
        _mask_block_(scores, first, k_start, causal, allowed)
        m_new, l_new, acc_new = online_softmax_update(
            m[..., first:], l[..., first:], acc[..., first:, :], scores, v[..., k_start:k_end, :]
        )
        del scores  # free the block before the state is written back
        m[..., first:], l[..., first:], acc[..., first:, :] = m_new, l_new, acc_new
        del m_new, l_new, acc_new  # copied into the state: don't keep them into the next step
    return TiledResult(*online_softmax_finish(m, l, acc))


def tiled_attention_peak_bytes(
    n: int,
    head_dim: int,
    dtype: torch.dtype | str,
    block_k: int = 256,
    heads: int = 1,
    batch: int = 1,
) -> int:
    """Model of the extra bytes :func:`tiled_attention` holds at its peak (n_q = n_k = n).

        peak = (2 · n · B  +  2 · n · head_dim  +  6 · n) · heads · batch · b,   B = min(block_k, n)

    with b the bytes per element. The busiest moment is ``p @ v_block`` inside
    :func:`online_softmax_update` in the first step (causal or not, every row takes part
    in it): the score block S_j and its exponentials p (n x B each); the state acc and
    the new acc being computed (n x head_dim each); and six vectors of n numbers (m, ℓ,
    the new m, the shift, α, the new ℓ). The allocator peak measured on this CPU matches
    it to the byte (tests/test_tiling.py). Every term is linear in n; naive attention's S
    and P are n x n.
    """
    n, head_dim = check_count("n", n), check_count("head_dim", head_dim)
    block = min(check_count("block_k", block_k), n)
    element = resolve_dtype(dtype).itemsize
    per_head = 2 * n * block + 2 * n * head_dim + 6 * n
    return per_head * check_count("heads", heads) * check_count("batch", batch) * element


# --- 3. the schedule and a row's trace -------------------------------------------------------


class TileStep(NamedTuple):
    """One (query block, key block) tile of the n_q x n_k score matrix.

    skipped: causal and the whole tile is above the diagonal (never computed, never loaded)
    partial: causal and the tile straddles the diagonal (computed, then partly masked)
    """

    q_block: int
    k_block: int
    q_start: int
    q_end: int
    k_start: int
    k_end: int
    skipped: bool
    partial: bool


def tiling_schedule(
    n: int, block_q: int, block_k: int, causal: bool = False, n_k: int | None = None
) -> list[TileStep]:
    """Every tile in the order :func:`tiled_attention_loops` meets it: query blocks
    outside, key blocks inside. Skipped tiles are listed too (marked), so a picture can
    show them; the loops never touch them.
    """
    n = check_count("n", n)
    n_k = n if n_k is None else check_count("n_k", n_k)
    block_q, block_k = check_count("block_q", block_q), check_count("block_k", block_k)
    causal = check_flag("causal", causal)
    check_loop_size("n, n_k", -(-n // block_q) * -(-n_k // block_k), "tiles")
    steps = []
    for i, q_start in enumerate(range(0, n, block_q)):
        q_end = min(q_start + block_q, n)
        for j, k_start in enumerate(range(0, n_k, block_k)):
            k_end = min(k_start + block_k, n_k)
            skipped = causal and k_start > q_end - 1
            partial = causal and not skipped and k_end - 1 > q_start
            steps.append(TileStep(i, j, q_start, q_end, k_start, k_end, skipped, partial))
    return steps


def visited_tiles(n: int, block_q: int, block_k: int, causal: bool = False) -> int:
    """Number of tiles the tiled algorithm computes (n_q = n_k = n).

    Non-causal: T_r · T_c with T_r = ⌈n / block_q⌉, T_c = ⌈n / block_k⌉.
    Causal: query block i (rows up to q_end - 1) needs the key blocks starting at or before
    q_end - 1, which is ⌈q_end / block_k⌉ of them; summed over i. With equal blocks that is
    T (T + 1) / 2: the diagonal tiles plus the ones below it.
    """
    n = check_count("n", n)
    block_q, block_k = check_count("block_q", block_q), check_count("block_k", block_k)
    row_blocks = -(-n // block_q)
    if not check_flag("causal", causal):
        return row_blocks * -(-n // block_k)
    check_loop_size("n", row_blocks, "query blocks")
    return sum(-(-min((i + 1) * block_q, n) // block_k) for i in range(row_blocks))


def causal_visited_fraction(n: int, block_q: int, block_k: int) -> float:
    """Visited tiles with causal skipping / all tiles: → 1/2 as n / block grows."""
    return visited_tiles(n, block_q, block_k, True) / visited_tiles(n, block_q, block_k, False)


class RowTraceStep(NamedTuple):
    """The state of one query row after key block ``k_block`` was folded in.

    block_max: the largest (unmasked) score of this row in the block (-inf if none)
    m, l:      running max and running sum after the step
    alpha:     the factor exp(m_old - m_new) the old ℓ and acc were multiplied by
    partial_out: acc / ℓ, the output if the remaining keys did not exist
    """

    k_block: int
    k_start: int
    k_end: int
    block_max: float
    m: float
    l: float  # noqa: E741
    alpha: float
    partial_out: torch.Tensor


def trace_row(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    row: int,
    *,
    block_k: int,
    causal: bool = False,
    scale: float | None = None,
) -> list[RowTraceStep]:
    """Follow one query row through the key blocks: m, ℓ and the partial output per step.

    Single head, shapes (n, head_dim). With ``causal`` only the key blocks the row's query
    block would visit are listed (with block_q = 1 that is up to the row's own block).
    """
    validate_qkv(q, k, v)
    if q.dim() != 2:
        raise ValueError(f"q must be a single head (n, head_dim), got shape {tuple(q.shape)}")
    n_q, n_k = q.shape[0], k.shape[0]
    row = check_count("row", row, 0, n_q - 1)
    block_k = check_count("block_k", block_k)
    scale = resolve_scale(scale, q.shape[-1])
    causal = check_flag("causal", causal)
    m, l, acc = online_softmax_init((1,), v.shape[-1], q.dtype)  # noqa: E741
    steps = []
    for j, k_start in enumerate(range(0, n_k, block_k)):
        if causal and k_start > row:
            break
        k_end = min(k_start + block_k, n_k)
        scores = q[row : row + 1] @ k[k_start:k_end].T * scale
        _mask_block_(scores, row, k_start, causal, None)
        m_old = m
        m, l, acc = online_softmax_update(m, l, acc, scores, v[k_start:k_end])  # noqa: E741
        shift = 0.0 if math.isinf(m.item()) else m.item()
        alpha = math.exp(m_old.item() - shift)
        out, _ = online_softmax_finish(m, l, acc)
        steps.append(
            RowTraceStep(j, k_start, k_end, scores.max().item(), m.item(), l.item(), alpha, out[0])
        )
    return steps


# --- 4. the IO argument: bytes moved between main memory and the chip --------------------------


def naive_hbm_bytes(
    n: int, head_dim: int, dtype: Any = "float16", *, extra_passes: int = 0
) -> float:
    """Bytes naive attention moves to and from main memory, per head: Θ(n d + n²).

        read Q, K (2 n d); write S, read S, write P, read P (4 n²); read V (n d); write O (n d)
        = (4 n d + 4 n²) · b

    Each of the three steps (S = QKᵀ, P = softmax(S), O = PV) is a separate pass that
    reads its inputs from memory and writes its output back (the standard implementation
    of the FlashAttention paper, Algorithm 0). The n² part is
    :func:`attn_course.cost.naive_attention_traffic_bytes`.

    ``extra_passes``: elementwise steps over the n x n matrix that an unfused (eager)
    implementation runs as kernels of their own, each reading and writing it once, 2 n² · b
    more apiece: the scaling ``S * scale`` and the mask ``masked_fill`` are two (when not
    folded into the matmul), dropout one more (plus its mask). Algorithm 0 has none.
    """
    n, head_dim = check_count("n", n), check_count("head_dim", head_dim)
    extra_passes = check_count("extra_passes", extra_passes, minimum=0)
    element = bytes_per_element(dtype)
    score_traffic = naive_attention_traffic_bytes(n, 1, dtype=dtype)
    return score_traffic + (2 * extra_passes * n * n + 4 * n * head_dim) * element


def hbm_traffic_ratio(
    n: int,
    head_dim: int,
    block_q: int,
    block_k: int,
    dtype: Any = "float16",
    *,
    extra_passes: int = 0,
) -> float:
    """Naive attention's main-memory bytes / the tiled algorithm's, per head, non-causal.

    :func:`naive_hbm_bytes` (with ``extra_passes`` unfused elementwise passes) over
    :func:`tiled_hbm_bytes_for_blocks` with these tiles. For n ≫ block_q it tends to
    ``(4 + 2 · extra_passes) · block_q / (2 · head_dim)``: with the real tiles of a GPU
    kernel (block_q = 128) that is 4 at head_dim 64 and 2 at head_dim 128 against
    Algorithm 0, far less than blocks that fill all of shared memory give
    (:func:`flash_block_sizes`). It counts bytes only: what it leaves out (L2 hits, launch
    overhead, the exp and max work) is discussed in notebook 03.
    """
    naive = naive_hbm_bytes(n, head_dim, dtype, extra_passes=extra_passes)
    return naive / tiled_hbm_bytes_for_blocks(n, head_dim, block_q, block_k, dtype)


class BlockSizes(NamedTuple):
    """Tile sizes chosen from the on-chip memory size: rows of Q (block_q), keys (block_k)."""

    block_q: int
    block_k: int


def flash_block_sizes(head_dim: int, sram_bytes: int, dtype: Any = "float16") -> BlockSizes:
    """Block sizes that fill on-chip memory of ``sram_bytes``, after the FlashAttention paper.

    With M = ⌊sram_bytes / b⌋ elements on chip, the paper (Algorithm 1) takes
    B_c = ⌈M / (4d)⌉ and B_r = min(B_c, d): four d-wide blocks of about M/4 elements each
    fit. Its loop keeps the K/V block (B_c keys) on chip while Q streams past, so Q and O
    make ⌈n / B_c⌉ trips to main memory. FlashAttention-2, which
    :func:`tiled_attention_loops` follows, swaps the loops: the *query* block stays on chip
    and K, V stream past. The block that stays gets the large size, so here

        block_q = ⌈M / (4d)⌉,   block_k = min(block_q, d)

    and K and V make ⌈n / block_q⌉ trips. (Keeping the paper's B_r = min(B_c, d) ≤ d for
    the query block would make K and V travel n/d times: 2n² elements, no better than
    naive attention's n² term for d = 64.)
    """
    head_dim = check_count("head_dim", head_dim)
    sram_bytes = check_count("sram_bytes", sram_bytes)
    elements = int(sram_bytes // bytes_per_element(dtype))
    if elements < 4 * head_dim:
        raise ValueError(
            f"sram_bytes must hold at least 4 · head_dim elements ({4 * head_dim} of "
            f"{bytes_per_element(dtype)} B), got {sram_bytes} B"
        )
    block_q = -(-elements // (4 * head_dim))
    return BlockSizes(block_q, min(block_q, head_dim))


def tiled_hbm_bytes_for_blocks(
    n: int,
    head_dim: int,
    block_q: int,
    block_k: int,
    dtype: Any = "float16",
    *,
    causal: bool = False,
    heads: int = 1,
    batch: int = 1,
) -> float:
    """Bytes :func:`tiled_attention_loops` moves, for given block sizes (n_q = n_k = n).

        Q read once                               n · d
        K and V read once per query block         2 · d · (keys loaded by all query blocks)
        O written once, L written once            n · d + n

    Non-causal, every query block loads all n keys: ``(2nd + 2nd·⌈n/block_q⌉ + n) · b``.
    Causal, query block i loads only the key blocks that start at or before its last row.
    Times ``heads · batch``. This is the exact count, tails included: an instrumented run
    (:class:`HBMTraffic`) gives the same number.
    """
    n, head_dim = check_count("n", n), check_count("head_dim", head_dim)
    block_q, block_k = check_count("block_q", block_q), check_count("block_k", block_k)
    causal = check_flag("causal", causal)
    check_loop_size("n", -(-n // block_q), "query blocks")
    keys_loaded = 0
    for q_start in range(0, n, block_q):
        q_end = min(q_start + block_q, n)
        # Causal: the key blocks starting at or before row q_end - 1, ⌈q_end / block_k⌉ of
        # them; the last one may be cut short by n.
        keys_loaded += min(n, -(-q_end // block_k) * block_k) if causal else n
    elements = 2 * n * head_dim + 2 * head_dim * keys_loaded + n
    copies = check_count("heads", heads) * check_count("batch", batch)
    return elements * copies * bytes_per_element(dtype)


def tiled_hbm_bytes(
    n: int, head_dim: int, sram_bytes: int, dtype: Any = "float16", *, causal: bool = False
) -> float:
    """Bytes the tiled algorithm moves per head with blocks that fill ``sram_bytes`` on chip.

    Blocks from :func:`flash_block_sizes`; count from :func:`tiled_hbm_bytes_for_blocks`.
    Non-causal: ``(2nd + 2nd·⌈n/B_r⌉ + n) · b`` with B_r = ⌈M/(4d)⌉, M = sram_bytes / b.
    For n ≫ B_r that is ≈ 2nd · n · 4d / M = 8 n² d² / M elements: Θ(n² d² / M), the
    FlashAttention paper's Theorem 2. For d² < M/4 (d = 64 or 128 and M of 100 KiB or more
    on a GPU) it is several times less than naive attention's 4n².
    """
    blocks = flash_block_sizes(head_dim, sram_bytes, dtype)
    return tiled_hbm_bytes_for_blocks(n, head_dim, *blocks, dtype, causal=causal)


@dataclass(frozen=True)
class OnChipMemory:
    """Fast on-chip memory (SRAM) of one GPU.

    l1_shared_bytes_per_sm: combined L1 cache / shared memory per streaming multiprocessor
    max_shared_bytes_per_sm: the most of it a kernel can use as shared memory (the M a
                             tiled kernel's blocks must fit in)
    l2_bytes: the L2 cache shared by all SMs, between them and HBM: blocks of K and V that
              one program read can be served from it to the next program that reads them
    """

    name: str
    sm_count: int
    l1_shared_bytes_per_sm: int
    max_shared_bytes_per_sm: int
    l2_bytes: int
    source: str

    @property
    def total_l1_shared_bytes(self) -> int:
        """All SMs together (FlashAttention paper: about 20 MB on an A100)."""
        return self.sm_count * self.l1_shared_bytes_per_sm


KiB = 1024

#: Datasheet/whitepaper values (KB there means KiB: 192 KB = 196,608 B).
ON_CHIP_MEMORY: dict[str, OnChipMemory] = {
    "A100": OnChipMemory(
        name="A100 (SXM4)",
        sm_count=108,
        l1_shared_bytes_per_sm=192 * KiB,
        max_shared_bytes_per_sm=164 * KiB,
        l2_bytes=40 * KiB * KiB,
        source="NVIDIA A100 Tensor Core GPU Architecture whitepaper: 108 SMs, 192 KB combined "
        "L1/shared memory per SM, up to 164 KB of it as shared memory, 40 MB L2 cache; CUDA "
        "C++ Programming Guide, compute capability 8.0",
    ),
    "H100": OnChipMemory(
        name="H100 (SXM5)",
        sm_count=132,
        l1_shared_bytes_per_sm=256 * KiB,
        max_shared_bytes_per_sm=228 * KiB,
        l2_bytes=50 * KiB * KiB,
        source="NVIDIA H100 Tensor Core GPU Architecture whitepaper: 132 SMs (SXM5), 256 KB "
        "combined L1/shared memory per SM, up to 228 KB of it as shared memory, 50 MB L2 "
        "cache; CUDA C++ Programming Guide, compute capability 9.0",
    ),
}


# --- 5. measured memory: tiled vs naive -------------------------------------------------------


@dataclass(frozen=True)
class TiledMemoryRow:
    """One sequence length. Bytes are bytes; None = not measured (see ``naive_budget_bytes``).

    tiled_formula_bytes / tiled_peak_bytes: :func:`tiled_attention_peak_bytes`, measured peak
    naive_formula_bytes / naive_peak_bytes: naive_attention_peak_bytes, measured peak
    """

    n: int
    tiled_formula_bytes: int
    tiled_peak_bytes: int
    naive_formula_bytes: int
    naive_peak_bytes: int | None


def measure_tiled_memory(
    ns: Sequence[int],
    head_dim: int = 64,
    dtype: torch.dtype | str = "float32",
    block_k: int = 256,
    naive_budget_bytes: int = 2**30,
    progress: bool = False,
) -> list[TiledMemoryRow]:
    """Allocator peak (:func:`attn_course.measure.measure_peak_bytes`) of :func:`tiled_attention`
    and of naive attention at each n (one head, non-causal).

    Naive attention is run only where its predicted peak
    (:func:`attn_course.scores.naive_attention_peak_bytes`) is at most ``naive_budget_bytes``.
    """
    if not ns:
        raise ValueError("ns must list at least one sequence length")
    budget = check_count("naive_budget_bytes", naive_budget_bytes)
    sizes: Sequence[int] = ns
    if progress:
        from tqdm.auto import tqdm

        sizes = tqdm(ns, desc="measuring peak memory", unit="size")
    rows = []
    for n in sizes:
        q, k, v = random_qkv(n, head_dim, dtype)
        tiled = measure_peak_bytes(tiled_attention, q, k, v, block_k=block_k)
        naive_formula = naive_attention_peak_bytes(n, head_dim, dtype)
        naive = measure_peak_bytes(naive_attention, q, k, v) if naive_formula <= budget else None
        del q, k, v
        rows.append(
            TiledMemoryRow(
                n=n,
                tiled_formula_bytes=tiled_attention_peak_bytes(n, head_dim, dtype, block_k),
                tiled_peak_bytes=tiled,
                naive_formula_bytes=naive_formula,
                naive_peak_bytes=naive,
            )
        )
    return rows


def tiling_memory_figure(
    rows: Sequence[TiledMemoryRow], head_dim: int, dtype: str = "float32", block_k: int = 256
) -> go.Figure:
    """Log-log plot: measured peaks (markers) and formulas (lines) of tiled and naive attention."""
    if not rows:
        raise ValueError("rows must hold at least one measurement")
    ns = [r.n for r in rows]
    measured_naive = [r for r in rows if r.naive_peak_bytes is not None]
    figure = go.Figure()
    figure.add_scatter(
        x=ns, y=[r.naive_formula_bytes for r in rows], mode="lines",
        name="naive: S + P + O (formula, ∝ n²)", line={"color": "#d62728", "dash": "dash"},
    )  # fmt: skip
    figure.add_scatter(
        x=[r.n for r in measured_naive], y=[r.naive_peak_bytes for r in measured_naive],
        mode="markers", name="naive (measured peak)",
        marker={"color": "#d62728", "size": 10, "symbol": "circle-open", "line": {"width": 2}},
    )  # fmt: skip
    figure.add_scatter(
        x=ns, y=[r.tiled_formula_bytes for r in rows], mode="lines",
        name=f"tiled, block_k = {block_k} (formula, ∝ n)", line={"color": "#1f77b4"},
    )  # fmt: skip
    figure.add_scatter(
        x=ns, y=[r.tiled_peak_bytes for r in rows], mode="markers",
        name="tiled (measured peak)", marker={"color": "#1f77b4", "size": 9},
    )  # fmt: skip
    element = resolve_dtype(dtype).itemsize
    figure.add_scatter(
        x=ns, y=[3 * n * head_dim * element for n in ns], mode="lines",
        name="inputs q, k, v (for scale, ∝ n)", line={"color": "grey", "dash": "dot"},
    )  # fmt: skip
    figure.update_layout(
        xaxis={"title": {"text": "sequence length n (tokens)"}, "type": "log"},
        yaxis={"title": {"text": "peak extra memory (bytes)"}, "type": "log"},
    )
    title = (
        f"Peak extra memory of one attention call on this CPU "
        f"({dtype}, 1 head, head_dim {head_dim})"
    )
    return style(figure, title, width=900, height=540)


def hbm_traffic_figure(
    ns: Sequence[int], head_dim: int, sram_sizes: Sequence[int], dtype: str = "float16"
) -> go.Figure:
    """Log-log plot of bytes moved to and from main memory vs n, per head.

    One line for naive attention (:func:`naive_hbm_bytes`) and one for the tiled algorithm
    at each on-chip memory size in ``sram_sizes`` (bytes; :func:`tiled_hbm_bytes`).
    """
    if not ns or not sram_sizes:
        raise ValueError("ns and sram_sizes must each hold at least one value")
    figure = go.Figure()
    figure.add_scatter(
        x=list(ns), y=[naive_hbm_bytes(n, head_dim, dtype) for n in ns], mode="lines",
        name="naive: Q, K, V, O + write/read S and P", line={"color": "#d62728", "width": 3},
    )  # fmt: skip
    for sram in sram_sizes:
        blocks = flash_block_sizes(head_dim, sram, dtype)
        figure.add_scatter(
            x=list(ns), y=[tiled_hbm_bytes(n, head_dim, sram, dtype) for n in ns],
            mode="lines", name=f"tiled, M = {sram // KiB} KiB (block_q = {blocks.block_q})",
        )  # fmt: skip
    figure.update_layout(
        xaxis={"title": {"text": "sequence length n (tokens)"}, "type": "log"},
        yaxis={"title": {"text": "bytes read + written (bytes)"}, "type": "log"},
    )
    title = f"Main-memory traffic of one attention head ({dtype}, head_dim {head_dim})"
    return style(figure, title, width=900, height=520)


class ExactnessRow(NamedTuple):
    """Largest absolute differences for one setting (all are max |a - b| over the output).

    loops_vs_naive, vectorised_vs_naive: tiled vs naive attention, both in ``dtype``
    naive_vs_exact, loops_vs_exact, vectorised_vs_exact: each in ``dtype`` vs naive attention
    computed in float64 from the same inputs (the best available "exact" answer)
    """

    dtype: str
    causal: bool
    loops_vs_naive: float
    vectorised_vs_naive: float
    naive_vs_exact: float
    loops_vs_exact: float
    vectorised_vs_exact: float


def compare_with_naive(
    n: int = 1000,
    head_dim: int = 64,
    dtype: torch.dtype | str = "float32",
    causal: bool = False,
    heads: int = 2,
    block_q: int = 64,
    block_k: int = 64,
) -> ExactnessRow:
    """Run both tiled versions and naive attention on the same random inputs; report errors."""
    dtype = resolve_dtype(dtype)
    q64, k64, v64 = random_qkv(n, head_dim, "float64", heads)
    exact = naive_attention(q64, k64, v64, causal=causal).out
    q, k, v = q64.to(dtype), k64.to(dtype), v64.to(dtype)
    naive = naive_attention(q, k, v, causal=causal).out
    loops = tiled_attention_loops(q, k, v, causal=causal, block_q=block_q, block_k=block_k).out
    vectorised = tiled_attention(q, k, v, causal=causal, block_k=block_k).out

    def gap(a: torch.Tensor, b: torch.Tensor) -> float:
        return (a.double() - b.double()).abs().max().item()

    return ExactnessRow(
        str(dtype).removeprefix("torch."), causal, gap(loops, naive), gap(vectorised, naive),
        gap(naive, exact), gap(loops, exact), gap(vectorised, exact),
    )  # fmt: skip

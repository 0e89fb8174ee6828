"""Sparse attention (notebook 06): let each query see only some keys, and skip the rest.

A *pattern* says which (query i, key j) pairs may attend. It is written once, as a
function of two index tensors, ``allowed(q_idx, kv_idx) -> bool tensor`` (broadcasting),
the same shape of function as FlexAttention's ``mask_mod``. From it we derive

* the dense boolean mask (n x n, True = may attend), for small n and for pictures;
* the *block layout*: for tiles of ``block x block`` entries, which tiles hold at least one
  allowed entry (``tiles``; a kernel must visit them) and which hold only allowed entries
  (``full``; a kernel can skip the element mask there). The others are skipped: that is
  where sparse attention saves work;
* the work: visited tiles, FLOPs, and the fraction of the n x n matrix computed.

Patterns (all on one sequence of n tokens, query i, key j):

=====================  =============================================================
causal                 j <= i
sliding window (w)     i - w < j <= i       (Mistral: w keys, the token itself included)
dilated (w, r)         j <= i, (i - j) % r == 0, (i - j) < w · r  (w keys, every r-th)
local (radius)         |i - j| <= radius    (bidirectional band, Longformer/BigBird)
Longformer             local | i global | j global   (global tokens see and are seen by all)
BigBird                block-level: neighbouring blocks | global blocks | random blocks
=====================  =============================================================

``a & b`` and ``a | b`` compose patterns (intersection, union).

Conventions a learner meets elsewhere (converters below, in "conventions of other code"):

* The course's ``window`` counts *keys*, the query itself included, as Mistral's
  ``sliding_window`` does in mistral-inference (xformers' ``make_local_attention``, a
  rolling cache of ``sliding_window`` entries) and in Hugging Face transformers
  (``kv_idx > q_idx - sliding_window``). FlexAttention's examples and attention-gym write
  ``q_idx - kv_idx <= window_size``: a *distance*, window_size + 1 keys
  (:func:`window_keys_to_distance`, :func:`window_distance_to_keys`).
* The course's layout judges a tile by its entries inside the sequence, so a short
  (ragged) last tile can be full. FlexAttention's ``create_block_mask`` pads the mask with
  disallowed entries, so it marks every visited tile of a ragged last block partial
  (:func:`layout_to_flex`, :func:`layout_from_flex`). The tiles visited are the same.

The closed form for the tiles a causal sliding window visits (square tiles of b tokens,
T = ceil(n / b) query blocks, c = 1 + ceil((w - 1) / b) key blocks per query block once the
window is fully inside the sequence)::

    tiles(n, w, b) = Σ_{I=0}^{T-1} min(I + 1, c)  =  T(T+1)/2           if T <= c
                                                  =  c·T - c(c-1)/2     otherwise

That is ≈ (n / b)(1 + w / b) tiles of b² scores: O(n · w) work instead of O(n²).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from attn_course.figures import style
from attn_course.scores import naive_attention, validate_qkv
from attn_course.validate import check_count, check_positive, describe_value, resolve_scale

__all__ = [
    "PATTERN_NAMES",
    "BlockLayout",
    "SparsePattern",
    "WindowErrorRow",
    "WindowScalingRow",
    "bigbird_pattern",
    "blocked_sparse_attention",
    "causal_pattern",
    "dilated_pattern",
    "flex_attention_output",
    "flex_available",
    "flex_block_layout",
    "layout_from_flex",
    "layout_to_flex",
    "full_pattern",
    "local_pattern",
    "longformer_pattern",
    "lagged_qkv",
    "make_pattern",
    "measure_window_scaling",
    "mask_and",
    "mask_or",
    "mass_outside_mask",
    "sliding_window_pattern",
    "sliding_window_tiles",
    "window_error_curve",
    "window_distance_to_keys",
    "window_error_figure",
    "window_keys_to_distance",
    "window_scaling_figure",
]

MaskMod = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# --- patterns -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SparsePattern:
    """Which (query, key) pairs of a length-n sequence may attend.

    ``allowed(q_idx, kv_idx)`` takes two integer tensors that broadcast against each other
    and returns a bool tensor of their broadcast shape, True where query q_idx may attend
    key kv_idx. ``name`` is a short description for titles.
    """

    n: int
    allowed: MaskMod
    name: str

    def dense_mask(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """The (n, n) bool mask, True = may attend. n² bytes: for small n."""
        idx = torch.arange(self.n, device=device)
        return self.allowed(idx[:, None], idx[None, :]).expand(self.n, self.n).clone()

    def density(self) -> float:
        """Fraction of the n² (query, key) pairs that are allowed (builds the dense mask)."""
        return self.dense_mask().float().mean().item()

    def layout(self, block: int) -> BlockLayout:
        """The block layout for square tiles of ``block`` x ``block`` (see :class:`BlockLayout`).

        Evaluates ``allowed`` a band of query blocks at a time (about 4 million entries, a
        few MB), so it works even when the n x n mask would not fit; time O(n²).
        """
        block = check_count("block", block)
        blocks = math.ceil(self.n / block)
        padded = blocks * block
        tiles = torch.zeros(blocks, blocks, dtype=torch.bool)
        full = torch.zeros(blocks, blocks, dtype=torch.bool)
        cols = torch.arange(padded)
        band = max(1, (1 << 22) // max(1, block * padded))  # query blocks per band
        for first in range(0, blocks, band):
            last = min(blocks, first + band)
            rows = torch.arange(first * block, last * block)
            ok = self.allowed(rows[:, None], cols[None, :]).expand(len(rows), padded)
            inside = (rows[:, None] < self.n) & (cols[None, :] < self.n)
            # A tile is non-empty if any real entry is allowed; full if every real entry is.
            any_ok = (ok & inside).reshape(last - first, block, blocks, block)
            all_ok = (ok | ~inside).reshape(last - first, block, blocks, block)
            tiles[first:last] = any_ok.any(dim=3).any(dim=1)
            full[first:last] = all_ok.all(dim=3).all(dim=1)
        return BlockLayout(self.n, block, tiles, full & tiles)

    def flex_mask_mod(self) -> Callable[..., torch.Tensor]:
        """This pattern as a FlexAttention ``mask_mod(b, h, q_idx, kv_idx)``."""

        def mask_mod(b: Any, h: Any, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
            return self.allowed(q_idx, kv_idx)

        return mask_mod

    def __and__(self, other: SparsePattern) -> SparsePattern:
        return mask_and(self, other)

    def __or__(self, other: SparsePattern) -> SparsePattern:
        return mask_or(self, other)


def _check_same_n(patterns: Sequence[SparsePattern]) -> int:
    if not patterns or not all(isinstance(p, SparsePattern) for p in patterns):
        raise ValueError("patterns must be one or more SparsePattern objects")
    sizes = {p.n for p in patterns}
    if len(sizes) != 1:
        raise ValueError(f"patterns must all have the same n to be combined, got {sorted(sizes)}")
    return patterns[0].n


def mask_and(*patterns: SparsePattern) -> SparsePattern:
    """Pairs allowed by every pattern (e.g. a local band & causal = a sliding window)."""
    n = _check_same_n(patterns)

    def allowed(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        result = patterns[0].allowed(q, k)
        for p in patterns[1:]:
            result = result & p.allowed(q, k)
        return result

    return SparsePattern(n, allowed, " & ".join(p.name for p in patterns))


def mask_or(*patterns: SparsePattern) -> SparsePattern:
    """Pairs allowed by at least one pattern (e.g. a window | a few global tokens)."""
    n = _check_same_n(patterns)

    def allowed(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        result = patterns[0].allowed(q, k)
        for p in patterns[1:]:
            result = result | p.allowed(q, k)
        return result

    return SparsePattern(n, allowed, " | ".join(p.name for p in patterns))


def full_pattern(n: int) -> SparsePattern:
    """Every pair allowed: dense attention, the baseline."""
    n = check_count("n", n)
    return SparsePattern(n, lambda q, k: (q >= 0) & (k >= 0), "full")


def causal_pattern(n: int) -> SparsePattern:
    """j <= i (the mask of :func:`attn_course.scores.causal_mask`)."""
    n = check_count("n", n)
    return SparsePattern(n, lambda q, k: k <= q, "causal")


def sliding_window_pattern(n: int, window: int) -> SparsePattern:
    """Mistral-style causal sliding window: query i sees keys i - window + 1 .. i.

    ``window`` counts the keys each query sees, itself included (window=1: only itself);
    window >= n is plain causal attention.
    """
    n, window = check_count("n", n), check_count("window", window)
    return SparsePattern(n, lambda q, k: (k <= q) & (q - k < window), f"sliding window {window}")


def dilated_pattern(n: int, window: int, dilation: int) -> SparsePattern:
    """Causal dilated (strided) window: keys i, i - r, i - 2r, ..., ``window`` of them.

    ``dilation`` r = 1 is the sliding window; r > 1 reaches r times further with the same
    number of keys (Longformer's dilated heads, the "strided" pattern of Sparse Transformers).
    """
    n, window = check_count("n", n), check_count("window", window)
    dilation = check_count("dilation", dilation)

    def allowed(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        back = q - k
        return (back >= 0) & (back % dilation == 0) & (back < window * dilation)

    return SparsePattern(n, allowed, f"dilated window {window}, dilation {dilation}")


def local_pattern(n: int, radius: int) -> SparsePattern:
    """Bidirectional band |i - j| <= radius: 2·radius + 1 keys per query (encoders)."""
    n, radius = check_count("n", n), check_count("radius", radius, minimum=0)
    return SparsePattern(n, lambda q, k: (q - k).abs() <= radius, f"local radius {radius}")


def _check_global_tokens(global_tokens: Sequence[int], n: int) -> tuple[int, ...]:
    if isinstance(global_tokens, str | bytes) or not isinstance(global_tokens, Sequence):
        raise ValueError(
            "global_tokens must be a sequence of token indices, "
            f"got {describe_value(global_tokens)}"
        )
    for t in global_tokens:
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < n:
            raise ValueError(f"global_tokens must hold integers in [0, {n - 1}], got {t!r}")
    return tuple(sorted(set(global_tokens)))


def longformer_pattern(n: int, radius: int, global_tokens: Sequence[int] = (0,)) -> SparsePattern:
    """Longformer: a local band |i - j| <= radius, plus global tokens.

    A global token (e.g. [CLS], or the question tokens in QA) attends to every key and every
    query attends to it: its row and its column are all True. Global g tokens add ~2·g·n
    pairs, still linear in n.
    """
    n, radius = check_count("n", n), check_count("radius", radius, minimum=0)
    globals_ = torch.tensor(_check_global_tokens(global_tokens, n), dtype=torch.long)
    is_global = torch.zeros(n, dtype=torch.bool)
    is_global[globals_] = True

    def allowed(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        table = is_global.to(q.device)
        # clamp: padded indices (>= n) of a layout band read a valid entry; they are
        # masked out as "outside the sequence" anyway.
        return ((q - k).abs() <= radius) | table[q.clamp(0, n - 1)] | table[k.clamp(0, n - 1)]

    return SparsePattern(n, allowed, f"Longformer radius {radius}, {len(globals_)} global")


def bigbird_pattern(
    n: int,
    block: int,
    window_blocks: int = 1,
    global_blocks: int = 1,
    random_blocks: int = 1,
    seed: int = 0,
) -> SparsePattern:
    """BigBird, at the granularity of blocks of ``block`` tokens (as BigBird's own kernel).

    Query block I attends key block J when |I - J| <= window_blocks (sliding blocks), when I
    or J is one of the first ``global_blocks`` blocks (global), or when J is one of the
    ``random_blocks`` key blocks drawn for I (uniformly, without replacement, seeded, among
    the blocks not already attended). Every tile is then either full or empty.
    """
    n, block = check_count("n", n), check_count("block", block)
    window_blocks = check_count("window_blocks", window_blocks, minimum=0)
    global_blocks = check_count("global_blocks", global_blocks, minimum=0)
    random_blocks = check_count("random_blocks", random_blocks, minimum=0)
    seed = check_count("seed", seed, minimum=0)
    blocks = math.ceil(n / block)
    index = torch.arange(blocks)
    table = (index[:, None] - index[None, :]).abs() <= window_blocks
    table |= (index[:, None] < global_blocks) | (index[None, :] < global_blocks)
    generator = torch.Generator().manual_seed(seed)
    for row in range(blocks):
        free = (~table[row]).nonzero().flatten()
        pick = free[torch.randperm(len(free), generator=generator)[:random_blocks]]
        table[row, pick] = True

    def allowed(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        t = table.to(q.device)
        return t[(q // block).clamp(0, blocks - 1), (k // block).clamp(0, blocks - 1)]

    name = f"BigBird {window_blocks}+{global_blocks}+{random_blocks} blocks of {block}"
    return SparsePattern(n, allowed, name)


#: The patterns :func:`make_pattern` (and the explorer) know, by name.
PATTERN_NAMES = ("full", "causal", "sliding window", "dilated", "Longformer", "BigBird")


def make_pattern(
    name: str,
    n: int,
    *,
    window: int = 8,
    dilation: int = 2,
    global_tokens: int = 1,
    random_blocks: int = 1,
    block: int = 8,
    seed: int = 0,
) -> SparsePattern:
    """One of :data:`PATTERN_NAMES` from a few common knobs (what the explorer's widgets set).

    ``window``: keys per query (sliding window, dilated); for Longformer the radius is
    window // 2 (so about ``window`` keys per query) with the first ``global_tokens`` tokens
    global; for BigBird window // block neighbouring blocks each side (at least 1),
    ceil(global_tokens / block) global blocks, ``random_blocks`` random blocks.
    """
    # Every option is checked, even those the chosen pattern ignores: a typo is a typo.
    for option, value in (("window", window), ("dilation", dilation), ("block", block)):
        check_count(option, value)
    for option, value in (("global_tokens", global_tokens), ("random_blocks", random_blocks),
                          ("seed", seed)):  # fmt: skip
        check_count(option, value, minimum=0)
    if name == "full":
        return full_pattern(n)
    if name == "causal":
        return causal_pattern(n)
    if name == "sliding window":
        return sliding_window_pattern(n, window)
    if name == "dilated":
        return dilated_pattern(n, window, dilation)
    if name == "Longformer":
        return longformer_pattern(n, window // 2, list(range(min(global_tokens, n))))
    if name == "BigBird":
        return bigbird_pattern(
            n, block, max(1, window // block), math.ceil(global_tokens / block), random_blocks,
            seed,
        )  # fmt: skip
    raise ValueError(f"name must be one of {PATTERN_NAMES}, got {name!r}")


# --- block layouts and their cost ---------------------------------------------------------


@dataclass(frozen=True)
class BlockLayout:
    """Which ``block x block`` tiles of the n x n score matrix a sparse kernel visits.

    tiles: (T, T) bool, T = ceil(n / block): the tile holds at least one allowed entry
    full:  (T, T) bool: every entry of the tile (inside the sequence) is allowed, so the
           kernel needs no element mask there; full implies tiles. ``partial`` = tiles & ~full.
    """

    n: int
    block: int
    tiles: torch.Tensor
    full: torch.Tensor

    @property
    def blocks(self) -> int:
        return self.tiles.shape[0]

    @property
    def partial(self) -> torch.Tensor:
        return self.tiles & ~self.full

    @property
    def visited_tiles(self) -> int:
        return int(self.tiles.sum())

    @property
    def full_tiles(self) -> int:
        return int(self.full.sum())

    @property
    def partial_tiles(self) -> int:
        return int(self.partial.sum())

    def tile_sizes(self) -> torch.Tensor:
        """(T,) number of tokens in each block (the last one may be short)."""
        starts = torch.arange(self.blocks) * self.block
        return (self.n - starts).clamp(max=self.block)

    def computed_entries(self) -> int:
        """Scores a kernel computes: the entries of the visited tiles (edge tiles are smaller)."""
        sizes = self.tile_sizes()
        return int((self.tiles * sizes[:, None] * sizes[None, :]).sum())

    def computed_fraction(self) -> float:
        """computed_entries / n²: the share of the dense work that is done."""
        return self.computed_entries() / self.n**2

    def flops(self, head_dim: int, batch: int = 1, heads: int = 1) -> int:
        """Matmul FLOPs of the visited tiles: 4 · head_dim per computed score (QKᵀ and PV,
        one multiply and one add each), times batch · heads. Dense attention: 4 n² d."""
        head_dim = check_count("head_dim", head_dim)
        return 4 * head_dim * self.computed_entries() * batch * heads

    def kv_lists(self, which: str = "partial") -> tuple[torch.Tensor, torch.Tensor]:
        """FlexAttention-style compact lists: ``(num_blocks (T,), indices (T, T))`` int32.

        Row I of ``indices`` lists the key blocks of ``which`` ("partial", "full" or
        "tiles") tiles of query block I in increasing order, then padding; a kernel reads
        only the first num_blocks[I] entries.
        """
        chosen = {"partial": self.partial, "full": self.full, "tiles": self.tiles}
        if which not in chosen:
            raise ValueError(f"which must be one of {sorted(chosen)}, got {which!r}")
        table = chosen[which]
        counts = table.sum(dim=1).to(torch.int32)
        # A stable sort of "not in the list" puts the listed blocks first, in order.
        indices = torch.sort((~table).to(torch.int8), dim=1, stable=True).indices
        return counts, indices.to(torch.int32).contiguous()


def sliding_window_tiles(n: int, window: int, block: int) -> int:
    """Closed-form count of the tiles a causal sliding window visits (module docstring).

    T = ceil(n / block) query blocks; a query block I sees key blocks from
    floor(max(0, I·block - window + 1) / block) to I, i.e. min(I + 1, c) of them with
    c = 1 + ceil((window - 1) / block).
    """
    n, window = check_count("n", n), check_count("window", window)
    block = check_count("block", block)
    t = math.ceil(n / block)
    c = 1 + math.ceil((window - 1) / block)
    if t <= c:
        return t * (t + 1) // 2
    return c * t - c * (c - 1) // 2


# --- conventions of other code ------------------------------------------------------------


def window_keys_to_distance(window: int) -> int:
    """The course's ``window`` (keys per query, itself included) as a look-back distance.

    Rule: query i sees keys j with 0 <= i - j <= window - 1, so the ``window_size`` of
    FlexAttention's examples and attention-gym (``q_idx - kv_idx <= window_size``, with
    causal) is window - 1. window >= 1; the result is >= 0.
    """
    return check_count("window", window) - 1


def window_distance_to_keys(window_size: int) -> int:
    """A look-back distance ``window_size`` (``q_idx - kv_idx <= window_size``) as keys.

    Rule: distances 0, 1, ..., window_size are allowed, so the query sees window_size + 1
    keys: the course's ``window``. window_size >= 0; the result is >= 1.
    """
    return check_count("window_size", window_size, minimum=0) + 1


def _complete_blocks(layout: BlockLayout) -> torch.Tensor:
    """(T,) bool: True where the block holds ``block`` tokens (only the last can be short)."""
    return layout.tile_sizes() == layout.block


def layout_to_flex(layout: BlockLayout) -> BlockLayout:
    """The course's layout classified as FlexAttention's ``create_block_mask`` does.

    Rule: create_block_mask pads the mask to whole tiles with disallowed entries, so a tile
    is full only when all block² entries are allowed: full_flex = full & (query block
    complete) & (key block complete). The visited tiles do not change; every visited tile
    of a ragged last block row or column becomes partial. When block divides n, the two
    layouts are equal.
    """
    if not isinstance(layout, BlockLayout):
        raise ValueError(f"layout must be a BlockLayout, got {describe_value(layout)}")
    complete = _complete_blocks(layout)
    full = layout.full & complete[:, None] & complete[None, :]
    return BlockLayout(layout.n, layout.block, layout.tiles.clone(), full)


def _all_per_block(ok: torch.Tensor, block: int, blocks: int) -> torch.Tensor:
    """(blocks,) bool: ok (rows, n) is True on every row for every column of the block."""
    padded = torch.ones(ok.shape[0], blocks * block, dtype=torch.bool)
    padded[:, : ok.shape[1]] = ok
    return padded.reshape(ok.shape[0], blocks, block).all(dim=2).all(dim=0)


def layout_from_flex(flex: BlockLayout, pattern: SparsePattern) -> BlockLayout:
    """FlexAttention's classification (:func:`flex_block_layout`) back to the course's.

    Rule: only the tiles of a ragged last block can differ, so only they are judged again,
    by their entries inside the sequence: a visited tile there is full when every such
    entry is allowed. That evaluates ``pattern`` on the last block's rows and columns,
    O(n · block) entries, never the n x n mask. Inverse of :func:`layout_to_flex`.
    """
    if not isinstance(flex, BlockLayout):
        raise ValueError(f"flex must be a BlockLayout, got {describe_value(flex)}")
    if not isinstance(pattern, SparsePattern) or pattern.n != flex.n:
        raise ValueError(f"pattern must be a SparsePattern with n = flex.n = {flex.n}, "
                         f"got {describe_value(pattern)}")  # fmt: skip
    n, block, last = flex.n, flex.block, flex.blocks - 1
    full = flex.full.clone()
    if bool(_complete_blocks(flex)[last]):
        return BlockLayout(n, block, flex.tiles.clone(), full)
    every, edge = torch.arange(n), torch.arange(last * block, n)
    row = pattern.allowed(edge[:, None], every[None, :]).expand(len(edge), n)
    column = pattern.allowed(every[:, None], edge[None, :]).expand(n, len(edge))
    full[last, :] = _all_per_block(row, block, flex.blocks)
    full[:, last] = _all_per_block(column.T, block, flex.blocks)
    return BlockLayout(n, block, flex.tiles.clone(), full & flex.tiles)


# --- attention that visits only the tiles of a layout (torch, for measuring) ---------------


def blocked_sparse_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    pattern: SparsePattern,
    block: int,
    *,
    layout: BlockLayout | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """Attention restricted to ``pattern``, computing only the tiles of its block layout.

    q, k, v: (..., n, head_dim) with n = pattern.n. Per query block, the key blocks of the
    layout are gathered into one short (block x visited·block) score tile, the element mask
    is applied there (``pattern.allowed`` on those indices only), then softmax and P·V.
    Work and memory: O(visited tiles · block² · head_dim), never n². A row with no allowed
    key gets zeros. ``layout`` can be passed to reuse one computed earlier.
    """
    validate_qkv(q, k, v)
    n, head_dim = q.shape[-2], q.shape[-1]
    if n != pattern.n or k.shape[-2] != n:
        raise ValueError(
            f"q and k must have n = pattern.n = {pattern.n} rows, got {n} and {k.shape[-2]}"
        )
    block = check_count("block", block)
    layout = layout or pattern.layout(block)
    if layout.block != block or layout.n != n:
        raise ValueError(f"layout is for n={layout.n}, block={layout.block}; need {n}, {block}")
    scale = resolve_scale(scale, head_dim)
    out = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=q.dtype, device=q.device)
    counts, indices = layout.kv_lists("tiles")
    offsets = torch.arange(block)
    for i in range(layout.blocks):
        rows = torch.arange(i * block, min(n, (i + 1) * block))
        key_blocks = indices[i, : counts[i]].long()
        if len(key_blocks) == 0:
            continue  # no allowed key: the output rows stay 0
        cols = (key_blocks[:, None] * block + offsets[None, :]).flatten()
        cols = cols[cols < n]
        scores = q[..., rows, :] @ k[..., cols, :].transpose(-2, -1) * scale
        blocked = ~pattern.allowed(rows[:, None], cols[None, :])
        scores = scores.masked_fill(blocked, float("-inf"))
        row_max = scores.amax(dim=-1, keepdim=True)
        row_max = row_max.masked_fill(row_max == float("-inf"), 0.0)  # empty row: 0, not NaN
        weights = (scores - row_max).exp()
        total = weights.sum(dim=-1, keepdim=True)
        out[..., rows, :] = (weights @ v[..., cols, :]) / total.masked_fill(total == 0, 1.0)
    return out


# --- what a sparse pattern misses -----------------------------------------------------------


def mass_outside_mask(probs: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean over rows of the softmax probability that full attention puts where mask is False.

    probs: (..., n_q, n_k) rows of full (unmasked) attention, each summing to 1;
    mask: broadcastable bool, True = kept. 0 = the pattern keeps everything that mattered.
    """
    if not isinstance(probs, torch.Tensor) or not isinstance(mask, torch.Tensor):
        raise ValueError("probs and mask must be tensors")
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor (True = kept), got {mask.dtype}")
    outside = (probs * (~mask)).sum(dim=-1)
    return outside.mean().item()


class WindowErrorRow(NamedTuple):
    """One window size: mass of full attention outside the window, and the output error.

    relative_error = ‖O_window − O_full‖ / ‖O_full‖ (Frobenius norms over all rows and heads).
    """

    window: int
    density: float
    mass_outside: float
    relative_error: float


def window_error_curve(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, windows: Sequence[int]
) -> list[WindowErrorRow]:
    """For each causal sliding window w: what full causal attention loses when cut to w keys.

    q, k, v: (..., n, head_dim). The reference is causal attention (window = n).
    """
    validate_qkv(q, k, v)
    n = q.shape[-2]
    if not windows:
        raise ValueError("windows must list at least one window size")
    full = naive_attention(q, k, v, causal=True)
    rows = []
    for w in windows:
        pattern = sliding_window_pattern(n, w)
        mask = pattern.dense_mask(q.device)
        out = naive_attention(q, k, v, mask=mask).out
        error = (out - full.out).norm() / full.out.norm()
        rows.append(
            WindowErrorRow(w, pattern.density(), mass_outside_mask(full.probs, mask), error.item())
        )
    return rows


def lagged_qkv(
    n: int, lags: Sequence[int], head_dim: int = 64, gain: float = 12.0, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A synthetic long-range task: head h makes query i look for the key ``lags[h]`` back.

    Keys are random unit vectors; q_i = a · k_{i - lag} (q_i = a · k_i when i < lag), with
    a = gain · √head_dim so that the matching score is ``gain`` after the 1/√d scaling and
    the others are ~ N(0, gain² / head_dim). Values are random. Shapes (1, heads, n, d),
    float64. A causal window of w keys contains the target only when w > lag.
    """
    n, head_dim = check_count("n", n), check_count("head_dim", head_dim)
    if not lags:
        raise ValueError("lags must list at least one lag (one head per lag)")
    for lag in lags:
        check_count("lag", lag, minimum=0)
    gain = check_positive("gain", gain)
    generator = torch.Generator().manual_seed(check_count("seed", seed, minimum=0))
    heads = len(lags)
    keys = torch.randn(1, heads, n, head_dim, generator=generator, dtype=torch.float64)
    keys = keys / keys.norm(dim=-1, keepdim=True)
    values = torch.randn(1, heads, n, head_dim, generator=generator, dtype=torch.float64)
    positions = torch.arange(n)
    queries = torch.empty_like(keys)
    for h, lag in enumerate(lags):
        target = torch.where(positions >= lag, positions - lag, positions)
        queries[0, h] = gain * math.sqrt(head_dim) * keys[0, h, target]
    return queries, keys, values


# --- FlexAttention ----------------------------------------------------------------------------


def flex_available() -> tuple[bool, str]:
    """(True, "") when torch.nn.attention.flex_attention can be imported, else (False, why)."""
    # FlexAttention imports triton. Triton decides when triton.language is first imported
    # whether its own helpers (tl.zeros, ...) are interpreted, so the course's kernel mode
    # (attn_course.triton_mode: TRITON_INTERPRET=1 without a GPU) must be set first, or
    # the course's Triton kernels fail later in the same process.
    import attn_course.triton_mode  # noqa: F401

    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention  # noqa: F401
    except ImportError as error:
        return False, f"torch {torch.__version__} has no FlexAttention: {error}"
    return True, ""


def _block_mask(pattern: SparsePattern, block: int, device: torch.device | str) -> Any:
    from torch.nn.attention.flex_attention import create_block_mask

    return create_block_mask(
        pattern.flex_mask_mod(), None, None, pattern.n, pattern.n, device=str(device),
        BLOCK_SIZE=block,
    )  # fmt: skip


def flex_block_layout(
    pattern: SparsePattern, block: int, device: torch.device | str = "cpu"
) -> BlockLayout:
    """The layout FlexAttention's ``create_block_mask`` builds for ``pattern``, as a BlockLayout.

    FlexAttention keeps, per query block, the key blocks of partial tiles
    (``kv_num_blocks``, ``kv_indices``) and of full tiles (``full_kv_num_blocks``,
    ``full_kv_indices``). When ``block`` does not divide n, FlexAttention pads the mask
    with disallowed entries, so a ragged last block's tiles are partial here where the
    course's layout can call them full: :func:`layout_to_flex` and
    :func:`layout_from_flex` convert. The visited tiles are the same either way.
    """
    ok, why = flex_available()
    if not ok:
        raise RuntimeError(why)
    block = check_count("block", block)
    mask = _block_mask(pattern, block, device)
    blocks = math.ceil(pattern.n / block)

    def table(counts: torch.Tensor | None, indices: torch.Tensor | None) -> torch.Tensor:
        result = torch.zeros(blocks, blocks, dtype=torch.bool)
        if counts is None:
            return result
        counts, indices = counts[0, 0].cpu(), indices[0, 0].cpu()
        for row in range(blocks):
            result[row, indices[row, : counts[row]].long()] = True
        return result

    partial = table(mask.kv_num_blocks, mask.kv_indices)
    full = table(mask.full_kv_num_blocks, mask.full_kv_indices)
    return BlockLayout(pattern.n, block, partial | full, full)


def flex_attention_output(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pattern: SparsePattern, block: int = 128
) -> torch.Tensor:
    """FlexAttention (eager, un-compiled) with ``pattern`` as its block mask.

    Eager FlexAttention on the CPU computes the full score matrix and masks it (it warns
    about that); it is a correctness reference here, not a fast path. Compile it
    (``torch.compile(flex_attention)``) on a GPU to get a kernel that skips empty tiles.
    """
    import warnings

    ok, why = flex_available()
    if not ok:
        raise RuntimeError(why)
    from torch.nn.attention.flex_attention import flex_attention

    mask = _block_mask(pattern, block, q.device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile")
        return flex_attention(q, k, v, block_mask=mask)


# --- measurement: work and time of a sliding window vs dense attention ---------------------


class WindowScalingRow(NamedTuple):
    """One n: tiles and FLOPs of a causal sliding window (counted and by formula), and time.

    seconds: fastest run of :func:`blocked_sparse_attention` (window); dense_seconds: of
    naive causal attention (None above ``dense_max_n``). FLOPs for one head.
    """

    n: int
    tiles: int
    formula_tiles: int
    flops: int
    dense_flops: int
    seconds: float
    dense_seconds: float | None


def measure_window_scaling(
    ns: Sequence[int],
    window: int,
    block: int,
    head_dim: int = 64,
    dense_max_n: int = 4096,
    progress: bool = False,
) -> list[WindowScalingRow]:
    """Time a blocked sliding-window attention and dense causal attention at every n.

    The tile count is counted from the pattern's layout and compared with
    :func:`sliding_window_tiles`; the FLOPs are those of the visited tiles
    (:meth:`BlockLayout.flops`) against 4 n² d for dense attention.
    """
    from attn_course.measure import random_qkv, time_call

    if not ns:
        raise ValueError("ns must list at least one sequence length")
    sizes: Any = ns
    if progress:
        from tqdm.auto import tqdm

        sizes = tqdm(ns, desc="window vs dense", unit="size")
    rows = []
    for n in sizes:
        pattern = sliding_window_pattern(n, window)
        layout = pattern.layout(block)
        q, k, v = random_qkv(n, head_dim)
        seconds = time_call(
            lambda q=q, k=k, v=v, p=pattern, lay=layout: blocked_sparse_attention(
                q, k, v, p, block, layout=lay
            ),
            repeats=5,  # the fastest of 5: noise on a shared machine only adds time
        )
        dense = None
        if n <= dense_max_n:
            dense = time_call(
                lambda q=q, k=k, v=v: naive_attention(q, k, v, causal=True), repeats=5
            )
        rows.append(
            WindowScalingRow(
                n, layout.visited_tiles, sliding_window_tiles(n, window, block),
                layout.flops(head_dim), 4 * n * n * head_dim, seconds, dense,
            )
        )  # fmt: skip
    return rows


def window_scaling_figure(rows: Sequence[WindowScalingRow], window: int) -> go.Figure:
    """Two log-log panels: FLOPs vs n and time vs n, sliding window against dense."""
    figure = make_subplots(
        rows=1, cols=2, horizontal_spacing=0.12,
        subplot_titles=("work (FLOPs, one head)", "time (CPU, one head)"),
    )  # fmt: skip
    ns = [r.n for r in rows]
    figure.add_scatter(x=ns, y=[r.flops for r in rows], name=f"window {window}: FLOPs",
                       mode="lines+markers", row=1, col=1)  # fmt: skip
    figure.add_scatter(x=ns, y=[r.dense_flops for r in rows], name="dense: 4 n² d FLOPs",
                       mode="lines+markers", row=1, col=1)  # fmt: skip
    figure.add_scatter(x=ns, y=[r.seconds for r in rows], name=f"window {window}: time",
                       mode="lines+markers", row=1, col=2)  # fmt: skip
    dense = [(r.n, r.dense_seconds) for r in rows if r.dense_seconds is not None]
    figure.add_scatter(x=[n for n, _ in dense], y=[s for _, s in dense],
                       name="dense causal: time", mode="lines+markers", row=1, col=2)  # fmt: skip
    for col, title in ((1, "FLOPs (floating-point operations)"), (2, "time per call (s)")):
        figure.update_xaxes(type="log", title_text="sequence length n (tokens)", row=1, col=col)
        figure.update_yaxes(type="log", title_text=title, row=1, col=col)
    title = f"Sliding window ({window} keys) vs dense attention"
    return style(figure, title, width=960, height=460)


def window_error_figure(curves: dict[str, Sequence[WindowErrorRow]]) -> go.Figure:
    """Two panels against the window size: mass outside the window, and the output error.

    ``curves`` maps a label (a head) to its :func:`window_error_curve` rows.
    """
    if not curves:
        raise ValueError("curves must hold at least one labelled curve")
    figure = make_subplots(
        rows=1, cols=2, horizontal_spacing=0.12,
        subplot_titles=("softmax mass outside the window", "error of the output"),
    )  # fmt: skip
    for label, rows in curves.items():
        windows = [r.window for r in rows]
        figure.add_scatter(x=windows, y=[r.mass_outside for r in rows], name=label,
                           legendgroup=label, mode="lines+markers", row=1, col=1)  # fmt: skip
        figure.add_scatter(x=windows, y=[r.relative_error for r in rows], name=label,
                           legendgroup=label, showlegend=False, mode="lines+markers",
                           row=1, col=2)  # fmt: skip
    for col in (1, 2):
        figure.update_xaxes(type="log", title_text="window w (keys per query)", row=1, col=col)
    figure.update_yaxes(title_text="mean mass outside (fraction of 1)", row=1, col=1)
    figure.update_yaxes(title_text="‖O_w − O‖ / ‖O‖ (no unit)", row=1, col=2)
    return style(figure, "What a sliding window misses", width=960, height=440)

"""Split-K decode (FlashDecoding): split a long context over programs, merge with logsumexps.

At decode time a sequence contributes one query token per head. The paged-decode kernel of
notebook 07 (:mod:`attn_course.kernels.paged`) gives each (sequence, query head) one
program that walks the whole context: at batch 1 that is ``heads`` programs (32 for
Llama-3-8B) on a GPU of 132 SMs (an H100), and each of them reads ⌈context / block⌉ blocks
one after another. FlashDecoding (Dao, Haziza, Massa and Sizov, 2023, "Flash-Decoding for
long-context inference", PyTorch blog / Stanford CRFM) cuts the context into ``splits``
ranges, lets one program attend over each range, and merges the partial results.

The merge is exact because each partial result carries its logsumexp. For a range R of
keys with scaled scores s_j = q·k_j·scale::

    lse_R = log Σ_{j∈R} e^{s_j}            o_R = Σ_{j∈R} e^{s_j - lse_R} v_j

and for two disjoint ranges A, B (:func:`merge_partials`)::

    lse = log(e^{lse_A} + e^{lse_B})       o = e^{lse_A - lse} o_A + e^{lse_B - lse} o_B

which is the attention over A ∪ B. It is notebook 03's online softmax with the state
(m, ℓ, acc) written as (lse, o): there lse = m + log ℓ and o = acc / ℓ, and folding a tile
into the state is merging its partial result into the running one.

This module is the torch maths, float32 (float64 stays float64):

* :func:`partial_attention`, :func:`merge_partials`, :func:`merge_many`;
* :func:`split_ranges`: which tokens each split owns (whole blocks, balanced);
* :func:`split_decode_reference`: paged decode computed split by split and merged, the
  reference of :func:`attn_course.kernels.splitk.split_decode`;
* :data:`SM_COUNTS`, :func:`decode_grid_rows` and :func:`busy_sm_figure`: the launch-grid
  arithmetic of why splitting matters at small batch, on the course's hardware presets.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import plotly.graph_objects as go
import torch

from attn_course.figures import style
from attn_course.kvcache import paged_decode_grid_cost, splits_to_fill
from attn_course.paged import blocks_needed, validate_paged_inputs
from attn_course.presets import get_hardware, get_model
from attn_course.validate import check_count, check_loop_size, describe_value, resolve_scale

__all__ = [
    "SM_COUNTS",
    "SM_COUNT_SOURCES",
    "busy_sm_figure",
    "decode_grid_rows",
    "merge_many",
    "merge_partials",
    "partial_attention",
    "sm_count",
    "split_decode_reference",
    "split_ranges",
]


# --- partial results and their merge ------------------------------------------------------


def _work_dtype(t: torch.Tensor) -> torch.dtype:
    """float32, or float64 for float64 input: the dtype the maths runs in."""
    return torch.promote_types(t.dtype, torch.float32)


def partial_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of one query token over a range of keys, with the range's logsumexp.

    q: ``(heads, head_dim)``; k, v: ``(n, kv_heads, head_dim)``; query head h reads key/value
    head ``h // (heads // kv_heads)`` (GQA, as :func:`attn_course.paged.dense_decode_attention`).
    With s_j = q·k_j·scale (scale defaults to 1/√head_dim) returns ``(o, lse)``:
    ``o = Σ_j softmax(s)_j v_j`` (normalised), ``(heads, head_dim)``, and
    ``lse = log Σ_j e^{s_j}`` in natural-log units, ``(heads,)``. An empty range (n = 0)
    gives o = 0 and lse = -inf, the logsumexp of no terms, so that merging it changes nothing.
    Computed in float32 (float64 for float64 input).
    """
    _check_partial_shapes(q, k, v)
    heads, head_dim = q.shape
    scale = resolve_scale(scale, head_dim)
    work = _work_dtype(q)
    if k.shape[0] == 0:
        lse = torch.full((heads,), float("-inf"), dtype=work, device=q.device)
        return torch.zeros(heads, head_dim, dtype=work, device=q.device), lse
    group = heads // k.shape[1]
    k = k.to(work).repeat_interleave(group, dim=1)  # (n, heads, head_dim)
    v = v.to(work).repeat_interleave(group, dim=1)
    scores = torch.einsum("hd,nhd->hn", q.to(work), k) * scale
    return torch.einsum("hn,nhd->hd", scores.softmax(dim=-1), v), scores.logsumexp(dim=-1)


def _check_partial_shapes(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    for name, t, dims in (("q", q, 2), ("k", k, 3), ("v", v, 3)):
        if not isinstance(t, torch.Tensor) or t.dim() != dims or not t.is_floating_point():
            raise ValueError(
                f"{name} must be a float tensor with {dims} dims, got {describe_value(t)}"
            )
    if k.shape != v.shape or k.shape[2] != q.shape[1]:
        raise ValueError(
            f"k and v must have shape (n, kv_heads, head_dim={q.shape[1]}), "
            f"got {tuple(k.shape)} and {tuple(v.shape)}"
        )
    if k.shape[1] < 1 or q.shape[0] % k.shape[1]:
        raise ValueError(f"kv_heads ({k.shape[1]}) must be >= 1 and divide heads ({q.shape[0]})")


def merge_partials(
    o1: torch.Tensor, lse1: torch.Tensor, o2: torch.Tensor, lse2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge the partial attentions of two disjoint key ranges into theirs together.

    ``lse = log(e^{lse1} + e^{lse2})``, ``o = e^{lse1 - lse} o1 + e^{lse2 - lse} o2``: the two
    softmaxes were normalised by e^{lse1} and e^{lse2}; the weights put them over the common
    denominator e^{lse}. This is notebook 03's online-softmax update: with m = max(lse1, lse2)
    both exponents are taken relative to m first (no overflow), exactly as the running
    maximum rescales (acc, ℓ) there. Shapes: o ``(..., head_dim)``, lse ``o.shape[:-1]``.
    An lse of -inf (an empty range) gets weight 0; both -inf gives o = 0, lse = -inf, no NaN.
    Commutative and associative (up to rounding), so any order of merges gives one result.
    """
    _check_partials("o1", o1, "lse1", lse1)
    _check_partials("o2", o2, "lse2", lse2)
    if o1.shape != o2.shape:
        raise ValueError(f"o1 and o2 must have one shape, got {tuple(o1.shape)}, {tuple(o2.shape)}")
    return merge_many(torch.stack([o1, o2]), torch.stack([lse1, lse2]))


def _check_partials(o_name: str, o: torch.Tensor, lse_name: str, lse: torch.Tensor) -> None:
    for name, t in ((o_name, o), (lse_name, lse)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise ValueError(f"{name} must be a float tensor, got {describe_value(t)}")
    if o.dim() < 1 or lse.shape != o.shape[:-1]:
        raise ValueError(
            f"{lse_name} must have the shape of {o_name} without its last dim "
            f"{tuple(o.shape[:-1])}, got {tuple(lse.shape)}"
        )


def merge_many(outs: torch.Tensor, lses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge S partial results at once: outs ``(S, ..., head_dim)``, lses ``(S, ...)``.

    With m = max_s lse_s (0 where every lse is -inf) and w_s = e^{lse_s - m}:
    ``lse = m + log Σ_s w_s``, ``o = Σ_s w_s o_s / Σ_s w_s`` (0 where Σ w = 0). Equal to
    folding :func:`merge_partials` over the splits in any order; what the combine kernel of
    :mod:`attn_course.kernels.splitk` computes. Returns ``(o, lse)`` in float32 or float64.
    """
    _check_partials("outs", outs, "lses", lses)
    if outs.shape[0] < 1:
        raise ValueError("outs needs at least one split on dim 0, got 0")
    work = torch.promote_types(_work_dtype(outs), lses.dtype)
    outs, lses = outs.to(work), lses.to(work)
    m = lses.amax(dim=0)
    m = torch.where(m == float("-inf"), torch.zeros_like(m), m)  # keeps -inf - -inf out
    w = torch.exp(lses - m)
    total = w.sum(dim=0)
    o = (w.unsqueeze(-1) * outs).sum(dim=0) / torch.where(total == 0, 1.0, total).unsqueeze(-1)
    return o, m + torch.log(total)


# --- which split owns which tokens ------------------------------------------------------


def split_ranges(context_len: int, block_size: int, splits: int) -> list[tuple[int, int]]:
    """The token range ``[start, end)`` of each of ``splits`` splits of one sequence.

    The ``B = ⌈context_len / block_size⌉`` blocks are dealt out whole and balanced: split s
    owns blocks ``[⌊s·B / splits⌋, ⌊(s+1)·B / splits⌋)``, so block counts differ by at most
    one, and tokens ``[start_block · block_size, min(end_block · block_size, context_len))``.
    Splits beyond B own nothing (start == end): in a batch, a short sequence leaves some of
    the grid's splits empty. The kernel computes the same bounds.
    """
    context_len = check_count("context_len", context_len)
    block_size = check_count("block_size", block_size)
    splits = check_count("splits", splits)
    check_loop_size("splits", splits, "splits")
    blocks = blocks_needed(context_len, block_size)
    edges = [s * blocks // splits * block_size for s in range(splits + 1)]
    return [(min(a, context_len), min(b, context_len)) for a, b in pairwise(edges)]


# paged.paged_attention_decode's signature plus splits, on purpose: the kernel's reference.
def split_decode_reference(
    q: torch.Tensor,
    k_pool: torch.Tensor,
    v_pool: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    scale: float | None = None,
    *,
    splits: int,
) -> torch.Tensor:
    """Paged decode attention computed split by split and merged: the split-K kernel's reference.

    Same contract and checks as :func:`attn_course.paged.paged_attention_decode`, plus
    ``splits`` in ``[1, max_blocks]`` (the block tables' width). For each sequence: the
    :func:`partial_attention` of each :func:`split_ranges` range, then :func:`merge_many`.
    Returns ``(batch, heads, head_dim)`` in q's dtype (computed in float32, float64 for float64).
    """
    scale = validate_paged_inputs(q, k_pool, v_pool, block_tables, context_lens, scale)
    splits = check_count("splits", splits, 1, block_tables.shape[1])
    _, block_size, kv_heads, head_dim = k_pool.shape
    out = torch.empty(q.shape, dtype=_work_dtype(q), device=q.device)
    for b in range(q.shape[0]):
        n = int(context_lens[b])
        table = block_tables[b, : blocks_needed(n, block_size)].long()
        k = k_pool[table].reshape(-1, kv_heads, head_dim)
        v = v_pool[table].reshape(-1, kv_heads, head_dim)
        parts = [partial_attention(q[b], k[lo:hi], v[lo:hi], scale)
                 for lo, hi in split_ranges(n, block_size, splits)]  # fmt: skip
        out[b] = merge_many(torch.stack([o for o, _ in parts]), torch.stack([s for _, s in parts]))[
            0
        ]
    return out.to(q.dtype)


# --- why split: the launch grid at small batch ------------------------------------------

#: Streaming multiprocessors of the GPUs of :func:`attn_course.presets.hardware_names`.
SM_COUNTS: dict[str, int] = {
    # NVIDIA A100 Tensor Core GPU Architecture whitepaper (2020): the A100 has 108 SMs
    # (of the full GA100's 128).
    "A100-SXM4-80GB": 108,
    # NVIDIA H100 Tensor Core GPU Architecture whitepaper (2022): "The H100 SXM5 GPU has
    # 132 SMs" (of the full GH100's 144).
    "H100-SXM5-80GB": 132,
    # NVIDIA H200 datasheet: the same GH100 configuration as H100 SXM with HBM3e; the
    # Hopper whitepaper's 132 SMs apply.
    "H200-SXM-141GB": 132,
    # NVIDIA L4 (AD104): 7,424 CUDA cores / 128 FP32 cores per Ada SM (NVIDIA Ada GPU
    # architecture whitepaper) = 58 SMs. Some listings give 7,680 cores (60 SMs), the full
    # AD104; NVIDIA's L4 datasheet does not state the SM count.
    "L4-24GB": 58,
    # NVIDIA Ada GPU architecture whitepaper (v1.1), Appendix A: GeForce RTX 4090 has 128
    # SMs (16,384 CUDA cores) of the full AD102's 144.
    "RTX-4090-24GB": 128,
}

#: Where each of :data:`SM_COUNTS` comes from (the ``sm_source`` of :func:`decode_grid_rows`' rows).
SM_COUNT_SOURCES: dict[str, str] = {
    "A100-SXM4-80GB": "NVIDIA A100 Tensor Core GPU Architecture whitepaper: 108 SMs",
    "H100-SXM5-80GB": "NVIDIA H100 Tensor Core GPU Architecture whitepaper: 132 SMs (SXM5)",
    "H200-SXM-141GB": "NVIDIA H200 datasheet (GH100 as H100 SXM) + H100 whitepaper: 132 SMs",
    "L4-24GB": "7,424 CUDA cores / 128 per Ada SM (NVIDIA Ada GPU architecture whitepaper): 58",
    "RTX-4090-24GB": "NVIDIA Ada GPU architecture whitepaper, Appendix A: 128 SMs",
}


def sm_count(hardware: str) -> int:
    """SMs of a hardware preset's GPU (:data:`SM_COUNTS`); ValueError naming ``hardware``."""
    name = get_hardware(hardware).name
    if name not in SM_COUNTS:
        raise ValueError(f"hardware {name!r} has no SM count; known: {sorted(SM_COUNTS)}")
    return SM_COUNTS[name]


def decode_grid_rows(
    model: str,
    hardware: str,
    contexts: Sequence[int],
    batches: Sequence[int],
    *,
    block_size: int = 16,
    dtype: str = "bfloat16",
) -> list[dict[str, float | int | str]]:
    """One layer's paged-decode launch without and with the context split, per context × batch.

    For each (context, batch): the unsplit grid (batch × heads programs) and the split one,
    with ``splits = min(⌈SMs / (batch · heads)⌉, ⌈context / block_size⌉)``
    (:func:`attn_course.kvcache.splits_to_fill`, at most one block per split). Columns:
    programs and busy SM share (min(programs, SMs) / SMs) of each, blocks each program walks,
    the K/V bytes read and the partial-result bytes the split adds (acc, m, ℓ in float32,
    written and read back: :func:`attn_course.kvcache.paged_decode_grid_cost`), and their
    ratio ``extra_traffic`` = partial bytes / K/V bytes read; ``sm_source`` cites the SM count.
    """
    shape, sms, gpu = get_model(model), sm_count(hardware), get_hardware(hardware).name
    rows: list[dict[str, float | int | str]] = []
    for context in contexts:
        for batch in batches:
            grid = {
                "heads": shape.heads, "kv_heads": shape.kv_heads, "head_dim": shape.head_dim,
                "sm_count": sms, "batch": batch, "block_size": block_size, "dtype": dtype,
            }  # fmt: skip
            unsplit = paged_decode_grid_cost(context, **grid)
            splits = min(splits_to_fill(sms, batch=batch, heads=shape.heads),
                         blocks_needed(context, block_size))  # fmt: skip
            split = paged_decode_grid_cost(context, splits=splits, **grid)
            rows.append({
                "model": shape.name, "hardware": gpu, "context": context, "batch": batch,
                "sm_count": sms, "sm_source": SM_COUNT_SOURCES[gpu], "splits": splits,
                "programs_unsplit": unsplit.programs, "busy_unsplit": unsplit.busy_sm_fraction,
                "programs_split": split.programs, "busy_split": split.busy_sm_fraction,
                "blocks_per_program_unsplit": unsplit.blocks_per_program,
                "blocks_per_program_split": split.blocks_per_program,
                "kv_bytes_read": split.kv_bytes_read, "partial_bytes": split.partial_bytes,
                "extra_traffic": split.partial_bytes / split.kv_bytes_read,
            })  # fmt: skip
    return rows


def busy_sm_figure(
    model: str, hardware: str, batches: Sequence[int], *, context: int = 32768
) -> go.Figure:
    """Busy SM share of one layer's decode launch against batch, unsplit vs split (plotly)."""
    rows = decode_grid_rows(model, hardware, [context], batches)
    fig = go.Figure()
    for key, label in (("busy_unsplit", "one program per (sequence, head)"),
                       ("busy_split", "split-K: splits to fill the SMs")):  # fmt: skip
        fig.add_scatter(x=[r["batch"] for r in rows], y=[100 * float(r[key]) for r in rows],
                        mode="markers+lines", name=label,
                        text=[f"{r['splits']} splits" for r in rows])  # fmt: skip
    fig.update_layout(xaxis={"title": "batch (sequences)", "type": "log"},
                      yaxis={"title": "SMs with a program (%)", "range": [0, 105]})  # fmt: skip
    name, gpu = get_model(model).name, get_hardware(hardware).name
    title = f"Decode at context {context}: {name} on {gpu} ({sm_count(hardware)} SMs)"
    return style(fig, title, width=760, height=420)

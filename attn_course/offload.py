"""Notebook 08: keeping cold KV blocks in host memory — swap them back in, or recompute?

A sequence whose cache was moved to host (CPU) memory can resume in two ways: copy its
cache back over the host link, ``n * b / BW`` seconds for n tokens of ``b`` bytes each, or
run its prefill again, ``(w * n + 2 * L * d * n**2) / F`` seconds at ``F`` FLOP/s
(``w``: the layers' weight FLOPs per token, ``L`` layers of width ``d``). Per token the
copy costs a constant and the recompute a cost that grows with n (attention), so past a
break-even context swapping always wins; for today's large models with grouped-query
attention the copy is cheaper from the first token.

Assumption: the prefill is compute-bound (FLOPs at ``mfu`` × peak). At short contexts a
real prefill is bounded below by reading the weights once (``roofline=True`` adds that
floor), which only makes recomputing slower and the break-even shorter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import plotly.graph_objects as go

from attn_course.cost import (
    kv_cache_bytes_per_token,
    matmul_parameter_count,
    model_kv_cache_bytes,
    peak_flops_per_s,
    prefill_chunk_flops,
    weight_bytes,
)
from attn_course.figures import style
from attn_course.presets import Hardware, ModelShape, get_hardware, get_model
from attn_course.validate import (
    canonical_dtype,
    check_count,
    check_flag,
    check_fraction,
    check_non_negative,
    check_positive,
)

__all__ = [
    "LINKS",
    "Link",
    "OffloadCountsLike",
    "break_even_closed_form",
    "break_even_context",
    "break_even_inputs",
    "get_link",
    "link_names",
    "offload_cost",
    "offload_figure",
    "recompute_time_s",
    "swap_in_time_s",
    "weight_flops_per_token",
]


@dataclass(frozen=True)
class Link:
    """A host <-> GPU link: ``bytes_per_s`` in ONE direction (a swap-in uses one direction)."""

    name: str
    bytes_per_s: float
    source: str

    def __post_init__(self) -> None:
        check_positive("bytes_per_s", self.bytes_per_s)


_LINKS = [
    Link(
        name="PCIe-4.0-x16",
        # PCI-SIG PCI Express Base Specification 4.0: 16 GT/s per lane, 128b/130b encoding.
        # 16 GT/s x 16 lanes x 128/130 / 8 bits = 31.5 GB/s per direction (raw, before
        # packet overhead; measured host-to-device copies reach ~25 GB/s).
        bytes_per_s=16e9 * 16 * 128 / 130 / 8,
        source="PCI Express Base Specification 4.0 (PCI-SIG): 16 GT/s/lane, 128b/130b, x16",
    ),
    Link(
        name="PCIe-5.0-x16",
        # PCI-SIG PCI Express Base Specification 5.0: 32 GT/s per lane, 128b/130b encoding.
        # 32 GT/s x 16 x 128/130 / 8 = 63.0 GB/s per direction (H100 PCIe/SXM hosts).
        bytes_per_s=32e9 * 16 * 128 / 130 / 8,
        source="PCI Express Base Specification 5.0 (PCI-SIG): 32 GT/s/lane, 128b/130b, x16",
    ),
    Link(
        name="NVLink-C2C",
        # NVIDIA GH200 Grace Hopper Superchip datasheet and "NVIDIA Grace Hopper Superchip
        # Architecture" whitepaper: NVLink-C2C CPU<->GPU 900 GB/s total bidirectional,
        # i.e. 450 GB/s per direction (7x PCIe Gen5 x16).
        bytes_per_s=450e9,
        source="NVIDIA GH200 datasheet / Grace Hopper whitepaper: 900 GB/s bidirectional",
    ),
]
LINKS: Mapping[str, Link] = MappingProxyType({link.name: link for link in _LINKS})


def link_names() -> list[str]:
    """Names of the link presets, slowest first."""
    return list(LINKS)


def get_link(link: str | Link) -> Link:
    """The :class:`Link` preset called ``link`` (a Link passes through)."""
    if isinstance(link, Link):
        return link
    try:
        return LINKS[link]
    except (KeyError, TypeError):
        raise ValueError(f"link must be one of {link_names()} (or a Link), got {link!r}") from None


# --- the two ways back --------------------------------------------------------------------


def swap_in_time_s(
    model: str | ModelShape,
    context: int,
    link: str | Link,
    *,
    batch: int = 1,
    kv_dtype: Any = "bfloat16",
) -> float:
    """Seconds to copy ``batch`` sequences' KV caches of ``context`` tokens back to the GPU.

    ``model_kv_cache_bytes(model, context, batch, kv_dtype) / link.bytes_per_s``: the
    cache bytes (2 · layers · kv_heads · head_dim · context · batch · bytes per element)
    over the link's one-direction peak bandwidth (a lower bound: no latency, no overhead).
    """
    kv_dtype = canonical_dtype(kv_dtype, "kv_dtype")
    n_bytes = model_kv_cache_bytes(model, context, batch=batch, dtype=kv_dtype)
    return n_bytes / get_link(link).bytes_per_s


def _flops_per_s(hardware: str | Hardware, dtype: Any, mfu: float) -> float:
    return peak_flops_per_s(hardware, dtype) * check_fraction("mfu", mfu)


def recompute_time_s(
    model: str | ModelShape,
    hardware: str | Hardware,
    context: int,
    *,
    batch: int = 1,
    mfu: float = 0.5,
    dtype: Any = "bfloat16",
    roofline: bool = False,
) -> float:
    """Seconds to rebuild the caches by running the prefill of ``context`` tokens again.

    ``batch * prefill_chunk_flops(model, 0, context) / (mfu * peak FLOP/s in dtype)``:
    the layers' FLOPs (``w * n + 2 * L * d * n**2`` with causal attention; the LM head is
    not needed to rebuild a cache). Assumes the prefill is compute-bound at ``mfu`` of
    peak. ``roofline=True`` takes the max with the time to read the weights once from
    device memory (``weight_bytes / HBM bandwidth``), the floor at short contexts.
    """
    context, batch = check_count("context", context), check_count("batch", batch)
    seconds = batch * prefill_chunk_flops(model, 0, context) / _flops_per_s(hardware, dtype, mfu)
    if check_flag("roofline", roofline):
        floor = weight_bytes(model, dtype) / get_hardware(hardware).bandwidth_bytes_per_s
        seconds = max(seconds, floor)
    return seconds


# --- where they cross ---------------------------------------------------------------------


def break_even_closed_form(
    bytes_per_token: float,
    link_bytes_per_s: float,
    flops_per_s: float,
    weight_flops_per_token: float,
    layers: int,
    d_model: int,
) -> int:
    """Smallest context n at which swapping in is no slower than recomputing, in closed form.

    ``recompute(n) = (w·n + 2·L·d·n²) / F`` and ``swap(n) = n·b / BW``, so
    ``swap <= recompute  <=>  F·b/BW - w <= 2·L·d·n``, giving
    ``n* = max(1, ceil((F·b/BW - w) / (2·L·d)))``. ``bytes_per_token`` b (bytes),
    ``link_bytes_per_s`` BW (bytes/s), ``flops_per_s`` F (FLOP/s achieved),
    ``weight_flops_per_token`` w (FLOPs), ``layers`` L, ``d_model`` d. n* = 1 when
    ``F·b/BW <= w``: copying a token's cache is cheaper than its weight FLOPs alone.
    """
    b = check_positive("bytes_per_token", bytes_per_token)
    bw = check_positive("link_bytes_per_s", link_bytes_per_s)
    f = check_positive("flops_per_s", flops_per_s)
    w = check_non_negative("weight_flops_per_token", weight_flops_per_token)
    slope = 2 * check_count("layers", layers) * check_count("d_model", d_model)
    excess = f * b / bw - w
    if not math.isfinite(excess):
        raise ValueError(
            "bytes_per_token * flops_per_s / link_bytes_per_s overflows: "
            f"got {bytes_per_token!r}, {flops_per_s!r}, {link_bytes_per_s!r}"
        )
    return max(1, math.ceil(excess / slope))


def _swap_wins(model: ModelShape, hardware: Any, link: Link, n: int, **kw: Any) -> bool:
    swap = swap_in_time_s(model, n, link, kv_dtype=kw["kv_dtype"])
    return swap <= recompute_time_s(model, hardware, n, mfu=kw["mfu"], dtype=kw["dtype"])


def break_even_context(
    model: str | ModelShape,
    hardware: str | Hardware,
    link: str | Link,
    *,
    mfu: float = 0.5,
    kv_dtype: Any = "bfloat16",
    dtype: Any = "bfloat16",
) -> int:
    """Smallest context n (tokens) at which swapping the cache in is no slower than recomputing.

    Found by search on :func:`swap_in_time_s` and :func:`recompute_time_s` (compute-bound
    prefill at ``mfu``): doubling until swapping wins, then bisection; valid because
    ``recompute(n) / n`` grows with n while ``swap(n) / n`` is constant, so once swapping
    wins it wins at every longer context. Agrees with :func:`break_even_closed_form`.
    Returns 1 when swapping wins from the first token. Swapping loses everywhere only if
    recompute had no n² term (linear or windowed attention), or in practice when n* is
    beyond the model's context: then within it recomputing is always the cheaper way back.
    """
    m, link = get_model(model), get_link(link)
    get_hardware(hardware)
    kv_dtype = canonical_dtype(kv_dtype, "kv_dtype")
    kw = {"mfu": check_fraction("mfu", mfu), "kv_dtype": kv_dtype, "dtype": dtype}
    if _swap_wins(m, hardware, link, 1, **kw):
        return 1
    lo, hi = 1, 2  # swapping loses at lo, and we look for an hi where it wins
    while not _swap_wins(m, hardware, link, hi, **kw):
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _swap_wins(m, hardware, link, mid, **kw) else (mid, hi)
    return hi


def weight_flops_per_token(model: str | ModelShape) -> float:
    """The layers' weight FLOPs per token, ``w = 2 * matmul parameters`` (no LM head)."""
    return 2.0 * matmul_parameter_count(model, include_lm_head=False)


def break_even_inputs(
    model: str | ModelShape,
    hardware: str | Hardware,
    link: str | Link,
    *,
    mfu: float = 0.5,
    kv_dtype: Any = "bfloat16",
    dtype: Any = "bfloat16",
) -> dict[str, float]:
    """The arguments of :func:`break_even_closed_form` for presets, from :mod:`attn_course.cost`."""
    m = get_model(model)
    return {
        "bytes_per_token": kv_cache_bytes_per_token(
            m.layers, m.kv_heads, m.head_dim, dtype=canonical_dtype(kv_dtype, "kv_dtype")
        ),
        "link_bytes_per_s": get_link(link).bytes_per_s,
        "flops_per_s": _flops_per_s(hardware, dtype, mfu),
        "weight_flops_per_token": weight_flops_per_token(m),
        "layers": m.layers,
        "d_model": m.d_model,
    }


# --- pictures and the engine's counts -----------------------------------------------------


def offload_figure(
    model: str | ModelShape,
    hardware: str | Hardware,
    links: Sequence[str | Link] | None = None,
    contexts: Sequence[int] | None = None,
    *,
    mfu: float = 0.5,
    kv_dtype: Any = "bfloat16",
    dtype: Any = "bfloat16",
) -> go.Figure:
    """Swap-in seconds over each link vs recompute seconds, against context, log-log.

    ``links``: default all presets; ``contexts``: default powers of 2 from 16 to 2**20.
    A marker shows each link's :func:`break_even_context` when it lies inside the range.
    """
    m, kv_dtype = get_model(model), canonical_dtype(kv_dtype, "kv_dtype")
    links = [get_link(x) for x in (link_names() if links is None else links)]
    contexts = [2**i for i in range(4, 21)] if contexts is None else list(contexts)
    if not links or not contexts:
        raise ValueError("links and contexts must be non-empty")
    contexts = [check_count("contexts", n) for n in contexts]
    fig = go.Figure()
    recompute = [recompute_time_s(m, hardware, n, mfu=mfu, dtype=dtype) for n in contexts]
    fig.add_scatter(x=contexts, y=recompute, name=f"recompute prefill (mfu {mfu:g})",
                    line={"color": "black", "width": 3})  # fmt: skip
    for link in links:
        swap = [swap_in_time_s(m, n, link, kv_dtype=kv_dtype) for n in contexts]
        fig.add_scatter(x=contexts, y=swap, name=f"swap in over {link.name}")
        n_star = break_even_context(m, hardware, link, mfu=mfu, kv_dtype=kv_dtype, dtype=dtype)
        if min(contexts) < n_star <= max(contexts):
            fig.add_scatter(
                x=[n_star], y=[swap_in_time_s(m, n_star, link, kv_dtype=kv_dtype)],
                mode="markers", marker={"size": 10, "symbol": "x"}, showlegend=False,
                hovertext=f"break-even {n_star:,} tokens ({link.name})",
            )  # fmt: skip
    fig.update_xaxes(type="log", title="context (tokens in the sequence's cache)")
    fig.update_yaxes(type="log", title="time to restore one sequence's cache (s)")
    hw = get_hardware(hardware).name
    title = f"Offloaded KV cache: copy it back or recompute it? {m.name} on {hw}"
    return style(fig, title, width=800, height=460)


@runtime_checkable
class OffloadCountsLike(Protocol):
    """What an offload tier counted (the serving engine's ``OffloadCounts`` has these)."""

    swapped_in_blocks: int
    swapped_out_blocks: int
    recomputed_tokens: int
    bytes_in: int
    bytes_out: int


_COUNT_FIELDS = ("swapped_in_blocks", "swapped_out_blocks", "recomputed_tokens", "bytes_in",
                 "bytes_out")  # fmt: skip


def _counts(counts: Any) -> dict[str, int]:
    missing = [f for f in _COUNT_FIELDS if not hasattr(counts, f)]
    if missing:
        raise ValueError(
            f"counts must have the attributes {list(_COUNT_FIELDS)}; missing {missing}"
        )
    return {f: check_count(f, getattr(counts, f), minimum=0) for f in _COUNT_FIELDS}


def offload_cost(
    counts: OffloadCountsLike,
    model: str | ModelShape,
    hardware: str | Hardware,
    link: str | Link,
    *,
    block_size: int | None = None,
    mfu: float = 0.5,
    kv_dtype: Any = "bfloat16",
    dtype: Any = "bfloat16",
) -> dict[str, Any]:
    """Seconds an offload tier's traffic and recomputation would cost on ``hardware``/``link``.

    ``counts``: any object with ``swapped_in_blocks, swapped_out_blocks, recomputed_tokens,
    bytes_in, bytes_out`` (the engine's ``OffloadCounts``). Bytes moved: the counted
    ``bytes_in``/``bytes_out`` when ``block_size`` is None (the engine's own tensors);
    with a ``block_size``, ``blocks * block_size * kv bytes per token of model`` (the same
    schedule priced for a preset such as Llama-3-8B). Seconds: bytes / link bandwidth
    each way; recompute: ``prefill_chunk_flops(model, 0, recomputed_tokens)`` at
    ``mfu * peak`` (as if the tokens were one prompt: exact for the weight FLOPs, an
    upper bound for attention). Returns a dict of counts, bytes, FLOPs and seconds.
    """
    c = _counts(counts)
    m, lk, kv_dtype = get_model(model), get_link(link), canonical_dtype(kv_dtype, "kv_dtype")
    if block_size is None:
        bytes_in, bytes_out = c["bytes_in"], c["bytes_out"]
    else:
        per_block = check_count("block_size", block_size) * kv_cache_bytes_per_token(
            m.layers, m.kv_heads, m.head_dim, dtype=kv_dtype
        )
        bytes_in, bytes_out = (
            c["swapped_in_blocks"] * per_block,
            c["swapped_out_blocks"] * per_block,
        )
    tokens = c["recomputed_tokens"]
    flops = prefill_chunk_flops(m, 0, tokens) if tokens else 0.0
    recompute_s = flops / _flops_per_s(hardware, dtype, mfu)
    swap_in_s, swap_out_s = bytes_in / lk.bytes_per_s, bytes_out / lk.bytes_per_s
    return {
        **c, "model": m.name, "hardware": get_hardware(hardware).name, "link": lk.name,
        "priced_bytes_in": bytes_in, "priced_bytes_out": bytes_out,
        "swap_in_s": swap_in_s, "swap_out_s": swap_out_s, "moving_s": swap_in_s + swap_out_s,
        "recompute_flops": flops, "recompute_s": recompute_s,
        "total_s": swap_in_s + swap_out_s + recompute_s,
    }  # fmt: skip

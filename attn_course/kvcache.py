"""Notebook 07: generation with and without a KV cache, its size, and compressing it.

Without a cache every generated token re-runs the model on the whole prefix: step t costs
O(t) projections and O(t²) attention scores. With a cache the model projects only the new
token and appends its key and value per layer; step t reads t cached keys and values.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import plotly.graph_objects as go
import torch

from attn_course.cost import kv_cache_bytes, model_kv_cache_bytes, weight_bytes
from attn_course.figures import style
from attn_course.measure import Trend, fit_trend, torch_threads
from attn_course.model import GPT, LayerCache
from attn_course.presets import Hardware, ModelShape, get_hardware
from attn_course.validate import (
    bytes_per_element,
    canonical_dtype,
    check_choice,
    check_count,
    check_flag,
)


@dataclass
class Generation:
    """Greedy generation: the tokens, every step's logits, and seconds per step."""

    tokens: torch.Tensor  # (batch, prompt + new)
    step_logits: list[torch.Tensor]  # one (batch, vocab) per generated token
    step_seconds: list[float]


def _check_prompt(model: GPT, prompt: torch.Tensor, new_tokens: int) -> None:
    if prompt.dim() != 2 or prompt.shape[1] < 1:
        raise ValueError(f"prompt must be (batch, >= 1 tokens), got shape {tuple(prompt.shape)}")
    check_count("new_tokens", new_tokens)
    if prompt.shape[1] + new_tokens - 1 > model.cfg.context:
        raise ValueError(
            f"prompt ({prompt.shape[1]}) + new_tokens ({new_tokens}) - 1 exceeds the context "
            f"of {model.cfg.context}"
        )


def _timed_greedy_step(
    model: GPT,
    tokens: torch.Tensor,
    inputs: torch.Tensor,
    caches: list[LayerCache] | None,
    seconds: list[float],
    logits_list: list[torch.Tensor],
) -> tuple[torch.Tensor, list[LayerCache]]:
    """One timed forward of ``inputs``: record its seconds and last logits, append the argmax."""
    t0 = time.perf_counter()
    logits, caches = model(inputs, caches)
    last = logits[:, -1]
    seconds.append(time.perf_counter() - t0)
    logits_list.append(last)
    return torch.cat([tokens, last.argmax(-1, keepdim=True)], dim=1), caches


@torch.no_grad()
def generate_uncached(model: GPT, prompt: torch.Tensor, new_tokens: int) -> Generation:
    """Greedy decoding that re-runs the whole sequence for every new token (no cache)."""
    _check_prompt(model, prompt, new_tokens)
    tokens, logits_list, seconds = prompt, [], []
    for _ in range(new_tokens):
        # everything, again
        tokens, _ = _timed_greedy_step(model, tokens, tokens, None, seconds, logits_list)
    return Generation(tokens, logits_list, seconds)


@torch.no_grad()
def generate_cached(model: GPT, prompt: torch.Tensor, new_tokens: int) -> Generation:
    """Greedy decoding with a KV cache: prefill the prompt once, then one token per step.

    ``step_seconds[0]`` is the prefill (time to first token); later entries are decode steps.
    """
    _check_prompt(model, prompt, new_tokens)
    t0 = time.perf_counter()
    logits, caches = model(prompt)  # prefill: the whole prompt in one pass, fills the cache
    last = logits[:, -1]
    seconds, logits_list = [time.perf_counter() - t0], [last]
    tokens = torch.cat([prompt, last.argmax(-1, keepdim=True)], dim=1)
    for _ in range(new_tokens - 1):
        # only the new token
        tokens, caches = _timed_greedy_step(
            model, tokens, tokens[:, -1:], caches, seconds, logits_list
        )
    return Generation(tokens, logits_list, seconds)


@torch.no_grad()
def fill_cache(model: GPT, tokens: torch.Tensor) -> list[LayerCache]:
    """The KV cache after a prefill of ``tokens``."""
    return model(tokens)[1]


def cache_bytes(caches: list[LayerCache]) -> int:
    """Bytes held by the cache tensors themselves (``numel * element_size``)."""
    return sum(t.numel() * t.element_size() for kv in caches for t in kv)


def predicted_cache_bytes(model: GPT, context: int, *, batch: int = 1) -> float:
    """:func:`attn_course.cost.kv_cache_bytes` for this model's shape in its dtype."""
    cfg = model.cfg
    dtype = next(model.parameters()).dtype
    return kv_cache_bytes(cfg.layers, cfg.kv_heads, cfg.head_dim, context, batch=batch, dtype=dtype)


def cached_attention_step(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One decode step of single-head attention with a cache.

    q, k, v: (d,) the new token's query, key, value; caches: (t, d). Returns
    ``(out, K, V)`` with ``K = [k_cache; k]``, ``V = [v_cache; v]`` and
    ``out = softmax(K q / sqrt(d)) V`` — the new token sees every cached token and itself.
    """
    if q.dim() != 1 or k.shape != q.shape or v.dim() != 1:
        raise ValueError("q, k and v must be vectors, q and k of the same length")
    if k_cache.dim() != 2 or k_cache.shape[1] != q.shape[0] or len(v_cache) != len(k_cache):
        raise ValueError("k_cache must be (t, d) with d = len(q); v_cache must have t rows")
    keys = torch.cat([k_cache, k[None]], dim=0)
    values = torch.cat([v_cache, v[None]], dim=0)
    weights = torch.softmax(keys @ q / q.shape[0] ** 0.5, dim=0)
    return weights @ values, keys, values


@dataclass(frozen=True)
class StepTimes:
    """Seconds per generation step, with and without a cache, at every position.

    ``uncached_runs[i]`` and ``cached_runs[i]`` hold one timing per repeat for the token
    generated at ``positions[i]``; ``cached_runs[0]`` is the prefill (time to first token).
    """

    positions: list[int]
    uncached_runs: list[list[float]]
    cached_runs: list[list[float]]
    threads: int | None

    @property
    def repeats(self) -> int:
        return len(self.uncached_runs[0])

    @property
    def uncached(self) -> list[float]:
        """The fastest repeat at each position, no cache (load only ever adds time)."""
        return [min(r) for r in self.uncached_runs]

    @property
    def cached(self) -> list[float]:
        """The fastest repeat at each position, KV cache (entry 0: the prefill)."""
        return [min(r) for r in self.cached_runs]

    def uncached_trend(self) -> Trend:
        """How the uncached step time depends on the position (every position fitted)."""
        return fit_trend(self.positions, self.uncached_runs)

    def cached_trend(self) -> Trend:
        """How the cached decode step depends on the position (the prefill left out)."""
        return fit_trend(self.positions[1:], self.cached_runs[1:])


def measure_step_times(
    model: GPT,
    prompt: torch.Tensor,
    new_tokens: int,
    *,
    repeats: int = 5,
    threads: int | None = 1,
) -> StepTimes:
    """Time every step of :func:`generate_uncached` and :func:`generate_cached`.

    Measured so that a busy machine blurs the result as little as possible: the two
    generations alternate (uncached, cached, cached, uncached, ...) ``repeats`` times, so a
    burst of load from another program spoils one repeat of each rather than all repeats of
    one; the step times are kept per repeat, and :class:`StepTimes` reports the fastest.
    ``threads``: torch CPU threads during the measurement (restored after); one thread
    suits a small model, whose calls are too short to gain from a second thread and which
    a multi-threaded call would make wait for its slowest thread on a shared machine.
    """
    check_count("repeats", repeats)
    _check_prompt(model, prompt, new_tokens)
    uncached: list[list[float]] = [[] for _ in range(new_tokens)]
    cached: list[list[float]] = [[] for _ in range(new_tokens)]
    with torch_threads(threads):
        for r in range(repeats):
            order = [(generate_uncached, uncached), (generate_cached, cached)]
            for generate, runs in order if r % 2 == 0 else order[::-1]:
                for step, seconds in enumerate(generate(model, prompt, new_tokens).step_seconds):
                    runs[step].append(seconds)
    start = prompt.shape[1]
    return StepTimes(list(range(start, start + new_tokens)), uncached, cached, threads)


@dataclass(frozen=True)
class PrefillTimes:
    """Seconds of one prefill forward pass at each prompt length, one timing per round."""

    lengths: list[int]
    runs: list[list[float]]
    threads: int | None

    @property
    def seconds(self) -> list[float]:
        """The fastest round at each length."""
        return [min(r) for r in self.runs]

    def trend(self) -> Trend:
        return fit_trend(self.lengths, self.runs)


@torch.no_grad()
def measure_prefill(
    model: GPT,
    tokens: torch.Tensor,
    lengths: list[int],
    *,
    rounds: int = 5,
    min_total_s: float = 0.02,
    threads: int | None = 1,
) -> PrefillTimes:
    """Time ``model(tokens[:n][None])`` (a prefill of n tokens) for every n in ``lengths``.

    ``rounds`` sweeps over all lengths, alternately up and down, each timing the fastest of
    :func:`attn_course.measure.time_call` (at least 3 calls and ``min_total_s`` seconds), so
    that load during one sweep spoils one timing per length, not the whole curve.
    """
    from attn_course.measure import time_call

    check_count("rounds", rounds)
    if not lengths or min(lengths) < 1 or max(lengths) > min(tokens.numel(), model.cfg.context):
        raise ValueError(
            f"lengths must be in [1, {min(tokens.numel(), model.cfg.context)}], got {lengths}"
        )
    runs: list[list[float]] = [[] for _ in lengths]
    with torch_threads(threads):
        for r in range(rounds):
            order = list(enumerate(lengths))
            for i, n in order if r % 2 == 0 else order[::-1]:
                runs[i].append(time_call(lambda n=n: model(tokens[:n][None]), 3, min_total_s))
    return PrefillTimes(list(lengths), runs, threads)


# --- quantised caches -------------------------------------------------------------------


# What one quantisation scale covers: a token (a row of the block) or a channel (a column).
QUANT_AXES = ("token", "channel")


def _levels(bits: int) -> int:
    check_choice("bits", bits, (4, 8))
    return 2 ** (bits - 1) - 1  # symmetric: int8 uses -127..127, int4 uses -7..7


def quantize(
    x: torch.Tensor, *, bits: int = 8, axis: str = "token"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric absmax quantisation of a cache block x: (tokens, channels).

    ``axis="token"``: one scale per row (token), ``"channel"``: one per column.
    ``scale = max|x| / (2**(bits-1) - 1)``, ``q = round(x / scale)`` stored as int8 (4-bit
    values are kept in int8 here; a real kernel packs two per byte). Rounding error per
    element is at most ``scale / 2``.
    """
    if x.dim() != 2:
        raise ValueError(f"x must be (tokens, channels), got shape {tuple(x.shape)}")
    check_choice("axis", axis, QUANT_AXES)
    levels = _levels(bits)
    dim = 1 if axis == "token" else 0
    scale = x.abs().amax(dim=dim, keepdim=True).float() / levels
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)  # an all-zero row stays 0
    q = torch.round(x.float() / scale).clamp(-levels, levels).to(torch.int8)
    return q, scale


def dequantize(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``q * scale`` in float32."""
    return q.float() * scale


def quantized_bytes(
    tokens: int, channels: int, *, bits: int = 8, axis: str = "token", scale_bytes: int = 2
) -> float:
    """Bytes of a quantised block when packed: values ``tokens*channels*bits/8`` plus one
    ``scale_bytes`` scale per token (or per channel)."""
    tokens, channels = check_count("tokens", tokens, minimum=0), check_count("channels", channels)
    scale_bytes = check_count("scale_bytes", scale_bytes, minimum=0)
    check_choice("axis", axis, QUANT_AXES)
    _levels(bits)
    n_scales = tokens if axis == "token" else channels
    return tokens * channels * bits / 8 + n_scales * scale_bytes


def float8_available() -> bool:
    """True when this torch has ``torch.float8_e4m3fn``."""
    return hasattr(torch, "float8_e4m3fn")


def to_float8(x: torch.Tensor) -> torch.Tensor:
    """Round-trip x through float8 e4m3 (per-tensor scale so the max maps to 448)."""
    if not float8_available():
        raise RuntimeError("this torch has no float8_e4m3fn")
    scale = x.abs().max().clamp_min(1e-12) / 448.0
    return (x / scale).to(torch.float8_e4m3fn).float() * scale


def roundtrip_cache(
    caches: list[LayerCache], fn: Callable[[torch.Tensor], torch.Tensor]
) -> list[LayerCache]:
    """Apply ``fn`` to every (tokens, channels) slice of every cached k and v."""

    def each(t: torch.Tensor) -> torch.Tensor:
        b, h, n, d = t.shape
        flat = t.permute(0, 1, 2, 3).reshape(b * h, n, d)
        return torch.stack([fn(s) for s in flat]).reshape(b, h, n, d).to(t.dtype)

    return [(each(k), each(v)) for k, v in caches]


@torch.no_grad()
def next_logits_error(
    model: GPT, tokens: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]
) -> float:
    """Max |logit difference| of the next token when the cache of ``tokens[:, :-1]`` goes
    through ``fn`` (a quantise/dequantise round trip) before the last token is decoded."""
    caches = fill_cache(model, tokens[:, :-1])
    exact, _ = model(tokens[:, -1:], caches)
    approx, _ = model(tokens[:, -1:], roundtrip_cache(caches, fn))
    return (exact - approx).abs().max().item()


# --- paging: where a token's k and v live ------------------------------------------------


def block_table_lookup(block_table: list[int], position: int, block_size: int) -> tuple[int, int]:
    """Physical ``(block id, offset)`` of token ``position`` in a paged cache.

    The sequence's tokens fill its blocks in order, ``block_size`` per block, so token p is
    in logical block ``p // block_size`` at offset ``p % block_size``; the block table maps
    the logical block to the physical one: ``(block_table[p // block_size], p % block_size)``.
    """
    if not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be an int >= 1, got {block_size!r}")
    capacity = len(block_table) * block_size
    if not isinstance(position, int) or not 0 <= position < capacity:
        raise ValueError(
            f"position must be an int in [0, {capacity}) for {len(block_table)} blocks of "
            f"{block_size}, got {position!r}"
        )
    return block_table[position // block_size], position % block_size


# --- what the paged-decode kernel's launch grid costs -----------------------------------


@dataclass(frozen=True)
class DecodeGridCost:
    """Arithmetic of one layer of a paged-decode launch (one new query token per sequence).

    programs:           programs in the launch grid
    busy_sm_fraction:   at most this share of the GPU's SMs has a program to run
                        (``min(programs, sm_count) / sm_count``)
    blocks_per_program: cache blocks one program walks one after another
    kv_bytes_read:      K and V bytes the programs load, all programs together
    kv_bytes_cached:    K and V bytes in the cache (each read once at best)
    partial_bytes:      split-K only: partial results (acc, m, ℓ in float32) written by the
                        split programs and read back by the reduction that combines them
    """

    programs: int
    busy_sm_fraction: float
    blocks_per_program: int
    kv_bytes_read: float
    kv_bytes_cached: float
    partial_bytes: float

    @property
    def reread_factor(self) -> float:
        """K/V bytes loaded / bytes cached: heads / kv_heads when each query head reads alone."""
        return self.kv_bytes_read / self.kv_bytes_cached


def paged_decode_grid_cost(
    context: int,
    *,
    heads: int,
    kv_heads: int,
    head_dim: int,
    sm_count: int,
    batch: int = 1,
    block_size: int = 16,
    splits: int = 1,
    group_queries: bool = False,
    dtype: str = "bfloat16",
) -> DecodeGridCost:
    """Programs, SM occupancy and K/V bytes of one layer's paged-decode launch.

    The course's kernel (:mod:`attn_course.kernels.paged`) is the default: a grid of
    (batch, heads), one program per (sequence, query head), each walking all
    ⌈context / block_size⌉ blocks of its sequence. Two consequences:

    * **GQA re-read.** The ``heads / kv_heads`` query heads of one group each load the same
      K/V blocks: ``kv_bytes_read`` is ``heads / kv_heads`` times ``kv_bytes_cached``
      (4 for Llama-3-8B). Some of the repeats may come from L2 when the programs of a
      group run side by side, but the kernel does nothing to make sure they do.
      ``group_queries=True`` models one program per (sequence, KV head) that serves its
      whole group, as GQA-aware decode kernels do: every block is loaded once.
    * **No split over the context.** With batch 1 the grid has only ``heads`` programs,
      fewer than a GPU has SMs (32 of 132 on an H100 for Llama-3-8B), and each walks the
      whole context in sequence. FlashDecoding (Dao, Haziza, Massa and Sizov, 2023,
      "Flash-Decoding for long-context inference") adds a grid axis that splits the
      context into ``splits`` chunks, each program producing a partial (acc, m, ℓ), and a
      small reduction that combines them with the online-softmax rescaling: ``splits``
      times the programs for ``partial_bytes`` of extra traffic.
    """

    for name, value in (("context", context), ("heads", heads), ("kv_heads", kv_heads),
                        ("head_dim", head_dim), ("sm_count", sm_count), ("batch", batch),
                        ("block_size", block_size), ("splits", splits)):  # fmt: skip
        check_count(name, value)
    if heads % kv_heads:
        raise ValueError(f"kv_heads must divide heads, got heads={heads}, kv_heads={kv_heads}")
    blocks = -(-context // block_size)
    if splits > blocks:
        raise ValueError(f"splits must be <= the {blocks} cache blocks, got {splits}")
    # programs per sequence and split
    readers = kv_heads if check_flag("group_queries", group_queries) else heads
    programs = batch * readers * splits
    dtype = canonical_dtype(dtype)
    cached = kv_cache_bytes(1, kv_heads, head_dim, context, batch=batch, dtype=dtype)
    per_reader = kv_cache_bytes(1, 1, head_dim, context, batch=batch, dtype=dtype)
    partial = 0.0
    if splits > 1:  # acc (head_dim) + m + ℓ per query head and split, written then read
        partial = 2 * batch * heads * splits * (head_dim + 2) * bytes_per_element("float32")
    return DecodeGridCost(
        programs=programs,
        busy_sm_fraction=min(programs, sm_count) / sm_count,
        blocks_per_program=-(-blocks // splits),
        kv_bytes_read=readers * per_reader,
        kv_bytes_cached=cached,
        partial_bytes=partial,
    )


def splits_to_fill(sm_count: int, *, batch: int, heads: int) -> int:
    """Fewest context splits that give every SM a program: ``⌈sm_count / (batch · heads)⌉``."""
    for name, value in (("sm_count", sm_count), ("batch", batch), ("heads", heads)):
        check_count(name, value)
    return -(-sm_count // (batch * heads))


# --- the memory budget of serving ---------------------------------------------------------

# Serving keeps the weights in 16 bits whatever the cache's dtype (the budget calculator's bars).
WEIGHT_DTYPE = "bfloat16"


def max_batch(
    model: str | ModelShape,
    hardware: str | Hardware,
    context: int,
    *,
    kv_heads: int | None = None,
    dtype: str = "bfloat16",
) -> int:
    """Most sequences of ``context`` tokens whose KV cache fits beside the bf16 weights.

    ``floor((memory - weight_bytes) / model_kv_cache_bytes(context, batch=1))``; 0 if the
    weights alone do not fit.
    """
    left = get_hardware(hardware).memory_bytes - weight_bytes(model, WEIGHT_DTYPE)
    per_sequence = model_kv_cache_bytes(model, context, kv_heads=kv_heads, dtype=dtype)
    return max(0, math.floor(left / per_sequence))


# --- figures ----------------------------------------------------------------------------


def step_time_figure(uncached_s: list[float], cached_s: list[float], prompt: int) -> go.Figure:
    """Seconds per generated token vs the position it is generated at, both ways."""
    positions = list(range(prompt, prompt + len(uncached_s)))
    fig = go.Figure()
    fig.add_scatter(x=positions, y=[s * 1e3 for s in uncached_s], name="no cache (recompute)")
    fig.add_scatter(x=positions[1:], y=[s * 1e3 for s in cached_s[1:]], name="KV cache (decode)")
    fig.update_layout(
        xaxis_title="position of the generated token (tokens)",
        yaxis_title="time per step (ms)",
        yaxis_type="log",
    )
    return style(fig, "Time per generated token (measured on this CPU)", width=900, height=460)


def decode_roofline_figure(
    model: str, hardware: str, contexts: list[int], batches: list[int]
) -> go.Figure:
    """Arithmetic intensity (FLOP/byte) vs attainable FLOP/s of decode steps and prefills.

    Points come from :func:`attn_course.cost.decode_step_cost` and
    :func:`attn_course.cost.time_to_first_token`; the roof is ``min(peak, intensity * bw)``.
    """
    from attn_course.cost import decode_step_cost, peak_flops_per_s, time_to_first_token
    from attn_course.presets import get_hardware

    hw = get_hardware(hardware)
    peak = peak_flops_per_s(hw)
    bw = hw.bandwidth_bytes_per_s
    xs = [10 ** (i / 10) for i in range(-10, 51)]
    fig = go.Figure()
    fig.add_scatter(x=xs, y=[min(peak, x * bw) for x in xs], name=f"{hw.name} roof",
                    mode="lines", line={"color": "black"})  # fmt: skip
    for batch in batches:
        pts = [decode_step_cost(model, hw, c, batch=batch) for c in contexts]
        fig.add_scatter(
            x=[p.arithmetic_intensity for p in pts], y=[p.flops / p.time_s for p in pts],
            mode="markers+lines", name=f"decode, batch {batch}",
            text=[f"context {c}" for c in contexts],
        )  # fmt: skip
    pts = [time_to_first_token(model, hw, c) for c in contexts]
    fig.add_scatter(x=[p.arithmetic_intensity for p in pts], y=[p.flops / p.time_s for p in pts],
                    mode="markers+lines", name="prefill (batch 1)",
                    text=[f"prompt {c}" for c in contexts])  # fmt: skip
    fig.update_layout(
        xaxis={"title": "arithmetic intensity (FLOP / byte)", "type": "log"},
        yaxis={"title": "attainable compute (FLOP/s)", "type": "log"},
    )
    return style(fig, f"Roofline: {model} on {hw.name} (bf16)", width=900, height=480)

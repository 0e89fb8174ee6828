"""Notebook 08's cost model of serving: TTFT, TBT, throughput and memory on one GPU.

Every time here is a roofline estimate from :mod:`attn_course.cost` (the slower of the
FLOPs at ``mfu x`` peak FLOP/s and the bytes at ``bandwidth_utilization x`` peak HBM
bandwidth), for a dense model preset or a Hugging Face config.json
(:func:`attn_course.presets.get_model`) on a hardware preset.

The serving model of :func:`serving_estimate`. ``batch`` requests are in flight, each with
a prompt of P tokens and an output of T tokens, decoding together one token per step
(continuous batching):

* **TTFT** (time to first token): the prefill of the request's prompt,
  :func:`attn_course.cost.time_to_first_token` (P tokens, batch 1). With ``chunk_size`` c
  the prompt is split into ``ceil(P / c)`` chunks, each run in one step *fused* with a
  decode step of the ``batch - 1`` other requests (:func:`fused_step`): TTFT is the sum of
  those steps.
* **TBT** (time between tokens): one decode step of the whole batch at the mean context
  ``P + (T + 1) // 2`` (the cache grows from P + 1 to P + T over the request),
  :func:`attn_course.cost.decode_step_cost`. ``worst_tbt_s`` is a running request's longest
  gap while a new prompt is prefilled: the whole prefill plus a decode step without
  chunking, the longest fused step with it (:func:`chunked_prefill_effect`).
* **throughput**: ``batch / TBT`` generated tokens per second in decode.
* **memory**: the weights plus ``batch`` caches of ``P + T`` tokens; ``max_batch`` is how
  many such caches fit beside the weights (:func:`attn_course.kvcache.max_batch`'s rule).

Chunking does not reduce the prefill's FLOPs (:func:`attn_course.cost.chunked_prefill_flops`
equals one causal pass): it only bounds how much work one step does, so the requests that
are decoding keep getting tokens while a long prompt is prefilled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from attn_course import cost
from attn_course.figures import style, vline
from attn_course.presets import Hardware, ModelShape, get_hardware, get_model
from attn_course.validate import canonical_dtype, check_count, check_fraction, check_loop_size

__all__ = [
    "DEFAULT_HARDWARE",
    "DEFAULT_MODEL",
    "ChunkedPrefillEffect",
    "ServingEstimate",
    "chunked_prefill_effect",
    "chunked_prefill_figure",
    "fused_step",
    "serving_estimate",
    "throughput_figure",
]

DEFAULT_MODEL = "Llama-3-8B"
DEFAULT_HARDWARE = "H100-SXM5-80GB"


@dataclass(frozen=True)
class ServingEstimate:
    """What one serving configuration costs (seconds, bytes, tokens/s).

    ttft_s:                  time to first token of a request (prefill, chunked or not)
    tbt_s:                   time between tokens in steady decode (one decode step)
    throughput_tokens_per_s: generated tokens per second, ``batch / tbt_s``
    weight_bytes:            the model's parameters in ``dtype``
    kv_bytes:                the whole batch's KV cache at ``prompt + output`` tokens
    memory_bytes:            ``weight_bytes + kv_bytes``
    fits:                    ``memory_bytes <= device memory``
    max_batch:               most sequences of ``prompt + output`` tokens beside the weights
    kv_bytes_per_sequence:   one sequence's cache at ``prompt + output`` tokens
    worst_tbt_s:             a running request's longest gap while a new prompt prefills
    prefill_steps:           steps the prefill takes (1 without chunking)
    request_latency_s:       ``ttft_s + (output - 1) * tbt_s``: first to last token
    """

    ttft_s: float
    tbt_s: float
    throughput_tokens_per_s: float
    weight_bytes: float
    kv_bytes: float
    memory_bytes: float
    fits: bool
    max_batch: int
    kv_bytes_per_sequence: float
    worst_tbt_s: float
    prefill_steps: int
    request_latency_s: float


@dataclass(frozen=True)
class ChunkedPrefillEffect:
    """A long prompt arrives while ``running`` requests decode: what it costs them and itself.

    ttft_s, worst_tbt_s:    the long request's time to first token and the running ones'
                            longest gap between tokens, at ``chunk_size`` (None: unchunked)
    ttft_unchunked_s:       the prefill in one step (:func:`cost.time_to_first_token`)
    worst_tbt_unchunked_s:  the running requests wait the whole prefill, then decode:
                            ``ttft_unchunked_s + decode_step_s``
    decode_step_s:          one decode step of the running requests alone
    steps:                  steps of the long prompt's prefill
    step_times_s:           each of them (fused with the running requests' decode)
    prefill_flops:          the layers' FLOPs of the prefill at ``chunk_size``
    prefill_flops_unchunked: the same in one causal pass: equal (chunking moves no FLOPs)
    """

    prompt_tokens: int
    chunk_size: int | None
    running: int
    running_context: int
    ttft_s: float
    worst_tbt_s: float
    ttft_unchunked_s: float
    worst_tbt_unchunked_s: float
    decode_step_s: float
    steps: int
    step_times_s: tuple[float, ...]
    prefill_flops: float
    prefill_flops_unchunked: float

    def row(self) -> dict[str, float | int | str]:
        """The columns notebook 08's table shows, named with their units."""
        return {
            "chunk (tokens)": "whole" if self.chunk_size is None else self.chunk_size,
            "steps": self.steps,
            "long prompt's TTFT (s)": self.ttft_s,
            "running requests' worst TBT (ms)": 1e3 * self.worst_tbt_s,
            "prefill FLOPs / one pass": self.prefill_flops / self.prefill_flops_unchunked,
        }


def _options(dtype: Any, kv_dtype: Any, mfu: float, bandwidth_utilization: float) -> dict[str, Any]:
    """The roofline keyword arguments, validated once."""
    return {
        "dtype": canonical_dtype(dtype),
        "kv_dtype": None if kv_dtype is None else canonical_dtype(kv_dtype, "kv_dtype"),
        "mfu": check_fraction("mfu", mfu),
        "bandwidth_utilization": check_fraction("bandwidth_utilization", bandwidth_utilization),
    }


def fused_step(
    model: str | ModelShape | Any,
    hardware: str | Hardware,
    *,
    start: int,
    length: int,
    running: int,
    running_context: int,
    dtype: Any = "bfloat16",
    kv_dtype: Any = None,
    mfu: float = 0.5,
    bandwidth_utilization: float = 0.8,
) -> cost.RooflineEstimate:
    """One step that prefills prompt tokens ``start .. start + length - 1`` and decodes ``running``.

    FLOPs: :func:`cost.prefill_chunk_flops` (the chunk's layers) + the LM head for its
    ``length`` positions (``2 d vocab`` each, as :func:`cost.prefill_flops` counts) +
    :func:`cost.decode_step_flops` of ``running`` sequences at ``running_context``.
    Bytes: the matmul weights once (one pass serves every token of the step) + the chunk's
    cache (``start`` tokens read, ``length`` written) + the running requests' caches.
    ``running = 0`` is a prefill step alone.
    """
    m, hw = get_model(model), get_hardware(hardware)
    opts = _options(dtype, kv_dtype, mfu, bandwidth_utilization)
    running = check_count("running", running, minimum=0)
    context = check_count("running_context", running_context)
    kv = opts["kv_dtype"] or opts["dtype"]
    flops = cost.prefill_chunk_flops(m, start, length)
    flops += cost.matmul_flops(length, m.d_model, m.vocab)
    n_bytes = cost.matmul_parameter_count(m) * cost.bytes_per_element(opts["dtype"])
    n_bytes += cost.model_kv_cache_bytes(m, start + length, dtype=kv)
    if running:
        flops += cost.decode_step_flops(m, context, batch=running)
        n_bytes += cost.model_kv_cache_bytes(m, context, batch=running, dtype=kv)
    peak = cost.peak_flops_per_s(hw, opts["dtype"])
    return cost.RooflineEstimate(
        flops=flops,
        bytes_moved=n_bytes,
        compute_s=cost.compute_time_s(flops, peak, utilization=opts["mfu"]),
        memory_s=cost.transfer_time_s(
            n_bytes, hw.bandwidth_bytes_per_s * opts["bandwidth_utilization"]
        ),
    )


def _chunk_step_times(
    m: ModelShape,
    hw: Hardware,
    prompt_tokens: int,
    chunk_size: int,
    running: int,
    running_context: int,
    opts: dict[str, Any],
) -> tuple[float, ...]:
    check_loop_size("prompt_tokens", -(-prompt_tokens // chunk_size), "chunks")
    return tuple(
        fused_step(m, hw, start=start, length=min(chunk_size, prompt_tokens - start),
                   running=running, running_context=running_context, **opts).time_s
        for start in range(0, prompt_tokens, chunk_size)
    )  # fmt: skip


def _prefill_schedule(
    m: ModelShape,
    hw: Hardware,
    prompt_tokens: int,
    chunk_size: int | None,
    others: int,
    context: int,
    opts: dict[str, Any],
) -> tuple[tuple[float, ...], float]:
    """The prefill's step times, and the longest wait of ``others`` decoding requests.

    Unchunked: one prefill step, after which the others decode (their wait: both). Chunked:
    the fused steps, each of which also gives the others a token (their wait: one step).
    """
    if chunk_size is None:
        prefill = cost.time_to_first_token(m, hw, prompt_tokens, **opts).time_s
        if not others:
            return (prefill,), prefill
        decode = cost.decode_step_cost(m, hw, context, batch=others, **opts).time_s
        return (prefill,), prefill + decode
    chunk_size = check_count("chunk_size", chunk_size)
    times = _chunk_step_times(m, hw, prompt_tokens, chunk_size, others, context, opts)
    return times, max(times)


def chunked_prefill_effect(
    model: str | ModelShape | Any,
    hardware: str | Hardware,
    *,
    prompt_tokens: int,
    chunk_size: int | None,
    running: int,
    running_context: int,
    dtype: Any = "bfloat16",
    kv_dtype: Any = None,
    mfu: float = 0.5,
    bandwidth_utilization: float = 0.8,
) -> ChunkedPrefillEffect:
    """A prompt of ``prompt_tokens`` arrives while ``running`` requests decode: both sides' cost.

    Without chunking the prefill runs as one step (:func:`cost.time_to_first_token`): the
    running requests get no token until it ends, so their worst TBT is the prefill plus a
    decode step. With chunk c every step runs one chunk fused with the running requests'
    decode (:func:`fused_step`, a roofline of the chunk's FLOPs plus the decode FLOPs
    against the weights plus the caches): their TBT becomes about one such step, and the
    long request's TTFT is the sum of its ``ceil(prompt_tokens / c)`` steps, a little more
    than one prefill. The prefill's FLOPs are the same either way
    (:func:`cost.chunked_prefill_flops`). ``running_context`` is held fixed over the steps.
    """
    m, hw = get_model(model), get_hardware(hardware)
    opts = _options(dtype, kv_dtype, mfu, bandwidth_utilization)
    prompt_tokens = check_count("prompt_tokens", prompt_tokens)
    running = check_count("running", running)
    running_context = check_count("running_context", running_context)
    decode = cost.decode_step_cost(m, hw, running_context, batch=running, **opts).time_s
    prefill = cost.time_to_first_token(m, hw, prompt_tokens, **opts).time_s
    times, worst = _prefill_schedule(
        m, hw, prompt_tokens, chunk_size, running, running_context, opts
    )
    flops_one_pass = cost.prefill_chunk_flops(m, 0, prompt_tokens)
    if chunk_size is None:
        flops = flops_one_pass
    else:
        flops = cost.chunked_prefill_flops(m, prompt_tokens, chunk_size)
    return ChunkedPrefillEffect(
        prompt_tokens=prompt_tokens, chunk_size=chunk_size, running=running,
        running_context=running_context, ttft_s=sum(times), worst_tbt_s=worst,
        ttft_unchunked_s=prefill, worst_tbt_unchunked_s=prefill + decode,
        decode_step_s=decode, steps=len(times), step_times_s=times,
        prefill_flops=flops, prefill_flops_unchunked=flops_one_pass,
    )  # fmt: skip


def serving_estimate(
    model: str | ModelShape | Any,
    hardware: str | Hardware,
    *,
    prompt_tokens: int,
    output_tokens: int,
    batch: int = 1,
    chunk_size: int | None = None,
    dtype: Any = "bfloat16",
    kv_dtype: Any = None,
    mfu: float = 0.5,
    bandwidth_utilization: float = 0.8,
) -> ServingEstimate:
    """TTFT, TBT, throughput and memory of serving ``batch`` requests (the module's model).

    ``ttft_s``: the prompt's prefill (:func:`cost.time_to_first_token`), or with
    ``chunk_size`` the sum of its fused chunk steps beside ``batch - 1`` decoding requests;
    ``tbt_s``: :func:`cost.decode_step_cost` at ``batch`` and the mean context
    ``prompt + (output + 1) // 2``; throughput ``batch / tbt_s`` tokens/s; memory
    ``weights + batch x cache(prompt + output)``; ``max_batch``
    ``floor((device memory - weights) / cache(prompt + output))``.
    """
    m, hw = get_model(model), get_hardware(hardware)
    opts = _options(dtype, kv_dtype, mfu, bandwidth_utilization)
    prompt_tokens = check_count("prompt_tokens", prompt_tokens)
    output_tokens = check_count("output_tokens", output_tokens)
    batch = check_count("batch", batch)
    mean_context = prompt_tokens + (output_tokens + 1) // 2
    tbt = cost.decode_step_cost(m, hw, mean_context, batch=batch, **opts).time_s
    others = batch - 1  # the requests that keep decoding while this one is prefilled
    times, stall = _prefill_schedule(m, hw, prompt_tokens, chunk_size, others, mean_context, opts)
    kv_dtype_ = opts["kv_dtype"] or opts["dtype"]
    per_sequence = cost.model_kv_cache_bytes(m, prompt_tokens + output_tokens, dtype=kv_dtype_)
    weights = cost.weight_bytes(m, opts["dtype"])
    memory = weights + batch * per_sequence
    return ServingEstimate(
        ttft_s=sum(times),
        tbt_s=tbt,
        throughput_tokens_per_s=batch / tbt,
        weight_bytes=weights,
        kv_bytes=batch * per_sequence,
        memory_bytes=memory,
        fits=memory <= hw.memory_bytes,
        max_batch=max(0, math.floor((hw.memory_bytes - weights) / per_sequence)),
        kv_bytes_per_sequence=per_sequence,
        worst_tbt_s=stall if others else tbt,  # alone, nobody waits for the prefill
        prefill_steps=len(times),
        request_latency_s=sum(times) + (output_tokens - 1) * tbt,
    )


# --- figures ----------------------------------------------------------------------------
# Same roofline keyword arguments as serving_estimate on purpose: the notebook passes one set.


def chunked_prefill_figure(
    model: str | ModelShape | Any,
    hardware: str | Hardware,
    *,
    prompt_tokens: int,
    running: int,
    running_context: int,
    chunk_sizes: list[int],
    dtype: Any = "bfloat16",
    kv_dtype: Any = None,
    mfu: float = 0.5,
    bandwidth_utilization: float = 0.8,
) -> go.Figure:
    """TBT of the running requests and TTFT of the long one vs chunk size (log-log, ms).

    Each point is :func:`chunked_prefill_effect` at one chunk size; dashed lines give the
    unchunked values and a plain decode step, which chunking approaches as c shrinks.
    """
    m, hw = get_model(model), get_hardware(hardware)
    sizes = [check_count("chunk_sizes", c) for c in chunk_sizes]
    if not sizes:
        raise ValueError("chunk_sizes must hold at least one chunk size, got []")
    kwargs = {"prompt_tokens": prompt_tokens, "running": running,
              "running_context": running_context, "dtype": dtype, "kv_dtype": kv_dtype,
              "mfu": mfu, "bandwidth_utilization": bandwidth_utilization}  # fmt: skip
    effects = [chunked_prefill_effect(m, hw, chunk_size=c, **kwargs) for c in sizes]
    base = effects[0]
    fig = go.Figure()
    fig.add_scatter(
        x=sizes,
        y=[e.ttft_s * 1e3 for e in effects],
        mode="lines+markers",
        name="TTFT of the long request",
        meta="ttft",
        line={"color": "#1565c0"},
    )
    fig.add_scatter(
        x=sizes,
        y=[e.worst_tbt_s * 1e3 for e in effects],
        mode="lines+markers",
        name="worst TBT of the running requests",
        meta="tbt",
        line={"color": "#e65100"},
    )
    ends = [min(sizes), max(sizes)]
    for key, value, name, colour in (
        ("ttft_unchunked", base.ttft_unchunked_s, "TTFT without chunking", "#1565c0"),
        ("tbt_unchunked", base.worst_tbt_unchunked_s, "worst TBT without chunking", "#e65100"),
        ("decode", base.decode_step_s, "decode step alone", "#555"),
    ):
        fig.add_scatter(
            x=ends,
            y=[value * 1e3] * 2,
            mode="lines",
            name=name,
            meta=key,
            line={"dash": "dash", "color": colour},
        )
    fig.update_layout(
        xaxis={"title": "chunk size (tokens per prefill step)", "type": "log"},
        yaxis={"title": "time (ms)", "type": "log"},
    )  # fmt: skip
    title = (f"Chunked prefill on {hw.name}: a {base.prompt_tokens:,}-token prompt arrives "
             f"while {base.running} requests of {base.running_context:,} tokens decode "
             f"({m.name}, roofline at MFU {mfu:g})")  # fmt: skip
    return style(fig, title, width=900, height=480)


def throughput_figure(
    model: str | ModelShape | Any,
    hardware: str | Hardware,
    *,
    context: int,
    batches: list[int],
    dtype: Any = "bfloat16",
    kv_dtype: Any = None,
    mfu: float = 0.5,
    bandwidth_utilization: float = 0.8,
) -> go.Figure:
    """Decode throughput (tokens/s) and TBT (ms) vs batch: memory-bound, then compute-bound.

    Each point is :func:`cost.decode_step_cost` at ``context``; throughput is ``batch / TBT``.
    A dotted line marks the first batch whose step is compute-bound, if any.
    """
    m, hw = get_model(model), get_hardware(hardware)
    sizes = [check_count("batches", b) for b in batches]
    if not sizes:
        raise ValueError("batches must hold at least one batch size, got []")
    opts = _options(dtype, kv_dtype, mfu, bandwidth_utilization)
    steps = [cost.decode_step_cost(m, hw, context, batch=b, **opts) for b in sizes]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_scatter(
        x=sizes,
        y=[b / s.time_s for b, s in zip(sizes, steps, strict=True)],
        mode="lines+markers",
        name="throughput (tokens/s)",
        meta="throughput",
    )
    fig.add_scatter(
        x=sizes,
        y=[s.time_s * 1e3 for s in steps],
        mode="lines+markers",
        name="TBT (ms)",
        meta="tbt",
        line={"dash": "dot"},
        secondary_y=True,
    )
    fig.update_xaxes(title="batch (sequences decoding together)", type="log")
    fig.update_yaxes(title="throughput (generated tokens/s)", type="log", secondary_y=False)
    fig.update_yaxes(title="time between tokens (ms)", type="log", secondary_y=True)
    bound = next((b for b, s in zip(sizes, steps, strict=True) if s.bound == "compute"), None)
    if bound is not None:
        vline(fig, bound, f"compute-bound from batch {bound}", dash="dot")
    title = (f"Decode on {hw.name} at {context:,} tokens of context: batching buys "
             f"throughput until the step turns compute-bound ({m.name})")  # fmt: skip
    return style(fig, title, width=900, height=460)

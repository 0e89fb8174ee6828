"""The flash suite: the course's FlashAttention kernel against naive attention and PyTorch's
SDPA (notebook 04). ``python -m attn_course.bench flash``.

The course's claims about speed are measurements, so they need a measuring instrument
that anyone can rerun and whose output says exactly where and how it was taken:

    python -m attn_course.bench flash --n 1024 2048 4096 8192 --head-dim 64 128 \\
        --dtype bf16 --causal both --batch 4 --heads 16 --backward \\
        --out records/flash_h100_2026-11-24.json
    python -m attn_course.bench flash --smoke      # a small CPU-friendly run (what CI runs)

It compares, for every configuration (sequence length n, head_dim, dtype, causal or not,
forward or forward + backward):

* ``triton``: this course's FlashAttention kernel (:mod:`attn_course.kernels`). Timed on a
  GPU only; in Triton's interpreter (no GPU) run once, at small n, to check that it is
  *correct*, and the record says it was not timed (:mod:`attn_course.bench.harness`).
* ``naive``: :func:`attn_course.scores.naive_attention`, which materialises S and P.
* ``sdpa``: ``torch.nn.functional.scaled_dot_product_attention`` with PyTorch's own choice
  of backend, and the same function with one backend forced through
  ``torch.nn.attention.sdpa_kernel``: ``sdpa_flash``, ``sdpa_efficient``, ``sdpa_cudnn``
  and ``sdpa_math``. A backend that cannot run a configuration (cuDNN on a CPU, flash
  with float32 on a GPU, ...) is recorded with the reason, not skipped silently.

For each it records the median time (ms), the throughput (TFLOP/s, from
:func:`attn_course.cost.attention_flops`), the peak memory the call added
(bytes), and, up to ``error_max_n``, the largest absolute error against a float64
reference (and of the gradients, with ``--backward``). How each is measured, and the
record's provenance fields, are the harness's; ``records/README.md`` documents the record.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from attn_course.bench.harness import (
    BenchConfig,
    add_common_arguments,
    add_sweep_arguments,
    configs_from,
    kernel_unavailable,
    measure,
    new_record,
    prepare_run,
    sweep_configs,
)
from attn_course.bench.records import UNAVAILABLE, BenchResult
from attn_course.scores import naive_attention
from attn_course.validate import resolve_dtype

__all__ = [
    "DESCRIPTION",
    "HELP",
    "IMPLEMENTATIONS",
    "LABELS",
    "add_arguments",
    "naive_gqa_attention",
    "run",
    "run_flash_benchmark",
    "smoke_configs",
]

HELP = "the course's Triton FlashAttention vs naive attention vs PyTorch SDPA"
DESCRIPTION = (
    "Time, throughput, peak memory and error of attention implementations. On a machine "
    "without a GPU the Triton kernel only runs (in the interpreter) at small n as a "
    "correctness check; use a CUDA GPU for its timings."
)
#: Every implementation the suite knows, in the order it runs and plots them.
IMPLEMENTATIONS = (
    "triton",
    "naive",
    "sdpa",
    "sdpa_flash",
    "sdpa_efficient",
    "sdpa_cudnn",
    "sdpa_math",
)
LABELS = {
    "triton": "this course's Triton kernel",
    "naive": "naive (materialises S and P)",
    "sdpa": "PyTorch SDPA (its default choice)",
    "sdpa_flash": "PyTorch SDPA, flash backend",
    "sdpa_efficient": "PyTorch SDPA, memory-efficient backend",
    "sdpa_cudnn": "PyTorch SDPA, cuDNN backend",
    "sdpa_math": "PyTorch SDPA, math backend",
}
FLOPS = (
    "attn_course.cost.attention_flops: 4·b·h·n²·d forward, ×3.5 with backward, halved when causal"
)
_SDPA_BACKENDS = {
    "sdpa_flash": "FLASH_ATTENTION",
    "sdpa_efficient": "EFFICIENT_ATTENTION",
    "sdpa_cudnn": "CUDNN_ATTENTION",
    "sdpa_math": "MATH",
}


# --- configurations ---------------------------------------------------------------------


def smoke_configs() -> list[BenchConfig]:
    """The ``--smoke`` run: small, float32, CPU-friendly; a few seconds on two cores."""
    return configs_from([64, 128, 256], [64], ["float32"], "both", batch=1, heads=2)


# --- the implementations ----------------------------------------------------------------


def _expand_kv(t: torch.Tensor, heads: int) -> torch.Tensor:
    """Repeat each key/value head for the heads that share it (GQA): kv head h serves
    query heads h·g … h·g + g − 1 with g = heads / kv_heads, as SDPA's enable_gqa does."""
    group = heads // t.shape[1]
    return t if group == 1 else t.repeat_interleave(group, dim=1)


def naive_gqa_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False
) -> torch.Tensor:
    """Output of :func:`attn_course.scores.naive_attention` for q (batch, heads, n, d) and
    k, v (batch, kv_heads, n, d): each kv head is repeated for the query heads that share it.

    In float64 this is the benchmark's reference; in the benchmark's dtype it is "naive".
    """
    if q.dim() != 4 or k.dim() != 4 or q.shape[1] % k.shape[1]:
        raise ValueError(
            f"q must be (batch, heads, n, d) and k (batch, kv_heads, n, d) with kv_heads "
            f"dividing heads, got {tuple(q.shape)} and {tuple(k.shape)}"
        )
    heads = q.shape[1]
    return naive_attention(q, _expand_kv(k, heads), _expand_kv(v, heads), causal=causal).out


def _naive(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
    return naive_gqa_attention(q, k, v, causal)


def _sdpa(backend: str | None) -> Callable[..., torch.Tensor]:
    def run(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
        gqa = k.shape[1] != q.shape[1]
        if backend is None:
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=gqa)
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel(getattr(SDPBackend, backend)):
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=gqa)

    return run


def _triton() -> Callable[..., torch.Tensor]:
    from attn_course.kernels import flash_attention

    def run(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
        return flash_attention(q, k, v, causal=causal)

    return run


def _implementation(name: str) -> Callable[..., torch.Tensor]:
    if name == "triton":
        return _triton()
    if name == "naive":
        return _naive
    if name == "sdpa":
        return _sdpa(None)
    return _sdpa(_SDPA_BACKENDS[name])


# --- measuring --------------------------------------------------------------------------


def _inputs(config: BenchConfig, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Seeded q, k, v and an output gradient in the config's dtype, on ``device``.

    The reference casts these same (already rounded) tensors to float64, so it sees
    exactly the values the implementation sees: the error measures the computation,
    not the rounding of the inputs.
    """
    generator = torch.Generator().manual_seed(config.n * 1009 + config.head_dim)
    b, h, kv, n, d = config.batch, config.heads, config.kv_heads, config.n, config.head_dim
    shapes = [(b, h, n, d), (b, kv, n, d), (b, kv, n, d), (b, h, n, d)]
    dtype = resolve_dtype(config.dtype)
    return tuple(torch.randn(s, generator=generator).to(dtype).to(device) for s in shapes)


def _forward_and_backward(
    fn: Callable[..., torch.Tensor],
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    grad_out: torch.Tensor,
    causal: bool,
) -> Callable[[], Any]:
    def step() -> Any:
        for t in (q, k, v):
            t.grad = None
        out = fn(q, k, v, causal)
        out.backward(grad_out)
        return out

    return step


def _reference(
    config: BenchConfig, device: torch.device
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
    """float64 output (and dq, dk, dv with backward) of plain naive attention."""
    q, k, v, grad_out = (t.to(torch.float64) for t in _inputs(config, device))
    if not config.backward:
        return _naive(q, k, v, config.causal), None
    for t in (q, k, v):
        t.requires_grad_(True)
    out = _naive(q, k, v, config.causal)
    out.backward(grad_out)
    return out.detach(), (q.grad, k.grad, v.grad)


def _why_unavailable(
    name: str, config: BenchConfig, device: torch.device, mode: str, problem: str | None
) -> str | None:
    """A reason this implementation cannot run ``config`` here, known before trying; else None."""
    if name == "triton":
        return kernel_unavailable(mode, problem, config.n)
    if device.type == "cpu" and name in ("sdpa_efficient", "sdpa_cudnn"):
        return "this backend exists only for CUDA GPUs (on a CPU, PyTorch has flash and math)"
    return None


def _measure(
    name: str,
    config: BenchConfig,
    device: torch.device,
    mode: str,
    reference: tuple[torch.Tensor, tuple[torch.Tensor, ...] | None] | None,
    min_run_time_s: float,
) -> BenchResult:
    fn = _implementation(name)
    q, k, v, grad_out = _inputs(config, device)
    if config.backward:
        for t in (q, k, v):
            t.requires_grad_(True)
        call = _forward_and_backward(fn, q, k, v, grad_out, config.causal)
    else:

        def call() -> torch.Tensor:
            with torch.no_grad():
                return fn(q, k, v, config.causal)

    expected, expected_grads = reference or (None, None)
    return measure(
        BenchResult(name, LABELS[name], config.to_dict()), call, device,
        flops=config.flops, min_run_time_s=min_run_time_s, expected=expected,
        grads=None if expected_grads is None else ((q, k, v), expected_grads),
        timed=not (name == "triton" and mode == "interpreter"),
    )  # fmt: skip


def run_flash_benchmark(
    configs: Sequence[BenchConfig],
    implementations: Sequence[str] | None = None,
    *,
    device: str | torch.device | None = None,
    error_max_n: int = 1024,
    min_run_time_s: float = 0.2,
    progress: bool = True,
    command: str | None = None,
    smoke: bool = False,
) -> dict[str, Any]:
    """Measure every implementation on every configuration and return the JSON record.

    ``device`` defaults to CUDA when available, else the CPU. ``error_max_n``: largest n at
    which the float64 reference is computed (it materialises n × n in float64).
    ``min_run_time_s``: how long the CPU timer keeps repeating a call.
    """
    if not configs:
        raise ValueError("configs must hold at least one BenchConfig")
    names, device, mode, problem = prepare_run(implementations, IMPLEMENTATIONS, device)
    results: list[BenchResult] = []
    jobs = [(config, name) for config in configs for name in names]
    if progress:
        from tqdm.auto import tqdm

        jobs = tqdm(jobs, desc="benchmarking attention", unit="run")
    reference_for: dict[BenchConfig, Any] = {}
    for config, name in jobs:
        if progress:
            jobs.set_postfix_str(f"{config.describe()} {name}")
        reason = _why_unavailable(name, config, device, mode, problem)
        if reason:
            results.append(BenchResult(name, LABELS[name], config.to_dict(), UNAVAILABLE,
                                       reason=reason))  # fmt: skip
            continue
        if config.n <= error_max_n and config not in reference_for:
            reference_for.clear()  # one configuration's reference at a time
            reference_for[config] = _reference(config, device)
        results.append(
            _measure(name, config, device, mode, reference_for.get(config), min_run_time_s)
        )
    return new_record(
        "flash", results, FLOPS, device=device, kernel_mode=mode, command=command, smoke=smoke,
        min_run_time_s=min_run_time_s, error_max_n=error_max_n,
    )  # fmt: skip


# --- command line ------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m attn_course.bench flash``."""
    add_sweep_arguments(parser)
    parser.add_argument("--causal", choices=["both", "yes", "no"], default="both")
    parser.add_argument("--kv-heads", type=int, default=None, help="GQA: key/value heads")
    parser.add_argument("--backward", action="store_true", help="time forward + backward")
    add_common_arguments(parser, IMPLEMENTATIONS, error_max_n=1024)


def run(args: argparse.Namespace, *, command: str) -> dict[str, Any]:
    """The record of the flash run the parsed :func:`add_arguments` options ask for,
    with ``command`` as its command line."""
    if args.smoke:
        configs = smoke_configs()
        if args.backward:
            configs += [BenchConfig(n=64, heads=2, causal=True, backward=True)]
    else:
        configs = sweep_configs(args, args.causal, backward=args.backward, kv_heads=args.kv_heads)
    return run_flash_benchmark(
        configs, args.impl, device=args.device, error_max_n=args.error_max_n,
        min_run_time_s=0.05 if args.smoke else args.min_run_time,
        progress=not args.quiet, command=command, smoke=args.smoke,
    )  # fmt: skip

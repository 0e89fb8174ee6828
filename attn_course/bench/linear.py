"""The linear suite: causal linear attention against softmax attention (notebook 05).

``python -m attn_course.bench linear``::

    python -m attn_course.bench linear --n 1024 2048 4096 8192 --head-dim 64 --dtype bf16
    python -m attn_course.bench linear --smoke     # a small CPU run (what the tests run)

The record has the schema of ``records/README.md`` with ``"benchmark": "linear"``. Every
configuration is causal, forward only. Implementations:

* ``linear_triton``: :func:`attn_course.kernels.linear.linear_attention_forward`, elu + 1
  inside the kernel. Timed on a GPU; in Triton's interpreter (no GPU) only run at small n
  to check it ("checked, not timed"), like the flash suite's ``triton``.
* ``linear_chunked``: :func:`attn_course.linear.causal_linear_attention_chunked` in
  PyTorch (chunks of 64), elu + 1 feature maps included.
* ``sdpa``: ``torch.nn.functional.scaled_dot_product_attention(..., is_causal=True)``,
  exact softmax attention, the baseline.

Errors are against a float64 reference of the *same* attention (causal elu + 1 linear
attention for the linear implementations, causal softmax for sdpa). FLOPs: each
implementation is credited with its own algorithm's matmul FLOPs:
:func:`attn_course.linear.linear_attention_flops` (causal, chunk 64) for the linear ones,
:func:`attn_course.cost.attention_flops` (causal) for sdpa, so TFLOP/s says how
well each uses the hardware, and ms says which is faster.
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
from attn_course.cost import attention_flops
from attn_course.linear import (
    causal_linear_attention_chunked,
    elu_feature_map,
    linear_attention_flops,
)
from attn_course.scores import naive_attention
from attn_course.validate import resolve_dtype

__all__ = [
    "DESCRIPTION",
    "HELP",
    "IMPLEMENTATIONS",
    "LABELS",
    "add_arguments",
    "run",
    "run_linear_benchmark",
    "smoke_configs",
]

HELP = "Benchmark causal linear attention against softmax attention (notebook 05)."
DESCRIPTION = None
IMPLEMENTATIONS = ("linear_triton", "linear_chunked", "sdpa")
LABELS = {
    "linear_triton": "this course's Triton kernel (causal linear attention, elu+1)",
    "linear_chunked": "PyTorch chunked causal linear attention (elu+1)",
    "sdpa": "PyTorch SDPA, causal softmax (exact)",
}
CHUNK = 64
FLOPS = (
    "own algorithm's matmul FLOPs: attn_course.linear.linear_attention_flops "
    f"(causal, chunk {CHUNK}) x batch x heads for linear_*, attn_course.cost."
    "attention_flops (causal: 2·b·h·n²·d) for sdpa"
)
#: The head dims the linear kernel compiles for.
KERNEL_HEAD_DIMS = (16, 32, 64, 128)


def smoke_configs() -> list[BenchConfig]:
    """The ``--smoke`` run: float32, head_dim 16 (the kernel's smallest), n 32 … 128."""
    return configs_from([32, 64, 128], [16], ["float32"], "yes", batch=1, heads=2)


def _flops(name: str, config: BenchConfig) -> float:
    """FLOPs credited to ``name``: its own algorithm's (see the module docstring)."""
    if name == "sdpa":
        return attention_flops(config.batch, config.heads, config.n, config.head_dim, causal=True)
    per_head = linear_attention_flops(config.n, config.head_dim, causal=True, chunk_size=CHUNK)
    return per_head * config.batch * config.heads


def _call(name: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Callable[[], Any]:
    if name == "sdpa":
        return lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)
    if name == "linear_chunked":
        return lambda: causal_linear_attention_chunked(
            elu_feature_map(q), elu_feature_map(k), v, chunk_size=CHUNK
        )
    from attn_course.kernels.linear import linear_attention_forward

    return lambda: linear_attention_forward(q, k, v, feature_map="elu")


def _reference(name: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """float64 output, on the CPU, of the attention ``name`` computes."""
    q, k, v = (t.detach().cpu().double() for t in (q, k, v))
    if name == "sdpa":
        return naive_attention(q, k, v, causal=True).out
    return causal_linear_attention_chunked(elu_feature_map(q), elu_feature_map(k), v)


def _why_unavailable(name: str, config: BenchConfig, mode: str, problem: str | None) -> str | None:
    if name != "linear_triton":
        return None
    if config.head_dim not in KERNEL_HEAD_DIMS:
        return f"head_dim not in {', '.join(map(str, KERNEL_HEAD_DIMS))}"
    return kernel_unavailable(mode, problem, config.n)


def _measure(
    name: str, config: BenchConfig, device: torch.device, mode: str, problem: str | None,
    error_max_n: int, min_run_time_s: float,
) -> BenchResult:  # fmt: skip
    result = BenchResult(name, LABELS[name], config.to_dict())
    reason = _why_unavailable(name, config, mode, problem)
    if reason:
        result.status, result.reason = UNAVAILABLE, reason
        return result
    g = torch.Generator().manual_seed(config.n)
    shape = (config.batch, config.heads, config.n, config.head_dim)
    q, k, v = (torch.randn(shape, generator=g).to(resolve_dtype(config.dtype)).to(device)
               for _ in range(3))  # fmt: skip
    return measure(
        result, _call(name, q, k, v), device, flops=_flops(name, config),
        min_run_time_s=min_run_time_s,
        expected=_reference(name, q, k, v) if config.n <= error_max_n else None,
        timed=not (name == "linear_triton" and mode == "interpreter"),
    )  # fmt: skip


# Takes the options of flash.run_flash_benchmark, deliberately side by side: every suite's
# entry point is called alike (the gpucheck and notebooks pass them by name).
def run_linear_benchmark(
    configs: Sequence[BenchConfig],
    implementations: Sequence[str] | None = None,
    *,
    device: str | torch.device | None = None,
    error_max_n: int = 1024,
    min_run_time_s: float = 0.2,
    command: str | None = None,
    smoke: bool = False,
) -> dict[str, Any]:
    """Measure every implementation on every (causal, forward) configuration: the record."""
    if not configs:
        raise ValueError("configs must hold at least one BenchConfig")
    names, device, mode, problem = prepare_run(implementations, IMPLEMENTATIONS, device)
    results = [
        _measure(name, config, device, mode, problem, error_max_n, min_run_time_s)
        for config in configs
        for name in names
    ]
    return new_record(
        "linear", results, FLOPS, device=device, kernel_mode=mode, command=command,
        smoke=smoke, min_run_time_s=min_run_time_s, error_max_n=error_max_n,
    )  # fmt: skip


# --- command line ------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m attn_course.bench linear`` (always causal, forward)."""
    add_sweep_arguments(parser)
    add_common_arguments(parser, IMPLEMENTATIONS, error_max_n=1024)


def run(args: argparse.Namespace, *, command: str) -> dict[str, Any]:
    """The record of the linear run that ``args`` ask for, with ``command`` recorded."""
    configs = smoke_configs() if args.smoke else sweep_configs(args, "yes")
    return run_linear_benchmark(
        configs, args.impl, device=args.device, error_max_n=args.error_max_n,
        min_run_time_s=0.05 if args.smoke else args.min_run_time, command=command,
        smoke=args.smoke,
    )  # fmt: skip

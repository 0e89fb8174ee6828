"""Benchmark causal linear attention against softmax attention: ``bench linear`` (notebook 05).

Meant to be wired into :mod:`attn_course.bench` as a sub-command::

    python -m attn_course.bench linear --n 1024 2048 4096 8192 --head-dim 64 --dtype bf16
    python -m attn_course.bench linear --smoke     # a small CPU run (what the tests run)

through :func:`add_arguments` (fills the sub-parser) and :func:`run` (returns the JSON
record, in the format of ``records/README.md``, schema ``attn_course.bench/1``, with
``"benchmark": "linear"``). Every configuration is causal, forward only. Implementations:

* ``linear_triton``: :func:`attn_course.kernels.linear.linear_attention_forward`, elu + 1
  inside the kernel. Timed on a GPU; in Triton's interpreter (no GPU) only run at small n
  to check it ("checked, not timed"), like the flash benchmark's ``triton``.
* ``linear_chunked``: :func:`attn_course.linear.causal_linear_attention_chunked` in
  PyTorch (chunks of 64), elu + 1 feature maps included.
* ``sdpa``: ``torch.nn.functional.scaled_dot_product_attention(..., is_causal=True)``,
  exact softmax attention, the baseline.

Errors are against a float64 reference of the *same* attention (causal elu + 1 linear
attention for the linear implementations, causal softmax for sdpa). FLOPs: each
implementation is credited with its own algorithm's matmul FLOPs:
:func:`attn_course.linear.linear_attention_flops` (causal, chunk 64) for the linear ones,
:func:`attn_course.bench.attention_flops` (causal) for sdpa, so TFLOP/s says how well each
uses the hardware, and ms says which is faster.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import torch
import torch.nn.functional as F

from attn_course.bench import (
    CHECKED,
    FAILED,
    INTERPRETER_MAX_N,
    OK,
    UNAVAILABLE,
    BenchConfig,
    attention_flops,
    call_peak_bytes,
    configs_from,
    median_ms,
    new_record,
    tflops_per_s,
)
from attn_course.linear import (
    causal_linear_attention_chunked,
    elu_feature_map,
    linear_attention_flops,
)
from attn_course.scores import naive_attention
from attn_course.validate import resolve_dtype

__all__ = ["IMPLEMENTATIONS", "LABELS", "add_arguments", "run", "run_linear_benchmark",
           "smoke_configs"]  # fmt: skip

IMPLEMENTATIONS = ("linear_triton", "linear_chunked", "sdpa")
LABELS = {
    "linear_triton": "this course's Triton kernel (causal linear attention, elu+1)",
    "linear_chunked": "PyTorch chunked causal linear attention (elu+1)",
    "sdpa": "PyTorch SDPA, causal softmax (exact)",
}
CHUNK = 64


def smoke_configs() -> list[BenchConfig]:
    """The ``--smoke`` run: float32, head_dim 16 (the kernel's smallest), n 32 … 128."""
    return configs_from([32, 64, 128], [16], ["float32"], "yes", batch=1, heads=2)


def _flops(name: str, config: BenchConfig) -> float:
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
    q, k, v = (t.detach().cpu().double() for t in (q, k, v))
    if name == "sdpa":
        return naive_attention(q, k, v, causal=True).out
    return causal_linear_attention_chunked(elu_feature_map(q), elu_feature_map(k), v)


def _measure(
    name: str, config: BenchConfig, device: torch.device, mode: str, error_max_n: int,
    min_run_time_s: float,
) -> dict[str, Any]:  # fmt: skip
    result: dict[str, Any] = {
        "implementation": name, "label": LABELS[name],
        "config": {**asdict(config), "mode": config.mode}, "status": OK, "ms": None,
        "tflops": None, "peak_bytes": None, "max_abs_error": None, "grad_max_abs_error": None,
        "reason": None,
    }  # fmt: skip
    if name == "linear_triton":
        if mode == "gpu" and device.type != "cuda":
            return {**result, "status": UNAVAILABLE,
                    "reason": "the kernels run on the GPU here, but this benchmark runs on the CPU"}
        if mode == "interpreter" and config.n > INTERPRETER_MAX_N:
            return {**result, "status": UNAVAILABLE,
                    "reason": f"Triton interpreter: only checked up to n = {INTERPRETER_MAX_N}"}
        if config.head_dim not in (16, 32, 64, 128):
            return {**result, "status": UNAVAILABLE, "reason": "head_dim not in 16, 32, 64, 128"}
    g = torch.Generator().manual_seed(config.n)
    shape = (config.batch, config.heads, config.n, config.head_dim)
    q, k, v = (torch.randn(shape, generator=g).to(resolve_dtype(config.dtype)).to(device)
               for _ in range(3))  # fmt: skip
    call = _call(name, q, k, v)
    try:
        out = call()
        if config.n <= error_max_n:
            error = (out.detach().cpu().double() - _reference(name, q, k, v)).abs().max()
            result["max_abs_error"] = float(error)
        if name == "linear_triton" and mode == "interpreter":
            return {**result, "status": CHECKED,
                    "reason": "Triton interpreter: run once for correctness, not timed"}
        result["ms"] = median_ms(call, device, min_run_time_s)
        result["tflops"] = tflops_per_s(_flops(name, config), result["ms"])
        result["peak_bytes"] = call_peak_bytes(call, device)
    except (RuntimeError, ValueError) as error:  # out of memory, unsupported dtype, ...
        return {**result, "status": FAILED, "reason": f"{type(error).__name__}: {error}"[:300]}
    return result


def run_linear_benchmark(
    configs: list[BenchConfig],
    implementations: list[str] | None = None,
    *,
    device: str | torch.device | None = None,
    error_max_n: int = 1024,
    min_run_time_s: float = 0.2,
    command: str | None = None,
    smoke: bool = False,
) -> dict[str, Any]:
    """Measure every implementation on every (causal, forward) configuration: the record."""
    from attn_course.kernels import kernel_mode

    if not configs:
        raise ValueError("configs must hold at least one BenchConfig")
    names = list(implementations or IMPLEMENTATIONS)
    unknown = [name for name in names if name not in IMPLEMENTATIONS]
    if unknown:
        raise ValueError(f"unknown implementations {unknown}; known: {list(IMPLEMENTATIONS)}")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    mode = kernel_mode()
    results = [
        _measure(name, config, device, mode, error_max_n, min_run_time_s)
        for config in configs
        for name in names
    ]
    return new_record(
        "linear", smoke=smoke, device=device, kernel_mode=mode, min_run_time_s=min_run_time_s,
        command=command or "attn_course.bench_linear.run_linear_benchmark(...)",
        flops="own algorithm's matmul FLOPs: attn_course.linear.linear_attention_flops "
        f"(causal, chunk {CHUNK}) x batch x heads for linear_*, attn_course.bench."
        "attention_flops (causal: 2·b·h·n²·d) for sdpa",
        error_max_n=error_max_n, results=results,
    )  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m attn_course.bench linear``."""
    parser.add_argument("--n", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    parser.add_argument("--head-dim", type=int, nargs="+", default=[64])
    parser.add_argument("--dtype", nargs="+", default=None, help="bf16 fp16 fp32 ...")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--impl", nargs="+", choices=IMPLEMENTATIONS, default=None,
                        help="default: all")  # fmt: skip
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if present)")
    parser.add_argument("--error-max-n", type=int, default=1024)
    parser.add_argument("--min-run-time", type=float, default=0.2, help="CPU timer, seconds")
    parser.add_argument("--smoke", action="store_true", help="small CPU-friendly run (CI)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark the parsed ``args`` describe and return its record (not written)."""
    if args.smoke:
        configs = smoke_configs()
    else:
        gpu = (args.device or ("cuda" if torch.cuda.is_available() else "cpu")) == "cuda"
        dtypes = args.dtype or (["bfloat16"] if gpu else ["float32"])
        configs = configs_from(args.n, args.head_dim, dtypes, "yes", batch=args.batch,
                               heads=args.heads)  # fmt: skip
    return run_linear_benchmark(
        configs, args.impl, device=args.device, error_max_n=args.error_max_n,
        min_run_time_s=0.05 if args.smoke else args.min_run_time,
        command="python -m attn_course.bench linear " + shlex.join(sys.argv[2:]),
        smoke=args.smoke,
    )  # fmt: skip

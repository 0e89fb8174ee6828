"""Benchmark sliding-window (sparse) attention against dense attention: the ``sparse`` suite.

Wired into ``python -m attn_course.bench sparse`` through :func:`add_arguments` and
:func:`run`; the record has the schema of :mod:`attn_course.bench` (``records/README.md``),
with ``"benchmark": "sparse"`` and extra configuration fields::

    python -m attn_course.bench sparse --n 1024 2048 4096 8192 --window 256 --block 64 \\
        --out records/sparse_cpu_<date>.json
    python -m attn_course.bench sparse --smoke     # small CPU run (what the tests run)

Implementations, all on a causal sliding window of ``window`` keys:

* ``window_torch``: :func:`attn_course.sparse.blocked_sparse_attention`, PyTorch that
  computes only the tiles of the block layout: O(n · window) work.
* ``triton_sparse``: the block-sparse Triton kernel (:mod:`attn_course.kernels.sparse`).
  In Triton's interpreter (no GPU) it only runs at n <= 128, as a correctness check.
* ``flex``: FlexAttention with the same mask as a BlockMask; compiled with torch.compile on
  a GPU (skips empty tiles); eager on a CPU, where it computes the full score matrix.
* ``naive``: :func:`attn_course.scores.naive_attention` with the dense (n x n) mask.
* ``sdpa``: ``scaled_dot_product_attention(is_causal=True)``: dense *causal* attention, the
  baseline a window is meant to beat (a different function: it has no window).

Each result's config holds ``pattern``, ``window``, ``block``, ``tiles`` (tiles visited,
counted from the layout) and ``formula_tiles`` (:func:`attn_course.sparse.sliding_window_tiles`).
TFLOP/s credit every implementation with the FLOPs of the visited tiles, 4 · d per computed
score (``BlockLayout.flops``): a dense implementation does more work for the same credit.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import warnings
from collections.abc import Callable
from typing import Any

import torch

import attn_course.kernels  # noqa: F401  (kernel mode set before FlexAttention imports triton)
from attn_course.bench import (
    CHECKED,
    FAILED,
    OK,
    UNAVAILABLE,
    call_peak_bytes,
    median_ms,
    new_record,
    tflops_per_s,
)
from attn_course.scores import naive_attention
from attn_course.sparse import (
    blocked_sparse_attention,
    flex_available,
    sliding_window_pattern,
    sliding_window_tiles,
)
from attn_course.validate import resolve_dtype

__all__ = ["IMPLEMENTATIONS", "LABELS", "add_arguments", "run", "run_sparse_benchmark"]

IMPLEMENTATIONS = ("window_torch", "triton_sparse", "flex", "naive", "sdpa")
LABELS = {
    "window_torch": "sliding window, PyTorch, visited tiles only",
    "triton_sparse": "sliding window, this course's block-sparse Triton kernel",
    "flex": "sliding window, FlexAttention (compiled on GPU, eager on CPU)",
    "naive": "sliding window as a dense mask, naive (materialises S and P)",
    "sdpa": "dense causal attention, PyTorch SDPA (no window)",
}
#: The Triton kernel runs in the interpreter only up to this n (a correctness check).
INTERPRETER_MAX_N = 128


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m attn_course.bench sparse``."""
    parser.add_argument("--n", type=int, nargs="+", default=[1024, 2048, 4096, 8192])
    parser.add_argument("--window", type=int, default=256, help="keys per query")
    parser.add_argument("--block", type=int, default=64, help="tile size (16, 32, 64, 128)")
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--dtype", default=None, help="default: bfloat16 on GPU, float32 on CPU")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--impl", nargs="+", choices=IMPLEMENTATIONS, default=None)
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if present)")
    parser.add_argument("--error-max-n", type=int, default=2048)
    parser.add_argument("--min-run-time", type=float, default=0.2, help="CPU timer, seconds")
    parser.add_argument("--smoke", action="store_true", help="small CPU-friendly run (CI)")


def _implementation(name: str, pattern: Any, block: int, mask: torch.Tensor) -> Callable:
    if name == "window_torch":
        layout = pattern.layout(block)
        return lambda q, k, v: blocked_sparse_attention(q, k, v, pattern, block, layout=layout)
    if name == "triton_sparse":
        from attn_course.kernels.sparse import block_sparse_attention_forward

        layout = pattern.layout(block)
        return lambda q, k, v: block_sparse_attention_forward(q, k, v, layout, mask)[0]
    if name == "flex":
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        block_mask = create_block_mask(pattern.flex_mask_mod(), None, None, pattern.n, pattern.n,
                                       device=str(mask.device), BLOCK_SIZE=block)  # fmt: skip
        fn = torch.compile(flex_attention) if mask.device.type == "cuda" else flex_attention

        def flex(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            with warnings.catch_warnings():  # eager on a CPU: it warns that it is unfused
                warnings.filterwarnings("ignore", message=".*without torch.compile")
                return fn(q, k, v, block_mask=block_mask)

        return flex
    if name == "naive":
        return lambda q, k, v: naive_attention(q, k, v, mask=mask).out
    return lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)


def _why_unavailable(name: str, n: int, device: torch.device, block: int) -> str | None:
    if name == "triton_sparse":
        from attn_course.kernels import kernel_mode

        mode = kernel_mode()
        if (mode == "gpu") != (device.type == "cuda"):
            return f"the kernels run on {'the GPU' if mode == 'gpu' else 'the CPU'} here"
        if mode == "interpreter" and n > INTERPRETER_MAX_N:
            return (f"Triton interpreter (no GPU): run only at n <= {INTERPRETER_MAX_N} to "
                    "check correctness; far too slow to time")  # fmt: skip
    if name == "flex":
        ok, why = flex_available()
        if not ok:
            return why
        if n % block:
            return f"FlexAttention's block mask needs n a multiple of block = {block}"
    return None


def run_sparse_benchmark(
    ns: list[int], window: int, block: int, *, head_dim: int = 64, dtype: str = "float32",
    batch: int = 1, heads: int = 4, implementations: list[str] | None = None,
    device: str | None = None, error_max_n: int = 2048, min_run_time_s: float = 0.2,
    command: str | None = None, smoke: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Measure every implementation at every n; return the JSON record (bench schema)."""
    if not ns:
        raise ValueError("ns must list at least one sequence length")
    names = list(implementations or IMPLEMENTATIONS)
    unknown = [n for n in names if n not in IMPLEMENTATIONS]
    if unknown:
        raise ValueError(f"unknown implementations {unknown}; known: {list(IMPLEMENTATIONS)}")
    torch_dtype = resolve_dtype(dtype)
    device_ = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    results = []
    for n in sorted(set(ns)):
        pattern = sliding_window_pattern(n, window)
        layout = pattern.layout(block)
        flops = layout.flops(head_dim, batch, heads)
        config = {
            "n": n, "head_dim": head_dim, "dtype": str(torch_dtype).removeprefix("torch."),
            "causal": True, "backward": False, "batch": batch, "heads": heads,
            "kv_heads": heads, "mode": "fwd", "pattern": pattern.name, "window": window,
            "block": block, "tiles": layout.visited_tiles,
            "formula_tiles": sliding_window_tiles(n, window, block),
        }  # fmt: skip
        g = torch.Generator().manual_seed(n)
        q, k, v = (torch.randn(batch, heads, n, head_dim, generator=g).to(device_, torch_dtype)
                   for _ in range(3))  # fmt: skip
        mask = pattern.dense_mask(device_)
        reference = None
        if n <= error_max_n:
            reference = naive_attention(q.double(), k.double(), v.double(), mask=mask).out
        for name in names:
            result: dict[str, Any] = {
                "implementation": name, "label": LABELS[name], "config": config,
                "status": OK, "ms": None, "tflops": None, "peak_bytes": None,
                "max_abs_error": None, "grad_max_abs_error": None, "reason": None,
            }  # fmt: skip
            results.append(result)
            reason = _why_unavailable(name, n, device_, block)
            if reason:
                result.update(status=UNAVAILABLE, reason=reason)
                continue
            try:
                fn = _implementation(name, pattern, block, mask)

                def call(fn: Callable = fn, q=q, k=k, v=v) -> torch.Tensor:  # noqa: ANN001
                    with torch.no_grad():
                        return fn(q, k, v)

                out = call()
                if reference is not None and name != "sdpa":  # sdpa has no window
                    error = (out.double() - reference).abs().max().item()
                    result["max_abs_error"] = error
                del out
                if name == "triton_sparse" and device_.type == "cpu":
                    result.update(status=CHECKED, reason="Triton interpreter: correctness only")
                    continue
                result["ms"] = median_ms(call, device_, min_run_time_s)
                result["tflops"] = tflops_per_s(flops, result["ms"])
                result["peak_bytes"] = call_peak_bytes(call, device_)
            except (RuntimeError, ValueError) as error:
                result.update(status=FAILED, reason=" ".join(str(error).split())[:600])
    return new_record(
        "sparse", smoke=smoke, device=device_, kernel_mode=_kernel_mode(),
        min_run_time_s=min_run_time_s,
        command=command or "attn_course.bench_sparse.run_sparse_benchmark(...)",
        flops="attn_course.sparse.BlockLayout.flops: 4·d per score of the visited tiles, "
        "× batch · heads (the same credit for every implementation)",
        error_max_n=error_max_n, results=results,
    )  # fmt: skip


def _kernel_mode() -> str:
    try:
        from attn_course.kernels import kernel_mode
    except ImportError:
        return "unavailable"
    return kernel_mode()


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the suite from parsed :func:`add_arguments` options and return its record.

    ``python -m attn_course.bench sparse`` prints the table and writes ``--out``.
    """
    if args.smoke:
        ns, window, block, heads, min_run = [64, 128, 256], 32, 16, 2, 0.05
        head_dim, dtype = 16, "float32"
    else:
        ns, window, block, heads, min_run = args.n, args.window, args.block, args.heads, (
            args.min_run_time)  # fmt: skip
        head_dim = args.head_dim
        gpu = (args.device or ("cuda" if torch.cuda.is_available() else "cpu")) == "cuda"
        dtype = args.dtype or ("bfloat16" if gpu else "float32")
    command = "python -m attn_course.bench sparse " + shlex.join(sys.argv[2:])
    record = run_sparse_benchmark(
        ns, window, block, head_dim=head_dim, dtype=dtype, batch=args.batch, heads=heads,
        implementations=args.impl, device=args.device, error_max_n=args.error_max_n,
        min_run_time_s=min_run, command=command, smoke=args.smoke,
    )  # fmt: skip
    return record

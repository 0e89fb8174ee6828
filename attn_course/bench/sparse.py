"""The sparse suite: sliding-window attention against dense attention (notebook 06).

``python -m attn_course.bench sparse``; the record has the schema of ``records/README.md``,
with ``"benchmark": "sparse"`` and extra configuration fields::

    python -m attn_course.bench sparse --n 1024 2048 4096 8192 --window 256 --block 64 \\
        --out records/sparse_cpu_<date>.json
    python -m attn_course.bench sparse --smoke     # small CPU run (what the tests run)

Implementations, all on a causal sliding window of ``window`` keys:

* ``window_torch``: :func:`attn_course.sparse.blocked_sparse_attention`, PyTorch that
  computes only the tiles of the block layout: O(n · window) work.
* ``triton_sparse``: the block-sparse Triton kernel (:mod:`attn_course.kernels.sparse`).
  In Triton's interpreter (no GPU) it only runs at small n, as a correctness check.
* ``flex``: FlexAttention with the same mask as a BlockMask; compiled with torch.compile on
  a GPU (skips empty tiles); eager on a CPU, where it computes the full score matrix.
* ``naive``: :func:`attn_course.scores.naive_attention` with the dense (n x n) mask.
* ``sdpa``: ``scaled_dot_product_attention(is_causal=True)``: dense *causal* attention, the
  baseline a window is meant to beat (a different function: it has no window, so it gets
  no error against the window's reference).

Each result's config holds ``pattern``, ``window``, ``block``, ``tiles`` (tiles visited,
counted from the layout) and ``formula_tiles`` (:func:`attn_course.sparse.sliding_window_tiles`).
TFLOP/s credit every implementation with the FLOPs of the visited tiles, 4 · d per computed
score (``BlockLayout.flops``): a dense implementation does more work for the same credit.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable, Sequence
from functools import cache, partial
from typing import Any

import torch

from attn_course.bench.harness import (
    BenchConfig,
    add_common_arguments,
    default_dtype,
    kernel_unavailable,
    measure,
    new_record,
    prepare_run,
)
from attn_course.bench.records import UNAVAILABLE, BenchResult
from attn_course.scores import naive_attention
from attn_course.sparse import (
    blocked_sparse_attention,
    flex_available,
    sliding_window_pattern,
    sliding_window_tiles,
)
from attn_course.validate import resolve_dtype

__all__ = [
    "DESCRIPTION",
    "HELP",
    "IMPLEMENTATIONS",
    "LABELS",
    "add_arguments",
    "run",
    "run_sparse_benchmark",
]

HELP = "Benchmark sliding-window (sparse) attention against dense attention (notebook 06)."
DESCRIPTION = None
IMPLEMENTATIONS = ("window_torch", "triton_sparse", "flex", "naive", "sdpa")
LABELS = {
    "window_torch": "sliding window, PyTorch, visited tiles only",
    "triton_sparse": "sliding window, this course's block-sparse Triton kernel",
    "flex": "sliding window, FlexAttention (compiled on GPU, eager on CPU)",
    "naive": "sliding window as a dense mask, naive (materialises S and P)",
    "sdpa": "dense causal attention, PyTorch SDPA (no window)",
}
FLOPS = (
    "attn_course.sparse.BlockLayout.flops: 4·d per score of the visited tiles, "
    "× batch · heads (the same credit for every implementation)"
)


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


def _why_unavailable(name: str, n: int, block: int, mode: str, problem: str | None) -> str | None:
    if name == "triton_sparse":
        return kernel_unavailable(mode, problem, n)
    if name == "flex":
        ok, why = flex_available()
        if not ok:
            return why
        if n % block:
            return f"FlexAttention's block mask needs n a multiple of block = {block}"
    return None


def run_sparse_benchmark(
    ns: Sequence[int], window: int, block: int, *, head_dim: int = 64, dtype: str = "float32",
    batch: int = 1, heads: int = 4, implementations: Sequence[str] | None = None,
    device: str | None = None, error_max_n: int = 2048, min_run_time_s: float = 0.2,
    command: str | None = None, smoke: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Measure every implementation at every n; return the JSON record (bench schema)."""
    if not ns:
        raise ValueError("ns must list at least one sequence length")
    names, device_, mode, problem = prepare_run(implementations, IMPLEMENTATIONS, device)
    results = []
    for n in sorted(set(ns)):
        config = BenchConfig(n, head_dim, dtype, causal=True, batch=batch, heads=heads)
        pattern = sliding_window_pattern(n, window)
        layout = pattern.layout(block)
        fields = {
            **config.to_dict(), "pattern": pattern.name, "window": window, "block": block,
            "tiles": layout.visited_tiles, "formula_tiles": sliding_window_tiles(n, window, block),
        }  # fmt: skip
        g = torch.Generator().manual_seed(n)
        q, k, v = (torch.randn(batch, heads, n, head_dim, generator=g)
                   .to(device_, resolve_dtype(config.dtype)) for _ in range(3))  # fmt: skip
        mask = pattern.dense_mask(device_)
        reference = None
        if n <= error_max_n:
            reference = naive_attention(q.double(), k.double(), v.double(), mask=mask).out
        for name in names:
            result = BenchResult(name, LABELS[name], fields)
            results.append(result)
            reason = _why_unavailable(name, n, block, mode, problem)
            if reason:
                result.status, result.reason = UNAVAILABLE, reason
                continue

            # Built on the first (untimed) call, so that a failure to build it (a block
            # mask, a compile) is recorded like any other failure of the call.
            build = cache(partial(_implementation, name, pattern, block, mask))

            def call(build: Callable = build, q=q, k=k, v=v) -> torch.Tensor:  # noqa: ANN001
                with torch.no_grad():
                    return build()(q, k, v)

            measure(
                result, call, device_, flops=layout.flops(head_dim, batch, heads),
                min_run_time_s=min_run_time_s,
                expected=None if name == "sdpa" else reference,  # sdpa has no window
                timed=not (name == "triton_sparse" and mode == "interpreter"),
            )  # fmt: skip
    return new_record(
        "sparse", results, FLOPS, device=device_, kernel_mode=mode, command=command,
        smoke=smoke, min_run_time_s=min_run_time_s, error_max_n=error_max_n,
    )  # fmt: skip


# --- command line ------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m attn_course.bench sparse``."""
    parser.add_argument("--n", type=int, nargs="+", default=[1024, 2048, 4096, 8192])
    parser.add_argument("--window", type=int, default=256, help="keys per query")
    parser.add_argument("--block", type=int, default=64, help="tile size (16, 32, 64, 128)")
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--dtype", default=None, help="default: bfloat16 on GPU, float32 on CPU")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=4)
    add_common_arguments(parser, IMPLEMENTATIONS, error_max_n=2048)


def run(args: argparse.Namespace, *, command: str) -> dict[str, Any]:
    """The sparse suite's record for the parsed options (``--smoke``: a fixed toy run)."""
    if args.smoke:
        ns, window, block, head_dim, dtype, heads = [64, 128, 256], 32, 16, 16, "float32", 2
    else:
        ns, window, block, head_dim, heads = args.n, args.window, args.block, args.head_dim, (
            args.heads)  # fmt: skip
        dtype = args.dtype or default_dtype(args.device)
    return run_sparse_benchmark(
        ns, window, block, head_dim=head_dim, dtype=dtype, batch=args.batch, heads=heads,
        implementations=args.impl, device=args.device, error_max_n=args.error_max_n,
        min_run_time_s=0.05 if args.smoke else args.min_run_time, command=command,
        smoke=args.smoke,
    )  # fmt: skip

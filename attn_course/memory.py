"""Measuring the memory of naive attention on a CPU: three independent numbers.

The formulas in :mod:`attn_course.scores` *predict* bytes. This module *measures* them,
three ways, from the most direct to the most physical:

1. **Tensor bytes** (:func:`tensor_bytes`): the size of the storage behind the S and P
   tensors that :func:`~attn_course.scores.naive_attention` returned. Exact, but it only
   sees the tensors you hold, not temporaries that came and went.

2. **Allocator peak** (:func:`measure_peak_bytes`): every allocation and free PyTorch's CPU
   allocator makes while a function runs, recorded by ``torch.profiler`` with
   ``profile_memory=True``; the running total's maximum is the peak. This sees
   temporaries too, and is exact to the byte for what PyTorch asked the allocator for.
   (The CUDA equivalent is ``torch.cuda.max_memory_allocated``; PyTorch has no such
   counter for the CPU, hence the profiler.)

3. **Peak resident memory** (:func:`measure_naive_attention_rss`): what the operating
   system says the process physically used, from Linux's ``/proc/self/status``. The
   high-water mark ``VmHWM`` can be reset by writing ``5`` to ``/proc/self/clear_refs``
   (``resource.getrusage``'s ``ru_maxrss`` cannot be reset), so: run in a fresh
   subprocess, warm up, reset, read the baseline ``VmRSS``, run once, read ``VmHWM``.
   Peak − baseline includes everything the process touched: the allocator's blocks, but
   also library workspaces and page granularity, so for large n it comes out a little
   *above* the formula (+1 to +4 MB here). For small n (tensors under about 1 MB) it is
   noise: glibc serves such blocks from memory the process already holds (the result
   can then be *below* the formula) and fixed workspaces dominate. Linux only.

On the course's machine (2 cores), for float32, one head, head_dim 64, the allocator peak
equals :func:`~attn_course.scores.naive_attention_peak_bytes` to the byte (n = 256 to 8192,
causal or not), and the RSS peak is above it by 11 % at n = 1024, 4 % at n = 2048, 2 % at
n = 4096 and 0.2 % at n = 16384; ``tests/test_memory.py`` holds both to that. One
exception depends on the dtype and the CPU: in half precision the CPU matmul may allocate a
scratch buffer inside the call, which the allocator peak sees (a few hundred kB in bfloat16;
1.4 MB for P V in float16 at n = 512 on a CPU with AMX and AVX512-FP16, none on others).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from attn_course.cost import score_matrix_bytes
from attn_course.scores import naive_attention, naive_attention_peak_bytes
from attn_course.validate import check_count, check_non_negative, resolve_dtype

__all__ = [
    "MemoryRow",
    "format_table",
    "loglog_slope",
    "measure_naive_attention",
    "measure_naive_attention_rss",
    "measure_peak_bytes",
    "peak_rss_supported",
    "physical_memory_bytes",
    "random_qkv",
    "tensor_bytes",
    "time_call",
]


# --- 1. bytes of tensors you hold --------------------------------------------------------


def tensor_bytes(*tensors: torch.Tensor) -> int:
    """Bytes of the storage behind ``tensors``; a storage shared by several views counts once.

    ``untyped_storage().nbytes()`` is the memory really allocated, which for a view can be
    more than ``element_size() * nelement()`` of the view itself.
    """
    seen: dict[int, int] = {}
    for t in tensors:
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"tensors must be torch.Tensors, got {type(t).__name__}")
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


# --- 2. peak of the PyTorch allocator, via the profiler ---------------------------------


def measure_peak_bytes(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Peak extra bytes the PyTorch CPU allocator handed out while ``fn(*args, **kwargs)`` ran.

    "Extra" means above what was allocated when the call started: inputs created before
    do not count, and neither does anything freed before the call. The result of ``fn``
    is kept alive until the measurement ends, as a caller holding it would.

    Method: ``torch.profiler`` with ``profile_memory=True`` records one event per
    allocation (+bytes) and per free (-bytes). Sorted by time, their running sum is the
    allocated total; its maximum is the peak. The events are read from the profiler's
    event tree (``kineto_results.experimental_event_tree()``), an interface PyTorch calls
    experimental; tests/test_memory.py checks it against the formula on every run.
    """
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _silenced_stderr():  # the profiler's C++ side prints progress lines at start/stop
        prof.start()
    try:
        result = fn(*args, **kwargs)  # noqa: F841 - held so that its frees come after the peak
    finally:
        with _silenced_stderr():
            prof.stop()
    del result

    allocations = []
    pending = list(prof.profiler.kineto_results.experimental_event_tree())
    while pending:
        event = pending.pop()
        pending.extend(event.children)
        if event.tag == _EventType.Allocation and event.extra_fields.device.type == "cpu":
            allocations.append((event.start_time_ns, event.extra_fields.alloc_size))

    running, peak = 0, 0
    for _, size in sorted(allocations):
        running += size
        peak = max(peak, running)
    return peak


def physical_memory_bytes() -> int | None:
    """Total RAM of this machine in bytes (POSIX sysconf), or None where it can't be read."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


@contextmanager
def _silenced_stderr() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for a moment (C++ writes bypass sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


# --- 3. peak resident memory of a fresh process ------------------------------------------

_CLEAR_REFS = "/proc/self/clear_refs"


def peak_rss_supported() -> bool:
    """True where the RSS high-water mark can be reset (Linux with a writable clear_refs)."""
    return sys.platform.startswith("linux") and os.access(_CLEAR_REFS, os.W_OK)


def _proc_status_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # the kernel reports kB (= KiB)
    raise RuntimeError(f"{field} not found in /proc/self/status")


def measure_naive_attention_rss(
    n: int,
    head_dim: int = 64,
    dtype: torch.dtype | str = "float32",
    heads: int = 1,
    batch: int = 1,
    causal: bool = False,
    timeout_s: float = 300.0,
) -> int | None:
    """Peak extra resident memory (bytes) of one ``naive_attention`` call at sequence length n.

    Runs in a fresh Python process (``python -m attn_course.memory``) so that nothing
    earlier in this process (freed blocks the allocator kept, other cells' tensors) hides
    or inflates the peak. Returns ``None`` where the method is unavailable (not Linux).
    """
    if not peak_rss_supported():
        return None
    dtype_name = str(resolve_dtype(dtype)).removeprefix("torch.")
    command = [
        sys.executable, "-m", "attn_course.memory",
        "--n", str(n), "--head-dim", str(head_dim), "--dtype", dtype_name,
        "--heads", str(heads), "--batch", str(batch),
    ]  # fmt: skip
    if causal:
        command.append("--causal")
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"RSS measurement for n={n} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_extra_rss_bytes"]


def _rss_child(n: int, head_dim: int, dtype: str, heads: int, batch: int, causal: bool) -> dict:
    """Body of the subprocess: baseline, reset the high-water mark, run once, read it."""
    q, k, v = random_qkv(n, head_dim, dtype, heads, batch)
    # Warm-up on a tiny problem: loads kernels and thread pools before the baseline.
    naive_attention(*random_qkv(16, head_dim, dtype, heads, batch), causal=causal)
    with open(_CLEAR_REFS, "w") as clear_refs:
        clear_refs.write("5")  # 5 = reset the peak RSS (VmHWM) to the current RSS
    baseline = _proc_status_bytes("VmRSS")
    result = naive_attention(q, k, v, causal=causal)
    peak = _proc_status_bytes("VmHWM")
    del result
    return {"baseline_rss_bytes": baseline, "peak_extra_rss_bytes": peak - baseline}


# --- the whole table ---------------------------------------------------------------------


def random_qkv(
    n: int, head_dim: int = 64, dtype: torch.dtype | str = "float32", heads: int = 1, batch: int = 1
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random q, k, v of shape (batch, heads, n, head_dim), seeded so runs repeat."""
    sizes = {"batch": batch, "heads": heads, "n": n, "head_dim": head_dim}
    shape = tuple(check_count(name, size) for name, size in sizes.items())
    generator = torch.Generator().manual_seed(n)
    dtype = resolve_dtype(dtype)
    return tuple(torch.randn(shape, generator=generator).to(dtype) for _ in range(3))  # type: ignore[return-value]


def time_call(fn: Callable[[], Any], repeats: int = 3, min_total_s: float = 0.25) -> float:
    """Fastest wall-clock run of ``fn()``, in seconds.

    Runs ``fn`` at least ``repeats`` times and keeps going until ``min_total_s`` seconds
    have been spent, so a 3 ms call gets about 80 tries and a 3 s call gets 3. The
    minimum, not the mean: on a shared machine, noise (other processes) only adds time.
    """
    check_count("repeats", repeats)
    check_non_negative("min_total_s", min_total_s)
    best, spent, runs = math.inf, 0.0, 0
    while runs < repeats or spent < min_total_s:
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        best, spent, runs = min(best, elapsed), spent + elapsed, runs + 1
    return best


@dataclass(frozen=True)
class MemoryRow:
    """One sequence length: predicted and measured bytes, and time. Bytes are bytes (B).

    formula_score_bytes:  score_matrix_bytes(...) — predicted size of S (P is the same)
    score_bytes:          measured storage of the S tensor naive_attention returned
    probs_bytes:          measured storage of the P tensor
    formula_peak_bytes:   naive_attention_peak_bytes(...) — predicted S + P + O
    peak_bytes:           measured allocator peak (measure_peak_bytes)
    rss_peak_bytes:       measured peak resident memory in a fresh process, or None
    seconds:              fastest of a few timed runs of naive_attention
    """

    n: int
    formula_score_bytes: int
    score_bytes: int
    probs_bytes: int
    formula_peak_bytes: int
    peak_bytes: int
    rss_peak_bytes: int | None
    seconds: float


def measure_naive_attention(
    ns: Sequence[int],
    head_dim: int = 64,
    dtype: torch.dtype | str = "float32",
    heads: int = 1,
    batch: int = 1,
    causal: bool = False,
    rss: bool = True,
    repeats: int = 3,
    progress: bool = False,
) -> list[MemoryRow]:
    """Measure naive attention at every n in ``ns``: formula vs tensor bytes vs peaks vs time.

    ``rss=False`` skips the subprocess measurement (about 2 s per n for starting Python).
    ``progress=True`` shows a tqdm bar.
    """
    if not ns:
        raise ValueError("ns must list at least one sequence length")
    rows = []
    sizes = ns
    if progress:
        from tqdm.auto import tqdm

        sizes = tqdm(ns, desc="measuring naive attention", unit="size")
    for n in sizes:
        formula_peak = naive_attention_peak_bytes(n, head_dim, dtype, heads, batch)
        q, k, v = random_qkv(n, head_dim, dtype, heads, batch)
        result = naive_attention(q, k, v, causal=causal)
        scores_b, probs_b = tensor_bytes(result.scores), tensor_bytes(result.probs)
        del result
        peak = measure_peak_bytes(naive_attention, q, k, v, causal=causal)
        seconds = time_call(lambda q=q, k=k, v=v: naive_attention(q, k, v, causal=causal), repeats)
        del q, k, v
        rss_peak = (
            measure_naive_attention_rss(n, head_dim, dtype, heads, batch, causal) if rss else None
        )
        rows.append(
            MemoryRow(
                n=n,
                formula_score_bytes=int(score_matrix_bytes(n, dtype, heads=heads, batch=batch)),
                score_bytes=scores_b,
                probs_bytes=probs_b,
                formula_peak_bytes=formula_peak,
                peak_bytes=peak,
                rss_peak_bytes=rss_peak,
                seconds=seconds,
            )
        )
    return rows


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of log(y) against log(x): the exponent p in y ∝ x^p.

    2.0 for anything quadratic in n; 1.0 for linear.
    """
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError(
            f"need two equally long sequences of >= 2 values, got {len(xs)}, {len(ys)}"
        )
    if min(xs) <= 0 or min(ys) <= 0:
        raise ValueError("xs and ys must be > 0 to take logarithms")
    log_x = [math.log(x) for x in xs]
    log_y = [math.log(y) for y in ys]
    mean_x, mean_y = sum(log_x) / len(log_x), sum(log_y) / len(log_y)
    covariance = sum((a - mean_x) * (b - mean_y) for a, b in zip(log_x, log_y, strict=True))
    variance = sum((a - mean_x) ** 2 for a in log_x)
    if variance == 0:
        raise ValueError("xs must not all be equal")
    return covariance / variance


def format_table(rows: Sequence[MemoryRow]) -> str:
    """A fixed-width text table of ``rows``, sizes in MiB (2^20 B), time in ms."""
    mib = float(2**20)
    header = (
        f"{'n':>7} | {'S formula':>10} {'S measured':>10} | {'peak formula':>12} "
        f"{'peak alloc':>10} {'peak RSS':>10} | {'RSS/formula':>11} | {'time':>10}"
    )
    units = (
        f"{'tokens':>7} | {'MiB':>10} {'MiB':>10} | {'MiB':>12} "
        f"{'MiB':>10} {'MiB':>10} | {'':>11} | {'ms':>10}"
    )
    lines = [header, units, "-" * len(header)]
    for row in rows:
        rss = "n/a" if row.rss_peak_bytes is None else f"{row.rss_peak_bytes / mib:10.2f}"
        ratio = (
            "n/a"
            if row.rss_peak_bytes is None
            else f"{row.rss_peak_bytes / row.formula_peak_bytes:.3f}"
        )
        lines.append(
            f"{row.n:>7} | {row.formula_score_bytes / mib:10.2f} {row.score_bytes / mib:10.2f} | "
            f"{row.formula_peak_bytes / mib:12.2f} {row.peak_bytes / mib:10.2f} {rss:>10} | "
            f"{ratio:>11} | {row.seconds * 1e3:10.2f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the RSS subprocess; prints one JSON line."""
    parser = argparse.ArgumentParser(description=_rss_child.__doc__)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--heads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--causal", action="store_true")
    args = parser.parse_args(argv)
    measured = _rss_child(args.n, args.head_dim, args.dtype, args.heads, args.batch, args.causal)
    print(json.dumps(measured))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Measuring the memory of naive attention on a CPU: three independent numbers.

The formulas in :mod:`attn_course.scores` *predict* bytes. This module *measures* them,
three ways, from the most direct to the most physical:

1. **Tensor bytes** (:func:`tensor_bytes`): the size of the storage behind the S and P
   tensors that :func:`~attn_course.scores.naive_attention` returned. Exact, but it only
   sees the tensors you hold, not temporaries that came and went.

2. **Allocator peak** (:func:`attn_course.measure.measure_peak_bytes`, the tool every lesson
   measures memory with): every allocation and free PyTorch's CPU allocator makes while a
   function runs, recorded by ``torch.profiler`` with ``profile_memory=True``; the running
   total's maximum is the peak. This sees temporaries too, and is exact to the byte for what
   PyTorch asked the allocator for. (The CUDA equivalent is
   ``torch.cuda.max_memory_allocated``; PyTorch has no such counter for the CPU, hence the
   profiler.)

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
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from attn_course.cost import score_matrix_bytes
from attn_course.measure import measure_peak_bytes, random_qkv, time_call
from attn_course.scores import naive_attention, naive_attention_peak_bytes
from attn_course.validate import resolve_dtype

__all__ = [
    "MemoryRow",
    "format_table",
    "measure_naive_attention",
    "measure_naive_attention_rss",
    "peak_rss_supported",
    "tensor_bytes",
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


# --- 3. peak resident memory of a fresh process (2., the allocator peak: measure.py) ---

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

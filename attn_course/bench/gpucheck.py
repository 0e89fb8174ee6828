"""One short check of the course on a real GPU: ``python -m attn_course.bench.gpucheck --out DIR``.

The course's kernels are developed on machines without a GPU (Triton's interpreter) and a
GPU is lent only now and then, for minutes. This command is the whole visit, prepared in
advance, in well under 8 minutes on a current GPU:

1. **kernel tests**: the kernel test files (flash forward and backward in every dtype,
   bf16 included, causal, GQA, odd lengths; sparse, linear, paged), run by pytest on the
   GPU: the same tests that run in the interpreter here, now compiled;
2. **device peaks**: the bf16 matmul throughput (TFLOP/s, an 8192³ ``torch.matmul``) and
   the copy bandwidth (GB/s, a 1 GiB ``copy_``: bytes read + bytes written over the time)
   that the benchmark's numbers are to be read against;
3. **headline benchmark**: n = 4k, 8k, 16k, head_dim 64 and 128, bf16, causal and not,
   forward and forward + backward: the course's kernel against SDPA's default choice and
   its flash backend (:func:`attn_course.bench.flash.run_flash_benchmark`).

It writes one JSON record, ``DIR/gpucheck_<device>_<date>.json`` (schema
``attn_course.gpucheck/1``: each step's status, duration and results, next to the
benchmark record's provenance fields). A step that fails or runs past its time budget is
recorded as such, and the next step still runs.

``--dry-run`` (what the tests run on a CPU) goes through every step without a GPU: pytest
only collects the kernel tests, the peaks are taken at toy sizes on the CPU, and the
benchmark runs SDPA alone on one toy configuration. Only the GPU launches are left out.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from attn_course.bench.flash import run_flash_benchmark
from attn_course.bench.harness import (
    BenchConfig,
    configs_from,
    device_info,
    library_versions,
    median_ms,
)
from attn_course.cost import tflops_per_s
from attn_course.course import COURSE_ROOT

__all__ = [
    "KERNEL_TESTS",
    "SCHEMA",
    "STEP_BUDGET_S",
    "copy_bandwidth",
    "main",
    "matmul_tflops",
    "run_gpucheck",
]

# The name predates the move into attn_course.bench; committed records keep it.
SCHEMA = "attn_course.gpucheck/1"
KERNEL_TESTS = (
    "tests/test_flash.py",
    "tests/test_sparse.py",
    "tests/test_linear.py",
    "tests/test_paged.py",
)
# Wall seconds each step may take on the GPU; together well under 8 minutes.
STEP_BUDGET_S = {"kernel_tests": 240, "device_peaks": 30, "headline": 150}


# --- the steps ------------------------------------------------------------------------------


def kernel_tests(dry_run: bool, budget_s: float) -> dict[str, Any]:
    """Run (dry run: only collect) the kernel test files with pytest in a subprocess."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *KERNEL_TESTS]
    if dry_run:
        command.append("--collect-only")
    env = {**os.environ, "ATTN_COURSE_SIZE": "small"}
    try:
        done = subprocess.run(
            command, cwd=COURSE_ROOT, env=env, capture_output=True, text=True, timeout=budget_s
        )
    except subprocess.TimeoutExpired:
        return {"status": "timed out", "command": command}
    summary = (done.stdout.strip().splitlines() or [""])[-1]
    outcome = r"(\d+) (passed|failed|skipped|errors?|tests? collected)"
    status = "ok" if done.returncode == 0 else "failed"
    if dry_run and status == "ok":
        status = "dry run: collected, not run"
    return {
        "status": status,
        "command": command,
        "summary": summary,
        "counts": {word: int(n) for n, word in re.findall(outcome, summary)},
        "failures": _failure_lines(done.stdout) if status == "failed" else [],
    }


def _failure_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(("FAILED", "ERROR"))][:50]


Timer = Callable[[Callable[[], Any]], float]  # a call -> its median time in ms


def matmul_tflops(n: int, device: torch.device, time_ms: Timer) -> float:
    """bf16 ``a @ b`` of two n × n matrices: 2·n³ FLOPs over the median time, in TFLOP/s."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    return tflops_per_s(2 * n**3, time_ms(lambda: a @ b))


def copy_bandwidth(n_bytes: int, device: torch.device, time_ms: Timer) -> float:
    """``dst.copy_(src)`` of ``n_bytes``: 2 · n_bytes (read + write) over the time, in GB/s."""
    src = torch.empty(n_bytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    return 2 * n_bytes / (time_ms(lambda: dst.copy_(src)) * 1e-3) / 1e9


def device_peaks(dry_run: bool, device: torch.device) -> dict[str, Any]:
    """The bf16 matmul TFLOP/s and copy GB/s of ``device`` (toy sizes, untimed, in a dry run)."""
    if dry_run:
        def time_ms(call: Callable[[], Any]) -> float:
            # One call, timed on the CPU: the code path runs, and the number, though real,
            # says nothing about a GPU (the record says so).
            start = time.perf_counter()
            call()
            return max((time.perf_counter() - start) * 1e3, 1e-6)

        sizes = {"matmul_n": 64, "copy_bytes": 2**20}
    else:

        def time_ms(call: Callable[[], Any]) -> float:
            return median_ms(call, device, min_run_time_s=0.2)  # do_bench's median on a GPU

        sizes = {"matmul_n": 8192, "copy_bytes": 2**30}
    return {
        "status": "dry run: toy sizes on the CPU" if dry_run else "ok",
        **sizes,
        "bf16_matmul_tflops": matmul_tflops(sizes["matmul_n"], device, time_ms),
        "copy_gb_per_s": copy_bandwidth(sizes["copy_bytes"], device, time_ms),
    }


def headline_configs(dry_run: bool) -> list[BenchConfig]:
    """n = 4k/8k/16k, head_dim 64/128, bf16, causal and not, fwd and fwd+bwd (dry run: one toy)."""
    if dry_run:
        return [BenchConfig(64, 64, "float32", causal=True, backward=True, heads=2)]
    return [
        config
        for backward in (False, True)
        for config in configs_from(
            [4096, 8192, 16384], [64, 128], ["bfloat16"], "both", backward=backward, heads=16
        )
    ]


def headline(dry_run: bool, device: torch.device) -> dict[str, Any]:
    implementations = ["sdpa"] if dry_run else ["triton", "sdpa", "sdpa_flash"]
    record = run_flash_benchmark(
        headline_configs(dry_run), implementations, device=device, progress=False,
        error_max_n=64 if dry_run else 4096, command="attn_course.bench.gpucheck headline",
    )  # fmt: skip
    return {"status": "dry run: SDPA on one toy configuration" if dry_run else "ok",
            "record": record}  # fmt: skip


# --- the whole check ------------------------------------------------------------------------


def _timed_step(name: str, step: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    start = time.monotonic()
    try:
        result = step()
    except Exception as error:  # noqa: BLE001 - a failed step is a result; the next one runs
        result = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
    result["seconds"] = round(time.monotonic() - start, 1)
    result["budget_s"] = STEP_BUDGET_S[name]
    if result["seconds"] > STEP_BUDGET_S[name] and result["status"] == "ok":
        result["status"] = "ok, over budget"
    return result


def run_gpucheck(out: Path | str, *, dry_run: bool = False) -> Path:
    """Run every step and write the record into folder ``out``; returns the record's path."""
    if not dry_run and not torch.cuda.is_available():
        raise RuntimeError("no CUDA device: run on a GPU machine, or pass dry_run=True")
    device = torch.device("cuda" if not dry_run else "cpu")
    steps = {
        "kernel_tests": lambda: kernel_tests(dry_run, STEP_BUDGET_S["kernel_tests"]),
        "device_peaks": lambda: device_peaks(dry_run, device),
        "headline": lambda: headline(dry_run, device),
    }
    record = {
        "schema": SCHEMA,
        "dry_run": dry_run,
        "date": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "device": device_info(device),
        "versions": library_versions(),
        "steps": {name: _timed_step(name, step) for name, step in steps.items()},
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device_name = re.sub(r"[^a-z0-9]+", "-", record["device"]["name"].lower()).strip("-")
    path = out / f"gpucheck_{device_name}_{record['date'][:10]}.json"
    path.write_text(json.dumps(record, indent=1, default=str) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m attn_course.bench.gpucheck", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the JSON record")
    parser.add_argument(
        "--dry-run", action="store_true", help="every step without a GPU (what the tests run)"
    )
    args = parser.parse_args(argv)
    try:
        path = run_gpucheck(args.out, dry_run=args.dry_run)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    record = json.loads(path.read_text())
    for name, step in record["steps"].items():
        print(f"{name:>13}: {step['status']} ({step['seconds']} s)")
    print(f"record: {path}")
    fine = ("ok", "dry run")
    return 0 if all(step["status"].startswith(fine) for step in record["steps"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())

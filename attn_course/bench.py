"""Benchmark attention implementations and keep the results: ``python -m attn_course.bench flash``.

The course's claims about speed are measurements, so they need a measuring instrument
that anyone can rerun and whose output says exactly where and how it was taken. This
module is that instrument for notebook 04:

    python -m attn_course.bench flash --n 1024 2048 4096 8192 --head-dim 64 128 \\
        --dtype bf16 --causal both --batch 4 --heads 16 --backward \\
        --out records/flash_h100_2026-11-24.json
    python -m attn_course.bench flash --smoke      # a small CPU-friendly run (what CI runs)

It compares, for every configuration (sequence length n, head_dim, dtype, causal or not,
forward or forward + backward):

* ``triton``: this course's FlashAttention kernel (:mod:`attn_course.kernels`). Timed on a
  GPU only. In Triton's interpreter (no GPU) a kernel runs its programs one after another
  in NumPy, thousands of times slower than compiled code, so there it is run once, at
  small n, to check that it is *correct*, and the record says it was not timed.
* ``naive``: :func:`attn_course.scores.naive_attention`, which materialises S and P.
* ``sdpa``: ``torch.nn.functional.scaled_dot_product_attention`` with PyTorch's own choice
  of backend, and the same function with one backend forced through
  ``torch.nn.attention.sdpa_kernel``: ``sdpa_flash``, ``sdpa_efficient``, ``sdpa_cudnn``
  and ``sdpa_math``. A backend that cannot run a configuration (cuDNN on a CPU, flash
  with float32 on a GPU, ...) is recorded with the reason, not skipped silently.

For each it records the median time (ms), the throughput (TFLOP/s, from
:func:`attention_flops`), the peak memory the call added (bytes), and, up to
``error_max_n``, the largest absolute error against a float64 reference (and of the
gradients, with ``--backward``). The JSON record also holds the device, the date, the
host, the library versions and the command line; ``records/README.md`` documents it.

Timing: on a GPU, ``triton.testing.do_bench`` (it flushes the L2 cache between runs and
syncs the device) with its median; on a CPU, ``torch.utils.benchmark.Timer``'s
``blocked_autorange`` median. Peak memory: ``torch.cuda.max_memory_allocated`` on a GPU,
:func:`attn_course.memory.measure_peak_bytes` (the PyTorch CPU allocator's peak, via the
profiler) on a CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import math
import platform
import shlex
import socket
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import torch
import torch.nn.functional as F

from attn_course.cost import attention_matmul_flops
from attn_course.figures import style
from attn_course.memory import loglog_slope, measure_peak_bytes
from attn_course.scores import naive_attention
from attn_course.validate import canonical_dtype, resolve_dtype

__all__ = [
    "new_record",
    "call_peak_bytes",
    "device_info",
    "library_versions",
    "median_ms",
    "IMPLEMENTATIONS",
    "LABELS",
    "SCHEMA",
    "BenchConfig",
    "BenchResult",
    "attention_flops",
    "benchmark_figure",
    "configs_from",
    "load_records",
    "main",
    "naive_gqa_attention",
    "ratios",
    "record_label",
    "results_table",
    "run_flash_benchmark",
    "scaling_exponent",
    "smoke_configs",
    "tflops_per_s",
    "write_record",
]

SCHEMA = "attn_course.bench/1"

#: Every implementation the benchmark knows, in the order it runs and plots them.
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
_SDPA_BACKENDS = {
    "sdpa_flash": "FLASH_ATTENTION",
    "sdpa_efficient": "EFFICIENT_ATTENTION",
    "sdpa_cudnn": "CUDNN_ATTENTION",
    "sdpa_math": "MATH",
}
#: What the (FlashAttention) backward costs, in units of the forward's FLOPs: it runs five
#: matmuls of the forward's size (S = QKᵀ again, dV = PᵀdO, dP = dO Vᵀ, dQ = dS K,
#: dK = dSᵀ Q) where the forward runs two (QKᵀ and PV): 5 / 2 = 2.5.
BACKWARD_FLOPS_FACTOR = 2.5
#: The triton kernel runs in the interpreter only up to this n (a correctness check).
INTERPRETER_MAX_N = 128

# Statuses of one result.
OK = "ok"  # timed
CHECKED = "checked, not timed"  # ran once for correctness (the interpreter)
UNAVAILABLE = "unavailable"  # cannot run this configuration here; `reason` says why
FAILED = "failed"  # ran and raised (out of memory, ...); `reason` says what


# --- FLOPs ------------------------------------------------------------------------------


def attention_flops(
    batch: int, heads: int, n: int, head_dim: int, *, causal: bool = False, backward: bool = False
) -> float:
    """FLOPs of attention over (batch, heads, n, head_dim): forward, or forward + backward.

    Forward: the two matmuls QKᵀ and PV, ``4 · batch · heads · n² · head_dim``
    (:func:`attn_course.cost.attention_matmul_flops` with d_model = heads · head_dim);
    causal halves it (a kernel skips the masked triangle). Forward + backward:
    ``(1 + 2.5) ×`` that (see ``BACKWARD_FLOPS_FACTOR``), the convention of the
    FlashAttention papers' benchmarks. Every implementation is credited with these same
    nominal FLOPs, so TFLOP/s compare like with like (a naive backward that skips the
    recomputation of S simply gets the same credit for less work).
    """
    forward = attention_matmul_flops(n, heads * head_dim, causal=causal, batch=batch)
    return forward * (1 + BACKWARD_FLOPS_FACTOR) if backward else forward


def tflops_per_s(flops: float, ms: float) -> float:
    """Throughput in TFLOP/s (10¹² FLOP per second) of ``flops`` done in ``ms`` milliseconds."""
    if not (isinstance(ms, int | float) and math.isfinite(ms) and ms > 0):
        raise ValueError(f"ms must be a finite number > 0, got {ms!r}")
    return flops / (ms * 1e-3) / 1e12


# --- configurations and results ---------------------------------------------------------


@dataclass(frozen=True)
class BenchConfig:
    """One point of the benchmark: inputs q (batch, heads, n, head_dim), k/v with kv_heads."""

    n: int
    head_dim: int = 64
    dtype: str = "float32"
    causal: bool = False
    backward: bool = False
    batch: int = 1
    heads: int = 8
    kv_heads: int | None = None

    def __post_init__(self) -> None:
        for name in ("n", "head_dim", "batch", "heads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        kv = self.heads if self.kv_heads is None else self.kv_heads
        if isinstance(kv, bool) or not isinstance(kv, int) or kv < 1 or self.heads % kv:
            raise ValueError(f"kv_heads must divide heads={self.heads}, got {self.kv_heads!r}")
        object.__setattr__(self, "kv_heads", kv)
        object.__setattr__(self, "dtype", canonical_dtype(self.dtype))
        resolve_dtype(self.dtype)  # only float dtypes torch can compute in

    @property
    def mode(self) -> str:
        return "fwd+bwd" if self.backward else "fwd"

    @property
    def flops(self) -> float:
        b, h, n, d = self.batch, self.heads, self.n, self.head_dim
        return attention_flops(b, h, n, d, causal=self.causal, backward=self.backward)

    def describe(self) -> str:
        causal = "causal" if self.causal else "full"
        return f"n={self.n} d={self.head_dim} {self.dtype} {causal} {self.mode}"


@dataclass
class BenchResult:
    """One implementation on one configuration. Units: ms, TFLOP/s, bytes.

    status is "ok" (timed), "checked, not timed" (interpreter: correctness only),
    "unavailable" or "failed"; `reason` says why for all but "ok".
    max_abs_error: largest |out − reference| against float64 (None above error_max_n);
    grad_max_abs_error: the same over dq, dk, dv (with backward).
    """

    implementation: str
    config: BenchConfig
    status: str
    ms: float | None = None
    tflops: float | None = None
    peak_bytes: int | None = None
    max_abs_error: float | None = None
    grad_max_abs_error: float | None = None
    reason: str | None = None
    label: str = field(init=False)

    def __post_init__(self) -> None:
        self.label = LABELS[self.implementation]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["config"] = {**asdict(self.config), "mode": self.config.mode}
        return data


def configs_from(
    ns: Iterable[int],
    head_dims: Iterable[int] = (64,),
    dtypes: Iterable[str] = ("float32",),
    causal: str = "both",
    *,
    backward: bool = False,
    batch: int = 1,
    heads: int = 8,
    kv_heads: int | None = None,
) -> list[BenchConfig]:
    """Every combination of the given values; ``causal`` is "both", "yes" or "no"."""
    choices = {"both": (False, True), "yes": (True,), "no": (False,)}
    if causal not in choices:
        raise ValueError(f"causal must be one of {sorted(choices)}, got {causal!r}")
    return [
        BenchConfig(n, d, dtype, c, backward, batch, heads, kv_heads)
        for dtype in dtypes
        for d in head_dims
        for c in choices[causal]
        for n in sorted(set(ns))
    ]


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


def kernel_status() -> tuple[str, str | None]:
    """(mode, problem): the kernels' mode ("gpu", "interpreter"), or ("unavailable", why)."""
    try:
        from attn_course.kernels import kernel_mode
    except Exception as error:  # noqa: BLE001 - any import problem is reported, not raised
        return "unavailable", f"attn_course.kernels could not be imported ({error})"
    return kernel_mode(), None


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


def median_ms(call: Callable[[], Any], device: torch.device, min_run_time_s: float) -> float:
    """Median time of ``call()`` in ms: triton's do_bench on a GPU, torch's Timer on a CPU."""
    if device.type == "cuda":
        import triton.testing

        return float(triton.testing.do_bench(call, return_mode="median"))
    from torch.utils import benchmark

    timer = benchmark.Timer("call()", globals={"call": call})
    return timer.blocked_autorange(min_run_time=min_run_time_s).median * 1e3


def call_peak_bytes(call: Callable[[], Any], device: torch.device) -> int:
    """Extra bytes allocated at the busiest moment of one ``call()``, above what was live."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        result = call()
        torch.cuda.synchronize(device)
        del result
        return torch.cuda.max_memory_allocated(device) - before
    return measure_peak_bytes(call)


@contextlib.contextmanager
def _warnings_as_reasons() -> Iterator[list[str]]:
    """Collect the warnings a call raises: SDPA explains why a backend cannot run that way."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reasons: list[str] = []
        yield reasons
    reasons.extend(" ".join(str(w.message).split()) for w in caught)


def _why_unavailable(
    name: str, config: BenchConfig, device: torch.device, mode: str, problem: str | None
) -> str | None:
    """A reason this implementation cannot run ``config`` here, known before trying; else None."""
    if name == "triton":
        if problem:
            return problem
        if mode == "interpreter" and config.n > INTERPRETER_MAX_N:
            return (
                f"Triton interpreter (no GPU): run only at n <= {INTERPRETER_MAX_N} to check "
                "correctness; far too slow to time"
            )
    if device.type == "cpu" and name in ("sdpa_efficient", "sdpa_cudnn"):
        return "this backend exists only for CUDA GPUs (on a CPU, PyTorch has flash and math)"
    return None


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


def _max_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return (got.detach().to(torch.float64) - expected).abs().max().item()


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

    # One run first: compile/warm up, and learn whether this backend can run it at all.
    status = UNAVAILABLE
    with _warnings_as_reasons() as reasons:
        try:
            out = call()
        except (RuntimeError, ValueError) as error:
            # PyTorch's "no available kernel" (a RuntimeError), or the course's kernel
            # refusing what it does not support (a ValueError); out of memory is a failure.
            reasons.insert(0, " ".join(str(error).split()))
            status = FAILED if "out of memory" in str(error) else UNAVAILABLE
            out = None
        except Exception as error:  # noqa: BLE001 - anything else is recorded, not raised
            reasons.insert(0, f"{type(error).__name__}: {' '.join(str(error).split())}")
            status, out = FAILED, None
    if out is None:
        return BenchResult(name, config, status, reason="; ".join(dict.fromkeys(reasons))[:600])

    result = BenchResult(name, config, OK)
    if reference is not None:
        expected_out, expected_grads = reference
        result.max_abs_error = _max_error(out, expected_out)
        if expected_grads is not None:
            result.grad_max_abs_error = max(
                _max_error(t.grad, g) for t, g in zip((q, k, v), expected_grads, strict=True)
            )
    del out
    if name == "triton" and mode == "interpreter":
        result.status = CHECKED
        result.reason = "Triton interpreter (no GPU): correct-or-not only; far too slow to time"
        return result
    try:
        result.ms = median_ms(call, device, min_run_time_s)
        result.tflops = tflops_per_s(config.flops, result.ms)
        for t in (q, k, v):  # free the last run's gradients outside the measured call
            t.grad = None
        result.peak_bytes = call_peak_bytes(call, device)
    except RuntimeError as error:  # out of memory during the timed runs
        result.status, result.reason = FAILED, " ".join(str(error).split())[:600]
    return result


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
    names = list(IMPLEMENTATIONS if implementations is None else implementations)
    unknown = [n for n in names if n not in IMPLEMENTATIONS]
    if unknown:
        raise ValueError(f"unknown implementations {unknown}; known: {list(IMPLEMENTATIONS)}")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    mode, problem = kernel_status()
    if mode == "gpu" and device.type != "cuda":
        problem = "the kernels run on the GPU here, but this benchmark runs on the CPU"
    if mode == "interpreter" and device.type != "cpu":
        problem = "the kernels run in the interpreter (CPU tensors); this benchmark is on a GPU"

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
            results.append(BenchResult(name, config, UNAVAILABLE, reason=reason))
            continue
        if config.n <= error_max_n and config not in reference_for:
            reference_for.clear()  # one configuration's reference at a time
            reference_for[config] = _reference(config, device)
        result = _measure(name, config, device, mode, reference_for.get(config), min_run_time_s)
        results.append(result)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return new_record(
        "flash", smoke=smoke, device=device, kernel_mode=mode, min_run_time_s=min_run_time_s,
        command=command or "attn_course.bench.run_flash_benchmark(...)",
        flops="attn_course.bench.attention_flops: 4·b·h·n²·d forward, ×3.5 with backward, "
        "halved when causal",
        error_max_n=error_max_n, results=[r.to_dict() for r in results],
    )  # fmt: skip


def new_record(
    benchmark: str,
    *,
    smoke: bool,
    device: torch.device,
    kernel_mode: str,
    command: str,
    min_run_time_s: float,
    flops: str,
    error_max_n: int,
    results: list[dict[str, Any]],
) -> dict[str, Any]:
    """A benchmark record (schema in records/README.md): where, when, how, and the results.

    Every suite (flash, linear, sparse) writes its record through this one function, so the
    provenance fields (device, date, versions, command, timing method) cannot drift apart.
    """
    return {
        "schema": SCHEMA,
        "benchmark": benchmark,
        "smoke": smoke,
        "date": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "host": socket.gethostname(),
        "device": device_info(device),
        "kernel_mode": kernel_mode,
        "versions": library_versions(),
        "command": command,
        "timing": (
            "median of triton.testing.do_bench (ms)"
            if device.type == "cuda"
            else f"median of torch.utils.benchmark blocked_autorange, {min_run_time_s} s (ms)"
        ),
        "peak_memory": (
            "torch.cuda.max_memory_allocated above the inputs (bytes)"
            if device.type == "cuda"
            else "PyTorch CPU allocator peak above the inputs, attn_course.memory."
            "measure_peak_bytes (bytes)"
        ),
        "flops": flops,
        "error_max_n": error_max_n,
        "results": results,
    }


def device_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"type": device.type}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["driver"] = _nvidia_driver()
        info["memory_bytes"] = torch.cuda.get_device_properties(device).total_memory
    else:
        info["name"] = _cpu_name()
        info["cpu_threads"] = torch.get_num_threads()
        info["cuda"] = None
        info["driver"] = None
    return info


def _nvidia_driver() -> str | None:
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return "CPU: " + line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "CPU: " + (platform.processor() or platform.machine())


def library_versions() -> dict[str, str | None]:
    try:
        import triton

        triton_version: str | None = triton.__version__
    except ImportError:
        triton_version = None
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": triton_version,
    }


# --- records on disk --------------------------------------------------------------------


def write_record(record: dict[str, Any], path: str | Path) -> Path:
    """Write ``record`` as indented JSON to ``path`` (folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def default_records_dir() -> Path:
    """The course's ``records/`` folder (next to the package)."""
    return Path(__file__).resolve().parent.parent / "records"


def load_records(pattern: str | Path | None = None) -> list[dict[str, Any]]:
    """Read every record whose path matches the glob ``pattern``, oldest date first.

    ``pattern`` defaults to ``records/*.json`` of this checkout. Files that are not
    benchmark records of this schema are skipped; an empty list means none matched.
    """
    pattern = str(pattern or default_records_dir() / "*.json")
    records = []
    for name in sorted(glob.glob(pattern)):
        with open(name) as file:
            try:
                record = json.load(file)
            except json.JSONDecodeError:
                continue
        if isinstance(record, dict) and record.get("schema") == SCHEMA:
            record["path"] = name
            records.append(record)
    return sorted(records, key=lambda r: r["date"])


def record_label(record: dict[str, Any]) -> str:
    """"recorded on <device>, <date>": what every figure of a record says."""
    return f"recorded on {record['device']['name']}, {record['date'][:10]}"


def results_table(record: dict[str, Any], *, columns: Sequence[str] | None = None) -> str:
    """A fixed-width text table of a record's results (ms, TFLOP/s, MiB, max error)."""
    header = (
        f"{'n':>6} {'d':>4} {'dtype':>8} {'causal':>6} {'mode':>7} | {'implementation':<16}|"
        f" {'ms':>9} {'TFLOP/s':>8} {'peak MiB':>9} {'max err':>8} | note"
    )
    lines = [header, "-" * len(header)]
    for r in record["results"]:
        c = r["config"]

        def number(value: float | None, spec: str) -> str:
            return "—" if value is None else format(value, spec)

        peak = None if r["peak_bytes"] is None else r["peak_bytes"] / 2**20
        note = "" if r["status"] == OK else f"{r['status']}: {r['reason']}"[:70]
        lines.append(
            f"{c['n']:>6} {c['head_dim']:>4} {c['dtype']:>8} {c['causal']!s:>6} {c['mode']:>7} | "
            f"{r['implementation']:<16}| {number(r['ms'], '9.3f'):>9} "
            f"{number(r['tflops'], '8.3f'):>8} {number(peak, '9.2f'):>9} "
            f"{number(r['max_abs_error'], '8.1e'):>8} | {note}"
        )
    return "\n".join(lines)


def _points(
    record: dict[str, Any], implementation: str, metric: str, wanted: dict[str, Any]
) -> list[tuple[int, float]]:
    """Sorted (n, value) of one implementation's measured results matching ``wanted``."""
    return sorted(
        (r["config"]["n"], r[metric])
        for r in record["results"]
        if r["implementation"] == implementation
        and r["status"] == OK
        and r[metric]
        and all(r["config"][key] == value for key, value in wanted.items())
    )


def scaling_exponent(
    record: dict[str, Any], implementation: str, metric: str = "ms", **config: Any
) -> float:
    """Fitted p in metric ∝ n^p (:func:`attn_course.memory.loglog_slope`) over a record.

    ``config`` fixes configuration fields (``causal=False``, ``mode="fwd"``, ...);
    the points must then differ only in n.
    """
    points = _points(record, implementation, metric, config)
    if len(points) < 2:
        raise ValueError(f"{implementation} has {len(points)} measured points matching {config}")
    return loglog_slope([n for n, _ in points], [y for _, y in points])


def ratios(
    record: dict[str, Any],
    baseline: str = "naive",
    contender: str = "sdpa_flash",
    metric: str = "ms",
) -> list[dict[str, Any]]:
    """baseline / contender for every configuration both measured: a speed-up for "ms",
    a memory saving for "peak_bytes" (above 1: the contender needs less)."""
    measured: dict[tuple, dict[str, float]] = {}
    for r in record["results"]:
        if r["status"] == OK and r[metric] and r["implementation"] in (baseline, contender):
            key = tuple(sorted(r["config"].items()))
            measured.setdefault(key, {})[r["implementation"]] = r[metric]
    rows = []
    for key, values in measured.items():
        if len(values) == 2:
            rows.append({**dict(key), "ratio": values[baseline] / values[contender]})
    return sorted(rows, key=lambda row: (row["dtype"], row["mode"], row["causal"], row["n"]))


# --- the figure --------------------------------------------------------------------------

_METRICS = {
    "ms": ("time per call (ms)", "Time"),
    "tflops": ("throughput (TFLOP/s)", "Throughput"),
    "peak_bytes": ("peak memory added by the call (bytes)", "Peak memory"),
}


def benchmark_figure(
    records: dict[str, Any] | Sequence[dict[str, Any]],
    metric: str = "ms",
    *,
    head_dim: int | None = None,
    dtype: str | None = None,
    causal: bool | None = None,
    backward: bool | None = None,
    implementations: Sequence[str] | None = None,
) -> go.Figure:
    """Log-log plot of ``metric`` ("ms", "tflops" or "peak_bytes") against n.

    One line per implementation (per record, when several records are given). The other
    configuration values are fixed by the keyword filters; each left as None takes the
    value of the record's first result. Only measured ("ok") results are drawn. The title
    names the device and the date of every record: "recorded on <device>, <date>".
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {sorted(_METRICS)}, got {metric!r}")
    records = [records] if isinstance(records, dict) else list(records)
    if not records or not any(r["results"] for r in records):
        raise ValueError("records must hold at least one record with results")
    first = next(r["results"][0]["config"] for r in records if r["results"])
    chosen = {
        "head_dim": head_dim,
        "dtype": None if dtype is None else canonical_dtype(dtype),
        "causal": causal,
        "mode": None if backward is None else ("fwd+bwd" if backward else "fwd"),
    }
    # Records of other suites (linear, sparse) may lack some of these fields.
    wanted = {key: first[key] if value is None else value for key, value in chosen.items()
              if key in first}  # fmt: skip
    y_title, what = _METRICS[metric]
    figure = go.Figure()
    drawn: list[tuple[list[tuple[int, float]], str]] = []  # points and name of each line
    for record in records:
        suffix = f" — {record['device']['name']}" if len(records) > 1 else ""
        labels = {r["implementation"]: r.get("label", r["implementation"])
                  for r in record["results"]}  # fmt: skip
        for name in implementations or labels:
            points = _points(record, name, metric, wanted)
            if not points:
                continue
            label = labels.get(name, name) + suffix
            index = len(drawn)
            symbol, dash = _SYMBOLS[index % len(_SYMBOLS)], _DASHES[index % len(_DASHES)]
            marker: dict[str, Any] = {"symbol": symbol, "size": 8}
            same = next((other for seen, other in drawn if _coincide(seen, points)), None)
            if same is not None:
                # Drawn exactly over an earlier line (SDPA's default is often its flash
                # backend): say so, and draw it as large open markers and a dashed line
                # around the other, so that both stay visible.
                label += f" (same as {same.split(' (')[0]})"  # short: legends squeeze plots
                marker = {"symbol": f"{symbol}-open", "size": 14, "line": {"width": 2}}
                dash = "dash"
            figure.add_scatter(
                x=[n for n, _ in points], y=[y for _, y in points], mode="lines+markers",
                name=label, marker=marker, line={"dash": dash},
            )  # fmt: skip
            drawn.append((points, labels.get(name, name) + suffix))
    describe = {
        "dtype": str,
        "head_dim": lambda value: f"head_dim {value}",
        "causal": lambda value: "causal" if value else "no mask",
        "mode": str,
    }
    setting = ", ".join(describe[key](value) for key, value in wanted.items())
    where = "; ".join(record_label(r) for r in records)
    figure.update_layout(
        xaxis={"title": {"text": "sequence length n (tokens)"}, "type": "log"},
        yaxis={"title": {"text": y_title}, "type": "log"},
    )
    title = f"{what} of attention vs sequence length ({setting})<br><sub>{where}</sub>"
    return style(figure, title, width=900, height=520)


_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "cross", "star")
_DASHES = ("solid", "dot", "dashdot", "longdash", "solid", "dot", "dashdot")


def _coincide(a: Sequence[tuple[int, float]], b: Sequence[tuple[int, float]]) -> bool:
    """Same n and values within 0.5 %: on a log axis the two lines would draw as one."""
    return len(a) == len(b) and all(
        na == nb and math.isclose(ya, yb, rel_tol=5e-3)
        for (na, ya), (nb, yb) in zip(a, b, strict=True)
    )


# --- command line ------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m attn_course.bench",
        description="Benchmark attention implementations and write a JSON record.",
    )
    sub = parser.add_subparsers(dest="benchmark", required=True)
    flash = sub.add_parser(
        "flash",
        help="the course's Triton FlashAttention vs naive attention vs PyTorch SDPA",
        description="Time, throughput, peak memory and error of attention implementations. "
        "On a machine without a GPU the Triton kernel only runs (in the interpreter) at small n "
        "as a correctness check; use a CUDA GPU for its timings.",
    )
    flash.add_argument("--n", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    flash.add_argument("--head-dim", type=int, nargs="+", default=[64])
    flash.add_argument("--dtype", nargs="+", default=None, help="bf16 fp16 fp32 ...")
    flash.add_argument("--causal", choices=["both", "yes", "no"], default="both")
    flash.add_argument("--batch", type=int, default=1)
    flash.add_argument("--heads", type=int, default=8)
    flash.add_argument("--kv-heads", type=int, default=None, help="GQA: key/value heads")
    flash.add_argument("--backward", action="store_true", help="time forward + backward")
    flash.add_argument(
        "--impl", nargs="+", choices=IMPLEMENTATIONS, default=None, help="default: all"
    )
    flash.add_argument("--device", default=None, help="cuda or cpu (default: cuda if present)")
    flash.add_argument("--error-max-n", type=int, default=1024)
    flash.add_argument("--min-run-time", type=float, default=0.2, help="CPU timer, seconds")
    flash.add_argument("--out", type=Path, default=None, help="where to write the JSON record")
    flash.add_argument("--smoke", action="store_true", help="small CPU-friendly run (CI)")
    flash.add_argument("--quiet", action="store_true", help="no progress bar, no table")
    for name, suite in _suites().items():
        suite_parser = sub.add_parser(name, help=suite.__doc__.strip().splitlines()[0])
        suite.add_arguments(suite_parser)
        suite_parser.add_argument("--out", type=Path, default=None, help="JSON record path")
        suite_parser.add_argument("--quiet", action="store_true", help="no table")
    return parser


def _suites() -> dict[str, Any]:
    """The other benchmark suites: each module has add_arguments(parser) and run(args)."""
    from attn_course import bench_linear, bench_sparse

    return {"linear": bench_linear, "sparse": bench_sparse}


def _run_flash(args: argparse.Namespace, command: str) -> dict[str, Any]:
    if args.smoke:
        configs = smoke_configs()
        if args.backward:
            configs += [BenchConfig(n=64, heads=2, causal=True, backward=True)]
    else:
        gpu = (args.device or ("cuda" if torch.cuda.is_available() else "cpu")) == "cuda"
        dtypes = args.dtype or (["bfloat16"] if gpu else ["float32"])
        configs = configs_from(
            args.n, args.head_dim, dtypes, args.causal, backward=args.backward,
            batch=args.batch, heads=args.heads, kv_heads=args.kv_heads,
        )  # fmt: skip
    return run_flash_benchmark(
        configs, args.impl, device=args.device, error_max_n=args.error_max_n,
        min_run_time_s=0.05 if args.smoke else args.min_run_time,
        progress=not args.quiet, command=command, smoke=args.smoke,
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    command = "python -m attn_course.bench " + shlex.join(argv)
    try:
        if args.benchmark == "flash":
            record = _run_flash(args, command)
        else:
            record = _suites()[args.benchmark].run(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(f"{record_label(record)} (kernels: {record.get('kernel_mode', 'n/a')})")
        print(results_table(record))
    if args.out:
        print(f"wrote {write_record(record, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

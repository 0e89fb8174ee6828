"""The measuring instrument every benchmark suite shares: configurations, FLOPs, one measuring
loop, and the record's provenance.

A suite (:mod:`~attn_course.bench.flash`, :mod:`~attn_course.bench.linear`,
:mod:`~attn_course.bench.sparse`) only says *what* to run: its implementations, their
inputs, the float64 reference and the FLOPs to credit. *How* a call is measured is decided
here, once, so that every record's numbers mean the same thing:

* :func:`measure`: run the call once (warm-up; learn whether it can run at all, keeping
  PyTorch's warnings as the reason when it cannot), take its largest error against the
  float64 reference, then its median time (:func:`median_ms`), throughput
  (:func:`attn_course.cost.tflops_per_s`) and the peak memory it adds (:func:`call_peak_bytes`).
* Timing: on a GPU, ``triton.testing.do_bench`` (it flushes the L2 cache between runs and
  syncs the device) with its median; on a CPU, ``torch.utils.benchmark.Timer``'s
  ``blocked_autorange`` median. Peak memory: ``torch.cuda.max_memory_allocated`` on a GPU,
  :func:`attn_course.measure.measure_peak_bytes` (the PyTorch CPU allocator's peak, via the
  profiler) on a CPU.
* The course's Triton kernels in Triton's interpreter (no GPU) run their programs one after
  another in NumPy, thousands of times slower than compiled code: there they are run once,
  up to :data:`INTERPRETER_MAX_N`, to check that they are *correct*, and never timed.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import socket
import subprocess
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import torch

from attn_course.bench.records import CHECKED, FAILED, SCHEMA, UNAVAILABLE, BenchResult
from attn_course.cost import attention_flops, tflops_per_s
from attn_course.measure import measure_peak_bytes
from attn_course.validate import canonical_dtype, resolve_dtype

__all__ = [
    "INTERPRETER_MAX_N",
    "BenchConfig",
    "add_common_arguments",
    "add_sweep_arguments",
    "call_peak_bytes",
    "configs_from",
    "default_dtype",
    "device_info",
    "kernel_status",
    "kernel_unavailable",
    "library_versions",
    "max_abs_error",
    "measure",
    "median_ms",
    "new_record",
    "prepare_run",
    "resolve_device",
    "sweep_configs",
]

#: The course's Triton kernels run in the interpreter only up to this n (a correctness check).
INTERPRETER_MAX_N = 128
_CHECKED_REASON = "Triton interpreter (no GPU): run once for correctness; far too slow to time"


# --- configurations ---------------------------------------------------------------------


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
        """:func:`attn_course.cost.attention_flops` of this configuration."""
        b, h, n, d = self.batch, self.heads, self.n, self.head_dim
        return attention_flops(b, h, n, d, causal=self.causal, backward=self.backward)

    def describe(self) -> str:
        causal = "causal" if self.causal else "full"
        return f"n={self.n} d={self.head_dim} {self.dtype} {causal} {self.mode}"

    def to_dict(self) -> dict[str, Any]:
        """The record's ``config`` fields: every field, and ``mode``."""
        return {**asdict(self), "mode": self.mode}


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


def prepare_run(
    implementations: Sequence[str] | None,
    known: Sequence[str],
    device: str | torch.device | None,
) -> tuple[list[str], torch.device, str, str | None]:
    """What every suite settles before measuring: (names, device, kernel mode, problem).

    names: ``implementations`` (all of ``known`` when None), or a ValueError naming the
    unknown ones; device: :func:`resolve_device`; mode and problem: :func:`kernel_status`.
    """
    names = list(known if implementations is None else implementations)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown implementations {unknown}; known: {list(known)}")
    device = resolve_device(device)
    return names, device, *kernel_status(device)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device``, or CUDA when it is available, else the CPU."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def default_dtype(device: str | torch.device | None) -> str:
    """What a suite measures in when not told: bfloat16 on a GPU, float32 on a CPU."""
    return "bfloat16" if resolve_device(device).type == "cuda" else "float32"


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a sweep over :func:`configs_from`: sizes, head dims, dtypes, batch, heads."""
    parser.add_argument("--n", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    parser.add_argument("--head-dim", type=int, nargs="+", default=[64])
    parser.add_argument("--dtype", nargs="+", default=None, help="bf16 fp16 fp32 ...")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=8)


def sweep_configs(args: argparse.Namespace, causal: str, **fields: Any) -> list[BenchConfig]:
    """:func:`configs_from` the options of :func:`add_sweep_arguments` (and ``--device``:
    the default dtype is :func:`default_dtype`'s); ``fields``: backward, kv_heads."""
    dtypes = args.dtype or [default_dtype(args.device)]
    return configs_from(args.n, args.head_dim, dtypes, causal, batch=args.batch,
                        heads=args.heads, **fields)  # fmt: skip


def add_common_arguments(
    parser: argparse.ArgumentParser, implementations: Sequence[str], *, error_max_n: int
) -> None:
    """The options every suite's command line has (after the suite's own)."""
    parser.add_argument(
        "--impl", nargs="+", choices=implementations, default=None, help="default: all"
    )
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if present)")
    parser.add_argument("--error-max-n", type=int, default=error_max_n)
    parser.add_argument("--min-run-time", type=float, default=0.2, help="CPU timer, seconds")
    parser.add_argument("--smoke", action="store_true", help="small CPU-friendly run (CI)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no table")


# --- the course's kernels ---------------------------------------------------------------


def kernel_status(device: torch.device) -> tuple[str, str | None]:
    """(mode, problem): where the course's kernels run ("gpu", "interpreter" or
    "unavailable") and, when they cannot run on ``device``, why; else None."""
    try:
        from attn_course.kernels import kernel_mode
    except Exception as error:  # noqa: BLE001 - any import problem is reported, not raised
        return "unavailable", f"attn_course.kernels could not be imported ({error})"
    mode = kernel_mode()
    if mode == "gpu" and device.type != "cuda":
        return mode, "the kernels run on the GPU here, but this benchmark runs on the CPU"
    if mode == "interpreter" and device.type != "cpu":
        return mode, "the kernels run in the interpreter (CPU tensors); this benchmark is on a GPU"
    return mode, None


def kernel_unavailable(mode: str, problem: str | None, n: int) -> str | None:
    """Why a course kernel cannot be run at sequence length ``n`` here, else None."""
    if problem:
        return problem
    if mode == "interpreter" and n > INTERPRETER_MAX_N:
        return (
            f"Triton interpreter (no GPU): run only at n <= {INTERPRETER_MAX_N} to check "
            "correctness; far too slow to time"
        )
    return None


# --- measuring --------------------------------------------------------------------------


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


def max_abs_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    """Largest |got − expected|, computed in float64 on ``expected``'s device."""
    return (got.detach().to(expected.device, torch.float64) - expected).abs().max().item()


@contextlib.contextmanager
def _warnings_as_reasons() -> Iterator[list[str]]:
    """Collect the warnings a call raises: SDPA explains why a backend cannot run that way."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reasons: list[str] = []
        yield reasons
    reasons.extend(" ".join(str(w.message).split()) for w in caught)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def _first_run(result: BenchResult, call: Callable[[], Any]) -> Any:
    """Run ``call`` once; on an error, set ``result``'s status and reason and return None."""
    with _warnings_as_reasons() as reasons:
        try:
            return call()
        except (RuntimeError, ValueError) as error:
            # PyTorch's "no available kernel" (a RuntimeError), or the course's kernel
            # refusing what it does not support (a ValueError); out of memory is a failure.
            reasons.insert(0, _one_line(error))
            result.status = FAILED if "out of memory" in str(error) else UNAVAILABLE
        except Exception as error:  # noqa: BLE001 - anything else is recorded, not raised
            reasons.insert(0, f"{type(error).__name__}: {_one_line(error)}")
            result.status = FAILED
    result.reason = "; ".join(dict.fromkeys(reasons))[:600]
    return None


def measure(
    result: BenchResult,
    call: Callable[[], Any],
    device: torch.device,
    *,
    flops: float,
    min_run_time_s: float,
    expected: torch.Tensor | None = None,
    grads: tuple[Sequence[torch.Tensor], Sequence[torch.Tensor]] | None = None,
    timed: bool = True,
) -> BenchResult:
    """Fill ``result`` (status OK) with what one implementation's ``call`` measures.

    1. one run: warm-up and compilation, and whether it can run at all (if not: status
       UNAVAILABLE, or FAILED for out of memory and unexpected errors, with the reason);
    2. the error of its output against ``expected`` (the float64 reference; None: not
       computed) and, with ``grads = (inputs, expected_grads)``, of ``input.grad`` against
       each expected gradient;
    3. ``timed=False`` (a course kernel in the interpreter) stops here: status CHECKED;
    4. the median time in ms, the TFLOP/s of ``flops`` in it, and the peak bytes one call
       adds above the live tensors. An error here (out of memory) is status FAILED.
    """
    out = _first_run(result, call)
    if out is None:
        return result
    if expected is not None:
        result.max_abs_error = max_abs_error(out, expected)
    if grads is not None:
        inputs, expected_grads = grads
        result.grad_max_abs_error = max(
            max_abs_error(t.grad, g) for t, g in zip(inputs, expected_grads, strict=True)
        )
    del out
    if not timed:
        result.status, result.reason = CHECKED, _CHECKED_REASON
        return result
    try:
        result.ms = median_ms(call, device, min_run_time_s)
        result.tflops = tflops_per_s(flops, result.ms)
        for t in grads[0] if grads else ():  # free the last run's gradients before the peak
            t.grad = None
        result.peak_bytes = call_peak_bytes(call, device)
    except (RuntimeError, ValueError) as error:  # out of memory during the timed runs
        result.status, result.reason = FAILED, _one_line(error)[:600]
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


# --- the record -------------------------------------------------------------------------


def new_record(
    benchmark: str,
    results: Sequence[BenchResult],
    flops: str,
    *,
    device: torch.device,
    kernel_mode: str,
    command: str | None,
    smoke: bool,
    min_run_time_s: float,
    error_max_n: int,
) -> dict[str, Any]:
    """A benchmark record (schema in records/README.md): where, when, how, and the results.

    Every suite (flash, linear, sparse) writes its record through this one function, so the
    provenance fields (device, date, versions, command, timing method) cannot drift apart.
    ``flops`` says how the FLOPs were counted; ``command`` None: the suite was called from
    Python (``attn_course.bench.<benchmark>.run_<benchmark>_benchmark(...)``).
    """
    command = command or f"attn_course.bench.{benchmark}.run_{benchmark}_benchmark(...)"
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
            else "PyTorch CPU allocator peak above the inputs, attn_course.measure."
            "measure_peak_bytes (bytes)"
        ),
        "flops": flops,
        "error_max_n": error_max_n,
        "results": [result.to_dict() for result in results],
    }


def device_info(device: torch.device) -> dict[str, Any]:
    """The record's ``device``: type, name, CUDA and driver versions, memory or CPU threads."""
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
    """The record's ``versions``: python, torch and triton (None when absent)."""
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

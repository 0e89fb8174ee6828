"""Measuring tools the lessons share: peak memory, time, random inputs and log-log fits.

What a notebook measures on the learner's machine, with the care each number needs:

* **Peak memory** (:func:`measure_peak_bytes`): every allocation and free PyTorch's CPU
  allocator makes while a function runs, recorded by ``torch.profiler``; the running
  total's maximum, above what was allocated before the call, in bytes. Exact to the byte
  for what PyTorch asked for (notebook 01 compares it with its formula).
  :func:`physical_memory_bytes`: the machine's RAM, to say what fits.
* **Inputs** (:func:`random_qkv`): seeded q, k, v of shape (batch, heads, n, head_dim).
* **Time** (:func:`time_call`): the fastest of several runs, in seconds.
* **Exponents**: :func:`loglog_slope`, the least-squares p of ``y ∝ x^p``, for numbers
  that do not vary from run to run (bytes, FLOPs); :func:`fit_trend` for timings, which do.

Deciding what a timing measurement supports. A notebook that times something must not
assert a trend the measurement does not show. On a shared 2-core machine another program
can slow any single run by a factor of several, so "the step time climbs with position" can
come out as a flat or even falling curve. The rule the course follows:

1. measure defensively: the fastest of several repeats (load only ever adds time), repeats
   interleaved so that a burst of load spoils one repeat of every point rather than every
   repeat of a few points, and a fixed number of torch threads (:func:`torch_threads`;
   one thread for small models, since a multi-threaded call waits for its slowest thread);
2. fit the exponent p of ``y ∝ x^p`` by least squares in log-log (:func:`fit_trend`), with
   a 95 % confidence interval from the scatter of the points about the line;
3. let the fit decide the sentence (:meth:`Trend.sentence`): "flat" when the whole
   interval is close to 0; "grows" only when the whole interval is above 0 and the line
   explains most of the variation; otherwise "too noisy on this machine", with the reasons, which
   are numbers from the measurement itself.

The fitting is pure arithmetic on numbers passed in, so the tests feed it synthetic
timings and never depend on the speed of the machine that runs them.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch

from attn_course.validate import check_count, check_non_negative, resolve_dtype

__all__ = [
    "FLAT_WITHIN",
    "MIN_R2",
    "Trend",
    "fit_trend",
    "loglog_slope",
    "machine_load",
    "measure_peak_bytes",
    "physical_memory_bytes",
    "random_qkv",
    "t_quantile_975",
    "time_call",
    "torch_threads",
]

# --- peak memory -------------------------------------------------------------------------


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


# --- inputs and time ---------------------------------------------------------------------


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


# --- exponents ---------------------------------------------------------------------------


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
    return _log_log_line(xs, ys).slope


@dataclass(frozen=True)
class _Line:
    """Least squares of log y on log x: slope, and the sums a confidence interval needs."""

    slope: float
    sxx: float  # Σ (log x - mean)²
    residual: float  # Σ (log y - fitted)²
    syy: float  # Σ (log y - mean)²


def _log_log_line(xs: Sequence[float], ys: Sequence[float]) -> _Line:
    """Fit log y = a + p · log x (xs, ys > 0, checked by the callers)."""
    log_x = [math.log(x) for x in xs]
    log_y = [math.log(y) for y in ys]
    mean_x, mean_y = sum(log_x) / len(log_x), sum(log_y) / len(log_y)
    sxx = sum((a - mean_x) ** 2 for a in log_x)
    if sxx == 0:
        raise ValueError("xs must not all be equal")
    slope = sum((a - mean_x) * (b - mean_y) for a, b in zip(log_x, log_y, strict=True)) / sxx
    intercept = mean_y - slope * mean_x
    residual = sum((b - intercept - slope * a) ** 2 for a, b in zip(log_x, log_y, strict=True))
    return _Line(slope, sxx, residual, sum((b - mean_y) ** 2 for b in log_y))


# --- what a timing supports ---------------------------------------------------------------

Verdict = Literal["grows", "flat", "noisy"]

# "grows" needs the fitted line to explain at least this share of the variance of log y.
MIN_R2 = 0.5
# "flat" needs the whole 95 % interval of the exponent inside [-FLAT_WITHIN, FLAT_WITHIN].
FLAT_WITHIN = 0.25

# Two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom.
_T_975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_quantile_975(df: int) -> float:
    """The 97.5 % quantile of Student's t with ``df`` degrees of freedom (table to 30,
    then ``1.96 + 2.5 / df``, within 0.002 of the exact value)."""
    if not isinstance(df, int) or df < 1:
        raise ValueError(f"df must be an int >= 1, got {df!r}")
    return _T_975[df - 1] if df <= len(_T_975) else 1.96 + 2.5 / df


@dataclass(frozen=True)
class Trend:
    """The fitted exponent p of ``y ∝ x^p`` and what it lets a notebook say.

    slope:   least-squares slope of log y against log x (y: the fastest repeat at each x)
    low, high: its 95 % confidence interval (slope ± t · standard error)
    r2:      share of the variance of log y the line explains
    points:  how many x values were fitted
    spread:  median over x of (slowest / fastest repeat − 1); None with one repeat
    verdict: "grows", "flat" or "noisy" (see :func:`fit_trend`)
    min_r2:  the r² that "grows" needed
    """

    slope: float
    low: float
    high: float
    r2: float
    points: int
    spread: float | None
    verdict: Verdict
    min_r2: float = MIN_R2

    def interval(self) -> str:
        return f"95 % interval {self.low:.2f} to {self.high:.2f}"

    def reasons(self, variable: str = "x") -> list[str]:
        """Why the verdict is "noisy", each a sentence fragment with the measured numbers."""
        if self.verdict != "noisy":
            return []
        found = []
        if self.slope < 0:
            found.append(
                f"the fitted time falls as {variable} grows (exponent {self.slope:.2f}) although "
                "the work does not shrink, so something other than the work dominated"
            )
        if self.low <= 0 <= self.high:
            found.append(
                f"the 95 % interval of the exponent, {self.low:.2f} to {self.high:.2f}, "
                "includes 0 (no trend)"
            )
        if self.r2 < self.min_r2:
            found.append(
                f"the fitted line explains only {self.r2:.0%} of the variation "
                f"(r²; {self.min_r2:.0%} needed)"
            )
        if self.spread is not None:
            found.append(
                f"repeated runs at the same {variable} differed by {self.spread:.0%} (median)"
            )
        return found

    def sentence(
        self,
        quantity: str,
        variable: str,
        *,
        expected: float | None = None,
        load: tuple[float, int] | None = None,
    ) -> str:
        """What the measurement supports, as one sentence for the notebook to print.

        ``quantity``: what was timed ("the step time"); ``variable``: what it is plotted
        against ("position"). ``expected``: an exponent the text predicts; a "grows"
        sentence then says whether the interval contains it. ``load``: (load average,
        cores) from :func:`machine_load`, added to the reasons of a "noisy" verdict.
        """
        fit = f"fitted exponent {self.slope:.2f}, {self.interval()}, r² {self.r2:.2f}"
        if self.verdict == "grows":
            text = f"{_capital(quantity)} climbs with {variable}: {fit}"
            if expected is not None:
                inside = self.low <= expected <= self.high
                text += (
                    f"; the interval contains the expected {expected:g}"
                    if inside
                    else f"; the expected {expected:g} is outside the interval"
                )
            return text + "."
        if self.verdict == "flat":
            return f"{_capital(quantity)} stays nearly flat with {variable} at this size: {fit}."
        reasons = self.reasons(variable)
        if load is not None:
            reasons.append(f"the load average was {load[0]:.1f} on {load[1]} cores")
        return (
            f"Too noisy on this machine to show how {quantity} depends on {variable} "
            f"({fit}): " + "; ".join(reasons) + ". Rerun the cell when the machine is quieter."
        )


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _fastest(ys: Sequence[float] | Sequence[Sequence[float]]) -> tuple[list[float], float | None]:
    """(fastest value at each x, median relative spread of the repeats or None)."""
    runs = [list(y) if isinstance(y, Sequence) else [float(y)] for y in ys]
    if any(not r for r in runs):
        raise ValueError("every x needs at least one timing")
    fastest = [min(r) for r in runs]
    if all(len(r) == 1 for r in runs):
        return fastest, None
    spreads = sorted(max(r) / min(r) - 1 for r in runs if min(r) > 0)
    spread = spreads[len(spreads) // 2] if spreads else None
    return fastest, spread


def fit_trend(
    xs: Sequence[float],
    ys: Sequence[float] | Sequence[Sequence[float]],
    *,
    min_r2: float = MIN_R2,
    flat_within: float = FLAT_WITHIN,
) -> Trend:
    """Fit ``y ∝ x^p`` to timings and decide what the fit supports.

    ``ys[i]`` is one timing at ``xs[i]`` or a sequence of repeats; the fit uses the fastest
    repeat. The verdict is

    * ``"flat"`` when the interval lies inside [−``flat_within``, ``flat_within``] (a
      precise measurement of a curve that barely moves: x ten times larger changes the
      time by less than 10^0.25 ≈ 1.8×);
    * ``"grows"`` when the interval lies above 0 and r² ≥ ``min_r2``;
    * ``"noisy"`` otherwise: the interval straddles 0 without being narrow, the time falls
      as x grows (no work shrinks with x here, so something else dominated), or the line
      explains too little. :meth:`Trend.reasons` says which, with the numbers.
    """
    if len(xs) != len(ys):
        raise ValueError(f"xs and ys must be equally long, got {len(xs)} and {len(ys)}")
    if len(xs) < 3:
        raise ValueError(f"need timings at >= 3 values of x to judge a trend, got {len(xs)}")
    fastest, spread = _fastest(ys)
    if min(xs) <= 0 or min(fastest) <= 0:
        raise ValueError("xs and timings must be > 0 to take logarithms")
    line = _log_log_line(xs, fastest)
    n = len(xs)
    r2 = 1.0 - line.residual / line.syy if line.syy > 0 else 1.0
    half = t_quantile_975(n - 2) * math.sqrt(line.residual / (n - 2) / line.sxx)
    slope = line.slope
    low, high = slope - half, slope + half

    if -flat_within <= low and high <= flat_within:
        verdict: Verdict = "flat"
    elif low > 0 and r2 >= min_r2:
        verdict = "grows"
    else:
        verdict = "noisy"
    return Trend(slope, low, high, r2, n, spread, verdict, min_r2)


def machine_load() -> tuple[float, int] | None:
    """(1-minute load average, CPU cores) of this machine, or None where the OS has none.

    A load average above the number of cores means programs were waiting for a core.
    """
    try:
        return os.getloadavg()[0], os.cpu_count() or 1
    except (AttributeError, OSError):
        return None


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads (None: leave as is), then restore."""
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be an int >= 1 or None, got {threads!r}")
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)

"""The lessons' measuring tools (attn_course.measure): peak memory, time, exponents.

The allocator peak is checked on allocations of known size (notebook 01's tests compare it
with the attention formulas). The rule that decides what a timing lets a notebook say is
checked on synthetic timings only: a clean power law must give a sentence asserting the
trend with its exponent; noise, a falling curve or too few points must give "too noisy"
with the reasons. Nothing here depends on the speed of the machine that runs it.
"""

from __future__ import annotations

import random
import time

import pytest
import torch

from attn_course.measure import (
    Trend,
    fit_trend,
    loglog_slope,
    machine_load,
    measure_peak_bytes,
    t_quantile_975,
    time_call,
    torch_threads,
)


def power_law(xs, p, scale=1e-3, noise=0.0, seed=0, repeats=1):
    """Timings scale * x**p, each repeat multiplied by a random factor in [1, 1 + noise]
    (load only ever adds time)."""
    rng = random.Random(seed)
    return [[scale * x**p * (1 + noise * rng.random()) for _ in range(repeats)] for x in xs]


POSITIONS = list(range(13, 256))


def test_clean_linear_trend_is_asserted_with_its_exponent():
    trend = fit_trend(POSITIONS, power_law(POSITIONS, 1.0, noise=0.02, repeats=5))
    assert trend.verdict == "grows"
    assert trend.low <= 1.0 <= trend.high and trend.high - trend.low < 0.05
    assert trend.r2 > 0.99 and trend.points == len(POSITIONS)
    text = trend.sentence("the step time", "position")
    assert text.startswith("The step time climbs with position: fitted exponent 1.0")
    assert "too noisy" not in text.lower()
    assert trend.reasons("position") == []


def test_expected_exponent_is_checked_against_the_interval():
    xs = [16, 32, 64, 128, 256, 512]
    trend = fit_trend(xs, power_law(xs, 2.0, noise=0.05, repeats=3, seed=3))
    assert trend.verdict == "grows"
    assert "the interval contains the expected 2" in trend.sentence("time", "n", expected=2)
    assert "the expected 1 is outside the interval" in trend.sentence("time", "n", expected=1)


def test_a_mild_but_clean_trend_still_counts_as_growth():
    # Overheads flatten the curve (exponent 0.3) but the measurement is clean.
    trend = fit_trend(POSITIONS, power_law(POSITIONS, 0.3, noise=0.01, repeats=3))
    assert trend.verdict == "grows"


def test_pure_noise_says_too_noisy_and_why():
    rng = random.Random(1)
    ys = [[1e-3 * (1 + 3 * rng.random()) for _ in range(3)] for _ in POSITIONS[:40]]
    trend = fit_trend(POSITIONS[:40], ys)
    assert trend.verdict == "noisy"
    text = trend.sentence("the step time", "position", load=(3.7, 2))
    assert text.startswith("Too noisy on this machine to show how the step time depends on")
    assert "climbs" not in text
    assert "explains only" in text
    assert "repeated runs at the same position differed by" in text
    assert "the load average was 3.7 on 2 cores" in text


def test_a_falling_curve_is_not_reported_as_a_trend():
    # The measurement the learner saw: prefill "slope -0.21" on a loaded machine.
    xs = [16, 32, 64, 128, 256]
    ys = [9e-3, 6e-3, 7e-3, 5e-3, 5.5e-3]
    trend = fit_trend(xs, ys)
    assert trend.slope < 0 and trend.verdict == "noisy"
    text = trend.sentence("the prefill", "prompt length")
    assert "falls as prompt length grows (exponent -0.17)" in text
    assert "includes 0" in text
    assert trend.spread is None  # one timing per point: no spread to report
    assert not any("repeated runs" in r for r in trend.reasons("n"))


def test_a_trend_hidden_under_noise_is_not_asserted():
    # A real exponent of 1 over a narrow range, drowned by ×1–4 load on single runs.
    xs = [16, 20, 24, 28, 32]
    load = [3.5, 1.0, 2.8, 1.1, 1.2]
    trend = fit_trend(xs, [1e-4 * x * f for x, f in zip(xs, load, strict=True)])
    assert trend.verdict == "noisy"
    assert "includes 0" in trend.sentence("the time", "n")


def test_a_clean_flat_curve_is_flat_not_noisy():
    trend = fit_trend(POSITIONS, power_law(POSITIONS, 0.0, noise=0.01, repeats=3))
    assert trend.verdict == "flat"
    # A precise, tiny exponent (a cached decode step dominated by overheads) is "flat" too.
    assert fit_trend(POSITIONS, power_law(POSITIONS, 0.07, noise=0.01)).verdict == "flat"
    assert "stays nearly flat with position" in trend.sentence("the cached step", "position")


def test_fastest_repeat_is_what_gets_fitted():
    xs = [10, 20, 40, 80]
    ys = [[1.0, 50.0], [2.0, 1.0e3], [4.0, 4.1], [8.0, 99.0]]  # slow repeats are load
    trend = fit_trend(xs, ys)
    assert trend.slope == pytest.approx(1.0) and trend.verdict == "grows"


def test_validation():
    with pytest.raises(ValueError, match=">= 3"):
        fit_trend([1, 2], [1.0, 2.0])
    with pytest.raises(ValueError, match="equally long"):
        fit_trend([1, 2, 3], [1.0, 2.0])
    with pytest.raises(ValueError, match="> 0"):
        fit_trend([1, 2, 3], [1.0, 0.0, 2.0])
    with pytest.raises(ValueError, match="all be equal"):
        fit_trend([2, 2, 2], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="at least one"):
        fit_trend([1, 2, 3], [[1.0], [], [2.0]])


def test_t_quantiles():
    assert t_quantile_975(1) == 12.706 and t_quantile_975(30) == 2.042
    assert t_quantile_975(60) == pytest.approx(2.000, abs=0.002)
    assert t_quantile_975(10_000) == pytest.approx(1.96, abs=0.001)
    with pytest.raises(ValueError):
        t_quantile_975(0)


def test_torch_threads_is_restored_and_machine_load_is_a_pair():
    import torch

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError):
        with torch_threads(0):
            pass
    load = machine_load()
    assert load is None or (load[0] >= 0 and load[1] >= 1)
    assert isinstance(fit_trend([1, 2, 3], [1.0, 2.0, 3.0]), Trend)


# --- peak memory, time and exponents ---------------------------------------------------------


def _two_temporaries():
    a = torch.ones(1000)  # 4000 B
    b = torch.ones(2000)  # + 8000 B: 12000 B alive at once
    del a, b
    return torch.ones(500)  # 2000 B, after both were freed


def test_measure_peak_bytes_sees_temporaries():
    assert measure_peak_bytes(_two_temporaries) == 12_000


def test_measure_peak_bytes_ignores_memory_allocated_before_the_call():
    before = torch.ones(10_000)  # 40 kB that exist already
    assert measure_peak_bytes(lambda: before.neg()) == 40_000  # only the new result


def test_loglog_slope():
    assert loglog_slope([1, 2, 4], [1, 4, 16]) == pytest.approx(2.0)  # y = x²
    assert loglog_slope([10, 100], [3, 30]) == pytest.approx(1.0)  # y = 0.3 x
    with pytest.raises(ValueError, match="> 0"):
        loglog_slope([0, 1], [1, 2])


def test_time_call_returns_the_fastest_run():
    calls = []
    assert time_call(lambda: calls.append(1), repeats=3, min_total_s=0) >= 0
    assert len(calls) == 3
    durations = iter([0.03, 0.01, 0.02])  # sleeps of 30, 10, 20 ms: the fastest is ~10 ms
    assert time_call(lambda: time.sleep(next(durations)), repeats=3, min_total_s=0) < 0.02
    calls.clear()
    time_call(lambda: calls.append(1), repeats=1, min_total_s=0.01)  # keeps going for 10 ms
    assert len(calls) > 1
    with pytest.raises(ValueError, match="repeats"):
        time_call(lambda: None, repeats=0)

"""Checks of notebook 02 (cost arithmetic).

Each check calls the student's function on hand-picked inputs, chosen so that the usual
slips give *different* wrong numbers (a forgotten factor 2, K without V, heads in place of
kv_heads, a one-way transfer where a round trip was asked for), and compares with the
closed form written out here; then on cases hypothesis draws over the valid inputs. When
the answer is wrong, the hint names the slip that reproduces the student's number. The
course's own functions that compute the same quantity (``attn_course.cost.*``) are
forbidden: the exercise is the arithmetic.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import strategies as st

from attn_course.checks import CheckFailed, exercise, expect_close, for_all
from attn_course.checks._forbid import reference
from attn_course.grading.answers import StudentError

NOTEBOOK = "02_cost_arithmetic"

# A slip: (the number it produces for this case, the hint that names it).
Slips = Sequence[tuple[float, str]]


def _number(got: Any, case: str, hint: str) -> float:
    if isinstance(got, bool) or not isinstance(got, int | float):
        raise CheckFailed(
            f"{case}: expected a number, got {type(got).__name__}",
            hint or "return the number (an int or a float), not print it",
        )
    return float(got)


def _expect_number(got: Any, expected: float, case: str, slips: Slips, default_hint: str) -> None:
    """Pass if ``got`` is ``expected`` (to 1e-9); otherwise fail naming the slip that gives
    ``got``: the first in ``slips`` whose number is ``got`` and differs from ``expected``."""
    value = _number(got, case, default_hint)
    if math.isfinite(value) and math.isclose(value, expected, rel_tol=1e-9):
        return
    hint = next(
        (text for wrong, text in slips
         if not math.isclose(wrong, expected, rel_tol=1e-9)
         and math.isclose(value, wrong, rel_tol=1e-9, abs_tol=1e-300)),
        default_hint,
    )  # fmt: skip
    expect_close(value, expected, case, hint, rel=1e-9)


def _call(answer: Callable[..., Any], args: tuple[Any, ...], case: str, hint: str) -> Any:
    """``answer(*args)``; a crash on this valid input is reported with the case."""
    try:
        return answer(*args)
    except StudentError as error:
        raise CheckFailed(f"{case}: {error}", hint) from None


def _expect_value_error(
    call: Callable[[], Any], case: str, names: str, shown: str, hint: str
) -> None:
    """Fail unless ``call()`` raises ValueError whose message matches regex ``names``
    (the parameter, ``shown`` in the feedback)."""
    try:
        call()
    except StudentError as error:
        if not error.is_a(ValueError):
            raise CheckFailed(
                f"{case}: expected ValueError, got {error.type_name}: {error.message}", hint
            ) from None
        if not re.search(names, error.message, re.IGNORECASE):
            raise CheckFailed(
                f"{case}: your ValueError says {error.message!r}, which does not name {shown}",
                f'say which input is wrong: raise ValueError(f"{shown} ... got {{{shown}}}")',
            ) from None
        return
    raise CheckFailed(f"{case}: expected ValueError, nothing was raised", hint)


# --- 1. FLOPs of attention --------------------------------------------------------------


@exercise(
    "attention_flops",
    notebook=NOTEBOOK,
    answer="attention_flops",
    title="FLOPs of one layer's attention matmuls",
    points=1,
    forbidden=[
        reference("attn_course.cost.attention_matmul_flops", what="attention FLOPs"),
        reference("attn_course.cost.attention_flops", what="attention FLOPs"),
    ],
)
def _check_attention_flops(attention_flops: Callable[[int, int], float]) -> None:
    # First how the work grows (1 % slack, so that a causal triangle n(n+1)/2, named
    # below, still passes this test): the two matmuls are quadratic in n, linear in d.
    sizes = {"n, d": (512, 64), "4n, d": (2048, 64), "n, 4d": (512, 256)}
    counts = {}
    for label, (n, d) in sizes.items():
        case = f"attention_flops({n}, {d})"
        counts[label] = _number(_call(attention_flops, (n, d), case, ""), case, "")
    in_n, in_d = (counts[label] / counts["n, d"] if counts["n, d"] else math.inf
                  for label in ("4n, d", "n, 4d"))  # fmt: skip
    if not (math.isclose(in_n, 16, rel_tol=1e-2) and math.isclose(in_d, 4, rel_tol=1e-2)):
        hint = "both matmuls are n·n·d multiply-adds: 4·n²·d FLOPs, quadratic in n, linear in d"
        if math.isclose(in_n, 4, rel_tol=1e-2) and math.isclose(in_d, 16, rel_tol=1e-2):
            hint = "n and d are swapped: the score matrix is n × n, so n is squared"
        raise CheckFailed(
            f"when n grows 4× (512 → 2048) your count grows {in_n:.3g}×, and {in_d:.3g}× when "
            "d_model grows 4× (64 → 256); attention's grows 16× and 4×",
            hint,
        )
    # Then the numbers; (8, 3) first: n != d, and every slip below gives its own number.
    for n, d in ((8, 3), (3, 8), (1000, 64), (4096, 4096), (1, 1), (32768, 128)):
        _expect_attention_flops(attention_flops, n, d, f"4·{n}²·{d} = {4 * n * n * d}")

    def one(n: int, d_model: int) -> None:
        _expect_attention_flops(attention_flops, n, d_model, "4·n²·d")

    for_all(one, n=st.integers(1, 2**20), d_model=st.integers(1, 2**16))


def _expect_attention_flops(answer: Callable[..., Any], n: int, d: int, arithmetic: str) -> None:
    expected = 4 * n * n * d
    slips = [
        (2 * n * n * d, "you counted one matmul, or multiply-adds: Q Kᵀ and P V each cost "
         "2·n²·d FLOPs"),
        (n * n * d, "n²·d is the multiply-adds of ONE matmul; FLOPs count 2 per multiply-add, "
         "and there are two matmuls"),
        (4 * n * d * d, "n and d are swapped: the score matrix is n × n, so n is squared"),
        (2 * n * (n + 1) * d, "no causal mask here: every query meets all n keys, the full "
         "n × n, not the triangle n(n+1)/2"),
        (4 * n * d, "one score per (query, key) pair: n·n of them, not n"),
        (8 * n * n * d, "a multiply-add is 2 FLOPs, counted once: 2·n·n·d per matmul, two "
         "matmuls"),
    ]  # fmt: skip
    case = f"attention_flops(n={n}, d_model={d}) ({arithmetic})"
    got = _call(answer, (n, d), case, "")
    _expect_number(got, expected, case, slips,
                   "two matmuls (Q Kᵀ and P V), each 2·n·n·d FLOPs: 4·n²·d in all")  # fmt: skip


# --- 2. the attention-vs-rest crossover -------------------------------------------------


@exercise(
    "crossover_n",
    notebook=NOTEBOOK,
    answer="crossover_n",
    title="Where attention overtakes the rest of the layer",
    points=1,
    forbidden=[
        reference("attn_course.cost.attention_ffn_crossover_n", what="the crossover n"),
        reference("attn_course.cost.attention_ffn_ratio", what="attention / the rest"),
    ],
)
def _check_crossover_n(crossover_n: Callable[[int, int], float]) -> None:
    # Llama-2-7B's widths first (d_ff = 11008 is not 4·d: every slip gives its own number);
    # then d_ff = 4d (GPT), a tiny and an odd case.
    for d, d_ff in ((4096, 11008), (4096, 16384), (768, 3072), (1, 1), (5, 7)):
        _expect_crossover(crossover_n, d, d_ff)
    for_all(lambda d, d_ff: _expect_crossover(crossover_n, d, d_ff),
            d=st.integers(1, 2**16), d_ff=st.integers(1, 2**18))  # fmt: skip


def _expect_crossover(answer: Callable[..., Any], d: int, d_ff: int) -> None:
    expected = d_ff + 2 * d
    slips = [
        (d, "n = d is the textbook's claim, and it is wrong: do the algebra"),
        (d_ff, "n = d_ff balances attention against the FFN alone; add the projections"),
        (6 * d, "6·d assumes d_ff = 4·d; use the d_ff you are given"),
        (2 * expected, "that is the causal crossover; this exercise is non-causal (full n × n)"),
        (expected / 2, "count 2 FLOPs per multiply-add on both sides: attention 4·n²·d, "
         "projections 8·n·d², FFN 4·n·d·d_ff"),
        (d_ff + d, "each projection is 2·n·d² FLOPs (2 per multiply-add), four of them: "
         "8·n·d², which is 2·d after dividing by 4·n·d"),
        (d_ff + 1.5 * d, "four projections: Q, K, V *and* the output projection O"),
        (1.5 * d_ff + 2 * d, "a classic FFN has 2 matrices (up and down), not 3 (gated)"),
        (math.sqrt(expected), "the rest of the layer grows linearly in n (8·n·d² + "
         "4·n·d·d_ff): divide both sides by 4·n·d, not by 4·d"),
    ]  # fmt: skip
    case = f"crossover_n(d_model={d}, d_ff={d_ff}) (expected {d_ff} + 2·{d} = {expected})"
    got = _call(answer, (d, d_ff), case, "")
    _expect_number(got, expected, case, slips,
                   "solve 4·n²·d = 4·n·d·d_ff + 8·n·d² for n (attention = FFN + Q/K/V/O "
                   "projections); divide both sides by 4·n·d")  # fmt: skip


# --- 3. KV-cache bytes ------------------------------------------------------------------

_KV_HINT = "2 (K and V) × layers × kv_heads × head_dim × context × batch × bytes_per_element"


@exercise(
    "kv_cache_bytes",
    notebook=NOTEBOOK,
    answer="kv_cache_bytes",
    title="Bytes of a KV cache (MHA, GQA, MQA)",
    points=1,
    forbidden=[
        reference(
            "attn_course.cost.kv_cache_bytes",
            "attn_course.cost.kv_cache_bytes_per_token",
            "attn_course.cost.model_kv_cache_bytes",
            what="KV-cache bytes",
        ),
    ],
)
def _check_kv_cache_bytes(kv_cache_bytes: Callable[..., float]) -> None:
    cases = (
        # layers, d_model, heads, kv_heads, context, batch, bytes_per_element
        # first, one where every slip gives a different number: groups of 6, batch 3, fp32
        (5, 96, 12, 2, 7, 3, 4),
        (32, 4096, 32, 32, 100_000, 1, 2),  # Llama-2-7B (MHA), 100K tokens fp16: 52.4 GB
        (32, 4096, 32, 8, 100_000, 1, 2),  # Llama-3-8B (GQA): 4x smaller
        (2, 64, 8, 1, 10, 3, 4),  # MQA, batch 3, fp32
        (1, 8, 2, 2, 3, 1, 0.5),  # int4: half a byte per number
        (3, 72, 12, 3, 5, 2, 1),  # groups of 4, head_dim 6 (not a power of 2), int8
        (1, 1, 1, 1, 1, 1, 1),
    )
    for args in cases:
        _expect_kv_bytes(kv_cache_bytes, *args)

    def one(layers: int, kv_heads: int, group: int, head_dim: int, context: int, batch: int,
            size: float) -> None:  # fmt: skip
        heads = kv_heads * group
        _expect_kv_bytes(kv_cache_bytes, layers, heads * head_dim, heads, kv_heads, context,
                         batch, size)  # fmt: skip

    for_all(one, layers=st.integers(1, 128), kv_heads=st.integers(1, 16),
            group=st.integers(1, 8), head_dim=st.sampled_from([8, 16, 64, 80, 128, 256]),
            context=st.integers(1, 2**20), batch=st.integers(1, 64),
            size=st.sampled_from([0.5, 1, 2, 4]))  # fmt: skip

    hint = ("query heads share KV heads in equal groups: raise ValueError when "
            "heads % kv_heads != 0 (not ZeroDivisionError, not an assert)")  # fmt: skip
    for heads, kv_heads in ((32, 5), (12, 8), (8, 16), (6, 4)):
        _expect_value_error(
            lambda heads=heads, kv_heads=kv_heads: kv_cache_bytes(
                2, 16 * heads, heads, kv_heads, 1024, 1, 2
            ),
            f"kv_heads={kv_heads} does not divide heads={heads}",
            r"kv[_ ]?heads",
            "kv_heads",
            hint,
        )


def _expect_kv_bytes(
    answer: Callable[..., Any],
    layers: int,
    d_model: int,
    heads: int,
    kv_heads: int,
    context: int,
    batch: int,
    size: float,
) -> None:
    head_dim = d_model // heads
    elements = 2 * layers * kv_heads * head_dim * context * batch
    expected = elements * size
    slips = [
        (expected / 2, "the cache holds a key AND a value for every token: a factor 2"),
        (expected * heads / kv_heads, "only kv_heads heads are cached (grouped-query "
         "attention): use kv_heads × head_dim channels, not heads × head_dim = d_model"),
        (expected * heads, "each KV head has head_dim = d_model / heads channels: "
         "kv_heads × head_dim, not kv_heads × d_model"),
        (expected / batch, "every sequence in the batch has its own cache: multiply by batch"),
        (expected / layers, "every layer has its own cache: multiply by layers"),
        (elements, "multiply the number of elements by bytes_per_element"),
        (expected * 8, "bytes, not bits: multiply by bytes_per_element, not by 8 × it"),
        (elements * math.floor(size), "bytes_per_element may be fractional (0.5 for int4): "
         "don't round it (int(), //)"),
    ]  # fmt: skip
    case = (f"kv_cache_bytes(layers={layers}, d_model={d_model}, heads={heads}, "
            f"kv_heads={kv_heads}, context={context}, batch={batch}, "
            f"bytes_per_element={size})")  # fmt: skip
    valid = (f"kv_heads={kv_heads} divides heads={heads} (groups of {heads // kv_heads}): "
             "that input is valid; refuse only heads % kv_heads != 0")  # fmt: skip
    got = _call(answer, (layers, d_model, heads, kv_heads, context, batch, size), case, valid)
    _expect_number(got, expected, case, slips, _KV_HINT)


# --- 4. moving a score matrix in and out of memory --------------------------------------


@exercise(
    "round_trip_time_s",
    notebook=NOTEBOOK,
    answer="round_trip_time_s",
    title="Time to write an n x n score matrix to memory and read it back",
    points=1,
    forbidden=[
        reference("attn_course.cost.transfer_time_s", what="transfer times"),
        reference(
            "attn_course.cost.score_matrix_bytes",
            "attn_course.cost.score_count",
            what="score-matrix sizes",
        ),
    ],
)
def _check_round_trip_time_s(round_trip_time_s: Callable[[int, float, float], float]) -> None:
    cases = (
        (1000, 4, 1e9),  # 4 MB each way at 1 GB/s: 8 ms
        (32768, 2, 2.039e12),  # the textbook's A100 example: ~2.1 ms
        (1, 1, 2.0),  # 2 bytes at 2 B/s: 1 s
        (3, 0.5, 0.25),  # int4, a bandwidth below 1 B/s: 36 s
    )
    for n, size, bandwidth in cases:
        _expect_round_trip(round_trip_time_s, n, size, bandwidth)
    for_all(lambda n, size, bandwidth: _expect_round_trip(round_trip_time_s, n, size, bandwidth),
            n=st.integers(1, 2**17), size=st.sampled_from([0.5, 1, 2, 4, 8]),
            bandwidth=st.floats(1e3, 1e13))  # fmt: skip
    hint = ("a bandwidth must be > 0: raise ValueError for zero and for negative values "
            "(a ZeroDivisionError does not say which input was wrong)")  # fmt: skip
    for bad in (0, 0.0, -1.0, -2.039e12):
        _expect_value_error(
            lambda bad=bad: round_trip_time_s(1024, 2, bad),
            f"round_trip_time_s(1024, 2, bandwidth_bytes_per_s={bad!r})",
            "bandwidth",
            "bandwidth_bytes_per_s",
            hint,
        )


def _expect_round_trip(answer: Callable[..., Any], n: int, size: float, bandwidth: float) -> None:
    one_way = n * n * size
    expected = 2 * one_way / bandwidth
    slips = [
        (expected / 2, "that is one way; in AND out means the bytes cross the bus twice"),
        (expected * 2, "one matrix, written once and read once: 2 · n·n·bytes_per_element "
         "bytes in all"),
        (expected * 1e3, "the answer is in seconds, not milliseconds"),
        (expected * 1e6, "the answer is in seconds, not microseconds"),
        (expected * 1e9, "bandwidth is given in bytes/s, not GB/s"),
        (expected * 1e-9, "bandwidth is given in bytes/s, not GB/s"),
        (expected / n, "the matrix has n·n entries, not n"),
        (expected / size, "each entry takes bytes_per_element bytes: multiply by it"),
    ]  # fmt: skip
    case = f"round_trip_time_s(n={n}, bytes_per_element={size}, bandwidth={bandwidth:g})"
    got = _call(answer, (n, size, bandwidth), case, "")
    _expect_number(got, expected, case, slips,
                   "bytes = n·n·bytes_per_element; a round trip moves them twice (write + "
                   "read); seconds = bytes / bandwidth_bytes_per_s")  # fmt: skip

"""Checks for the exercises of notebook 02 (cost arithmetic).

Each check calls the student's function on a few hand-picked inputs. The expected
values come from :mod:`attn_course.cost`, the course's reference implementation, and
the hints name the usual slips: a forgotten factor 2, K without V, heads in place of
kv_heads, a one-way transfer where a round trip was asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from attn_course import cost
from attn_course.checks import CheckFailed, exercise, expect_close, expect_raises

NOTEBOOK = "02_cost_arithmetic"

# bytes per element -> a dtype name cost.py knows
_DTYPE_FOR_BYTES = {8: "float64", 4: "float32", 2: "float16", 1: "int8", 0.5: "int4"}


def _number(value: object, case: str, hint: str) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise CheckFailed(f"{case}: expected a number, got {type(value).__name__}", hint) from None


def _diagnose(
    got: object,
    expected: float,
    case: str,
    slips: Sequence[tuple[float, str]],
    default_hint: str,
) -> None:
    """Pass if got == expected; otherwise fail with the hint of the slip that explains ``got``.

    ``slips`` lists (ratio got / expected that a typical mistake produces, hint), most
    likely slip first; ratios of 1 (a slip that changes nothing for this case) are skipped.
    """
    value = _number(got, case, default_hint)
    hint = default_hint
    if expected:
        ratio = value / expected
        for slip_ratio, slip_hint in slips:
            if slip_ratio != 1 and abs(ratio - slip_ratio) <= 1e-6 * abs(slip_ratio):
                hint = slip_hint
                break
    expect_close(value, expected, case, hint, rel=1e-9)


# --- 1. FLOPs of attention --------------------------------------------------------------


@exercise(
    "attention_flops",
    notebook=NOTEBOOK,
    answer="attention_flops",
    title="FLOPs of one layer's attention matmuls",
    points=1,
)
def _check_attention_flops(attention_flops: Callable[[int, int], float]) -> None:
    hint = "two matmuls (Q Kᵀ and P V), each 2·n·n·d FLOPs: 4·n²·d in all"
    # (n, d_model): n != d so that a swapped n and d shows; (1, 1) is the smallest case.
    for n, d_model in ((1, 1), (8, 3), (1000, 64), (4096, 4096)):
        expected = cost.attention_matmul_flops(n, d_model)
        case = f"attention_flops(n={n}, d_model={d_model})"
        slips = [
            (0.5, "you counted one matmul, or multiply-adds: Q Kᵀ and P V each cost 2·n²·d FLOPs"),
            (
                0.25,
                "n²·d is the multiply-adds of ONE matmul; FLOPs count 2 per multiply-add, "
                "and there are two matmuls",
            ),
            (d_model / n, "n and d are swapped: the score matrix is n x n, so n is squared"),
        ]
        _diagnose(attention_flops(n, d_model), expected, case, slips, hint)


# --- 2. the attention-vs-rest crossover -------------------------------------------------


@exercise(
    "crossover_n",
    notebook=NOTEBOOK,
    answer="crossover_n",
    title="Where attention overtakes the rest of the layer",
    points=1,
)
def _check_crossover_n(crossover_n: Callable[[int, int], float]) -> None:
    hint = (
        "solve 4·n²·d = 4·n·d·d_ff + 8·n·d² for n (attention = FFN + Q/K/V/O projections); "
        "divide both sides by 4·n·d"
    )
    # d_ff = 4d (GPT), d_ff = 11008 (Llama-2-7B, not 4d), and a tiny case.
    for d_model, d_ff in ((4096, 16384), (4096, 11008), (768, 3072), (1, 1)):
        expected = cost.attention_ffn_crossover_n(d_model, d_ff, include_projections=True)
        case = f"crossover_n(d_model={d_model}, d_ff={d_ff})"
        got = _number(crossover_n(d_model, d_ff), case, hint)
        case_hint = hint
        if got == d_model:
            case_hint = "n = d is the textbook's claim, and it is wrong: do the algebra"
        elif got == d_ff:
            case_hint = "n = d_ff balances attention against the FFN alone; add the projections"
        elif got == 6 * d_model:
            case_hint = "6·d assumes d_ff = 4·d; use the d_ff you are given"
        elif got == 2 * expected:
            case_hint = "that is the causal crossover; this exercise is non-causal (full n x n)"
        expect_close(got, expected, case, case_hint, rel=1e-9)


# --- 3. KV-cache bytes ------------------------------------------------------------------


@exercise(
    "kv_cache_bytes",
    notebook=NOTEBOOK,
    answer="kv_cache_bytes",
    title="Bytes of a KV cache (MHA, GQA, MQA)",
    points=1,
)
def _check_kv_cache_bytes(kv_cache_bytes: Callable[..., float]) -> None:
    hint = "2 (K and V) x layers x kv_heads x head_dim x context x batch x bytes_per_element"
    cases = (
        # layers, d_model, heads, kv_heads, context, batch, bytes_per_element
        (32, 4096, 32, 32, 100_000, 1, 2),  # Llama-2-7B (MHA), 100K tokens fp16: 52.4 GB
        (32, 4096, 32, 8, 100_000, 1, 2),  # Llama-3-8B (GQA): 4x smaller
        (2, 64, 8, 1, 10, 3, 4),  # MQA, batch 3, fp32
        (1, 8, 2, 2, 3, 1, 0.5),  # int4: half a byte per number
    )
    for layers, d_model, heads, kv_heads, context, batch, size in cases:
        expected = cost.kv_cache_bytes(
            layers,
            kv_heads,
            cost.head_dim(d_model, heads),
            context,
            batch=batch,
            dtype=_DTYPE_FOR_BYTES[size],
        )
        case = (
            f"kv_cache_bytes(layers={layers}, d_model={d_model}, heads={heads}, "
            f"kv_heads={kv_heads}, context={context}, batch={batch}, bytes_per_element={size})"
        )
        slips = [
            (0.5, "the cache holds a key AND a value for every token: a factor 2"),
            (
                heads / kv_heads,
                "only kv_heads heads are cached (grouped-query attention): use "
                "kv_heads x head_dim channels, not heads x head_dim = d_model",
            ),
            (1 / batch, "every sequence in the batch has its own cache: multiply by batch"),
            (1 / size, "multiply the number of elements by bytes_per_element"),
        ]
        got = kv_cache_bytes(layers, d_model, heads, kv_heads, context, batch, size)
        _diagnose(got, expected, case, slips, hint)
    expect_raises(
        lambda: kv_cache_bytes(32, 4096, 32, 5, 1024, 1, 2),
        ValueError,
        "kv_heads=5 does not divide heads=32",
        hint="raise ValueError when heads % kv_heads != 0: query heads share KV heads in "
        "equal groups",
    )


# --- 4. moving a score matrix in and out of memory --------------------------------------


@exercise(
    "round_trip_time_s",
    notebook=NOTEBOOK,
    answer="round_trip_time_s",
    title="Time to write an n x n score matrix to memory and read it back",
    points=1,
)
def _check_round_trip_time_s(round_trip_time_s: Callable[[int, float, float], float]) -> None:
    hint = "bytes = n·n·bytes_per_element; a round trip moves them twice (write + read)"
    cases = (
        (32768, 2, 2.039e12),  # the textbook's A100 example: ~2.1 ms
        (1000, 4, 1e9),  # 4 MB each way at 1 GB/s: 8 ms
        (1, 1, 2.0),  # 2 bytes at 2 B/s: 1 s
    )
    for n, size, bandwidth in cases:
        expected = cost.transfer_time_s(
            2 * cost.score_matrix_bytes(n, _DTYPE_FOR_BYTES[size]), bandwidth
        )
        case = f"round_trip_time_s(n={n}, bytes_per_element={size}, bandwidth={bandwidth:g})"
        slips = [
            (0.5, "that is one way; in AND out means the bytes cross the bus twice"),
            (1e9, "bandwidth is given in bytes/s, not GB/s"),
            (1e3, "the answer is in seconds, not milliseconds"),
        ]
        _diagnose(round_trip_time_s(n, size, bandwidth), expected, case, slips, hint)
    for bad in (0, -1.0):
        expect_raises(
            lambda bad=bad: round_trip_time_s(1024, 2, bad),
            ValueError,
            f"bandwidth_bytes_per_s={bad}",
            hint="a bandwidth must be > 0: raise ValueError (not ZeroDivisionError) otherwise",
        )

"""Checks of notebook 05 (linear / kernel attention).

Each check compares the student's function with a float64 reference (the package's
recurrence :func:`attn_course.linear.recurrent_step`, or the quadratic form written out
here) on hand-picked inputs, checks the *contents* of every returned state, and when an
answer is wrong reproduces the usual mistakes (reading the state before adding the current
token, no normaliser, elu without the + 1, an unmasked chunk, rows that read the updated
state ...) to name the one that was made. The exercise about O(n) attention measures both
the answer's memory peak and how its work grows from n to 4n. Exercises that ask for a
routine forbid the package's own version of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from attn_course.checks import (
    CheckFailed,
    Forbidden,
    exercise,
    expect_close,
    expect_raises,
    for_all,
)
from attn_course.checks._forbid import reference
from attn_course.grading.answers import StudentError
from attn_course.grading.probes import growth, peak_bytes, work
from attn_course.linear import predicted_crossover_n, recurrent_step

NOTEBOOK = "05_linear_attention"
F64 = torch.float64

# Every routine of the package that computes (causal) linear attention or one step of it.
LINEAR_ATTENTION = Forbidden(
    names=(
        "attn_course.linear.linear_attention",
        "attn_course.linear.kernel_attention_explicit",
        "attn_course.linear.causal_linear_attention_parallel",
        "attn_course.linear.causal_linear_attention_recurrent",
        "attn_course.linear.causal_linear_attention_chunked",
        "attn_course.linear.recurrent_step",
        "attn_course.linear._elu_linear",
    ),
    why="the package's linear attention (linear_attention, kernel_attention_explicit, "
    "causal_linear_attention_*, recurrent_step) is the course's reference, which the check "
    "compares with: write your own from the formula",
)


# --- shared helpers ------------------------------------------------------------------------


def _call(answer: Callable[..., Any], case: str, *args: Any) -> Any:
    """``answer(*args)``; a crash of the student's code fails with the case named."""
    try:
        return answer(*args)
    except StudentError as error:
        raise CheckFailed(f"{case}: {error}") from None


_IN_PLACE = ("return new tensors (state + ..., normaliser + ...): an in-place update "
             "(+=, add_) changes the caller's S and z")  # fmt: skip


def _call_keeping_inputs(
    answer: Callable[..., Any], case: str, names: Sequence[str], args: Sequence[torch.Tensor],
    hint: str = _IN_PLACE,
) -> Any:  # fmt: skip
    """Call the answer and fail if it changed any of its input tensors."""
    originals = [a.clone() for a in args]
    got = _call(answer, case, *args)
    changed = [n for n, a, o in zip(names, args, originals, strict=True) if not torch.equal(a, o)]
    if changed:
        raise CheckFailed(f"{case}: your function changed its input {', '.join(changed)}", hint)
    return got


def _expect_tensor(
    value: Any, shape: Sequence[int], dtype: torch.dtype, case: str, hint: str = ""
) -> None:
    if not isinstance(value, torch.Tensor):
        raise CheckFailed(f"{case}: expected a torch.Tensor, got {type(value).__name__}",
                          "work with torch operations from start to end")  # fmt: skip
    if tuple(value.shape) != tuple(shape):
        raise CheckFailed(f"{case}: expected shape {tuple(shape)}, got {tuple(value.shape)}",
                          hint or "check which dimension you summed over")  # fmt: skip
    if value.dtype != dtype:
        raise CheckFailed(f"{case}: expected dtype {dtype}, got {value.dtype}",
                          "keep the inputs' dtype: don't convert with .double() or "
                          ".float() (or convert the result back)")  # fmt: skip


def _tolerance(dtype: torch.dtype) -> dict[str, float]:
    return {"rtol": 1e-9, "atol": 1e-12} if dtype == F64 else {"rtol": 1e-4, "atol": 1e-5}


def _close(got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype = F64) -> bool:
    return bool(torch.allclose(got.to(F64), want.to(F64), **_tolerance(dtype)))


def _same(got: Any, guess: Any) -> bool:
    """Does ``got`` reproduce the wrong result ``guess`` (nan where it has nan)?"""
    return (
        isinstance(got, torch.Tensor)
        and isinstance(guess, torch.Tensor)
        and got.shape == guess.shape
        and bool(torch.allclose(got.to(F64), guess.to(F64), rtol=1e-5, atol=1e-7,
                                equal_nan=True))
    )  # fmt: skip


def _expect_triple(got: Any, case: str) -> None:
    if not isinstance(got, tuple | list) or len(got) != 3:
        raise CheckFailed(
            f"{case}: expected a tuple (out, new_state, new_normaliser), got "
            f"{type(got).__name__}",
            "return out, new_state, new_normaliser",
        )


def _positive(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=g, dtype=F64) + 0.1


# --- exercise 1: one step of the recurrence ----------------------------------------------

_STEP_INPUTS = ("state", "normaliser", "phi_q", "phi_k", "v")


def _step_cases() -> list[tuple[str, tuple[torch.Tensor, ...]]]:
    g = torch.Generator().manual_seed(5)
    m, d_v = 3, 2
    empty = (torch.zeros(m, d_v, dtype=F64), torch.zeros(m, dtype=F64))
    tokens = [(_positive(g, m), _positive(g, m), torch.randn(d_v, generator=g, dtype=F64))
              for _ in range(3)]  # fmt: skip
    state, normaliser = empty
    for phi_q, phi_k, v in tokens[:2]:
        _, state, normaliser = recurrent_step(state, normaliser, phi_q, phi_k, v)
    # float32, after 1000 tokens: S and z are large (z ~ 600), the new token small.
    keys = torch.rand(1000, m, generator=g) + 0.1
    values = torch.randn(1000, d_v, generator=g)
    long = (keys.T @ values, keys.sum(0), torch.rand(m, generator=g) + 0.1,
            torch.rand(m, generator=g) * 1e-3, torch.randn(d_v, generator=g))  # fmt: skip
    return [
        # A later token first: at the first one several mistakes give the same numbers.
        ("a third token, after two (m = 3, d_v = 2)", (state, normaliser, *tokens[2])),
        ("the first token (S = 0, z = 0)", (*empty, *tokens[0])),
        ("a token whose key features are all 0 (it adds nothing)",
         (state, normaliser, tokens[2][0], torch.zeros(m, dtype=F64), tokens[2][2])),
        ("float32, after 1000 tokens (z ~ 600), a token with tiny key features", long),
    ]  # fmt: skip


def _step_mistakes() -> list[tuple[Callable[..., tuple[torch.Tensor, ...]], str]]:
    def parts(state, z, phi_q, phi_k, v):  # noqa: ANN001, ANN202
        return state + torch.outer(phi_k, v), z + phi_k

    def read_before_write(state, z, phi_q, phi_k, v):  # noqa: ANN001, ANN202
        new_state, new_z = parts(state, z, phi_q, phi_k, v)
        return (phi_q @ state) / (phi_q @ z), new_state, new_z

    def old_denominator(state, z, phi_q, phi_k, v):  # noqa: ANN001, ANN202
        new_state, new_z = parts(state, z, phi_q, phi_k, v)
        return (phi_q @ new_state) / (phi_q @ z), new_state, new_z

    def no_normaliser(state, z, phi_q, phi_k, v):  # noqa: ANN001, ANN202
        new_state, new_z = parts(state, z, phi_q, phi_k, v)
        return phi_q @ new_state, new_state, new_z

    def query_in_state(state, z, phi_q, phi_k, v):  # noqa: ANN001, ANN202
        new_state, new_z = state + torch.outer(phi_q, v), z + phi_q
        return (phi_q @ new_state) / (phi_q @ new_z), new_state, new_z

    def query_in_normaliser(state, z, phi_q, phi_k, v):  # noqa: ANN001, ANN202
        new_state, new_z = state + torch.outer(phi_k, v), z + phi_q
        return (phi_q @ new_state) / (phi_q @ new_z), new_state, new_z

    return [
        (read_before_write, "add the current token to S and z *before* reading out: causal "
                            "attention lets token t attend to itself (j <= t)"),
        (old_denominator, "divide by φ(q_t) · z_t with the *new* z (z + φ(k_t)), as the "
                          "numerator uses the new S"),
        (no_normaliser, "divide by φ(q_t) · z_t: without it the output is a sum of weights "
                        "times values, not a weighted average"),
        (query_in_state, "the state stores keys and values: S += outer(φ(k_t), v_t), "
                         "z += φ(k_t); the query only reads"),
        (query_in_normaliser, "z sums the *keys'* features: z_t = z + φ(k_t), not φ(q_t)"),
    ]  # fmt: skip


def _expect_step(got: Any, args: tuple[torch.Tensor, ...], case: str) -> None:
    state, z, phi_q, phi_k, v = args
    dtype = state.dtype
    _expect_triple(got, case)
    shapes = (tuple(v.shape), tuple(state.shape), tuple(z.shape))
    got_shapes = tuple(tuple(x.shape) if isinstance(x, torch.Tensor) else None for x in got)
    if got_shapes != shapes and sorted(map(str, got_shapes)) == sorted(map(str, shapes)):
        raise CheckFailed(f"{case}: the three results come in another order (shapes "
                          f"{got_shapes})", "return them in this order: out, new_state, "
                          "new_normaliser")  # fmt: skip
    shape_hints = (
        "out has d_v entries: φ(q_t) @ S_t / (φ(q_t) · z_t), a vector times a matrix",
        "S is m × d_v (a row per feature, a column per value entry): "
        "S + torch.outer(φ(k_t), v_t), not outer(v_t, φ(k_t))",
        "z has one entry per feature (m): z + φ(k_t)",
    )
    for name, value, shape, hint in zip(("out", "new_state", "new_normaliser"), got, shapes,
                                        shape_hints, strict=True):  # fmt: skip
        _expect_tensor(value, shape, dtype, f"{case}: {name}", hint)
    expected = recurrent_step(*(a.to(F64) for a in args))
    if all(_close(x, want, dtype) for x, want in zip(got, expected, strict=True)):
        return
    wide = tuple(a.to(F64) for a in args)
    for wrong, hint in _step_mistakes():
        guess = wrong(*wide)
        if all(_same(x, want) for x, want in zip(got, guess, strict=True)):
            raise CheckFailed(f"{case}: (out, new_state, new_normaliser) differ from the "
                              "expected values", hint)  # fmt: skip
    out, new_state, new_z = got
    if not _close(new_state, expected[1], dtype):
        hint = "S_t = S + outer(φ(k_t), v_t): every key–value pair seen so far, summed"
        if _close(new_state, state, dtype):
            hint = ("return the *new* state S + outer(φ(k_t), v_t), not the S you were "
                    "given: the next step needs it")  # fmt: skip
        raise CheckFailed(f"{case}: new_state differs from S + outer(φ(k_t), v_t)", hint)
    if not _close(new_z, expected[2], dtype):
        hint = "z_t = z + φ(k_t): the keys' features, summed"
        if _close(new_z, z, dtype):
            hint = ("return the *new* normaliser z + φ(k_t), not the z you were given: the "
                    "next step needs it")  # fmt: skip
        raise CheckFailed(f"{case}: new_normaliser differs from z + φ(k_t)", hint)
    raise CheckFailed(f"{case}: out differs from φ(q_t) S_t / (φ(q_t) · z_t)",
                      "S_t = S + outer(φ(k_t), v_t); z_t = z + φ(k_t); "
                      "out = φ(q_t) S_t / (φ(q_t) · z_t)")  # fmt: skip


def _causal_linear(phi_q: torch.Tensor, phi_k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """tril(φ(Q)φ(K)ᵀ) V / rowsum, the quadratic way, float64."""
    weights = (phi_q.to(F64) @ phi_k.to(F64).transpose(-2, -1)).tril()
    return (weights @ v.to(F64)) / weights.sum(-1, keepdim=True)


@exercise(
    "linear_recurrent_step",
    notebook=NOTEBOOK,
    answer="linear_step",
    title="One step of causal linear attention as an RNN",
    points=2,
    forbidden=[reference("attn_course.linear.recurrent_step",
                         "attn_course.linear.causal_linear_attention_recurrent",
                         what="one step of the recurrence")],  # fmt: skip
)
def check_linear_step(linear_step: Callable[..., Any]) -> None:
    for case, args in _step_cases():
        got = _call_keeping_inputs(linear_step, case, _STEP_INPUTS, args)
        _expect_step(got, args, case)
    # Chained over a sequence, the steps must give causal linear attention.
    g = torch.Generator().manual_seed(8)
    phi_q, phi_k = _positive(g, 6, 4), _positive(g, 6, 4)
    v = torch.randn(6, 3, generator=g, dtype=F64)
    state, normaliser = torch.zeros(4, 3, dtype=F64), torch.zeros(4, dtype=F64)
    outs = []
    for t in range(6):
        case = f"step {t + 1} of six chained steps (m = 4, d_v = 3)"
        got = _call(linear_step, case, state, normaliser, phi_q[t], phi_k[t], v[t])
        _expect_step(got, (state, normaliser, phi_q[t], phi_k[t], v[t]), case)
        out, state, normaliser = got
        outs.append(out)
    if not _close(torch.stack(outs), _causal_linear(phi_q, phi_k, v)):
        raise CheckFailed("six steps chained do not give causal linear attention",
                          "each step must add the token, then read out with the new S and z")


# --- exercise 2: the crossover n ---------------------------------------------------------


def _expect_crossover(got: Any, head_dim: int, features: int) -> None:
    want = predicted_crossover_n(head_dim, features=features)
    d, m = head_dim, features
    try:
        value = float(got)
    except (TypeError, ValueError):
        value = math.nan
    hint = "set 4 n² d = 4 n m (d + 1) and solve for n: n* = m (d + 1) / d"
    rounded = {math.floor(want), math.ceil(want), round(want)} - {want}
    recognised = [
        (value in rounded, "return the exact n as a float, m (d + 1) / d: don't round it "
                           "(/, not //; no int() or round())"),
        (math.isclose(value, m) and want != m,
         "close, but the normaliser is an extra value column: the linear cost is "
         "4 n m (d + 1), not 4 n m d"),
        (math.isclose(value, d * (m + 1) / m), "d and m are swapped: n* = m (d + 1) / d"),
        (math.isclose(value, m + 1), "the normaliser is an extra *value* column (d + 1 "
                                     "columns), not an extra feature (m + 1)"),
        (math.isclose(value, 2 * want), "both counts are non-causal: softmax attention is "
                                        "4 n² d (QKᵀ and PV, 2 n² d each), not 2 n² d"),
        (math.isclose(value, want / 2), "count both products of linear attention, φ(K)ᵀ[V 1] "
                                        "and φ(Q)[S z]: 4 n m (d + 1) in all"),
    ]  # fmt: skip
    hint = next((h for seen, h in recognised if seen), hint)
    expect_close(got, want, f"crossover_n({d}, {m})", hint, rel=1e-9)


@exercise(
    "linear_crossover_n",
    notebook=NOTEBOOK,
    answer="crossover_n",
    title="Where linear attention starts doing fewer FLOPs",
    points=1,
    forbidden=[reference("attn_course.linear.predicted_crossover_n",
                         "attn_course.linear.linear_attention_flops",
                         "attn_course.linear.softmax_attention_flops",
                         what="the FLOP counts and their crossover")],  # fmt: skip
)
def check_crossover_n(crossover_n: Callable[..., Any]) -> None:
    # (2, 3) early: 4.5 tells rounding (4) from a forgotten normaliser column (3).
    cases = [(64, 64), (128, 128), (64, 256), (2, 3), (16, 1), (1, 1), (3, 2)]
    for head_dim, features in cases:
        got = _call(crossover_n, f"crossover_n({head_dim}, {features})", head_dim, features)
        _expect_crossover(got, head_dim, features)
    for_all(lambda head_dim, features: _expect_crossover(crossover_n(head_dim, features),
                                                         head_dim, features),
            examples=30, head_dim=st.integers(1, 1024), features=st.integers(1, 4096))  # fmt: skip
    for bad in ((0, 64), (64, 0), (-3, 8), (8, -1), (0, 0)):
        expect_raises(lambda bad=bad: crossover_n(*bad), ValueError,
                      f"crossover_n{bad}: sizes must be >= 1",
                      "raise ValueError when head_dim or features is < 1")  # fmt: skip


# --- exercise 3: elu + 1 linear attention -------------------------------------------------


def _kernel_attention(
    phi_q: torch.Tensor, phi_k: torch.Tensor, v: torch.Tensor, *, causal: bool = False,
    normalise: bool = True,
) -> torch.Tensor:  # fmt: skip
    """φ(Q)φ(K)ᵀV / rowsum, the quadratic way, float64 (to recognise a mistake by value)."""
    weights = phi_q.to(F64) @ phi_k.to(F64).transpose(-2, -1)
    if causal:
        weights = weights.tril()
    numerator = weights @ v.to(F64)
    return numerator / weights.sum(-1, keepdim=True) if normalise else numerator


def _elu1(x: torch.Tensor) -> torch.Tensor:
    return F.elu(x.to(F64)) + 1


def _elu_mistakes(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> list[tuple[Any, str]]:
    root = math.sqrt(q.shape[-1])
    return [
        (lambda: _kernel_attention(_elu1(q), _elu1(k), v, normalise=False),
         "divide each row by its normaliser φ(q_i) · z, z = Σ_j φ(k_j)"),
        (lambda: _kernel_attention(F.elu(q.to(F64)), F.elu(k.to(F64)), v),
         "φ(x) = elu(x) + 1: without the + 1, features can be negative and the normaliser "
         "can be 0 or negative"),
        (lambda: _kernel_attention(_elu1(q), _elu1(k), v, causal=True),
         "this exercise is non-causal: every query sees every key, so S = φ(K)ᵀ V sums all "
         "n tokens (no running sums, no tril)"),
        (lambda: _kernel_attention(_elu1(q / root), _elu1(k), v),
         "no 1/√d here: the feature map replaces softmax's exp(q·k/√d); use elu(q) + 1 "
         "as it is"),
        (lambda: _kernel_attention(_elu1(q / root), _elu1(k / root), v),
         "no 1/√d here: the feature map replaces softmax's exp(q·k/√d); use elu(x) + 1 "
         "as it is"),
        (lambda: _kernel_attention(torch.exp(q.to(F64)), torch.exp(k.to(F64)), v),
         "φ(x) = elu(x) + 1, not exp(x): exp(q)·exp(k) is not this exercise's feature map"),
        (lambda: _kernel_attention(q.to(F64), _elu1(k), v),
         "apply φ to the queries too: out = φ(Q) S / φ(Q) z"),
        (lambda: _kernel_attention(_elu1(q), k.to(F64), v),
         "apply φ to the keys too: S = φ(K)ᵀ V, z = Σ_j φ(k_j)"),
    ]  # fmt: skip


def _elu_cases() -> list[tuple[str, tuple[torch.Tensor, ...]]]:
    g = torch.Generator().manual_seed(2)

    def randn(*shape: int, dtype: torch.dtype = F64) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=dtype)

    # float32, rows of very different scale: queries ×100 (φ ≈ q + 1, large), some keys
    # far below 0 (φ = e^k ≈ 1e-13, tiny but positive).
    q32, k32, v32 = randn(6, 4, dtype=torch.float32), randn(6, 4, dtype=torch.float32), randn(
        6, 3, dtype=torch.float32)
    q32[::2] *= 100
    k32[1::2] = k32[1::2].abs() * -30
    return [
        ("one head, n = 7, d = 4", (randn(7, 4), randn(7, 4), randn(7, 4))),
        ("(batch 2, heads 3, n 5, d 8)", (randn(2, 3, 5, 8), randn(2, 3, 5, 8),
                                          randn(2, 3, 5, 8))),
        ("values narrower than the keys: n = 6, d = 4, d_v = 3",
         (randn(6, 4), randn(6, 4), randn(6, 3))),
        ("n = 1 (one token: the output is its value)", (randn(1, 4), randn(1, 4), randn(1, 4))),
        ("float32, rows of very different scale (queries ×100, keys down to −30·|k|)",
         (q32, k32, v32)),
    ]  # fmt: skip


def _expect_elu(got: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, case: str) -> None:
    want = _kernel_attention(_elu1(q), _elu1(k), v)
    _expect_tensor(got, want.shape, q.dtype, case,
                   "out has one row per query and v's width: (..., n, d_v)")  # fmt: skip
    if _close(got, want, q.dtype):
        return
    hint = "φ(x) = elu(x) + 1; S = φ(K)ᵀ V; z = φ(K) summed over tokens; out = φ(Q) S / φ(Q)·z"
    hint = next((h for wrong, h in _elu_mistakes(q, k, v) if _same(got, wrong())), hint)
    raise CheckFailed(f"{case}: the output differs from φ(Q)φ(K)ᵀV / rowsum", hint)


# Work grows 4× from n to 4n when it is linear in n, 16× when quadratic: fail above 8×.
_WORK_GROWTH_LIMIT = 8.0


@exercise(
    "elu_linear_attention",
    notebook=NOTEBOOK,
    answer="elu_linear_attention",
    title="Non-causal linear attention with the elu + 1 feature map",
    points=2,
    forbidden=[LINEAR_ATTENTION],
)
def check_elu_linear_attention(elu_linear_attention: Callable[..., Any]) -> None:
    for case, (q, k, v) in _elu_cases():
        got = _call_keeping_inputs(elu_linear_attention, case, ("q", "k", "v"), (q, k, v),
                                   "compute new tensors, F.elu(q) + 1: F.elu(q, inplace=True) "
                                   "or q.add_(...) change the caller's q")  # fmt: skip
        _expect_elu(got, q, k, v, case)
    g = torch.Generator().manual_seed(3)
    # Linear means no n × n matrix: at n = 2048 one would be 2048² · 8 B = 32 MiB in float64.
    n, d = 2048, 8
    q, k, v = (torch.randn(n, d, generator=g, dtype=F64) for _ in range(3))
    peak = elu_linear_attention.through(peak_bytes, q, k, v)
    if peak >= n * n * 8 // 4:
        raise CheckFailed(
            f"n = {n}: your function allocated {peak / 2**20:.1f} MiB at its peak, as if it "
            f"built an n × n matrix ({n * n * 8 / 2**20:.0f} MiB)",
            "multiply φ(K)ᵀ V first (d × d), then φ(Q) by it: (φ(Q) φ(K)ᵀ) V is n × n",
        )
    # ... and no n × n work either, not even a few rows at a time (a small peak).
    small, large = 256, 1024
    counts = []
    for size in (small, large):
        q, k, v = (torch.randn(size, d, generator=g, dtype=F64) for _ in range(3))
        counts.append(elu_linear_attention.through(work, q, k, v))
    grew = growth(*counts)
    if grew > _WORK_GROWTH_LIMIT:
        raise CheckFailed(
            f"from n = {small} to n = {large} (4× the tokens) your function's work grew "
            f"{grew:.1f}× ({counts[0]['flops']:,} → {counts[1]['flops']:,} matmul FLOPs, "
            f"{counts[0]['elements']:,} → {counts[1]['elements']:,} tensor elements "
            "computed): O(n²), where linear attention's grows about 4×",
            "you still compute every weight φ(q_i)·φ(k_j), even if a few rows at a time: "
            "sum S = φ(K)ᵀ V and z = Σ_j φ(k_j) once, then read every query out of them",
        )
    # The empty edge: no tokens, an empty output.
    q, k, v = torch.zeros(0, 4, dtype=F64), torch.zeros(0, 4, dtype=F64), torch.zeros(0, 3,
                                                                                    dtype=F64)
    case = "n = 0 (no tokens: an empty (0, d_v) output)"
    got = _call(elu_linear_attention, case, q, k, v)
    _expect_tensor(got, (0, 3), F64, case, "out is (n, d_v), here (0, 3)")


# --- exercise 4: one chunk of causal linear attention --------------------------------------


def _chunk_expected(*args: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The chunk one token at a time with the package's recurrence, in float64."""
    state, z, phi_q, phi_k, v = (a.to(F64) for a in args)
    outs = []
    for t in range(phi_q.shape[0]):
        out, state, z = recurrent_step(state, z, phi_q[t], phi_k[t], v[t])
        outs.append(out)
    return (torch.stack(outs) if outs else v.new_zeros(0, v.shape[-1])), state, z


def _chunk_variant(
    state: torch.Tensor, z: torch.Tensor, phi_q: torch.Tensor, phi_k: torch.Tensor,
    v: torch.Tensor, *, mask: str = "tril", inter: bool = True, inter_denominator: bool = True,
    intra_denominator: bool = True, rows_read_new_state: bool = False, normalise: bool = True,
) -> torch.Tensor:  # fmt: skip
    """The chunk's output with knobs, to recognise a mistake by reproducing it (float64)."""
    state, z, phi_q, phi_k, v = (a.to(F64) for a in (state, z, phi_q, phi_k, v))
    weights = phi_q @ phi_k.T
    weights = {"tril": weights.tril(), "strict": weights.tril(-1), "triu": weights.triu(),
               "none": weights}[mask]  # fmt: skip
    if rows_read_new_state:
        state, z = state + phi_k.T @ v, z + phi_k.sum(0)
    numerator = weights @ v + (phi_q @ state if inter else 0)
    denominator = ((weights.sum(-1) if intra_denominator else 0)
                   + (phi_q @ z if inter and inter_denominator else 0))  # fmt: skip
    return numerator / torch.as_tensor(denominator)[..., None] if normalise else numerator


_CHUNK_MISTAKES: list[tuple[dict[str, Any], str]] = [
    ({"rows_read_new_state": True},
     "double counting: the chunk's rows must read the *old* S and z; the updated ones already "
     "hold this chunk, which the masked c × c product adds a second time"),
    ({"mask": "none"},
     "query i sees the later keys of its own chunk: mask the c × c product φ(Q_c)φ(K_c)ᵀ "
     "with tril (keys j <= i). Reading out with the updated state instead of the product "
     "does the same: it holds the whole chunk"),
    ({"mask": "strict"},
     "keep the diagonal: query i attends to its own key (j <= i, tril with diagonal 0, "
     "not j < i)"),
    ({"mask": "triu"}, "tril, not triu: query i sees keys j <= i, the lower triangle"),
    ({"inter": False},
     "the earlier chunks are missing: add φ(q_i) S to the numerator and φ(q_i) · z to the "
     "denominator (S and z summarise every earlier chunk)"),
    ({"inter_denominator": False},
     "the denominator needs the earlier chunks' weights too: φ(q_i) · z + Σ_{j≤i} "
     "φ(q_i)·φ(k_j)"),
    ({"intra_denominator": False},
     "the denominator needs the chunk's own weights too: add the row sums of the masked "
     "c × c product to φ(q_i) · z"),
    ({"normalise": False},
     "divide by the normaliser φ(q_i) · z + Σ_{j≤i} φ(q_i)·φ(k_j): without it the output "
     "is a weighted sum, not a weighted average"),
]


def _chunk_cases() -> list[tuple[str, tuple[torch.Tensor, ...]]]:
    g = torch.Generator().manual_seed(11)
    m, d_v = 3, 2

    def earlier(tokens: int, dtype: torch.dtype = F64) -> tuple[torch.Tensor, torch.Tensor]:
        keys = _positive(g, tokens, m).to(dtype)
        return keys.T @ torch.randn(tokens, d_v, generator=g, dtype=dtype), keys.sum(0)

    def chunk(c: int, dtype: torch.dtype = F64) -> tuple[torch.Tensor, ...]:
        return (_positive(g, c, m).to(dtype), _positive(g, c, m).to(dtype),
                torch.randn(c, d_v, generator=g, dtype=dtype))  # fmt: skip

    zeros = (torch.zeros(m, d_v, dtype=F64), torch.zeros(m, dtype=F64))
    # float32, rows of very different scale: queries and keys ×1000 and ×0.001.
    scale = torch.tensor([1e3, 1e-3, 1.0, 1e3, 1e-3])[:, None]
    q32, k32, v32 = chunk(5, torch.float32)
    return [
        # A chunk after earlier ones first: on the first chunk (S = 0) some mistakes vanish.
        ("a chunk of 4 tokens after 7 earlier ones (m = 3, d_v = 2)", (*earlier(7), *chunk(4))),
        ("the first chunk (S = 0, z = 0), 5 tokens", (*zeros, *chunk(5))),
        ("a chunk of one token (c = 1) after 3 earlier ones", (*earlier(3), *chunk(1))),
        ("a chunk longer than the features (c = 8 > m = 3)", (*earlier(2), *chunk(8))),
        ("float32, rows of very different scale (×1000, ×0.001)",
         (*earlier(20, torch.float32), q32 * scale, k32 * scale.flip(0), v32)),
        ("an empty chunk (c = 0): no output, S and z unchanged", (*earlier(4), *chunk(0))),
    ]  # fmt: skip


def _expect_chunk(got: Any, args: tuple[torch.Tensor, ...], case: str) -> None:
    state, z, phi_q, phi_k, v = args
    dtype, c = state.dtype, phi_q.shape[0]
    _expect_triple(got, case)
    shapes = ((c, v.shape[-1]), tuple(state.shape), tuple(z.shape))
    shape_hints = (
        "out has a row per token of the chunk and v's width: (c, d_v)",
        "S is m × d_v: S + φ(K_c)ᵀ V_c (phi_k.T @ v), not V_cᵀ φ(K_c)",
        "z has one entry per feature (m): sum φ(K_c) over the chunk's tokens, "
        "phi_k.sum(0)",
    )
    for name, value, shape, hint in zip(("out", "new_state", "new_normaliser"), got, shapes,
                                        shape_hints, strict=True):  # fmt: skip
        _expect_tensor(value, shape, dtype, f"{case}: {name}", hint)
    out, new_state, new_z = got
    want_out, want_state, want_z = _chunk_expected(*args)
    if not _close(out, want_out, dtype):
        hint = ("out_i = (φ(q_i) S + Σ_{j≤i} (φ(q_i)·φ(k_j)) v_j) / (φ(q_i)·z + Σ_{j≤i} "
                "φ(q_i)·φ(k_j)), j over the chunk's tokens, S and z the old ones")  # fmt: skip
        if c > 1:
            for knobs, wrong_hint in _CHUNK_MISTAKES:
                if _same(out, _chunk_variant(*args, **knobs)):
                    hint = wrong_hint
                    break
        raise CheckFailed(f"{case}: out differs from causal linear attention over the chunk",
                          hint)  # fmt: skip
    wide = tuple(a.to(F64) for a in args)
    if not _close(new_state, want_state, dtype):
        hint = "new_state = S + φ(K_c)ᵀ V_c: every key–value pair of the chunk, added to S"
        if c and _close(new_state, state, dtype):
            hint = ("return the *new* state S + φ(K_c)ᵀ V_c, not the S you were given: the "
                    "next chunk needs it")  # fmt: skip
        elif _same(new_state, wide[2].T @ wide[4] + wide[0]):
            hint = "the state stores keys and values: S + φ(K_c)ᵀ V_c; the queries only read"
        elif _same(new_state, wide[3].T @ wide[4]):
            hint = "add the chunk to the state you were given: S + φ(K_c)ᵀ V_c, not φ(K_c)ᵀ V_c"
        raise CheckFailed(f"{case}: new_state differs from S + φ(K_c)ᵀ V_c", hint)
    if not _close(new_z, want_z, dtype):
        hint = "new_normaliser = z + Σ_j φ(k_j): the chunk's key features, summed over tokens"
        if c and _close(new_z, z, dtype):
            hint = ("return the *new* normaliser z + Σ_j φ(k_j), not the z you were given: "
                    "the next chunk needs it")  # fmt: skip
        elif _same(new_z, wide[1] + wide[2].sum(0)):
            hint = "z sums the *keys'* features: z + φ(K_c).sum(0), not the queries'"
        elif _same(new_z, wide[3].sum(0)):
            hint = "add the chunk to the normaliser you were given: z + φ(K_c).sum(0)"
        elif _same(new_z, wide[1] + wide[3].sum()):
            hint = ("sum over the chunk's tokens only, phi_k.sum(0): one entry per feature; "
                    ".sum() adds up every entry")  # fmt: skip
        raise CheckFailed(f"{case}: new_normaliser differs from z + Σ_j φ(k_j)", hint)


@exercise(
    "linear_chunk_step",
    notebook=NOTEBOOK,
    answer="linear_chunk_step",
    title="One chunk of causal linear attention: parallel inside, recurrent across",
    points=2,
    forbidden=[LINEAR_ATTENTION],
)
def check_linear_chunk_step(linear_chunk_step: Callable[..., Any]) -> None:
    for case, args in _chunk_cases():
        got = _call_keeping_inputs(linear_chunk_step, case, _STEP_INPUTS, args)
        _expect_chunk(got, args, case)
    # Chained over chunks of uneven sizes, from S = 0, the chunks must give causal linear
    # attention on the whole sequence, and leave S = φ(K)ᵀ V, z = Σ φ(k_j) behind.
    g = torch.Generator().manual_seed(12)
    sizes = (3, 1, 5, 2)
    n, m, d_v = sum(sizes), 4, 3
    phi_q, phi_k = _positive(g, n, m), _positive(g, n, m)
    v = torch.randn(n, d_v, generator=g, dtype=F64)
    state, z = torch.zeros(m, d_v, dtype=F64), torch.zeros(m, dtype=F64)
    outs, start = [], 0
    for size in sizes:
        rows = slice(start, start + size)
        args = (state, z, phi_q[rows], phi_k[rows], v[rows])
        case = f"tokens {start}..{start + size - 1} of chunks of {sizes} tokens (m = 4, d_v = 3)"
        got = _call(linear_chunk_step, case, *args)
        _expect_chunk(got, args, case)
        out, state, z = got
        outs.append(out)
        start += size
    if not _close(torch.cat(outs), _causal_linear(phi_q, phi_k, v)):
        raise CheckFailed(f"chunks of {sizes} tokens, chained, do not give causal linear "
                          f"attention on all {n} tokens",
                          "each chunk must read the state the previous chunk returned")  # fmt: skip

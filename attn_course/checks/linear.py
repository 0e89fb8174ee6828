"""Checks of notebook 05 (linear / kernel attention).

Each check compares the student's function with :mod:`attn_course.linear` on hand-picked
inputs and, when an answer is wrong, tries the usual mistakes (reading the state before
adding the current token, no normaliser, elu without the + 1, the crossover without the
normaliser's column ...) to name the one that was made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from attn_course.checks import CheckFailed, exercise, expect_close, expect_raises
from attn_course.grading.probes import peak_bytes
from attn_course.linear import (
    elu_feature_map,
    kernel_attention_explicit,
    predicted_crossover_n,
    recurrent_step,
)

NOTEBOOK = "05_linear_attention"


def _expect_tensor(value: Any, shape: tuple[int, ...], case: str) -> None:
    if not isinstance(value, torch.Tensor):
        raise CheckFailed(f"{case}: expected a tensor, got {type(value).__name__}",
                          "return torch tensors")  # fmt: skip
    if tuple(value.shape) != shape:
        raise CheckFailed(f"{case}: expected shape {shape}, got {tuple(value.shape)}",
                          "check which dimension you summed over")  # fmt: skip


# --- exercise 1: one step of the recurrence ----------------------------------------------


def _step_cases() -> list[tuple[str, tuple[torch.Tensor, ...]]]:
    g = torch.Generator().manual_seed(5)

    def positive(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g, dtype=torch.float64) + 0.1

    m, d_v = 3, 2
    empty = (torch.zeros(m, d_v, dtype=torch.float64), torch.zeros(m, dtype=torch.float64))
    tokens = [(positive(m), positive(m), torch.randn(d_v, generator=g, dtype=torch.float64))
              for _ in range(3)]  # fmt: skip
    state, normaliser = empty
    for phi_q, phi_k, v in tokens[:2]:
        _, state, normaliser = recurrent_step(state, normaliser, phi_q, phi_k, v)
    return [
        ("the first token (S = 0, z = 0), m = 3, d_v = 2", (*empty, *tokens[0])),
        ("a third token, after two", (state, normaliser, *tokens[2])),
        ("a token whose key features are all 0 (it adds nothing)",
         (state, normaliser, tokens[2][0], torch.zeros(m, dtype=torch.float64), tokens[2][2])),
    ]  # fmt: skip


def _wrong_steps() -> list[tuple[Callable[..., tuple[torch.Tensor, ...]], str]]:
    def read_before_write(state, z, phi_q, phi_k, v):
        out = (phi_q @ state) / (phi_q @ z).clamp_min(1e-300)
        return out, state + torch.outer(phi_k, v), z + phi_k

    def no_normaliser(state, z, phi_q, phi_k, v):
        state = state + torch.outer(phi_k, v)
        return phi_q @ state, state, z + phi_k

    def outer_swapped(state, z, phi_q, phi_k, v):
        state = state + torch.outer(phi_q, v)
        z = z + phi_q
        return (phi_q @ state) / (phi_q @ z), state, z

    return [
        (read_before_write, "add the current token to S and z *before* reading out: causal "
                            "attention lets token t attend to itself (j <= t)"),
        (no_normaliser, "divide by φ(q_t) · z_t: without it the output is a sum of weights "
                        "times values, not a weighted average"),
        (outer_swapped, "the state stores keys and values: S += outer(φ(k_t), v_t), "
                        "z += φ(k_t); the query only reads"),
    ]  # fmt: skip


@exercise(
    "linear_recurrent_step",
    notebook=NOTEBOOK,
    answer="linear_step",
    title="One step of causal linear attention as an RNN",
    points=2,
)
def check_linear_step(linear_step: Callable[..., Any]) -> None:
    for case, args in _step_cases():
        originals = [a.clone() for a in args]
        got = linear_step(*args)
        if any(not torch.equal(a, o) for a, o in zip(args, originals, strict=True)):
            raise CheckFailed(f"{case}: your function changed one of its inputs",
                              "return new tensors (state + ...), don't use += on S or z")
        if not isinstance(got, tuple | list) or len(got) != 3:
            raise CheckFailed(f"{case}: expected a tuple (out, state, normaliser)",
                              "return out, state, normaliser")  # fmt: skip
        expected = recurrent_step(*args)
        for name, value, want in zip(("out", "state", "normaliser"), got, expected, strict=True):
            _expect_tensor(value, tuple(want.shape), f"{case}: {name}")
        if all(torch.allclose(value.double(), want, rtol=1e-9, atol=1e-12)
               for value, want in zip(got, expected, strict=True)):  # fmt: skip
            continue
        hint = "S_t = S + outer(φ(k_t), v_t); z_t = z + φ(k_t); out = φ(q_t) S_t / (φ(q_t)·z_t)"
        for wrong, wrong_hint in _wrong_steps():
            try:
                guess = wrong(*args)
            except RuntimeError:
                continue
            if all(torch.allclose(value.double(), want, atol=1e-9)
                   for value, want in zip(got, guess, strict=True)):  # fmt: skip
                hint = wrong_hint
                break
        raise CheckFailed(f"{case}: (out, state, normaliser) differ from the expected values",
                          hint)  # fmt: skip
    # Chained over a sequence, the steps must give causal linear attention.
    g = torch.Generator().manual_seed(8)
    phi_q, phi_k = (torch.rand(6, 4, generator=g, dtype=torch.float64) + 0.1 for _ in range(2))
    v = torch.randn(6, 3, generator=g, dtype=torch.float64)
    state, normaliser = torch.zeros(4, 3, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
    outs = []
    for t in range(6):
        out, state, normaliser = linear_step(state, normaliser, phi_q[t], phi_k[t], v[t])
        outs.append(out)
    if not torch.allclose(torch.stack(outs), kernel_attention_explicit(phi_q, phi_k, v,
                                                                      causal=True)):
        raise CheckFailed("six steps chained do not give causal linear attention",
                          "each step must add the token, then read out with the new S and z")


# --- exercise 2: the crossover n ---------------------------------------------------------


@exercise(
    "linear_crossover_n",
    notebook=NOTEBOOK,
    answer="crossover_n",
    title="Where linear attention starts doing fewer FLOPs",
    points=1,
)
def check_crossover_n(crossover_n: Callable[..., Any]) -> None:
    cases = [(64, 64), (128, 128), (64, 256), (16, 1), (1, 1)]
    for head_dim, features in cases:
        want = predicted_crossover_n(head_dim, features=features)
        got = crossover_n(head_dim, features)
        hint = "set 4 n² d = 4 n m (d + 1) and solve for n: n* = m (d + 1) / d"
        try:
            value = float(got)
        except (TypeError, ValueError):
            value = None
        if value is not None and abs(value - features) < 1e-9 and want != features:
            hint = ("close, but the normaliser is an extra value column: the linear cost is "
                    "4 n m (d + 1), not 4 n m d")  # fmt: skip
        elif value is not None and abs(value - head_dim * (features + 1) / features) < 1e-9:
            hint = "d and m are swapped: n* = m (d + 1) / d"
        expect_close(got, want, f"head_dim={head_dim}, features={features}", hint, rel=1e-9)
    for bad in ((0, 64), (64, 0)):
        expect_raises(lambda bad=bad: crossover_n(*bad), ValueError,
                      f"crossover_n{bad}: sizes must be >= 1",
                      "raise ValueError when head_dim or features is < 1")  # fmt: skip


# --- exercise 3: elu + 1 linear attention -------------------------------------------------


@exercise(
    "elu_linear_attention",
    notebook=NOTEBOOK,
    answer="elu_linear_attention",
    title="Non-causal linear attention with the elu + 1 feature map",
    points=2,
)
def check_elu_linear_attention(elu_linear_attention: Callable[..., Any]) -> None:
    g = torch.Generator().manual_seed(2)
    for case, shape in (("one head, n = 7, d = 4", (7, 4)),
                        ("(batch 2, heads 3, n 5, d 8)", (2, 3, 5, 8))):  # fmt: skip
        q, k, v = (torch.randn(*shape, generator=g, dtype=torch.float64) for _ in range(3))
        want = kernel_attention_explicit(elu_feature_map(q), elu_feature_map(k), v)
        got = elu_linear_attention(q, k, v)
        _expect_tensor(got, tuple(want.shape), case)
        if torch.allclose(got.double(), want, rtol=1e-9, atol=1e-12):
            continue
        hint = "φ(x) = elu(x) + 1; S = φ(K)ᵀ V; z = φ(K) summed over tokens; out = φ(Q) S / φ(Q)·z"
        phi_q, phi_k = elu_feature_map(q), elu_feature_map(k)
        if torch.allclose(got.double(), phi_q @ (phi_k.transpose(-2, -1) @ v), atol=1e-9):
            hint = "divide each row by its normaliser φ(q_i) · z, z = Σ_j φ(k_j)"
        else:
            raw_q, raw_k = F.elu(q), F.elu(k)  # the "+ 1" forgotten: features can be < 0
            without_one = (raw_q @ (raw_k.transpose(-2, -1) @ v)) / (
                raw_q @ raw_k.sum(-2).unsqueeze(-1)
            )
            if torch.allclose(got.double(), without_one, atol=1e-9, equal_nan=True):
                hint = ("φ(x) = elu(x) + 1: without the + 1, features can be negative and the "
                        "normaliser can be 0 or negative")  # fmt: skip
        raise CheckFailed(f"{case}: the output differs from φ(Q)φ(K)ᵀV / rowsum", hint)
    # Linear means no n × n matrix: at n = 2048 one would be 2048² · 8 B = 32 MiB in float64.
    n, d = 2048, 8
    q, k, v = (torch.randn(n, d, generator=g, dtype=torch.float64) for _ in range(3))
    peak = elu_linear_attention.through(peak_bytes, q, k, v)
    if peak >= n * n * 8 // 4:
        raise CheckFailed(
            f"n = {n}: your function allocated {peak / 2**20:.1f} MiB at its peak, as if it "
            f"built an n × n matrix ({n * n * 8 / 2**20:.0f} MiB)",
            "multiply φ(K)ᵀ V first (d × d), then φ(Q) by it: (φ(Q) φ(K)ᵀ) V is n × n",
        )

"""Checks of notebook 03 (tiling and the online softmax).

Each check compares the student's function with the package's own
(:mod:`attn_course.tiling`) on hand-picked inputs, and when an answer is wrong tries to
reproduce the usual mistakes (no rescaling, the block's max instead of the running max,
floor instead of ceiling, a forgotten diagonal ...) to name the one that was made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from attn_course.checks import CheckFailed, exercise, expect_equal
from attn_course.tiling import online_softmax_finish, online_softmax_update

NOTEBOOK = "03_tiling"
INF = float("inf")


# --- exercise 1: one step of the online softmax -------------------------------------------------


def _wrong_steps() -> list[tuple[Callable[..., tuple[torch.Tensor, ...]], str]]:
    """Plausible wrong versions of the update, each with the hint that names its mistake."""

    def no_acc_rescale(m, l, acc, s, v):  # noqa: E741
        m_new = torch.maximum(m, s.amax(-1))
        alpha, p = torch.exp(m - m_new), torch.exp(s - m_new[:, None])
        return m_new, alpha * l + p.sum(-1), acc + p @ v

    def no_l_rescale(m, l, acc, s, v):  # noqa: E741
        m_new = torch.maximum(m, s.amax(-1))
        alpha, p = torch.exp(m - m_new), torch.exp(s - m_new[:, None])
        return m_new, l + p.sum(-1), alpha[:, None] * acc + p @ v

    def no_rescale(m, l, acc, s, v):  # noqa: E741
        m_new = torch.maximum(m, s.amax(-1))
        p = torch.exp(s - m_new[:, None])
        return m_new, l + p.sum(-1), acc + p @ v

    def block_max(m, l, acc, s, v):  # noqa: E741
        m_new = s.amax(-1)
        alpha, p = torch.exp(m - m_new), torch.exp(s - m_new[:, None])
        return m_new, alpha * l + p.sum(-1), alpha[:, None] * acc + p @ v

    def inverted_factor(m, l, acc, s, v):  # noqa: E741
        m_new = torch.maximum(m, s.amax(-1))
        alpha, p = torch.exp(m_new - m), torch.exp(s - m_new[:, None])
        return m_new, alpha * l + p.sum(-1), alpha[:, None] * acc + p @ v

    def normalised(m, l, acc, s, v):  # noqa: E741
        m_new, l_new, acc_new = online_softmax_update(m, l, acc, s, v)
        return m_new, l_new, acc_new / l_new[:, None]

    return [
        (no_rescale, "when the max grows, the old ℓ and acc were summed as exp(s − m_old): "
                     "multiply both by α = exp(m_old − m_new) before adding the new block"),
        (no_acc_rescale, "you rescaled ℓ but not acc: acc_new = α · acc + p @ v_block, "
                         "α = exp(m_old − m_new)"),
        (no_l_rescale, "you used the new max but did not correct ℓ: ℓ_new = α · ℓ + rowsum(p), "
                       "α = exp(m_old − m_new)"),
        (block_max, "m is the *running* max: m_new = max(m_old, rowmax(s_block)), not the "
                    "block's own max"),
        (inverted_factor, "the factor is exp(m_old − m_new) ≤ 1 (old minus new), not its inverse"),
        (normalised, "keep acc unnormalised (Σ exp(s − m) · v); dividing by ℓ happens once, "
                     "at the very end"),
    ]  # fmt: skip


def _step_cases() -> list[tuple[str, tuple[torch.Tensor, ...]]]:
    g = torch.Generator().manual_seed(3)

    def randn(*shape: int, std: float = 1.0) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64) * std

    fresh = (torch.full((3,), -INF, dtype=torch.float64), torch.zeros(3, dtype=torch.float64),
             torch.zeros(3, 2, dtype=torch.float64))  # fmt: skip
    # A state after one block, then a block whose scores are far larger: the max moves.
    m1, l1, acc1 = online_softmax_update(*fresh, randn(3, 4), randn(4, 2))
    # A state whose max is larger than anything in the next block: α = 1 for those rows.
    m2, l2, acc2 = online_softmax_update(*fresh, randn(3, 4) + 5.0, randn(4, 2))
    masked = randn(3, 4) + 4.0
    masked[0, 1:] = -INF  # row 0 sees one key of this block
    return [
        ("the first block (m = -inf, ℓ = 0, acc = 0), 3 rows, 4 keys, d_v = 2",
         (*fresh, randn(3, 4), randn(4, 2))),
        ("a second block with larger scores (the max moves up)",
         (m1, l1, acc1, randn(3, 4) + 3.0, randn(4, 2))),
        ("a second block with smaller scores (the max stays)",
         (m2, l2, acc2, randn(3, 4) - 3.0, randn(4, 2))),
        ("scores in the hundreds (exp would overflow without the max)",
         (m1, l1, acc1, randn(3, 5, std=200.0), randn(5, 2))),
        ("a block with masked (-inf) scores", (m1, l1, acc1, masked, randn(4, 2))),
    ]  # fmt: skip


@exercise(
    "online_softmax_step",
    notebook=NOTEBOOK,
    answer="online_softmax_step",
    title="One step of the online softmax",
    points=2,
)
def check_online_softmax_step(online_softmax_step: Callable[..., Any]) -> None:
    for case, args in _step_cases():
        originals = [a.clone() for a in args]
        got = online_softmax_step(*args)
        if any(not torch.equal(a, o) for a, o in zip(args, originals, strict=True)):
            raise CheckFailed(
                f"{case}: your function changed one of its inputs",
                "compute new tensors (m_new = torch.maximum(...)); "
                "don't update m, l or acc in place",
            )
        expected = online_softmax_update(*args)
        if not isinstance(got, tuple | list) or len(got) != 3:
            raise CheckFailed(
                f"{case}: expected a tuple (m_new, l_new, acc_new), got {type(got).__name__}",
                "return m_new, l_new, acc_new",
            )
        for name, value, want in zip(("m_new", "l_new", "acc_new"), got, expected, strict=True):
            _expect_tensor(value, tuple(want.shape), f"{case}: {name}")
        if all(
            torch.allclose(value.double(), want, rtol=1e-9, atol=1e-12)
            for value, want in zip(got, expected, strict=True)
        ):
            continue
        if any(torch.isnan(value).any() for value in got):
            raise CheckFailed(
                f"{case}: nan in your result",
                "subtract the running max before exp (exp(s − m_new)); exp of large scores "
                "overflows to inf, and inf − inf or inf / inf is nan",
            )
        raise CheckFailed(f"{case}: (m_new, l_new, acc_new) differ from the expected values",
                          _recognise_step(got, args))  # fmt: skip
    # Chained over all blocks and normalised, the steps must give exact softmax attention.
    g = torch.Generator().manual_seed(11)
    scores = torch.randn(4, 12, generator=g, dtype=torch.float64) * 3
    values = torch.randn(12, 3, generator=g, dtype=torch.float64)
    state = (
        torch.full((4,), -INF, dtype=torch.float64),
        torch.zeros(4, dtype=torch.float64),
        torch.zeros(4, 3, dtype=torch.float64),
    )
    for start in range(0, 12, 5):  # blocks of 5, 5 and 2 keys
        block = slice(start, start + 5)
        state = online_softmax_step(*state, scores[:, block], values[block])
    _, total, acc = state
    if not torch.allclose(acc / total[:, None], torch.softmax(scores, -1) @ values, atol=1e-10):
        raise CheckFailed(
            "three blocks chained and divided by ℓ do not give softmax(S) V",
            "each step must leave (m, ℓ, acc) as if all keys so far were one block",
        )


def _recognise_step(got: Any, args: tuple[torch.Tensor, ...]) -> str:
    for wrong, hint in _wrong_steps():
        expected = wrong(*args)
        if all(
            value.shape == want.shape and torch.allclose(value.double(), want, atol=1e-9)
            for value, want in zip(got, expected, strict=True)
        ):
            return hint
    return ("m_new = max(m, rowmax(s)); α = exp(m − m_new); p = exp(s − m_new[:, None]); "
            "ℓ_new = α ℓ + rowsum(p); acc_new = α[:, None] acc + p @ v_block")  # fmt: skip


# --- exercise 2: the final normalisation ---------------------------------------------------


@exercise(
    "online_softmax_final",
    notebook=NOTEBOOK,
    answer="finish",
    title="The final division and the logsumexp",
    points=1,
)
def check_finish(finish: Callable[..., Any]) -> None:
    g = torch.Generator().manual_seed(5)
    scores = torch.randn(3, 6, generator=g, dtype=torch.float64) * 4
    values = torch.randn(6, 2, generator=g, dtype=torch.float64)
    fresh = (torch.full((3,), -INF, dtype=torch.float64), torch.zeros(3, dtype=torch.float64),
             torch.zeros(3, 2, dtype=torch.float64))  # fmt: skip
    state = online_softmax_update(*fresh, scores, values)
    masked = scores.clone()
    masked[1] = -INF  # row 1: every key masked
    state_masked = online_softmax_update(*fresh, masked, values)
    cases = [
        ("3 rows after one block of 6 keys", state),
        ("row 1 had every key masked (ℓ = 0, m = -inf)", state_masked),
    ]
    for case, (m, l, acc) in cases:  # noqa: E741
        got = finish(m, l, acc)
        if not isinstance(got, tuple | list) or len(got) != 2:
            raise CheckFailed(f"{case}: expected a tuple (out, lse)", "return out, lse")
        out, lse = got
        want_out, want_lse = online_softmax_finish(m, l, acc)
        _expect_tensor(out, tuple(want_out.shape), f"{case}: out")
        _expect_tensor(lse, tuple(want_lse.shape), f"{case}: lse")
        if torch.isnan(out).any() or torch.isnan(lse).any():
            raise CheckFailed(
                f"{case}: nan in your result",
                "a row with ℓ = 0 saw no key at all: give it out = 0 and lse = -inf "
                "(e.g. divide by l.masked_fill(l == 0, 1) and use torch.where for lse)",
            )
        if not torch.allclose(out, want_out, atol=1e-12):
            hint = "out = acc / ℓ, row by row (l[:, None] broadcasts over the d_v columns)"
            if torch.allclose(out, acc * torch.exp(-m)[:, None], atol=1e-12):
                hint = "divide by ℓ, the sum of the exponentials, not by exp(m)"
            raise CheckFailed(f"{case}: out differs from acc / ℓ", hint)
        if not torch.equal(torch.isneginf(lse), torch.isneginf(want_lse)) or not torch.allclose(
            lse.nan_to_num(neginf=0.0), want_lse.nan_to_num(neginf=0.0), atol=1e-12
        ):
            hint = "lse = m + log(ℓ): log Σ exp(s) = m + log Σ exp(s − m)"
            if torch.allclose(lse, torch.log(l), atol=1e-12):
                hint = "ℓ was summed after subtracting m: add m back, lse = m + log(ℓ)"
            raise CheckFailed(f"{case}: lse differs from log Σ_j exp(s_j)", hint)


# --- exercise 3: bytes moved by the tiled algorithm -------------------------------------------


def _tiled_bytes(n: int, d: int, sram: int, b: int, *, ceil_block: bool = True,
                 ceil_passes: bool = True, lse: bool = True, kv_once: bool = False,
                 m_bytes: bool = False, times_b: bool = True) -> int:  # fmt: skip
    """The exact count and its plausible mistakes, selected by the flags."""
    m = sram if m_bytes else sram // b
    block_q = -(-m // (4 * d)) if ceil_block else m // (4 * d)
    passes = 1 if kv_once else (-(-n // block_q) if ceil_passes else n // block_q)
    elements = 2 * n * d + 2 * n * d * passes + (n if lse else 0)
    return elements * b if times_b else elements


_TRAFFIC_MISTAKES = [
    ({"lse": False}, "the logsumexp L (one number per row, n numbers) is written too"),
    ({"ceil_block": False}, "B_r = ⌈M / (4d)⌉ rounds up (math.ceil or -(-M // (4*d)))"),
    ({"ceil_passes": False},
     "the last query block may be shorter but still needs its own pass over K and V: "
     "T_r = ⌈n / B_r⌉, rounded up"),
    ({"kv_once": True}, "K and V are read once per query block, T_r = ⌈n / B_r⌉ times, not once"),
    ({"m_bytes": True}, "M counts elements: M = sram_bytes // bytes_per_element"),
    ({"times_b": False}, "the answer is in bytes: multiply the element count by bytes_per_element"),
]  # fmt: skip


@exercise(
    "tiled_hbm_bytes",
    notebook=NOTEBOOK,
    answer="tiled_hbm_bytes",
    title="Bytes the tiled algorithm moves to and from main memory",
    points=1,
)
def check_tiled_hbm_bytes(tiled_hbm_bytes: Callable[[int, int, int, int], int]) -> None:
    cases = [
        # (n, d, sram_bytes, bytes_per_element): M, B_r, T_r worked out in the comment
        (1024, 64, 100 * 1024, 2),  # M = 51200, B_r = 200, T_r = 6 (5.12 rounded up)
        (4096, 64, 64 * 1024, 2),  # M = 32768, B_r = 128, T_r = 32 exactly
        (1000, 32, 10_000, 4),  # M = 2500, B_r = ⌈19.53⌉ = 20, T_r = 50
        (7, 8, 1024, 4),  # M = 256, B_r = 8 > n: one block, T_r = 1
        (16384, 128, 164 * 1024, 2),  # A100: M = 83968, B_r = 164, T_r = 100 (99.9 rounded up)
    ]
    for n, d, sram, b in cases:
        expected = _tiled_bytes(n, d, sram, b)
        got = tiled_hbm_bytes(n, d, sram, b)
        if got == expected:
            continue
        hint = "bytes = b · (n·d [Q] + 2·n·d·T_r [K, V] + n·d [O] + n [L]), T_r = ⌈n / B_r⌉"
        for flags, mistake in _TRAFFIC_MISTAKES:
            if got == _tiled_bytes(n, d, sram, b, **flags):
                hint = mistake
                break
        expect_equal(got, expected, f"n={n}, d={d}, sram_bytes={sram}, {b} B/element", hint)


# --- exercise 4: tiles visited with causal skipping ------------------------------------------


@exercise(
    "causal_tiles",
    notebook=NOTEBOOK,
    answer="causal_tiles",
    title="Tiles a causal tiled attention computes",
    points=1,
)
def check_causal_tiles(causal_tiles: Callable[[int, int], int]) -> None:
    cases = [
        # (n, block), expected: T = ⌈n / block⌉ blocks per side, T (T + 1) / 2 tiles
        ((64, 16), 10, "T = 4: 4 + 3 + 2 + 1"),
        ((100, 16), 28, "T = ⌈6.25⌉ = 7: 7·8/2"),
        ((16, 16), 1, "one tile, the diagonal one"),
        ((5, 16), 1, "n < block: still one tile"),
        ((1024, 128), 36, "T = 8: 8·9/2"),
        ((1000, 1), 500_500, "block 1: every (i, j) with j ≤ i, n(n+1)/2"),
    ]
    for (n, block), expected, arithmetic in cases:
        got = causal_tiles(n, block)
        if got == expected:
            continue
        t_ceil, t_floor = -(-n // block), n // block
        hints = {
            t_ceil * t_ceil: "that is every tile; with causal skipping the tiles above the "
                             "diagonal are never computed",
            t_ceil * (t_ceil - 1) // 2: "count the diagonal tiles too: they are partly masked, "
                                        "but still computed (off by one)",
            t_floor * (t_floor + 1) // 2: "a shorter last block is a block too: T = ⌈n / block⌉",
            t_ceil * t_ceil // 2: "T²/2 undercounts: the diagonal tiles are all kept, "
                                  "T (T + 1) / 2",
        }  # fmt: skip
        hint = hints.get(got, "T = ⌈n / block⌉ blocks per side; query block i needs key "
                              "blocks 0..i: 1 + 2 + … + T")  # fmt: skip
        expect_equal(got, expected, f"causal_tiles({n}, {block}) ({arithmetic})", hint)


def _expect_tensor(got: Any, shape: tuple[int, ...], case: str) -> None:
    if not isinstance(got, torch.Tensor):
        raise CheckFailed(
            f"{case}: expected a torch.Tensor, got {type(got).__name__}",
            "work with torch operations from start to end",
        )
    if tuple(got.shape) != shape:
        raise CheckFailed(
            f"{case}: expected shape {shape}, got {tuple(got.shape)}",
            "m and ℓ have one entry per row (shape (r,)); acc and out are (r, d_v): use "
            "[:, None] to broadcast a per-row factor over the columns",
        )

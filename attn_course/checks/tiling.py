"""Checks of notebook 03 (tiling and the online softmax).

The two online-softmax checks compare the student's state with the package's own
(:mod:`attn_course.tiling`, computed here in float64) on inputs picked to separate stable
from unstable numerics: rows whose max moves while others' does not, rows of very
different scale, rows whose keys are all masked on the first block or on a later one,
float32. When an answer is wrong they reproduce the usual mistakes (no rescaling, the
block's max instead of the running max, ``nan`` in a masked row ...) to name the one made.
The two counting exercises have closed forms: hand-worked cases, then cases hypothesis
draws. Every exercise forbids the package function it asks the student to write.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from hypothesis import strategies as st

from attn_course.checks import CheckFailed, exercise, expect_equal, for_all
from attn_course.checks._forbid import reference
from attn_course.tiling import online_softmax_finish, online_softmax_update

NOTEBOOK = "03_tiling"
INF = float("inf")
F64 = torch.float64


def _tolerance(dtype: torch.dtype) -> dict[str, float]:
    """float64 answers agree with the float64 reference to rounding; float32 to ~1e-7."""
    if dtype == torch.float32:
        return {"rtol": 1e-5, "atol": 1e-5}
    return {"rtol": 1e-9, "atol": 1e-12}


def _fresh(rows: int, d_v: int, dtype: torch.dtype = F64) -> tuple[torch.Tensor, ...]:
    """The state before the first block: m = -inf, ℓ = 0, acc = 0."""
    return (torch.full((rows,), -INF, dtype=dtype), torch.zeros(rows, dtype=dtype),
            torch.zeros(rows, d_v, dtype=dtype))  # fmt: skip


def _safe_shift(m_new: torch.Tensor) -> torch.Tensor:
    return m_new.masked_fill(torch.isneginf(m_new), 0.0)


def _expect_unchanged(args: tuple[Any, ...], originals: list[torch.Tensor], case: str) -> None:
    for value, original in zip(args, originals, strict=True):
        if not torch.equal(value, original):
            raise CheckFailed(
                f"{case}: your function changed one of its inputs",
                "compute new tensors (m_new = torch.maximum(...)); don't update m, l, acc "
                "or the scores in place (no +=, *=, masked_fill_, l[...] = ...)",
            )


def _expect_tensors(got: Any, names: tuple[str, ...], shapes: list[tuple[int, ...]],
                    dtype: torch.dtype, case: str, shape_hint: str) -> None:  # fmt: skip
    if not isinstance(got, tuple | list) or len(got) != len(names):
        shown = type(got).__name__ if not isinstance(got, tuple | list) else f"{len(got)} values"
        raise CheckFailed(f"{case}: expected a tuple ({', '.join(names)}), got {shown}",
                          f"return {', '.join(names)}")  # fmt: skip
    for name, value, shape in zip(names, got, shapes, strict=True):
        if not isinstance(value, torch.Tensor):
            raise CheckFailed(f"{case}: {name} is a {type(value).__name__}, not a torch.Tensor",
                              "work with torch operations from start to end")  # fmt: skip
        if tuple(value.shape) != shape:
            raise CheckFailed(f"{case}: {name} has shape {tuple(value.shape)}, expected {shape}",
                              shape_hint)  # fmt: skip
        if value.dtype != dtype:
            raise CheckFailed(
                f"{case}: {name} has dtype {value.dtype}, the inputs {dtype}",
                "keep the inputs' dtype (no .double(), no torch.tensor(...) constants of "
                "another dtype): the state goes back into the next step",
            )


def _rows(mask: torch.Tensor) -> str:
    rows = mask.nonzero().flatten().tolist()
    return f"row {rows[0]}" if len(rows) == 1 else f"rows {rows}"


# --- exercise 1: one step of the online softmax -------------------------------------------------


def _step(m, l, acc, s, v, *, rescale_l=True, rescale_acc=True, running=True,  # noqa: E741
          factor=1.0, one_max=False, alpha_columns=True, normalise=False):  # fmt: skip
    """The update with its plausible mistakes, selected by the flags (masked rows safe)."""
    block_max = s.amax() if one_max else s.amax(dim=-1)
    m_new = torch.maximum(m, block_max) if running else block_max.expand_as(m)
    shift = _safe_shift(m_new)
    alpha = torch.exp(factor * (m - shift))
    p = torch.exp(s - shift[:, None])
    l_new = (alpha * l if rescale_l else l) + p.sum(-1)
    scaled = (alpha[:, None] if alpha_columns else alpha) * acc
    acc_new = (scaled if rescale_acc else acc) + p @ v
    if normalise:
        acc_new = acc_new / l_new.masked_fill(l_new == 0, 1.0)[:, None]
    return m_new, l_new, acc_new


_STEP_MISTAKES: list[tuple[dict[str, Any], str]] = [
    ({"rescale_l": False, "rescale_acc": False},
     "when the max grows, the old ℓ and acc were summed as exp(s − m_old): multiply both by "
     "α = exp(m_old − m_new) before adding the new block"),
    ({"rescale_acc": False},
     "you rescaled ℓ but not acc: acc_new = α[:, None] · acc + p @ v_block, "
     "α = exp(m_old − m_new)"),
    ({"rescale_l": False},
     "you used the new max but did not correct ℓ: ℓ_new = α · ℓ + rowsum(p), "
     "α = exp(m_old − m_new)"),
    ({"running": False}, "m is the *running* max: m_new = max(m_old, rowmax(s_block)), not the "
                         "block's own max"),
    ({"one_max": True}, "one max for the whole block (s_block.max()) mixes the rows: each row "
                        "keeps its own running max, s_block.amax(dim=-1)"),
    ({"factor": -1.0}, "the factor is α = exp(m_old − m_new) ≤ 1 (old minus new), not its inverse "
                       "(on the first block m_old = -inf, and exp(m_new − m_old) · 0 is nan)"),
    ({"alpha_columns": False}, "α has one entry per row: α[:, None] * acc scales each row; α * acc "
                               "scales the columns instead"),
    ({"normalise": True}, "keep acc unnormalised (Σ exp(s − m) · v); dividing by ℓ happens once, "
                          "at the very end"),
]  # fmt: skip


def _step_cases() -> list[tuple[str, tuple[torch.Tensor, ...]]]:
    g = torch.Generator().manual_seed(3)

    def randn(*shape: int, std: float = 1.0, dtype: torch.dtype = F64) -> torch.Tensor:
        return (torch.randn(*shape, generator=g, dtype=F64) * std).to(dtype)

    cases = []
    # 4 rows, 5 keys per block, d_v = 4: as many value columns as rows, so that α * acc
    # without [:, None] runs (and scales the wrong axis) instead of raising.
    first = (*_fresh(4, 4), randn(4, 5, std=2.0), randn(5, 4))
    cases.append(("the first block (m = -inf, ℓ = 0, acc = 0): 4 rows, 5 keys, d_v = 4", first))
    state = online_softmax_update(*first)
    moves = randn(4, 5) + torch.tensor([6.0, -6.0, 6.0, -6.0], dtype=F64)[:, None]
    cases.append(("a second block whose scores are larger in rows 0 and 2 only (the max moves "
                  "there, not in rows 1 and 3)", (*state, moves, randn(5, 4))))  # fmt: skip
    cases.append(("a second block with smaller scores (the max stays in every row)",
                  (*state, randn(4, 5) - 6.0, randn(5, 4))))  # fmt: skip
    masked = randn(4, 5, std=2.0)
    masked[1] = -INF  # row 1: every key of the first block masked
    masked[3, 2:] = -INF  # row 3: two keys left
    masked_first = (*_fresh(4, 4), masked, randn(5, 4))
    cases.append(("the first block with row 1 fully masked (all -inf) and row 3 partly masked",
                  masked_first))  # fmt: skip
    later = randn(4, 5) + 3.0
    later[1] = -INF  # row 1: still nothing unmasked
    later[2] = -INF  # row 2: had a finite max, this block is fully masked
    cases.append(("a later block: row 1 still fully masked (m = -inf so far), row 2 fully "
                  "masked in this block only (its max stays finite)",
                  (*online_softmax_update(*masked_first), later, randn(5, 4))))  # fmt: skip
    # Rows near +800, 0 and -800: exp of them overflows (or underflows to 0) in float64.
    scale = torch.tensor([800.0, 0.0, -800.0], dtype=F64)[:, None]
    big = online_softmax_update(*_fresh(3, 2), randn(3, 5, std=3.0) + scale, randn(5, 2))
    cases.append(("rows of very different scale: scores near +800, 0 and -800 (exp(800) "
                  "overflows float64)", (*big, randn(3, 5, std=3.0) + scale + 2.0, randn(5, 2))))
    f32 = torch.float32
    scale32 = torch.tensor([100.0, 0.0, -100.0], dtype=f32)[:, None]
    s1 = randn(3, 5, std=3.0, dtype=f32) + scale32
    v1 = randn(5, 2, dtype=f32)
    state32 = online_softmax_update(*_fresh(3, 2, f32), s1, v1)
    cases.append(("float32, rows near +100, 0 and -100 (exp(89) overflows float32)",
                  (*state32, randn(3, 5, std=3.0, dtype=f32) + scale32 + 1.5,
                   randn(5, 2, dtype=f32))))  # fmt: skip
    one = (*_fresh(1, 1), torch.tensor([[0.5]], dtype=F64), torch.tensor([[2.0]], dtype=F64))
    cases.append(("one row, one key (r = 1, c = 1, d_v = 1)", one))
    return cases  # fmt: skip


@exercise(
    "online_softmax_step",
    notebook=NOTEBOOK,
    answer="online_softmax_step",
    title="One step of the online softmax",
    points=2,
    forbidden=[reference("attn_course.tiling.online_softmax_update",
                         "attn_course.tiling.trace_row", what="the online-softmax step")],
)  # fmt: skip
def check_online_softmax_step(online_softmax_step: Callable[..., Any]) -> None:
    for case, args in _step_cases():
        _expect_step(online_softmax_step, args, case)
    _expect_chained(online_softmax_step)


def _expect_step(step: Callable[..., Any], args: tuple[torch.Tensor, ...], case: str) -> None:
    originals = [a.clone() for a in args]
    got = step(*args)
    _expect_unchanged(args, originals, case)
    rows, d_v = args[2].shape
    dtype = args[0].dtype
    _expect_tensors(got, ("m_new", "l_new", "acc_new"), [(rows,), (rows,), (rows, d_v)], dtype,
                    case, "m and ℓ have one entry per row (shape (r,)); acc is (r, d_v): use "
                    "[:, None] to broadcast a per-row factor over the columns")  # fmt: skip
    wide = [a.to(F64) for a in args]
    expected = online_softmax_update(*wide)
    tol = _tolerance(dtype)
    wrong = torch.zeros(rows, dtype=torch.bool)
    for value, want in zip(got, expected, strict=True):
        close = torch.isclose(value.to(F64), want, **tol)
        wrong |= ~(close if close.dim() == 1 else close.all(dim=-1))
    if not wrong.any():
        return
    message = f"{case}: (m_new, l_new, acc_new) differ from the expected values in {_rows(wrong)}"
    raise CheckFailed(message, _recognise_step(got, wide, expected, wrong))


def _recognise_step(got: Any, args: list[torch.Tensor], expected: tuple[torch.Tensor, ...],
                    wrong: torch.Tensor) -> str:  # fmt: skip
    m_new, l_new, acc_new = (value.to(F64) for value in got)
    empty = torch.isneginf(expected[0])  # rows that have seen no unmasked key yet
    bad = torch.isnan(m_new) | torch.isnan(l_new) | torch.isnan(acc_new).any(-1)
    if (bad & empty).any():
        return (f"{_rows(bad & empty)} has seen only masked (-inf) keys so far: m_new = -inf, "
                "and exp(m − m_new) = exp(-inf − (-inf)) is nan (so is exp(s − m_new)). Such a "
                "row must stay m = -inf, ℓ = 0, acc = 0: shift by 0 where m_new is -inf, e.g. "
                "shift = m_new.masked_fill(m_new == -inf, 0), α = exp(m − shift), "
                "p = exp(s − shift[:, None])")  # fmt: skip
    if (empty & ~torch.isneginf(m_new) & wrong).any():
        if torch.equal(l_new[empty], torch.zeros_like(l_new[empty])):
            return ("a row that has seen only masked keys keeps m = -inf: use the 0 shift only "
                    "inside the exponentials and return m_new = max(m, rowmax(s)) itself")
        return ("a row whose keys are all masked must keep m = -inf, ℓ = 0, acc = 0: replacing "
                "-inf by a large negative number makes its masked keys count as real ones")
    for flags, hint in _STEP_MISTAKES:
        if not flags.get("alpha_columns", True) and args[2].shape[0] != args[2].shape[1]:
            continue
        variant = _step(*args, **flags)
        if all(torch.allclose(value, want, rtol=1e-6, atol=1e-9, equal_nan=True)
               for value, want in zip((m_new, l_new, acc_new), variant, strict=True)):  # fmt: skip
            return hint
    overflow = bad | torch.isinf(l_new) | torch.isinf(acc_new).any(-1)
    if overflow.any():
        return (f"nan or inf in {_rows(overflow)}: exp of a large score (or of m) overflows, and "
                "inf − inf or inf / inf is nan. Only exponentiate differences that are ≤ 0: "
                "α = exp(m − m_new), p = exp(s − m_new[:, None]), never exp(s) / exp(m)")
    if not torch.allclose(m_new, expected[0], rtol=1e-9, atol=0):
        return "m_new = max(m, rowmax(s_block)): the running max of each row, nothing else"
    return ("m_new = max(m, rowmax(s)); α = exp(m − m_new); p = exp(s − m_new[:, None]); "
            "ℓ_new = α ℓ + rowsum(p); acc_new = α[:, None] acc + p @ v_block")  # fmt: skip


def _expect_chained(step: Callable[..., Any]) -> None:
    """Chained over three masked blocks and normalised, the steps give softmax attention."""
    g = torch.Generator().manual_seed(11)
    scores = torch.randn(4, 12, generator=g, dtype=F64) * 3
    scores[3] *= 50  # a row of scores in the hundreds
    values = torch.randn(12, 3, generator=g, dtype=F64)
    allowed = torch.ones(4, 12, dtype=torch.bool)
    allowed[0, :10] = False  # row 0: nothing until the last block
    allowed[2, 4:] = False  # row 2: keys 0..3 only, then two fully masked blocks
    masked = scores.masked_fill(~allowed, -INF)
    state = _fresh(4, 3)
    for start in range(0, 12, 5):  # blocks of 5, 5 and 2 keys
        block = slice(start, start + 5)
        state = step(*state, masked[:, block], values[block])
        case = f"three blocks chained (keys {start}..{min(start + 5, 12) - 1} just folded in)"
        _expect_tensors(state, ("m_new", "l_new", "acc_new"), [(4,), (4,), (4, 3)], F64, case,
                        "return m_new (r,), l_new (r,), acc_new (r, d_v)")  # fmt: skip
    m, total, acc = state
    want = torch.softmax(masked, dim=-1) @ values
    if not (torch.allclose(m, masked.amax(-1)) and torch.allclose(acc / total[:, None], want,
                                                                  atol=1e-10)):  # fmt: skip
        raise CheckFailed(
            "three masked blocks chained and divided by ℓ do not give softmax(S) V",
            "each step must leave (m, ℓ, acc) as if all keys so far were one block: m their "
            "max, ℓ = Σ exp(s − m), acc = Σ exp(s − m) v",
        )


# --- exercise 2: the final normalisation ---------------------------------------------------


def _finish_cases() -> list[tuple[str, tuple[torch.Tensor, ...]]]:
    g = torch.Generator().manual_seed(5)

    def state(scores: torch.Tensor, d_v: int) -> tuple[torch.Tensor, ...]:
        values = torch.randn(scores.shape[1], d_v, generator=g, dtype=F64).to(scores.dtype)
        return online_softmax_update(*_fresh(scores.shape[0], d_v, scores.dtype), scores, values)

    scores = torch.randn(3, 6, generator=g, dtype=F64) * 4
    masked = scores.clone()
    masked[1] = -INF
    spread = torch.randn(3, 6, generator=g, dtype=F64) + torch.tensor([[1000.0], [0.0],
                                                                        [-1000.0]])  # fmt: skip
    spread32 = (torch.randn(3, 6, generator=g) + torch.tensor([[100.0], [0.0], [-100.0]]))
    return [
        # As many value columns as rows first: acc / l without [:, None] then runs, wrongly.
        ("3 rows after one block of 6 keys, d_v = 3", state(scores, 3)),
        ("row 1 had every key masked (m = -inf, ℓ = 0, acc = 0)", state(masked, 2)),
        ("rows with m near 1000, 0 and -1000 (exp(1000) overflows float64)", state(spread, 2)),
        ("float32, m near 100, 0 and -100 (exp(100) overflows float32)", state(spread32, 2)),
        ("3 rows, d_v = 2", state(scores, 2)),
        ("one row, d_v = 1", state(scores[:1], 1)),
        ("every row masked", state(torch.full((2, 4), -INF, dtype=F64), 2)),
    ]


@exercise(
    "online_softmax_final",
    notebook=NOTEBOOK,
    answer="finish",
    title="The final division and the logsumexp",
    points=1,
    forbidden=[reference("attn_course.tiling.online_softmax_finish",
                         what="the final division and the logsumexp")],
)  # fmt: skip
def check_finish(finish: Callable[..., Any]) -> None:
    for case, args in _finish_cases():
        _expect_finish(finish, args, case)


def _expect_finish(finish: Callable[..., Any], args: tuple[torch.Tensor, ...], case: str) -> None:
    m, l, acc = args  # noqa: E741
    originals = [a.clone() for a in args]
    got = finish(m, l, acc)
    _expect_unchanged(args, originals, case)
    rows, d_v = acc.shape
    _expect_tensors(got, ("out", "lse"), [(rows, d_v), (rows,)], m.dtype, case,
                    "out is (r, d_v) like acc (divide by l[:, None]); lse has one number per "
                    "row, shape (r,)")  # fmt: skip
    out, lse = (value.to(F64) for value in got)
    m, l, acc = (a.to(F64) for a in args)  # noqa: E741
    want_out, want_lse = online_softmax_finish(m, l, acc)
    tol = _tolerance(args[0].dtype)
    empty = l == 0
    if torch.isnan(out).any() or torch.isnan(lse).any():
        if (torch.isnan(out).any(-1) & empty).any() or (torch.isnan(lse) & empty).any():
            hint = ("a row with ℓ = 0 saw no key at all: give it out = 0 and lse = -inf, never "
                    "0 / 0 = nan (divide by l.masked_fill(l == 0, 1)[:, None])")  # fmt: skip
        else:
            hint = "nan in a row that saw keys: out = acc / ℓ, lse = m + log ℓ"
        raise CheckFailed(f"{case}: nan in your result", hint)
    if not torch.allclose(out, want_out, **tol):
        hint = "out = acc / ℓ, row by row (l[:, None] broadcasts over the d_v columns)"
        safe_l = l.masked_fill(empty, 1.0)
        if torch.allclose(out, (acc * torch.exp(-m)[:, None]).nan_to_num(0.0), **tol):
            hint = "divide by ℓ, the sum of the exponentials, not by exp(m)"
        elif rows == d_v and torch.allclose(out, acc / safe_l, **tol):
            hint = ("acc / l divides column j by ℓ of row j: divide each row by its own ℓ, "
                    "acc / l[:, None]")  # fmt: skip
        elif torch.allclose(out, acc / l.sum(), **tol):
            hint = "each row has its own ℓ: acc / l[:, None], not one sum for all rows"
        differ = ~torch.isclose(out, want_out, **tol).all(-1)
        raise CheckFailed(f"{case}: out differs from acc / ℓ in {_rows(differ)}", hint)
    same_inf = torch.equal(torch.isneginf(lse), torch.isneginf(want_lse))
    finite = ~torch.isinf(want_lse)
    if same_inf and torch.allclose(lse[finite], want_lse[finite], **tol):
        return
    hint = "lse = m + log(ℓ): log Σ exp(s) = m + log Σ exp(s − m)"
    if torch.isposinf(lse).any() or (torch.isneginf(lse) & finite).any():
        hint = ("log(exp(m) · ℓ) overflows (or underflows) for large |m|: lse = m + log(ℓ) "
                "never exponentiates m")  # fmt: skip
    elif (~torch.isneginf(lse) & empty).any():
        hint = "a row with ℓ = 0 has lse = log(0) = -inf (the log of an empty sum), not 0"
    elif torch.allclose(lse[finite], torch.log(l)[finite], **tol):
        hint = "ℓ was summed after subtracting m: add m back, lse = m + log(ℓ)"
    elif torch.allclose(lse[finite], (m + l)[finite], **tol):
        hint = "take the log of ℓ: lse = m + log(ℓ), not m + ℓ"
    raise CheckFailed(f"{case}: lse differs from log Σ_j exp(s_j)", hint)


# --- exercise 3: bytes moved by the tiled algorithm -------------------------------------------


def _tiled_bytes(n: int, d: int, sram: int, b: int, *, ceil_block: bool = True,
                 ceil_passes: bool = True, lse: bool = True, kv_once: bool = False,
                 m_bytes: bool = False, times_b: bool = True, o: bool = True,
                 kv: int = 2, m_float: bool = False) -> int:  # fmt: skip
    """The exact count and its plausible mistakes, selected by the flags."""
    m = sram if m_bytes else sram // b
    block_q = -(-m // (4 * d)) if ceil_block else m // (4 * d)
    if m_float:
        block_q = math.ceil(sram / b / (4 * d))
    if block_q == 0:
        return -1
    passes = 1 if kv_once else (-(-n // block_q) if ceil_passes else n // block_q)
    elements = n * d + kv * n * d * passes + (n * d if o else 0) + (n if lse else 0)
    return elements * b if times_b else elements


_TRAFFIC_MISTAKES = [
    ({"lse": False}, "the logsumexp L (one number per row, n numbers) is written too"),
    ({"o": False}, "the output O (n·d numbers) is written to main memory once"),
    ({"kv": 1}, "K *and* V stream past every query block: 2·n·d·T_r, not n·d·T_r"),
    ({"ceil_block": False}, "B_r = ⌈M / (4d)⌉ rounds up (math.ceil or -(-M // (4*d)))"),
    ({"ceil_passes": False},
     "the last query block may be shorter but still needs its own pass over K and V: "
     "T_r = ⌈n / B_r⌉, rounded up"),
    ({"ceil_block": False, "ceil_passes": False},
     "round both up: B_r = ⌈M / (4d)⌉ and T_r = ⌈n / B_r⌉ (math.ceil, not // or int())"),
    ({"kv_once": True}, "K and V are read once per query block, T_r = ⌈n / B_r⌉ times, not once"),
    ({"m_bytes": True}, "M counts elements: M = sram_bytes // bytes_per_element"),
    ({"m_float": True}, "M counts whole elements: M = sram_bytes // bytes_per_element (floor "
                        "division; part of an element does not fit)"),
    ({"times_b": False}, "the answer is in bytes: multiply the element count by bytes_per_element"),
]  # fmt: skip


@exercise(
    "tiled_hbm_bytes",
    notebook=NOTEBOOK,
    answer="tiled_hbm_bytes",
    title="Bytes the tiled algorithm moves to and from main memory",
    points=1,
    forbidden=[reference("attn_course.tiling.tiled_hbm_bytes",
                         "attn_course.tiling.tiled_hbm_bytes_for_blocks",
                         "attn_course.tiling.flash_block_sizes",
                         what="the tiled algorithm's HBM traffic")],
)  # fmt: skip
def check_tiled_hbm_bytes(tiled_hbm_bytes: Callable[[int, int, int, int], int]) -> None:
    cases = [
        # (n, d, sram_bytes, bytes_per_element): M, B_r, T_r worked out in the comment
        # First a case where every mistake below gives its own number.
        (1000, 32, 10_000, 4),  # M = 2500, B_r = ⌈19.53⌉ = 20, T_r = 50
        (1024, 64, 100 * 1024, 2),  # M = 51200, B_r = 200, T_r = 6 (5.12 rounded up)
        (4096, 64, 64 * 1024, 2),  # M = 32768, B_r = 128, T_r = 32 exactly
        (7, 8, 1024, 4),  # M = 256, B_r = 8 > n: one block, T_r = 1
        (16384, 128, 164 * 1024, 2),  # A100: M = 83968, B_r = 164, T_r = 100 (99.9 rounded up)
        (1, 1, 4, 1),  # one token, M = 4, B_r = 1, T_r = 1
        (10100, 64, 51201, 2),  # an odd byte: M = 25600 (not 25600.5), B_r = 100, T_r = 101
    ]
    for n, d, sram, b in cases:
        _expect_traffic(tiled_hbm_bytes(n, d, sram, b), n, d, sram, b)

    def one(n: int, d: int, sram: int, b: int) -> None:
        _expect_traffic(tiled_hbm_bytes(n, d, sram, b), n, d, sram, b)

    # sram_bytes >= 1024 keeps M / (4d) >= 1/2, so B_r >= 1 for every d and b drawn.
    for_all(one, examples=40, n=st.integers(1, 10**6), d=st.sampled_from([1, 16, 32, 64, 128]),
            sram=st.integers(1024, 256 * 1024), b=st.sampled_from([1, 2, 4]))  # fmt: skip


def _expect_traffic(got: Any, n: int, d: int, sram: int, b: int) -> None:
    expected = _tiled_bytes(n, d, sram, b)
    case = f"n={n}, d={d}, sram_bytes={sram}, {b} B/element"
    if got == expected and isinstance(got, int) and not isinstance(got, bool):
        return
    if isinstance(got, float) and got == expected:
        raise CheckFailed(f"{case}: expected the integer {expected}, got {got!r}",
                          "return an integer: math.ceil and // give ints (a float, from "
                          "np.ceil or /, is not a byte count)")  # fmt: skip
    hint = "bytes = b · (n·d [Q] + 2·n·d·T_r [K, V] + n·d [O] + n [L]), T_r = ⌈n / B_r⌉"
    for flags, mistake in _TRAFFIC_MISTAKES:
        if got == _tiled_bytes(n, d, sram, b, **flags):
            hint = mistake
            break
    expect_equal(got, expected, case, hint)


# --- exercise 4: tiles visited with causal skipping ------------------------------------------


@exercise(
    "causal_tiles",
    notebook=NOTEBOOK,
    answer="causal_tiles",
    title="Tiles a causal tiled attention computes",
    points=1,
    forbidden=[reference("attn_course.tiling.visited_tiles",
                         "attn_course.tiling.causal_visited_fraction",
                         "attn_course.tiling.tiling_schedule", what="the tiles visited")],
)  # fmt: skip
def check_causal_tiles(causal_tiles: Callable[[int, int], int]) -> None:
    cases = [
        # (n, block), expected: T = ⌈n / block⌉ blocks per side, T (T + 1) / 2 tiles
        ((64, 16), 10, "T = 4: 4 + 3 + 2 + 1"),
        ((100, 16), 28, "T = ⌈6.25⌉ = 7: 7·8/2"),
        ((16, 16), 1, "one tile, the diagonal one"),
        ((5, 16), 1, "n < block: still one tile"),
        ((1024, 128), 36, "T = 8: 8·9/2"),
        ((1000, 1), 500_500, "block 1: every (i, j) with j ≤ i, n(n+1)/2"),
        ((1, 1), 1, "one token"),
    ]
    for (n, block), _expected, arithmetic in cases:  # _expect_tiles recomputes the count
        _expect_tiles(causal_tiles(n, block), n, block, f"T(T+1)/2, {arithmetic}")
    for_all(lambda n, block: _expect_tiles(causal_tiles(n, block), n, block, "T(T+1)/2"),
            examples=30, n=st.integers(1, 2000), block=st.integers(1, 256))  # fmt: skip


def _expect_tiles(got: Any, n: int, block: int, arithmetic: str) -> None:
    t_ceil, t_floor = -(-n // block), n // block
    expected = t_ceil * (t_ceil + 1) // 2
    case = f"causal_tiles({n}, {block}) ({arithmetic})"
    if got == expected and isinstance(got, int) and not isinstance(got, bool):
        return
    if isinstance(got, float) and got == expected:
        raise CheckFailed(f"{case}: expected the integer {expected}, got {got!r}",
                          "a count of tiles is an integer: T * (T + 1) // 2, not / 2")  # fmt: skip
    hints = {
        t_ceil * t_ceil: "that is every tile; with causal skipping the tiles above the "
                         "diagonal are never computed",
        t_ceil * (t_ceil - 1) // 2: "count the diagonal tiles too: they are partly masked, "
                                    "but still computed (off by one)",
        t_floor * (t_floor + 1) // 2: "a shorter last block is a block too: T = ⌈n / block⌉",
        t_ceil * t_ceil // 2: "T²/2 undercounts: the diagonal tiles are all kept, T (T + 1) / 2",
        n * (n + 1) // 2: "count tiles (blocks of block × block entries), not entries",
    }  # fmt: skip
    hint = hints.get(got, "T = ⌈n / block⌉ blocks per side; query block i needs key blocks "
                          "0..i: 1 + 2 + … + T")  # fmt: skip
    if isinstance(got, float) and not math.isfinite(got):
        hint = "a count of tiles is a finite integer"
    expect_equal(got, expected, case, hint)

"""Checks of notebook 04 (FlashAttention in Triton).

Five exercises, from arithmetic to a real kernel: how many key blocks a causal query
block visits, which key/value head a query head reads under grouped-query attention,
the throughput of a measured run, the online-softmax update inside a small Triton
forward kernel, and how many blocks of a compiled kernel an SM holds at once. The kernel
exercise runs the student's ``@triton.jit`` function (in Triton's interpreter on a
machine without a GPU) at tiny sizes and compares it with a float64 reference; when it
is wrong, it replays the usual mistakes in PyTorch to name one. The counting exercises
compare whole lists (every query block, every query head), so a hint can name the
mistake that gives exactly the student's list, and require ints.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from attn_course.checks import CheckFailed, exercise, expect_close, for_all
from attn_course.checks._forbid import reference
from attn_course.grading.answers import answer_helper

NOTEBOOK = "04_flash_attention"


# --- exercise 1: the causal loop bound ----------------------------------------------------

_BLOCK_MISTAKES: list[tuple[Callable[[int, int, int], int], str]] = [
    (lambda i, bm, bn: i * bm // bn, "the diagonal block counts too: query row r sees key r "
     "itself, so the last row of block i needs keys up to (i+1)·block_m − 1"),
    (lambda i, bm, bn: (i + 1) * bm // bn, "round up, not down: a key block that is only "
     "partly needed must still be visited (ceil, or (a + b − 1) // b)"),
    (lambda i, bm, bn: ((i + 1) * bm - 1) // bn, "that is the index of the last key block "
     "visited; the number of blocks is one more: ceil((i+1)·block_m / block_n)"),
    (lambda i, bm, bn: (i + 1) * bm // bn + 1, "a // b + 1 is one too many when b divides a: "
     "use (a + b − 1) // b"),
    (lambda i, bm, bn: i + 1, "that holds only when block_m == block_n; count keys, "
     "(i+1)·block_m of them, in key blocks of block_n"),
    (lambda i, bm, bn: ((i + 1) * bn + bm - 1) // bm, "block_m and block_n are swapped: the "
     "query block has block_m rows, the key blocks block_n keys each"),
]  # fmt: skip


@exercise(
    "causal_kv_blocks",
    notebook=NOTEBOOK,
    answer="causal_kv_blocks",
    title="Key blocks a causal query block visits",
    points=1,
)
def check_causal_kv_blocks(causal_kv_blocks: Callable[[int, int, int], int]) -> None:
    # (block_m, block_n), query blocks 0..7 each. 48 and 32 first: neither divides the other,
    # so every mistake above gives a different list; then equal, larger, smaller, and 1 × 1.
    for block_m, block_n in ((48, 32), (64, 64), (128, 64), (64, 128), (16, 64), (32, 48),
                             (1, 1), (1, 7)):  # fmt: skip
        indices = range(8)
        got = [causal_kv_blocks(i, block_m, block_n) for i in indices]
        expected = [_ceil_div((i + 1) * block_m, block_n) for i in indices]
        _expect_ints(got, expected, f"block_m={block_m}, block_n={block_n}: "
                     "causal_kv_blocks(i, ...) for query blocks i = 0..7",
                     [([f(i, block_m, block_n) for i in indices], hint)
                      for f, hint in _BLOCK_MISTAKES],
                     "key blocks needed = ceil((i + 1) · block_m / block_n)")  # fmt: skip

    def one(i: int, block_m: int, block_n: int) -> None:
        got = causal_kv_blocks(i, block_m, block_n)
        _expect_ints([got], [_ceil_div((i + 1) * block_m, block_n)],
                     f"causal_kv_blocks({i}, {block_m}, {block_n})",
                     [([f(i, block_m, block_n)], hint) for f, hint in _BLOCK_MISTAKES],
                     "key blocks needed = ceil((i + 1) · block_m / block_n)")  # fmt: skip

    for_all(one, i=st.integers(0, 10**5), block_m=st.integers(1, 256),
            block_n=st.integers(1, 256))  # fmt: skip


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _expect_ints(
    got: list[Any],
    expected: list[int],
    case: str,
    mistakes: list[tuple[list[int], str]],
    default_hint: str,
) -> None:
    """Pass if ``got`` is ``expected``, element by element, as Python ints; otherwise name the
    first mistake whose list is ``got``."""
    for value in got:
        if isinstance(value, bool) or not isinstance(value, int):
            shown = got if len(got) > 1 else value
            raise CheckFailed(
                f"{case}: expected whole numbers of type int, got {shown!r}",
                "return an int (it is a loop bound or an index): // rounds down, "
                "(a + b − 1) // b rounds up; / gives a float",
            )
    if got == expected:
        return
    hint = next((text for wrong, text in mistakes if wrong == got and wrong != expected),
                default_hint)  # fmt: skip
    shown_expected, shown_got = (xs if len(xs) > 1 else xs[0] for xs in (expected, got))
    raise CheckFailed(f"{case}: expected {shown_expected}, got {shown_got}", hint)


# --- exercise 2: GQA head mapping ---------------------------------------------------------

_HEAD_MISTAKES: list[tuple[Callable[[int, int, int], int], str]] = [
    (lambda h, heads, kv: h % kv, "that interleaves the heads; consecutive query heads share "
     "a kv head (as SDPA's enable_gqa and repeat_interleave do): divide, don't take the "
     "remainder"),
    (lambda h, heads, kv: h // kv, "divide by the group size heads // kv_heads (query heads "
     "per kv head), not by kv_heads"),
    (lambda h, heads, kv: heads // kv, "return the kv head's index, not the group size"),
    (lambda h, heads, kv: h, "with fewer kv heads than query heads, heads // kv_heads "
     "consecutive query heads share one kv head: q_head // group_size"),
    (lambda h, heads, kv: h % (heads // kv), "that is the query head's position inside its "
     "group; the kv head is the group's number: q_head // group_size"),
    (lambda h, heads, kv: -(-h // (heads // kv)), "round down: query heads 0 … group_size − 1 "
     "all read kv head 0"),
    (lambda h, heads, kv: kv - 1 - h // (heads // kv), "the first group of query heads reads "
     "kv head 0, the next kv head 1, …: in order, not reversed"),
]  # fmt: skip


@exercise(
    "kv_head_for",
    notebook=NOTEBOOK,
    answer="kv_head_for",
    title="Which key/value head a query head reads (GQA)",
    points=1,
)
def check_kv_head_for(kv_head_for: Callable[[int, int, int], int]) -> None:
    # (heads, kv_heads); the whole mapping of every query head. 12 / 3 first: groups of 4,
    # a group size that is not kv_heads, so the mistakes give different lists. Then
    # groups of 4 (8 / 2), MHA (8 / 8), MQA (8 / 1), Llama-3-8B (32 / 8), groups of 2
    # and of 3, a single head.
    models = ((12, 3), (8, 2), (8, 8), (8, 1), (32, 8), (16, 8), (12, 4), (6, 2), (1, 1))
    for heads, kv_heads in models:
        got = [kv_head_for(h, heads, kv_heads) for h in range(heads)]
        expected = [h // (heads // kv_heads) for h in range(heads)]
        _expect_ints(got, expected, f"heads={heads}, kv_heads={kv_heads}: kv_head_for(h, ...) "
                     f"for query heads h = 0..{heads - 1}",
                     [([f(h, heads, kv_heads) for h in range(heads)], hint)
                      for f, hint in _HEAD_MISTAKES],
                     f"kv head = q_head // (heads // kv_heads); here groups of "
                     f"{heads // kv_heads}")  # fmt: skip

    def one(kv_heads: int, group: int, pick: int) -> None:
        heads = kv_heads * group
        h = pick % heads
        _expect_ints([kv_head_for(h, heads, kv_heads)], [h // group],
                     f"kv_head_for({h}, heads={heads}, kv_heads={kv_heads})",
                     [([f(h, heads, kv_heads)], hint) for f, hint in _HEAD_MISTAKES],
                     "kv head = q_head // (heads // kv_heads)")  # fmt: skip

    for_all(one, kv_heads=st.integers(1, 64), group=st.integers(1, 16),
            pick=st.integers(0, 10**6))  # fmt: skip


# --- exercise 3: TFLOP/s of a measured run --------------------------------------------------


def _tflops(
    batch: int,
    heads: int,
    n: int,
    head_dim: int,
    causal: bool,
    ms: float,
    *,
    matmuls: int = 2,
    halve: str = "causal",
    seconds_per_ms: float = 1e-3,
    per: float = 1e12,
    factor: float = 1.0,
) -> float:
    """TFLOP/s by the exercise's formula, with knobs to reproduce the usual slips."""
    pairs = n * n
    if causal and halve == "triangle":
        pairs = n * (n + 1) / 2
    flops = 2 * matmuls * batch * heads * pairs * head_dim * factor
    if causal and halve == "causal":
        flops /= 2
    return flops / (ms * seconds_per_ms) / per


_TFLOPS_MISTAKES: list[tuple[dict[str, Any], str]] = [
    ({"halve": "never"}, "causal attention does half the work: halve the FLOPs when causal "
     "is True"),
    # At causal=False, one matmul and halving regardless of causal give the same number.
    ({"matmuls": 1}, "two matmuls (Q Kᵀ and P V), each 2·n²·d FLOPs per head: 4·n²·d in all, "
     "halved only when causal is True"),
    ({"halve": "triangle"}, "halve exactly (÷ 2), the convention of the benchmark records and "
     "of the FlashAttention papers, not n(n+1)/2"),
    ({"seconds_per_ms": 1.0}, "ms is milliseconds: divide by ms · 1e-3 seconds, not by ms"),
    ({"seconds_per_ms": 1e3}, "ms is milliseconds: ms · 1e-3 seconds, not ms · 1e3"),
    ({"per": 1.0}, "TFLOP/s: divide FLOP/s by 1e12"),
    ({"per": 1e9}, "tera is 1e12 (1e9 gives GFLOP/s)"),
    ({"factor": 3.5}, "the run is a forward pass only: 4·b·h·n²·d FLOPs, no backward factor"),
]  # fmt: skip


@exercise(
    "attention_tflops",
    notebook=NOTEBOOK,
    answer="attention_tflops",
    title="Throughput of a measured attention forward",
    points=1,
    forbidden=[
        reference(
            "attn_course.cost.attention_flops",
            "attn_course.cost.tflops_per_s",
            "attn_course.cost.attention_matmul_flops",
            what="attention FLOPs and TFLOP/s",
        ),
    ],
)
def check_attention_tflops(attention_tflops: Callable[..., float]) -> None:
    cases = [
        # (batch, heads, n, head_dim, causal, ms). Batch 3 and 5 heads first, so that a
        # forgotten batch, a forgotten heads and a doubled heads each show; e.g. the second:
        # 4·1·1·1000²·100 = 4e8 FLOP in 1 ms = 4e11 FLOP/s = 0.4 TFLOP/s.
        (3, 5, 1000, 64, False, 2.0),
        (1, 1, 1000, 100, False, 1.0),
        (3, 5, 1000, 64, True, 2.0),
        (4, 16, 4096, 64, True, 1.25),
        (1, 32, 8192, 128, True, 10.0),
        (2, 8, 1024, 64, False, 0.05),
        (2, 3, 17, 16, True, 0.001),  # a tiny n: n(n+1)/2 is far from n²/2
    ]
    for args in cases:
        _expect_tflops(attention_tflops, *args)

    def one(batch: int, heads: int, n: int, head_dim: int, causal: bool, ms: float) -> None:
        _expect_tflops(attention_tflops, batch, heads, n, head_dim, causal, ms)

    for_all(one, batch=st.integers(1, 64), heads=st.integers(1, 128), n=st.integers(1, 2**17),
            head_dim=st.sampled_from([16, 32, 64, 80, 128, 256]), causal=st.booleans(),
            ms=st.floats(1e-3, 1e5))  # fmt: skip


def _expect_tflops(
    answer: Callable[..., Any],
    batch: int,
    heads: int,
    n: int,
    head_dim: int,
    causal: bool,
    ms: float,
) -> None:
    shape = (batch, heads, n, head_dim)
    expected = _tflops(*shape, causal, ms)
    case = f"attention_tflops({batch}, {heads}, {n}, {head_dim}, causal={causal}, ms={ms})"
    got = answer(*shape, causal, ms)
    if isinstance(got, bool) or not isinstance(got, int | float):
        raise CheckFailed(f"{case}: expected a number, got {type(got).__name__}",
                          "return the TFLOP/s as a float")  # fmt: skip
    if math.isclose(got, expected, rel_tol=1e-9):
        return
    known = [(_tflops(*shape, causal, ms, **knobs), hint) for knobs, hint in _TFLOPS_MISTAKES]
    for forgot, what in ((batch, "batch"), (heads, "heads"), (batch * heads, "batch × heads")):
        known.append((expected / forgot, f"every (sequence, head) pair has its own n×n "
                      f"attention: you left out × {what}"))  # fmt: skip
    known.append((expected * heads, "the heads are counted twice: 4·batch·heads·n²·head_dim "
                  "already sums over heads (heads · head_dim = d_model)"))  # fmt: skip
    hint = next(
        (text for wrong, text in known
         if not math.isclose(wrong, expected, rel_tol=1e-9)
         and math.isclose(got, wrong, rel_tol=1e-6)),
        "FLOPs = 4·batch·heads·n²·head_dim (÷2 if causal); TFLOP/s = FLOPs / (ms·1e-3) / 1e12",
    )  # fmt: skip
    expect_close(got, expected, case, hint, rel=1e-9)


# --- exercise 4: the online-softmax update of a Triton forward kernel -------------------------


@answer_helper
def launch_exercise_kernel(
    kernel: Any,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    block_m: int = 16,
    block_n: int = 16,
) -> torch.Tensor:
    """Run the notebook's exercise kernel on q, k, v of shape (batch, heads, n, head_dim).

    The kernel's signature (as written in the notebook)::

        kernel(Q, K, V, Out, n, qk_scale_log2, CAUSAL, BLOCK_M, BLOCK_N, HEAD_DIM)

    with Q, K, V, Out contiguous (batch·heads, n, head_dim) float32 tensors and
    ``qk_scale_log2 = log2(e) / √head_dim``. The launch grid is
    ``(ceil(n / BLOCK_M), batch · heads)``: one program per query block and head.
    Out starts as NaN, so a row the kernel never stores reads as NaN (not as whatever the
    allocator left there). The untouched stub raises NotImplementedError (the interpreter
    wraps it in an InterpreterError and a GPU compile fails on its ``raise``: both are
    unwrapped here).
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or t.dim() != 4 or t.shape != q.shape:
            raise ValueError(f"{name} must be a tensor of shape (batch, heads, n, head_dim) "
                             f"like q {tuple(q.shape)}")  # fmt: skip
    import triton

    from attn_course.kernels.tiles import LOG2E  # imports triton: only when a kernel runs

    batch, heads, n, head_dim = q.shape
    if head_dim not in (16, 32, 64, 128):
        raise ValueError(f"head_dim must be 16, 32, 64 or 128, got {head_dim}")
    flat = [t.reshape(batch * heads, n, head_dim).contiguous() for t in (q, k, v)]
    out = torch.full_like(flat[0], math.nan)
    grid = (triton.cdiv(n, block_m), batch * heads)
    try:
        # A wrong kernel's overflow in the interpreter is feedback, not a NumPy warning.
        with _quiet_numpy():
            kernel[grid](
                *flat, out, n, LOG2E.value / math.sqrt(head_dim),
                CAUSAL=causal, BLOCK_M=block_m, BLOCK_N=block_n, HEAD_DIM=head_dim,
            )  # fmt: skip
    except NotImplementedError:
        raise
    except Exception as error:
        if "NotImplementedError" in f"{type(error).__name__}: {error}":
            raise NotImplementedError from error
        raise
    return out.reshape(batch, heads, n, head_dim)


def _quiet_numpy() -> Any:
    """NumPy's floating-point warnings off (the interpreter computes in NumPy)."""
    try:
        import numpy
    except ImportError:  # pragma: no cover - the interpreter needs NumPy; a GPU does not
        return contextlib.nullcontext()
    return numpy.errstate(all="ignore")


def _blocked_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool,
    block_m: int = 16,
    block_n: int = 16,
    *,
    rescale_acc: bool = True,
    rescale_sum: bool = True,
    keep_max: bool = True,
    base2: bool = True,
    sum_axis: int = -1,
    normalise_in_loop: bool = False,
    causal_mask: str = "j <= i",
    pad_mask: bool = True,
) -> torch.Tensor:
    """The exercise kernel's algorithm in float64 PyTorch, with switches for its usual bugs.

    Padded like the kernel: the last query and key blocks are filled up with zero rows (the
    kernel's masked loads), so a bug that lets the padding in is reproduced exactly.

    rescale_acc=False: the accumulator is not multiplied by alpha = 2^(m_old − m_new);
    rescale_sum=False: the running sum is not; keep_max=False: m_i is never updated;
    base2=False: tl.exp instead of tl.exp2; sum_axis=-2: tl.sum(p, 0);
    normalise_in_loop=True: acc kept divided by l_i inside the loop (and again after it);
    causal_mask="j < i" (diagonal hidden) or "none" (only the loop bound);
    pad_mask=False: the keys past n are not masked.
    """
    from attn_course.kernels.tiles import LOG2E

    q, k, v = (t.to(torch.float64) for t in (q, k, v))
    n = q.shape[-2]
    exp = torch.exp2 if base2 else torch.exp
    scale_log2 = LOG2E.value / math.sqrt(q.shape[-1])

    def padded(t: torch.Tensor, block: int) -> torch.Tensor:
        return F.pad(t, (0, 0, 0, (-n) % block))

    q, k, v = padded(q, block_m), padded(k, block_n), padded(v, block_n)
    out = torch.empty_like(q)
    for start_m in range(0, n, block_m):
        rows = torch.arange(start_m, start_m + block_m)
        q_block = q[..., rows, :]
        m_i = torch.full(q_block.shape[:-1], -math.inf, dtype=torch.float64)
        l_i = torch.zeros_like(m_i)
        acc = torch.zeros_like(q_block)
        hi = min(start_m + block_m, n) if causal else n
        for start_n in range(0, hi, block_n):
            cols = torch.arange(start_n, start_n + block_n)
            s = q_block @ k[..., cols, :].transpose(-2, -1) * scale_log2
            visible = cols[None, :] < (n if pad_mask else start_n + block_n)
            if causal and causal_mask == "j <= i":
                visible = visible & (cols[None, :] <= rows[:, None])
            elif causal and causal_mask == "j < i":
                visible = visible & (cols[None, :] < rows[:, None])
            s = s.masked_fill(~visible, -math.inf)
            m_new = torch.maximum(m_i, s.amax(-1))
            alpha = exp(m_i - m_new)
            p = exp(s - m_new[..., None])
            l_new = (l_i * alpha if rescale_sum else l_i) + p.sum(sum_axis)
            pv = p @ v[..., cols, :]
            if normalise_in_loop:
                acc = acc * (alpha * l_i / l_new)[..., None] + pv / l_new[..., None]
            else:
                acc = (acc * alpha[..., None] if rescale_acc else acc) + pv
            l_i = l_new
            if keep_max:
                m_i = m_new
        out[..., rows, :] = acc / l_i[..., None]
    return out[..., :n, :]


def _rows_one_apart(t: torch.Tensor) -> torch.Tensor:
    """What a kernel that steps through rows by 1 element, not HEAD_DIM, reads:
    row c is the HEAD_DIM elements starting at element c of the head's block."""
    batch, heads, n, d = t.shape
    return t.reshape(batch, heads, n * d).unfold(-1, d, 1)[..., :n, :]


_KERNEL_MISTAKES: list[tuple[dict[str, Any], str]] = [
    ({"rescale_acc": False}, "when the maximum grows, the old accumulator must shrink too: "
     "acc = acc * alpha[:, None] + tl.dot(p, v)"),
    ({"rescale_sum": False}, "when the maximum grows, the old running sum must shrink too: "
     "l_i = l_i * alpha + tl.sum(p, 1)"),
    ({"rescale_acc": False, "rescale_sum": False}, "rescale both running quantities by "
     "alpha = tl.exp2(m_i - m_new), computed from the *old* m_i (before m_i = m_new), "
     "before adding the new block"),
    ({"keep_max": False}, "store the new maximum at the end of the iteration (m_i = m_new), "
     "or every block is weighted as if it were the first"),
    ({"base2": False}, "the scores are in log2 units (the scale includes log2 e): use "
     "tl.exp2, not tl.exp"),
    ({"sum_axis": -2}, "sum each row of p over its keys: tl.sum(p, 1), not tl.sum(p, 0)"),
    ({"normalise_in_loop": True}, "keep acc unnormalised (Σ 2^(s − m_i) · v): the kernel "
     "divides by l_i once, after the loop"),
    ({"causal_mask": "none"}, "inside the diagonal block the keys after a query row are "
     "still visible: keep the causal mask, cols[None, :] <= rows[:, None]"),
    ({"causal_mask": "j < i"}, "the causal mask must keep the diagonal: query row r sees key "
     "r itself (<=, not <)"),
    ({"pad_mask": False}, "the keys past n in the last, partial key block (loaded as 0) must "
     "be masked too (cols[None, :] < n), or each adds 2^(0 − m) to the row's sum"),
]  # fmt: skip


def _recognise_kernel_mistake(
    got: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool,
    blocks: tuple[int, int],
    tolerance: float,
) -> str | None:
    got = got.to(torch.float64).nan_to_num(0.0)

    def same(wrong: torch.Tensor) -> bool:
        return torch.allclose(got, wrong.nan_to_num(0.0), atol=tolerance, rtol=tolerance)

    for knobs, hint in _KERNEL_MISTAKES:
        if "causal_mask" in knobs and not causal:
            continue
        if knobs.get("sum_axis") and blocks[0] != blocks[1]:
            continue
        if same(_blocked_reference(q, k, v, causal, *blocks, **knobs)):
            return hint
    if same(_blocked_reference(q, _rows_one_apart(k), _rows_one_apart(v), causal, *blocks)):
        return ("K and V are read with the wrong stride: key row c starts c · HEAD_DIM "
                "elements into its head (cols[:, None] * HEAD_DIM + dims[None, :])")  # fmt: skip
    return None


def _grid_values(t: torch.Tensor) -> torch.Tensor:
    """``t`` rounded to multiples of 1/8: exactly representable in TF32, which a GPU's
    tl.dot uses for float32 tiles, so the scores are exact there too."""
    return torch.round(t * 8) / 8


@exercise(
    "flash_inner_loop",
    notebook=NOTEBOOK,
    answer="attention_forward_kernel",
    title="The online-softmax update of a Triton attention kernel",
    points=2,
)
def check_flash_inner_loop(attention_forward_kernel: Any) -> None:
    from attn_course.kernels import kernel_device, kernel_mode

    device = kernel_device()
    # float32 matmuls on a GPU use TF32 (10-bit mantissa) inside tl.dot; the interpreter
    # computes in NumPy float32.
    tolerance = 1e-4 if kernel_mode() == "interpreter" else 2e-2
    generator = torch.Generator().manual_seed(4)

    def randn(n: int, heads: int) -> torch.Tensor:
        return torch.randn((1, heads, n, 16), generator=generator)

    def qkv(n: int, std: float = 1.0, heads: int = 2) -> list[torch.Tensor]:
        return [_grid_values(randn(n, heads) * std) for _ in range(3)]

    def rising(n: int) -> list[torch.Tensor]:
        # keys grow along the sequence, so each key block raises the running maximum
        q, k, v = randn(n, 2), randn(n, 2), randn(n, 2)
        k = k * torch.linspace(0.5, 4.0, n)[:, None]
        return [_grid_values(t) for t in (q.abs() + 0.5, k.abs(), v)]

    def scales(n: int) -> list[torch.Tensor]:
        # rows of very different scale: from near-uniform weights to scores of ~±300 in
        # base 2, whose 2^s overflows float32 unless the maximum is subtracted first
        q, k, v = randn(n, 1), randn(n, 1) * 4, randn(n, 1)
        q = q * torch.logspace(-2, 1.4, n)[:, None]
        return [_grid_values(t) for t in (q, k, v)]

    cases = [
        # (what, (q, k, v), causal, (block_m, block_n))
        ("n=32 (two key blocks), no mask", qkv(32), False, (16, 16)),
        ("n=32, causal", qkv(32), True, (16, 16)),
        ("n=48, keys growing along the sequence (the maximum rises in every block)",
         rising(48), False, (16, 16)),
        ("n=40 (the last blocks are partial), no mask", qkv(40), False, (16, 16)),
        ("n=40, causal", qkv(40), True, (16, 16)),
        ("n=48, rows of very different scale, up to scores whose 2^s overflows float32",
         scales(48), False, (16, 16)),
        ("n=48, large scores, causal", qkv(48, std=12.0, heads=1), True, (16, 16)),
        ("n=1 (one token, one partial block)", qkv(1), True, (16, 16)),
        ("n=40, causal, BLOCK_M=32, BLOCK_N=16 (rows that see none of a key block)",
         qkv(40), True, (32, 16)),
    ]  # fmt: skip
    for case, (q, k, v), causal, blocks in cases:
        got = attention_forward_kernel.through(
            launch_exercise_kernel, *(t.to(device) for t in (q, k, v)), causal=causal,
            block_m=blocks[0], block_n=blocks[1],
        )  # fmt: skip
        if not isinstance(got, torch.Tensor) or got.shape != q.shape:
            raise CheckFailed(
                f"{case}: the launch did not return the output tensor",
                "leave the kernel's signature and its final tl.store as given",
            )
        expected = _blocked_reference(q, k, v, causal, *blocks)
        got64 = got.to(torch.float64)
        if torch.allclose(got64, expected, atol=tolerance, rtol=tolerance):
            continue
        hint = _recognise_kernel_mistake(got, q, k, v, causal, blocks, max(1e-3, 2 * tolerance))
        if hint is None and not torch.isfinite(got).all():
            hint = (
                "nan or inf in the output: subtract the new running maximum before tl.exp2 "
                "(p = tl.exp2(s - m_new[:, None])), so every exponent is <= 0"
            )
        difference = (got64 - expected).abs().nan_to_num(math.inf)
        where = divmod(int(difference.argmax()) // q.shape[-1], q.shape[-2])
        raise CheckFailed(
            f"{case}: largest difference from the float64 reference "
            f"{difference.max().item():.2g} (head {where[0]}, query row {where[1]})",
            hint
            or "m_new = max(m_i, row max of s); alpha = exp2(m_i − m_new); "
            "p = exp2(s − m_new); l_i = l_i·alpha + sum(p); acc = acc·alpha + p @ v; m_i = m_new",
        )


# --- exercise 5: occupancy ------------------------------------------------------------------


def _blocks(regs: int, shared: int, warps: int, target: Any, *, unit: int = 256,
            reserve: bool = True, warp_limit: bool = True, block_limit: bool = True,
            per_sm: bool = True, round_up: bool = True) -> int:  # fmt: skip
    """Resident blocks per SM, with each step of the formula switchable (the mistakes)."""
    per_warp = (-(-32 * regs // unit) * unit) if round_up else 32 * regs
    limits = [target.registers_per_sm // (per_warp * warps)]
    reserved = target.shared_per_sm - target.shared_per_block if reserve else 0
    pool = target.shared_per_sm if per_sm else target.shared_per_block
    if shared + reserved:
        limits.append(pool // (shared + reserved))
    if warp_limit:
        limits.append(target.max_warps_per_sm // warps)
    if block_limit:
        limits.append(target.max_blocks_per_sm)
    return min(limits)


_OCCUPANCY_MISTAKES: list[tuple[Callable[..., int], str]] = [
    (lambda r, s, w, t: _blocks(r, s, w, t, round_up=False), "registers are given to a warp "
     "in units of 256: round 32 · registers up to a multiple of 256 before dividing"),
    (lambda r, s, w, t: _blocks(r, s, w, t, reserve=False), "each block also takes the "
     "memory the system reserves for it: shared_per_sm − shared_per_block (1 KiB from sm_80 on)"),
    (lambda r, s, w, t: _blocks(r, s, w, t, per_sm=False), "blocks share the SM's shared "
     "memory, shared_per_sm; shared_per_block only caps one block"),
    (lambda r, s, w, t: _blocks(r, s, w, t, warp_limit=False), "an SM holds at most "
     "max_warps_per_sm warps: that limits blocks of many warps"),
    (lambda r, s, w, t: _blocks(r, s, w, t, block_limit=False), "an SM holds at most "
     "max_blocks_per_sm blocks, however small they are"),
    (lambda r, s, w, t: _blocks(r, s, w, t) * w, "that is the number of resident warps; "
     "return blocks (warps // num_warps)"),
]  # fmt: skip


_OCCUPANCY_HINT = "the smallest of four limits: registers, shared memory, warps, blocks"


@exercise(
    "resident_blocks",
    notebook=NOTEBOOK,
    answer="resident_blocks",
    title="How many blocks of a compiled kernel an SM holds",
    points=1,
    forbidden=[reference("attn_course.kernels.targets.occupancy", what="the occupancy")],
)
def check_resident_blocks(resident_blocks: Callable[[int, int, int, str], int]) -> None:
    # The GPU goes to the student's function by name ("sm_80"): names cross to a grading
    # kernel as data, and the function looks the limits up with get_target itself.
    from attn_course.kernels.targets import TARGETS, get_target

    # Each case is bound by another limit, and every mistake above changes its answer.
    # (registers, shared bytes, warps, target): the flash forward's 64 x 32 tile at head
    # dim 128 on an A100 (registers); 100 KiB of shared memory (shared memory);
    # 16-warp blocks on sm_86 (warps); tiny blocks on sm_75 (blocks); registers 100 (the
    # rounding: 3200 -> 3328 per warp).
    cases = [(183, 53248, 4, "sm_80"), (32, 100 * 1024, 4, "sm_80"), (24, 0, 16, "sm_86"),
             (16, 0, 1, "sm_75"), (100, 0, 2, "sm_90"), (64, 40 * 1024, 4, "sm_90"),
             (40, 80 * 1024, 2, "sm_86"), (255, 131072, 8, "sm_90"),
             # Exactly half the SM's shared memory (with and without the reserve): where
             # the reserved 1 KiB, and which pool, decide between 1 and 2 blocks.
             (32, 83968, 4, "sm_80"), (32, 115712, 4, "sm_90")]  # fmt: skip
    for regs, shared, warps, name in cases:
        target = get_target(name)
        case = f"resident_blocks({regs}, {shared}, {warps}, {name!r})"
        _expect_ints([resident_blocks(regs, shared, warps, name)],
                     [_blocks(regs, shared, warps, target)], case,
                     [([f(regs, shared, warps, target)], hint)
                      for f, hint in _OCCUPANCY_MISTAKES],
                     _OCCUPANCY_HINT)  # fmt: skip

    def one(regs: int, shared_kib: int, warps: int, index: int) -> None:
        target = TARGETS[index]
        shared = min(shared_kib * 1024, target.shared_per_block)
        _expect_ints([resident_blocks(regs, shared, warps, target.name)],
                     [_blocks(regs, shared, warps, target)],
                     f"resident_blocks({regs}, {shared}, {warps}, {target.name!r})",
                     [([f(regs, shared, warps, target)], hint)
                      for f, hint in _OCCUPANCY_MISTAKES],
                     _OCCUPANCY_HINT)  # fmt: skip

    for_all(one, regs=st.integers(16, 255), shared_kib=st.integers(0, 227),
            warps=st.sampled_from([1, 2, 4, 8]),
            index=st.integers(0, len(TARGETS) - 1))  # fmt: skip

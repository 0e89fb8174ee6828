"""Checks of notebook 08 (serving at long context).

Four exercises, each checked for its *contents*, not only its shape or type: the merged
softmax against full attention in float64, head by head (one head of a case may have an
empty split, or both); the admission count against the FCFS rule on hand-made queues
that tell the usual mistakes apart, then on queues hypothesis draws; the break-even
context and the expected tokens per pass against their closed forms, with the edge cases
(swapping always wins; α = 0 and α = 1) and the inputs that must be refused. When an
answer is wrong the checks name the mistake: an average instead of a weighted merge, exp
of large logsumexps overflowing, the max for the merged logsumexp, NaN on empty splits,
skipping ahead in the queue, the first generated token forgotten, floor for ceil, the
non-causal attention term, bits for bytes, the bonus token left out …
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from hypothesis import strategies as st

from attn_course.checks import CheckFailed, exercise, expect_raises, for_all
from attn_course.checks._forbid import reference
from attn_course.grading.answers import StudentError

NOTEBOOK = "08_serving"
F64 = torch.float64
NEG_INF = float("-inf")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- exercise 1: merge two partial softmaxes -------------------------------------------------


def _partial(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(o, lse) of one head set over one chunk of keys: q (h, d), k and v (h, n, d)."""
    scores = torch.einsum("hd,hnd->hn", q, k) / math.sqrt(q.shape[-1])
    if k.shape[1] == 0:
        return torch.zeros_like(q), torch.full(q.shape[:1], NEG_INF, dtype=q.dtype)
    lse = torch.logsumexp(scores, dim=-1)
    return torch.einsum("hn,hnd->hd", torch.exp(scores - lse[:, None]), v), lse


def _merge(o1: torch.Tensor, lse1: torch.Tensor, o2: torch.Tensor,
           lse2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """The reference merge, safe for empty partials (lse = -inf)."""
    lse = torch.logaddexp(lse1, lse2)
    empty = torch.isneginf(lse)
    safe = torch.where(empty, torch.zeros_like(lse), lse)
    w1 = torch.where(empty, 0.0, torch.exp(lse1 - safe))[:, None]
    w2 = torch.where(empty, 0.0, torch.exp(lse2 - safe))[:, None]
    return w1 * o1 + w2 * o2, lse


def _split_case(heads: int, d: int, n: int, cut: int | list[int], *, std: float = 1.0,
                dtype: torch.dtype = F64, seed: int = 0) -> tuple[torch.Tensor, ...]:  # fmt: skip
    """Partials of keys [0, cut) and [cut, n) per head (``cut`` may differ by head), and the
    full attention they must merge into."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(heads, d, generator=g, dtype=F64) * std
    k = torch.randn(heads, n, d, generator=g, dtype=F64) * std
    v = torch.randn(heads, n, d, generator=g, dtype=F64)
    cuts = [cut] * heads if isinstance(cut, int) else cut
    parts = [[], [], [], []]
    for h, c in enumerate(cuts):
        o1, l1 = _partial(q[h : h + 1], k[h : h + 1, :c], v[h : h + 1, :c])
        o2, l2 = _partial(q[h : h + 1], k[h : h + 1, c:], v[h : h + 1, c:])
        for part, value in zip(parts, (o1, l1, o2, l2), strict=True):
            part.append(value)
    o1, l1, o2, l2 = (torch.cat(p) for p in parts)
    return tuple(t.to(dtype) for t in (o1, l1, o2, l2))


def _merge_cases() -> list[tuple[str, tuple[torch.Tensor, ...]]]:
    both_empty = _split_case(3, 4, 6, 0)
    o1, l1, o2, l2 = both_empty  # head 1 has no keys at all: both partials empty
    l2 = l2.clone()
    l2[1] = NEG_INF
    o2 = o2.clone()
    o2[1] = 0
    return [
        ("4 heads, d = 8, 12 keys split 5 + 7", _split_case(4, 8, 12, 5)),
        ("one key on the left, 15 on the right", _split_case(2, 4, 16, 1, seed=1)),
        ("large scores (q and k × 6)", _split_case(2, 8, 10, 4, std=6.0, seed=2)),
        ("logsumexps near 800: exp(lse) overflows", _shifted_case(800.0, seed=7)),
        ("logsumexps near -1000: exp(lse) underflows to 0", _shifted_case(-1000.0, seed=6)),
        ("head 2 of 4 has an empty right split (lse = -inf, o = 0)",
         _split_case(4, 4, 9, [4, 6, 9, 2], seed=3)),
        ("head 0 has an empty left split", _split_case(2, 4, 5, [0, 3], seed=4)),
        ("head 1 of 3 has no keys in either split (both lse = -inf)", (o1, l1, o2, l2)),
        ("float32 partials", _split_case(3, 8, 10, 6, dtype=torch.float32, seed=5)),
    ]  # fmt: skip


def _shifted_case(shift: float, *, seed: int) -> tuple[torch.Tensor, ...]:
    """Partials of scores shifted by ``shift`` (o unchanged, lse + shift): exp(lse) overflows
    float64 above ≈ 709 and underflows to 0 below ≈ -745 (0 / 0 for a naive merge)."""
    o1, l1, o2, l2 = _split_case(2, 4, 8, 3, seed=seed)
    return o1, l1 + shift, o2, l2 + shift + 1.0


def _merge_mistakes(o1: torch.Tensor, l1: torch.Tensor, o2: torch.Tensor,
                    l2: torch.Tensor) -> list[tuple[tuple[torch.Tensor, ...], str]]:  # fmt: skip
    o, lse = _merge(o1, l1, o2, l2)
    e1, e2 = torch.exp(l1)[:, None], torch.exp(l2)[:, None]
    base2 = torch.log2(torch.exp2(l1) + torch.exp2(l2))
    w1, w2 = torch.exp2(l1 - base2)[:, None], torch.exp2(l2 - base2)[:, None]
    return [
        (((o1 + o2) / 2, lse), "an average of the two outputs ignores how much softmax mass "
         "each split holds: weight o_i by exp(lse_i - lse)"),
        ((o, torch.maximum(l1, l2)), "the merged lse is log(e^lse1 + e^lse2) (torch.logaddexp), "
         "not the larger of the two"),
        ((o, l1 + l2), "the merged lse adds the masses e^lse1 + e^lse2, not the logs"),
        ((e1 * o1 + e2 * o2, lse), "the weights exp(lse_i) must be divided by the merged mass "
         "exp(lse): use exp(lse_i - lse)"),
        ((torch.exp(l2 - lse)[:, None] * o1 + torch.exp(l1 - lse)[:, None] * o2, lse),
         "o1 is weighted by its own mass: exp(lse1 - lse) · o1 + exp(lse2 - lse) · o2 (the "
         "weights are swapped)"),
        ((w1 * o1 + w2 * o2, base2), "lse is a natural logarithm here (torch.logsumexp): use "
         "exp and log, not exp2 and log2"),
    ]  # fmt: skip


@exercise(
    "serve_merge_partials",
    notebook=NOTEBOOK,
    answer="merge_partials",
    title="Merge two partial softmaxes with their logsumexps",
    points=2,
    forbidden=[reference("attn_course.splitk.merge_partials", "attn_course.splitk.merge_many",
                         "attn_course.splitk.split_decode_reference",
                         what="the logsumexp merge")],
)  # fmt: skip
def check_merge_partials(merge_partials: Callable[..., Any]) -> None:
    for case, args in _merge_cases():
        originals = [a.clone() for a in args]
        got = merge_partials(*args)
        for value, original in zip(args, originals, strict=True):
            if not torch.equal(value, original):
                raise CheckFailed(f"{case}: your function changed one of its inputs",
                                  "build new tensors; don't modify o1, lse1, o2, lse2 in "
                                  "place")  # fmt: skip
        _expect_merge(got, args, case)


def _same_lse(got: float, want: float, tol: float) -> bool:
    """Equal logsumexps, -inf included (a head with no keys)."""
    return got == want or abs(got - want) <= tol * (1 + abs(want))


def _expect_merge(got: Any, args: tuple[torch.Tensor, ...], case: str) -> None:
    o1, l1, o2, l2 = args
    if not isinstance(got, tuple | list) or len(got) != 2:
        raise CheckFailed(f"{case}: expected a tuple (o, lse), got {type(got).__name__}",
                          "return o, lse")  # fmt: skip
    o, lse = got
    for name, value, like in (("o", o, o1), ("lse", lse, l1)):
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(like.shape):
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise CheckFailed(f"{case}: {name} is {shape}, expected shape {tuple(like.shape)}",
                              f"{name} has the shape of {name}1: one row per head")  # fmt: skip
        if value.dtype != like.dtype:
            raise CheckFailed(f"{case}: {name} has dtype {value.dtype}, the inputs {like.dtype}",
                              "keep the inputs' dtype")  # fmt: skip
    wide = [a.to(F64) for a in args]
    want_o, want_lse = _merge(*wide)
    tol = 1e-5 if o1.dtype == torch.float32 else 1e-9
    got_o, got_lse = o.to(F64), lse.to(F64)
    lse_ok = torch.equal(torch.isneginf(got_lse), torch.isneginf(want_lse)) and torch.allclose(
        got_lse.nan_to_num(neginf=0.0), want_lse.nan_to_num(neginf=0.0), rtol=tol, atol=tol)
    if lse_ok and torch.allclose(got_o, want_o, rtol=tol, atol=tol):
        return
    bad_rows = [h for h in range(len(want_o))
                if not (torch.allclose(got_o[h], want_o[h], rtol=tol, atol=tol)
                        and _same_lse(float(got_lse[h]), float(want_lse[h]), tol))]  # fmt: skip
    where = f"head(s) {bad_rows}" if bad_rows else "some heads"
    if not (torch.isfinite(got_o).all() and not torch.isnan(got_lse).any()):
        empty = torch.isneginf(want_lse)
        hint = ("exp of a large lse overflows (or of a very negative one underflows to 0 / 0): "
                "subtract the larger lse before exp, i.e. weight o_i by exp(lse_i - lse) with "
                "lse = torch.logaddexp(lse1, lse2)")  # fmt: skip
        if empty.any() and not torch.isfinite(got_o[empty]).all():
            hint = ("where both splits are empty (lse1 = lse2 = -inf) the merge has no mass: "
                    "return o = 0 and lse = -inf for that head, not NaN (-inf - -inf is NaN)")
        raise CheckFailed(f"{case}: NaN or inf in the result for {where}", hint)
    hint = "lse = logaddexp(lse1, lse2); o = exp(lse1 - lse) · o1 + exp(lse2 - lse) · o2"
    for (wrong_o, wrong_lse), text in _merge_mistakes(*wide):
        if torch.allclose(got_o, wrong_o, rtol=tol, atol=tol, equal_nan=True) and torch.allclose(
            got_lse, wrong_lse, rtol=tol, atol=tol, equal_nan=True
        ):
            hint = text
            break
    raise CheckFailed(f"{case}: the merge differs from attention over all keys for {where}",
                      hint)  # fmt: skip


# --- exercise 2: admit requests under a block budget -------------------------------------------


def _blocks(tokens: int, block_size: int) -> int:
    return -(-tokens // block_size)


def _admit(lengths: list[int], free: int, block_size: int, running: int, max_batch: int) -> int:
    """The FCFS rule: admit from the head while the next fits; stop at the first that doesn't."""
    admitted = 0
    for length in lengths:
        need = _blocks(length + 1, block_size)
        if running + admitted >= max_batch or need > free:
            break
        free -= need
        admitted += 1
    return admitted


def _admit_mistakes(lengths: list[int], free: int, bs: int, running: int,
                    max_batch: int) -> list[tuple[int, str]]:  # fmt: skip
    def skipping() -> int:
        left, count = free, 0
        for n in lengths:
            if running + count < max_batch and _blocks(n + 1, bs) <= left:
                left -= _blocks(n + 1, bs)
                count += 1
        return count

    def rule(need: Callable[[int], int], cap: int = max_batch - running,
             spend: bool = True) -> int:  # fmt: skip
        left, count = free, 0
        for n in lengths:
            if count >= cap or need(n) > left:
                break
            left -= need(n) if spend else 0
            count += 1
        return count

    return [
        (skipping(), "first come, first served: stop at the first request that does not fit; "
         "admitting later, smaller ones ahead of it reorders the queue (and can starve a long "
         "prompt)"),
        (rule(lambda n: _blocks(n, bs)), "each request needs room for its prompt AND the first "
         "token it generates: ceil((prompt + 1) / block_size) blocks"),
        (rule(lambda n: (n + 1) // bs), "round the blocks up (ceil): a partly filled block is "
         "still a whole block"),
        (rule(lambda n: n + 1), "the budget is in blocks, not tokens: a request needs "
         "ceil((prompt + 1) / block_size) blocks"),
        (rule(lambda n: _blocks(n + 1, bs), cap=max_batch), "the batch already holds `running` "
         "requests: at most max_batch - running more"),
        (rule(lambda n: _blocks(n + 1, bs), cap=len(lengths)), "the batch is capped: at most "
         "max_batch - running requests may join"),
        (rule(lambda n: _blocks(n + 1, bs), spend=False), "subtract each admitted request's "
         "blocks from the free blocks before looking at the next one"),
    ]  # fmt: skip


_ADMIT_CASES = [
    # (queue of prompt lengths, free blocks, block size, running, max batch): each case tells
    # a different group of mistakes apart (see _admit_mistakes).
    ([40, 40], 3, 16, 0, 8),  # blocks are spent: 3 for the first, none left for the second
    ([16], 1, 16, 0, 8),  # 16 prompt tokens + 1 generated need 2 blocks
    ([40, 5], 2, 16, 0, 8),  # head of line: the 40-token prompt does not fit, so none
    ([20], 1, 16, 0, 8),  # ceil(21 / 16) = 2 blocks
    ([4, 4, 4, 4, 4, 4], 100, 16, 2, 4),  # two seats left in the batch
    ([4, 4, 4, 4, 4], 100, 16, 0, 3),  # the batch cap
    ([15, 15, 15], 2, 16, 0, 8),  # exact fit: 15 + 1 = 16 tokens = 1 block each
    ([3, 3, 3], 8, 1, 0, 8),  # block size 1: 4 blocks each
    ([], 10, 16, 0, 8),  # an empty queue
    ([7, 100, 2], 3, 8, 1, 8),  # one fits, the next needs 13 blocks: stop
    ([5], 0, 16, 0, 8),  # no free block at all
]


@exercise(
    "serve_admit",
    notebook=NOTEBOOK,
    answer="admit",
    title="Admit waiting requests under a KV-block budget",
    points=2,
    forbidden=[reference("attn_course.serving.admit", "attn_course.paged.blocks_needed",
                         what="the admission count")],
)  # fmt: skip
def check_admit(admit: Callable[..., Any]) -> None:
    for lengths, free, bs, running, max_batch in _ADMIT_CASES:
        _expect_admitted(admit, lengths, free, bs, running, max_batch)

    def one(lengths: list[int], free: int, bs: int, running: int, max_batch: int) -> None:
        _expect_admitted(admit, lengths, free, bs, min(running, max_batch), max_batch)

    for_all(one, examples=60, lengths=st.lists(st.integers(1, 200), max_size=12),
            free=st.integers(0, 40), bs=st.sampled_from([1, 4, 8, 16, 32]),
            running=st.integers(0, 8), max_batch=st.integers(1, 8))  # fmt: skip
    bad = [
        ("block_size=0", ([4], 4, 0, 0, 8), "block_size must be >= 1"),
        ("free_blocks=-1", ([4], -1, 16, 0, 8), "free_blocks must be >= 0"),
        ("a prompt of 0 tokens", ([4, 0], 4, 16, 0, 8), "every prompt has >= 1 token"),
        ("max_batch=0", ([4], 4, 16, 0, 0), "max_batch must be >= 1"),
    ]
    for case, (lengths, free, bs, running, max_batch), why in bad:
        expect_raises(lambda a=(lengths, free, bs, running, max_batch): admit(
            a[0], a[1], a[2], running=a[3], max_batch=a[4]), ValueError,
            f"admit with {case}", f"refuse bad input with a ValueError: {why}")  # fmt: skip


def _expect_admitted(admit: Callable[..., Any], lengths: list[int], free: int, bs: int,
                     running: int, max_batch: int) -> None:  # fmt: skip
    got = admit(list(lengths), free, bs, running=running, max_batch=max_batch)
    want = _admit(lengths, free, bs, running, max_batch)
    case = (f"queue {lengths}, {free} free blocks of {bs} tokens, {running} running, "
            f"max_batch {max_batch}")  # fmt: skip
    if not _is_int(got):
        raise CheckFailed(f"{case}: expected an int, got {type(got).__name__}",
                          "return how many requests from the head of the queue are admitted "
                          "(a count, not a list or a bool)")  # fmt: skip
    if got == want:
        return
    hint = ("walk the queue from its head: admit while the batch has a seat and the request's "
            "ceil((prompt + 1) / block_size) blocks are free; stop at the first that is not")
    for wrong, text in _admit_mistakes(lengths, free, bs, running, max_batch):
        if wrong == got:
            hint = text
            break
    raise CheckFailed(f"{case}: expected {want} admitted, got {got}", hint)


# --- exercise 3: the offload break-even context -----------------------------------------------


def _break_even(b: float, bw: float, flops: float, w: float, layers: int, d: int) -> int:
    return max(1, math.ceil((flops * b / bw - w) / (2 * layers * d)))


# Numbers of published models on published hardware (notebook 08, section 5, computes them):
# KV bytes per token in bf16, the link's bytes/s one way, the GPU's bf16 FLOP/s × MFU 0.5, the
# layers' weight FLOPs per token (2 × their matmul weights), layers, d_model.
_BREAK_EVEN_CASES = [
    # GPT-2 small (12 layers of 12 d², 36 KiB per token) on an H100 over PCIe 4.0
    ("GPT-2-small on H100, PCIe 4.0", (36864, 31.5e9, 494.5e12, 169869312.0, 12, 768)),
    # the same over PCIe 5.0: twice the bandwidth, less than half the break-even context
    ("GPT-2-small on H100, PCIe 5.0", (36864, 63e9, 494.5e12, 169869312.0, 12, 768)),
    # Llama-2-7B (MHA, 512 KiB per token) on an A100 over PCIe 4.0: swapping always wins
    ("Llama-2-7B on A100, PCIe 4.0", (524288, 31.5e9, 156e12, 12.95e9, 32, 4096)),
    # a toy: (F b / BW - w) / (2 L d) = (1000 · 8 / 2 - 100) / (2 · 2 · 3) = 3900 / 12 = 325
    ("a toy with an exact quotient", (8, 2.0, 1000.0, 100.0, 2, 3)),
    ("a toy with w = 0", (64, 4.0, 100.0, 0.0, 1, 8)),
]


def _break_even_mistakes(b: float, bw: float, flops: float, w: float, layers: int,
                         d: int) -> list[tuple[Any, str]]:  # fmt: skip
    exact = (flops * b / bw - w) / (2 * layers * d)
    return [
        (max(1, math.floor(exact)), "round up (math.ceil): the smallest whole context at "
         "which swapping is no slower"),
        (max(1, round(exact)), "round up (math.ceil), not to the nearest integer"),
        (math.ceil(exact), "when swapping always wins the answer is 1 (the shortest context), "
         "not zero or a negative number: max(1, ...)"),
        (max(1, math.ceil((flops * b / bw - w) / (4 * layers * d))), "causal attention over n "
         "tokens costs 2·L·d·n² FLOPs (half of 4·L·d·n²): the prefill's queries see only "
         "earlier keys"),
        (max(1, math.ceil(flops * b / bw / (2 * layers * d))), "recomputing also runs the "
         "weights: w FLOPs per token on top of the attention term"),
        (max(1, math.ceil((flops * b * 8 / bw - w) / (2 * layers * d))), "bytes and bytes/s: "
         "no factor 8 (bits)"),
        (max(1, math.ceil((flops * b / (8 * bw) - w) / (2 * layers * d))), "bytes and "
         "bytes/s: no factor 8 (bits)"),
        (exact, "return a whole number of tokens (an int): math.ceil"),
    ]  # fmt: skip


@exercise(
    "serve_offload_break_even",
    notebook=NOTEBOOK,
    answer="break_even_context",
    title="When bringing a cache back beats recomputing it",
    points=1,
    forbidden=[reference("attn_course.offload.break_even_context",
                         "attn_course.offload.break_even_closed_form",
                         what="the break-even context")],
)  # fmt: skip
def check_break_even(break_even_context: Callable[..., Any]) -> None:
    for case, args in _BREAK_EVEN_CASES:
        _expect_break_even(break_even_context(*args), args, case)

    def one(b: int, bw: float, flops: float, w: float, layers: int, d: int) -> None:
        args = (b, bw, flops, w, layers, d)
        _expect_break_even(break_even_context(*args), args, f"arguments {args}")

    for_all(one, examples=40, b=st.integers(1, 2**20), bw=st.floats(1e9, 1e12),
            flops=st.floats(1e12, 2e15), w=st.floats(0, 1e11), layers=st.integers(1, 128),
            d=st.integers(64, 16384))  # fmt: skip
    bad = [
        ("link_bytes_per_s=0", (131072, 0.0, 1e15, 1e10, 32, 4096)),
        ("flops_per_s=0", (131072, 63e9, 0.0, 1e10, 32, 4096)),
        ("bytes_per_token=-1", (-1, 63e9, 1e15, 1e10, 32, 4096)),
        ("layers=0", (131072, 63e9, 1e15, 1e10, 0, 4096)),
    ]
    for case, args in bad:
        expect_raises(lambda a=args: break_even_context(*a), ValueError,
                      f"break_even_context with {case}",
                      "refuse a non-positive bytes_per_token, bandwidth, FLOP/s, layers or "
                      "d_model with a ValueError (a zero bandwidth would divide by zero)",
                      )  # fmt: skip


def _expect_break_even(got: Any, args: tuple[Any, ...], case: str) -> None:
    want = _break_even(*args)
    if _is_int(got) and got == want:
        return
    hint = ("n* = max(1, ceil((F · b / BW − w) / (2 · L · d))): swap(n) = n · b / BW against "
            "recompute(n) = (w · n + 2 · L · d · n²) / F")
    for wrong, text in _break_even_mistakes(*args):
        if wrong != want and got == wrong:
            hint = text
            break
    else:
        if not _is_int(got):
            hint = "return a whole number of tokens (an int): math.ceil"
    raise CheckFailed(f"{case}: expected {want}, got {got!r}", hint)


# --- exercise 4: expected tokens per target pass ---------------------------------------------


def _expected_tokens(alpha: float, k: int) -> float:
    return k + 1.0 if alpha == 1 else (1 - alpha ** (k + 1)) / (1 - alpha)


def _tokens_mistakes(alpha: float, k: int) -> list[tuple[float, str]]:
    geometric = 1 - alpha
    return [
        ((1 - alpha**k) / geometric if alpha < 1 else float(k), "the target always adds one "
         "token of its own (the correction or the bonus token): the sum runs over α^0 … α^k, "
         "k + 1 terms, (1 − α^(k+1)) / (1 − α)"),
        (alpha * (1 - alpha**k) / geometric if alpha < 1 else float(k), "that counts only the "
         "accepted draft tokens: add the target's own token, 1 + α + … + α^k"),
        (1 + k * alpha, "acceptance stops at the first rejected token: the i-th draft token "
         "counts only if all before it were accepted, probability α^i, not α"),
        (1 / geometric if alpha < 1 else math.inf, "there are only k draft tokens: the series "
         "stops at α^k, (1 − α^(k+1)) / (1 − α)"),
    ]  # fmt: skip


_TOKENS_CASES = [(0.8, 4), (0.5, 1), (0.0, 5), (1.0, 4), (1.0, 1), (0.9, 16), (0.3, 3), (0.999, 8)]


@exercise(
    "serve_spec_expected_tokens",
    notebook=NOTEBOOK,
    answer="expected_tokens",
    title="Expected tokens per target pass in speculative decoding",
    points=1,
    forbidden=[reference("attn_course.speculative.expected_tokens_per_pass",
                         "attn_course.speculative.expected_speedup",
                         what="the expected tokens per pass")],
)  # fmt: skip
def check_expected_tokens(expected_tokens: Callable[..., Any]) -> None:
    for alpha, k in _TOKENS_CASES:
        try:
            got = expected_tokens(alpha, k)
        except StudentError as error:
            if alpha != 1:
                raise
            raise CheckFailed(f"α = 1, k = {k}: your code raised {error.type_name}",
                              "at α = 1 the formula is 0 / 0: every draft token is accepted, "
                              "so the answer is k + 1 (handle α = 1 before dividing)") from None
        _expect_tokens(got, alpha, k)

    def one(alpha: float, k: int) -> None:
        _expect_tokens(expected_tokens(alpha, k), alpha, k)

    for_all(one, examples=40, alpha=st.floats(0, 0.995), k=st.integers(1, 32))
    bad = [("alpha=1.5", (1.5, 4), "alpha is a probability, in [0, 1]"),
           ("alpha=-0.1", (-0.1, 4), "alpha is a probability, in [0, 1]"),
           ("k=0", (0.5, 0), "k >= 1 draft tokens")]  # fmt: skip
    for case, args, why in bad:
        expect_raises(lambda a=args: expected_tokens(*a), ValueError,
                      f"expected_tokens with {case}", f"refuse it with a ValueError: {why}")


def _expect_tokens(got: Any, alpha: float, k: int) -> None:
    want = _expected_tokens(alpha, k)
    case = f"α = {alpha}, k = {k}"
    try:
        value = float(got)
    except (TypeError, ValueError):
        raise CheckFailed(f"{case}: expected a number, got {type(got).__name__}",
                          "return the expected number of tokens, a float") from None
    if math.isfinite(value) and math.isclose(value, want, rel_tol=1e-9, abs_tol=1e-12):
        return
    hint = "E = 1 + α + α² + … + α^k = (1 − α^(k+1)) / (1 − α), and k + 1 at α = 1"
    if not math.isfinite(value) and alpha == 1:
        hint = ("at α = 1 the formula is 0 / 0: every draft token is accepted, so the answer "
                "is k + 1 (handle α = 1 before dividing)")
    for wrong, text in _tokens_mistakes(alpha, k):
        if math.isfinite(value) and math.isclose(value, wrong, rel_tol=1e-9) and wrong != want:
            hint = text
            break
    raise CheckFailed(f"{case}: expected {want:.6g}, got {value:.6g}", hint)

"""Checks of notebook 04 (FlashAttention in Triton).

Four exercises, from arithmetic to a real kernel: how many key blocks a causal query
block visits, which key/value head a query head reads under grouped-query attention,
the throughput of a measured run, and the online-softmax update inside a small Triton
forward kernel. The kernel exercise runs the student's ``@triton.jit`` function (in
Triton's interpreter on a machine without a GPU) at tiny sizes and compares it with a
float64 reference; when it is wrong, it replays the usual mistakes in PyTorch to name one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from attn_course.bench import attention_flops, tflops_per_s
from attn_course.checks import CheckFailed, exercise, expect_close, expect_equal
from attn_course.grading.answers import answer_helper

NOTEBOOK = "04_flash_attention"
LOG2E = math.log2(math.e)  # exp(x) = exp2(x · log2 e)


# --- exercise 1: the causal loop bound ----------------------------------------------------


@exercise(
    "causal_kv_blocks",
    notebook=NOTEBOOK,
    answer="causal_kv_blocks",
    title="Key blocks a causal query block visits",
    points=1,
)
def check_causal_kv_blocks(causal_kv_blocks: Callable[[int, int, int], int]) -> None:
    cases = [
        # (q_block_index, block_m, block_n), expected, arithmetic
        ((0, 64, 64), 1, "rows 0–63 need keys 0–63: ceil(64/64)"),
        ((3, 64, 64), 4, "rows 192–255 need keys 0–255: ceil(256/64)"),
        ((0, 128, 64), 2, "rows 0–127 need keys 0–127: ceil(128/64)"),
        ((2, 128, 64), 6, "rows 256–383 need keys 0–383: ceil(384/64)"),
        ((2, 64, 128), 2, "rows 128–191 need keys 0–191: ceil(192/128)"),
        ((0, 16, 64), 1, "rows 0–15 need keys 0–15: one key block of 64"),
        ((4, 16, 64), 2, "rows 64–79 need keys 0–79: ceil(80/64)"),
    ]
    for (i, block_m, block_n), expected, arithmetic in cases:
        got = causal_kv_blocks(i, block_m, block_n)
        if got == expected:
            continue
        last_key = (i + 1) * block_m  # one past the last key the block's last row may see
        hints = {
            i * block_m // block_n: "the diagonal block counts too: query row r sees key r "
            "itself, so the last row of block i needs keys up to (i+1)·block_m − 1",
            last_key // block_n: "round up, not down: a key block that is only partly needed "
            "must still be visited (ceil, or (a + b − 1) // b)",
            i + 1: "that holds only when block_m == block_n; count keys, (i+1)·block_m of them, "
            "in key blocks of block_n",
        }
        hint = hints.get(got, "key blocks needed = ceil((i + 1) · block_m / block_n)")
        expect_equal(got, expected, f"causal_kv_blocks({i}, {block_m}, {block_n}) ({arithmetic})",
                     hint)  # fmt: skip


# --- exercise 2: GQA head mapping ---------------------------------------------------------


@exercise(
    "kv_head_for",
    notebook=NOTEBOOK,
    answer="kv_head_for",
    title="Which key/value head a query head reads (GQA)",
    points=1,
)
def check_kv_head_for(kv_head_for: Callable[[int, int, int], int]) -> None:
    cases = [
        # (q_head, heads, kv_heads), expected
        ((0, 8, 8), 0),
        ((5, 8, 8), 5),  # multi-head: one kv head per query head
        ((7, 8, 1), 0),  # multi-query: every query head reads kv head 0
        ((4, 8, 2), 1),  # groups of 4: heads 0-3 -> 0, 4-7 -> 1
        ((3, 8, 2), 0),
        ((5, 32, 8), 1),  # groups of 4: heads 4-7 -> 1
        ((31, 32, 8), 7),
        ((10, 12, 4), 3),  # groups of 3: heads 9-11 -> 3
    ]
    for (q_head, heads, kv_heads), expected in cases:
        got = kv_head_for(q_head, heads, kv_heads)
        if got == expected:
            continue
        group = heads // kv_heads
        hints = {
            q_head % kv_heads: "that interleaves the heads; consecutive query heads share a kv "
            "head (as SDPA's enable_gqa and repeat_interleave do): divide, don't take the "
            "remainder",
            q_head // kv_heads: "divide by the group size heads // kv_heads (query heads per kv "
            "head), not by kv_heads",
            group: "return the kv head's index, not the group size",
        }
        hint = hints.get(got, f"kv head = q_head // (heads // kv_heads); here groups of {group}")
        expect_equal(got, expected, f"kv_head_for({q_head}, heads={heads}, kv_heads={kv_heads})",
                     hint)  # fmt: skip


# --- exercise 3: TFLOP/s of a measured run --------------------------------------------------


@exercise(
    "attention_tflops",
    notebook=NOTEBOOK,
    answer="attention_tflops",
    title="Throughput of a measured attention forward",
    points=1,
)
def check_attention_tflops(attention_tflops: Callable[..., float]) -> None:
    cases = [
        # (batch, heads, n, head_dim, causal, ms); the expected value is computed from
        # attn_course.bench (4·b·h·n²·d, halved when causal, / seconds / 1e12), e.g. the
        # first: 4·1·1·1000²·100 = 4e8 FLOP in 1 ms = 4e11 FLOP/s = 0.4 TFLOP/s.
        (1, 1, 1000, 100, False, 1.0),
        (4, 16, 4096, 64, False, 2.0),
        (4, 16, 4096, 64, True, 1.25),
        (1, 32, 8192, 128, True, 10.0),
        (2, 8, 1024, 64, False, 0.05),
    ]
    for batch, heads, n, head_dim, causal, ms in cases:
        expected = tflops_per_s(attention_flops(batch, heads, n, head_dim, causal=causal), ms)
        got = attention_tflops(batch, heads, n, head_dim, causal, ms)
        case = f"attention_tflops({batch}, {heads}, {n}, {head_dim}, causal={causal}, ms={ms})"
        try:
            value = float(got)
        except (TypeError, ValueError):
            raise CheckFailed(f"{case}: expected a number, got {type(got).__name__}") from None
        if math.isclose(value, expected, rel_tol=1e-6):
            continue
        ratio = value / expected if expected else math.inf
        known = [
            (2.0, "causal attention does half the work: halve the FLOPs when causal is True"),
            (0.5, "two matmuls (Q Kᵀ and P V), each 2·n²·d FLOPs per head: 4·n²·d in all"
             if not causal else "halve only once for causal; the full count is 4·b·h·n²·d"),
            (1e3, "ms is milliseconds: divide by ms · 1e-3 seconds, not by ms"),
            (1e-3, "ms is milliseconds: divide by ms · 1e-3 seconds (not ms · 1e3)"),
            (1e12, "TFLOP/s: divide FLOP/s by 1e12"),
            (1e6, "milliseconds and tera: FLOP / (ms · 1e-3) / 1e12"),
            (1e9, "milliseconds and tera: FLOP / (ms · 1e-3) / 1e12"),
        ]
        hint = next(
            (text for factor, text in known if math.isclose(ratio, factor, rel_tol=1e-3)),
            "FLOPs = 4·batch·heads·n²·head_dim (÷2 if causal); TFLOP/s = FLOPs / (ms·1e-3) / 1e12",
        )
        if hint.startswith("FLOPs") and (batch > 1 or heads > 1):
            for missing in (batch, heads, batch * heads):
                if missing > 1 and math.isclose(ratio * missing, 1.0, rel_tol=1e-3):
                    hint = "every (sequence, head) pair has its own n×n attention: × batch × heads"
        expect_close(value, expected, case, hint, rel=1e-6)


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
    The untouched stub raises NotImplementedError (the interpreter wraps it in an
    InterpreterError and a GPU compile fails on its ``raise``: both are unwrapped here).
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or t.dim() != 4 or t.shape != q.shape:
            raise ValueError(f"{name} must be a tensor of shape (batch, heads, n, head_dim) "
                             f"like q {tuple(q.shape)}")  # fmt: skip
    import triton

    batch, heads, n, head_dim = q.shape
    if head_dim not in (16, 32, 64, 128):
        raise ValueError(f"head_dim must be 16, 32, 64 or 128, got {head_dim}")
    flat = [t.reshape(batch * heads, n, head_dim).contiguous() for t in (q, k, v)]
    out = torch.empty_like(flat[0])
    grid = (triton.cdiv(n, block_m), batch * heads)
    try:
        kernel[grid](
            *flat, out, n, LOG2E / math.sqrt(head_dim),
            CAUSAL=causal, BLOCK_M=block_m, BLOCK_N=block_n, HEAD_DIM=head_dim,
        )  # fmt: skip
    except NotImplementedError:
        raise
    except Exception as error:
        if "NotImplementedError" in f"{type(error).__name__}: {error}":
            raise NotImplementedError from error
        raise
    return out.reshape(batch, heads, n, head_dim)


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
) -> torch.Tensor:
    """The exercise kernel's algorithm in float64 PyTorch, with switches for its usual bugs.

    rescale_acc=False: the accumulator is not multiplied by alpha = 2^(m_old − m_new);
    rescale_sum=False: the running sum is not; keep_max=False: m_i is never updated.
    """
    q, k, v = (t.to(torch.float64) for t in (q, k, v))
    n = q.shape[-2]
    scale_log2 = LOG2E / math.sqrt(q.shape[-1])
    out = torch.empty_like(q)
    for start_m in range(0, n, block_m):
        rows = torch.arange(start_m, min(start_m + block_m, n))
        q_block = q[..., rows, :]
        m_i = torch.full(q_block.shape[:-1], -math.inf, dtype=torch.float64)
        l_i = torch.zeros_like(m_i)
        acc = torch.zeros_like(q_block)
        hi = min(start_m + block_m, n) if causal else n
        for start_n in range(0, hi, block_n):
            cols = torch.arange(start_n, min(start_n + block_n, n))
            s = q_block @ k[..., cols, :].transpose(-2, -1) * scale_log2
            if causal:
                s = s.masked_fill(cols[None, :] > rows[:, None], -math.inf)
            m_new = torch.maximum(m_i, s.amax(-1))
            alpha = torch.exp2(m_i - m_new)
            p = torch.exp2(s - m_new[..., None])
            l_i = (l_i * alpha if rescale_sum else l_i) + p.sum(-1)
            acc = (acc * alpha[..., None] if rescale_acc else acc) + p @ v[..., cols, :]
            if keep_max:
                m_i = m_new
        out[..., rows, :] = acc / l_i[..., None]
    return out


_KERNEL_MISTAKES: list[tuple[dict[str, bool], str]] = [
    ({"rescale_acc": False}, "when the maximum grows, the old accumulator must shrink too: "
     "acc = acc * alpha[:, None] + tl.dot(p, v)"),
    ({"rescale_sum": False}, "when the maximum grows, the old running sum must shrink too: "
     "l_i = l_i * alpha + tl.sum(p, 1)"),
    ({"rescale_acc": False, "rescale_sum": False}, "rescale both running quantities by "
     "alpha = tl.exp2(m_i - m_new) before adding the new block"),
    ({"keep_max": False}, "store the new maximum at the end of the iteration (m_i = m_new), "
     "or every block is weighted as if it were the first"),
]  # fmt: skip


def _recognise_kernel_mistake(
    got: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool
) -> str | None:
    got = got.to(torch.float64).nan_to_num(0.0)
    for knobs, hint in _KERNEL_MISTAKES:
        wrong = _blocked_reference(q, k, v, causal, **knobs)
        if torch.allclose(got, wrong, atol=1e-3, rtol=1e-3):
            return hint
    # The scores are already in log2 units: exp() of them is softmax at the wrong scale.
    q64, k64, v64 = (t.to(torch.float64) for t in (q, k, v))
    scale = LOG2E / math.sqrt(q.shape[-1])
    natural = F.scaled_dot_product_attention(q64, k64, v64, is_causal=causal, scale=scale)
    if torch.allclose(got, natural, atol=1e-3, rtol=1e-3):
        return "the scores are in log2 units (the scale includes log2 e): use tl.exp2, not tl.exp"
    return None


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

    def qkv(n: int, std: float = 1.0, heads: int = 2) -> list[torch.Tensor]:
        shape = (1, heads, n, 16)
        return [torch.randn(shape, generator=generator) * std for _ in range(3)]

    cases = [
        ("n=32 (two key blocks), no mask", qkv(32), False),
        ("n=32, causal", qkv(32), True),
        ("n=40 (the last blocks are partial), no mask", qkv(40), False),
        ("n=40, causal", qkv(40), True),
        ("n=48, large scores (exp2 of them overflows float32)", qkv(48, std=12.0, heads=1), False),
    ]
    for case, (q, k, v), causal in cases:
        got = attention_forward_kernel.through(
            launch_exercise_kernel, *(t.to(device) for t in (q, k, v)), causal=causal
        )
        expected = _blocked_reference(q, k, v, causal)
        if torch.allclose(got.to(torch.float64), expected, atol=tolerance, rtol=tolerance):
            continue
        hint = _recognise_kernel_mistake(got, q, k, v, causal)
        if hint is None and not torch.isfinite(got).all():
            hint = (
                "nan or inf in the output: subtract the new running maximum before tl.exp2 "
                "(p = tl.exp2(s - m_new[:, None])), so every exponent is <= 0"
            )
        error = (got.to(torch.float64) - expected).abs().nan_to_num(math.inf).max().item()
        raise CheckFailed(
            f"{case}: largest difference from the float64 reference {error:.2g}",
            hint or "m_new = max(m_i, row max of s); alpha = exp2(m_i − m_new); "
            "p = exp2(s − m_new); l_i = l_i·alpha + sum(p); acc = acc·alpha + p @ v; m_i = m_new",
        )

"""Tests of the Triton FlashAttention kernels (attn_course.kernels), notebook 04.

On a machine without a GPU everything runs in Triton's interpreter on CPU tensors, which is
slow (every program of the launch grid is a Python loop over NumPy ops), so the sizes are
small but chosen to hit every code path: n smaller than a block, n not a multiple of the
block, n_q != n_k, grouped-query attention, causal masking, each dtype and head_dim.

How close is close enough (the rule of the FlashAttention repository's tests): the exact
answer is the float64 reference on the same (already rounded) inputs. A kernel in a low
dtype cannot match it exactly, but it should be no worse than the *same reference computed
in that low dtype*, the thing a user would otherwise run. So for every output we require

    max|kernel - ref64|  <=  2 · max|ref_lowp - ref64|  +  atol,
    atol = eps(dtype) · max|ref64|

The factor 2 leaves room for a different (blocked, online) summation order. atol is one
unit in the last place at the largest magnitude: rounding the result to the output dtype
alone costs up to half of it, and it keeps the test meaningful when the low-precision
reference happens to be almost exact.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from attn_course.kernels import (
    block_sizes,
    flash_attention,
    flash_attention_backward,
    flash_attention_forward,
    kernel_device,
    kernel_mode,
)
from attn_course.scores import naive_attention

pytestmark = pytest.mark.nb04

DEVICE = kernel_device()
DTYPES = [torch.float32, torch.float16, torch.bfloat16]

# (batch, heads, kv_heads, n_q, n_k, head_dim): what each shape is for. The interpreter's
# blocks are BLOCK_M = 32 query rows and BLOCK_N = 16 keys (forward), see block_sizes().
SHAPES = {
    "odd-n-mha": (1, 2, 2, 37, 37, 32),  # 37 = 32 + 5: a full block and a tail
    "nq>nk-gqa2": (2, 4, 2, 50, 23, 16),  # more queries than keys; 2 query heads per kv head
    "nq<nk-mqa": (1, 4, 1, 23, 50, 64),  # fewer queries than keys; one kv head for 4 heads
    "n<block": (1, 1, 1, 5, 5, 16),  # a single partial block
    "exact-blocks": (2, 2, 2, 64, 64, 16),  # no tail at all
    "d128-tiny": (1, 2, 1, 3, 7, 128),  # the largest head_dim, at tiny n
}


def random_qkv(shape, dtype, seed, requires_grad=False):
    batch, heads, kv_heads, n_q, n_k, head_dim = shape
    generator = torch.Generator().manual_seed(seed)

    def make(*size):
        t = torch.randn(*size, generator=generator).to(dtype=dtype, device=DEVICE)
        return t.requires_grad_(requires_grad)

    return (
        make(batch, heads, n_q, head_dim),
        make(batch, kv_heads, n_k, head_dim),
        make(batch, kv_heads, n_k, head_dim),
    )


def reference(q, k, v, causal, scale=None):
    """Materialising attention (notebook 01's naive_attention), k and v shared across groups."""
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    return naive_attention(q, k, v, causal=causal, scale=scale)


def assert_as_close_as_lowp_reference(name, got, ref_lowp, ref64):
    """The rule of the module docstring: no worse than twice the low-dtype reference's error."""
    error = (got.double() - ref64).abs().max().item()
    baseline = (ref_lowp.double() - ref64).abs().max().item()
    atol = torch.finfo(got.dtype).eps * ref64.abs().max().item()
    if got.dtype == torch.float32:
        # torch's fp32 reference is nearly exact at tiny n, so the 2x term leaves a blocked
        # kernel less than an ulp of slack: one ulp more (measured over 8 seeds of the
        # d128-tiny gradients, the kernel before and after the fp16-overflow fix: up to
        # 3.5x the reference's error, i.e. ~4e-7 absolute).
        atol *= 2
    assert math.isfinite(error), f"{name}: not finite"
    assert error <= 2 * baseline + atol, (
        f"{name}: error {error:.3g} > 2 · {baseline:.3g} (low-dtype reference) + {atol:.3g}"
    )


def test_mode_is_chosen_before_kernels_exist():
    # This machine's test run has no GPU: importing attn_course must have switched
    # Triton to its interpreter and asked for CPU tensors.
    if torch.cuda.is_available():
        assert kernel_mode() == "gpu" and DEVICE.type == "cuda"
    else:
        assert kernel_mode() == "interpreter" and DEVICE == torch.device("cpu")


# --- forward ------------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_forward_matches_float64_reference(shape, dtype, causal):
    q, k, v = random_qkv(shape, dtype, seed=sum(shape))
    out, lse = flash_attention_forward(q, k, v, causal=causal)

    assert out.shape == q.shape and out.dtype == dtype
    assert lse.shape == q.shape[:3] and lse.dtype == torch.float32
    ref64 = reference(q.double(), k.double(), v.double(), causal)
    ref_lowp = reference(q, k, v, causal)
    assert_as_close_as_lowp_reference("out", out, ref_lowp.out, ref64.out)
    # lse is float32 whatever the input dtype, so its low-precision rival is the float32
    # reference on the same inputs.
    lse64 = torch.logsumexp(ref64.scores, dim=-1)
    lse32 = torch.logsumexp(reference(q.float(), k.float(), v.float(), causal).scores, dim=-1)
    assert_as_close_as_lowp_reference("lse", lse, lse32, lse64)


def test_bfloat16_is_real_arithmetic_not_bit_patterns():
    # The interpreter stores bf16 as uint16; a bf16 tl.dot there multiplies the integers
    # (1.0 is 16256, 2.0 is 16384). With q = k = 1 and v = 2 every score is equal:
    # s = scale · (1·1 · 16) = 16 / √16 = 4, P is uniform, out = mean of the 2s = 2 exactly,
    # lse = ln(8 · e⁴) = 4 + ln 8 = 6.0794. Raw-bit arithmetic would be off by orders of
    # magnitude.
    q = torch.ones(1, 1, 3, 16, dtype=torch.bfloat16, device=DEVICE)
    k = torch.ones(1, 1, 8, 16, dtype=torch.bfloat16, device=DEVICE)
    v = torch.full((1, 1, 8, 16), 2.0, dtype=torch.bfloat16, device=DEVICE)
    out, lse = flash_attention_forward(q, k, v)
    assert torch.equal(out, torch.full_like(q, 2.0))
    torch.testing.assert_close(lse, torch.full((1, 1, 3), 4 + math.log(8)), rtol=0, atol=1e-5)


def test_bfloat16_output_is_rounded_to_nearest():
    # The interpreter's fp32 -> bf16 cast truncates; results must be rounded like torch and
    # a GPU do: to nearest, ties to even. bf16 values in [1, 2) are 2⁻⁷ apart. Uniform
    # attention over v = 1 + 2⁻⁷ and 1 + 2·2⁻⁷ gives (exactly, in fp32) 1 + 1.5·2⁻⁷, a tie:
    # to-nearest-even gives 1 + 2·2⁻⁷ (even last bit), truncation 1 + 2⁻⁷.
    step = 2.0**-7
    q = torch.zeros(1, 1, 1, 16, dtype=torch.bfloat16, device=DEVICE)  # uniform attention
    k = torch.zeros(1, 1, 2, 16, dtype=torch.bfloat16, device=DEVICE)
    v = torch.empty(1, 1, 2, 16, dtype=torch.bfloat16, device=DEVICE)
    v[..., 0, :], v[..., 1, :] = 1 + step, 1 + 2 * step
    out, _ = flash_attention_forward(q, k, v)
    assert torch.equal(out, torch.full_like(out, 1 + 2 * step))


def test_causal_first_query_sees_only_first_key():
    # Query 0 attends key 0 alone: P[0] = (1, 0, 0, ...), so out[0] = v[0] exactly.
    q, k, v = random_qkv(SHAPES["odd-n-mha"], torch.float32, seed=1)
    out, _ = flash_attention_forward(q, k, v, causal=True)
    torch.testing.assert_close(out[:, :, 0], v[:, :, 0], rtol=0, atol=0)


@pytest.mark.parametrize("n_q, n_k", [(50, 20), (20, 50), (1, 33)])
def test_causal_rows_are_finite_even_with_extreme_scores(n_q, n_k):
    # scale = 100 makes the scores ~±1000: exp overflows float32 if the max were not
    # subtracted, and masked entries are -inf. Top-left causal alignment: rows i >= n_k see
    # every key, row 0 sees key 0 only; no row may be NaN.
    q, k, v = random_qkv((1, 2, 2, n_q, n_k, 16), torch.float32, seed=n_q + n_k)
    out, lse = flash_attention_forward(q, k, v, causal=True, scale=100.0)
    assert torch.isfinite(out).all() and torch.isfinite(lse).all()
    # fp32 scores of size ~1000 carry absolute errors ~1000 · 6e-8 = 6e-5 into the exponent,
    # so even the fp32 reference is only ~1e-4 accurate here: compare as everywhere else.
    ref64 = reference(q.double(), k.double(), v.double(), causal=True, scale=100.0).out
    ref32 = reference(q, k, v, causal=True, scale=100.0).out
    assert_as_close_as_lowp_reference("out", out, ref32, ref64)


def test_causal_query_never_reads_future_keys():
    # Poison keys and values from position `cut` on with huge numbers: rows before `cut`
    # must not change by a single bit (masked scores give weight exactly 0), rows after
    # must change (so the poison was real).
    q, k, v = random_qkv((1, 2, 2, 48, 48, 16), torch.float32, seed=7)
    clean, _ = flash_attention_forward(q, k, v, causal=True)
    cut = 21  # inside a key block: the diagonal-block mask is what protects rows 0..20
    k[:, :, cut:] = 1e4
    v[:, :, cut:] = -1e4
    poisoned, _ = flash_attention_forward(q, k, v, causal=True)
    assert torch.equal(poisoned[:, :, :cut], clean[:, :, :cut])
    assert not torch.allclose(poisoned[:, :, cut:], clean[:, :, cut:])


@pytest.mark.filterwarnings("ignore:All-NaN slice:RuntimeWarning")  # the poisoned rows, on purpose
def test_causal_skips_future_key_blocks():
    # The first query block (rows 0 .. BLOCK_M - 1) must never *load* keys >= BLOCK_M: put
    # NaN there. Masking alone would not save it (NaN · 0 = NaN in P·V); only the shorter
    # loop does. Rows past the first block do load them and become NaN.
    largest_block_m = max(block_m for block_m, _ in block_sizes("forward"))
    smallest_block_m = min(block_m for block_m, _ in block_sizes("forward"))
    n = largest_block_m + 16
    q, k, v = random_qkv((1, 1, 1, n, n, 16), torch.float32, seed=3)
    k[:, :, largest_block_m:] = float("nan")
    v[:, :, largest_block_m:] = float("nan")
    out, _ = flash_attention_forward(q, k, v, causal=True)
    assert torch.isfinite(out[:, :, :smallest_block_m]).all()
    assert torch.isnan(out[:, :, largest_block_m:]).all()


def test_grouped_query_attention_equals_repeated_heads():
    # kv_heads = 1 serving 4 query heads must give exactly what 4 copies of that kv head
    # give: the kernel only changes which memory it reads.
    q, k, v = random_qkv((1, 4, 1, 19, 19, 32), torch.float16, seed=5)
    shared, _ = flash_attention_forward(q, k, v)
    copied, _ = flash_attention_forward(q, k.expand(-1, 4, -1, -1), v.expand(-1, 4, -1, -1))
    assert torch.equal(shared, copied)


def test_custom_scale_and_non_contiguous_inputs():
    # (batch, n, heads, d) memory viewed as (batch, heads, n, d) is not contiguous, and a
    # transposed last dim has stride != 1: both are copied to contiguous memory first.
    q, k, v = random_qkv((2, 3, 3, 17, 17, 16), torch.float32, seed=11)
    q_strided = q.transpose(1, 2).contiguous().transpose(1, 2)
    k_last_dim_strided = k.transpose(-1, -2).contiguous().transpose(-1, -2)
    assert k_last_dim_strided.stride(-1) != 1
    out, _ = flash_attention_forward(q_strided, k_last_dim_strided, v, scale=0.3)
    ref = reference(q.double(), k.double(), v.double(), causal=False, scale=0.3).out
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-6)


# --- backward -----------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_gradients_match_float64_autograd(shape, dtype, causal):
    q, k, v = random_qkv(shape, dtype, seed=sum(shape) + 1, requires_grad=True)
    grad_out = torch.randn(q.shape, generator=torch.Generator().manual_seed(2)).to(dtype)

    out = flash_attention(q, k, v, causal=causal)
    got = torch.autograd.grad(out, (q, k, v), grad_out)

    def autograd_reference(dtype_ref):
        inputs = [t.detach().to(dtype_ref).requires_grad_() for t in (q, k, v)]
        ref_out = reference(*inputs, causal).out
        return torch.autograd.grad(ref_out, inputs, grad_out.to(dtype_ref))

    grads64, grads_lowp = autograd_reference(torch.float64), autograd_reference(dtype)
    for name, g, g_lowp, g64 in zip(("dq", "dk", "dv"), got, grads_lowp, grads64, strict=True):
        # dk and dv have k's shape: for GQA they sum over the query heads of a group.
        assert g.shape == g64.shape and g.dtype == dtype
        assert_as_close_as_lowp_reference(name, g, g_lowp, g64)


def test_backward_function_matches_autograd_function():
    # The plain functions the notebook walks through give what autograd gives.
    q, k, v = random_qkv((1, 2, 1, 21, 30, 32), torch.float32, seed=13, requires_grad=True)
    grad_out = torch.randn(q.shape, generator=torch.Generator().manual_seed(4))
    out, lse = flash_attention_forward(q.detach(), k.detach(), v.detach(), causal=True)
    by_hand = flash_attention_backward(grad_out, q, k, v, out, lse, True, None)
    by_autograd = torch.autograd.grad(flash_attention(q, k, v, causal=True), (q, k, v), grad_out)
    for hand, auto in zip(by_hand, by_autograd, strict=True):
        assert torch.equal(hand, auto)


def test_gradient_of_a_sum_with_broadcast_grad_out():
    # out.sum() hands backward a grad_out with stride 0 (one scalar broadcast): it must be
    # made contiguous, not read as garbage. d(sum out)/dv_j = Σ_i P_ij: the column sums of P.
    q, k, v = random_qkv((1, 1, 1, 9, 9, 16), torch.float32, seed=17, requires_grad=True)
    flash_attention(q, k, v, causal=True).sum().backward()
    probs = reference(q.detach().double(), k.detach().double(), v.detach().double(), True).probs
    column_sums = probs.sum(dim=-2)  # (1, 1, n_k)
    torch.testing.assert_close(
        v.grad.double(), column_sums[..., None].expand_as(v), atol=1e-6, rtol=0
    )


# --- head dims that are not powers of two ---------------------------------------------------


def _grads(fn, inputs, grad_out, dtype):
    """(out, (dq, dk, dv)) of fn on copies of ``inputs`` in ``dtype``."""
    leaves = [t.detach().to(dtype).requires_grad_() for t in inputs]
    out = fn(*leaves)
    return out, torch.autograd.grad(out, leaves, grad_out.to(dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("head_dim", [40, 96])  # padded to 64 and 128 inside the kernels
def test_padded_head_dims_match_float64(head_dim, dtype):
    # GQA, n_q != n_k, causal, n not a multiple of a block: the padding columns must be
    # read as 0 (else q·k and D change) and never written (else the next row is clobbered).
    q, k, v = random_qkv((1, 2, 1, 19, 21, head_dim), dtype, seed=head_dim)
    grad_out = torch.randn(q.shape, generator=torch.Generator().manual_seed(6)).to(dtype)

    def ref(*inputs):
        return reference(*inputs, causal=True).out

    out, got = _grads(lambda *t: flash_attention(*t, causal=True), (q, k, v), grad_out, dtype)
    out64, grads64 = _grads(ref, (q, k, v), grad_out, torch.float64)
    out_lowp, grads_lowp = _grads(ref, (q, k, v), grad_out, dtype)
    assert_as_close_as_lowp_reference("out", out, out_lowp, out64)
    for name, g, g_lowp, g64 in zip(("dq", "dk", "dv"), got, grads_lowp, grads64, strict=True):
        assert_as_close_as_lowp_reference(name, g, g_lowp, g64)


# --- bottom-right causal alignment ----------------------------------------------------------


def aligned_reference(q, k, v, alignment):
    """Attention with query i seeing keys j <= i + d, d = 0 (top_left) or n_k - n_q
    (bottom_right), in q's dtype; a row that sees no key gives 0 (and gradient 0).

    Masked scores are set to the dtype's most negative finite number, not -inf, so a row
    with no visible key has a finite (uniform) softmax that the row mask then zeroes: its
    gradients are 0, not NaN, as the kernel's are.
    """
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    n_q, n_k = q.shape[-2], k.shape[-2]
    offset = n_k - n_q if alignment == "bottom_right" else 0
    visible = torch.ones(n_q, n_k, dtype=torch.bool).tril(diagonal=offset)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~visible, torch.finfo(scores.dtype).min)
    probs = scores.softmax(dim=-1) * visible.any(dim=-1, keepdim=True)
    return probs @ v


# (n_q, n_k): offsets n_k - n_q = 25 and -25 are not multiples of any block size, so the
# unmasked / straddling / skipped key-block boundaries fall inside blocks.
@pytest.mark.parametrize(
    "n_q, n_k", [(20, 45), (45, 20), (37, 37)], ids=["nq<nk", "nq>nk", "nq=nk"]
)
def test_bottom_right_causal_matches_float64(n_q, n_k):
    q, k, v = random_qkv((1, 2, 1, n_q, n_k, 16), torch.float32, seed=n_q * n_k)
    grad_out = torch.randn(q.shape, generator=torch.Generator().manual_seed(8))

    def ours(*t):
        return flash_attention(*t, causal="bottom_right")

    def ref(*t):
        return aligned_reference(*t, "bottom_right")

    out, got = _grads(ours, (q, k, v), grad_out, torch.float32)
    out64, grads64 = _grads(ref, (q, k, v), grad_out, torch.float64)
    out32, grads32 = _grads(ref, (q, k, v), grad_out, torch.float32)
    assert_as_close_as_lowp_reference("out", out, out32, out64)
    for name, g, g32, g64 in zip(("dq", "dk", "dv"), got, grads32, grads64, strict=True):
        assert torch.isfinite(g).all(), f"{name} not finite"
        assert_as_close_as_lowp_reference(name, g, g32, g64)

    blind = max(n_q - n_k, 0)  # rows that see no key: output 0, lse -inf, dq 0, exactly
    _, lse = flash_attention_forward(q, k, v, causal="bottom_right")
    assert torch.equal(out[:, :, :blind], torch.zeros_like(out[:, :, :blind]))
    assert torch.equal(got[0][:, :, :blind], torch.zeros_like(got[0][:, :, :blind]))
    assert (lse[:, :, :blind] == float("-inf")).all() and torch.isfinite(lse[:, :, blind:]).all()

    if n_q <= n_k:  # torch's own bottom-right mask (it gives NaN rows when n_q > n_k)
        # Imported here: torch.nn.attention.bias imports triton, which must come after
        # attn_course.kernels has chosen the interpreter (test_late_import_of_triton...).
        from torch.nn.attention.bias import causal_lower_right

        sdpa = F.scaled_dot_product_attention(
            q.double(), k.double().repeat_interleave(2, 1), v.double().repeat_interleave(2, 1),
            attn_mask=causal_lower_right(n_q, n_k),
        )  # fmt: skip
        torch.testing.assert_close(out.double(), sdpa, rtol=0, atol=1e-5)
    if n_q == n_k:  # both alignments are one mask
        assert torch.equal(out, flash_attention(q, k, v, causal="top_left"))
        assert torch.equal(out, flash_attention(q, k, v, causal=True))


def test_top_left_string_is_causal_true():
    q, k, v = random_qkv((1, 1, 1, 20, 33, 16), torch.float32, seed=21)
    by_name, _ = flash_attention_forward(q, k, v, causal="top_left")
    by_bool, _ = flash_attention_forward(q, k, v, causal=True)
    assert torch.equal(by_name, by_bool)


# --- backward at large magnitudes -----------------------------------------------------------

# q, k ~1e4: scores ~1e8 and a saturated softmax (P one-hot); before the fix the fp16
# backward's dK and dV held inf (exp2(s - lse) came out 2^32 > 65504) and bf16 lost rows.
# v ~1e4: dP = dO Vᵀ ~1e5, so dS cast to fp16 overflows unless scale · dS is cast.
LARGE = {"scores": ("q", "k"), "values": ("v",)}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # SDPA's own fp16 rounding, not ours
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("large", LARGE.values(), ids=LARGE.keys())
def test_backward_is_finite_and_as_good_as_sdpa_at_large_magnitudes(large, dtype):
    generator = torch.Generator().manual_seed(0)
    t = {name: torch.randn(1, 1, 17, 16, generator=generator) for name in ("q", "k", "v", "do")}
    q, k, v, grad_out = ((t[n] * (1e4 if n in large else 1.0)).to(dtype) for n in t)

    _, got = _grads(flash_attention, (q, k, v), grad_out, dtype)
    _, sdpa = _grads(F.scaled_dot_product_attention, (q, k, v), grad_out, dtype)
    _, exact = _grads(F.scaled_dot_product_attention, (q, k, v), grad_out, torch.float64)
    for name, g, g_sdpa, g64 in zip(("dq", "dk", "dv"), got, sdpa, exact, strict=True):
        assert torch.isfinite(g).all(), f"{name}: {int((~torch.isfinite(g)).sum())} not finite"
        error = (g.double() - g64).abs().max().item()
        sdpa_error = (g_sdpa.double() - g64).abs().max().item()
        # Up to 3x SDPA's error (measured: <= 1.0x in fp16, 2.0x in bf16): the FA-2
        # backward takes D = rowsum(dO ∘ O) from the rounded output, so the cancellation
        # dP - D in a saturated row carries one rounding more than SDPA's Σ P ∘ dP.
        atol = torch.finfo(dtype).eps * g64.abs().max().item()
        assert error <= 3 * sdpa_error + atol, f"{name}: {error:.3g} vs SDPA {sdpa_error:.3g}"


# --- validation ---------------------------------------------------------------------------


def _inputs(**overrides):
    args = {
        "q": torch.randn(1, 4, 8, 16),
        "k": torch.randn(1, 2, 8, 16),
        "v": torch.randn(1, 2, 8, 16),
        "causal": False,
        "scale": None,
    }
    args.update(overrides)
    return args


BAD_INPUTS = {
    "q-not-tensor": (_inputs(q=[[1.0]]), "q must be a torch.Tensor"),
    "q-rank-3": (_inputs(q=torch.randn(4, 8, 16)), "q must have shape"),
    "q-float64": (_inputs(q=torch.randn(1, 4, 8, 16, dtype=torch.float64)), "q must have dtype"),
    "k-int": (_inputs(k=torch.ones(1, 2, 8, 16, dtype=torch.int32)), "k must have dtype"),
    "mixed-dtypes": (_inputs(k=torch.randn(1, 2, 8, 16).half()), "k has dtype"),
    "q-n-zero": (_inputs(q=torch.randn(1, 4, 0, 16)), "q needs batch, heads, n"),
    "k-v-shapes": (_inputs(v=torch.randn(1, 2, 9, 16)), "k and v must have the same shape"),
    "batch": (_inputs(k=torch.randn(2, 2, 8, 16), v=torch.randn(2, 2, 8, 16)), "batch"),
    "head_dim-mismatch": (
        _inputs(k=torch.randn(1, 2, 8, 32), v=torch.randn(1, 2, 8, 32)),
        "k and v have head_dim 32 but q has 16",
    ),
    "kv_heads": (_inputs(k=torch.randn(1, 3, 8, 16), v=torch.randn(1, 3, 8, 16)), "kv_heads"),
    "head_dim-8": (
        _inputs(q=torch.randn(1, 4, 8, 8), k=torch.randn(1, 2, 8, 8), v=torch.randn(1, 2, 8, 8)),
        r"head_dim \(last dim of q, k, v\) must be a multiple of 8 from 16 to 256",
    ),
    "head_dim-44": (
        _inputs(q=torch.randn(1, 4, 8, 44), k=torch.randn(1, 2, 8, 44), v=torch.randn(1, 2, 8, 44)),
        "must be a multiple of 8 from 16 to 256 .*got 44",
    ),
    "head_dim-264": (
        _inputs(**{name: torch.randn(1, 1, 2, 264) for name in ("q", "k", "v")}),
        "must be a multiple of 8 from 16 to 256 .*got 264",
    ),
    "causal-int": (_inputs(causal=1), "causal must be False, True"),
    "causal-unknown-alignment": (
        _inputs(causal="lower_right"),
        "causal must be False, True .*'bottom_right', got 'lower_right'",
    ),
    "scale-zero": (_inputs(scale=0.0), "scale must be"),
    "scale-negative": (_inputs(scale=-0.5), "scale must be"),
    "scale-inf": (_inputs(scale=float("inf")), "scale must be"),
    "scale-nan": (_inputs(scale=float("nan")), "scale must be"),
    "scale-bool": (_inputs(scale=True), "scale must be"),
    "scale-str": (_inputs(scale="0.1"), "scale must be"),
    "mixed-devices": (_inputs(k=torch.randn(1, 2, 8, 16, device="meta")), "k is on meta"),
}


@pytest.mark.parametrize("entry_point", [flash_attention, flash_attention_forward])
@pytest.mark.parametrize("args, message", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_is_a_value_error_naming_the_parameter(entry_point, args, message):
    with pytest.raises(ValueError, match=message):
        entry_point(**args)


def test_wrong_device_for_the_mode_says_why():
    # In the interpreter the kernels need CPU tensors, on a GPU CUDA tensors; a "meta"
    # tensor is neither, so it is refused with the reason.
    args = {
        name: t.to("meta") if isinstance(t, torch.Tensor) else t for name, t in _inputs().items()
    }
    expected = "interpreter" if kernel_mode() == "interpreter" else "compiled for the GPU"
    with pytest.raises(ValueError, match=f"q is on meta but must be on {DEVICE.type}.*{expected}"):
        flash_attention(**args)


def test_backward_checks_its_extra_inputs():
    q, k, v = _inputs()["q"], _inputs()["k"], _inputs()["v"]
    out, lse = flash_attention_forward(q, k, v)
    with pytest.raises(ValueError, match="do must have the shape of q"):
        flash_attention_backward(out[:, :, :4], q, k, v, out, lse, False, None)
    with pytest.raises(ValueError, match="lse must be float32"):
        flash_attention_backward(out, q, k, v, out, lse.double(), False, None)
    with pytest.raises(ValueError, match="lse must be float32 of shape"):
        flash_attention_backward(out, q, k, v, out, lse[:, :, :3], False, None)
    with pytest.raises(ValueError, match="out has dtype"):
        flash_attention_backward(out, q, k, v, out.half(), lse, False, None)


def test_interpreter_recomputes_scores_on_the_forwards_tiles():
    # The backward rebuilds P = exp(s - lse) from the forward's lse, so its s must be the
    # forward's bit for bit; NumPy rounds a float32 matmul differently for each shape, so
    # in the interpreter the dK/dV and dQ tiles have the forward's (BLOCK_M, BLOCK_N).
    if kernel_mode() == "interpreter":
        assert block_sizes("dkdv") == block_sizes("dq") == block_sizes("forward")
    with pytest.raises(ValueError, match="kernel must be one of"):
        block_sizes("sideways")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the interpreter is chosen only without CUDA")
def test_late_import_of_triton_is_reported():
    """Importing triton first leaves its library functions compiled: warn, don't fail later."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    code = "import triton, attn_course.kernels"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "triton was imported before attn_course," in done.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="the interpreter is chosen only without CUDA")
def test_kernels_work_after_the_profiler_imported_triton():
    """Measuring memory first (torch's profiler imports triton) must not break the kernels."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    code = (
        "import torch\n"
        "from attn_course.measure import measure_peak_bytes\n"
        "measure_peak_bytes(lambda: torch.ones(1000))\n"
        "from attn_course.kernels import flash_attention\n"
        "q = torch.randn(1, 1, 20, 16)\n"
        "ref = torch.nn.functional.scaled_dot_product_attention(q, q, q)\n"
        "assert (flash_attention(q, q, q) - ref).abs().max() < 1e-5\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_checks_watch_the_cost_formulas_without_importing_the_benchmarks():
    """Every check resolves its forbidden names when it runs: none may be in the benchmarks.

    The FLOP formulas the checks of notebooks 02 and 04 forbid live in attn_course.cost;
    grading must not import the benchmark harness (and its figures) to watch them.
    """
    code = (
        "import sys\n"
        "from attn_course.checks import all_exercises\n"
        "from attn_course.grading.answers import observe_calls\n"
        "for exercise in all_exercises():\n"
        "    with observe_calls(exercise.forbidden):\n"
        "        pass\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('attn_course.bench'))\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

"""Chunked causal linear attention in Triton (notebook 05): the forward pass.

Causal linear attention (see :mod:`attn_course.linear`) is

    out_i = φ(q_i) S_i / φ(q_i) · z_i,     S_i = Σ_{j<=i} φ(k_j)ᵀ v_j,   z_i = Σ_{j<=i} φ(k_j)

The kernel computes it chunk by chunk. One *program* owns one (batch, head) and walks
along the sequence in chunks of BLOCK_C tokens, carrying the state in registers:

    S    the (m × d_v) sum φ(K)ᵀ V over all earlier chunks    (fp32)
    z    the (m,) sum of φ(K) over all earlier chunks         (fp32)

For chunk c: A = tril(φ(Q_c) φ(K_c)ᵀ) (BLOCK_C × BLOCK_C, masked to j <= i),
out_c = (φ(Q_c) S + A V_c) / (φ(Q_c) z + rowsum(A)), then S += φ(K_c)ᵀ V_c and
z += colsum(φ(K_c)). Nothing of size n × n exists anywhere, and the state never leaves
the chip: the whole sequence is one pass over q, k, v, O(n · (BLOCK_C + m) · d_v) work.

Launch grid::

    grid = (batch * heads,)
    tl.program_id(0) -> which (batch, head): base offset = pid · n · features

The loop over chunks is sequential *inside* a program, so parallelism comes from batch ·
heads only: fine for a course and for training-size batches; production kernels (e.g.
flash-linear-attention) also split the value columns or the sequence across programs.

Feature maps: ``feature_map="elu"`` applies φ(x) = elu(x) + 1 to q and k inside the kernel
(after loading, in fp32); ``feature_map="none"`` takes φ(q), φ(k) as given (they must be
non-negative; not checked on the device, to avoid an extra pass).

dtypes: as in :mod:`attn_course.kernels.flash` (read its "Two facts"): in the interpreter,
bf16 tiles are upcast to fp32 right after loading (``UPCAST``) because the interpreter
multiplies bf16 bit patterns as integers, and the result is stored in an fp32 buffer that
torch rounds to bf16 on the host. All arithmetic on the state and the normaliser is fp32.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from attn_course.kernels.tiles import INTERPRETED, dtype_flags, load_rows, result_buffer, store_rows
from attn_course.kernels.validate import (
    ALLOWED_HEAD_DIMS,
    check_same_device,
    check_same_dtype,
    check_tensor,
)

__all__ = ["FEATURE_MAPS", "linear_attention_forward", "validate_linear_inputs"]

#: ``feature_map`` values: "none" (φ(q), φ(k) passed in) or "elu" (elu + 1 in the kernel).
FEATURE_MAPS = ("none", "elu")

# The chunk length. tl.dot needs every dimension >= 16; 16 keeps the interpreter's tests
# fast and, with n = 40, gives chunks 16, 16 and a ragged 8.
_INTERPRETER_CHUNK = 16
_GPU_CHUNK = 64


def validate_linear_inputs(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, feature_map: object, chunk_size: object
) -> int:
    """Check the kernel's inputs before launch; return the chunk size to use.

    Rules: q, k are (batch, heads, n, m) and v is (batch, heads, n, d_v), all of one dtype
    (float32/float16/bfloat16) on the kernel's device; m and d_v in
    :data:`~attn_course.kernels.validate.ALLOWED_HEAD_DIMS`; feature_map in
    :data:`FEATURE_MAPS`; chunk_size None (the mode's default) or a power of two in
    [16, 128].
    """
    named = {
        "q": check_tensor("q", q),
        "k": check_tensor("k", k),
        "v": check_tensor("v", v),
    }
    check_same_dtype(named)
    check_same_device(named)
    if q.shape != k.shape:
        raise ValueError(
            f"q and k must have one shape (batch, heads, n, features), got {tuple(q.shape)} "
            f"and {tuple(k.shape)}"
        )
    if v.shape[:3] != q.shape[:3]:
        raise ValueError(
            f"v must have the batch, heads and n of q {tuple(q.shape[:3])}, got {tuple(v.shape)}"
        )
    for name, size in (("features (last dim of q and k)", q.shape[3]), ("d_v", v.shape[3])):
        if size not in ALLOWED_HEAD_DIMS:
            raise ValueError(f"{name} must be one of {ALLOWED_HEAD_DIMS}, got {size}")
    if feature_map not in FEATURE_MAPS:
        raise ValueError(f"feature_map must be one of {FEATURE_MAPS}, got {feature_map!r}")
    if chunk_size is None:
        return _INTERPRETER_CHUNK if INTERPRETED else _GPU_CHUNK
    if chunk_size not in (16, 32, 64, 128) or isinstance(chunk_size, bool):
        raise ValueError(f"chunk_size must be None or one of 16, 32, 64, 128, got {chunk_size!r}")
    return int(chunk_size)


@triton.jit
def _elu_plus_one(x):
    """φ(x) = elu(x) + 1 = x + 1 for x > 0, exp(x) otherwise; computed in fp32."""
    x = x.to(tl.float32)
    return tl.where(x > 0, x + 1.0, tl.exp(tl.minimum(x, 0.0)))


@triton.jit
def chunked_forward_kernel(
    Q, K, V, Out,
    n,
    FEATURES: tl.constexpr, VALUE_DIM: tl.constexpr, BLOCK_C: tl.constexpr,
    APPLY_ELU: tl.constexpr, UPCAST: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """One program = the whole sequence of one (batch, head). Grid (batch · heads,)."""
    batch_head = tl.program_id(0).to(tl.int64)  # int64: no overflow on huge tensors
    q_base = Q + batch_head * n * FEATURES
    k_base = K + batch_head * n * FEATURES
    v_base = V + batch_head * n * VALUE_DIM
    out_base = Out + batch_head * n * VALUE_DIM

    state = tl.zeros([FEATURES, VALUE_DIM], dtype=tl.float32)  # S = Σ φ(k)ᵀ v so far
    normaliser = tl.zeros([FEATURES], dtype=tl.float32)  # z = Σ φ(k) so far
    offsets = tl.arange(0, BLOCK_C)
    for start in range(0, n, BLOCK_C):
        rows = start + offsets
        in_sequence = rows < n
        q = load_rows(q_base, rows, n, FEATURES, UPCAST)
        k = load_rows(k_base, rows, n, FEATURES, UPCAST)
        v = load_rows(v_base, rows, n, VALUE_DIM, UPCAST)
        if APPLY_ELU:
            q = _elu_plus_one(q)
            # Rows past n were loaded as 0, and elu(0) + 1 = 1: zero them, or they would
            # be added to the state (harmless for this last chunk's outputs, which never
            # see them past the causal mask, but wrong for the normaliser's colsum).
            k = tl.where(in_sequence[:, None], _elu_plus_one(k), 0.0)
        q = q.to(tl.float32)
        k = k.to(tl.float32)

        # Inside the chunk: the causal (BLOCK_C × BLOCK_C) weights, j <= i.
        weights = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION)
        weights = tl.where(offsets[None, :] <= offsets[:, None], weights, 0.0)
        numerator = tl.dot(weights, v.to(tl.float32), input_precision=DOT_PRECISION)
        # Earlier chunks, through the state: φ(Q_c) S and φ(Q_c) · z.
        numerator = tl.dot(q, state, numerator, input_precision=DOT_PRECISION)
        denominator = tl.sum(weights, 1) + tl.sum(q * normaliser[None, :], 1)
        # φ >= 0, so the denominator is 0 only if every weight is 0: output 0, never nan.
        safe = tl.where(denominator == 0.0, 1.0, denominator)
        out = numerator / safe[:, None]
        store_rows(out_base, rows, n, out, VALUE_DIM)

        # Fold this chunk into the state for the chunks after it.
        state = tl.dot(tl.trans(k), v.to(tl.float32), state, input_precision=DOT_PRECISION)
        normaliser += tl.sum(k, 0)


def linear_attention_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    feature_map: str = "none",
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Causal linear attention with the Triton kernel: out (batch, heads, n, d_v).

    q, k: (batch, heads, n, m) — the features φ(q), φ(k) themselves when
    ``feature_map="none"``, raw q, k when ``feature_map="elu"`` (φ = elu + 1 in the
    kernel); v: (batch, heads, n, d_v). float32, float16 or bfloat16, all alike, on
    :func:`~attn_course.kernels.kernel_device`; m, d_v in {16, 32, 64, 128}; any n >= 1.
    Output in the inputs' dtype, accumulated in fp32. Matches
    :func:`attn_course.linear.causal_linear_attention_recurrent` up to rounding.
    """
    chunk = validate_linear_inputs(q, k, v, feature_map, chunk_size)
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    batch, heads, n, features = q.shape
    out = result_buffer(q, (batch, heads, n, v.shape[3]))
    chunked_forward_kernel[(batch * heads,)](
        q, k, v, out, n,
        FEATURES=features, VALUE_DIM=v.shape[3], BLOCK_C=chunk,
        APPLY_ELU=feature_map == "elu", **dtype_flags(q.dtype),
    )  # fmt: skip
    return out.to(q.dtype)

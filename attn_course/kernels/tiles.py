"""What the course's Triton kernels share: log2(e), tile loads and stores, the online softmax.

Each kernel module (:mod:`~attn_course.kernels.flash`, :mod:`~attn_course.kernels.sparse`,
:mod:`~attn_course.kernels.linear`, :mod:`~attn_course.kernels.paged`) builds on these
pieces; read :mod:`attn_course.kernels.flash`'s docstring for why each one is the way it is.

Host side (plain Python, run before a launch):

* :data:`LOG2E` = log2(e) = 1.4426950408889634, so that exp(x) = exp2(x · log2 e).
* :func:`dtype_flags` ``(dtype) -> {"UPCAST": ..., "DOT_PRECISION": ...}``: the two
  dtype-dependent constexprs every tiled kernel takes ("Two facts" in flash.py);
  :func:`result_buffer`: where such a kernel stores a result (fp32 when it upcasts).

Device side (``@triton.jit``, called from inside kernels):

* :func:`load_tile` / :func:`store_tile`: a (rows x BLOCK_D) tile from/to memory, masked
  past the end of the sequence (rows >= n) and past the real head_dim; :func:`load_rows` /
  :func:`store_rows`: the same when head_dim is a power of two (no padded columns).
* :func:`kv_batch_head`: which (batch, key/value head) a (batch, query head) reads under
  grouped-query attention.
* :func:`exp_via_exp2`: e^x as the GPU's native exp2, exp2(x · log2 e).
* :func:`online_softmax_step`: fold one tile of scores and its values into the running
  (acc, row_sum, row_max) of FlashAttention's online softmax; :func:`finish_rows`: the
  output acc / row_sum and the logsumexp at the end.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from attn_course.triton_mode import kernel_mode

__all__ = [
    "INTERPRETED",
    "LOG2E",
    "dtype_flags",
    "exp_via_exp2",
    "finish_rows",
    "kv_batch_head",
    "load_rows",
    "load_tile",
    "online_softmax_step",
    "result_buffer",
    "store_rows",
    "store_tile",
]

#: log2(e): exp(x) = exp2(x · log2 e). A ``tl.constexpr`` object because Triton 3.9 lets a
#: ``@triton.jit`` function read a global only when it is one: the annotation
#: ``LOG2E: tl.constexpr = ...`` runs in the interpreter but the GPU compiler refuses it
#: ("Cannot access global variable"). Host code reads the float as ``LOG2E.value``.
LOG2E = tl.constexpr(math.log2(math.e))

#: True when the kernels run in Triton's CPU interpreter (:mod:`attn_course.triton_mode`).
INTERPRETED = kernel_mode() == "interpreter"


# --- host side ----------------------------------------------------------------------------


def dtype_flags(dtype: torch.dtype, *, interpreted: bool = INTERPRETED) -> dict[str, object]:
    """The dtype-dependent constexprs of a tiled kernel: ``UPCAST`` and ``DOT_PRECISION``.

    UPCAST: bf16 tiles are converted to fp32 right after loading, in the interpreter only
    (it multiplies bf16 bit patterns as integers); ``interpreted=False`` gives a GPU's flags
    in any mode (the compile check). DOT_PRECISION: "ieee" (exact fp32
    products) for float32 tiles, which a GPU would otherwise multiply in TF32; "tf32" is
    Triton's default, i.e. "no change" for 16-bit tiles, which tensor cores multiply exactly.
    See "Two facts" in :mod:`attn_course.kernels.flash`.
    """
    return {
        "UPCAST": interpreted and dtype == torch.bfloat16,
        "DOT_PRECISION": "ieee" if dtype == torch.float32 else "tf32",
    }


def result_buffer(like: torch.Tensor, shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """An empty tensor (``shape``, default ``like.shape``) on like's device for a kernel's result.

    Its dtype is like's, except float32 when :func:`dtype_flags` upcasts (bf16 in the
    interpreter): the kernel stores fp32 and torch rounds to bf16 on the host.
    """
    upcast = dtype_flags(like.dtype)["UPCAST"]
    return torch.empty(
        like.shape if shape is None else shape,
        dtype=torch.float32 if upcast else like.dtype,
        device=like.device,
    )


# --- device side: tiles -------------------------------------------------------------------


@triton.jit
def load_tile(base, rows, n, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, UPCAST: tl.constexpr):
    """Load the (len(rows), BLOCK_D) tile whose row r starts at base + r · HEAD_DIM.

    Rows >= n (a block sticking out past the end of the sequence) and the padding columns
    HEAD_DIM .. BLOCK_D - 1 read as zeros. Block shapes must be powers of two, so a head_dim
    like 40 or 96 lives in a tile of BLOCK_D = 64 or 128 columns; zero columns add nothing
    to q·k, and the padded columns of p @ v come out 0 and are never stored.
    """
    dims = tl.arange(0, BLOCK_D)
    offsets = rows[:, None] * HEAD_DIM + dims[None, :]
    mask = (rows < n)[:, None]
    if BLOCK_D != HEAD_DIM:  # decided at compile time: powers of two pay no column mask
        mask = mask & (dims < HEAD_DIM)[None, :]
    tile = tl.load(base + offsets, mask=mask, other=0.0)
    if UPCAST:  # interpreter + bf16: see dtype_flags
        tile = tile.to(tl.float32)
    return tile


@triton.jit
def store_tile(base, rows, n, tile, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr):
    """Store the rows < n and columns < HEAD_DIM of ``tile`` (fp32) in base's dtype."""
    dims = tl.arange(0, BLOCK_D)
    offsets = rows[:, None] * HEAD_DIM + dims[None, :]
    mask = (rows < n)[:, None]
    if BLOCK_D != HEAD_DIM:
        mask = mask & (dims < HEAD_DIM)[None, :]
    tl.store(base + offsets, tile.to(base.dtype.element_ty), mask=mask)


@triton.jit
def load_rows(base, rows, n, HEAD_DIM: tl.constexpr, UPCAST: tl.constexpr):
    """:func:`load_tile` without padding, for kernels whose head_dim is a power of two."""
    return load_tile(base, rows, n, HEAD_DIM, HEAD_DIM, UPCAST)


@triton.jit
def store_rows(base, rows, n, tile, HEAD_DIM: tl.constexpr):
    """:func:`store_tile` without padding, for kernels whose head_dim is a power of two."""
    store_tile(base, rows, n, tile, HEAD_DIM, HEAD_DIM)


@triton.jit
def kv_batch_head(batch_head, heads, group_size):
    """The (batch, key/value head) index that the (batch, query head) ``batch_head`` reads.

    Grouped-query attention: query head h reads key/value head h // group_size, with
    group_size = heads // kv_heads, so several query heads share one k, v without a copy.
    """
    batch = batch_head // heads
    kv_head = (batch_head % heads) // group_size
    return batch * (heads // group_size) + kv_head


# --- device side: the online softmax ------------------------------------------------------


@triton.jit
def exp_via_exp2(x):
    """e^x computed as exp2(x · log2 e): ``tl.exp2`` is the GPU's native instruction."""
    return tl.exp2(x * LOG2E)


@triton.jit
def online_softmax_step(acc, row_sum, row_max, s, v, DOT_PRECISION: tl.constexpr):
    """Fold one tile of scores ``s`` (natural units, -inf where masked) and its values ``v``.

    With m' = max(m, rowmax(s)): row_sum <- row_sum · e^(m - m') + Σ e^(s - m'),
    acc <- acc · e^(m - m') + e^(s - m') v, row_max <- m'. Returns (acc, row_sum, row_max).
    s - m' is taken first and only then converted to base 2: exact near the maximum
    (Sterbenz), whatever the magnitude of s ("Units" in flash.py).
    """
    new_max = tl.maximum(row_max, tl.max(s, 1))
    # A row with no visible key so far has max -inf; subtracting 0 instead keeps
    # exp2(-inf - (-inf)) = NaN out: its p and correction are then exp2(-inf) = 0.
    shift = tl.where(new_max == float("-inf"), 0.0, new_max)
    p = exp_via_exp2(s - shift[:, None])
    correction = exp_via_exp2(row_max - shift)
    row_sum = row_sum * correction + tl.sum(p, 1)
    # p goes into the second matmul in the values' dtype (fp16/bf16 tensor cores on a GPU;
    # 0 <= p <= 1, so the cast cannot overflow); the accumulator stays fp32.
    acc = tl.dot(p.to(v.dtype), v, acc * correction[:, None], input_precision=DOT_PRECISION)
    return acc, row_sum, new_max


@triton.jit
def finish_rows(acc, row_sum, row_max):
    """(out, lse) after the last tile: out = acc / row_sum, lse = m + ln row_sum (natural log).

    A row that saw no key has row_sum 0 and row_max -inf: dividing by 1 instead makes its
    output 0, not NaN, and its lse -inf + ln 1 = -inf, the logsumexp of no terms.
    """
    safe_sum = tl.where(row_sum == 0.0, 1.0, row_sum)
    return acc / safe_sum[:, None], row_max + tl.log(safe_sum)

"""The course's Triton kernels, runnable on a GPU or in Triton's CPU interpreter.

The kernels, one module each, and the pieces they share:

* :mod:`~attn_course.kernels.flash`: FlashAttention forward and backward (notebook 04);
* :mod:`~attn_course.kernels.linear`: chunked causal linear attention (notebook 05);
* :mod:`~attn_course.kernels.sparse`: block-sparse attention forward (notebook 06);
* :mod:`~attn_course.kernels.paged`: paged decode attention (notebook 07);
* :mod:`~attn_course.kernels.splitk`: split-K paged decode, FlashDecoding (notebook 08);
* :mod:`~attn_course.kernels.tiles`: shared ``@triton.jit`` helpers (tile loads and stores,
  the online-softmax step), ``LOG2E`` and the dtype flags; :mod:`~attn_course.kernels.validate`:
  the checks every launcher runs before a launch.

Where kernels run is decided when the :mod:`attn_course` package is imported
(:mod:`attn_course.triton_mode`): with no CUDA device and ``TRITON_INTERPRET`` unset, it sets
``TRITON_INTERPRET=1`` *before* any kernel is defined, because Triton reads the variable
when ``@triton.jit`` decorates.

Public API (stable; the notebooks and :mod:`attn_course.bench` build on it):

* :func:`kernel_mode` -> ``"gpu"`` or ``"interpreter"``;
  :func:`kernel_device` -> ``torch.device("cuda")`` or ``torch.device("cpu")``: where inputs
  must live.
* :func:`flash_attention` ``(q, k, v, causal=False, scale=None) -> out``, differentiable;
  causal in False, True, "top_left", "bottom_right".
* :func:`flash_attention_forward` ``(q, k, v, causal=False, scale=None) -> (out, lse)``.
* :func:`flash_attention_backward` ``(do, q, k, v, out, lse, causal, scale) -> (dq, dk, dv)``.
* :class:`FlashAttentionFunction`: the ``torch.autograd.Function`` behind flash_attention.
* :func:`block_sizes` ``(kernel) -> [(BLOCK_M, BLOCK_N), ...]`` tried in this mode.
* :func:`linear_attention_forward` ``(q, k, v, *, feature_map="none", chunk_size=None)``.
* :func:`block_sparse_attention` ``(q, k, v, pattern, block=16, scale=None) -> out`` and
  :func:`block_sparse_attention_forward` ``(q, k, v, layout, mask, scale=None) -> (out, lse)``.
* :func:`paged_decode` ``(q, k_pool, v_pool, block_tables, context_lens, scale=None) -> out``.
* :func:`split_decode` ``(q, k_pool, v_pool, block_tables, context_lens, scale=None, *,
  splits=None) -> out``: the same with the context split over ``splits`` programs.

Compile check (no GPU needed): ``python -m attn_course.kernels.compile`` compiles every
kernel for the GPU targets of :mod:`attn_course.kernels.targets` and reports registers,
spills, shared memory and the MMA instructions; :mod:`attn_course.kernels.fit` prunes the
autotuners with its committed record.

Conventions of the flash kernels (the others say how they differ): q is (batch, heads, n_q,
head_dim); k and v are (batch, kv_heads, n_k, head_dim) with ``heads % kv_heads == 0``
(kv_heads == heads: multi-head; 1: multi-query; in between: grouped-query attention).
head_dim any multiple of 8 from 16 to 256 (padded to a power of two inside the kernels); any
n >= 1. dtypes float32, float16 or bfloat16 (all alike), accumulation in float32, output in
the input dtype. ``scale`` defaults to 1/√head_dim. ``causal=True`` or ``"top_left"`` lets
query i see keys j <= i (as ``is_causal`` in torch's scaled_dot_product_attention);
``causal="bottom_right"`` lets it see keys j <= i + n_k - n_q (flash-attn >= 2.1, decoding
with a KV cache; rows that see no key give 0). ``lse`` is float32 (batch, heads, n_q) in
natural-log units. Non-contiguous inputs are copied to contiguous memory. Bad input is a
ValueError naming the parameter, raised before launch.
"""

from __future__ import annotations

# The mode is chosen when the attn_course package is imported (attn_course/triton_mode.py),
# before any @triton.jit below runs and before torch's profiler or FlexAttention imports triton.
from attn_course.triton_mode import kernel_device, kernel_mode  # isort: skip
from attn_course.kernels.flash import (
    FlashAttentionFunction,
    block_sizes,
    flash_attention,
    flash_attention_backward,
    flash_attention_forward,
)
from attn_course.kernels.linear import linear_attention_forward
from attn_course.kernels.paged import paged_decode
from attn_course.kernels.sparse import block_sparse_attention, block_sparse_attention_forward
from attn_course.kernels.splitk import split_decode

__all__ = [
    "FlashAttentionFunction",
    "block_sizes",
    "block_sparse_attention",
    "block_sparse_attention_forward",
    "flash_attention",
    "flash_attention_backward",
    "flash_attention_forward",
    "kernel_device",
    "kernel_mode",
    "linear_attention_forward",
    "paged_decode",
    "split_decode",
]

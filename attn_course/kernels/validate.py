"""Checks on the inputs of the Triton attention kernels, made before anything is launched.

A kernel that gets a wrong shape does not raise: it reads past the end of a tensor or
computes something meaningless. So every rule the kernels rely on is checked here on the
host, and a broken one is a ``ValueError`` that names the parameter and what it accepts.
"""

from __future__ import annotations

from collections.abc import Collection

import torch

from attn_course.triton_mode import kernel_device, kernel_mode
from attn_course.validate import describe_value, resolve_scale

__all__ = [
    "ALLOWED_DTYPES",
    "ALLOWED_HEAD_DIMS",
    "CAUSAL_ALIGNMENTS",
    "FLASH_HEAD_DIMS",
    "check_same_device",
    "check_same_dtype",
    "check_tensor",
    "resolve_causal",
    "validate_backward_inputs",
    "validate_inputs",
]

# tl.dot needs every block dimension >= 16, and block shapes are powers of two; beyond 128
# a block of q, k, v and the accumulator no longer fits in the registers/shared memory of
# one program at useful block sizes. The default for kernels whose tiles are exactly
# head_dim wide (linear, paged, block-sparse).
ALLOWED_HEAD_DIMS = (16, 32, 64, 128)
# The FlashAttention kernels pad head_dim to the next power of two inside the kernel
# (BLOCK_D, masked columns), so they take the head dims of real models: 40, 80, 96, 112,
# 160, 192, 256, ... Multiples of 8 keep every row 16-byte aligned for 16-bit dtypes (the
# rule of flash-attn and cuDNN); 256 is where flash-attn stops too.
FLASH_HEAD_DIMS = range(16, 257, 8)
# causal=True means "top_left", the alignment of SDPA's is_causal=True.
CAUSAL_ALIGNMENTS = ("top_left", "bottom_right")
ALLOWED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def check_tensor(name: str, t: object) -> torch.Tensor:
    """``t`` if it is a 4-d (batch, heads, n, head_dim) kernel input with every size >= 1."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {describe_value(t)}")
    if t.dim() != 4:
        raise ValueError(
            f"{name} must have shape (batch, heads, n, head_dim): 4 dimensions, "
            f"got {t.dim()}: {tuple(t.shape)}"
        )
    if t.dtype not in ALLOWED_DTYPES:
        allowed = ", ".join(str(d).removeprefix("torch.") for d in ALLOWED_DTYPES)
        raise ValueError(f"{name} must have dtype {allowed}, got {t.dtype}")
    if min(t.shape) < 1:
        raise ValueError(
            f"{name} needs batch, heads, n and head_dim all >= 1, got shape {tuple(t.shape)}"
        )
    return t


def check_same_device(tensors: dict[str, torch.Tensor]) -> None:
    """Every tensor on one device, the one the kernels run on (:func:`kernel_device`)."""
    first_name, first = next(iter(tensors.items()))
    for name, t in tensors.items():
        if t.device != first.device:
            raise ValueError(
                f"{name} is on {t.device} but {first_name} is on {first.device}; "
                "put all inputs on one device"
            )
    expected = kernel_device()
    if first.device.type != expected.type:
        if kernel_mode() == "interpreter":
            why = (
                "the kernels run in Triton's interpreter (no GPU was found, or TRITON_INTERPRET=1 "
                "was set), which executes them with NumPy on CPU memory"
            )
        else:
            why = "the kernels are compiled for the GPU and read GPU memory directly"
        raise ValueError(
            f"{first_name} is on {first.device} but must be on {expected.type}: {why}. "
            f"Move the inputs with .to(attn_course.kernels.kernel_device())"
        )


def check_same_dtype(tensors: dict[str, torch.Tensor]) -> None:
    """Every tensor of one dtype (the first one's)."""
    first_name, first = next(iter(tensors.items()))
    for name, t in tensors.items():
        if t.dtype != first.dtype:
            raise ValueError(
                f"{name} has dtype {t.dtype} but {first_name} has {first.dtype}; use one dtype"
            )


def _describe_head_dims(allowed: Collection[int]) -> str:
    if isinstance(allowed, range):
        return (
            f"a multiple of {allowed.step} from {allowed.start} to {allowed[-1]} "
            f"(e.g. 40, 64, 96, 128, 256)"
        )
    return f"one of {tuple(allowed)}"


def resolve_causal(causal: object) -> str | None:
    """The causal alignment ``causal`` asks for: None (no mask), "top_left" or "bottom_right".

    False -> None; True -> "top_left" (query i sees keys j <= i, SDPA's ``is_causal``);
    "top_left"; "bottom_right" (query i sees keys j <= i + n_k - n_q). Anything else is a
    ValueError.
    """
    if causal is False:
        return None
    if causal is True:
        return "top_left"
    if isinstance(causal, str) and causal in CAUSAL_ALIGNMENTS:
        return causal
    raise ValueError(
        f"causal must be False, True (= 'top_left'), 'top_left' or 'bottom_right', got {causal!r}"
    )


def validate_inputs(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: object,
    scale: object,
    *,
    head_dims: Collection[int] = ALLOWED_HEAD_DIMS,
) -> float:
    """Check q, k, v, causal and scale; return the softmax scale to use (1/√head_dim if None).

    Rules: q is (batch, heads, n_q, head_dim); k and v are both (batch, kv_heads, n_k,
    head_dim) with ``heads % kv_heads == 0``; head_dim in ``head_dims`` (default
    :data:`ALLOWED_HEAD_DIMS`; the FlashAttention kernels pass :data:`FLASH_HEAD_DIMS`); one
    dtype among float32/float16/bfloat16; one device, the one :func:`kernel_device` names;
    causal one of False, True, "top_left", "bottom_right" (:func:`resolve_causal`); scale None
    or a finite number > 0.
    """
    named = {"q": check_tensor("q", q), "k": check_tensor("k", k), "v": check_tensor("v", v)}
    check_same_dtype(named)
    check_same_device(named)
    if k.shape != v.shape:
        raise ValueError(
            f"k and v must have the same shape (batch, kv_heads, n_k, head_dim): every key has "
            f"one value; got k {tuple(k.shape)} and v {tuple(v.shape)}"
        )
    batch, heads, _, head_dim = q.shape
    if k.shape[0] != batch:
        raise ValueError(f"k and v have batch {k.shape[0]} but q has batch {batch}; use one batch")
    if k.shape[3] != head_dim:
        raise ValueError(
            f"k and v have head_dim {k.shape[3]} but q has {head_dim}; scores need q·k, "
            "vectors of one length"
        )
    kv_heads = k.shape[1]
    if heads % kv_heads:
        raise ValueError(
            f"heads of q ({heads}) must be a multiple of kv_heads of k and v ({kv_heads}): "
            "each key/value head serves a group of heads // kv_heads query heads"
        )
    if head_dim not in head_dims:
        raise ValueError(
            f"head_dim (last dim of q, k, v) must be {_describe_head_dims(head_dims)}, "
            f"got {head_dim}"
        )
    resolve_causal(causal)
    return resolve_scale(scale, head_dim)


# Positional arguments mirror flash.flash_attention_backward on purpose: it validates that call.
def validate_backward_inputs(
    do: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    causal: object,
    scale: object,
    *,
    head_dims: Collection[int] = ALLOWED_HEAD_DIMS,
) -> float:
    """:func:`validate_inputs` plus: do and out shaped like q, lse float32 (batch, heads, n_q)."""
    scale = validate_inputs(q, k, v, causal, scale, head_dims=head_dims)
    for name, t in (("do", do), ("out", out)):
        check_tensor(name, t)
        if t.shape != q.shape:
            raise ValueError(
                f"{name} must have the shape of q {tuple(q.shape)}, got {tuple(t.shape)}"
            )
    check_same_dtype({"q": q, "do": do, "out": out})
    if not isinstance(lse, torch.Tensor):
        raise ValueError(f"lse must be a torch.Tensor, got {describe_value(lse)}")
    if lse.shape != q.shape[:3] or lse.dtype != torch.float32:
        raise ValueError(
            f"lse must be float32 of shape (batch, heads, n_q) = {tuple(q.shape[:3])}, "
            f"as flash_attention_forward returns it; got {describe_value(lse)}"
        )
    check_same_device({"q": q, "do": do, "out": out, "lse": lse})
    return scale

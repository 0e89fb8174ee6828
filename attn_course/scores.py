"""The n x n score matrix: naive attention, written out so that every piece can be inspected.

Notebook 01 builds on this module. For queries ``Q`` (n_q x d) and keys ``K`` (n_k x d)
attention forms

    S = Q Kᵀ · scale            scores,         n_q x n_k   (scale = 1/√d by default)
    P = softmax(S, along rows)  probabilities,  n_q x n_k   (every row sums to 1)
    O = P V                     output,         n_q x d_v

and both ``S`` and ``P`` have one entry for every (query, key) pair: that is the n²
this course is about. :func:`naive_attention` materialises them on purpose and hands
them back, so a notebook can plot them and measure their bytes.

The module also holds the byte model of naive attention's peak
(:func:`naive_attention_peak_bytes`; the general formulas live in :mod:`attn_course.cost`)
and a small,
deterministic "sentence" whose attention pattern means something
(:func:`toy_sentence_qkv`).
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Sequence
from typing import NamedTuple

import torch

from attn_course.cost import score_matrix_bytes

# DTYPE_NAMES is imported from here by notebook 01, so scores keeps exporting it.
from attn_course.validate import (
    DTYPE_NAMES,
    check_count,
    check_flag,
    describe_value,
    resolve_dtype,
    resolve_scale,
)

__all__ = [
    "AttentionResult",
    "DTYPE_NAMES",
    "ToyInput",
    "TOY_HEAD_NAMES",
    "TOY_SENTENCE",
    "causal_mask",
    "largest_safe_exponent",
    "naive_attention",
    "naive_attention_peak_bytes",
    "naive_softmax",
    "validate_qkv",
    "stable_softmax",
    "token_labels",
    "tokenize",
    "toy_sentence_qkv",
]


# --- bytes -----------------------------------------------------------------------------


def naive_attention_peak_bytes(
    n: int,
    head_dim: int,
    dtype: torch.dtype | str,
    heads: int = 1,
    batch: int = 1,
    n_k: int | None = None,
    v_dim: int | None = None,
) -> int:
    """Model of the extra bytes :func:`naive_attention` holds at its peak.

        peak = bytes(S) + bytes(P) + bytes(O)
             = 2 · n_q · n_k · heads · batch · b  +  n_q · v_dim · heads · batch · b

    with ``b`` the bytes per element of ``dtype`` and ``v_dim`` defaulting to ``head_dim``.
    The bytes of one score matrix come from :func:`attn_course.cost.score_matrix_bytes`.

    Assumptions, matching how :func:`naive_attention` allocates:

    * q, k, v already exist; they are inputs, not counted.
    * S is written once (the scale and the mask are applied in place) and P once
      (softmax works in place on its own buffer); both are alive when O = P V is
      allocated, because S and P are returned. Even code that throws S away needs S
      and P at the same moment while an out-of-place softmax runs.
    * Row statistics (the max and the sum of each row: n_q · heads · batch elements each)
      and library workspaces are small and ignored; they are why a measurement comes out
      a little above this number, never far below it.
    """
    element = resolve_dtype(dtype).itemsize
    v_dim = head_dim if v_dim is None else v_dim
    check_count("head_dim", head_dim)
    check_count("v_dim", v_dim)
    one_matrix = score_matrix_bytes(n, dtype, heads=heads, batch=batch, n_k=n_k)
    output = n * v_dim * heads * batch * element
    return int(2 * one_matrix + output)


# --- softmax ----------------------------------------------------------------------------


def naive_softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """softmax straight from the textbook: exp(x) / Σ exp(x). Do not use it.

    It is here to show what goes wrong: exp overflows to inf once x exceeds
    :func:`largest_safe_exponent` (≈ 88.7 in float32, ≈ 11.1 in float16) and
    inf / inf = nan; when every x is very negative exp underflows to 0 and 0 / 0 = nan.
    """
    weights = torch.exp(x)
    return weights / weights.sum(dim=dim, keepdim=True)


def largest_safe_exponent(dtype: torch.dtype | str) -> float:
    """The largest x with exp(x) finite in ``dtype``: ln(largest finite value).

    float32: ln(3.40e38) ≈ 88.72; float16: ln(65504) ≈ 11.09; bfloat16 ≈ 88.72; float64 ≈ 709.78.
    """
    return math.log(torch.finfo(resolve_dtype(dtype)).max)


def stable_softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """softmax along ``dim`` that cannot overflow: exp(x - max) / Σ exp(x - max).

    Subtracting the row maximum changes nothing mathematically (the factor exp(-max)
    cancels between numerator and denominator) but makes every exponent <= 0, so every
    exp is in (0, 1] and the largest one is exactly 1: no overflow, and the sum is >= 1,
    so no 0 / 0.

    Masked entries are -inf and get weight exactly 0. A row that is *entirely* -inf
    (every key masked) has no meaningful softmax; it returns a row of zeros, so that
    attention over it outputs zeros instead of nan.

    A +inf or nan anywhere in a row is refused with a ValueError (it usually means the
    scores overflowed their dtype upstream).

    Memory: one new tensor the size of ``x``; exp and the division then happen in place in
    it. When autograd needs the intermediate values (``x.requires_grad``), it falls back to
    out-of-place ops, which keeps one more tensor of that size alive: the price of training.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point torch.Tensor, got {describe_value(x)}")
    if x.dim() == 0:
        raise ValueError("x must have at least one dimension, got a 0-d tensor")
    row_max = x.amax(dim=dim, keepdim=True)
    # amax propagates nan, and a row's max is +inf iff the row contains +inf.
    if torch.isnan(row_max).any() or torch.isposinf(row_max).any():
        raise ValueError("x contains nan or +inf (did the scores overflow their dtype?)")
    # A fully masked row has max -inf, and -inf - (-inf) is nan: shift such rows by 0.
    row_max = row_max.masked_fill(torch.isneginf(row_max), 0.0)
    shifted = x - row_max  # the one allocation the size of x

    if torch.is_grad_enabled() and x.requires_grad:
        weights = shifted.exp()
        total = weights.sum(dim=dim, keepdim=True)
        return weights / total.masked_fill(total == 0, 1.0)

    weights = shifted.exp_()
    total = weights.sum(dim=dim, keepdim=True)
    # Only a fully masked row sums to 0 (otherwise its largest entry contributes exp(0) = 1).
    return weights.div_(total.masked_fill_(total == 0, 1.0))


# --- masks and attention ----------------------------------------------------------------


def causal_mask(
    n_q: int, n_k: int | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Boolean (n_q, n_k) mask, True where query i may attend to key j, i.e. j <= i.

    A token sees itself and the past, never the future: the diagonal is True and everything
    above it False. When n_q != n_k the rows and columns are aligned at the top-left
    (query i sees keys 0..i), the same convention as ``is_causal=True`` in
    ``torch.nn.functional.scaled_dot_product_attention``.

    Costs n_q · n_k bytes (one byte per bool), a fraction of S itself.
    """
    n_q = check_count("n_q", n_q)
    n_k = n_q if n_k is None else check_count("n_k", n_k)
    # tril_ works in place, so only one n_q x n_k bool tensor is ever allocated.
    return torch.ones(n_q, n_k, dtype=torch.bool, device=device).tril_()


class AttentionResult(NamedTuple):
    """What :func:`naive_attention` computed.

    scores: S = Q Kᵀ · scale, masked entries set to -inf   (..., n_q, n_k)
    probs:  P = softmax(S) along the last dim               (..., n_q, n_k)
    out:    O = P V                                         (..., n_q, v_dim)
    """

    scores: torch.Tensor
    probs: torch.Tensor
    out: torch.Tensor


def naive_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    mask: torch.Tensor | None = None,
    scale: float | None = None,
) -> AttentionResult:
    """Scaled dot-product attention that materialises S and P and returns them.

    Shapes: ``(batch, heads, n, head_dim)`` or, for teaching, a single head ``(n, head_dim)``;
    q, k, v must have the same rank. q is (..., n_q, d), k is (..., n_k, d), v is
    (..., n_k, v_dim).

    * ``scale`` defaults to 1/√d: it keeps the scores' spread independent of d (a dot
      product of d unit-variance terms has variance d).
    * ``causal=True`` lets query i see keys j <= i (see :func:`causal_mask`).
    * ``mask`` is an optional boolean tensor broadcastable to (..., n_q, n_k), True where
      attention is allowed (the convention of ``scaled_dot_product_attention``).
      With ``causal`` both apply. A query whose every key is masked gets an all-zero row
      in P and an all-zero output (see :func:`stable_softmax`).

    Memory: S, P and O are allocated once each; see :func:`naive_attention_peak_bytes`.
    """
    validate_qkv(q, k, v)
    head_dim, n_q, n_k = q.shape[-1], q.shape[-2], k.shape[-2]
    scale = resolve_scale(scale, head_dim)

    allowed = _combined_mask(mask, causal, n_q, n_k, q)

    scores = torch.matmul(q, k.transpose(-2, -1))  # the n_q x n_k matrix, allocated once
    scores.mul_(scale)  # in place: no second n x n buffer
    if allowed is not None:
        # masked_fill_ wants True where to *fill*, i.e. where attention is not allowed.
        blocked = allowed.logical_not()
        del allowed
        if blocked.shape != scores.shape:
            blocked = blocked.expand(scores.shape)
        scores.masked_fill_(blocked, float("-inf"))
        del blocked  # free it before P is allocated; it is not part of the peak

    probs = stable_softmax(scores, dim=-1)
    out = torch.matmul(probs, v)
    return AttentionResult(scores, probs, out)


def validate_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    named = {"q": q, "k": k, "v": v}
    for name, t in named.items():
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {describe_value(t)}")
        if t.dim() not in (2, 4):
            raise ValueError(
                f"{name} must have shape (batch, heads, n, head_dim) or (n, head_dim), "
                f"got {t.dim()} dimensions: {tuple(t.shape)}"
            )
        if not t.is_floating_point():
            raise ValueError(f"{name} must have a floating-point dtype, got {t.dtype}")
        if t.shape[-2] < 1 or t.shape[-1] < 1:
            raise ValueError(
                f"{name} needs at least one token and one feature, got {tuple(t.shape)}"
            )
        if min(t.shape) < 1:  # batch = 0 or heads = 0: the kernels refuse it, and so do we
            raise ValueError(
                f"{name} needs batch and heads >= 1 (as the kernels do), got {tuple(t.shape)}"
            )
    for name in ("k", "v"):
        t = named[name]
        if t.dim() != q.dim():
            raise ValueError(
                f"{name} has {t.dim()} dimensions but q has {q.dim()}; use the same rank"
            )
        if t.dtype != q.dtype:
            raise ValueError(f"{name} has dtype {t.dtype} but q has {q.dtype}; use one dtype")
        if t.device != q.device:
            raise ValueError(f"{name} is on {t.device} but q is on {q.device}; use one device")
        if t.shape[:-2] != q.shape[:-2]:
            raise ValueError(
                f"{name} has batch/heads {tuple(t.shape[:-2])} but q has {tuple(q.shape[:-2])}"
            )
    if k.shape[-1] != q.shape[-1]:
        raise ValueError(
            f"k has head_dim {k.shape[-1]} but q has {q.shape[-1]}; scores need q·k, same length"
        )
    if v.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"v has {v.shape[-2]} tokens but k has {k.shape[-2]}; every key needs one value"
        )


def _combined_mask(
    mask: torch.Tensor | None, causal: bool, n_q: int, n_k: int, q: torch.Tensor
) -> torch.Tensor | None:
    causal = check_flag("causal", causal)
    allowed = causal_mask(n_q, n_k, device=q.device) if causal else None
    if mask is None:
        return allowed
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise ValueError(
            f"mask must be a boolean torch.Tensor (True = may attend), got {describe_value(mask)}"
        )
    if mask.device != q.device:
        raise ValueError(f"mask is on {mask.device} but q is on {q.device}; use one device")
    scores_shape = (*q.shape[:-2], n_q, n_k)
    try:
        if torch.broadcast_shapes(mask.shape, scores_shape) != scores_shape:
            raise RuntimeError
    except RuntimeError:
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to the scores' shape "
            f"{scores_shape}"
        ) from None
    return mask if allowed is None else mask & allowed


# --- a small sentence whose attention pattern means something ----------------------------

TOY_SENTENCE = "the cat sat on the mat and the dog sat on the cat"

# Three hand-built heads, each looking for one kind of relation.
TOY_HEAD_NAMES = ("same word", "neighbours", "previous token")

# Score (before softmax) a head gives a perfect match; bigger = sharper rows in P.
_TOY_HEAD_GAINS = (8.0, 4.0, 16.0)


class ToyInput(NamedTuple):
    """Queries, keys and values for a short sentence, shape (1, heads, n, head_dim)."""

    tokens: list[str]
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    head_names: tuple[str, ...]


def tokenize(text: str) -> list[str]:
    """Lower-case words: ``"The cat, the hat." -> ['the', 'cat', 'the', 'hat']``."""
    return re.findall(r"[a-z0-9']+", text.lower())


def toy_sentence_qkv(
    text: str = TOY_SENTENCE, head_dim: int = 32, dtype: torch.dtype | str = "float32"
) -> ToyInput:
    """Deterministic q, k, v for ``text`` with three interpretable heads.

    No model and no download: every word gets a fixed random unit vector (seeded by a hash
    of the word, so "cat" is the same vector every time it appears), every position a
    sinusoidal code (as in the original Transformer). Then, per head:

    * "same word":      q_i = k_i = word(i). Score ~ 1 for the same word, ~ 0 otherwise,
      so each token attends to every occurrence of its own word: stripes.
    * "neighbours":     q_i = k_i = pos(i). The codes of nearby positions are similar,
      so each token attends to a few tokens around it: a band along the diagonal.
    * "previous token": q_i = pos(i), k_j = pos(j + 1). The score peaks where j + 1 = i:
      each token attends to the one before it, a band just below the diagonal. (Real
      models learn such heads; they are a building block of "induction heads".)

    Queries and keys are scaled so the head's best match scores ``gain`` after the 1/√d
    scaling. Values are the word vectors.
    """
    tokens = tokenize(text)
    if not tokens:
        raise ValueError(f"text must contain at least one word, got {text!r}")
    check_count("head_dim", head_dim, minimum=2)
    if head_dim % 2:
        raise ValueError(f"head_dim must be even (sin/cos pairs), got {head_dim}")
    dtype = resolve_dtype(dtype)

    words = torch.stack([_word_vector(word, head_dim) for word in tokens])
    positions = torch.arange(len(tokens), dtype=torch.float64)
    here, next_one = _position_codes(positions, head_dim), _position_codes(positions + 1, head_dim)

    head_inputs = [(words, words), (here, here), (here, next_one)]
    qs, ks = [], []
    for (query, key), gain in zip(head_inputs, _TOY_HEAD_GAINS, strict=True):
        # S = (a·query)(a·key)ᵀ / √d = gain · similarity  when  a² = gain · √d.
        amplitude = math.sqrt(gain * math.sqrt(head_dim))
        qs.append(amplitude * query)
        ks.append(amplitude * key)
    values = words.expand(len(TOY_HEAD_NAMES), -1, -1)

    def batch_of_one(t: torch.Tensor) -> torch.Tensor:
        return t.unsqueeze(0).to(dtype).contiguous()

    return ToyInput(
        tokens,
        batch_of_one(torch.stack(qs)),
        batch_of_one(torch.stack(ks)),
        batch_of_one(values),
        TOY_HEAD_NAMES,
    )


def _word_vector(word: str, dim: int) -> torch.Tensor:
    # crc32 is stable across runs and machines (Python's hash() is salted per process).
    generator = torch.Generator().manual_seed(zlib.crc32(word.encode()))
    vector = torch.randn(dim, generator=generator, dtype=torch.float64)
    return vector / vector.norm()


def _position_codes(positions: torch.Tensor, dim: int, base: float = 10.0) -> torch.Tensor:
    """Unit-length sinusoidal codes; code(i)·code(j) depends only on i - j, peaking at i = j."""
    frequencies = base ** (-2 * torch.arange(dim // 2, dtype=torch.float64) / dim)
    angles = positions[:, None] * frequencies[None, :]
    codes = torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2)
    return codes / math.sqrt(dim // 2)


def token_labels(tokens: Sequence[str]) -> list[str]:
    """Axis labels that stay unique when a word repeats: ``['0 the', '1 cat', ...]``."""
    return [f"{i} {token}" for i, token in enumerate(tokens)]

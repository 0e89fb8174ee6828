"""Wrong answers to notebook 01's exercises (the n × n score matrix)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from attn_course import cost, scores
from tests.corpus import Wrong

# --- score_bytes ---------------------------------------------------------------------------


def _bytes_float(n, heads, bytes_per_element):
    return math.pow(n, 2) * heads * bytes_per_element


# --- stable_softmax --------------------------------------------------------------------------


def _softmax_without_max(x):
    weights = x.exp()
    return weights / weights.sum(-1, keepdim=True)


def _softmax_global_max(x):
    weights = (x - x.max()).exp()  # one shift for the whole tensor
    return weights / weights.sum(-1, keepdim=True)


def _softmax_mean_shift(x):
    weights = (x - x.mean(-1, keepdim=True)).exp()
    return weights / weights.sum(-1, keepdim=True)


def _softmax_wrong_dim(x):
    shifted = (x - x.amax(0, keepdim=True)).exp()
    return shifted / shifted.sum(0, keepdim=True)


def _softmax_in_place(x):
    x -= x.amax(-1, keepdim=True)
    return x.exp() / x.exp().sum(-1, keepdim=True)


def _softmax_upcast(x):
    x = x.double()
    weights = (x - x.amax(-1, keepdim=True)).exp()
    return weights / weights.sum(-1, keepdim=True)


def _softmax_unnormalised(x):
    return (x - x.amax(-1, keepdim=True)).exp()


def _softmax_via_log_softmax(x):
    return x.log_softmax(-1).exp()


def _softmax_via_logsumexp(x):
    return torch.exp(x - torch.logsumexp(x, dim=-1, keepdim=True))


# --- causal_mask -----------------------------------------------------------------------------


def _bool_ones(n):
    return torch.ones(n, n, dtype=torch.bool)


def _additive_mask(n):
    return torch.full((n, n), float("-inf")).triu(1)


# --- naive attention -------------------------------------------------------------------------


def _attention(q, k, v, causal=False, *, scale=None, diagonal=0, softmax=None, dim=-1):
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ k.transpose(-2, -1) * scale
    if causal:
        allowed = torch.ones(s.shape[-2:], dtype=torch.bool).tril(diagonal)
        s = s.masked_fill(~allowed, float("-inf"))
    probs = softmax(s) if softmax else torch.softmax(s, dim=dim)
    return probs @ v


def _attention_masked_after_softmax(q, k, v, causal=False):
    probs = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    if causal:
        probs = probs.tril()
    return probs @ v


def _attention_returns_p_too(q, k, v, causal=False):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        s = s.masked_fill(~torch.ones(s.shape[-2:], dtype=torch.bool).tril(), float("-inf"))
    probs = torch.softmax(s, dim=-1)
    return probs @ v, probs


WRONG = {
    "score_bytes": [
        Wrong("left out the heads", lambda n, heads, b: n * n * b, "heads"),
        Wrong("n entries instead of n·n", lambda n, heads, b: n * heads * b, "n·n"),
        Wrong("bits, not bytes", lambda n, heads, b: n * n * heads * b * 8, "bits"),
        Wrong("forgot bytes_per_element", lambda n, heads, b: n * n * heads, "bytes_per_element"),
        Wrong("causal half", lambda n, heads, b: n * (n + 1) // 2 * heads * b, "stored whole"),
        Wrong("float arithmetic", _bytes_float, "exact integer"),
        Wrong("the course's reference", lambda n, heads, b: cost.score_matrix_bytes(n, b) * heads,
              "cost.score_matrix_bytes"),
    ],
    "stable_softmax": [
        Wrong("no max subtracted", _softmax_without_max, "maximum"),
        Wrong("one max for the whole tensor", _softmax_global_max, "row's own maximum"),
        Wrong("shifted by the mean", _softmax_mean_shift, "nan or inf"),
        Wrong("along the wrong dim", _softmax_wrong_dim, "dim=-1"),
        Wrong("changes its input", _softmax_in_place, "in place"),
        Wrong("returns float64", _softmax_upcast, "dtype"),
        Wrong("never divides by the sum", _softmax_unnormalised, "sum to 1"),
        Wrong("torch.softmax", lambda x: torch.softmax(x, dim=-1), "write it from torch.exp"),
        Wrong("F.softmax", lambda x: F.softmax(x, dim=-1), "softmax routine"),
        Wrong("Tensor.softmax", lambda x: x.softmax(-1), "softmax routine"),
        Wrong("exp of log_softmax", _softmax_via_log_softmax, "log_softmax"),
        Wrong("logsumexp", _softmax_via_logsumexp, "logsumexp"),
        Wrong("the course's stable_softmax", scores.stable_softmax, "scores.stable_softmax"),
    ],
    "causal_mask": [
        Wrong("diagonal left out", lambda n: _bool_ones(n).tril(-1), "diagonal"),
        Wrong("the forbidden positions", lambda n: _bool_ones(n).triu(1), "forbidden"),
        Wrong("the upper triangle", lambda n: _bool_ones(n).triu(), "lower triangle"),
        Wrong("one key into the future", lambda n: _bool_ones(n).tril(1), "future"),
        Wrong("float mask", lambda n: torch.ones(n, n).tril(), "torch.bool"),
        Wrong("additive mask", _additive_mask, "additive"),
        Wrong("the course's causal_mask", scores.causal_mask, "scores.causal_mask"),
    ],
    "naive_attention": [
        Wrong("no 1/√d", lambda q, k, v, causal=False: _attention(q, k, v, causal, scale=1.0),
              "√d"),
        Wrong("1/d", lambda q, k, v, causal=False: _attention(q, k, v, causal,
                                                             scale=1 / q.shape[-1]), "not 1/d"),
        Wrong("times √d", lambda q, k, v, causal=False: _attention(
            q, k, v, causal, scale=math.sqrt(q.shape[-1])), "don't multiply"),
        Wrong("diagonal masked", lambda q, k, v, causal=False: _attention(q, k, v, causal,
                                                                         diagonal=-1),
              "keep the diagonal"),
        Wrong("sees one future key", lambda q, k, v, causal=False: _attention(q, k, v, causal,
                                                                             diagonal=1),
              "future"),
        Wrong("ignores causal", lambda q, k, v, causal=False: _attention(q, k, v, False),
              "hide future keys"),
        Wrong("softmax down the columns", lambda q, k, v, causal=False: _attention(
            q, k, v, causal, dim=-2), "along each row"),
        Wrong("overflowing softmax", lambda q, k, v, causal=False: _attention(
            q, k, v, causal, softmax=_softmax_without_max), "stable softmax"),
        Wrong("masks after the softmax", _attention_masked_after_softmax, "*before* the softmax"),
        Wrong("returns (out, P)", _attention_returns_p_too, "only the output"),
        Wrong("scaled_dot_product_attention", lambda q, k, v, causal=False:
              F.scaled_dot_product_attention(q, k, v, is_causal=causal),
              "scaled_dot_product_attention"),
        Wrong("the course's naive_attention", lambda q, k, v, causal=False:
              scores.naive_attention(q, k, v, causal=causal).out, "scores.naive_attention"),
    ],
}

RIGHT = {
    "stable_softmax": [
        lambda x: (lambda w: w / w.sum(-1, keepdim=True))(torch.exp(x - x.amax(-1, True))),
        # computing in float32 and casting back is fine
        lambda x: (lambda y: (lambda w: w / w.sum(-1, keepdim=True))(
            torch.exp(y - y.amax(-1, keepdim=True))))(x.float()).to(x.dtype),
    ],
    "causal_mask": [
        lambda n: torch.arange(n)[None, :] <= torch.arange(n)[:, None],
        lambda n: torch.ones(n, n).tril() == 1,
    ],
    "naive_attention": [
        lambda q, k, v, causal=False: _attention(q, k, v, causal),
        lambda q, k, v, causal=False: _attention(q, k, v, causal, softmax=scores.stable_softmax),
    ],
}

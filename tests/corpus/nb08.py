"""Wrong answers to notebook 08's exercises (serving at long context)."""

from __future__ import annotations

import math

import torch

from tests.corpus import Wrong

# --- serve_merge_partials ---------------------------------------------------------------------


def _merge(o1, lse1, o2, lse2):
    """A right merge, by the max shift instead of logaddexp."""
    m = torch.maximum(lse1, lse2)
    m = torch.where(torch.isneginf(m), torch.zeros_like(m), m)
    e1, e2 = torch.exp(lse1 - m), torch.exp(lse2 - m)
    mass = e1 + e2
    safe = torch.where(mass == 0, torch.ones_like(mass), mass)
    o = (e1[:, None] * o1 + e2[:, None] * o2) / safe[:, None]
    return o, m + torch.log(mass)


def _averages(o1, lse1, o2, lse2):
    return (o1 + o2) / 2, torch.logaddexp(lse1, lse2)


def _naive_exp(o1, lse1, o2, lse2):
    e1, e2 = torch.exp(lse1), torch.exp(lse2)  # overflows for lse in the hundreds
    return (e1[:, None] * o1 + e2[:, None] * o2) / (e1 + e2)[:, None], torch.log(e1 + e2)


def _max_lse(o1, lse1, o2, lse2):
    o, _ = _merge(o1, lse1, o2, lse2)
    return o, torch.maximum(lse1, lse2)


def _sum_lse(o1, lse1, o2, lse2):
    o, _ = _merge(o1, lse1, o2, lse2)
    return o, lse1 + lse2


def _unnormalised(o1, lse1, o2, lse2):
    lse = torch.logaddexp(lse1, lse2)
    return torch.exp(lse1)[:, None] * o1 + torch.exp(lse2)[:, None] * o2, lse


def _swapped_weights(o1, lse1, o2, lse2):
    lse = torch.logaddexp(lse1, lse2)
    return torch.exp(lse2 - lse)[:, None] * o1 + torch.exp(lse1 - lse)[:, None] * o2, lse


def _base_two(o1, lse1, o2, lse2):
    lse = torch.log2(torch.exp2(lse1) + torch.exp2(lse2))
    return torch.exp2(lse1 - lse)[:, None] * o1 + torch.exp2(lse2 - lse)[:, None] * o2, lse


def _no_empty_guard(o1, lse1, o2, lse2):
    lse = torch.logaddexp(lse1, lse2)  # -inf - -inf = NaN where both splits are empty
    return torch.exp(lse1 - lse)[:, None] * o1 + torch.exp(lse2 - lse)[:, None] * o2, lse


def _in_place(o1, lse1, o2, lse2):
    lse = torch.logaddexp(lse1, lse2)
    o, _ = _merge(o1, lse1, o2, lse2)
    o1.copy_(o)
    return o1, lse


def _float64(o1, lse1, o2, lse2):
    o, lse = _merge(o1.double(), lse1.double(), o2.double(), lse2.double())
    return o, lse


def _first_head_only(o1, lse1, o2, lse2):
    """Merges head 0 right and copies its weights to every head (numerics right on one row)."""
    lse = torch.logaddexp(lse1, lse2)
    w1 = torch.exp(lse1[0] - lse[0])
    return w1 * o1 + (1 - w1) * o2, lse


# --- serve_admit --------------------------------------------------------------------------------


def _admit(lengths, free, block_size, *, running=0, max_batch=8, need=None, cap=None,
           skip=False, spend=True, guard=True):  # fmt: skip
    if guard and (block_size < 1 or free < 0 or max_batch < 1 or any(n < 1 for n in lengths)):
        raise ValueError("bad input")
    need = need or (lambda n: -(-(n + 1) // block_size))
    cap = max_batch - running if cap is None else cap
    count = 0
    for n in lengths:
        if count >= cap or need(n) > free:
            if skip and count < cap:
                continue
            break
        free -= need(n) if spend else 0
        count += 1
    return count


def _admit_list(lengths, free, block_size, *, running=0, max_batch=8):
    count = _admit(lengths, free, block_size, running=running, max_batch=max_batch)
    return list(range(count))


# --- serve_offload_break_even --------------------------------------------------------------------


def _break_even(b, bw, flops, w, layers, d, *, round_=math.ceil, floor_one=True, causal=2,
                weights=True, bits=1, guard=True):  # fmt: skip
    if guard and min(b, bw, flops, layers, d) <= 0:
        raise ValueError("non-positive input")
    n = round_((flops * b * bits / bw - (w if weights else 0)) / (causal * layers * d))
    return max(1, n) if floor_one else n


# --- serve_spec_expected_tokens ------------------------------------------------------------------


def _tokens(alpha, k, *, guard=True):
    if guard and (not 0 <= alpha <= 1 or k < 1):
        raise ValueError("bad input")
    return k + 1.0 if alpha == 1 else (1 - alpha ** (k + 1)) / (1 - alpha)


def _tokens_loop(alpha, k):
    if not 0 <= alpha <= 1 or k < 1:
        raise ValueError("bad input")
    return sum(alpha**i for i in range(k + 1))


def _tokens_without_bonus(alpha, k):
    _tokens(alpha, k)
    return float(k) if alpha == 1 else (1 - alpha**k) / (1 - alpha)


def _tokens_accepted_only(alpha, k):
    _tokens(alpha, k)
    return float(k) if alpha == 1 else alpha * (1 - alpha**k) / (1 - alpha)


def _tokens_zero_division(alpha, k):
    if not 0 <= alpha <= 1 or k < 1:
        raise ValueError("bad input")
    return (1 - alpha ** (k + 1)) / (1 - alpha)


WRONG = {
    "serve_merge_partials": [
        Wrong("averages the two outputs", _averages, "average"),
        Wrong("exp of the raw lse (overflows)", _naive_exp, "overflow"),
        Wrong("the max as the merged lse", _max_lse, "not the larger"),
        Wrong("the sum of the lses", _sum_lse, "not the logs"),
        Wrong("weights not divided by the merged mass", _unnormalised, "divided by the merged"),
        Wrong("swapped weights", _swapped_weights, "swapped"),
        Wrong("base 2 instead of e", _base_two, "natural logarithm"),
        Wrong("NaN where both splits are empty", _no_empty_guard, "not nan"),
        Wrong("writes the result into o1", _in_place, "in place"),
        Wrong("returns float64 for float32 inputs", _float64, "dtype"),
        Wrong("one head's weights for every head", _first_head_only, "head(s)"),
        Wrong("returns o only", lambda o1, l1, o2, l2: _merge(o1, l1, o2, l2)[0], "tuple"),
    ],
    "serve_admit": [
        Wrong("skips ahead of a request that does not fit", lambda *a, **k: _admit(
            *a, **k, skip=True), "first come, first served"),
        Wrong("forgets the first generated token", lambda lengths, free, bs, **k: _admit(
            lengths, free, bs, **k, need=lambda n: -(-n // bs)), "first token"),
        Wrong("floor instead of ceil", lambda lengths, free, bs, **k: _admit(
            lengths, free, bs, **k, need=lambda n: (n + 1) // bs), "ceil"),
        Wrong("counts tokens against the block budget", lambda lengths, free, bs, **k: _admit(
            lengths, free, bs, **k, need=lambda n: n + 1), "not tokens"),
        Wrong("ignores the running requests", lambda lengths, free, bs, *, running=0,
              max_batch=8: _admit(lengths, free, bs, running=running, max_batch=max_batch,
                                  cap=max_batch), "already holds"),
        Wrong("no batch cap", lambda lengths, free, bs, *, running=0, max_batch=8: _admit(
            lengths, free, bs, running=running, max_batch=max_batch, cap=len(lengths)),
              "capped"),
        Wrong("never subtracts the blocks", lambda *a, **k: _admit(*a, **k, spend=False),
              "subtract"),
        Wrong("no input checks", lambda *a, **k: _admit(*a, **k, guard=False), "ValueError"),
        Wrong("returns the admitted indices", _admit_list, "a count"),
    ],  # fmt: skip
    "serve_offload_break_even": [
        Wrong("floor", lambda *a: _break_even(*a, round_=math.floor), "round up"),
        Wrong("round to nearest", lambda *a: _break_even(*a, round_=round), "round up"),
        Wrong("no max(1, ...)", lambda *a: _break_even(*a, floor_one=False), "max(1"),
        Wrong("non-causal attention (4 L d)", lambda *a: _break_even(*a, causal=4), "causal"),
        Wrong("forgets the weight FLOPs", lambda *a: _break_even(*a, weights=False),
              "weights"),
        Wrong("bits for bytes", lambda *a: _break_even(*a, bits=8), "bits"),
        Wrong("returns a float", lambda *a: float(_break_even(*a)), "int"),
        Wrong("divides by zero on a zero bandwidth", lambda *a: _break_even(*a, guard=False),
              "ValueError"),
    ],
    "serve_spec_expected_tokens": [
        Wrong("forgets the bonus token: (1 - α^k) / (1 - α)", _tokens_without_bonus,
              "k + 1 terms"),
        Wrong("counts only accepted draft tokens", _tokens_accepted_only, "only the accepted"),
        Wrong("1 + k α", lambda a, k: _tokens(a, k) and 1 + k * a, "first rejected"),
        Wrong("the infinite series 1 / (1 - α)", lambda a, k: _tokens(a, k) and (
            1 / (1 - a) if a < 1 else math.inf), "only k draft tokens"),
        Wrong("0 / 0 at α = 1", _tokens_zero_division, "α = 1"),
        Wrong("no input checks", lambda a, k: _tokens(a, k, guard=False), "ValueError"),
    ],
}

RIGHT = {
    "serve_merge_partials": [_merge],
    "serve_admit": [_admit],
    "serve_offload_break_even": [_break_even],
    "serve_spec_expected_tokens": [_tokens, _tokens_loop],
}

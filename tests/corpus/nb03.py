"""Wrong answers to notebook 03's exercises (tiling and the online softmax)."""

from __future__ import annotations

import math

import torch

from attn_course import tiling
from tests.corpus import Wrong

INF = float("inf")

# --- online_softmax_step -----------------------------------------------------------------------


def _step(m, l, acc, s, v, *, rescale_l=True, rescale_acc=True, running=True,  # noqa: E741
          inverted=False, guard=True, one_max=False, columns=True):  # fmt: skip
    """A student's update; ``guard`` shifts fully masked rows by 0 instead of -inf."""
    block_max = s.amax() if one_max else s.amax(dim=-1)
    m_new = torch.maximum(m, block_max) if running else block_max
    shift = m_new.masked_fill(m_new == -INF, 0.0) if guard else m_new
    alpha = torch.exp(shift - m) if inverted else torch.exp(m - shift)
    p = torch.exp(s - shift[:, None])
    l_new = (alpha * l if rescale_l else l) + p.sum(-1)
    scaled = (alpha[:, None] if columns else alpha) * acc
    return m_new, l_new, (scaled if rescale_acc else acc) + p @ v


def _step_unguarded(m, l, acc, s, v):  # noqa: E741 - the worked solution before the fix
    m_new = torch.maximum(m, s.amax(dim=-1))
    alpha = torch.exp(m - m_new)  # exp(-inf - -inf) = nan for a fully masked row
    p = torch.exp(s - m_new[:, None])
    return m_new, alpha * l + p.sum(-1), alpha[:, None] * acc + p @ v


def _step_guards_alpha_only(m, l, acc, s, v):  # noqa: E741
    m_new = torch.maximum(m, s.amax(dim=-1))
    alpha = torch.exp(m - m_new).nan_to_num(0.0)
    p = torch.exp(s - m_new[:, None])  # still nan in a fully masked row
    return m_new, alpha * l + p.sum(-1), alpha[:, None] * acc + p @ v


def _step_large_negative(m, l, acc, s, v):  # noqa: E741
    s = s.masked_fill(s == -INF, -1e9)  # "-inf is trouble, use a big negative number"
    m_new = torch.maximum(m, s.amax(dim=-1))
    alpha, p = torch.exp(m - m_new), torch.exp(s - m_new[:, None])
    return m_new, alpha * l + p.sum(-1), alpha[:, None] * acc + p @ v


def _step_returns_shift(m, l, acc, s, v):  # noqa: E741
    m_new = torch.maximum(m, s.amax(dim=-1))
    m_new = m_new.masked_fill(m_new == -INF, 0.0)  # guarded, but the guard is returned as m
    alpha, p = torch.exp(m - m_new), torch.exp(s - m_new[:, None])
    return m_new, alpha * l + p.sum(-1), alpha[:, None] * acc + p @ v


def _step_exp_ratio(m, l, acc, s, v):  # noqa: E741
    m_new = torch.maximum(m, s.amax(dim=-1))
    shift = m_new.masked_fill(m_new == -INF, 0.0)
    alpha = torch.exp(m) / torch.exp(shift)  # the same on paper; overflows for large m
    p = torch.exp(s) / torch.exp(shift)[:, None]
    return m_new, alpha * l + p.sum(-1), alpha[:, None] * acc + p @ v


def _step_normalised(m, l, acc, s, v):  # noqa: E741
    m_new, l_new, acc_new = _step(m, l, acc, s, v)
    return m_new, l_new, acc_new / l_new.masked_fill(l_new == 0, 1.0)[:, None]


def _step_in_place(m, l, acc, s, v):  # noqa: E741
    m_new, l_new, acc_new = _step(m, l, acc, s, v)
    acc.copy_(acc_new)
    return m_new, l_new, acc


def _step_float64(m, l, acc, s, v):  # noqa: E741
    return _step(m.double(), l.double(), acc.double(), s.double(), v.double())


# --- online_softmax_final ---------------------------------------------------------------------


def _finish(m, l, acc):  # noqa: E741
    empty = l == 0
    out = acc / l.masked_fill(empty, 1.0)[:, None]
    return out, torch.where(empty, torch.full_like(m, -INF), m + torch.log(l))


def _finish_unguarded(m, l, acc):  # noqa: E741
    return acc / l[:, None], m + torch.log(l)


def _finish_lse_without_m(m, l, acc):  # noqa: E741
    return _finish(m, l, acc)[0], torch.log(l)


def _finish_divides_by_exp_m(m, l, acc):  # noqa: E741
    return acc * torch.exp(-m)[:, None], _finish(m, l, acc)[1]


def _finish_not_broadcast(m, l, acc):  # noqa: E741
    return acc / l.masked_fill(l == 0, 1.0), _finish(m, l, acc)[1]


def _finish_lse_overflows(m, l, acc):  # noqa: E741
    return _finish(m, l, acc)[0], torch.log(torch.exp(m) * l)


def _finish_lse_zero_when_empty(m, l, acc):  # noqa: E741
    lse = torch.where(l == 0, torch.zeros_like(m), m + torch.log(l.masked_fill(l == 0, 1.0)))
    return _finish(m, l, acc)[0], lse


def _finish_no_log(m, l, acc):  # noqa: E741
    return _finish(m, l, acc)[0], torch.where(l == 0, torch.full_like(m, -INF), m + l)


def _finish_in_place(m, l, acc):  # noqa: E741
    l[l == 0] = 1.0
    return acc / l[:, None], m + torch.log(l)


def _finish_nan_to_num(m, l, acc):  # noqa: E741
    # nan_to_num turns 0/0 into 0, and -inf + log(0) is -inf: right without a guard.
    return (acc / l[:, None]).nan_to_num(0.0), m + torch.log(l)


# --- tiled_hbm_bytes ----------------------------------------------------------------------------


def _traffic(n, d, sram, b, *, ceil=math.ceil, lse=1, o=1, kv=2, passes=None, m_bytes=False):
    m = sram if m_bytes else sram // b
    block = ceil(m / (4 * d))
    t_r = ceil(n / block) if passes is None else passes
    return (n * d + kv * n * d * t_r + o * n * d + lse * n) * b


def _traffic_block_floor(n, d, sram_bytes, b):
    block_q = sram_bytes // b // (4 * d)
    return (2 * n * d + 2 * n * d * math.ceil(n / block_q) + n) * b


def _traffic_passes_floor(n, d, sram_bytes, b):
    block_q = math.ceil(sram_bytes // b / (4 * d))
    return (2 * n * d + 2 * n * d * (n // block_q) + n) * b


def _traffic_true_division(n, d, sram_bytes, b):
    block_q = math.ceil(sram_bytes / b / (4 * d))  # M = 512.5 elements for 1025 B of fp16
    return (2 * n * d + 2 * n * d * math.ceil(n / block_q) + n) * b


def _traffic_integers(n, d, sram_bytes, bytes_per_element):
    m = sram_bytes // bytes_per_element
    block_q = -(-m // (4 * d))
    passes = -(-n // block_q)
    return bytes_per_element * (2 * n * d * (1 + passes) + n)


# --- causal_tiles -------------------------------------------------------------------------------


def _t(n, block):
    return -(-n // block)


WRONG = {
    "online_softmax_step": [
        Wrong("no rescaling at all", lambda *a: _step(*a, rescale_l=False, rescale_acc=False),
              "multiply both by α"),
        Wrong("rescales ℓ but not acc", lambda *a: _step(*a, rescale_acc=False),
              "rescaled ℓ but not acc"),
        Wrong("rescales acc but not ℓ", lambda *a: _step(*a, rescale_l=False), "did not correct ℓ"),
        Wrong("the block's own max", lambda *a: _step(*a, running=False), "running"),
        Wrong("one max for the whole block", lambda *a: _step(*a, one_max=True), "own running max"),
        Wrong("the inverted factor", lambda *a: _step(*a, inverted=True), "not its inverse"),
        Wrong("α * acc without [:, None]", lambda *a: _step(*a, columns=False), "α[:, None]"),
        Wrong("normalises acc every step", _step_normalised, "unnormalised"),
        Wrong("nan for a fully masked row (no guard)", _step_unguarded, "only masked"),
        Wrong("guards α but not p", _step_guards_alpha_only, "shift = m_new.masked_fill"),
        Wrong("-inf replaced by -1e9", _step_large_negative, "count as real ones"),
        Wrong("returns the 0 shift as m", _step_returns_shift, "keeps m = -inf"),
        Wrong("exp(s) / exp(m): overflows on large rows", _step_exp_ratio, "overflows"),
        Wrong("updates acc in place", _step_in_place, "in place"),
        Wrong("returns float64 for float32 inputs", _step_float64, "dtype"),
        Wrong("the course's online_softmax_update", tiling.online_softmax_update,
              "tiling.online_softmax_update"),
    ],
    "online_softmax_final": [
        Wrong("no guard for ℓ = 0", _finish_unguarded, "ℓ = 0"),
        Wrong("lse without m", _finish_lse_without_m, "add m back"),
        Wrong("divides by exp(m)", _finish_divides_by_exp_m, "not by exp(m)"),
        Wrong("ℓ not broadcast over the columns", _finish_not_broadcast, "l[:, None]"),
        Wrong("log(exp(m) · ℓ)", _finish_lse_overflows, "overflows"),
        Wrong("lse = 0 for an empty row", _finish_lse_zero_when_empty, "-inf"),
        Wrong("m + ℓ, no log", _finish_no_log, "log of ℓ"),
        Wrong("fixes ℓ in place", _finish_in_place, "in place"),
        Wrong("the course's online_softmax_finish", tiling.online_softmax_finish,
              "tiling.online_softmax_finish"),
    ],
    "tiled_hbm_bytes": [
        Wrong("forgets the logsumexp", lambda n, d, s, b: _traffic(n, d, s, b, lse=0), "logsumexp"),
        Wrong("forgets writing O", lambda n, d, s, b: _traffic(n, d, s, b, o=0), "output O"),
        Wrong("K only, not V", lambda n, d, s, b: _traffic(n, d, s, b, kv=1), "K *and* V"),
        Wrong("floor instead of ceiling", lambda n, d, s, b: _traffic(n, d, s, b, ceil=math.floor),
              "round both up"),
        Wrong("B_r rounded down", _traffic_block_floor, "B_r = ⌈M / (4d)⌉ rounds up"),
        Wrong("T_r rounded down", _traffic_passes_floor, "its own pass"),
        Wrong("K and V read once", lambda n, d, s, b: _traffic(n, d, s, b, passes=1),
              "per query block"),
        Wrong("M in bytes", lambda n, d, s, b: _traffic(n, d, s, b, m_bytes=True),
              "M counts elements"),
        Wrong("M = sram_bytes / b, a fraction", _traffic_true_division, "whole elements"),
        Wrong("elements, not bytes", lambda n, d, s, b: _traffic(n, d, s, b) // b, "in bytes"),
        Wrong("a float (np.ceil)", lambda n, d, s, b: float(_traffic(n, d, s, b)), "integer"),
        Wrong("the course's tiled_hbm_bytes", lambda n, d, s, b: int(tiling.tiled_hbm_bytes(
            n, d, s, {1: "float8", 2: "float16", 4: "float32"}[b])), "tiling.tiled_hbm_bytes"),
    ],
    "causal_tiles": [
        Wrong("diagonal tiles left out", lambda n, b: _t(n, b) * (_t(n, b) - 1) // 2,
              "off by one"),
        Wrong("floor: the short last block forgotten", lambda n, b: (n // b) * (n // b + 1) // 2,
              "shorter last block"),
        Wrong("every tile", lambda n, b: _t(n, b) ** 2, "every tile"),
        Wrong("T² / 2", lambda n, b: _t(n, b) ** 2 // 2, "undercounts"),
        Wrong("a float count", lambda n, b: _t(n, b) * (_t(n, b) + 1) / 2, "integer"),
        Wrong("entries instead of tiles", lambda n, b: n * (n + 1) // 2, "not entries"),
        Wrong("the course's visited_tiles", lambda n, b: tiling.visited_tiles(n, b, b, True),
              "tiling.visited_tiles"),
    ],
}


def _step_clamped_shift(m, l, acc, s, v):  # noqa: E741
    # A finite stand-in for -inf inside the exponentials only: as right as a 0 shift.
    m_new = torch.maximum(m, s.amax(dim=-1))
    shift = m_new.clamp(min=-1e30)
    alpha, p = torch.exp(m - shift), torch.exp(s - shift[:, None])
    return m_new, alpha * l + p.sum(-1), alpha[:, None] * acc + p @ v


def _step_where(m, l, acc, s, v):  # noqa: E741
    m_new = torch.maximum(m, s.amax(dim=-1))
    seen = ~torch.isneginf(m_new)
    alpha = torch.where(seen, torch.exp(m - m_new), torch.zeros_like(m))
    p = torch.where(seen[:, None], torch.exp(s - m_new[:, None]), torch.zeros_like(s))
    return m_new, alpha * l + p.sum(-1), alpha[:, None] * acc + p @ v


def _step_nan_to_num(m, l, acc, s, v):  # noqa: E741
    m_new = torch.maximum(m, s.amax(dim=-1))
    alpha = torch.exp(m - m_new).nan_to_num(0.0)
    p = torch.exp(s - m_new[:, None]).nan_to_num(0.0)
    return m_new, alpha * l + p.sum(-1), alpha[:, None] * acc + p @ v


RIGHT = {
    "online_softmax_step": [_step, _step_clamped_shift, _step_where, _step_nan_to_num],
    "online_softmax_final": [_finish, _finish_nan_to_num],
    "tiled_hbm_bytes": [_traffic, _traffic_integers],
    "causal_tiles": [
        lambda n, b: sum(range(1, _t(n, b) + 1)),
        lambda n, b: sum(1 for i in range(_t(n, b)) for j in range(_t(n, b)) if j <= i),
    ],
}

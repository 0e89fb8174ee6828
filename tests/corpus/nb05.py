"""Wrong answers to notebook 05's exercises (linear / kernel attention)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from attn_course import linear
from tests.corpus import Wrong

# --- linear_recurrent_step ---------------------------------------------------------------


def _step_read_before_write(state, z, phi_q, phi_k, v):
    out = (phi_q @ state) / (phi_q @ z).clamp_min(1e-300)
    return out, state + torch.outer(phi_k, v), z + phi_k


def _step_in_place(state, z, phi_q, phi_k, v):
    state += torch.outer(phi_k, v)
    z += phi_k
    return (phi_q @ state) / (phi_q @ z), state, z


def _step_no_normaliser(state, z, phi_q, phi_k, v):
    state = state + torch.outer(phi_k, v)
    return phi_q @ state, state, z + phi_k


def _step_query_in_state(state, z, phi_q, phi_k, v):
    state, z = state + torch.outer(phi_q, v), z + phi_q
    return (phi_q @ state) / (phi_q @ z), state, z


def _step_state_transposed(state, z, phi_q, phi_k, v):
    new_state = state.T + torch.outer(v, phi_k)  # d_v × m
    z = z + phi_k
    return (new_state @ phi_q) / (phi_q @ z), new_state, z


def _step_old_normaliser_returned(state, z, phi_q, phi_k, v):
    state, new_z = state + torch.outer(phi_k, v), z + phi_k
    return (phi_q @ state) / (phi_q @ new_z), state, z


def _step_old_state_returned(state, z, phi_q, phi_k, v):
    new_state, new_z = state + torch.outer(phi_k, v), z + phi_k
    return (phi_q @ new_state) / (phi_q @ new_z), state, new_z


def _step_old_denominator(state, z, phi_q, phi_k, v):
    state = state + torch.outer(phi_k, v)
    return (phi_q @ state) / (phi_q @ z).clamp_min(1e-300), state, z + phi_k


def _step_wrong_order(state, z, phi_q, phi_k, v):
    state, z = state + torch.outer(phi_k, v), z + phi_k
    return state, z, (phi_q @ state) / (phi_q @ z)


def _step_normaliser_from_query(state, z, phi_q, phi_k, v):
    state, z = state + torch.outer(phi_k, v), z + phi_q
    return (phi_q @ state) / (phi_q @ z), state, z


# --- linear_crossover_n -------------------------------------------------------------------


def _validated(formula):
    def crossover(head_dim, features):
        if head_dim < 1 or features < 1:
            raise ValueError("head_dim and features must be >= 1")
        return formula(head_dim, features)

    return crossover


# --- elu_linear_attention -------------------------------------------------------------------


def _phi(x):
    return F.elu(x) + 1


def _elu_row_chunked(q, k, v):
    """The right numbers with O(n²) work: 64 rows of φ(Q)φ(K)ᵀ at a time (small peak)."""
    phi_q, phi_k = _phi(q), _phi(k)
    rows = []
    for start in range(0, q.shape[-2], 64):
        weights = phi_q[..., start:start + 64, :] @ phi_k.transpose(-2, -1)
        rows.append((weights @ v) / weights.sum(-1, keepdim=True))
    return torch.cat(rows, dim=-2)


def _elu_broadcast_rows(q, k, v):
    """O(n²) work without a single matmul: one query at a time, broadcast products."""
    phi_q, phi_k = _phi(q), _phi(k)
    rows = []
    for i in range(q.shape[-2]):
        weights = (phi_q[..., i, None, :] * phi_k).sum(-1)  # (..., n)
        numerator = (weights[..., :, None] * v).sum(-2)
        rows.append(numerator / weights.sum(-1, keepdim=True))
    return torch.stack(rows, dim=-2)


def _elu_quadratic(q, k, v):
    weights = _phi(q) @ _phi(k).transpose(-2, -1)
    return (weights @ v) / weights.sum(-1, keepdim=True)


def _elu_no_normaliser(q, k, v):
    return _phi(q) @ (_phi(k).transpose(-2, -1) @ v)


def _elu_without_one(q, k, v):
    phi_q, phi_k = F.elu(q), F.elu(k)
    return (phi_q @ (phi_k.transpose(-2, -1) @ v)) / (phi_q @ phi_k.sum(-2).unsqueeze(-1))


def _elu_causal(q, k, v):
    phi_q, phi_k = _phi(q), _phi(k)
    state = torch.cumsum(phi_k.unsqueeze(-1) * v.unsqueeze(-2), dim=-3)  # running S_i
    normaliser = torch.cumsum(phi_k, dim=-2)
    return (phi_q.unsqueeze(-1) * state).sum(-2) / (phi_q * normaliser).sum(-1, keepdim=True)


def _elu_scaled(q, k, v):
    phi_q, phi_k = _phi(q / math.sqrt(q.shape[-1])), _phi(k)
    return (phi_q @ (phi_k.transpose(-2, -1) @ v)) / (phi_q @ phi_k.sum(-2).unsqueeze(-1))


def _elu_upcast(q, k, v):
    q, k, v = q.double(), k.double(), v.double()
    phi_q, phi_k = _phi(q), _phi(k)
    return (phi_q @ (phi_k.transpose(-2, -1) @ v)) / (phi_q @ phi_k.sum(-2).unsqueeze(-1))


def _elu_in_place(q, k, v):
    phi_q, phi_k = F.elu(q, inplace=True).add_(1), F.elu(k, inplace=True).add_(1)
    return (phi_q @ (phi_k.transpose(-2, -1) @ v)) / (phi_q @ phi_k.sum(-2).unsqueeze(-1))


def _elu_exp_features(q, k, v):
    phi_q, phi_k = q.exp(), k.exp()
    return (phi_q @ (phi_k.transpose(-2, -1) @ v)) / (phi_q @ phi_k.sum(-2).unsqueeze(-1))


# --- linear_chunk_step ---------------------------------------------------------------------


def _chunk(state, z, phi_q, phi_k, v, *, mask=torch.tril, inter=True, read_new=False,
           denominator=True, intra_denominator=True):  # fmt: skip
    new_state, new_z = state + phi_k.T @ v, z + phi_k.sum(0)
    read_state, read_z = (new_state, new_z) if read_new else (state, z)
    inside = mask(phi_q @ phi_k.T)
    numerator = inside @ v + (phi_q @ read_state if inter else 0)
    if not denominator:
        return numerator, new_state, new_z
    below = (inside.sum(-1) if intra_denominator else 0) + (phi_q @ read_z if inter else 0)
    return numerator / below[:, None], new_state, new_z


def _chunk_unmasked(*args):
    return _chunk(*args, mask=lambda w: w)


def _chunk_strict(*args):
    return _chunk(*args, mask=lambda w: w.tril(-1))


def _chunk_no_state(*args):
    return _chunk(*args, inter=False)


def _chunk_double_counted(*args):
    return _chunk(*args, read_new=True)


def _chunk_new_state_only(state, z, phi_q, phi_k, v):
    """Updates first, then reads every row out of the updated state: sees the whole chunk."""
    state, z = state + phi_k.T @ v, z + phi_k.sum(0)
    return (phi_q @ state) / (phi_q @ z)[:, None], state, z


def _chunk_no_normaliser(*args):
    return _chunk(*args, denominator=False)


def _chunk_no_intra_denominator(*args):
    return _chunk(*args, intra_denominator=False)


def _chunk_in_place(state, z, phi_q, phi_k, v):
    inside = (phi_q @ phi_k.T).tril()
    out = (phi_q @ state + inside @ v) / (phi_q @ z + inside.sum(-1))[:, None]
    state += phi_k.T @ v
    z += phi_k.sum(0)
    return out, state, z


def _chunk_state_not_updated(state, z, phi_q, phi_k, v):
    out, _, new_z = _chunk(state, z, phi_q, phi_k, v)
    return out, state, new_z


def _chunk_normaliser_summed_whole(state, z, phi_q, phi_k, v):
    out, new_state, _ = _chunk(state, z, phi_q, phi_k, v)
    return out, new_state, z + phi_k.sum()  # every entry, not a sum per feature


def _chunk_state_from_queries(state, z, phi_q, phi_k, v):
    out, _, new_z = _chunk(state, z, phi_q, phi_k, v)
    return out, state + phi_q.T @ v, new_z


def _chunk_by_recurrent_steps(state, z, phi_q, phi_k, v):
    """Right numbers, but through the package's recurrence (one token at a time)."""
    outs = []
    for t in range(phi_q.shape[0]):
        out, state, z = linear.recurrent_step(state, z, phi_q[t], phi_k[t], v[t])
        outs.append(out)
    return (torch.stack(outs) if outs else v.new_zeros(0, v.shape[-1])), state, z


def _chunk_by_package(state, z, phi_q, phi_k, v):
    """The package's chunked form for the chunk's own part, the state added by hand."""
    inside = linear.causal_linear_attention_chunked(phi_q, phi_k, v, chunk_size=len(v) or 1)
    weights = (phi_q @ phi_k.T).tril().sum(-1)
    out = (phi_q @ state + inside * weights[:, None]) / (phi_q @ z + weights)[:, None]
    return out, state + phi_k.T @ v, z + phi_k.sum(0)


WRONG = {
    "linear_recurrent_step": [
        Wrong("reads out before adding the token", _step_read_before_write, "before"),
        Wrong("updates S and z in place", _step_in_place, "changed its input"),
        Wrong("no normaliser", _step_no_normaliser, "φ(q_t) · z_t"),
        Wrong("state built from the query", _step_query_in_state, "the query only reads"),
        Wrong("state transposed (d_v × m)", _step_state_transposed, "m × d_v"),
        Wrong("returns the old normaliser", _step_old_normaliser_returned, "new* normaliser"),
        Wrong("returns the old state", _step_old_state_returned, "new* state"),
        Wrong("old z in the denominator", _step_old_denominator, "*new* z"),
        Wrong("results in the wrong order", _step_wrong_order, "in this order"),
        Wrong("normaliser from the query", _step_normaliser_from_query, "*keys'* features"),
        Wrong("the package's recurrent_step", linear.recurrent_step, "linear.recurrent_step"),
    ],
    "linear_crossover_n": [
        Wrong("no normaliser column", _validated(lambda d, m: float(m)), "normaliser"),
        Wrong("d and m swapped", _validated(lambda d, m: d * (m + 1) / m), "swapped"),
        Wrong("integer division", _validated(lambda d, m: m * (d + 1) // d), "round"),
        Wrong("causal softmax count", _validated(lambda d, m: 2 * m * (d + 1) / d), "non-causal"),
        Wrong("normaliser as a feature", _validated(lambda d, m: float(m + 1)), "extra *value*"),
        Wrong("no validation", lambda d, m: m * (d + 1) / d, "ValueError"),
        Wrong("the package's predicted_crossover_n",
              _validated(lambda d, m: linear.predicted_crossover_n(d, features=m)),
              "predicted_crossover_n"),
    ],
    "elu_linear_attention": [
        Wrong("O(n²) work in row chunks (small peak)", _elu_row_chunked, "work grew"),
        Wrong("O(n²) broadcast products, no matmul", _elu_broadcast_rows, "work grew"),
        Wrong("(φQ φKᵀ) V, an n × n matrix", _elu_quadratic, "n × n"),
        Wrong("no normaliser", _elu_no_normaliser, "normaliser"),
        Wrong("no + 1", _elu_without_one, "+ 1"),
        Wrong("causal instead of non-causal", _elu_causal, "non-causal"),
        Wrong("scaled by 1/√d", _elu_scaled, "1/√d"),
        Wrong("returns float64", _elu_upcast, "dtype"),
        Wrong("elu in place on q and k", _elu_in_place, "changed its input"),
        Wrong("exp features", _elu_exp_features, "not exp(x)"),
        Wrong("the package's linear_attention", lambda q, k, v: linear.linear_attention(
            linear.elu_feature_map(q), linear.elu_feature_map(k), v), "linear.linear_attention"),
        Wrong("the package's kernel_attention_explicit", lambda q, k, v:
              linear.kernel_attention_explicit(linear.elu_feature_map(q),
                                               linear.elu_feature_map(k), v),
              "kernel_attention_explicit"),
    ],
    "linear_chunk_step": [
        Wrong("c × c product not masked", _chunk_unmasked, "tril"),
        Wrong("strict j < i mask", _chunk_strict, "keep the diagonal"),
        Wrong("forgets the earlier chunks", _chunk_no_state, "earlier chunks are missing"),
        Wrong("rows read the updated state", _chunk_double_counted, "double counting"),
        Wrong("reads everything from the updated state", _chunk_new_state_only, "updated state"),
        Wrong("no normaliser", _chunk_no_normaliser, "normaliser"),
        Wrong("denominator without the chunk's own weights", _chunk_no_intra_denominator,
              "chunk's own weights"),
        Wrong("updates S and z in place", _chunk_in_place, "changed its input"),
        Wrong("returns the old state", _chunk_state_not_updated, "new* state"),
        Wrong("normaliser: the sum of every entry", _chunk_normaliser_summed_whole, "phi_k.sum(0)"),
        Wrong("state built from the queries", _chunk_state_from_queries, "queries only read"),
        Wrong("the package's recurrent_step, token by token", _chunk_by_recurrent_steps,
              "linear.recurrent_step"),
        Wrong("the package's chunked form", _chunk_by_package, "causal_linear_attention_chunked"),
    ],
}

RIGHT = {
    "linear_recurrent_step": [
        lambda state, z, phi_q, phi_k, v: (lambda s, n: ((phi_q @ s) / (phi_q * n).sum(), s, n))(
            state + phi_k[:, None] * v[None, :], z + phi_k),
    ],
    "linear_crossover_n": [_validated(lambda d, m: m + m / d)],
    "elu_linear_attention": [
        lambda q, k, v: (lambda pq, pk: torch.einsum("...nm,...md->...nd", pq, torch.einsum(
            "...nm,...nd->...md", pk, v)) / (pq * pk.sum(-2, keepdim=True)).sum(-1, True))(
            _phi(q), _phi(k)),
        # the package's feature map is fine: it is only F.elu(x) + 1
        lambda q, k, v: (lambda pq, pk: (pq @ (pk.transpose(-2, -1) @ v))
                         / (pq @ pk.sum(-2)[..., None]))(linear.elu_feature_map(q),
                                                         linear.elu_feature_map(k)),
    ],
    "linear_chunk_step": [
        # one token at a time with the student's own recurrence: slower, but right
        lambda state, z, phi_q, phi_k, v: _own_recurrent_chunk(state, z, phi_q, phi_k, v),
    ],
}


def _own_recurrent_chunk(state, z, phi_q, phi_k, v):
    outs = []
    for t in range(phi_q.shape[0]):
        state, z = state + torch.outer(phi_k[t], v[t]), z + phi_k[t]
        outs.append((phi_q[t] @ state) / (phi_q[t] @ z))
    return (torch.stack(outs) if outs else v.new_zeros(0, v.shape[-1])), state, z

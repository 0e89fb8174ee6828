"""Linear (kernel) attention, notebook 05: what it costs, what it computes, and what it loses.

Softmax attention weights key j for query i by exp(q_i · k_j). Replace that weight by an
inner product of *features*, sim(q, k) = φ(q) · φ(k) with φ: R^d -> R^m, and the sum over
keys can be reordered:

    out_i = Σ_j φ(q_i)·φ(k_j) v_j / Σ_j φ(q_i)·φ(k_j)
          = φ(q_i) (Σ_j φ(k_j)ᵀ v_j) / φ(q_i) (Σ_j φ(k_j))
          = φ(q_i) S / φ(q_i) z            S = φ(K)ᵀ V  (m × d_v),   z = φ(K)ᵀ 1  (m)

S and z do not depend on i: computed once, O(n · m · d_v), instead of the n × n matrix of
weights, O(n² · d). With causal masking, S and z become running sums over j <= i, and
attention turns into a recurrent network with a fixed-size state (S, z).

Conventions: tensors are (..., n, features), any leading (batch, heads) dimensions; φ(q)
and φ(k) are (..., n, m), v is (..., n, d_v). Feature maps must be non-negative so that the
normaliser φ(q)·z is a sum of non-negative weights (checked: a negative feature is a
ValueError). FLOP counts follow :mod:`attn_course.cost`: matmuls only, a multiply-add is
2 FLOPs.

Map: feature maps (:func:`elu_feature_map`, :func:`performer_projection`,
:func:`performer_features`); non-causal (:func:`kernel_attention_explicit`,
:func:`linear_attention`); the three causal forms (:func:`causal_linear_attention_parallel`,
:func:`causal_linear_attention_recurrent`, :func:`causal_linear_attention_chunked`, one step
:func:`recurrent_step`); approximating softmax (:func:`random_feature_attention`,
:func:`random_feature_error`); Linformer (:func:`linformer_projections`,
:func:`linformer_attention`, :func:`future_influence`); costs (:func:`linear_attention_flops`,
:func:`softmax_attention_flops`, :func:`predicted_crossover_n`, :func:`linear_state_bytes`,
:func:`decode_memory_table`); measurements (:func:`measure_crossover`,
:func:`measured_crossover_n`, :func:`crossover_figure`, :func:`retrieval_accuracy`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots

from attn_course.cost import attention_matmul_flops
from attn_course.cost import kv_cache_bytes as _kv_cache_bytes
from attn_course.figures import style, vline
from attn_course.measure import measure_peak_bytes, time_call
from attn_course.scores import naive_attention, validate_qkv
from attn_course.validate import (
    bytes_per_element,
    check_count,
    check_flag,
    check_positive,
    describe_value,
    resolve_dtype,
    resolve_scale,
)

__all__ = [
    "CrossoverRow",
    "RETRIEVAL_METHODS",
    "causal_linear_attention_chunked",
    "causal_linear_attention_parallel",
    "causal_linear_attention_recurrent",
    "crossover_figure",
    "decode_memory_table",
    "elu_feature_map",
    "future_influence",
    "kernel_attention_explicit",
    "linear_attention",
    "linear_attention_flops",
    "linear_state_bytes",
    "linformer_attention",
    "linformer_projections",
    "mamba_scan_flops",
    "mamba_state_bytes",
    "measure_crossover",
    "measured_crossover_n",
    "performer_features",
    "performer_projection",
    "predicted_crossover_n",
    "random_feature_attention",
    "random_feature_error",
    "random_feature_error_figure",
    "recurrent_step",
    "retrieval_accuracy",
    "retrieval_figure",
    "retrieval_task",
    "softmax_attention_flops",
]


# --- feature maps -----------------------------------------------------------------------


def elu_feature_map(x: torch.Tensor) -> torch.Tensor:
    """φ(x) = elu(x) + 1 (Katharopoulos et al., 2020): positive, m = d features, no randomness.

    elu(x) + 1 is x + 1 for x > 0 and e^x for x <= 0, so every feature is > 0 and the
    normaliser never vanishes. It is *not* an approximation of exp(q·k): it is a different
    similarity, which a model trained with it learns to use.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point torch.Tensor, got {describe_value(x)}")
    return F.elu(x) + 1.0


def performer_projection(
    head_dim: int,
    features: int,
    *,
    generator: torch.Generator | None = None,
    orthogonal: bool = True,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """The (features × head_dim) matrix W of Performer's random features (Choromanski et al.).

    Rows w ~ N(0, I_d). ``orthogonal=True`` draws them in blocks of d mutually orthogonal
    rows (QR of a Gaussian matrix), each rescaled to the length of a Gaussian vector
    (a chi(d) draw), which keeps every row's distribution and lowers the estimator's
    variance. Redraw by passing another ``generator`` (seeded: ``torch.Generator().
    manual_seed(s)``); the same seed gives the same W.
    """
    head_dim, features = check_count("head_dim", head_dim), check_count("features", features)
    orthogonal = check_flag("orthogonal", orthogonal)
    dtype = resolve_dtype(dtype)
    gaussian = torch.randn(features, head_dim, generator=generator, dtype=torch.float64)
    if not orthogonal:
        return gaussian.to(dtype)
    blocks = []
    for start in range(0, features, head_dim):
        block = torch.randn(head_dim, head_dim, generator=generator, dtype=torch.float64)
        q, _ = torch.linalg.qr(block)  # columns orthonormal
        blocks.append(q.T[: min(head_dim, features - start)])
    rows = torch.cat(blocks)
    lengths = gaussian.norm(dim=1, keepdim=True)  # chi(d): the length a Gaussian row has
    return (rows * lengths).to(dtype)


def performer_features(
    x: torch.Tensor, projection: torch.Tensor, *, stabilise: str = "none"
) -> torch.Tensor:
    """Positive random features φ(x) = exp(W x − |x|²/2) / √m, shape (..., n, m).

    E_w[φ(q)·φ(k)] · m/m = E_w[exp(w·q − |q|²/2) exp(w·k − |k|²/2)] = exp(q · k): an
    unbiased estimate of the softmax kernel, with every term positive (so the normaliser
    cannot go negative, unlike sin/cos features). Scale q and k by d^(-1/4) first to get
    exp(q·k/√d).

    ``stabilise``: "none"; "row" subtracts each row's largest exponent (for queries: a
    factor per query that cancels between numerator and denominator); "all" subtracts one
    largest exponent over the whole tensor (for keys: one factor that cancels too). Both
    keep exp from overflowing without changing the attention output.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point torch.Tensor, got {describe_value(x)}")
    if not isinstance(projection, torch.Tensor) or projection.dim() != 2:
        raise ValueError(
            f"projection must be a (features, head_dim) tensor, got {describe_value(projection)}"
        )
    if projection.shape[1] != x.shape[-1]:
        raise ValueError(
            f"projection has head_dim {projection.shape[1]} but x has {x.shape[-1]} features"
        )
    if stabilise not in ("none", "row", "all"):
        raise ValueError(f"stabilise must be 'none', 'row' or 'all', got {stabilise!r}")
    exponent = x @ projection.to(x.dtype).T - 0.5 * (x * x).sum(-1, keepdim=True)
    if stabilise == "row":
        exponent = exponent - exponent.amax(-1, keepdim=True)
    elif stabilise == "all":
        exponent = exponent - exponent.amax()
    return torch.exp(exponent) / math.sqrt(projection.shape[0])


# --- validation -------------------------------------------------------------------------


def _validate_features(phi_q: Any, phi_k: Any, v: Any) -> None:
    """φ(q), φ(k), v as :func:`attn_course.scores.validate_qkv` wants them, and φ >= 0."""
    validate_qkv(phi_q, phi_k, v)
    for name, phi in (("phi_q", phi_q), ("phi_k", phi_k)):
        if not torch.isfinite(phi).all():
            raise ValueError(f"{name} has inf or nan entries; feature values must be finite")
        if (phi < 0).any():
            raise ValueError(
                f"{name} has negative entries (min {phi.min().item():.3g}); linear attention "
                "needs non-negative features, e.g. elu_feature_map or performer_features"
            )


def _normalise(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """numerator / denominator row by row; a row whose weights are all 0 gives 0, not nan."""
    denominator = denominator.unsqueeze(-1)
    return numerator / denominator.masked_fill(denominator == 0, 1.0)


# --- non-causal: the kernel trick --------------------------------------------------------


def kernel_attention_explicit(
    phi_q: torch.Tensor, phi_k: torch.Tensor, v: torch.Tensor, *, causal: bool = False
) -> torch.Tensor:
    """The quadratic way: A = φ(Q) φ(K)ᵀ (n × n weights), out = A V / rowsum(A). O(n² m)."""
    _validate_features(phi_q, phi_k, v)
    weights = phi_q @ phi_k.transpose(-2, -1)
    if check_flag("causal", causal):
        weights = weights.tril()  # keys j <= i (top-left aligned, as everywhere in the course)
    return _normalise(weights @ v, weights.sum(-1))


def linear_attention(
    phi_q: torch.Tensor, phi_k: torch.Tensor, v: torch.Tensor, *, causal: bool = False,
    chunk_size: int = 64,
) -> torch.Tensor:  # fmt: skip
    """The linear way: S = φ(K)ᵀ V, z = φ(K)ᵀ 1, out = φ(Q) S / φ(Q) z. O(n m d_v).

    Same result as :func:`kernel_attention_explicit` up to rounding: matrix products are
    associative, (φ(Q) φ(K)ᵀ) V = φ(Q) (φ(K)ᵀ V). ``causal=True`` runs
    :func:`causal_linear_attention_chunked` with ``chunk_size``.
    """
    causal = check_flag("causal", causal)
    chunk_size = check_count("chunk_size", chunk_size)  # checked even when unused: a typo is a typo
    if causal:
        return causal_linear_attention_chunked(phi_q, phi_k, v, chunk_size=chunk_size)
    _validate_features(phi_q, phi_k, v)
    state = phi_k.transpose(-2, -1) @ v  # (m × d_v): every key-value pair, summed
    normaliser = phi_k.sum(-2)  # (m,)
    return _normalise(phi_q @ state, (phi_q * normaliser.unsqueeze(-2)).sum(-1))


# --- causal: three equivalent forms ------------------------------------------------------


def causal_linear_attention_parallel(
    phi_q: torch.Tensor, phi_k: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """Form 1, parallel (training): masked n × n weights tril(φ(Q) φ(K)ᵀ). O(n² m) work."""
    return kernel_attention_explicit(phi_q, phi_k, v, causal=True)


def recurrent_step(
    state: torch.Tensor,
    normaliser: torch.Tensor,
    phi_q: torch.Tensor,
    phi_k: torch.Tensor,
    v: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One token of the recurrence: returns (out, new_state, new_normaliser).

        S_t = S_{t-1} + φ(k_t)ᵀ v_t      (..., m, d_v)
        z_t = z_{t-1} + φ(k_t)           (..., m)
        o_t = φ(q_t) S_t / (φ(q_t) · z_t)

    Shapes: state (..., m, d_v), normaliser (..., m), φ(q_t), φ(k_t) (..., m), v_t
    (..., d_v). New tensors are returned; the inputs are not changed.
    """
    state = state + phi_k.unsqueeze(-1) * v.unsqueeze(-2)
    normaliser = normaliser + phi_k
    numerator = (phi_q.unsqueeze(-1) * state).sum(-2)
    return _normalise(numerator, (phi_q * normaliser).sum(-1)), state, normaliser


def causal_linear_attention_recurrent(
    phi_q: torch.Tensor, phi_k: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """Form 2, recurrent (decoding): one :func:`recurrent_step` per token, state (m × d_v + m).

    Attention as an RNN: the memory does not grow with n. O(n m d_v) work, n sequential steps.
    """
    _validate_features(phi_q, phi_k, v)
    *lead, n, m = phi_q.shape
    state = phi_q.new_zeros((*lead, m, v.shape[-1]))
    normaliser = phi_q.new_zeros((*lead, m))
    outputs = []
    for t in range(n):
        out, state, normaliser = recurrent_step(
            state, normaliser, phi_q[..., t, :], phi_k[..., t, :], v[..., t, :]
        )
        outputs.append(out)
    return torch.stack(outputs, dim=-2)


def causal_linear_attention_chunked(
    phi_q: torch.Tensor, phi_k: torch.Tensor, v: torch.Tensor, *, chunk_size: int = 64
) -> torch.Tensor:
    """Form 3, chunked (what fast kernels do): parallel inside a chunk, recurrent across.

    For a chunk c of C tokens, with (S, z) summed over all earlier chunks:

        out_c = (φ(Q_c) S + tril(φ(Q_c) φ(K_c)ᵀ) V_c) / (φ(Q_c) z + rowsum(tril(...)))
        S += φ(K_c)ᵀ V_c,   z += φ(K_c)ᵀ 1

    Work O(n C m + n m d_v): C = 1 is the recurrence, C = n the parallel form. Matmuls of
    C rows keep the hardware busy; the state is written n / C times instead of n times.
    Any n: the last chunk may be shorter.
    """
    _validate_features(phi_q, phi_k, v)
    chunk_size = check_count("chunk_size", chunk_size)
    *lead, n, m = phi_q.shape
    state = phi_q.new_zeros((*lead, m, v.shape[-1]))
    normaliser = phi_q.new_zeros((*lead, m))
    outputs = []
    for start in range(0, n, chunk_size):
        chunk = slice(start, min(start + chunk_size, n))
        q_c, k_c, v_c = phi_q[..., chunk, :], phi_k[..., chunk, :], v[..., chunk, :]
        inside = (q_c @ k_c.transpose(-2, -1)).tril()  # (C × C) weights within the chunk
        numerator = q_c @ state + inside @ v_c
        denominator = (q_c * normaliser.unsqueeze(-2)).sum(-1) + inside.sum(-1)
        outputs.append(_normalise(numerator, denominator))
        state = state + k_c.transpose(-2, -1) @ v_c
        normaliser = normaliser + k_c.sum(-2)
    return torch.cat(outputs, dim=-2)


# --- approximating softmax with random features -----------------------------------------


def random_feature_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    features: int,
    *,
    causal: bool = False,
    scale: float | None = None,
    generator: torch.Generator | None = None,
    orthogonal: bool = True,
) -> torch.Tensor:
    """Performer (FAVOR+): linear attention whose φ estimates exp(scale · q·k).

    q and k are multiplied by √scale each (so q'·k' = scale · q·k), mapped with
    :func:`performer_features` (queries stabilised per row, keys globally: both factors
    cancel), then :func:`linear_attention`. The estimate converges to softmax attention as
    ``features`` grows.
    """
    validate_qkv(q, k, v)
    scale = resolve_scale(scale, q.shape[-1])
    projection = performer_projection(
        q.shape[-1], features, generator=generator, orthogonal=orthogonal, dtype=q.dtype
    ).to(q.device)
    root = math.sqrt(scale)
    phi_q = performer_features(q * root, projection, stabilise="row")
    phi_k = performer_features(k * root, projection, stabilise="all")
    return linear_attention(phi_q, phi_k, v, causal=causal)


def _relative_error(approx: torch.Tensor, exact: torch.Tensor) -> float:
    return float((approx - exact).norm() / exact.norm())


def random_feature_error(
    features: Sequence[int],
    qk_stds: Sequence[float],
    *,
    n: int = 256,
    head_dim: int = 32,
    draws: int = 3,
    seed: int = 0,
) -> list[dict[str, float]]:
    """Relative error ‖RF − softmax‖ / ‖softmax‖ of Performer attention, float64.

    For every (features m, qk_std σ): q, k ~ N(0, σ² I), v ~ N(0, I), scale 1/√d, averaged
    over ``draws`` projections. The estimator's variance grows like exp(|q|² + |k|²)·/m
    (Choromanski et al., Lemma 2), so the error falls as 1/√m and explodes as σ grows.
    Rows: {"features", "qk_std", "rel_error", "qk_scaled_std"} where qk_scaled_std is the
    measured standard deviation of the scaled scores q·k/√d.
    """
    rows = []
    for sigma in qk_stds:
        sigma = check_positive("qk_std", sigma)
        g = torch.Generator().manual_seed(seed)
        q = torch.randn(n, head_dim, generator=g, dtype=torch.float64) * sigma
        k = torch.randn(n, head_dim, generator=g, dtype=torch.float64) * sigma
        v = torch.randn(n, head_dim, generator=g, dtype=torch.float64)
        exact = naive_attention(q, k, v).out
        scaled_std = float((q @ k.T).std() / math.sqrt(head_dim))
        for m in features:
            m = check_count("features", m)
            errors = [
                _relative_error(
                    random_feature_attention(
                        q, k, v, m, generator=torch.Generator().manual_seed(seed + 1 + draw)
                    ),
                    exact,
                )
                for draw in range(check_count("draws", draws))
            ]
            rows.append({"features": m, "qk_std": sigma, "rel_error": sum(errors) / draws,
                         "qk_scaled_std": scaled_std})  # fmt: skip
    return rows


def random_feature_error_figure(
    rows: Sequence[dict[str, float]], *, n: int = 256, head_dim: int = 32
) -> go.Figure:
    """Log-log plot of :func:`random_feature_error` rows: relative error against the number
    of features m, one line per σ, and a 1/√m guide through the first point. ``n`` and
    ``head_dim`` are those the rows were measured at (for the title)."""
    if not rows:
        raise ValueError("rows must hold at least one measurement")
    figure = go.Figure()
    for sigma in dict.fromkeys(r["qk_std"] for r in rows):
        curve = [r for r in rows if r["qk_std"] == sigma]
        figure.add_scatter(x=[r["features"] for r in curve], y=[r["rel_error"] for r in curve],
                           mode="lines+markers",
                           name=f"σ = {sigma}: std of q·k/√d ≈ {curve[0]['qk_scaled_std']:.2f}")
    features = sorted({r["features"] for r in rows})
    first = rows[0]
    figure.add_scatter(
        x=features, y=[first["rel_error"] * math.sqrt(first["features"] / m) for m in features],
        mode="lines", line={"dash": "dot", "color": "grey"}, name="∝ 1/√m guide",
    )  # fmt: skip
    figure.update_xaxes(title_text="random features m", type="log")
    figure.update_yaxes(title_text="relative error ‖RF − softmax‖ / ‖softmax‖ (no unit)",
                        type="log")  # fmt: skip
    title = f"Performer attention vs exact softmax attention (float64, n = {n}, d = {head_dim})"
    return style(figure, title, width=900, height=480)


# --- Linformer: low rank along the sequence, and why it cannot be causal -----------------


def linformer_projections(
    n: int, rank: int, *, generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """E, F of shape (rank × n), entries N(0, 1/rank) (Wang et al., 2020; learned in practice).

    Linformer compresses the n keys and values into ``rank`` mixtures: K' = E K, V' = F V.
    """
    n, rank = check_count("n", n), check_count("rank", rank)
    dtype = resolve_dtype(dtype)
    e = torch.randn(rank, n, generator=generator, dtype=torch.float64) / math.sqrt(rank)
    f = torch.randn(rank, n, generator=generator, dtype=torch.float64) / math.sqrt(rank)
    return e.to(dtype), f.to(dtype)


def linformer_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    e: torch.Tensor,
    f: torch.Tensor,
    *,
    scale: float | None = None,
) -> torch.Tensor:
    """softmax(Q (E K)ᵀ · scale) (F V): n × rank scores instead of n × n. O(n · rank · d).

    Every row of E mixes *all* n keys, future ones included, so no mask can make it causal:
    see :func:`future_influence`.
    """
    validate_qkv(q, k, v)
    n = k.shape[-2]
    for name, proj in (("e", e), ("f", f)):
        if not isinstance(proj, torch.Tensor) or proj.dim() != 2 or proj.shape[1] != n:
            raise ValueError(
                f"{name} must be a (rank, n={n}) tensor, as linformer_projections returns, "
                f"got {describe_value(proj)}"
            )
    if e.shape != f.shape:
        raise ValueError(f"e and f must have one shape, got {tuple(e.shape)} and {tuple(f.shape)}")
    k_low, v_low = e.to(k.dtype) @ k, f.to(v.dtype) @ v  # (..., rank, d)
    return naive_attention(q, k_low, v_low, scale=scale).out


def future_influence(
    attention: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    position: int,
    *,
    change: float = 1.0,
) -> float:
    """Largest |Δ out_i| over i < ``position`` when key and value ``position`` are changed.

    A causal model must give exactly 0: token i may only depend on tokens j <= i.
    ``attention(q, k, v) -> out`` is any attention function over (..., n, d) tensors.
    """
    n = k.shape[-2]
    position = check_count("position", position, 1, n - 1)
    k2, v2 = k.clone(), v.clone()
    k2[..., position, :] += change
    v2[..., position, :] -= change
    before, after = attention(q, k, v), attention(q, k2, v2)
    return float((after - before)[..., :position, :].abs().max())


# --- costs ------------------------------------------------------------------------------


def softmax_attention_flops(n: int, head_dim: int, *, causal: bool = False) -> float:
    """Matmul FLOPs of softmax attention per head: 4 n² d (2 n² d for QKᵀ, 2 n² d for PV).

    :func:`attn_course.cost.attention_matmul_flops` with d_model = head_dim; halved causal.
    """
    n, head_dim = check_count("n", n), check_count("head_dim", head_dim)
    return attention_matmul_flops(n, head_dim, causal=causal)


def linear_attention_flops(
    n: int, head_dim: int, *, features: int | None = None, causal: bool = False,
    chunk_size: int = 64,
) -> float:  # fmt: skip
    """Matmul FLOPs of linear attention per head (d_v = head_dim, m = features or head_dim).

    The normaliser rides along as one extra value column (V extended by a column of ones),
    so every product has d_v + 1 columns:

    * non-causal: φ(K)ᵀ[V 1] is 2·n·m·(d_v+1), φ(Q)·[S z] is 2·n·m·(d_v+1): 4 n m (d_v + 1).
    * causal, chunked with C = chunk_size: the same 4 n m (d_v+1) across chunks, plus inside
      each chunk φ(Q_c)φ(K_c)ᵀ (2 C² m) and its product with [V_c 1] (2 C² (d_v+1)), for
      n/C chunks: + 2 n C (m + d_v + 1). (The last chunk is counted full.)

    Linear in n for a fixed m and C.
    """
    n, head_dim = check_count("n", n), check_count("head_dim", head_dim)
    m = head_dim if features is None else check_count("features", features)
    columns = head_dim + 1
    flops = 4 * n * m * columns
    chunk = check_count("chunk_size", chunk_size)
    if check_flag("causal", causal):
        chunks = -(-n // chunk)
        flops += chunks * (2 * chunk * chunk * m + 2 * chunk * chunk * columns)
    return float(flops)


def predicted_crossover_n(head_dim: int, *, features: int | None = None) -> float:
    """The n where linear attention's FLOPs equal softmax attention's (non-causal).

    4 n² d = 4 n m (d + 1)  =>  n* = m (d + 1) / d ≈ m. Above n*, linear attention does
    fewer FLOPs. (A count, not a time: see the notebook's measurement for the real one.)
    """
    head_dim = check_count("head_dim", head_dim)
    m = head_dim if features is None else check_count("features", features)
    return m * (head_dim + 1) / head_dim


def linear_state_bytes(
    head_dim: int, *, features: int | None = None, dtype: Any = "float32"
) -> float:
    """Bytes of one head's decoding state: S (m × d_v) and z (m): (m · d_v + m) · bytes.

    Constant in the context length n, unlike a KV cache (2 · n · d · bytes per head).
    """
    head_dim = check_count("head_dim", head_dim)
    m = head_dim if features is None else check_count("features", features)
    return (m * head_dim + m) * bytes_per_element(dtype)


def mamba_state_bytes(
    d_model: int, *, expand: int = 2, d_state: int = 16, d_conv: int = 4, dtype: Any = "float32"
) -> float:
    """Bytes of one Mamba (S6) layer's decoding state (Gu & Dao, 2023; defaults of the paper).

    d_inner = expand · d_model channels, each with a d_state-dimensional SSM state, plus the
    last d_conv − 1 inputs of the short causal convolution:
    d_inner · (d_state + d_conv − 1) · bytes. Constant in n.
    """
    d_inner = check_count("expand", expand) * check_count("d_model", d_model)
    per_channel = check_count("d_state", d_state) + check_count("d_conv", d_conv) - 1
    return d_inner * per_channel * bytes_per_element(dtype)


def mamba_scan_flops(n: int, d_model: int, *, expand: int = 2, d_state: int = 16) -> float:
    """FLOPs of Mamba's selective scan over n tokens (the token-mixing part only).

    Per token, channel and state entry: Δ·A (1), Δ·B (1), (Δ·B)·x (1), h = Ā h + B̄x (2),
    y += C·h (2): 7 FLOPs, the exp of Δ·A not counted. So ≈ 7 · n · d_inner · d_state:
    linear in n. The projections around it (like a transformer's QKV and FFN) are extra.
    """
    d_inner = check_count("expand", expand) * check_count("d_model", d_model)
    return 7.0 * check_count("n", n) * d_inner * check_count("d_state", d_state)


def decode_memory_table(
    context: int, d_model: int, heads: int, *, dtype: Any = "float16"
) -> list[dict[str, Any]]:
    """Per layer: token-mixing FLOPs for ``context`` tokens and the decoding memory at that
    context, for softmax attention (KV cache), linear attention, RetNet / RWKV-6 (a decayed
    linear recurrence: the same m × d_v state per head) and Mamba.

    Rows: {"method", "prefill_flops", "complexity", "decode_bytes", "decode_growth"}.
    """
    context, d_model = check_count("context", context), check_count("d_model", d_model)
    heads = check_count("heads", heads)
    if d_model % heads:
        raise ValueError(f"d_model ({d_model}) must be a multiple of heads ({heads})")
    head_dim = d_model // heads
    linear_bytes = heads * linear_state_bytes(head_dim, dtype=dtype)
    linear_flops = heads * linear_attention_flops(context, head_dim, causal=True)
    return [
        {"method": "softmax attention (causal, KV cache)",
         "prefill_flops": heads * softmax_attention_flops(context, head_dim, causal=True),
         "complexity": "O(n² d)",
         "decode_bytes": _kv_cache_bytes(1, heads, head_dim, context, dtype=dtype),
         "decode_growth": "grows with n"},
        {"method": "linear attention (elu+1, chunked)", "prefill_flops": linear_flops,
         "complexity": "O(n d²/h)", "decode_bytes": linear_bytes, "decode_growth": "constant"},
        {"method": "RetNet / RWKV-6 (decayed linear recurrence)", "prefill_flops": linear_flops,
         "complexity": "O(n d²/h)", "decode_bytes": heads * head_dim * head_dim
         * bytes_per_element(dtype), "decode_growth": "constant"},
        {"method": "Mamba (selective scan, N = 16)",
         "prefill_flops": mamba_scan_flops(context, d_model), "complexity": "O(n d N)",
         "decode_bytes": mamba_state_bytes(d_model, dtype=dtype), "decode_growth": "constant"},
    ]  # fmt: skip


# --- measurement: the crossover ----------------------------------------------------------


@dataclass(frozen=True)
class CrossoverRow:
    """One n: best time (s) and peak extra memory (bytes) of each implementation."""

    n: int
    naive_s: float
    sdpa_s: float
    linear_s: float
    naive_bytes: int
    sdpa_bytes: int
    linear_bytes: int


def _elu_linear(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return linear_attention(elu_feature_map(q), elu_feature_map(k), v)


def measure_crossover(
    ns: Sequence[int], *, head_dim: int = 64, heads: int = 8, min_total_s: float = 0.2,
    rounds: int = 1, threads: int | None = None, progress: bool = True,
) -> list[CrossoverRow]:  # fmt: skip
    """Time and peak memory of non-causal softmax attention (naive and torch SDPA) and of
    elu+1 linear attention (feature maps included) on (1, heads, n, head_dim) float32.

    Times are the best of :func:`attn_course.measure.time_call` over ``rounds`` sweeps over
    all n: on a shared machine a burst of load from another process then spoils one sweep's
    point, not the result. ``threads``: run with that many torch threads (restored after);
    None keeps the current setting. One thread makes small-n timings far steadier on a
    busy machine, where a multi-threaded call waits for its slowest thread.
    """
    from tqdm.auto import tqdm

    ns, rounds = [check_count("n", n) for n in ns], check_count("rounds", rounds)
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(check_count("threads", threads))
    try:
        return _measure_crossover(ns, head_dim, heads, min_total_s, rounds, progress, tqdm)
    finally:
        torch.set_num_threads(previous_threads)


def _measure_crossover(
    ns: list[int], head_dim: int, heads: int, min_total_s: float, rounds: int, progress: bool,
    tqdm: Any,
) -> list[CrossoverRow]:  # fmt: skip
    inputs = {}
    for n in ns:
        g = torch.Generator().manual_seed(n)
        inputs[n] = tuple(torch.randn(1, heads, n, head_dim, generator=g) for _ in range(3))

    def calls(n: int) -> dict[str, Callable[[], torch.Tensor]]:
        q, k, v = inputs[n]
        return {
            "naive": lambda: naive_attention(q, k, v).out,
            "sdpa": lambda: F.scaled_dot_product_attention(q, k, v),
            "linear": lambda: _elu_linear(q, k, v),
        }

    best = {(n, name): math.inf for n in ns for name in ("naive", "sdpa", "linear")}
    jobs = [n for _ in range(rounds) for n in ns]
    for n in tqdm(jobs, desc="softmax vs linear", disable=not progress):
        for name, call in calls(n).items():
            best[n, name] = min(best[n, name], time_call(call, min_total_s=min_total_s))
    rows = []
    for n in ns:
        peaks = {name: measure_peak_bytes(call) for name, call in calls(n).items()}
        rows.append(CrossoverRow(
            n, best[n, "naive"], best[n, "sdpa"], best[n, "linear"],
            peaks["naive"], peaks["sdpa"], peaks["linear"],
        ))  # fmt: skip
    return rows


def measured_crossover_n(rows: Sequence[CrossoverRow], baseline: str = "sdpa") -> float | None:
    """First n where linear attention becomes faster than ``baseline`` ("sdpa" or "naive"),
    interpolated on log-log axes between the two measured n around it; None if it never
    does, the first n if it already is."""
    if baseline not in ("sdpa", "naive"):
        raise ValueError(f"baseline must be 'sdpa' or 'naive', got {baseline!r}")
    ratios = [(row.n, getattr(row, f"{baseline}_s") / row.linear_s) for row in rows]
    if not ratios:
        raise ValueError("rows must hold at least one measurement")
    if ratios[0][1] >= 1:
        return float(ratios[0][0])
    for (n0, r0), (n1, r1) in zip(ratios, ratios[1:], strict=False):
        if r0 < 1 <= r1:
            t = (0 - math.log(r0)) / (math.log(r1) - math.log(r0))
            return math.exp(math.log(n0) + t * (math.log(n1) - math.log(n0)))
    return None


def crossover_figure(
    rows: Sequence[CrossoverRow], *, predicted_n: float | None = None,
    measured_n: float | None = None,
) -> go.Figure:  # fmt: skip
    """Two log-log panels against n: time (ms) and peak extra memory (MiB), with the
    measured and the predicted crossover as vertical lines."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=("time per call", "peak extra memory"),
                           horizontal_spacing=0.12)  # fmt: skip
    ns = [row.n for row in rows]
    styles = {"naive": "naive softmax (S, P stored)", "sdpa": "torch SDPA (softmax)",
              "linear": "linear attention (elu+1)"}  # fmt: skip
    colours = {"naive": "#d62728", "sdpa": "#ff7f0e", "linear": "#1f77b4"}
    for name, label in styles.items():
        times = [getattr(row, f"{name}_s") * 1e3 for row in rows]
        peaks = [max(getattr(row, f"{name}_bytes"), 1) / 2**20 for row in rows]
        line = {"color": colours[name]}
        figure.add_scatter(x=ns, y=times, name=label, mode="lines+markers", line=line,
                           legendgroup=name, row=1, col=1)  # fmt: skip
        figure.add_scatter(x=ns, y=peaks, name=label, mode="lines+markers", line=line,
                           legendgroup=name, showlegend=False, row=1, col=2)  # fmt: skip
    # Axis types first: vline() places a label in log10 units on a log axis.
    figure.update_xaxes(type="log", title_text="sequence length n (tokens)")
    figure.update_yaxes(type="log", title_text="time per call (ms)", row=1, col=1)
    figure.update_yaxes(type="log", title_text="peak extra memory (MiB)", row=1, col=2)
    lines = [(measured_n, "measured", "solid"), (predicted_n, "FLOP count", "dot")]
    for index, (value, text, dash) in enumerate((v, t, d) for v, t, d in lines if v is not None):
        # Staggered labels, so that two lines close together stay readable.
        vline(figure, value, f"{text} n≈{value:.0f}", row=1, col=1, dash=dash,
              label_y=1.0 - 0.09 * index)  # fmt: skip
    return style(figure, "Softmax vs linear attention on this CPU (float32, non-causal)",
                 width=960, height=460)  # fmt: skip


# --- what is lost: exact retrieval -------------------------------------------------------


def retrieval_task(
    n: int, head_dim: int = 64, *, sharpness: float = 16.0, queries: int = 64, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A look-up table built by hand: n random unit keys, n random values, and ``queries``
    queries q = sharpness · k_target for random targets. Returns (q, k, v, targets), float64.

    The right answer for query i is v[targets[i]]: recall the value stored under one exact
    key among n − 1 distractors. No training: the ideal q, k, v are written down directly.
    """
    n, head_dim = check_count("n", n), check_count("head_dim", head_dim)
    queries = check_count("queries", queries)
    sharpness = check_positive("sharpness", sharpness)
    g = torch.Generator().manual_seed(check_count("seed", seed, minimum=0))
    k = F.normalize(torch.randn(n, head_dim, generator=g, dtype=torch.float64), dim=-1)
    v = torch.randn(n, head_dim, generator=g, dtype=torch.float64)
    targets = torch.randint(0, n, (queries,), generator=g)
    return sharpness * k[targets], k, v, targets


def retrieval_accuracy(
    method: str, n: int, head_dim: int = 64, *, sharpness: float = 16.0, queries: int = 64,
    seed: int = 0,
) -> float:  # fmt: skip
    """Fraction of queries of :func:`retrieval_task` whose output is nearest (cosine) to the
    right value among all n values. ``method``:

    * "softmax": softmax(q kᵀ) v, scale 1 (the sharpness already is the temperature);
    * "linear_elu": linear attention with elu+1 features;
    * "linear_identity": φ(x) = x without normaliser, out = q (Σ_j k_jᵀ v_j): the
      associative memory a d × d state can hold at best (crosstalk grows like √(n/d)).
    """
    q, k, v, targets = retrieval_task(n, head_dim, sharpness=sharpness, queries=queries,
                                      seed=seed)  # fmt: skip
    if method == "softmax":
        out = naive_attention(q, k, v, scale=1.0).out
    elif method == "linear_elu":
        out = linear_attention(elu_feature_map(q), elu_feature_map(k), v)
    elif method == "linear_identity":
        out = q @ (k.T @ v)
    else:
        raise ValueError(
            f"method must be 'softmax', 'linear_elu' or 'linear_identity', got {method!r}"
        )
    similarity = F.normalize(out, dim=-1) @ F.normalize(v, dim=-1).T
    return float((similarity.argmax(-1) == targets).double().mean())


RETRIEVAL_METHODS = {
    "softmax": "softmax attention",
    "linear_elu": "linear attention, elu + 1",
    "linear_identity": "outer-product memory (φ = identity)",
}


def retrieval_figure(
    ns: Sequence[int], accuracy: dict[str, Sequence[float]], *, head_dim: int = 64
) -> go.Figure:
    """Retrieval accuracy (%) against the number of stored pairs n, one line per method of
    :func:`retrieval_accuracy` (``accuracy`` maps a method to its fractions, one per n), and
    the chance level 1/n."""
    if not ns or not accuracy:
        raise ValueError("ns and accuracy must not be empty")
    figure = go.Figure()
    for method, values in accuracy.items():
        figure.add_scatter(x=list(ns), y=[100 * a for a in values], mode="lines+markers",
                           name=RETRIEVAL_METHODS.get(method, method))  # fmt: skip
    figure.add_scatter(x=list(ns), y=[100 / n for n in ns], mode="lines",
                       line={"dash": "dot", "color": "grey"}, name="chance (1 / n)")  # fmt: skip
    figure.update_xaxes(title_text="stored key–value pairs n", type="log")
    figure.update_yaxes(title_text="retrieval accuracy (%)")
    title = f"Recalling the value of one exact key among n (d = {head_dim}, no training)"
    return style(figure, title, width=900, height=460)

"""Cost arithmetic for attention: bytes, FLOPs and seconds, with the units spelled out.

Conventions (every function below follows them):

* **bytes** are plain bytes. When we print them, ``format_bytes`` says whether the unit
  is decimal (1 GB = 10**9 B) or binary (1 GiB = 2**30 B).
* **FLOPs** count floating-point operations, and one multiply-add is 2 FLOPs. Multiplying
  an (m x k) matrix by a (k x p) one is m*p dot products of length k: ``2 * m * k * p``
  FLOPs. (Some texts count multiply-adds, "MACs", which is half this number.)
* **seconds** for time, **bytes/s** for bandwidth, **FLOP/s** for throughput.
* ``n`` is the sequence length in tokens, ``d_model`` the model width, ``heads`` the number
  of query heads (``head_dim = d_model // heads``), ``kv_heads`` the number of key/value
  heads (``heads`` for multi-head attention, 1 for multi-query, in between for
  grouped-query attention), ``layers`` the number of Transformer blocks, ``batch`` the
  number of sequences processed together.
* Dtypes are given by name (``"float32"``, ``"bf16"``, ``"int4"`` ...; see ``DTYPE_BYTES``).

Three functions measure instead of computing, so that the formulas can be checked on
the machine at hand (PyTorch on the CPU, imported only when they are called):
:func:`measure_saved_score_bytes` counts the n x n bytes autograd really saves for a naive
attention (compare :func:`saved_for_backward_bytes`); :func:`measure_copy_bandwidth` and
:func:`measure_score_pass_s` time memory traffic (compare :func:`transfer_time_s`).

Bad input (zero or negative sizes, a float where a count is needed, an unknown dtype,
heads that do not divide d_model ...) raises ``ValueError`` naming the parameter and
the values it accepts. No function here returns NaN or silently rounds.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from typing import Any

from attn_course.presets import (
    Hardware,
    ModelShape,
    MoEShape,
    get_hardware,
    get_model,
    get_moe_model,
    hardware_names,
    model_from_config,
    model_names,
    moe_model_names,
)
from attn_course.validate import (
    DTYPE_BYTES,
    bytes_per_element,
    canonical_dtype,
    check_choice,
    check_count,
    check_flag,
    check_fraction,
    check_loop_size,
    check_non_negative,
    check_positive,
)

# DTYPE_BYTES and bytes_per_element live in attn_course.validate (one dtype vocabulary for
# the package); lesson 02 teaches them as cost.DTYPE_BYTES / cost.bytes_per_element, so they
# stay importable from here.
__all__ = [
    "BACKWARD_FLOPS_FACTOR",
    "DTYPE_BYTES",
    "LayerFlops",
    "RooflineEstimate",
    "attention_ffn_crossover_n",
    "attention_ffn_ratio",
    "attention_flops",
    "attention_matmul_flops",
    "attention_tile_flops",
    "attention_tile_matmuls",
    "backward_flops_ratio",
    "bytes_per_element",
    "compute_time_s",
    "decode_attention_flops",
    "decode_flops_per_cached_number",
    "decode_step_cost",
    "decode_step_flops",
    "decode_total_flops",
    "ffn_flops",
    "format_bytes",
    "format_bytes_both",
    "format_flops",
    "format_seconds",
    "head_dim",
    "kv_cache_bytes",
    "kv_cache_bytes_per_token",
    "latent_kv_cache_bytes",
    "layer_flops",
    "matmul_flops",
    "matmul_parameter_count",
    "max_kv_context",
    "max_n_for_memory",
    "measure_copy_bandwidth",
    "measure_saved_score_bytes",
    "measure_score_pass_s",
    "model_kv_cache_bytes",
    "naive_attention_traffic_bytes",
    "parameter_count",
    "peak_flops_per_s",
    "position_encoding_flops",
    "prefill_flops",
    "projection_flops",
    "roofline_time_s",
    "saved_for_backward_bytes",
    "score_count",
    "score_matrix_bytes",
    "forward_peak_score_bytes",
    "time_to_first_token",
    "tflops_per_s",
    "transfer_time_s",
    "weight_bytes",
    "softmax_flops",
    "mla_attention_matmul_flops",
    "mla_projection_flops_per_token",
    "moe_ffn_flops_per_token",
    "moe_attention_ffn_ratio",
    "moe_parameter_count",
    "mla_kv_cache_bytes",
    "prefill_chunk_flops",
    "chunked_prefill_flops",
]


def _whole(value: float) -> float:
    """Return ints for whole numbers so byte counts print as 4096, not 4096.0."""
    return int(value) if float(value).is_integer() else value


def head_dim(d_model: int, heads: int) -> int:
    """Channels per head, ``d_model / heads``; heads must divide d_model."""
    d_model, heads = check_count("d_model", d_model), check_count("heads", heads)
    if d_model % heads:
        raise ValueError(
            f"heads must divide d_model, got d_model={d_model}, heads={heads} "
            f"(d_model % heads = {d_model % heads})"
        )
    return d_model // heads


def _kv_heads(heads: int, kv_heads: int | None) -> int:
    """kv_heads, defaulting to heads (multi-head attention); it must divide heads."""
    heads = check_count("heads", heads)
    if kv_heads is None:
        return heads
    kv_heads = check_count("kv_heads", kv_heads)
    if kv_heads > heads or heads % kv_heads:
        raise ValueError(
            f"kv_heads must divide heads (1 <= kv_heads <= heads), got heads={heads}, "
            f"kv_heads={kv_heads}"
        )
    return kv_heads


# --- formatting -----------------------------------------------------------------------

_DECIMAL = ["B", "kB", "MB", "GB", "TB", "PB", "EB"]
_BINARY = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]


def format_bytes(n_bytes: float, *, binary: bool = False, digits: int = 3) -> str:
    """``2147483648`` -> ``"2.15 GB"`` (decimal) or ``"2 GiB"`` (``binary=True``)."""
    value = check_non_negative("n_bytes", n_bytes)
    digits = check_count("digits", digits)
    base, units = (1024, _BINARY) if check_flag("binary", binary) else (1000, _DECIMAL)
    unit = 0
    while value >= base and unit < len(units) - 1:
        value /= base
        unit += 1
    return f"{value:.{digits}g} {units[unit]}"


def format_bytes_both(n_bytes: float) -> str:
    """Decimal and binary units together, so MB-vs-MiB is never ambiguous: ``"2.15 GB (2 GiB)"``.

    Sizes are quoted both ways in the wild (a "2 TB" matrix, an "80 GB" GPU that holds
    80 GiB); showing both avoids a silent 7-10 % disagreement.
    """
    return f"{format_bytes(n_bytes)} ({format_bytes(n_bytes, binary=True)})"


def format_flops(flops: float, *, digits: int = 3) -> str:
    """``1.37e16`` -> ``"13.7 PFLOP"`` (decimal SI prefixes; FLOP = floating-point operation)."""
    value = check_non_negative("flops", flops)
    digits = check_count("digits", digits)
    prefixes = ["", "k", "M", "G", "T", "P", "E", "Z"]
    unit = 0
    while value >= 1000 and unit < len(prefixes) - 1:
        value /= 1000
        unit += 1
    return f"{value:.{digits}g} {prefixes[unit]}FLOP"


def format_seconds(seconds: float, *, digits: int = 3) -> str:
    """``0.0021`` -> ``"2.1 ms"``; ``125`` -> ``"2.08 min"``."""
    value = check_non_negative("seconds", seconds)
    digits = check_count("digits", digits)
    if value >= 3600:
        return f"{value / 3600:.{digits}g} h"
    if value >= 60:
        return f"{value / 60:.{digits}g} min"
    for scale, unit in ((1, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if value >= scale:
            return f"{value / scale:.{digits}g} {unit}"
    return f"{value / 1e-9:.{digits}g} ns"


# --- the score matrix: memory ---------------------------------------------------------


def score_count(
    n: int, *, heads: int = 1, layers: int = 1, batch: int = 1, n_k: int | None = None
) -> int:
    """Number of attention scores: ``n * n_k`` per (sequence, head, layer), ``n_k = n`` by default.

    Every one of the n queries is compared with every one of the n_k keys, so one head of
    one layer holds an n x n_k matrix (n x n in self-attention); heads, layers and the batch
    multiply it. ``score_count(8192) == 67_108_864``: 64 Mi scores per head per layer.
    """
    n = check_count("n", n)
    n_k = n if n_k is None else check_count("n_k", n_k)
    heads, layers = check_count("heads", heads), check_count("layers", layers)
    batch = check_count("batch", batch)
    return n * n_k * heads * layers * batch


def score_matrix_bytes(
    n: int,
    dtype: Any = "float16",
    *,
    heads: int = 1,
    layers: int = 1,
    batch: int = 1,
    n_k: int | None = None,
) -> float:
    """Bytes of n x n score matrices: ``n * n_k * heads * layers * batch * bytes_per_element``.

    With the defaults this is ONE matrix (one head, one layer, one sequence, n_k = n):
    n = 4096 in float32 is 4096**2 * 4 B = 67,108,864 B = 64 MiB. P has the same size as S.
    """
    count = score_count(n, heads=heads, layers=layers, batch=batch, n_k=n_k)
    return _whole(count * bytes_per_element(dtype))


def forward_peak_score_bytes(
    n: int, heads: int, dtype: Any = "float16", *, batch: int = 1
) -> float:
    """Peak score memory of ONE layer of naive attention in the forward pass, in bytes.

    ``2 * batch * heads * n**2 * bytes_per_element``.

    Assumption: a naive implementation computes ``S = Q K^T * scale`` and then
    ``P = softmax(S)``; while softmax runs, its input S and output P are both alive, so
    two n x n tensors per head exist at once. (Without autograd, S is freed right after.)
    """
    return _whole(2 * score_matrix_bytes(n, dtype, heads=heads, batch=batch))


def saved_for_backward_bytes(
    n: int,
    heads: int,
    layers: int = 1,
    dtype: Any = "float16",
    *,
    batch: int = 1,
    dropout: bool = False,
    dropout_mask_dtype: Any = "bool",
    softmax_dtype: Any = None,
) -> float:
    """Bytes of n x n tensors that autograd keeps for the backward pass of naive attention.

    Without dropout: ``layers * batch * heads * n**2 * bytes_per_element`` (one matrix, P).
    With dropout:    ``layers * batch * heads * n**2 * (2 * bytes_per_element + mask_bytes)``.

    Why. For ``O = softmax(Q K^T * scale) V``, autograd saves what each backward formula
    needs: the matmul ``Q K^T`` keeps Q and K (n x d each, not counted here); softmax's
    backward needs only its output P; the matmul ``P V`` keeps P (the same tensor, stored
    once) and V. The raw scores S are *not* saved. Dropout on P adds its mask (1 byte per
    element as a bool in PyTorch's fused CUDA kernel; on CPU PyTorch keeps a mask in the
    input dtype, so pass ``dropout_mask_dtype=dtype`` there) and the dropped-out copy of P,
    which the ``P V`` matmul now saves instead. A boolean causal mask, if one is built, is
    shared by all heads and layers (n**2 bytes once) and is not counted.

    ``softmax_dtype`` (e.g. ``"float32"`` with ``dtype="bf16"``): mixed-precision eager code
    as it is commonly written, ``softmax(S, dtype=float32).to(bf16)`` (Hugging Face's
    "eager" attention does this). Softmax then saves its float32 output and the ``P V``
    matmul saves the bf16 copy, two different tensors: ``softmax bytes + bytes`` per score,
    6 B for fp32 + bf16 (3x the 2 B of P alone), plus the mask with dropout (which saves
    its mask, and the matmul the dropped-out bf16 copy). In general, per score:
    ``softmax bytes + (bytes if a cast or dropout makes a second copy) + mask bytes``.
    """
    per_matrix = score_matrix_bytes(n, dtype, heads=heads, layers=layers, batch=batch)
    dropout = check_flag("dropout", dropout)
    canonical_dtype(dropout_mask_dtype, "dropout_mask_dtype")
    cast = softmax_dtype is not None and (
        canonical_dtype(softmax_dtype, "softmax_dtype") != canonical_dtype(dtype)
    )
    softmax_out = (
        score_matrix_bytes(n, softmax_dtype, heads=heads, layers=layers, batch=batch)
        if cast
        else per_matrix
    )
    second_copy = per_matrix if (cast or dropout) else 0
    mask = (
        score_matrix_bytes(n, dropout_mask_dtype, heads=heads, layers=layers, batch=batch)
        if dropout
        else 0
    )
    return _whole(softmax_out + second_copy + mask)


def measure_saved_score_bytes(
    n: int,
    heads: int = 1,
    dtype: Any = "float32",
    *,
    batch: int = 1,
    head_dim: int = 8,
    dropout: float = 0.0,
    seed: int = 0,
    softmax_dtype: Any = None,
) -> int:
    """MEASURE the bytes of n x n tensors autograd saves for a naive attention forward.

    Runs ``O = dropout(softmax((Q * scale) K^T)) V`` on random CPU tensors of shape
    (batch, heads, n, head_dim) inside ``torch.autograd.graph.saved_tensors_hooks`` and
    adds up the storages (each counted once) of every saved tensor whose last two
    dimensions are (n, n). Compare with :func:`saved_for_backward_bytes`. ``head_dim``
    must differ from n so that Q, K and V cannot be mistaken for score matrices.

    ``softmax_dtype`` (e.g. ``"float32"``) runs the mixed-precision eager pattern instead:
    ``softmax(S, dim=-1, dtype=softmax_dtype).to(dtype)``, the softmax in the wider dtype
    and its result cast back before dropout and ``P V``.
    """
    import torch  # imported here: the rest of this module is plain arithmetic
    from torch.autograd.graph import saved_tensors_hooks

    n, heads, batch = check_count("n", n), check_count("heads", heads), check_count("batch", batch)
    head_dim = check_count("head_dim", head_dim)
    if head_dim == n:
        raise ValueError(f"head_dim must differ from n (both are {n})")
    if isinstance(dropout, bool) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
    name = canonical_dtype(dtype)
    if name not in ("float64", "float32", "float16", "bfloat16"):
        raise ValueError(f"dtype must be float64, float32, float16 or bfloat16, got {dtype!r}")
    torch_dtype = getattr(torch, name)
    if softmax_dtype is not None:
        softmax_name = canonical_dtype(softmax_dtype)
        if softmax_name not in ("float64", "float32", "float16", "bfloat16"):
            raise ValueError(
                "softmax_dtype must be float64, float32, float16 or bfloat16, "
                f"got {softmax_dtype!r}"
            )
        softmax_torch_dtype = getattr(torch, softmax_name)

    generator = torch.Generator().manual_seed(seed)
    q, k, v = (
        torch.randn(
            batch, heads, n, head_dim, generator=generator, dtype=torch_dtype
        ).requires_grad_()
        for _ in range(3)
    )
    saved: dict[int, int] = {}  # storage address -> bytes, so shared storage counts once

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.dim() >= 2 and tuple(tensor.shape[-2:]) == (n, n):
            storage = tensor.untyped_storage()
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with saved_tensors_hooks(pack, lambda tensor: tensor):
        scores = (q * head_dim**-0.5) @ k.transpose(-2, -1)
        if softmax_dtype is None:
            probs = torch.softmax(scores, dim=-1)
        else:  # mixed precision, as eager code is commonly written
            probs = torch.softmax(scores, dim=-1, dtype=softmax_torch_dtype).to(torch_dtype)
        if dropout:
            probs = torch.nn.functional.dropout(probs, p=dropout, training=True)
        out = probs @ v
    del out
    return sum(saved.values())


def measure_copy_bandwidth(n_bytes: int = 2**28, *, min_run_time_s: float = 0.3) -> float:
    """MEASURE this machine's memory bandwidth in bytes/s by timing a tensor copy.

    Copies a float32 tensor of ``n_bytes`` into another (each element read once and
    written once, so ``2 * n_bytes`` cross the memory bus) and returns
    ``2 * n_bytes / median time``. Use a buffer well above the CPU caches (the default is
    256 MiB) or you measure the cache instead of the memory.
    """
    import torch
    from torch.utils import benchmark

    elements = check_count("n_bytes", n_bytes, minimum=4) // 4
    source, target = torch.ones(elements), torch.empty(elements)
    timer = benchmark.Timer("target.copy_(source)", globals={"source": source, "target": target})
    seconds = timer.blocked_autorange(min_run_time=check_positive("min_run_time_s", min_run_time_s))
    return 2 * elements * 4 / seconds.median


def measure_score_pass_s(
    n: int, *, op: str = "scale", dtype: Any = "float32", min_run_time_s: float = 0.2
) -> float:
    """MEASURE the median seconds of one operation over an n x n score matrix on the CPU.

    ``op="scale"`` multiplies S by a constant into a preallocated output: one read and one
    write of n**2 elements, the pattern :func:`transfer_time_s` of ``2 * bytes`` predicts.
    ``op="softmax"`` runs ``torch.softmax`` along rows: several passes plus an
    exponential per element, so it takes a few times longer than one pass.
    """
    import torch
    from torch.utils import benchmark

    n = check_count("n", n)
    name = canonical_dtype(dtype)
    if name not in ("float64", "float32", "bfloat16", "float16"):
        raise ValueError(f"dtype must be float64, float32, float16 or bfloat16, got {dtype!r}")
    scores = torch.randn(n, n, dtype=getattr(torch, name))
    out = torch.empty_like(scores)
    statements = {
        "scale": "torch.mul(scores, 0.125, out=out)",
        "softmax": "torch.softmax(scores, dim=-1)",
    }
    if op not in statements:
        raise ValueError(f"op must be one of {sorted(statements)}, got {op!r}")
    timer = benchmark.Timer(statements[op], globals={"torch": torch, "scores": scores, "out": out})
    min_run_time = check_positive("min_run_time_s", min_run_time_s)
    return timer.blocked_autorange(min_run_time=min_run_time).median


def max_n_for_memory(
    memory_bytes: float,
    dtype: Any = "float16",
    *,
    heads: int = 1,
    layers: int = 1,
    batch: int = 1,
    copies: int = 1,
) -> int:
    """Largest n whose score matrices fit in ``memory_bytes``.

    Solves ``copies * batch * heads * layers * n**2 * bytes_per_element <= memory_bytes``
    for the largest integer n (0 if not even n = 1 fits). ``copies=1`` counts what backward
    keeps (P), ``copies=2`` the forward peak of one layer (S and P).
    """
    memory_bytes = check_positive("memory_bytes", memory_bytes)
    per_score = score_matrix_bytes(1, dtype, heads=heads, layers=layers, batch=batch)
    per_score *= check_count("copies", copies)
    return math.isqrt(math.floor(memory_bytes / per_score))


def naive_attention_traffic_bytes(
    n: int, heads: int, layers: int = 1, dtype: Any = "float16", *, batch: int = 1
) -> float:
    """Bytes of memory traffic for n x n tensors in a naive (unfused) attention forward.

    ``4 * layers * batch * heads * n**2 * bytes_per_element``: write S, read S (softmax),
    write P, read P (the ``P V`` matmul). A fused kernel (FlashAttention) keeps these tiles
    on chip and moves none of it; Q, K, V, O traffic (O(n d)) is not counted.
    """
    return _whole(4 * score_matrix_bytes(n, dtype, heads=heads, layers=layers, batch=batch))


# --- FLOPs ----------------------------------------------------------------------------


def matmul_flops(m: int, k: int, p: int) -> int:
    """FLOPs of an (m x k) @ (k x p) matmul: ``2 * m * k * p`` (a multiply-add is 2 FLOPs)."""
    return 2 * check_count("m", m) * check_count("k", k) * check_count("p", p)


def attention_matmul_flops(n: int, d_model: int, *, causal: bool = False, batch: int = 1) -> float:
    """FLOPs of one layer's two attention matmuls, ``Q K^T`` and ``P V``: ``4 * n**2 * d_model``.

    Per head, ``Q K^T`` is (n x head_dim) @ (head_dim x n): ``2 * n**2 * head_dim`` FLOPs,
    and ``P V`` is (n x n) @ (n x head_dim): the same again. Summed over heads,
    ``heads * head_dim = d_model``, so the layer costs ``2 * 2 * n**2 * d_model``, whatever
    the number of heads. With ``causal=True`` a kernel that skips the masked upper triangle
    does about half: ``2 * n**2 * d_model`` (n(n+1)/2 ~ n**2/2 entries). Multiplied by
    ``batch``. The softmax itself (a few FLOPs per score) is not counted.
    """
    n, d_model = check_count("n", n), check_count("d_model", d_model)
    batch = check_count("batch", batch)
    full = 4 * n * n * d_model * batch
    return _whole(full / 2) if check_flag("causal", causal) else full


# The matmuls a tiled kernel runs for ONE (query tile, key tile) pair, pass by pass. Each
# is (what it computes, (rows, inner, columns)) in the tile's sizes: "M" = BLOCK_M query
# rows, "N" = BLOCK_N keys, "D" = head_dim; (m, k, p) costs matmul_flops(m, k, p).
_S = ("S = Q Kᵀ", ("M", "D", "N"))
_DV = ("dV += Pᵀ dO", ("N", "M", "D"))
_DP = ("dP = dO Vᵀ", ("M", "D", "N"))
_DK = ("dK += dSᵀ Q", ("N", "M", "D"))
_DQ = ("dQ += dS K", ("M", "N", "D"))
_TILE_MATMULS: dict[str, tuple[tuple[tuple[str, tuple[str, str, str]], ...], ...]] = {
    # Forward (FlashAttention-1 and -2 alike): scores, then P V into the accumulator.
    "forward": ((_S, ("O += P V", ("M", "N", "D"))),),
    # FlashAttention-2's backward (Dao 2023, Algorithm 2 and §3.2): one pass, one program
    # per key block; it recomputes S once per tile pair and adds dS K into dQ in memory
    # with atomic additions, because many key-block programs update the same dQ rows.
    "fa2_backward": ((_S, _DV, _DP, _DK, _DQ),),
    # The course's backward (attn_course/kernels/flash.py): pass 1 per key block (dK, dV),
    # pass 2 per query block (dQ). Each program owns what it writes, so no atomics, but
    # pass 2 needs P and dS again: it recomputes S = Q Kᵀ and dP = dO Vᵀ.
    "two_pass_backward": ((_S, _DV, _DP, _DK), (_S, _DP, _DQ)),
}


def attention_tile_matmuls(kernel: str) -> tuple[tuple[str, ...], ...]:
    """The matmuls ``kernel`` runs per (query tile, key tile) pair, as one tuple per pass.

    ``kernel``: ``"forward"``; ``"fa2_backward"``, FlashAttention-2's one-pass backward
    (Dao 2023, Algorithm 2; §3.2: parallel over key blocks, dQ updated with atomic adds);
    or ``"two_pass_backward"``, the course's deterministic variant (dK and dV per key block,
    then dQ per query block), which recomputes S and dP in both passes:
    ``attention_tile_matmuls("two_pass_backward")`` has 4 + 3 = 7 matmuls against 5.
    """
    if kernel not in _TILE_MATMULS:
        raise ValueError(f"kernel must be one of {sorted(_TILE_MATMULS)}, got {kernel!r}")
    return tuple(tuple(name for name, _ in one_pass) for one_pass in _TILE_MATMULS[kernel])


def attention_tile_flops(kernel: str, block_m: int, block_n: int, head_dim: int) -> int:
    """Matmul FLOPs ``kernel`` spends on one (BLOCK_M query rows, BLOCK_N keys) tile pair.

    The sum of :func:`matmul_flops` over :func:`attention_tile_matmuls`; every one of them
    is ``2 * block_m * block_n * head_dim``, so the forward costs 2 such matmuls,
    FlashAttention-2's backward 5 (2.5x the forward) and the course's two-pass backward 7
    (3.5x the forward, 1.4x FlashAttention-2's). Elementwise work (exp, the dS formula)
    is not counted.
    """
    sizes = {
        "M": check_count("block_m", block_m),
        "N": check_count("block_n", block_n),
        "D": check_count("head_dim", head_dim),
    }
    if kernel not in _TILE_MATMULS:
        raise ValueError(f"kernel must be one of {sorted(_TILE_MATMULS)}, got {kernel!r}")
    return sum(
        matmul_flops(*(sizes[axis] for axis in shape))
        for one_pass in _TILE_MATMULS[kernel]
        for _, shape in one_pass
    )


def backward_flops_ratio(block_m: int = 128, block_n: int = 64, head_dim: int = 64) -> float:
    """FLOPs of the course's two-pass backward / FlashAttention-2's one-pass backward.

    Per tile pair: 7 matmuls against 5, so 1.4 whatever the tile sizes. Forward + backward,
    the kernel executes (2 + 7) / (2 + 5) = 9/7 of FlashAttention-2's FLOPs.
    """
    two_pass = attention_tile_flops("two_pass_backward", block_m, block_n, head_dim)
    return two_pass / attention_tile_flops("fa2_backward", block_m, block_n, head_dim)


#: What the (FlashAttention) backward costs, in units of the forward's FLOPs: it runs five
#: matmuls of the forward's size (S = QKᵀ again, dV = PᵀdO, dP = dO Vᵀ, dQ = dS K,
#: dK = dSᵀ Q) where the forward runs two (QKᵀ and PV): 5 / 2 = 2.5.
BACKWARD_FLOPS_FACTOR = 2.5


def attention_flops(
    batch: int, heads: int, n: int, head_dim: int, *, causal: bool = False, backward: bool = False
) -> float:
    """FLOPs of attention over (batch, heads, n, head_dim): forward, or forward + backward.

    Forward: the two matmuls QKᵀ and PV, ``4 · batch · heads · n² · head_dim``
    (:func:`attention_matmul_flops` with d_model = heads · head_dim); causal halves it (a
    kernel skips the masked triangle). Forward + backward: ``(1 + 2.5) ×`` that (see
    ``BACKWARD_FLOPS_FACTOR``), the convention of the FlashAttention papers' benchmarks.
    The benchmarks credit every implementation with these same nominal FLOPs, so TFLOP/s
    compare like with like (a naive backward that skips the recomputation of S simply gets
    the same credit for less work).
    """
    heads, head_dim = check_count("heads", heads), check_count("head_dim", head_dim)
    backward = check_flag("backward", backward)
    forward = attention_matmul_flops(n, heads * head_dim, causal=causal, batch=batch)
    return forward * (1 + BACKWARD_FLOPS_FACTOR) if backward else forward


def tflops_per_s(flops: float, ms: float) -> float:
    """Throughput in TFLOP/s (10¹² FLOP per second) of ``flops`` done in ``ms`` milliseconds."""
    flops, ms = check_non_negative("flops", flops), check_positive("ms", ms)
    return flops / (ms * 1e-3) / 1e12


def projection_flops(
    n: int, d_model: int, heads: int, kv_heads: int | None = None, *, batch: int = 1
) -> float:
    """FLOPs of one layer's Q, K, V and output projections: ``4nd^2 + 4nd^2 * kv_heads/heads``.

    Q and O are (n x d) @ (d x d): ``2 * n * d**2`` each. K and V project to
    ``kv_heads * head_dim`` channels: ``2 * n * d * kv_heads * head_dim`` each, which is
    ``2 * n * d**2 * kv_heads / heads``. Multi-head attention (kv_heads = heads) gives
    ``8 * n * d**2``. Multiplied by ``batch``.
    """
    n, batch = check_count("n", n), check_count("batch", batch)
    n, batch = check_count("n", n), check_count("batch", batch)
    dim = head_dim(d_model, heads)
    kv = _kv_heads(heads, kv_heads)
    q_and_o = 2 * matmul_flops(n, d_model, d_model)
    k_and_v = 2 * matmul_flops(n, d_model, kv * dim)
    return (q_and_o + k_and_v) * batch


def ffn_flops(n: int, d_model: int, d_ff: int, *, gated: bool = False, batch: int = 1) -> float:
    """FLOPs of one layer's feed-forward network: ``matrices * 2 * n * d_model * d_ff``.

    A classic FFN has 2 matrices (up d -> d_ff, down d_ff -> d): ``4 * n * d * d_ff``.
    A gated one (SwiGLU in Llama/Mistral) has 3 (gate, up, down): ``6 * n * d * d_ff``.
    The activation function is not counted. Multiplied by ``batch``.
    """
    n, d_model = check_count("n", n), check_count("d_model", d_model)
    d_ff = check_count("d_ff", d_ff)
    matrices = 3 if check_flag("gated", gated) else 2
    return matrices * matmul_flops(n, d_model, d_ff) * check_count("batch", batch)


@dataclass(frozen=True)
class LayerFlops:
    """FLOPs of one Transformer layer at sequence length n, split by part."""

    attention: float  # Q K^T and P V
    projections: float  # Q, K, V, O
    ffn: float  # feed-forward network

    @property
    def total(self) -> float:
        return self.attention + self.projections + self.ffn

    @property
    def attention_share(self) -> float:
        """Fraction of the layer's FLOPs spent in the two attention matmuls."""
        return self.attention / self.total


def layer_flops(
    model: str | ModelShape, n: int, *, causal: bool = True, batch: int = 1
) -> LayerFlops:
    """FLOPs of one layer of ``model`` (a preset name or ModelShape) at length n."""
    m = get_model(model)
    return LayerFlops(
        attention=attention_matmul_flops(n, m.d_model, causal=causal, batch=batch),
        projections=projection_flops(n, m.d_model, m.heads, m.kv_heads, batch=batch),
        ffn=ffn_flops(n, m.d_model, m.d_ff, gated=m.gated_ffn, batch=batch),
    )


def _rest_flops_per_token(
    d_model: int,
    d_ff: int,
    gated: bool,
    include_projections: bool,
    heads: int | None,
    kv_heads: int | None,
) -> float:
    """FLOPs per token of what attention is compared with: the FFN (+ projections)."""
    rest = ffn_flops(1, d_model, d_ff, gated=gated)
    if heads is not None:
        _kv_heads(heads, kv_heads)
    elif kv_heads is not None:
        check_count("kv_heads", kv_heads)
    if check_flag("include_projections", include_projections):
        if heads is None:
            if kv_heads is not None:
                raise ValueError("kv_heads needs heads: pass both, or neither for MHA")
            heads = 1  # multi-head attention: kv_heads / heads = 1 whatever heads is
        rest += projection_flops(1, d_model, heads, kv_heads)
    return rest


def attention_ffn_crossover_n(
    d_model: int,
    d_ff: int,
    *,
    gated: bool = False,
    causal: bool = False,
    include_projections: bool = False,
    heads: int | None = None,
    kv_heads: int | None = None,
) -> float:
    """Sequence length at which attention's matmuls cost as many FLOPs as the rest.

    Attention (``Q K^T`` and ``P V``) grows like ``c * 4 * n**2 * d`` (c = 1/2 if causal);
    the FFN grows like ``n * matrices * 2 * d * d_ff``. Setting them equal:

    * against the FFN alone (``include_projections=False``):
      ``n* = matrices * 2 * d * d_ff / (c * 4 * d) = matrices * d_ff / (2c)``;
      a classic 2-matrix FFN, non-causal: ``n* = d_ff`` (= 4 d when d_ff = 4 d).
    * against FFN + Q/K/V/O projections (``include_projections=True``): add
      ``4 d**2 (1 + kv_heads/heads)`` per token; MHA, 2-matrix FFN, non-causal:
      ``n* = d_ff + 2 d`` (= 6 d when d_ff = 4 d).

    Returns n* in tokens (a float). Pass ``heads`` and ``kv_heads`` for grouped-query
    attention; leaving both out means multi-head attention.
    """
    rest = _rest_flops_per_token(d_model, d_ff, gated, include_projections, heads, kv_heads)
    attention_per_n_squared = attention_matmul_flops(1, d_model, causal=causal)
    return rest / attention_per_n_squared


def attention_ffn_ratio(
    n: int,
    d_model: int,
    d_ff: int,
    *,
    gated: bool = False,
    causal: bool = False,
    include_projections: bool = False,
    heads: int | None = None,
    kv_heads: int | None = None,
) -> float:
    """Attention-matmul FLOPs divided by FFN (+ projection) FLOPs at length n.

    Equal to ``n / n*`` where n* is :func:`attention_ffn_crossover_n`: attention grows as
    n**2 and the rest as n, so the ratio grows linearly with n.
    """
    attention = attention_matmul_flops(n, d_model, causal=causal)
    rest = check_count("n", n) * _rest_flops_per_token(
        d_model, d_ff, gated, include_projections, heads, kv_heads
    )
    return attention / rest


def position_encoding_flops(
    kind: str, n: int, d_model: int, heads: int, *, causal: bool = False
) -> float:
    """Extra FLOPs per layer that a position encoding adds (it never removes any).

    * ``"rope"``: rotate every query and key channel pair: ``(x1, x2) -> (x1 cos - x2 sin,
      x1 sin + x2 cos)`` is 4 multiplies + 2 adds per pair, 3 FLOPs per channel; for Q and
      K (multi-head) that is ``2 * 3 * n * d_model = 6 n d``.
    * ``"alibi"``: add a distance-proportional bias to every score: ``heads * n**2``
      additions (half with ``causal=True``).
    """
    n, d_model = check_count("n", n), check_count("d_model", d_model)
    heads, causal = check_count("heads", heads), check_flag("causal", causal)
    if kind == "rope":
        return 6 * n * d_model
    if kind == "alibi":
        scores = heads * n * n
        return _whole(scores / 2) if causal else scores
    raise ValueError(f"kind must be 'rope' or 'alibi', got {kind!r}")


def softmax_flops(n: int, heads: int, *, causal: bool = False, flops_per_score: int = 5) -> float:
    """FLOPs of one layer's row softmax over the scores: ``flops_per_score * heads * n**2``.

    Per score: compare with the running max, subtract it, exponentiate, add to the row sum,
    divide by it: about 5 FLOPs (``flops_per_score``), counting an exponential as one. Half
    with ``causal=True``. Compare :func:`attention_matmul_flops` (``4 n**2 d``): the ratio
    is ``4 d / (5 heads) = 0.8 head_dim``, so for head_dim 128 the matmuls do ~100x more.
    """
    n, heads = check_count("n", n), check_count("heads", heads)
    scores = check_count("flops_per_score", flops_per_score) * heads * n * n
    return _whole(scores / 2) if check_flag("causal", causal) else scores


# --- mixture of experts and latent attention (DeepSeek-V3) ------------------------------


def mla_attention_matmul_flops(n: int, model: str | MoEShape, *, causal: bool = False) -> float:
    """FLOPs of one layer's ``Q K^T`` and ``P V`` under multi-head latent attention.

    ``2 * n**2 * heads * qk_head_dim + 2 * n**2 * heads * v_head_dim`` (half with
    ``causal=True``). In training and prefill MLA expands the cached latent into a key
    (qk_nope + qk_rope channels) and a value (v_head_dim channels) for every head, so the
    score matrix is computed per head as in multi-head attention, only with head widths
    that do not add up to d_model. DeepSeek-V3: 2·128·(192 + 128) = 81,920 FLOPs per n².
    (Decode often "absorbs" the up-projections into the query instead; not counted here.)
    """
    m = get_moe_model(model)
    n = check_count("n", n)
    full = 2 * n * n * m.heads * (m.qk_head_dim + m.v_head_dim)
    return _whole(full / 2) if check_flag("causal", causal) else full


def mla_projection_flops_per_token(model: str | MoEShape) -> float:
    """FLOPs per token of one layer's MLA projections: 2 x the weights each token uses.

    Weights: W_dq (d x q_lora_rank), W_uq (q_lora_rank x heads·qk_head_dim), W_dkv
    (d x (kv_lora_rank + qk_rope_head_dim)), W_ukv (kv_lora_rank x heads·(qk_nope + v)),
    W_o (heads·v_head_dim x d). DeepSeek-V3: 187.1 M weights, 374 MFLOPs per token.
    """
    m = get_moe_model(model)
    return 2.0 * _mla_weights(m)


def _mla_weights(m: MoEShape) -> int:
    return (
        m.d_model * m.q_lora_rank
        + m.q_lora_rank * m.heads * m.qk_head_dim
        + m.d_model * m.cached_dim
        + m.kv_lora_rank * m.heads * (m.qk_nope_head_dim + m.v_head_dim)
        + m.heads * m.v_head_dim * m.d_model
    )


def moe_ffn_flops_per_token(model: str | MoEShape) -> float:
    """FFN FLOPs per token and layer, averaged over the layers of a mixture-of-experts model.

    A dense layer: ``3 * 2 * d * dense_d_ff`` (SwiGLU). A MoE layer: the routed experts a
    token uses plus the shared ones, ``(active + shared) * 3 * 2 * d * expert_d_ff``, plus the
    router ``2 * d * routed_experts``. The average weights each kind by its layer count.
    DeepSeek-V3: 6·7168·18432 = 9·6·7168·2048 = 792.7 MFLOPs in both kinds (+3.7 M router).
    """
    m = get_moe_model(model)
    dense = ffn_flops(1, m.d_model, m.dense_d_ff, gated=True)
    experts = (m.active_experts + m.shared_experts) * ffn_flops(
        1, m.d_model, m.expert_d_ff, gated=True
    )
    moe = experts + matmul_flops(1, m.d_model, m.routed_experts)
    return (m.dense_layers * dense + m.moe_layers * moe) / m.layers


def moe_attention_ffn_ratio(
    model: str | MoEShape, n: int, *, causal: bool = False, include_projections: bool = False
) -> float:
    """Attention-matmul FLOPs / FFN (+ MLA projection) FLOPs of one layer at length n.

    ``mla_attention_matmul_flops(n) / (n * (moe_ffn_flops_per_token + projections))``: linear
    in n, like :func:`attention_ffn_ratio` for a dense model. DeepSeek-V3 at n = 10**6,
    non-causal, against the FFN: 81,920·10**6 / 792.7 M ≈ 103.
    """
    m = get_moe_model(model)
    rest = moe_ffn_flops_per_token(m)
    if check_flag("include_projections", include_projections):
        rest += mla_projection_flops_per_token(m)
    return mla_attention_matmul_flops(n, m, causal=causal) / (check_count("n", n) * rest)


def moe_parameter_count(model: str | MoEShape, *, active: bool = False) -> int:
    """Parameters of a mixture-of-experts preset; ``active=True``: those one token uses.

    Per layer: the MLA projections (:func:`mla_projection_flops_per_token` / 2), the q and
    kv latent norms, two RMSNorms (``2 d``); a dense SwiGLU FFN (``3 d dense_d_ff``) in the
    first ``dense_layers``, else ``(routed + shared) * 3 d expert_d_ff`` experts and a
    ``routed x d`` router (``active``: only ``active + shared`` experts). Plus a final norm,
    the embedding and, unless tied, the output projection (``vocab x d`` each). DeepSeek-V3:
    671.0 B in all, 37.5 B active (the report: 671 B and 37 B).
    """
    m = get_moe_model(model)
    d = m.d_model
    attention = _mla_weights(m) + m.q_lora_rank + m.kv_lora_rank + 2 * d
    dense = 3 * d * m.dense_d_ff
    experts = m.active_experts if check_flag("active", active) else m.routed_experts
    moe = (experts + m.shared_experts) * 3 * d * m.expert_d_ff + m.routed_experts * d
    embeddings = m.vocab * d * (1 if m.tied_embeddings else 2)
    return m.layers * attention + m.dense_layers * dense + m.moe_layers * moe + d + embeddings


def mla_kv_cache_bytes(
    model: str | MoEShape, context: int, *, batch: int = 1, dtype: Any = "float16"
) -> float:
    """KV-cache bytes of an MLA preset: :func:`latent_kv_cache_bytes` with its cached width.

    ``layers * (kv_lora_rank + qk_rope_head_dim) * context * batch * bytes``; DeepSeek-V3
    caches 576 numbers per token per layer.
    """
    m = get_moe_model(model)
    return latent_kv_cache_bytes(m.layers, m.cached_dim, context, batch=batch, dtype=dtype)


# --- the KV cache ---------------------------------------------------------------------


def kv_cache_bytes(
    layers: int,
    kv_heads: int,
    head_dim: int,
    context: int,
    *,
    batch: int = 1,
    dtype: Any = "float16",
) -> float:
    """Bytes of a KV cache: ``2 * layers * kv_heads * head_dim * context * batch * bytes``.

    For every layer, every cached token and every key/value head the cache stores one key
    vector and one value vector (the 2) of ``head_dim`` numbers. Multi-head attention has
    ``kv_heads = heads`` (so ``kv_heads * head_dim = d_model``), multi-query attention
    ``kv_heads = 1``, grouped-query attention something in between.
    """
    count = (
        2
        * check_count("layers", layers)
        * check_count("kv_heads", kv_heads)
        * check_count("head_dim", head_dim)
        * check_count("context", context)
        * check_count("batch", batch)
    )
    return _whole(count * bytes_per_element(dtype))


def kv_cache_bytes_per_token(
    layers: int, kv_heads: int, head_dim: int, *, dtype: Any = "float16"
) -> float:
    """Bytes the KV cache grows by for each new token: ``2 * layers * kv_heads * head_dim * bytes``.

    Constant: the cache grows linearly with context, one fixed-size slice per token.
    """
    return kv_cache_bytes(layers, kv_heads, head_dim, 1, dtype=dtype)


def max_kv_context(
    memory_bytes: float,
    layers: int,
    kv_heads: int,
    head_dim: int,
    *,
    batch: int = 1,
    dtype: Any = "float16",
) -> int:
    """Longest context whose KV cache fits in ``memory_bytes`` (0 if not even one token fits).

    ``floor(memory_bytes / (batch * kv_cache_bytes_per_token))``.
    """
    memory_bytes = check_non_negative("memory_bytes", memory_bytes)
    per_token = kv_cache_bytes_per_token(layers, kv_heads, head_dim, dtype=dtype)
    return math.floor(memory_bytes / (per_token * check_count("batch", batch)))


def model_kv_cache_bytes(
    model: str | ModelShape,
    context: int,
    *,
    batch: int = 1,
    dtype: Any = "float16",
    kv_heads: int | None = None,
) -> float:
    """KV-cache bytes of a model preset; ``kv_heads`` overrides the preset's (e.g. 1 for MQA)."""
    m = get_model(model)
    kv = _kv_heads(m.heads, m.kv_heads if kv_heads is None else kv_heads)
    return kv_cache_bytes(m.layers, kv, m.head_dim, context, batch=batch, dtype=dtype)


def latent_kv_cache_bytes(
    layers: int, latent_dim: int, context: int, *, batch: int = 1, dtype: Any = "float16"
) -> float:
    """Bytes of a multi-head latent attention (MLA) cache.

    ``layers * latent_dim * context * batch * bytes_per_element``.

    MLA (DeepSeek-V2/V3) caches one compressed vector per token per layer, shared by all
    heads, instead of a key and a value per head; ``latent_dim`` counts every cached
    channel (for DeepSeek-V3: 512 latent + 64 decoupled RoPE key = 576).
    """
    count = (
        check_count("layers", layers)
        * check_count("latent_dim", latent_dim)
        * check_count("context", context)
        * check_count("batch", batch)
    )
    return _whole(count * bytes_per_element(dtype))


# --- parameters -----------------------------------------------------------------------


def parameter_count(model: str | ModelShape, *, include_embeddings: bool = True) -> int:
    """Number of parameters of a model preset, from its shape alone.

    Per layer: attention ``2 d**2 + 2 d * kv_heads * head_dim`` (W_q, W_o; W_k, W_v),
    FFN ``matrices * d * d_ff`` (3 if gated), two norms (``d`` each for RMSNorm, ``2 d`` for
    LayerNorm), and bias vectors if the model has them. Plus a final norm. With
    ``include_embeddings``: the token embedding ``vocab * d``, a separate output projection
    ``vocab * d`` unless tied, and a learned position table ``context * d`` if any.
    Llama-2-7B gives 6,738,415,616, matching its published count exactly.
    """
    m = get_model(model)
    d, kv_width = m.d_model, m.kv_heads * m.head_dim
    matrices = 3 if m.gated_ffn else 2
    norm = 2 * d if m.norm == "layernorm" else d
    per_layer = 2 * d * d + 2 * d * kv_width + matrices * d * m.d_ff + 2 * norm
    if m.biases:
        # q, k, v and output projection biases; FFN hidden (and gate) and output biases.
        per_layer += (d + 2 * kv_width) + d + (matrices - 1) * m.d_ff + d
    total = m.layers * per_layer + norm
    if check_flag("include_embeddings", include_embeddings):
        total += m.vocab * d
        if not m.tied_embeddings:
            total += m.vocab * d
        if m.learned_positions:
            total += m.context * d
    return total


def matmul_parameter_count(model: str | ModelShape, *, include_lm_head: bool = True) -> int:
    """Weights that take part in a matmul for every token: the FLOP-relevant parameters.

    ``layers * (2 d**2 + 2 d * kv_heads * head_dim + matrices * d * d_ff)`` plus the output
    projection ``d * vocab`` (the "LM head", which computes logits). Biases and norms
    (a handful of FLOPs per token) and the embedding lookup (no FLOPs) are left out.
    Each of these weights costs 2 FLOPs per token in the forward pass.
    """
    m = get_model(model)
    per_layer = (
        projection_flops(1, m.d_model, m.heads, m.kv_heads)
        + ffn_flops(1, m.d_model, m.d_ff, gated=m.gated_ffn)
    ) // 2
    head = m.d_model * m.vocab if check_flag("include_lm_head", include_lm_head) else 0
    return int(m.layers * per_layer + head)


def weight_bytes(model: str | ModelShape, dtype: Any = "bfloat16") -> float:
    """Bytes of all of a model's parameters in ``dtype``: ``parameter_count * bytes``."""
    return _whole(parameter_count(model) * bytes_per_element(dtype))


# --- time -----------------------------------------------------------------------------


def transfer_time_s(n_bytes: float, bandwidth_bytes_per_s: float) -> float:
    """Seconds to move ``n_bytes`` at ``bandwidth_bytes_per_s``: ``n_bytes / bandwidth``.

    Moving a tensor "in and out once" means writing it and reading it back: pass
    ``2 * bytes``. Peak bandwidth gives a lower bound; real kernels reach ~70-90 % of it.
    """
    return check_non_negative("n_bytes", n_bytes) / check_positive(
        "bandwidth_bytes_per_s", bandwidth_bytes_per_s
    )


def compute_time_s(flops: float, flops_per_s: float, *, utilization: float = 1.0) -> float:
    """Seconds to execute ``flops`` at ``utilization * flops_per_s``.

    ``utilization`` is the fraction of peak actually achieved (model FLOP utilisation,
    MFU, for a whole model: large training and prefill runs typically reach 0.3-0.6).
    """
    return check_non_negative("flops", flops) / (
        check_positive("flops_per_s", flops_per_s) * check_fraction("utilization", utilization)
    )


def roofline_time_s(
    flops: float,
    n_bytes: float,
    flops_per_s: float,
    bandwidth_bytes_per_s: float,
    *,
    utilization: float = 1.0,
) -> float:
    """Roofline estimate: ``max(compute time, memory time)`` in seconds.

    A kernel that overlaps arithmetic with memory traffic takes as long as the slower of
    the two; which one is slower says whether it is compute-bound or memory-bound.
    """
    return max(
        compute_time_s(flops, flops_per_s, utilization=utilization),
        transfer_time_s(n_bytes, bandwidth_bytes_per_s),
    )


def peak_flops_per_s(hardware: str | Hardware, dtype: Any = "bfloat16") -> float:
    """Dense peak FLOP/s of a hardware preset for matmuls in ``dtype``."""
    hw = get_hardware(hardware)
    name = canonical_dtype(dtype)
    if name not in hw.peak_flops_per_s:
        raise ValueError(
            f"dtype {name!r} has no peak FLOP/s on {hw.name}; "
            f"choose one of {sorted(hw.peak_flops_per_s)}"
        )
    return hw.peak_flops_per_s[name]


@dataclass(frozen=True)
class RooflineEstimate:
    """FLOPs and bytes of a step, and how long each takes on a given device.

    flops:       floating-point operations (FLOPs)
    bytes_moved: bytes read from / written to device memory
    compute_s:   flops / (peak FLOP/s * utilisation)
    memory_s:    bytes_moved / (bandwidth * bandwidth utilisation)
    """

    flops: float
    bytes_moved: float
    compute_s: float
    memory_s: float

    @property
    def time_s(self) -> float:
        """The roofline estimate: the slower of compute and memory."""
        return max(self.compute_s, self.memory_s)

    @property
    def bound(self) -> str:
        """``"compute"`` or ``"memory"``: which side of the roofline sets the time."""
        return "compute" if self.compute_s >= self.memory_s else "memory"

    @property
    def arithmetic_intensity(self) -> float:
        """FLOPs per byte moved."""
        return self.flops / self.bytes_moved


def _kv_dtype(kv_dtype: Any, dtype: Any) -> str:
    """The cache's dtype: ``kv_dtype``, or the weights' ``dtype`` when it is None."""
    return canonical_dtype(dtype) if kv_dtype is None else canonical_dtype(kv_dtype, "kv_dtype")


def _estimate(
    flops: float,
    n_bytes: float,
    hardware: str | Hardware,
    dtype: Any,
    mfu: float,
    bandwidth_utilization: float,
) -> RooflineEstimate:
    hw = get_hardware(hardware)
    mfu = check_fraction("mfu", mfu)
    utilization = check_fraction("bandwidth_utilization", bandwidth_utilization)
    bandwidth = hw.bandwidth_bytes_per_s * utilization
    return RooflineEstimate(
        flops=flops,
        bytes_moved=n_bytes,
        compute_s=compute_time_s(flops, peak_flops_per_s(hw, dtype), utilization=mfu),
        memory_s=transfer_time_s(n_bytes, bandwidth),
    )


# --- prefill and decode ---------------------------------------------------------------


def prefill_flops(
    model: str | ModelShape,
    n: int,
    *,
    batch: int = 1,
    causal: bool = True,
    logits: str = "all",
) -> float:
    """FLOPs of one forward pass over an n-token prompt: ``~ 2 * P * n + layers * attention``.

    ``2 * P * n`` with P = :func:`matmul_parameter_count` (every weight does one multiply-add
    per token: projections, FFN and the LM head), plus
    ``layers * attention_matmul_flops(n, d_model, causal)`` (``2 n**2 d`` per layer when
    causal). Multiplied by ``batch``.

    Which positions get logits. ``logits="all"`` (the default) counts the output projection
    (LM head, ``2 * d_model * vocab`` per position) for all n positions, as a training
    forward does and as ``model(prompt)`` in :mod:`attn_course.model` does.
    :func:`time_to_first_token` uses this count, so its estimate is an upper bound of the
    FLOPs. Inference needs only the last position's logits to sample the next token:
    ``logits="last"`` counts the LM head once per sequence. For Llama-3-8B (vocabulary
    128,256) the difference is about 7 % of the prefill at short prompts, less as
    attention grows (notebook 07 computes it).
    """
    m = get_model(model)
    n = check_count("n", n)
    check_choice("logits", logits, ("all", "last"))
    per_layer = layer_flops(m, n, causal=causal)
    head_positions = n if logits == "all" else 1
    total = m.layers * per_layer.total + matmul_flops(head_positions, m.d_model, m.vocab)
    return total * check_count("batch", batch)


def decode_attention_flops(context: int, d_model: int) -> float:
    """FLOPs of one layer's attention for ONE new query against ``context`` cached keys.

    ``q K^T`` is (1 x d) against (context x d): ``2 * context * d``; ``p V`` the same:
    ``4 * context * d_model`` in total, linear in the context. ``d_model`` here is
    ``heads * head_dim``, the width of the *queries*: every query head multiplies its own
    scores, whether or not it shares its key/value head (GQA changes the bytes read, not
    these FLOPs).
    """
    return 4 * check_count("context", context) * check_count("d_model", d_model)


def decode_flops_per_cached_number(heads: int, kv_heads: int | None = None) -> float:
    """FLOPs one decode step does per number it reads from the KV cache: ``2 * heads / kv_heads``.

    Per layer and cached token, the new query does :func:`decode_attention_flops` with
    ``d_model = heads * head_dim`` (``4 * heads * head_dim`` FLOPs: ``q·k`` and ``p v``
    for every query head) and reads the token's key and value of each key/value head
    (:func:`kv_cache_bytes` counts ``2 * kv_heads * head_dim`` numbers). The quotient is
    2 for multi-head attention; under grouped-query attention each cached number serves
    ``heads / kv_heads`` query heads: 8 for Llama-3-8B (32 query heads, 8 KV heads), 2 *
    heads for multi-query attention. Divide by the bytes per number for FLOPs per byte.
    """
    kv = _kv_heads(heads, kv_heads)
    head_dim_ = 1  # cancels: both counts are proportional to head_dim (and to the context)
    flops = decode_attention_flops(1, heads * head_dim_)
    numbers = kv_cache_bytes(1, kv, head_dim_, 1, dtype="int8")  # 1 B per number: a count
    return flops / numbers


def decode_step_flops(
    model: str | ModelShape, context: int, *, batch: int = 1, kv_cache: bool = True
) -> float:
    """FLOPs to produce one new token when ``context`` tokens (the new one included) are visible.

    With a KV cache: ``2 * P + layers * 4 * context * d`` per sequence (weights once for
    the new token, attention of one query over the cache) — O(d**2 + context * d).
    Without a cache the model re-runs the whole prefix: a causal forward over ``context``
    tokens (logits only for the last one), ``~ 2 * P * context + layers * 2 * context**2 * d``.
    """
    m = get_model(model)
    context, batch = check_count("context", context), check_count("batch", batch)
    if check_flag("kv_cache", kv_cache):
        per_sequence = 2 * matmul_parameter_count(m) + m.layers * decode_attention_flops(
            context, m.d_model
        )
    else:
        per_sequence = m.layers * layer_flops(m, context, causal=True).total
        per_sequence += matmul_flops(1, m.d_model, m.vocab)
    return per_sequence * batch


def decode_total_flops(
    model: str | ModelShape,
    new_tokens: int,
    *,
    prompt_tokens: int = 0,
    batch: int = 1,
    kv_cache: bool = True,
) -> float:
    """FLOPs to generate ``new_tokens`` tokens after a prompt: the sum of the decode steps.

    Step i (1-based) sees ``prompt_tokens + i`` tokens. With a cache the attention part
    sums to O(T**2 d); without one to O(T**3 d), plus the weight part (O(T d**2) with a
    cache, O(T**2 d**2) without).

    The sum has a closed form, so a long generation costs no loop: a step over context c
    costs ``2 P + 4 L d c`` with a cache, and ``L (2 d c**2 + (projections + FFN per
    token) c) + 2 d vocab`` without (:func:`decode_step_flops`), summed with
    ``Σ c = T p + T (T + 1) / 2`` and ``Σ c**2 = s(p + T) - s(p)``, ``s(x) = x (x+1) (2x+1) / 6``.
    """
    m = get_model(model)
    new_tokens = check_count("new_tokens", new_tokens)
    prompt_tokens = check_count("prompt_tokens", prompt_tokens, minimum=0)
    batch, kv_cache = check_count("batch", batch), check_flag("kv_cache", kv_cache)
    t, p = new_tokens, prompt_tokens
    sum_c = t * p + t * (t + 1) // 2

    def squares(x: int) -> int:
        return x * (x + 1) * (2 * x + 1) // 6

    if kv_cache:
        per_sequence = t * 2 * matmul_parameter_count(m) + 4 * m.layers * m.d_model * sum_c
    else:
        per_token = projection_flops(1, m.d_model, m.heads, m.kv_heads) + ffn_flops(
            1, m.d_model, m.d_ff, gated=m.gated_ffn
        )
        sum_c2 = squares(p + t) - squares(p)
        per_sequence = m.layers * (2 * m.d_model * sum_c2 + per_token * sum_c)
        per_sequence += t * matmul_flops(1, m.d_model, m.vocab)
    return per_sequence * batch


def time_to_first_token(
    model: str | ModelShape,
    hardware: str | Hardware,
    prompt_tokens: int,
    *,
    batch: int = 1,
    dtype: Any = "bfloat16",
    kv_dtype: Any = None,
    mfu: float = 1.0,
    bandwidth_utilization: float = 1.0,
) -> RooflineEstimate:
    """Roofline estimate of the prefill (time to first token) on one device.

    FLOPs: :func:`prefill_flops` (causal). Bytes: the weights read once plus the KV cache
    written once; the attention is assumed fused (FlashAttention-style), so n x n scores
    never travel to memory. ``mfu`` is the fraction of peak FLOP/s achieved: the default
    1.0 gives a lower bound on the time; 0.4-0.6 is a realistic range. Ignores whether the
    model and cache fit in memory (check with :func:`weight_bytes` and
    :func:`model_kv_cache_bytes`).
    """
    m = get_model(model)
    prompt_tokens = check_count("prompt_tokens", prompt_tokens)
    flops = prefill_flops(m, prompt_tokens, batch=batch, causal=True)
    cache = model_kv_cache_bytes(m, prompt_tokens, batch=batch, dtype=_kv_dtype(kv_dtype, dtype))
    n_bytes = weight_bytes(m, dtype) + cache
    return _estimate(flops, n_bytes, hardware, dtype, mfu, bandwidth_utilization)


# Same keyword arguments as time_to_first_token on purpose: the two are compared side by side.
def decode_step_cost(
    model: str | ModelShape,
    hardware: str | Hardware,
    context: int,
    *,
    batch: int = 1,
    dtype: Any = "bfloat16",
    kv_dtype: Any = None,
    mfu: float = 1.0,
    bandwidth_utilization: float = 1.0,
) -> RooflineEstimate:
    """Roofline estimate of one decode step (one new token per sequence) with a KV cache.

    FLOPs: :func:`decode_step_flops`. Bytes read: every matmul weight once per step (shared
    by the whole batch) plus each sequence's KV cache for ``context`` tokens. At small
    batch the step is memory-bound: a 2-byte weight yields 2 FLOPs per sequence, about
    ``batch`` FLOPs per byte, far below the hundreds of FLOPs per byte a GPU needs to be
    compute-bound.
    """
    m = get_model(model)
    flops = decode_step_flops(m, context, batch=batch, kv_cache=True)
    weights = matmul_parameter_count(m) * bytes_per_element(dtype)
    cache = model_kv_cache_bytes(m, context, batch=batch, dtype=_kv_dtype(kv_dtype, dtype))
    return _estimate(flops, weights + cache, hardware, dtype, mfu, bandwidth_utilization)


# --- chunked and cached prefill -------------------------------------------------------


def prefill_chunk_flops(model: str | ModelShape, start: int, length: int) -> float:
    """FLOPs of the Transformer layers for prompt tokens ``start .. start + length - 1``.

    The tokens before ``start`` are already in the KV cache. Per layer: projections and
    FFN for ``length`` tokens, the new queries against the cached keys (a full
    ``length x start`` block, ``4 * length * start * d``) and among themselves (causal,
    ``attention_matmul_flops(length, d, causal=True)``). The logits are left out: they do
    not depend on how the prompt is split. ``start = 0, length = n`` is a causal prefill
    of n tokens (:func:`prefill_flops` without its LM head).
    """
    m = get_model(model)
    start = check_count("start", start, minimum=0)
    length = check_count("length", length)
    per_layer = (
        projection_flops(length, m.d_model, m.heads, m.kv_heads)
        + ffn_flops(length, m.d_model, m.d_ff, gated=m.gated_ffn)
        + 4 * length * start * m.d_model
        + attention_matmul_flops(length, m.d_model, causal=True)
    )
    return m.layers * per_layer


def chunked_prefill_flops(model: str | ModelShape, n: int, chunk: int) -> float:
    """FLOPs of the layers when an n-token prompt is prefilled ``chunk`` tokens at a time.

    The sum of :func:`prefill_chunk_flops` over the chunks. The attention terms add up to
    the same ``2 n**2 d`` per layer as one causal pass: chunk i's queries meet the
    ``i * chunk`` cached keys in full and each other causally, and the blocks tile the same
    lower triangle. So chunking moves no FLOPs; it only bounds how many a single step runs.
    """
    n, chunk = check_count("n", n), check_count("chunk", chunk)
    check_loop_size("n", -(-n // chunk), "chunks")
    return sum(
        prefill_chunk_flops(model, start, min(chunk, n - start)) for start in range(0, n, chunk)
    )


# --- the command line -----------------------------------------------------------------
# python -m attn_course.cost CONFIG.json|PRESET --context 131072 --gpu H100-SXM5-80GB


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m attn_course.cost",
        description="Weights, KV cache, largest batch, time to first token and time per "
        "decoded token of a model on one GPU (roofline estimates: the slower of compute "
        "at mfu x peak FLOP/s and memory traffic at the HBM bandwidth).",
    )
    parser.add_argument(
        "model",
        help=f"a Hugging Face config.json (or a folder holding one), or a preset: "
        f"{', '.join([*model_names(), *moe_model_names()])}",
    )
    parser.add_argument(
        "--context",
        type=int,
        default=None,
        help="tokens per sequence: prompt length for TTFT, cache length for "
        "decode (default: the model's max_position_embeddings)",
    )
    parser.add_argument(
        "--gpu",
        default="H100-SXM5-80GB",
        help=f"hardware preset, one of {', '.join(hardware_names())}",
    )
    parser.add_argument("--batch", type=int, default=1, help="sequences decoded together")
    parser.add_argument("--dtype", default="bfloat16", help="weights and compute dtype")
    parser.add_argument("--kv-dtype", default=None, help="KV-cache dtype (default: --dtype)")
    parser.add_argument(
        "--mfu",
        type=float,
        default=0.5,
        help="fraction of peak FLOP/s achieved, in (0, 1] (default 0.5)",
    )
    return parser  # fmt: skip


def _load_cli_model(model: str) -> ModelShape | MoEShape:
    if model in moe_model_names():
        return get_moe_model(model)
    if model in model_names():
        return get_model(model)
    return model_from_config(model)  # a ValueError names the file or the bad field


def _report_lines(args: argparse.Namespace) -> list[str]:
    """What the command prints, one line each; ValueErrors for any bad argument."""
    m = _load_cli_model(args.model)
    hw = get_hardware(args.gpu)
    context = m.context if args.context is None else check_count("--context", args.context)
    batch = check_count("--batch", args.batch)
    dtype, kv_dtype = canonical_dtype(args.dtype), _kv_dtype(args.kv_dtype, args.dtype)
    moe = isinstance(m, MoEShape)
    params = moe_parameter_count(m) if moe else parameter_count(m)
    weights = _whole(params * bytes_per_element(args.dtype))
    if moe:
        cache = mla_kv_cache_bytes(m, context, dtype=kv_dtype)
    else:
        cache = model_kv_cache_bytes(m, context, dtype=kv_dtype)
    # Same rule as attn_course.kvcache.max_batch: whole sequences beside the weights.
    fit = max(0, math.floor((hw.memory_bytes - weights) / cache))
    total = weights + batch * cache
    verdict = "fits" if total <= hw.memory_bytes else "does NOT fit"
    lines = [
        f"model       {m.name}: {params:,} parameters ({m.source})",
        f"device      {hw.name}: {format_bytes_both(hw.memory_bytes)} memory, "
        f"{hw.bandwidth_bytes_per_s / 1e12:.3g} TB/s, "
        f"{peak_flops_per_s(hw, args.dtype) / 1e12:.4g} TFLOP/s dense {dtype}",
        f"weights     {format_bytes_both(weights)} ({dtype})",
        f"KV cache    {format_bytes_both(cache)} per sequence of {context:,} tokens "
        f"({kv_dtype}, {format_bytes(cache / context)} per token)",
        f"max batch   {fit} sequences of {context:,} tokens beside the weights",
        f"memory      weights + {batch} x KV cache = {format_bytes_both(total)}: {verdict}",
    ]  # fmt: skip
    if moe:
        return [*lines, "TTFT/decode not estimated: the roofline functions model dense "
                        "decoders (one FFN per layer), not routed experts"]  # fmt: skip
    kwargs = {"dtype": args.dtype, "kv_dtype": args.kv_dtype, "mfu": args.mfu}
    ttft = time_to_first_token(m, hw, context, **kwargs)
    step = decode_step_cost(m, hw, context, batch=batch, **kwargs)
    return [
        *lines,
        f"TTFT        {format_seconds(ttft.time_s)} to prefill {context:,} tokens "
        f"({format_flops(ttft.flops)}, {ttft.bound}-bound at MFU {args.mfu:g})",
        f"decode      {format_seconds(step.time_s)} per token at batch {batch}, context "
        f"{context:,} ({step.bound}-bound; {batch / step.time_s:,.0f} tokens/s)",
    ]


def main(argv: list[str] | None = None) -> int:
    """``python -m attn_course.cost``: print a model's serving costs on one GPU.

    Returns the exit status: 0, or 2 (with the reason on stderr) for a bad argument, an
    unknown GPU, an unreadable or invalid config.json.
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse has printed its usage message
        return int(exit_.code or 0)
    try:
        lines = _report_lines(args)
    except ValueError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

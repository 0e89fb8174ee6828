"""Check the claims: every number in the two source texts, recomputed with :mod:`attn_course.cost`.

The course answers two texts that do not ship with it; :data:`SOURCES` describes them
(``sources_markdown()`` for the notebook). For each numeric claim this module builds a
:class:`Claim`: the claim stated in the course's own words, the figure the text gives, our
figure (computed by a function here, never typed in), the assumption behind it, a verdict
and, when the text is off, the right figure with the arithmetic.

Verdicts:

* ``holds``           — our figure is within 10 % of the stated one (or the inequality holds)
* ``roughly holds``   — within a factor of 2, or true under one reading and not another
* ``wrong``           — off by more than a factor of 2, or the statement is false
* ``cannot be checked by arithmetic`` — a measured speed-up or a product fact; notebook 04's
  benchmark command measures what can be measured (on a CPU here; on a GPU where one is lent)

``all_claims()`` returns the list, ``claims_table()`` a list of plain dicts, and
``claims_markdown()`` / ``claims_html()`` a table for the notebook.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

from attn_course import cost
from attn_course.presets import get_hardware, get_model

__all__ = [
    "HOLDS",
    "INTERVIEW",
    "NOT_ARITHMETIC",
    "ROUGHLY",
    "SOURCES",
    "TEXTBOOK",
    "VERDICTS",
    "WRONG",
    "Claim",
    "all_claims",
    "claims_html",
    "claims_markdown",
    "claims_table",
    "get_claim",
    "sources_markdown",
    "verdict_from_ratio",
]

TEXTBOOK = "textbook section"
INTERVIEW = "interview answer"

# What each source is, for a reader who has neither text at hand.
SOURCES = {
    TEXTBOOK: (
        'a section of a deep-learning textbook, titled "The quadratic wall: attention '
        'complexity", that motivates the chapters on FlashAttention, linear and sparse '
        "attention: it puts figures on the score matrix (per head, per layer, in training), "
        "on memory traffic on an A100, on the attention/FFN crossover, on the KV cache and "
        "prefill time, and lists production context lengths of 2020-2026"
    ),
    INTERVIEW: (
        "a model answer to an interview question on why standard self-attention costs O(n²) "
        "in the sequence length and how that cost is addressed, from an online collection "
        "of deep-learning interview questions: it sizes the score matrix at n = 4096 and "
        "n = 32,000 in fp32, says how the KV cache grows, and tabulates the ways around the "
        "quadratic cost (sparse, FlashAttention, linear, sliding window, ALiBi/RoPE)"
    ),
}

HOLDS = "holds"
ROUGHLY = "roughly holds"
WRONG = "wrong"
NOT_ARITHMETIC = "cannot be checked by arithmetic"
VERDICTS = (HOLDS, ROUGHLY, WRONG, NOT_ARITHMETIC)

# Within this factor a figure "holds"; within ROUGH_FACTOR it "roughly holds".
HOLD_FACTOR = 1.1
ROUGH_FACTOR = 2.0


@dataclass(frozen=True)
class Claim:
    """One claim from a source text and what the arithmetic says about it.

    id:               short stable key (``get_claim(id)``)
    source:           which text (``TEXTBOOK`` or ``INTERVIEW``)
    claim:            the claim, paraphrased
    stated:           the figure as the text gives it
    recomputed:       our figure, formatted from computed values
    assumption:       what our figure assumes
    verdict:          one of ``VERDICTS``
    correction:       when the text is off: the right figure, with the arithmetic
    stated_value:     the stated figure as a number, when there is one
    recomputed_value: our figure as a number, when there is one (same unit as stated_value)
    """

    id: str
    source: str
    claim: str
    stated: str
    recomputed: str
    assumption: str
    verdict: str
    correction: str = ""
    stated_value: float | None = None
    recomputed_value: float | None = None

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


def verdict_from_ratio(stated: float, recomputed: float) -> str:
    """``holds`` within 10 %, ``roughly holds`` within 2x, else ``wrong``."""
    if stated <= 0 or recomputed <= 0:
        raise ValueError(f"stated and recomputed must be > 0, got {stated!r}, {recomputed!r}")
    factor = max(stated / recomputed, recomputed / stated)
    if factor <= HOLD_FACTOR:
        return HOLDS
    if factor <= ROUGH_FACTOR:
        return ROUGHLY
    return WRONG


_bytes = cost.format_bytes_both


def _count(value: float) -> str:
    return f"{value:,.0f}" if value < 1e10 else f"{value:.3g}"


# --- textbook ---------------------------------------------------------------------------


def _scores_8k() -> Claim:
    n = 8000
    scores = cost.score_count(n)
    scores_8192 = cost.score_count(8192)
    return Claim(
        id="scores_8k",
        source=TEXTBOOK,
        claim="An 8,000-token context means 64 million query-key scores per head and layer.",
        stated="64 million",
        recomputed=f"{_count(scores)} = 8000²  ({scores_8192 / 1e6:.1f} M if '8K' means 8192)",
        assumption="one n x n matrix per head per layer",
        verdict=verdict_from_ratio(64e6, scores),
        stated_value=64e6,
        recomputed_value=scores,
    )


def _scores_1m() -> Claim:
    n = 10**6
    n_bytes = cost.score_matrix_bytes(n, "float16")
    return Claim(
        id="scores_1m_2tb",
        source=TEXTBOOK,
        claim="At a million tokens one head's score matrix has 10¹² entries: 2 TB in fp16.",
        stated="10¹² scores, 2 TB",
        recomputed=f"{cost.score_count(n):.3g} scores, {_bytes(n_bytes)}",
        assumption="2 bytes per fp16 score; one head, one layer",
        verdict=verdict_from_ratio(2e12, n_bytes),
        stated_value=2e12,
        recomputed_value=n_bytes,
    )


def _scores_1m_no_device() -> Claim:
    n_bytes = cost.score_matrix_bytes(10**6, "float16")
    biggest = max(
        (get_hardware(name) for name in ("A100-SXM4-80GB", "H100-SXM5-80GB", "H200-SXM-141GB")),
        key=lambda hw: hw.memory_bytes,
    )
    ratio = n_bytes / biggest.memory_bytes
    return Claim(
        id="scores_1m_no_device",
        source=TEXTBOOK,
        claim="No accelerator today could hold that single 10¹²-entry matrix.",
        stated="does not fit any device",
        recomputed=(
            f"{_bytes(n_bytes)} is {ratio:.0f}x the {biggest.name}'s {_bytes(biggest.memory_bytes)}"
        ),
        assumption="largest single-GPU memory among the presets",
        verdict=HOLDS if ratio > 1 else WRONG,
        stated_value=None,
        recomputed_value=ratio,
    )


def _matmul_flops() -> Claim:
    n, d = 4096, 4096
    flops = cost.matmul_flops(n, d, n)  # Q K^T: (n x d) @ (d x n)
    stated = n * n * d
    return Claim(
        id="matmul_n2d",
        source=TEXTBOOK,
        claim="Each of the two attention matmuls costs roughly n²·d floating-point operations.",
        stated="n²·d FLOPs per matmul",
        recomputed=f"2·n²·d FLOPs (= n²·d multiply-adds); n = d = 4096: {flops:.3g} FLOPs",
        assumption="FLOPs = 2 x multiply-adds",
        verdict=verdict_from_ratio(stated, flops),
        correction=(
            "n²·d counts multiply-adds. In FLOPs each matmul is 2·n²·d, and QKᵀ plus PV "
            "together 4·n²·d per layer (summed over heads, since heads x head_dim = d)."
        ),
        stated_value=stated,
        recomputed_value=flops,
    )


def _double_context() -> Claim:
    model, n = "Llama-2-7B", 4096
    attention_ratio = cost.attention_matmul_flops(2 * n, 4096) / cost.attention_matmul_flops(
        n, 4096
    )
    model_ratio = cost.prefill_flops(model, 2 * n) / cost.prefill_flops(model, n)
    return Claim(
        id="double_context_4x",
        source=TEXTBOOK,
        claim=(
            "Doubling the context length multiplies the cost by 4: said of self-attention, "
            "and from it of what a model costs to run."
        ),
        stated="4x",
        recomputed=(
            f"attention matmuls: {attention_ratio:.2f}x; whole {model} forward, "
            f"{n} -> {2 * n} tokens: {model_ratio:.2f}x"
        ),
        assumption=f"{model} shape, causal prefill FLOPs",
        verdict=verdict_from_ratio(4.0, model_ratio),
        correction=(
            "Exactly 4x for the attention term only. The projections and FFN grow 2x per "
            "doubling and dominate below the crossover (~4-6 d), so a whole model pays "
            f"about {model_ratio:.1f}x at {n} -> {2 * n}; 4x is the limit for n far above it."
        ),
        stated_value=4.0,
        recomputed_value=model_ratio,
    )


def _training_70gb() -> Claim:
    n, layers, heads = 32768, 32, 32
    one_head = cost.score_matrix_bytes(n, "float16", layers=layers)
    kept = cost.saved_for_backward_bytes(n, heads, layers, "float16")
    kept_dropout = cost.saved_for_backward_bytes(n, heads, layers, "float16", dropout=True)
    peak = cost.forward_peak_score_bytes(n, heads, "float16")
    return Claim(
        id="training_70gb",
        source=TEXTBOOK,
        claim=(
            "Training a 32-layer model on one 32,768-token example keeps about "
            "32 x 32768² x 2 B ≈ 70 GB of attention activations."
        ),
        stated="≈ 70 GB",
        recomputed=(
            f"the product as written: {_bytes(one_head)}; with 32 heads per layer autograd "
            f"keeps P for each: {_bytes(kept)}"
        ),
        assumption=(
            "32 layers x 32 heads (Llama-2-7B shape), fp16, batch 1, naive attention; "
            "autograd saves P (softmax output), not S"
        ),
        verdict=verdict_from_ratio(70e9, kept),
        correction=(
            f"32 x 32768² x 2 B = {_bytes(one_head)} is ONE head per layer. Autograd keeps "
            f"the n x n probabilities of every head: 32 layers x 32 heads x 32768² x 2 B = "
            f"{_bytes(kept)}; with dropout (bool mask + dropped copy, 5 B per score) "
            f"{_bytes(kept_dropout)}. The forward pass alone peaks at S + P of one layer: "
            f"2 x 32 x 32768² x 2 B = {_bytes(peak)}."
        ),
        stated_value=70e9,
        recomputed_value=kept,
    )


def _a100_bandwidth() -> Claim:
    bandwidth = get_hardware("A100-SXM4-80GB").bandwidth_bytes_per_s
    return Claim(
        id="a100_bandwidth",
        source=TEXTBOOK,
        claim="An A100 80GB SXM has about 2.0 TB/s of HBM bandwidth.",
        stated="~2.0 TB/s",
        recomputed=f"{bandwidth / 1e12:.3f} TB/s (datasheet: 2,039 GB/s)",
        assumption="NVIDIA A100 datasheet, 80GB SXM",
        verdict=verdict_from_ratio(2.0e12, bandwidth),
        stated_value=2.0e12,
        recomputed_value=bandwidth,
    )


def _score_tensor_2gb() -> Claim:
    n_bytes = cost.score_matrix_bytes(32768, "float16")
    return Claim(
        id="score_tensor_2gb",
        source=TEXTBOOK,
        claim="One 32,768 x 32,768 fp16 score tensor is about 2 GB.",
        stated="≈ 2 GB",
        recomputed=_bytes(n_bytes),
        assumption="one head, one layer, 2 bytes per score",
        verdict=verdict_from_ratio(2e9, n_bytes),
        stated_value=2e9,
        recomputed_value=n_bytes,
    )


def _a100_30ms() -> Claim:
    hw = get_hardware("A100-SXM4-80GB")
    n_bytes = cost.score_matrix_bytes(32768, "float16")
    seconds = cost.transfer_time_s(2 * n_bytes, hw.bandwidth_bytes_per_s)
    implied_bandwidth = 2 * n_bytes / 30e-3
    return Claim(
        id="a100_30ms",
        source=TEXTBOOK,
        claim="Writing that tensor to HBM and reading it back once takes the A100 about 30 ms.",
        stated="≈ 30 ms",
        recomputed=f"{cost.format_seconds(seconds)}",
        assumption="one write + one read at the full 2,039 GB/s",
        verdict=verdict_from_ratio(30e-3, seconds),
        correction=(
            f"2 x {cost.format_bytes(n_bytes)} / 2,039 GB/s = {cost.format_seconds(seconds)}, "
            f"about {30e-3 / seconds:.0f}x less than stated; 30 ms would mean a bandwidth of "
            f"{cost.format_bytes(implied_bandwidth)}/s. Even at 70 % of peak it is ~3 ms."
        ),
        stated_value=30e-3,
        recomputed_value=seconds,
    )


def _crossover_n_equals_d() -> Claim:
    d = 4096
    vs_ffn = cost.attention_ffn_crossover_n(d, 4 * d)
    vs_layer = cost.attention_ffn_crossover_n(d, 4 * d, include_projections=True)
    causal = cost.attention_ffn_crossover_n(d, 4 * d, causal=True)
    causal_layer = cost.attention_ffn_crossover_n(d, 4 * d, include_projections=True, causal=True)
    llama = get_model("Llama-2-7B")
    llama_ffn = cost.attention_ffn_crossover_n(llama.d_model, llama.d_ff, gated=True)
    return Claim(
        id="crossover_n_d",
        source=TEXTBOOK,
        claim="Attention's FLOPs overtake the feed-forward layer's at about n = d.",
        stated="n ≈ d",
        recomputed=(
            f"n = {vs_ffn / d:.0f}d vs the FFN, {vs_layer / d:.0f}d vs FFN + Q/K/V/O "
            f"projections ({causal / d:.0f}d and {causal_layer / d:.0f}d with causal masking)"
        ),
        assumption="d_ff = 4d, 2-matrix FFN, multi-head attention, FLOPs of matmuls only",
        verdict=verdict_from_ratio(d, vs_ffn),
        correction=(
            "Attention: 4·n²·d. FFN: 2 matmuls x 2·n·d·d_ff = 4·n·d·d_ff. Equal at n = d_ff "
            "= 4d. Adding the projections (8·n·d²): 4·n²·d = 4·n·d·d_ff + 8·n·d² gives "
            "n = d_ff + 2d = 6d. Causal masking halves attention and doubles both. "
            f"Llama-2-7B (SwiGLU, d_ff = 11008): {llama_ffn:,.0f} tokens = "
            f"{llama_ffn / llama.d_model:.1f}d against its FFN."
        ),
        stated_value=d,
        recomputed_value=vs_ffn,
    )


def _frontier_two_orders() -> Claim:
    model = get_model("GPT-3-175B")  # d = 12,288, the "d ≈ 12k" of the claim
    n = 10**6
    kwargs = dict(gated=model.gated_ffn, heads=model.heads, kv_heads=model.kv_heads)
    vs_ffn = cost.attention_ffn_ratio(n, model.d_model, model.d_ff, **kwargs)
    vs_layer = cost.attention_ffn_ratio(
        n, model.d_model, model.d_ff, include_projections=True, **kwargs
    )
    vs_layer_causal = cost.attention_ffn_ratio(
        n, model.d_model, model.d_ff, include_projections=True, causal=True, **kwargs
    )
    return Claim(
        id="frontier_100x",
        source=TEXTBOOK,
        claim=(
            "With d ≈ 12,000 and n ≈ 10⁶, attention outweighs the FFN by two orders of magnitude."
        ),
        stated="≈ 100x",
        recomputed=(
            f"{vs_ffn:.1f}x vs the FFN, {vs_layer:.1f}x vs FFN + projections, "
            f"{vs_layer_causal:.1f}x with causal masking"
        ),
        assumption="GPT-3-175B shape (d = 12,288, d_ff = 4d), FLOPs per layer",
        verdict=verdict_from_ratio(100, vs_ffn),
        correction=(
            "Ratio = 4·n²·d / (4·n·d·d_ff) = n / d_ff = 10⁶ / 49,152 ≈ 20: about one order "
            "of magnitude, not two; against FFN + projections n / (6d) ≈ 14, and a causal "
            "model does half the attention work (≈ 7-10x)."
        ),
        stated_value=100,
        recomputed_value=vs_ffn,
    )


def _growth_exponent(total: Callable[[int], float], tokens: int) -> float:
    """How fast ``total(T)`` grows near ``tokens``: log2(total(2T) / total(T))."""
    return math.log2(total(2 * tokens) / total(tokens))


def _decode_no_cache() -> Claim:
    model, tokens = get_model("Llama-2-7B"), 2048
    d, layers = model.d_model, model.layers

    def attention_no_cache(t: int) -> float:
        # step c recomputes causal attention over c tokens: 2·c²·d per layer
        return sum(layers * cost.attention_matmul_flops(c, d, causal=True) for c in range(1, t + 1))

    def attention_cached(t: int) -> float:
        return sum(layers * cost.decode_attention_flops(c, d) for c in range(1, t + 1))

    def whole(kv_cache: bool) -> Callable[[int], float]:
        return lambda t: cost.decode_total_flops(model, t, kv_cache=kv_cache)

    exp_attn_none = _growth_exponent(attention_no_cache, tokens)
    exp_attn_cache = _growth_exponent(attention_cached, tokens)
    exp_none = _growth_exponent(whole(False), tokens)
    exp_cache = _growth_exponent(whole(True), tokens)
    holds_for_attention = abs(exp_attn_none - 3) < 0.1 and abs(exp_attn_cache - 2) < 0.1
    return Claim(
        id="decode_cache_t3_t2",
        source=TEXTBOOK,
        claim=(
            "Without a KV cache each decode step costs O(t²) and a generation O(T³); "
            "with the cache O(t·d) per step and O(T²·d) in total."
        ),
        stated="O(T³) -> O(T²d)",
        recomputed=(
            f"growth exponents at T = {tokens}: attention {exp_attn_none:.2f} -> "
            f"{exp_attn_cache:.2f}; whole {model.name} {exp_none:.2f} -> {exp_cache:.2f}"
        ),
        assumption="FLOPs summed over T generated tokens, no prompt; exponent = log2(F(2T)/F(T))",
        verdict=ROUGHLY if holds_for_attention else WRONG,
        correction=(
            "True for the attention term. But every token also costs 2 FLOPs per weight: "
            "O(t·d²) per step without a cache (recomputing all projections), O(d²) with one. "
            "Below n ≈ d those terms dominate, so a real 7B model grows about T² without "
            "the cache and about T¹ with it at a few thousand tokens."
        ),
        stated_value=None,
        recomputed_value=exp_attn_none,
    )


def _kv_50gb() -> Claim:
    # The text's shape: 32 layers, d = 4096 (multi-head: kv_heads * head_dim = d), fp16.
    mha = cost.kv_cache_bytes(32, 32, 128, 100_000, dtype="float16")
    gqa = cost.model_kv_cache_bytes("Llama-3-8B", 100_000, dtype="float16")
    fp8 = cost.kv_cache_bytes(32, 32, 128, 100_000, dtype="float8")
    return Claim(
        id="kv_cache_50gb",
        source=TEXTBOOK,
        claim=(
            "A 32-layer, d = 4096 model holding 100K tokens of fp16 KV cache needs about "
            "50 GB (2·L·n·d·bytes)."
        ),
        stated="≈ 50 GB",
        recomputed=(
            f"{_bytes(mha)}; with GQA (Llama-3-8B, 8 KV heads) {_bytes(gqa)}; "
            f"fp8 cache {_bytes(fp8)}"
        ),
        assumption="multi-head attention (Llama-2-7B shape), 100,000 tokens, batch 1",
        verdict=verdict_from_ratio(50e9, mha),
        correction=(
            "2·L·n·d·bytes assumes every head keeps its own K and V. With grouped-query "
            "attention replace d by kv_heads·head_dim: Llama-3-8B stores 8 x 128 = 1024 "
            f"channels instead of 4096, so {_bytes(gqa)} (4x less)."
        ),
        stated_value=50e9,
        recomputed_value=mha,
    )


def _kv_vs_weights() -> Claim:
    cache = cost.model_kv_cache_bytes("Llama-2-7B", 100_000, dtype="float16")
    weights = cost.weight_bytes("Llama-2-7B", "float16")
    return Claim(
        id="kv_cache_vs_weights",
        source=TEXTBOOK,
        claim=(
            "At long context (the text's example: 100,000 tokens) the KV cache is the largest "
            "inference memory cost, larger than the model's weights."
        ),
        stated="cache > weights",
        recomputed=f"cache {_bytes(cache)} vs weights {_bytes(weights)}: {cache / weights:.1f}x",
        assumption="Llama-2-7B, fp16 weights and cache, 100,000 tokens, batch 1",
        verdict=HOLDS if cache > weights else WRONG,
        correction=(
            "True here; note neither fits a 24 GiB consumer GPU at this length, and with "
            "GQA the cache is 4x smaller."
        ),
        stated_value=None,
        recomputed_value=cache / weights,
    )


def _ttft_200k() -> Claim:
    n, mfu = 200_000, 0.5
    small = cost.time_to_first_token("Llama-3-8B", "H100-SXM5-80GB", n, mfu=mfu)
    large = cost.time_to_first_token("Llama-3-70B", "H100-SXM5-80GB", n, mfu=mfu)
    small_fits = 10 <= small.time_s < 100
    large_fits = 10 <= large.time_s < 100
    verdict = HOLDS if small_fits and large_fits else ROUGHLY if small_fits or large_fits else WRONG
    large_weights = cost.weight_bytes("Llama-3-70B", "bfloat16")
    return Claim(
        id="ttft_200k_h100",
        source=TEXTBOOK,
        claim=(
            "Prefilling a 200,000-token prompt (the text's example is a Claude prompt) on one "
            "H100 can take tens of seconds before the first token appears."
        ),
        stated="tens of seconds",
        recomputed=(
            f"Llama-3-8B: {cost.format_seconds(small.time_s)} "
            f"({cost.format_flops(small.flops)}); Llama-3-70B: "
            f"{cost.format_seconds(large.time_s)} ({cost.format_flops(large.flops)})"
        ),
        assumption="bf16 at 50 % MFU of 989 TFLOP/s dense, causal prefill, fused attention",
        verdict=verdict,
        correction=(
            "Holds for an 8B-class model. A 70B-class model needs minutes of compute, and "
            f"its bf16 weights ({_bytes(large_weights)}) do not fit one 80 GB H100 anyway. "
            "The size of the model the text has in mind is not public."
        ),
        stated_value=None,
        recomputed_value=small.time_s,
    )


def _mla_order_of_magnitude() -> Claim:
    # DeepSeek-V3 config.json: num_hidden_layers=61, num_attention_heads=128,
    # kv_lora_rank=512, qk_rope_head_dim=64, v_head_dim=128 (DeepSeek-V2 paper, Sec. 2.1:
    # MLA caches kv_lora_rank + rope dim = 576 numbers per token per layer).
    layers, heads, head_dim, latent = 61, 128, 128, 512 + 64
    context = 128 * 1024
    latent_bytes = cost.latent_kv_cache_bytes(layers, latent, context)
    mha_bytes = cost.kv_cache_bytes(layers, heads, head_dim, context)
    gqa_bytes = cost.kv_cache_bytes(layers, 8, head_dim, context)
    vs_mha, vs_gqa = mha_bytes / latent_bytes, gqa_bytes / latent_bytes
    verdict = HOLDS if vs_mha >= 10 and vs_gqa >= 10 else ROUGHLY if vs_mha >= 10 else WRONG
    return Claim(
        id="mla_10x",
        source=TEXTBOOK,
        claim=(
            "DeepSeek-V3's multi-head latent attention shrinks the KV cache by an order of "
            "magnitude."
        ),
        stated="an order of magnitude",
        recomputed=(
            f"{vs_mha:.0f}x smaller than multi-head K/V of the same 128 heads x 128 dims; "
            f"{vs_gqa:.1f}x smaller than an 8-KV-head GQA cache "
            f"(128K tokens: {_bytes(latent_bytes)} vs {_bytes(mha_bytes)})"
        ),
        assumption="576 cached numbers per token per layer (512 latent + 64 RoPE key), fp16",
        verdict=verdict,
        correction="The factor depends on the baseline: ~57x against MHA, ~3.6x against GQA-8.",
        stated_value=10,
        recomputed_value=vs_mha,
    )


def _flash_2_4x() -> Claim:
    return Claim(
        id="flash_2_4x",
        source=TEXTBOOK,
        claim=(
            "FlashAttention, exact attention computed in tiles, cuts wall-clock time by 2-4x "
            "on real GPUs."
        ),
        stated="2-4x",
        recomputed="—",
        assumption="a measured speed-up; depends on GPU, n, head_dim and the baseline",
        verdict=NOT_ARITHMETIC,
        correction=(
            "The interview answer says 3-5x for the same thing; both are reported ranges. "
            "Notebook 04's benchmark (python -m attn_course.bench flash) measures it; only CPU "
            "records exist so far, and a CPU speed-up says nothing about a GPU's."
        ),
    )


def _mamba_convolutions() -> Claim:
    return Claim(
        id="mamba_scan",
        source=TEXTBOOK,
        claim="Mamba mixes tokens with selective convolutions in O(n log n) or O(n).",
        stated="selective convolutions, O(n log n) or O(n)",
        recomputed="—",
        assumption="not arithmetic: a fact about the method",
        verdict=WRONG,
        correction=(
            "Mamba's selective state-space layer has input-dependent parameters, so it "
            "cannot be computed as one long convolution; it runs a (parallel) scan with O(n) "
            "work. The FFT-convolution view with O(n log n) belongs to earlier time-invariant "
            "SSMs such as S4."
        ),
    )


def _context_lengths() -> Claim:
    gpt3 = get_model("GPT-3-175B")
    return Claim(
        id="context_lengths",
        source=TEXTBOOK,
        claim=(
            "Context lengths of production models: GPT-3 2K tokens; GPT-4 8K and 32K, 128K as "
            "GPT-4 Turbo; Claude 2 100K, later Claude models 200K to 1M; Gemini 1.5 and 2.5 "
            "Pro 1M (2M in preview); open-weight models 8K-32K, 128K when extended; "
            "DeepSeek-V3 128K."
        ),
        stated="2K to 2M tokens",
        recomputed=f"GPT-3's preset context: {gpt3.context} tokens (Brown et al. 2020)",
        assumption="product facts; only GPT-3's is in our presets",
        verdict=NOT_ARITHMETIC,
    )


def _oom_at_8k() -> Claim:
    growth = cost.score_matrix_bytes(8192, "float16") / cost.score_matrix_bytes(4096, "float16")
    return Claim(
        id="oom_at_8k",
        source=TEXTBOOK,
        claim="A model comfortable at 4K tokens runs out of memory at 8K.",
        stated="fits at 4K, OOM at 8K",
        recomputed=f"score memory grows {growth:.0f}x per doubling of n",
        assumption="depends on the model, the device and the implementation",
        verdict=NOT_ARITHMETIC,
        correction="The 4x per doubling is arithmetic; whether 8K overflows depends on the setup.",
        recomputed_value=growth,
    )


# --- interview --------------------------------------------------------------------------


def _qk_macs() -> Claim:
    n, d = 4096, 128
    macs = cost.matmul_flops(n, d, n) / 2
    return Claim(
        id="qk_macs",
        source=INTERVIEW,
        claim="Forming Q Kᵀ takes O(n²·d) multiply-accumulates and O(n²) memory.",
        stated="n²·d MACs",
        recomputed=f"n = {n}, d = {d}: {macs:.4g} MACs = n²·d exactly ({2 * macs:.4g} FLOPs)",
        assumption="one multiply-accumulate = 2 FLOPs",
        verdict=verdict_from_ratio(n * n * d, macs),
        stated_value=n * n * d,
        recomputed_value=macs,
    )


def _n4096_64mb() -> Claim:
    n_bytes = cost.score_matrix_bytes(4096, "float32")
    return Claim(
        id="n4096_fp32_64mb",
        source=INTERVIEW,
        claim="At n = 4096 in fp32 the score matrix is 64 MB per head.",
        stated="64 MB",
        recomputed=_bytes(n_bytes),
        assumption="4 bytes per fp32 score; the 64 is binary: 64 MiB",
        verdict=verdict_from_ratio(64 * 2**20, n_bytes),
        correction="Exactly 64 MiB = 67.1 MB (decimal): the text's 'MB' means MiB.",
        stated_value=64 * 2**20,
        recomputed_value=n_bytes,
    )


def _heads_layers_dominant() -> Claim:
    model = get_model("Llama-2-7B")
    scores = cost.score_matrix_bytes(4096, "float32", heads=model.heads, layers=model.layers)
    weights = cost.weight_bytes(model, "float32")
    return Claim(
        id="scores_dominate_memory",
        source=INTERVIEW,
        claim="Times the heads and the layers, the score matrices become the largest memory cost.",
        stated="dominant memory cost",
        recomputed=(
            f"{model.name}, n = 4096, fp32: {model.heads} heads x {model.layers} layers x 64 MiB "
            f"= {_bytes(scores)} vs weights {_bytes(weights)}"
        ),
        assumption="every layer's scores kept (training, naive attention), batch 1",
        verdict=HOLDS if scores > weights else WRONG,
        recomputed_value=scores / weights,
    )


def _n32000_4gb() -> Claim:
    n_bytes = cost.score_matrix_bytes(32000, "float32")
    return Claim(
        id="n32000_fp32_4gb",
        source=INTERVIEW,
        claim=(
            "At n = 32,000 in fp32 the score matrix is about 4 GB per head, too much to use "
            "without approximating attention."
        ),
        stated="~4 GB",
        recomputed=_bytes(n_bytes),
        assumption="4 bytes per fp32 score",
        verdict=verdict_from_ratio(4e9, n_bytes),
        correction=(
            "The figure holds, but 'infeasible without approximation' does not follow: "
            "exact tiled attention (notebook 03, next) never stores the matrix at all."
        ),
        stated_value=4e9,
        recomputed_value=n_bytes,
    )


def _kv_growth() -> Claim:
    model = get_model("Llama-2-7B")
    per_token = cost.kv_cache_bytes_per_token(model.layers, model.kv_heads, model.head_dim)
    n = 4096
    cache_at_n = cost.model_kv_cache_bytes(model, n)
    # Reading the cache for every step: step t reads t tokens' worth.
    bytes_read = sum(cost.model_kv_cache_bytes(model, t) for t in range(1, n + 1))
    grows_linearly = math.isclose(cache_at_n, n * per_token)
    return Claim(
        id="kv_growth_n2",
        source=INTERVIEW,
        claim="The KV cache grows by O(n) per generated token, O(n²) over a whole generation.",
        stated="O(n) per token, O(n²) total",
        recomputed=(
            f"{model.name} fp16: +{_bytes(per_token)} per token (constant); after {n} tokens "
            f"{_bytes(cache_at_n)} (linear); bytes READ over the {n} steps: {_bytes(bytes_read)}"
        ),
        assumption="batch 1, fp16 cache, no prompt",
        verdict=WRONG if grows_linearly else ROUGHLY,
        correction=(
            "The cache's size grows by a constant per token, O(1), and is O(n) after n "
            "tokens. What is O(n) per token is the reading: step t reads all t cached "
            "tokens, so the bytes read (and the attention FLOPs) add up to O(n²)."
        ),
        stated_value=None,
        recomputed_value=bytes_read / cache_at_n,
    )


def _alibi_rope() -> Claim:
    n, model = 4096, get_model("Llama-2-7B")
    attention = cost.attention_matmul_flops(n, model.d_model)
    rope = cost.position_encoding_flops("rope", n, model.d_model, model.heads)
    alibi = cost.position_encoding_flops("alibi", n, model.d_model, model.heads)
    reduces = rope < 0 or alibi < 0
    return Claim(
        id="alibi_rope_cheaper",
        source=INTERVIEW,
        claim="ALiBi / RoPE reduce attention's cost: still O(n²) but with a cheaper constant.",
        stated="cheaper constant",
        recomputed=(
            f"per layer at n = {n}: RoPE adds {rope:.3g} FLOPs, ALiBi adds {alibi:.3g}, "
            f"on top of {attention:.3g} for the attention matmuls"
        ),
        assumption=f"{model.name} shape; RoPE rotates Q and K, ALiBi adds a bias to each score",
        verdict=ROUGHLY if reduces else WRONG,
        correction=(
            "They are position encodings, not efficiency methods: both leave the n x n "
            "scores and their 4·n²·d FLOPs in place and add a little work "
            f"(+{100 * rope / attention:.2f} % and +{100 * alibi / attention:.2f} % here). "
            "ALiBi's benefit is extrapolation to longer contexts, not a smaller cost."
        ),
        stated_value=None,
        recomputed_value=rope + alibi,
    )


def _flash_3_5x() -> Claim:
    return Claim(
        id="flash_3_5x",
        source=INTERVIEW,
        claim=(
            "FlashAttention is about 3-5x faster than naive attention, with the same O(n²) compute."
        ),
        stated="3-5x",
        recomputed="—",
        assumption="a measured speed-up",
        verdict=NOT_ARITHMETIC,
        correction=(
            "The textbook says 2-4x. Notebook 04's benchmark measures it; no GPU record "
            "exists yet, so the GPU figure is still unverified."
        ),
    )


_BUILDERS: tuple[Callable[[], Claim], ...] = (
    _scores_8k,
    _scores_1m,
    _scores_1m_no_device,
    _matmul_flops,
    _double_context,
    _training_70gb,
    _a100_bandwidth,
    _score_tensor_2gb,
    _a100_30ms,
    _crossover_n_equals_d,
    _frontier_two_orders,
    _decode_no_cache,
    _kv_50gb,
    _kv_vs_weights,
    _ttft_200k,
    _mla_order_of_magnitude,
    _flash_2_4x,
    _mamba_convolutions,
    _context_lengths,
    _oom_at_8k,
    _qk_macs,
    _n4096_64mb,
    _heads_layers_dominant,
    _n32000_4gb,
    _kv_growth,
    _alibi_rope,
    _flash_3_5x,
)


def all_claims() -> list[Claim]:
    """Every claim, recomputed now, in the order the texts make them (textbook first)."""
    return [build() for build in _BUILDERS]


def get_claim(claim_id: str) -> Claim:
    """One claim by id; the error lists the ids."""
    claims = {claim.id: claim for claim in all_claims()}
    try:
        return claims[claim_id]
    except KeyError:
        raise ValueError(f"claim_id must be one of {sorted(claims)}, got {claim_id!r}") from None


def sources_markdown() -> str:
    """One Markdown bullet per source text: its label in the table and what it is."""
    return "\n".join(f"* **{label}**: {text}." for label, text in SOURCES.items())


_COLUMNS = ("source", "claim", "stated", "recomputed", "verdict", "assumption", "correction")


def claims_table(claims: Iterable[Claim] | None = None) -> list[dict[str, object]]:
    """The claims as plain dicts (one per row), e.g. for ``pandas.DataFrame`` if you have it."""
    return [asdict(claim) for claim in (all_claims() if claims is None else claims)]


def claims_markdown(claims: Iterable[Claim] | None = None) -> str:
    """A Markdown table: source, claim, stated, recomputed, verdict, assumption, correction."""

    def cell(text: object) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    rows = claims_table(claims)
    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    lines += ["| " + " | ".join(cell(row[c]) for c in _COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


_VERDICT_COLOURS = {
    HOLDS: "#2e7d32",
    ROUGHLY: "#ef6c00",
    WRONG: "#c62828",
    NOT_ARITHMETIC: "#616161",
}


def claims_html(claims: Iterable[Claim] | None = None) -> str:
    """An HTML table with coloured verdicts, for ``IPython.display.HTML``."""
    e = html.escape
    head = "".join(f"<th style='text-align:left'>{e(c)}</th>" for c in _COLUMNS)
    body = []
    for row in claims_table(claims):
        cells = []
        for column in _COLUMNS:
            text = e(str(row[column]))
            if column == "verdict":
                colour = _VERDICT_COLOURS[str(row["verdict"])]
                text = f"<b style='color:{colour}'>{text}</b>"
            cells.append(f"<td style='text-align:left;vertical-align:top'>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        "<table style='font-size:90%;border-collapse:collapse'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )

"""Hardware and model presets for the cost calculators, each figure with its source.

Two kinds of preset:

* :class:`Hardware` — memory capacity (bytes), memory bandwidth (bytes/s) and peak
  *dense* matrix throughput (FLOP/s) per dtype, as printed on the vendor datasheet.
  NVIDIA datasheets often print throughput "with sparsity" (2:4 structured sparsity);
  the dense figure is exactly half of that, and dense is what an ordinary matmul gets,
  so that is what we store.
* :class:`ModelShape` — the shape of a decoder-only Transformer: layers, width, heads,
  key/value heads (grouped-query attention), FFN width, vocabulary and context, plus the
  few details that decide its parameter count (gated FFN, biases, norm type, learned
  positions, tied embeddings). Values come from the model's published ``config.json``
  on the Hugging Face Hub or from its paper.
* :class:`MoEShape` — a mixture-of-experts decoder with multi-head latent attention
  (DeepSeek-V2/V3): per-head query/key/value widths that do not divide d_model, a latent
  KV cache, and an FFN of routed plus shared experts of which each token uses a few.
  Kept apart from the dense presets (:data:`MOE_MODELS`, :func:`get_moe_model`), because
  the dense cost functions assume ``heads * head_dim = d_model`` and one FFN per layer.

Units. Memory capacities on datasheets are written "80 GB", but HBM and GDDR capacities
are binary: an A100 80GB reports 81920 MiB = 80 GiB in ``nvidia-smi``. We therefore store
capacity as ``GB_number * 2**30`` bytes. Bandwidths are decimal (a 5120-bit HBM2e bus at
3.186 Gbit/s per pin moves 2039e9 bytes/s), so "2,039 GB/s" is stored as ``2039e9``.

Look presets up with :func:`get_hardware` / :func:`get_model`; an unknown name raises a
ValueError that lists the known ones.

Bring your own model. :func:`model_from_config` reads a Hugging Face ``config.json`` (a
path, a model directory holding one, or the parsed dict) into a ModelShape (Llama, Mistral,
Qwen2 and GPT-2 field names) or a MoEShape (DeepSeek-V2/V3 fields), with a ValueError naming
the missing or inconsistent field; :func:`config_from_model` writes a shape back out.
:func:`get_model` and :func:`get_moe_model` take a config too, so every cost function and
calculator that takes a preset name takes a config as well.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from attn_course.validate import check_count, check_flag

__all__ = [
    "HARDWARE",
    "MODELS",
    "MOE_MODELS",
    "Hardware",
    "ModelShape",
    "MoEShape",
    "config_from_model",
    "get_hardware",
    "get_model",
    "get_moe_model",
    "hardware_names",
    "model_from_config",
    "model_names",
    "moe_model_names",
]

GiB = 2**30
TERA = 1e12


@dataclass(frozen=True)
class Hardware:
    """One accelerator.

    name:                   preset key, e.g. ``"H100-SXM5-80GB"``
    memory_bytes:           device memory capacity in bytes
    bandwidth_bytes_per_s:  peak device-memory (HBM/GDDR) bandwidth in bytes/s
    peak_flops_per_s:       dense peak FLOP/s by dtype name (``"bfloat16"``, ``"float8"`` ...);
                            a dtype missing here has no fast matrix path on this device
    source:                 where the figures come from
    """

    name: str
    memory_bytes: int
    bandwidth_bytes_per_s: float
    peak_flops_per_s: Mapping[str, float]
    source: str

    def __post_init__(self) -> None:
        if self.memory_bytes <= 0 or self.bandwidth_bytes_per_s <= 0:
            raise ValueError(f"{self.name}: memory and bandwidth must be > 0")
        if any(rate <= 0 for rate in self.peak_flops_per_s.values()):
            raise ValueError(f"{self.name}: every peak FLOP/s must be > 0")
        # Freeze the mapping so a preset cannot be edited by accident.
        object.__setattr__(self, "peak_flops_per_s", MappingProxyType(dict(self.peak_flops_per_s)))


@dataclass(frozen=True)
class ModelShape:
    """The shape of a decoder-only Transformer.

    layers:            number of Transformer blocks (L)
    d_model:           residual-stream width (d)
    heads:             query heads (h); head_dim = d_model / heads
    kv_heads:          key/value heads: = heads for multi-head attention (MHA), 1 for
                       multi-query (MQA), in between for grouped-query attention (GQA)
    d_ff:              hidden width of the feed-forward network
    gated_ffn:         True for SwiGLU/GEGLU FFNs (3 weight matrices), False for 2
    vocab:             vocabulary size
    context:           trained / advertised context length in tokens
    tied_embeddings:   the output projection reuses the input embedding matrix
    learned_positions: a learned position-embedding table (context x d_model) exists
    biases:            linear layers carry bias vectors (GPT-2/3 style)
    norm:              ``"layernorm"`` (weight + bias) or ``"rmsnorm"`` (weight only)
    source:            where the figures come from
    """

    name: str
    layers: int
    d_model: int
    heads: int
    kv_heads: int
    d_ff: int
    gated_ffn: bool
    vocab: int
    context: int
    tied_embeddings: bool = False
    learned_positions: bool = False
    biases: bool = False
    norm: str = "rmsnorm"
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for name in ("layers", "d_model", "heads", "kv_heads", "d_ff", "vocab", "context"):
            check_count(name, getattr(self, name))
        for name in ("gated_ffn", "tied_embeddings", "learned_positions", "biases"):
            check_flag(name, getattr(self, name))
        if self.d_model % self.heads:
            raise ValueError(
                f"{self.name}: heads must divide d_model, got d_model={self.d_model}, "
                f"heads={self.heads}"
            )
        if self.heads % self.kv_heads:
            raise ValueError(
                f"{self.name}: kv_heads must divide heads, got heads={self.heads}, "
                f"kv_heads={self.kv_heads}"
            )
        if self.norm not in ("layernorm", "rmsnorm"):
            raise ValueError(
                f"{self.name}: norm must be 'layernorm' or 'rmsnorm', got {self.norm!r}"
            )

    @property
    def head_dim(self) -> int:
        """Channels per head: d_model / heads."""
        return self.d_model // self.heads


@dataclass(frozen=True)
class MoEShape:
    """A mixture-of-experts decoder with multi-head latent attention (MLA), DeepSeek-V3 style.

    layers:             Transformer blocks (L)
    d_model:            residual-stream width (d)
    heads:              attention heads (h); every head has its own query, key and value
    q_lora_rank:        width of the compressed query (d -> q_lora_rank -> h * qk_head_dim)
    kv_lora_rank:       width of the compressed key/value latent that is cached per token
    qk_nope_head_dim:   per-head query/key channels without rotary position encoding
    qk_rope_head_dim:   per-head query/key channels with RoPE; the key part is shared by
                        all heads and cached beside the latent
    v_head_dim:         per-head value channels
    routed_experts:     experts a router chooses from, in every MoE layer
    active_experts:     routed experts each token uses (top-k)
    shared_experts:     experts every token uses
    expert_d_ff:        hidden width of one expert (a SwiGLU FFN: 3 matrices)
    dense_layers:       the first layers, which use one dense SwiGLU FFN instead of experts
    dense_d_ff:         hidden width of that dense FFN
    vocab, context:     vocabulary size; advertised context length in tokens
    tied_embeddings:    the output projection reuses the input embedding
    source:             where the figures come from
    """

    name: str
    layers: int
    d_model: int
    heads: int
    q_lora_rank: int
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int
    routed_experts: int
    active_experts: int
    shared_experts: int
    expert_d_ff: int
    dense_layers: int
    dense_d_ff: int
    vocab: int
    context: int
    tied_embeddings: bool = False
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for name in (
            "layers", "d_model", "heads", "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim",
            "qk_rope_head_dim", "v_head_dim", "routed_experts", "active_experts",
            "expert_d_ff", "dense_d_ff", "vocab", "context",
        ):  # fmt: skip
            check_count(name, getattr(self, name))
        for name in ("shared_experts", "dense_layers"):
            check_count(name, getattr(self, name), minimum=0)
        check_flag("tied_embeddings", self.tied_embeddings)
        if self.active_experts > self.routed_experts:
            raise ValueError(
                f"{self.name}: active_experts ({self.active_experts}) cannot exceed "
                f"routed_experts ({self.routed_experts})"
            )
        if self.dense_layers > self.layers:
            raise ValueError(
                f"{self.name}: dense_layers ({self.dense_layers}) cannot exceed layers "
                f"({self.layers})"
            )

    @property
    def qk_head_dim(self) -> int:
        """Query/key channels per head: qk_nope_head_dim + qk_rope_head_dim."""
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    @property
    def cached_dim(self) -> int:
        """Numbers cached per token per layer: the latent plus the shared RoPE key."""
        return self.kv_lora_rank + self.qk_rope_head_dim

    @property
    def moe_layers(self) -> int:
        """Layers whose FFN is a mixture of experts: layers - dense_layers."""
        return self.layers - self.dense_layers


# --- hardware -------------------------------------------------------------------------
# Dense peak throughput; "sparse" datasheet figures halved. 1 TFLOP/s = 1e12 FLOP/s.

_HARDWARE = [
    Hardware(
        name="A100-SXM4-80GB",
        # NVIDIA A100 datasheet (nvidia-a100-datasheet-us-nvidia-1758950-r4): "80GB HBM2e"
        memory_bytes=80 * GiB,
        # same datasheet, A100 80GB SXM: 2,039 GB/s
        bandwidth_bytes_per_s=2039e9,
        peak_flops_per_s={
            "float64": 19.5 * TERA,  # FP64 Tensor Core 19.5 TFLOPS (vector FP64: 9.7)
            "float32": 19.5 * TERA,  # FP32 19.5 TFLOPS (no tensor cores)
            "tf32": 156 * TERA,  # TF32 Tensor Core 156 TFLOPS (312 with sparsity)
            "bfloat16": 312 * TERA,  # BF16 Tensor Core 312 TFLOPS (624 with sparsity)
            "float16": 312 * TERA,  # FP16 Tensor Core 312 TFLOPS (624 with sparsity)
            "int8": 624 * TERA,  # INT8 Tensor Core 624 TOPS (1,248 with sparsity)
            # no FP8 on Ampere
        },
        source="NVIDIA A100 Tensor Core GPU datasheet (80GB SXM column)",
    ),
    Hardware(
        name="H100-SXM5-80GB",
        # NVIDIA H100 datasheet: "80GB" HBM3 (nvidia-smi shows 81559 MiB usable of 80 GiB)
        memory_bytes=80 * GiB,
        # same datasheet, H100 SXM: 3.35 TB/s
        bandwidth_bytes_per_s=3.35e12,
        peak_flops_per_s={
            "float64": 67 * TERA,  # FP64 Tensor Core 67 TFLOPS
            "float32": 67 * TERA,  # FP32 67 TFLOPS
            "tf32": 494.7 * TERA,  # TF32 Tensor Core 989 TFLOPS with sparsity -> 494.7 dense
            "bfloat16": 989.4 * TERA,  # BF16 1,979 TFLOPS with sparsity -> 989.4 dense
            "float16": 989.4 * TERA,  # FP16 1,979 TFLOPS with sparsity -> 989.4 dense
            "float8": 1978.9 * TERA,  # FP8 3,958 TFLOPS with sparsity -> 1,979 dense
            "int8": 1978.9 * TERA,  # INT8 3,958 TOPS with sparsity -> 1,979 dense
        },
        source="NVIDIA H100 Tensor Core GPU datasheet (H100 SXM column; sparse figures halved)",
    ),
    Hardware(
        name="H200-SXM-141GB",
        # NVIDIA H200 datasheet: 141GB HBM3e (same GH100 compute as H100 SXM)
        memory_bytes=141 * GiB,
        # same datasheet: 4.8 TB/s
        bandwidth_bytes_per_s=4.8e12,
        peak_flops_per_s={
            "float64": 67 * TERA,  # FP64 Tensor Core 67 TFLOPS
            "float32": 67 * TERA,  # FP32 67 TFLOPS
            "tf32": 494.7 * TERA,  # TF32 989 TFLOPS with sparsity -> 494.7 dense
            "bfloat16": 989.4 * TERA,  # BF16 1,979 TFLOPS with sparsity -> 989.4 dense
            "float16": 989.4 * TERA,  # FP16 1,979 TFLOPS with sparsity -> 989.4 dense
            "float8": 1978.9 * TERA,  # FP8 3,958 TFLOPS with sparsity -> 1,979 dense
            "int8": 1978.9 * TERA,  # INT8 3,958 TOPS with sparsity -> 1,979 dense
        },
        source="NVIDIA H200 Tensor Core GPU datasheet (H200 SXM column; sparse figures halved)",
    ),
    Hardware(
        name="L4-24GB",
        # NVIDIA L4 datasheet: 24GB GDDR6
        memory_bytes=24 * GiB,
        # same datasheet: 300 GB/s
        bandwidth_bytes_per_s=300e9,
        peak_flops_per_s={
            "float32": 30.3 * TERA,  # FP32 30.3 TFLOPS
            "tf32": 60 * TERA,  # TF32 Tensor Core 120 TFLOPS with sparsity -> 60 dense
            "bfloat16": 121 * TERA,  # BF16 242 TFLOPS with sparsity -> 121 dense
            "float16": 121 * TERA,  # FP16 242 TFLOPS with sparsity -> 121 dense
            "float8": 242.5 * TERA,  # FP8 485 TFLOPS with sparsity -> 242.5 dense
            "int8": 242.5 * TERA,  # INT8 485 TOPS with sparsity -> 242.5 dense
        },
        source="NVIDIA L4 Tensor Core GPU datasheet (sparse figures halved)",
    ),
    Hardware(
        name="RTX-4090-24GB",
        # NVIDIA Ada Lovelace architecture whitepaper (v1.1), GeForce RTX 4090: 24 GB GDDR6X
        memory_bytes=24 * GiB,
        # same whitepaper: 1008 GB/s (384-bit bus at 21 Gbit/s per pin)
        bandwidth_bytes_per_s=1008e9,
        peak_flops_per_s={
            "float32": 82.6 * TERA,  # peak FP32 82.6 TFLOPS
            "tf32": 82.6 * TERA,  # TF32 Tensor 82.6 dense (165.2 with sparsity)
            # GeForce parts run FP16/BF16 tensor ops at half rate with FP32 accumulation,
            # which is what PyTorch uses: 165.2 dense (330.4 with sparsity).
            "bfloat16": 165.2 * TERA,
            "float16": 165.2 * TERA,
            "float8": 330.3 * TERA,  # FP8 with FP32 accumulate: 330.3 dense (660.6 sparse)
            "int8": 660.6 * TERA,  # INT8 Tensor 660.6 TOPS dense (1,321.2 sparse)
        },
        source="NVIDIA Ada GPU architecture whitepaper, Appendix table for GeForce RTX 4090",
    ),
]

# --- models ---------------------------------------------------------------------------

_MODELS = [
    ModelShape(
        # Hugging Face `openai-community/gpt2` config.json: n_layer=12, n_embd=768, n_head=12,
        # n_positions=1024, vocab_size=50257, n_inner=null (-> 4 * n_embd = 3072), GELU MLP.
        # Radford et al. 2019; weights are tied, positions learned, linears have biases.
        name="GPT-2-small",
        layers=12,
        d_model=768,
        heads=12,
        kv_heads=12,
        d_ff=3072,
        gated_ffn=False,
        vocab=50257,
        context=1024,
        tied_embeddings=True,
        learned_positions=True,
        biases=True,
        norm="layernorm",
        source="HF openai-community/gpt2 config.json; 124,439,808 parameters",
    ),
    ModelShape(
        # Brown et al. 2020, "Language Models are Few-Shot Learners", Table 2.1, GPT-3 175B:
        # n_layers=96, d_model=12288, n_heads=96, d_head=128, n_ctx=2048; FFN is 4 * d_model
        # (Sec. 2.1, same architecture as GPT-2); GPT-2 BPE vocabulary of 50257.
        name="GPT-3-175B",
        layers=96,
        d_model=12288,
        heads=96,
        kv_heads=96,
        d_ff=4 * 12288,
        gated_ffn=False,
        vocab=50257,
        context=2048,
        tied_embeddings=True,
        learned_positions=True,
        biases=True,
        norm="layernorm",
        source="Brown et al. 2020, Table 2.1 (175.0B parameters)",
    ),
    ModelShape(
        # HF `meta-llama/Llama-2-7b-hf` config.json: num_hidden_layers=32, hidden_size=4096,
        # num_attention_heads=32, num_key_value_heads=32, intermediate_size=11008 (SwiGLU),
        # vocab_size=32000, max_position_embeddings=4096, tie_word_embeddings=false.
        name="Llama-2-7B",
        layers=32,
        d_model=4096,
        heads=32,
        kv_heads=32,
        d_ff=11008,
        gated_ffn=True,
        vocab=32000,
        context=4096,
        source="HF meta-llama/Llama-2-7b-hf config.json; 6,738,415,616 parameters",
    ),
    ModelShape(
        # HF `meta-llama/Meta-Llama-3-8B` config.json: num_hidden_layers=32, hidden_size=4096,
        # num_attention_heads=32, num_key_value_heads=8, intermediate_size=14336,
        # vocab_size=128256, max_position_embeddings=8192, tie_word_embeddings=false.
        name="Llama-3-8B",
        layers=32,
        d_model=4096,
        heads=32,
        kv_heads=8,
        d_ff=14336,
        gated_ffn=True,
        vocab=128256,
        context=8192,
        source="HF meta-llama/Meta-Llama-3-8B config.json; 8,030,261,248 parameters",
    ),
    ModelShape(
        # HF `meta-llama/Meta-Llama-3-70B` config.json: num_hidden_layers=80, hidden_size=8192,
        # num_attention_heads=64, num_key_value_heads=8, intermediate_size=28672,
        # vocab_size=128256, max_position_embeddings=8192, tie_word_embeddings=false.
        name="Llama-3-70B",
        layers=80,
        d_model=8192,
        heads=64,
        kv_heads=8,
        d_ff=28672,
        gated_ffn=True,
        vocab=128256,
        context=8192,
        source="HF meta-llama/Meta-Llama-3-70B config.json; 70,553,706,496 parameters",
    ),
    ModelShape(
        # HF `mistralai/Mistral-7B-v0.1` config.json: num_hidden_layers=32, hidden_size=4096,
        # num_attention_heads=32, num_key_value_heads=8, intermediate_size=14336,
        # vocab_size=32000, max_position_embeddings=32768, sliding_window=4096 (each token
        # attends to at most 4096 previous ones; not modelled by the cost functions here).
        name="Mistral-7B",
        layers=32,
        d_model=4096,
        heads=32,
        kv_heads=8,
        d_ff=14336,
        gated_ffn=True,
        vocab=32000,
        context=32768,
        source="HF mistralai/Mistral-7B-v0.1 config.json; 7,241,732,096 parameters",
    ),
]

_MOE_MODELS = [
    MoEShape(
        # HF `deepseek-ai/DeepSeek-V3` config.json (https://huggingface.co/deepseek-ai/
        # DeepSeek-V3/blob/main/config.json): num_hidden_layers=61, hidden_size=7168,
        # num_attention_heads=128, q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128,
        # qk_rope_head_dim=64, v_head_dim=128, n_routed_experts=256, num_experts_per_tok=8,
        # n_shared_experts=1, moe_intermediate_size=2048, first_k_dense_replace=3,
        # intermediate_size=18432, vocab_size=129280, tie_word_embeddings=false.
        # Context: 128K (DeepSeek-V3 technical report, arXiv:2412.19437, Sec. 4.3: YaRN
        # extension 4K -> 32K -> 128K; the config's max_position_embeddings is 163840).
        # The report's totals: 671B parameters, 37B activated per token (the config's
        # multi-token-prediction module, 14B more, is not counted here).
        name="DeepSeek-V3",
        layers=61,
        d_model=7168,
        heads=128,
        q_lora_rank=1536,
        kv_lora_rank=512,
        qk_nope_head_dim=128,
        qk_rope_head_dim=64,
        v_head_dim=128,
        routed_experts=256,
        active_experts=8,
        shared_experts=1,
        expert_d_ff=2048,
        dense_layers=3,
        dense_d_ff=18432,
        vocab=129280,
        context=128 * 1024,
        source="HF deepseek-ai/DeepSeek-V3 config.json; arXiv:2412.19437 (671B total, 37B active)",
    ),
]

HARDWARE: Mapping[str, Hardware] = MappingProxyType({hw.name: hw for hw in _HARDWARE})
MODELS: Mapping[str, ModelShape] = MappingProxyType({m.name: m for m in _MODELS})
MOE_MODELS: Mapping[str, MoEShape] = MappingProxyType({m.name: m for m in _MOE_MODELS})


def hardware_names() -> list[str]:
    """Names of the hardware presets, in the order they are defined."""
    return list(HARDWARE)


def model_names() -> list[str]:
    """Names of the model presets, in the order they are defined."""
    return list(MODELS)


def get_hardware(hardware: str | Hardware) -> Hardware:
    """The :class:`Hardware` preset called ``hardware`` (a Hardware passes through)."""
    if isinstance(hardware, Hardware):
        return hardware
    try:
        return HARDWARE[hardware]
    except (KeyError, TypeError):
        raise ValueError(
            f"hardware must be one of {hardware_names()} (or a Hardware), got {hardware!r}"
        ) from None


# A config given to get_model / get_moe_model: a parsed config.json, or a path to one.
ModelConfig = Mapping[str, Any] | str | os.PathLike[str]


def get_model(model: str | ModelShape | ModelConfig) -> ModelShape:
    """The :class:`ModelShape` preset called ``model``, or one read from a config.json.

    A ModelShape passes through; a preset name is looked up; a dict, or a string or path
    that names no preset, is read by :func:`model_from_config`.
    """
    if isinstance(model, ModelShape):
        return model
    if isinstance(model, str) and model in MODELS:
        return MODELS[model]
    if not _is_config(model):
        raise ValueError(
            f"model must be one of {model_names()}, a ModelShape, a config.json dict or the "
            f"path of a config.json, got {model!r}"
        )
    shape = model_from_config(model)
    if isinstance(shape, MoEShape):
        raise ValueError(
            f"model: {shape.name} is a mixture-of-experts model with latent attention (a "
            "MoEShape); the dense cost functions do not apply, use get_moe_model and the "
            "moe_* / mla_* functions of attn_course.cost"
        )
    return shape


def moe_model_names() -> list[str]:
    """Names of the mixture-of-experts presets, in the order they are defined."""
    return list(MOE_MODELS)


def get_moe_model(model: str | MoEShape | ModelConfig) -> MoEShape:
    """The :class:`MoEShape` preset called ``model``, or one read from a config.json.

    Same rules as :func:`get_model`; a config of a dense model is refused.
    """
    if isinstance(model, MoEShape):
        return model
    if isinstance(model, str) and model in MOE_MODELS:
        return MOE_MODELS[model]
    if not _is_config(model):
        raise ValueError(
            f"model must be one of {moe_model_names()}, a MoEShape, a config.json dict or the "
            f"path of a config.json, got {model!r}"
        )
    shape = model_from_config(model)
    if not isinstance(shape, MoEShape):
        raise ValueError(
            f"model: {shape.name} is a dense model (a ModelShape, no MoE/MLA fields such as "
            "kv_lora_rank or n_routed_experts); use get_model"
        )
    return shape


def _is_config(model: Any) -> bool:
    """A dict, a path, or a string that looks like a path (not a mistyped preset name)."""
    if isinstance(model, Mapping | os.PathLike):
        return True
    return isinstance(model, str) and (
        model.endswith(".json") or os.sep in model or os.path.exists(model)
    )


# --- Hugging Face config.json ---------------------------------------------------------
# Field names as the transformers library writes them (LlamaConfig, MistralConfig,
# Qwen2Config, GPT2Config, DeepseekV3Config). Only what decides the shape is read; rope
# scaling, dropout, sliding windows and token ids do not change the parameter count.

# Architectures whose MLP is gated (gate_proj * act(up_proj) -> down_proj: 3 matrices).
_GATED_ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM")
_GPT2_ARCHITECTURES = ("GPT2LMHeadModel", "GPT2Model")
_MLA_ARCHITECTURES = ("DeepseekV3ForCausalLM", "DeepseekV2ForCausalLM")
_ACTIVATIONS = ("silu", "swish", "gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast")


def _load_config(config: Any) -> tuple[dict[str, Any], str]:
    """The config as a dict and where it came from (for error messages)."""
    if isinstance(config, Mapping):
        return dict(config), "config"
    if not isinstance(config, str | os.PathLike):
        raise ValueError(
            f"config must be a dict or the path of a config.json, got {type(config).__name__}"
        )
    path = Path(config)
    if path.is_dir():  # a downloaded model's folder holds its config.json
        path = path / "config.json"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ValueError(f"config: cannot read {path}: {err.strerror or err}") from None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"config: {path} is not valid JSON: {err}") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"config: {path} must hold a JSON object, got {type(parsed).__name__}")
    return parsed, str(path)


class _Fields:
    """Typed reads of a config's fields; every error names the field and the config."""

    def __init__(self, config: dict[str, Any], origin: str) -> None:
        self.config, self.origin = config, origin

    def _label(self, key: str) -> str:
        return f"{key} (in {self.origin})"

    def count(self, key: str, default: Any = None, *, minimum: int = 1) -> int:
        value = self.config.get(key, default)
        if value is None:
            raise ValueError(f"{self.origin}: missing field {key!r}")
        return check_count(self._label(key), value, minimum=minimum)

    def flag(self, key: str, default: bool) -> bool:
        value = self.config.get(key)
        return default if value is None else check_flag(self._label(key), value)

    def text(self, key: str, default: str) -> str:
        value = self.config.get(key, default)
        if not isinstance(value, str):
            raise ValueError(f"{self._label(key)} must be a string, got {value!r}")
        return value

    def activation(self, key: str, default: str) -> str:
        act = self.text(key, default)
        if act not in _ACTIVATIONS:
            raise ValueError(f"{self._label(key)} must be one of {list(_ACTIVATIONS)}, got {act!r}")
        return act

    def architecture(self) -> str | None:
        value = self.config.get("architectures")
        if value is None:
            return None
        if not (isinstance(value, list) and len(value) == 1 and isinstance(value[0], str)):
            raise ValueError(
                f"{self._label('architectures')} must be a list of one name, got {value!r}"
            )
        return value[0]

    def divides(self, small: str, big: str, a: int, b: int) -> None:
        if b % a:
            raise ValueError(f"{self.origin}: {small} ({a}) must divide {big} ({b})")


def _source(config: dict[str, Any], origin: str) -> str:
    given = config.get("_source")
    return given if isinstance(given, str) and given else f"Hugging Face config.json ({origin})"


def _name(config: dict[str, Any], origin: str, name: str | None) -> str:
    if name is not None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string or None, got {name!r}")
        return name
    given = config.get("_name_or_path")
    if isinstance(given, str) and given:
        return given
    if origin == "config":
        return "config"
    # A Hub download keeps the model's name in its folder: .../Meta-Llama-3-8B/config.json.
    path = Path(origin)
    return (path.parent.name if path.name == "config.json" else path.stem) or "config"


def model_from_config(
    config: Mapping[str, Any] | str | os.PathLike[str], *, name: str | None = None
) -> ModelShape | MoEShape:
    """A :class:`ModelShape` or :class:`MoEShape` from a Hugging Face ``config.json``.

    ``config`` is the parsed dict, the file's path, or a model folder holding it. Which
    family: MLA fields (``kv_lora_rank``) -> a MoEShape (DeepSeek-V2/V3 names); GPT-2 names
    (``n_embd``) -> a GPT-2 ModelShape (2-matrix GELU MLP of ``n_inner``, default
    ``4 n_embd``; learned positions, biases, LayerNorm, tied embeddings); otherwise the Llama
    names (``num_hidden_layers``, ``hidden_size``, ``num_attention_heads``,
    ``num_key_value_heads`` (absent: = heads), ``intermediate_size``, ``vocab_size``,
    ``max_position_embeddings``) of a gated (SwiGLU/GeGLU) MLP, as in Llama, Mistral and Qwen2.
    ``name`` defaults to the config's ``_name_or_path``. A missing field, a wrong type, a
    non-positive size or an inconsistent pair raises a ValueError naming the field.
    """
    raw, origin = _load_config(config)
    fields = _Fields(raw, origin)
    arch = fields.architecture()
    model_name, source = _name(raw, origin, name), _source(raw, origin)
    if "kv_lora_rank" in raw or arch in _MLA_ARCHITECTURES:
        return _mla_from_config(fields, model_name, source)
    if "n_embd" in raw or arch in _GPT2_ARCHITECTURES:
        return _gpt2_from_config(fields, model_name, source)
    if arch is not None and arch not in _GATED_ARCHITECTURES:
        supported = [*_GATED_ARCHITECTURES, *_GPT2_ARCHITECTURES, *_MLA_ARCHITECTURES]
        raise ValueError(
            f"{origin}: architectures {arch!r} is not one this course reads (whose FFN layout "
            f"it knows); supported: {supported}"
        )
    return _llama_from_config(fields, model_name, source)


def _llama_from_config(f: _Fields, name: str, source: str) -> ModelShape:
    d_model, heads = f.count("hidden_size"), f.count("num_attention_heads")
    kv_heads = f.count("num_key_value_heads", heads)
    f.divides("num_attention_heads", "hidden_size", heads, d_model)
    f.divides("num_key_value_heads", "num_attention_heads", kv_heads, heads)
    head_dim = f.config.get("head_dim")
    # ModelShape derives head_dim = d_model / heads (the dense cost functions assume
    # heads * head_dim = d_model); a decoupled head_dim (Gemma, Qwen3) would change every
    # attention width, so such a config is refused rather than silently mis-costed.
    if head_dim is not None and f.count("head_dim") != d_model // heads:
        raise ValueError(
            f"{f.origin}: head_dim ({head_dim}) must equal hidden_size / num_attention_heads "
            f"({d_model // heads}); the cost model derives head_dim from them and does not "
            "cover attention wider or narrower than the residual stream"
        )
    f.activation("hidden_act", "silu")
    # Llama/Mistral write attention_bias and mlp_bias; Qwen2 always has q/k/v biases (0.002 %
    # of Qwen2.5-7B, which ModelShape cannot express alone), left out here.
    biases = f.flag("attention_bias", False) or f.flag("mlp_bias", False)
    return ModelShape(
        name=name,
        layers=f.count("num_hidden_layers"),
        d_model=d_model,
        heads=heads,
        kv_heads=kv_heads,
        d_ff=f.count("intermediate_size"),
        gated_ffn=True,
        vocab=f.count("vocab_size"),
        context=f.count("max_position_embeddings"),
        tied_embeddings=f.flag("tie_word_embeddings", False),  # LlamaConfig's default
        biases=biases,
        norm="layernorm" if "layer_norm_epsilon" in f.config else "rmsnorm",
        source=source,
    )


def _gpt2_from_config(f: _Fields, name: str, source: str) -> ModelShape:
    d_model, heads = f.count("n_embd"), f.count("n_head")
    f.divides("n_head", "n_embd", heads, d_model)
    f.activation("activation_function", "gelu_new")
    return ModelShape(
        name=name,
        layers=f.count("n_layer"),
        d_model=d_model,
        heads=heads,
        kv_heads=heads,
        d_ff=f.count("n_inner", 4 * d_model),  # null in GPT-2's config: 4 * n_embd
        gated_ffn=False,
        vocab=f.count("vocab_size"),
        context=f.count("n_positions", f.config.get("n_ctx")),
        tied_embeddings=f.flag("tie_word_embeddings", True),  # GPT-2 ties them
        learned_positions=True,
        biases=True,
        norm="layernorm",
        source=source,
    )


def _mla_from_config(f: _Fields, name: str, source: str) -> MoEShape:
    if f.config.get("q_lora_rank", 0) is None:
        raise ValueError(
            f"{f.origin}: q_lora_rank is null (uncompressed queries, as in DeepSeek-V2-Lite); "
            "MoEShape models the compressed-query form only"
        )
    if f.count("moe_layer_freq", 1) != 1:
        raise ValueError(f"{f.origin}: moe_layer_freq must be 1 (experts in every layer after "
                         "first_k_dense_replace)")  # fmt: skip
    return MoEShape(
        name=name,
        layers=f.count("num_hidden_layers"),
        d_model=f.count("hidden_size"),
        heads=f.count("num_attention_heads"),
        q_lora_rank=f.count("q_lora_rank"),
        kv_lora_rank=f.count("kv_lora_rank"),
        qk_nope_head_dim=f.count("qk_nope_head_dim"),
        qk_rope_head_dim=f.count("qk_rope_head_dim"),
        v_head_dim=f.count("v_head_dim"),
        routed_experts=f.count("n_routed_experts"),
        active_experts=f.count("num_experts_per_tok"),
        shared_experts=f.count("n_shared_experts", 0, minimum=0),
        expert_d_ff=f.count("moe_intermediate_size"),
        dense_layers=f.count("first_k_dense_replace", 0, minimum=0),
        dense_d_ff=f.count("intermediate_size"),
        vocab=f.count("vocab_size"),
        context=f.count("max_position_embeddings"),
        tied_embeddings=f.flag("tie_word_embeddings", False),
        source=source,
    )


def config_from_model(model: str | ModelShape | MoEShape) -> dict[str, Any]:
    """The Hugging Face ``config.json`` fields of a shape: the inverse of :func:`model_from_config`.

    A gated, RMSNorm, rotary (no learned positions) shape is written as a LlamaForCausalLM
    config; a GPT-2-like one (2-matrix MLP, LayerNorm, learned positions, biases, tied,
    kv_heads = heads) as GPT2LMHeadModel; a MoEShape as DeepseekV3ForCausalLM. Shapes of
    neither dense family have no Hugging Face counterpart and raise a ValueError.
    """
    if isinstance(model, str):
        model = get_moe_model(model) if model in MOE_MODELS else get_model(model)
    if isinstance(model, MoEShape):
        return _mla_config(model)
    if not isinstance(model, ModelShape):
        raise ValueError(f"model must be a preset name, a ModelShape or a MoEShape, got {model!r}")
    head = {"_name_or_path": model.name, "_source": model.source or "attn_course preset"}
    if model.gated_ffn and not model.learned_positions and model.norm == "rmsnorm":
        return head | {
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "num_hidden_layers": model.layers, "hidden_size": model.d_model,
            "num_attention_heads": model.heads, "num_key_value_heads": model.kv_heads,
            "head_dim": model.head_dim, "intermediate_size": model.d_ff,
            "vocab_size": model.vocab, "max_position_embeddings": model.context,
            "hidden_act": "silu", "rms_norm_eps": 1e-5,
            "tie_word_embeddings": model.tied_embeddings,
            "attention_bias": model.biases, "mlp_bias": model.biases,
        }  # fmt: skip
    gpt2_like = (not model.gated_ffn, model.learned_positions, model.norm == "layernorm",
                 model.biases, model.tied_embeddings, model.kv_heads == model.heads)  # fmt: skip
    if all(gpt2_like):
        return head | {
            "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
            "n_layer": model.layers, "n_embd": model.d_model, "n_head": model.heads,
            "n_inner": model.d_ff, "vocab_size": model.vocab, "n_positions": model.context,
            "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
            "tie_word_embeddings": True,
        }  # fmt: skip
    raise ValueError(
        f"model {model.name} is neither Llama-like (gated FFN, RMSNorm, no learned positions) "
        "nor GPT-2-like (2-matrix MLP, LayerNorm, learned positions, biases, tied, MHA): "
        "no Hugging Face config.json describes it"
    )


def _mla_config(m: MoEShape) -> dict[str, Any]:
    return {
        "_name_or_path": m.name, "_source": m.source or "attn_course preset",
        "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
        "num_hidden_layers": m.layers, "hidden_size": m.d_model,
        "num_attention_heads": m.heads, "num_key_value_heads": m.heads,
        "q_lora_rank": m.q_lora_rank, "kv_lora_rank": m.kv_lora_rank,
        "qk_nope_head_dim": m.qk_nope_head_dim, "qk_rope_head_dim": m.qk_rope_head_dim,
        "v_head_dim": m.v_head_dim, "n_routed_experts": m.routed_experts,
        "num_experts_per_tok": m.active_experts, "n_shared_experts": m.shared_experts,
        "moe_intermediate_size": m.expert_d_ff, "first_k_dense_replace": m.dense_layers,
        "moe_layer_freq": 1, "intermediate_size": m.dense_d_ff, "vocab_size": m.vocab,
        "max_position_embeddings": m.context, "hidden_act": "silu", "rms_norm_eps": 1e-6,
        "tie_word_embeddings": m.tied_embeddings,
    }  # fmt: skip

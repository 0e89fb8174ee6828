"""attn_course.presets: datasheet figures, model shapes, and look-ups."""

from __future__ import annotations

import dataclasses

import pytest

from attn_course import cost, presets, validate
from attn_course.presets import GiB, Hardware, ModelShape, get_hardware, get_model

pytestmark = pytest.mark.nb02


def test_every_preset_has_a_source():
    for hw in presets.HARDWARE.values():
        assert "datasheet" in hw.source or "whitepaper" in hw.source
    for model in presets.MODELS.values():
        assert model.source


@pytest.mark.parametrize(
    ("name", "memory_gib", "bandwidth", "bf16_dense"),
    [
        ("A100-SXM4-80GB", 80, 2039e9, 312e12),  # datasheet: 312 TFLOPS (624 sparse)
        ("H100-SXM5-80GB", 80, 3.35e12, 989.4e12),  # datasheet: 1,979 sparse / 2
        ("H200-SXM-141GB", 141, 4.8e12, 989.4e12),  # same GH100 compute as H100 SXM
        ("L4-24GB", 24, 300e9, 121e12),  # datasheet: 242 sparse / 2
        ("RTX-4090-24GB", 24, 1008e9, 165.2e12),  # whitepaper: FP32 accumulate, dense
    ],
)
def test_hardware_figures(name, memory_gib, bandwidth, bf16_dense):
    hw = get_hardware(name)
    assert hw.memory_bytes == memory_gib * GiB  # capacities are binary: "80 GB" = 80 GiB
    assert hw.bandwidth_bytes_per_s == bandwidth
    assert hw.peak_flops_per_s["bfloat16"] == bf16_dense


def test_dense_not_sparse_throughput():
    h100 = get_hardware("H100-SXM5-80GB")
    # the datasheet's sparse figures are 1,979 (bf16) and 3,958 (fp8) TFLOPS; dense is half
    assert h100.peak_flops_per_s["bfloat16"] == pytest.approx(1979e12 / 2, rel=1e-3)
    assert h100.peak_flops_per_s["float8"] == pytest.approx(3958e12 / 2, rel=1e-3)
    # fp8 runs at twice the bf16 rate on Hopper, and H200 computes exactly like H100
    assert h100.peak_flops_per_s["float8"] == pytest.approx(
        2 * h100.peak_flops_per_s["bfloat16"], rel=1e-3
    )
    assert get_hardware("H200-SXM-141GB").peak_flops_per_s == h100.peak_flops_per_s


def test_ampere_has_no_fp8():
    assert "float8" not in get_hardware("A100-SXM4-80GB").peak_flops_per_s


def test_preset_dtypes_are_known_to_cost():
    for hw in presets.HARDWARE.values():
        for dtype in hw.peak_flops_per_s:
            assert validate.canonical_dtype(dtype) == dtype


@pytest.mark.parametrize(
    ("name", "published"),
    [
        ("GPT-2-small", 124_439_808),  # HF gpt2: biases, LayerNorm, learned positions, tied
        ("Llama-2-7B", 6_738_415_616),  # HF meta-llama/Llama-2-7b-hf
        ("Llama-3-8B", 8_030_261_248),  # HF meta-llama/Meta-Llama-3-8B
        ("Llama-3-70B", 70_553_706_496),  # HF meta-llama/Meta-Llama-3-70B
        ("Mistral-7B", 7_241_732_096),  # HF mistralai/Mistral-7B-v0.1
    ],
)
def test_shapes_reproduce_published_parameter_counts_exactly(name, published):
    assert cost.parameter_count(name) == published


def test_gpt3_is_175b():
    # Brown et al. 2020 report 175.0B; the shape gives 174.6B (within 0.5 %)
    assert cost.parameter_count("GPT-3-175B") == pytest.approx(175.0e9, rel=5e-3)


def test_llama2_7b_non_embedding_count():
    # minus the input embedding and the untied output projection, 32000 * 4096 each
    assert cost.parameter_count("Llama-2-7B", include_embeddings=False) == (
        6_738_415_616 - 2 * 32000 * 4096
    )


def test_model_shapes():
    llama3 = get_model("Llama-3-8B")
    assert (llama3.layers, llama3.d_model, llama3.heads, llama3.kv_heads) == (32, 4096, 32, 8)
    assert llama3.head_dim == 128
    assert llama3.gated_ffn and llama3.d_ff == 14336
    assert get_model("GPT-3-175B").d_ff == 4 * 12288


def test_lookups_pass_objects_through():
    hw = get_hardware("L4-24GB")
    assert get_hardware(hw) is hw
    model = get_model("Mistral-7B")
    assert get_model(model) is model
    assert presets.hardware_names()[0] == "A100-SXM4-80GB"
    assert "Llama-3-70B" in presets.model_names()


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ValueError, match=r"hardware must be one of \['A100-SXM4-80GB'"):
        get_hardware("B200")
    with pytest.raises(ValueError, match=r"model must be one of \['GPT-2-small'"):
        get_model("llama-2-7b")  # names are case-sensitive
    with pytest.raises(ValueError, match="model must be one of"):
        get_model(None)


def test_presets_cannot_be_edited():
    with pytest.raises(TypeError):
        presets.MODELS["mine"] = get_model("Llama-2-7B")  # type: ignore[index]
    with pytest.raises(TypeError):
        get_hardware("H100-SXM5-80GB").peak_flops_per_s["bfloat16"] = 1.0  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_model("Llama-2-7B").layers = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(heads=3), "heads must divide d_model"),
        (dict(kv_heads=3), "kv_heads must divide heads"),
        (dict(layers=0), "layers must be an integer >= 1"),
        (dict(d_ff=1.5), "d_ff must be an integer >= 1"),
        (dict(norm="batchnorm"), "norm must be 'layernorm' or 'rmsnorm'"),
    ],
)
def test_model_shape_refuses_bad_shapes(changes, message):
    base = dict(
        name="x", layers=2, d_model=64, heads=8, kv_heads=2, d_ff=256, gated_ffn=False,
        vocab=100, context=128,
    )  # fmt: skip
    with pytest.raises(ValueError, match=message):
        ModelShape(**{**base, **changes})


def test_hardware_refuses_non_positive_figures():
    with pytest.raises(ValueError, match="memory and bandwidth must be > 0"):
        Hardware("x", 0, 1e9, {"float32": 1e12}, "test")
    with pytest.raises(ValueError, match="peak FLOP/s must be > 0"):
        Hardware("x", 1, 1e9, {"float32": 0.0}, "test")


# --- the mixture-of-experts preset --------------------------------------------------------


def test_deepseek_v3_matches_its_config():
    # HF deepseek-ai/DeepSeek-V3 config.json
    m = presets.get_moe_model("DeepSeek-V3")
    assert (m.layers, m.d_model, m.heads) == (61, 7168, 128)
    assert (m.q_lora_rank, m.kv_lora_rank) == (1536, 512)
    assert (m.qk_nope_head_dim, m.qk_rope_head_dim, m.v_head_dim) == (128, 64, 128)
    assert (m.routed_experts, m.active_experts, m.shared_experts) == (256, 8, 1)
    assert (m.expert_d_ff, m.dense_layers, m.dense_d_ff) == (2048, 3, 18432)
    assert (m.qk_head_dim, m.cached_dim, m.moe_layers) == (192, 576, 58)
    assert m.source and "DeepSeek-V3" in presets.moe_model_names()
    assert "DeepSeek-V3" not in presets.MODELS  # the dense cost functions do not apply


def test_deepseek_v3_reproduces_its_published_totals():
    # arXiv:2412.19437: 671B parameters, 37B activated per token
    assert cost.moe_parameter_count("DeepSeek-V3") == pytest.approx(671e9, rel=2e-3)
    assert cost.moe_parameter_count("DeepSeek-V3", active=True) == pytest.approx(37e9, rel=0.02)


def test_moe_lookup_and_bad_shapes():
    m = presets.get_moe_model("DeepSeek-V3")
    assert presets.get_moe_model(m) is m
    with pytest.raises(ValueError, match=r"model must be one of \['DeepSeek-V3'\]"):
        presets.get_moe_model("Llama-2-7B")
    with pytest.raises(ValueError, match="active_experts .* cannot exceed routed_experts"):
        dataclasses.replace(m, active_experts=300)
    with pytest.raises(ValueError, match="dense_layers .* cannot exceed layers"):
        dataclasses.replace(m, dense_layers=62)
    with pytest.raises(ValueError, match="kv_lora_rank must be an integer >= 1"):
        dataclasses.replace(m, kv_lora_rank=0)

"""Hugging Face config.json in attn_course.presets, and the `python -m attn_course.cost` CLI.

The fixtures in tests/fixtures/hf_configs/ are real published configs, typed by hand from
the Hub (no download; each names its page in "_source"), laid out like a Hub snapshot:
<organisation>/<model>/config.json.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from attn_course import cost, kvcache, serving_cost
from attn_course.presets import (
    MODELS,
    MOE_MODELS,
    ModelShape,
    MoEShape,
    config_from_model,
    get_model,
    get_moe_model,
    model_from_config,
)

pytestmark = pytest.mark.nb08

FIXTURES = Path(__file__).parent / "fixtures" / "hf_configs"
LLAMA3 = FIXTURES / "meta-llama" / "Meta-Llama-3-8B" / "config.json"
DEEPSEEK = FIXTURES / "deepseek-ai" / "DeepSeek-V3" / "config.json"
ROOT = Path(__file__).resolve().parents[1]


def _config(path: Path = LLAMA3) -> dict:
    return json.loads(path.read_text())


# --- every committed preset survives a round trip through config.json ---------------------


@pytest.mark.parametrize("name", [*MODELS, *MOE_MODELS])
def test_every_preset_written_as_a_config_file_reads_back_equal(name, tmp_path):
    preset = MODELS.get(name) or MOE_MODELS[name]
    path = tmp_path / name / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(config_from_model(preset), indent=2))
    back = model_from_config(path)
    assert back == preset and type(back) is type(preset)
    # the cost functions agree whichever way the model is given
    if isinstance(preset, ModelShape):
        assert cost.parameter_count(path) == cost.parameter_count(name)
        assert get_model(str(path)) == get_model(config_from_model(preset)) == preset
    else:
        assert cost.moe_parameter_count(path) == cost.moe_parameter_count(name)
        assert get_moe_model(path) == preset


# --- real published models: shapes and parameter counts ------------------------------------

# (fixture, family, published parameter count, relative tolerance, where the figure is from)
PUBLISHED = [
    # model card: 8.03B; the exact count 8,030,261,248 is what the Hub's safetensors index sums
    ("meta-llama/Meta-Llama-3-8B", ModelShape, 8_030_261_248, 1e-9),
    # Hub: 7.24B parameters (7,241,732,096 in the safetensors metadata)
    ("mistralai/Mistral-7B-v0.1", ModelShape, 7_241_732_096, 1e-9),
    # model card: "Number of Parameters: 7.61B" (rounded; Qwen2's q/k/v biases, 129 k, are
    # left out by ModelShape, 0.002 %)
    ("Qwen/Qwen2.5-7B", ModelShape, 7.61e9, 0.001),
    # Hub: 124M; the exact count of GPT2LMHeadModel's parameters is 124,439,808
    ("openai-community/gpt2", ModelShape, 124_439_808, 1e-9),
    # arXiv:2412.19437 (DeepSeek-V3 technical report): 671B total, rounded to 1B
    ("deepseek-ai/DeepSeek-V3", MoEShape, 671e9, 0.001),
]


@pytest.mark.parametrize(("repo", "family", "published", "tolerance"), PUBLISHED)
def test_published_configs_give_the_published_parameter_counts(repo, family, published, tolerance):
    path = FIXTURES / repo / "config.json"
    raw = _config(path)
    assert raw["_source"].startswith(f"typed from https://huggingface.co/{repo}/")
    shape = model_from_config(path)
    assert isinstance(shape, family) and shape.name == repo.split("/")[1]
    count = cost.moe_parameter_count(shape) if family is MoEShape else cost.parameter_count(shape)
    assert count == pytest.approx(published, rel=tolerance)


def test_deepseek_v3_active_parameters_and_latent_cache():
    shape = model_from_config(DEEPSEEK)
    # the report: 37B activated per token; this count gives 37.5B (the report rounds down)
    assert cost.moe_parameter_count(shape, active=True) == pytest.approx(37e9, rel=0.02)
    assert shape.cached_dim == 576
    # the published config advertises 163,840 positions; the preset keeps the report's 128K
    assert shape.context == 163840 and MOE_MODELS["DeepSeek-V3"].context == 131072
    assert cost.mla_kv_cache_bytes(shape, 1000) == cost.mla_kv_cache_bytes("DeepSeek-V3", 1000)


def test_published_configs_match_the_presets_built_from_them():
    pairs = {"meta-llama/Meta-Llama-3-8B": "Llama-3-8B", "mistralai/Mistral-7B-v0.1": "Mistral-7B",
             "openai-community/gpt2": "GPT-2-small"}  # fmt: skip
    for repo, preset in pairs.items():
        shape = model_from_config(FIXTURES / repo / "config.json", name=preset)
        assert shape == MODELS[preset]


def test_qwen_and_gpt2_details():
    qwen = model_from_config(FIXTURES / "Qwen" / "Qwen2.5-7B" / "config.json")
    assert (qwen.heads, qwen.kv_heads, qwen.head_dim, qwen.d_ff) == (28, 4, 128, 18944)
    assert qwen.gated_ffn and qwen.norm == "rmsnorm" and not qwen.tied_embeddings
    # the model card's 6.53B non-embedding parameters
    assert cost.parameter_count(qwen, include_embeddings=False) == pytest.approx(6.53e9, rel=1e-3)
    gpt2 = model_from_config(FIXTURES / "openai-community" / "gpt2" / "config.json")
    assert gpt2.d_ff == 4 * 768  # n_inner absent -> 4 * n_embd
    assert (gpt2.gated_ffn, gpt2.learned_positions, gpt2.biases, gpt2.tied_embeddings) == (
        False, True, True, True,
    )  # fmt: skip
    assert gpt2.norm == "layernorm"


# --- a config goes wherever a preset goes -----------------------------------------------------


def test_every_model_argument_takes_a_config():
    raw, preset = _config(), MODELS["Llama-3-8B"]
    for model in (raw, LLAMA3, str(LLAMA3), LLAMA3.parent):
        assert cost.weight_bytes(model) == cost.weight_bytes(preset)
        assert kvcache.max_batch(model, "H100-SXM5-80GB", 8192) == kvcache.max_batch(
            preset, "H100-SXM5-80GB", 8192
        )
    assert cost.time_to_first_token(raw, "H100-SXM5-80GB", 4096) == cost.time_to_first_token(
        preset, "H100-SXM5-80GB", 4096
    )
    assert cost.decode_step_cost(LLAMA3, "H200-SXM-141GB", 4096, batch=8) == cost.decode_step_cost(
        preset, "H200-SXM-141GB", 4096, batch=8
    )
    fig = kvcache.decode_roofline_figure(str(LLAMA3), "H100-SXM5-80GB", [1024, 8192], [1, 8])
    assert len(fig.data) == 4
    estimate = serving_cost.serving_estimate(raw, "H100-SXM5-80GB", prompt_tokens=512,
                                             output_tokens=64, batch=4)  # fmt: skip
    assert estimate == serving_cost.serving_estimate(preset, "H100-SXM5-80GB", prompt_tokens=512,
                                                     output_tokens=64, batch=4)  # fmt: skip


def test_get_model_and_get_moe_model_refuse_the_other_family():
    with pytest.raises(ValueError, match="mixture-of-experts.*get_moe_model"):
        get_model(DEEPSEEK)
    with pytest.raises(ValueError, match="dense model.*use get_model"):
        get_moe_model(LLAMA3)
    with pytest.raises(ValueError, match=r"model must be one of \['GPT-2-small'.*config\.json"):
        get_model("Llama-9-8B")  # a mistyped preset name is not taken for a path


# --- validation: every error names the field ------------------------------------------------


def _broken(**changes) -> dict:
    raw = _config()
    for key, value in changes.items():
        if value is ...:
            del raw[key]
        else:
            raw[key] = value
    return raw


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"hidden_size": ...}, "missing field 'hidden_size'"),
        ({"num_hidden_layers": ...}, "missing field 'num_hidden_layers'"),
        ({"vocab_size": 0}, r"vocab_size \(in config\) must be an integer >= 1, got 0"),
        ({"intermediate_size": -5}, r"intermediate_size \(in config\) must be an integer >= 1"),
        ({"num_hidden_layers": 32.0}, r"num_hidden_layers \(in config\) must be an integer"),
        ({"hidden_size": "4096"}, r"hidden_size \(in config\) must be an integer"),
        ({"num_attention_heads": 30}, r"num_attention_heads \(30\) must divide hidden_size"),
        ({"num_key_value_heads": 5}, r"num_key_value_heads \(5\) must divide num_attention_heads"),
        ({"head_dim": 256}, r"head_dim \(256\) must equal hidden_size / num_attention_heads"),
        ({"hidden_act": "relu"}, r"hidden_act \(in config\) must be one of \['silu'"),
        ({"tie_word_embeddings": "no"}, r"tie_word_embeddings \(in config\) must be True or False"),
        ({"architectures": ["MixtralForCausalLM"]}, "architectures 'MixtralForCausalLM' is not"),
        ({"architectures": "LlamaForCausalLM"}, "architectures .* must be a list of one name"),
    ],
)  # fmt: skip
def test_bad_fields_are_named(changes, message):
    with pytest.raises(ValueError, match=message):
        model_from_config(_broken(**changes))


def test_optional_fields_take_their_defaults():
    shape = model_from_config(_broken(num_key_value_heads=..., head_dim=128))
    assert shape.kv_heads == shape.heads == 32  # absent: multi-head attention
    assert model_from_config(_config(), name="mine").name == "mine"
    assert model_from_config(_broken(layer_norm_epsilon=1e-5)).norm == "layernorm"
    assert model_from_config(_broken(attention_bias=True)).biases


def test_mla_fields_are_validated():
    raw = _config(DEEPSEEK)
    with pytest.raises(ValueError, match="missing field 'moe_intermediate_size'"):
        model_from_config({k: v for k, v in raw.items() if k != "moe_intermediate_size"})
    with pytest.raises(ValueError, match="q_lora_rank is null"):
        model_from_config(raw | {"q_lora_rank": None})
    with pytest.raises(ValueError, match="active_experts .* cannot exceed routed_experts"):
        model_from_config(raw | {"num_experts_per_tok": 300})


def test_unreadable_and_invalid_files_name_their_path(tmp_path):
    with pytest.raises(ValueError, match=r"cannot read .*missing\.json"):
        model_from_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"hidden_size": 4096,')
    with pytest.raises(ValueError, match=r"bad\.json is not valid JSON"):
        model_from_config(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a JSON object, got list"):
        get_model(bad)
    with pytest.raises(ValueError, match="config must be a dict or the path"):
        model_from_config(42)


def test_shapes_of_no_hugging_face_family_are_refused():
    odd = ModelShape(name="odd", layers=2, d_model=64, heads=4, kv_heads=4, d_ff=256,
                     gated_ffn=False, vocab=100, context=64)  # fmt: skip
    with pytest.raises(ValueError, match="no Hugging Face config.json describes it"):
        config_from_model(odd)


# --- the command line ------------------------------------------------------------------------


def test_cli_prints_every_number_with_its_unit(capsys):
    argv = [str(LLAMA3), "--context", "131072", "--gpu", "H100-SXM5-80GB", "--batch", "2"]
    assert cost.main(argv) == 0
    out = capsys.readouterr().out
    m, hw = MODELS["Llama-3-8B"], "H100-SXM5-80GB"
    cache = cost.model_kv_cache_bytes(m, 131072, dtype="bfloat16")
    ttft = cost.time_to_first_token(m, hw, 131072, mfu=0.5)
    step = cost.decode_step_cost(m, hw, 131072, batch=2, mfu=0.5)
    assert f"weights     {cost.format_bytes_both(cost.weight_bytes(m))}" in out
    assert f"KV cache    {cost.format_bytes_both(cache)} per sequence of 131,072 tokens" in out
    assert f"max batch   {kvcache.max_batch(m, hw, 131072)} sequences" in out
    assert f"TTFT        {cost.format_seconds(ttft.time_s)}" in out
    assert f"decode      {cost.format_seconds(step.time_s)} per token at batch 2" in out


def test_cli_takes_presets_and_moe_configs(capsys):
    assert cost.main(["Mistral-7B", "--context", "4096", "--kv-dtype", "float8"]) == 0
    assert "float8" in capsys.readouterr().out
    assert cost.main([str(DEEPSEEK), "--context", "131072", "--gpu", "H200-SXM-141GB"]) == 0
    out = capsys.readouterr().out
    assert "671,026,404,352 parameters" in out and "does NOT fit" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["Llama-3-8B", "--gpu", "B300"], "hardware must be one of"),
        (["no/such/config.json"], "cannot read no/such/config.json"),
        ([str(LLAMA3), "--context", "0"], "--context must be an integer >= 1"),
        ([str(LLAMA3), "--mfu", "1.5"], r"mfu must be in \(0, 1\]"),
        ([str(LLAMA3), "--dtype", "float12"], "dtype must be one of"),
        ([str(LLAMA3), "--context", "many"], "invalid int value"),
    ],
)
def test_cli_errors_exit_with_2_and_a_message(argv, message, capsys):
    assert cost.main(argv) == 2
    err = capsys.readouterr().err
    assert "error:" in err and re.search(message, err)


def test_cli_as_a_module(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-m", "attn_course.cost", str(LLAMA3), "--context", "131072",
         "--gpu", "H100-SXM5-80GB"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "TTFT" in run.stdout and "per token" in run.stdout
    bad = subprocess.run([sys.executable, "-m", "attn_course.cost", "x.json"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
                         check=False)  # fmt: skip
    assert bad.returncode == 2 and "cannot read x.json" in bad.stderr

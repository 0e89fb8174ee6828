"""attn_course.validate: the argument vocabulary, and a fuzz of the lesson modules' public API.

The second half finds every public function of the lesson modules by introspection, calls it
with valid arguments except one bad one, and asserts a ValueError/TypeError that names the
bad parameter: never a number, never a hang, never a bare ZeroDivisionError or IndexError.
A new public function is covered automatically; one that cannot be called with scalars alone
goes in SKIP with the reason.
"""

from __future__ import annotations

import inspect
import math
import re
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attn_course import (
    cost,
    kvcache,
    linear,
    memory,
    model,
    offload,
    paged,
    presets,
    scores,
    serving,
    serving_cost,
    sparse,
    speculative,
    splitk,
    tiling,
    validate,
)
from attn_course.validate import (
    ArgumentTypeError,
    bytes_per_element,
    canonical_dtype,
    check_choice,
    check_count,
    check_flag,
    check_fraction,
    check_loop_size,
    check_non_negative,
    check_positive,
    resolve_dtype,
    resolve_scale,
)

# --- the vocabulary -------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1, 8, np.int64(8), np.int32(3), 10**30])
def test_check_count_accepts_python_and_numpy_integers(value):
    result = check_count("n", value)
    assert result == value and type(result) is int


@pytest.mark.parametrize(
    ("value", "error"),
    [(0, ValueError), (-1, ValueError), (True, TypeError), (np.bool_(True), TypeError),
     (1.5, TypeError), (4.0, TypeError), ("8", TypeError), (None, TypeError)],
)  # fmt: skip
def test_check_count_rejects_with_the_name_and_the_range(value, error):
    with pytest.raises(error, match=r"^n must be an integer >= 1, got "):
        check_count("n", value)


def test_check_count_minimum_and_maximum():
    assert check_count("seed", 0, minimum=0) == 0
    assert check_count("bits", 8, 2, 8) == 8
    with pytest.raises(ValueError, match=r"^bits must be an integer in \[2, 8\], got 9"):
        check_count("bits", 9, 2, 8)


def test_a_wrong_kind_is_a_type_error_that_is_also_a_value_error():
    # Code written against the course's old promise (ValueError for every bad argument) keeps
    # working; code that wants to tell the two apart can catch TypeError.
    assert issubclass(ArgumentTypeError, TypeError) and issubclass(ArgumentTypeError, ValueError)


def test_check_positive_non_negative_fraction():
    assert check_positive("bandwidth", np.float32(2.5)) == 2.5
    assert check_non_negative("dropout", 0) == 0.0
    assert check_fraction("mfu", 1) == 1.0
    for bad in (0, -1.0, math.nan, math.inf, True, "1"):
        with pytest.raises(ValueError, match=r"^bandwidth must be a finite number > 0"):
            check_positive("bandwidth", bad)
    with pytest.raises(ValueError, match=r"^dropout must be a finite number >= 0"):
        check_non_negative("dropout", -0.1)
    with pytest.raises(ValueError, match=r"^mfu must be in \(0, 1\]"):
        check_fraction("mfu", 1.5)


def test_check_flag_takes_only_real_bools():
    assert check_flag("causal", np.bool_(True)) is True
    assert check_flag("causal", False) is False
    for bad in ("no", 1, 0, None, "True"):
        with pytest.raises(TypeError, match=r"^causal must be True or False, got "):
            check_flag("causal", bad)


def test_check_choice():
    assert check_choice("axis", "token", ("token", "channel")) == "token"
    with pytest.raises(ValueError, match=r"^axis must be one of 'token', 'channel', got 'tokn'"):
        check_choice("axis", "tokn", ("token", "channel"))
    with pytest.raises(ValueError, match="^bits must be one of 4, 8"):
        check_choice("bits", True, (4, 8, 1))  # True == 1, but a flag is not a bit width


@pytest.mark.parametrize(
    ("dtype", "name", "torch_dtype"),
    [("float32", "float32", torch.float32), ("fp32", "float32", torch.float32),
     ("float16", "float16", torch.float16), ("fp16", "float16", torch.float16),
     ("half", "float16", torch.float16), ("bfloat16", "bfloat16", torch.bfloat16),
     ("bf16", "bfloat16", torch.bfloat16), (torch.bfloat16, "bfloat16", torch.bfloat16),
     ("torch.float64", "float64", torch.float64)],
)  # fmt: skip
def test_one_dtype_vocabulary(dtype, name, torch_dtype):
    assert canonical_dtype(dtype) == name
    assert resolve_dtype(dtype) is torch_dtype
    assert bytes_per_element(dtype) == torch_dtype.itemsize


def test_dtype_errors_name_the_parameter():
    with pytest.raises(ValueError, match=r"^kv_dtype must be one of"):
        canonical_dtype("float12", "kv_dtype")
    with pytest.raises(ValueError, match=r"^dtype must be one of float64, float32"):
        resolve_dtype("int8")  # a byte size, but not a dtype torch computes attention in
    with pytest.raises(TypeError, match=r"^dtype must be a dtype name"):
        canonical_dtype(16)


def test_resolve_scale():
    assert resolve_scale(None, 64) == 0.125
    assert resolve_scale(np.float32(0.5), 64) == 0.5
    with pytest.raises(ValueError, match=r"^head_dim must be an integer >= 1, got 0"):
        resolve_scale(None, 0)
    with pytest.raises(ValueError, match=r"^scale must be None \(1/√head_dim\) or a finite"):
        resolve_scale(math.nan, 64)


def test_check_loop_size():
    check_loop_size("n", validate.MAX_LOOP_STEPS, "tiles")
    with pytest.raises(ValueError, match=r"^n too large: it would walk"):
        check_loop_size("n", validate.MAX_LOOP_STEPS + 1, "tiles")


# --- the fuzz over the public API -------------------------------------------------------------

MODULES = (cost, scores, memory, tiling, linear, sparse, kvcache, paged, presets, model, serving,
           speculative, offload, splitk, serving_cost)  # fmt: skip

# Functions the fuzz does not call, and why. Their tensor/model arguments are checked by the
# tests of their own module (test_scores, test_tiling, ... "bad input" sections).
SKIP = {
    # they measure or train: seconds per call even with good arguments
    "measure_copy_bandwidth", "measure_saved_score_bytes", "measure_score_pass_s",
    "measure_naive_attention", "measure_naive_attention_rss", "measure_tiled_memory",
    "measure_crossover", "measure_window_scaling", "measure_prefill", "measure_step_times",
    "compare_with_naive", "random_feature_error", "retrieval_accuracy", "train",
    # they take a callable, a model or a list of rows/requests, not scalars
    "time_call", "measure_peak_bytes", "evaluate_loss", "generate_cached", "generate_uncached",
    "fill_cache", "predicted_cache_bytes", "next_logits_error", "roundtrip_cache", "cache_bytes",
    "decode_roofline_figure", "step_time_figure", "fragmentation", "fragmentation_figure",
    "prefix_sharing_figure", "crossover_figure", "measured_crossover_n",
    "random_feature_error_figure", "retrieval_figure", "window_error_figure",
    "window_scaling_figure", "tiling_memory_figure", "hbm_traffic_figure", "format_table",
    "loglog_slope", "block_table_lookup", "sparse_layout_figure",
    # they read the machine: no arguments
    "peak_rss_supported", "physical_memory_bytes", "flex_available", "float8_available",
    "hardware_names", "model_names", "moe_model_names", "corpus_text",
    # text in, tokens out: any string is valid
    "tokenize", "token_labels",
    # dim is torch's convention (-1 = the last axis), not a count
    "naive_softmax", "stable_softmax",
    # they take the running state of an online softmax / a recurrence, a pattern or a layout
    "online_softmax_init", "online_softmax_update", "online_softmax_finish", "recurrent_step",
    "future_influence", "linformer_attention", "performer_features", "blocked_sparse_attention",
    "flex_attention_output", "flex_block_layout", "layout_from_flex", "layout_to_flex",
    "mask_and", "mask_or", "mass_outside_mask", "window_error_curve", "cached_attention_step",
    "dequantize", "to_float8", "tensor_bytes", "dense_decode_attention",
    "paged_attention_decode", "validate_paged_inputs", "partial_attention", "merge_partials",
    "merge_many", "split_decode_reference",
    # notebook 08: they take a GPT, serving reports, measurements or an engine's counts
    "gpt_shape", "summary_rows", "latency_figure", "timeline_figure", "greedy_outputs",
    "long_prompt_rows", "speculative_generate", "measure_speculative", "speedup_figure",
    "train_pair", "decode_step_seconds", "offload_cost",
    # a config.json (a dict or a path) and a free-text name: tests/test_hf_config.py
    "model_from_config",
}  # fmt: skip

# Classes whose constructors take sizes and flags: fuzzed like the functions. (Records such as
# MemoryRow hold results and check nothing; the explorers are screens.)
CLASSES = {"BlockAllocator", "PagedKVCache", "GPTConfig"}

# Valid values for required parameters, by name (the fuzz replaces one at a time).
GOOD: dict[str, Any] = {
    "n": 64, "n_q": 8, "d_model": 64, "d_ff": 256, "heads": 4, "kv_heads": 2, "head_dim": 16,
    "layers": 2, "context": 64, "block_q": 16, "block_k": 16, "block_m": 16, "block_n": 16,
    "block": 8, "block_size": 16, "window": 8, "radius": 2, "dilation": 2, "features": 8,
    "rank": 4, "tokens": 32, "channels": 16, "sm_count": 8, "batch": 2, "m": 4, "k": 4, "p": 4,
    "start": 0, "length": 8, "chunk": 8, "new_tokens": 4, "prompt_tokens": 8, "latent_dim": 32,
    "sram_bytes": 2**16, "memory_bytes": 2**30, "flops": 1e9, "flops_per_s": 1e12,
    "n_bytes": 1e6, "bandwidth_bytes_per_s": 1e12, "seconds": 1.5, "window_size": 4,
    "num_requests": 4, "max_prompt": 16, "max_output": 16, "prefix": 16, "suffixes": [4, 8],
    "ms": 2.0, "vocab": 64, "prompt_lengths": [4, 8], "free_blocks": 8, "max_batch": 4,
    "output_tokens": 4, "running": 2, "running_context": 64, "chunk_size": 8,
    "chunk_sizes": [8, 16], "batches": [1, 2],
    "model": "Llama-3-8B", "hardware": "H100-SXM5-80GB", "kind": "rope", "kernel": "forward",
    "method": "softmax", "name": "sliding window", "dtype": "float32", "lags": [1, 2],
    "alpha": 0.7, "cost_ratio": 0.1, "link": "PCIe-5.0-x16", "bytes_per_token": 1e5,
    "link_bytes_per_s": 6e10, "weight_flops_per_token": 1e10,
    "v_dim": 16, "text": "the cat sat", "row": 3, "num_layers": 2, "num_blocks": 8,
    # one head of 8 tokens of width 4; non-negative, so they are valid features φ(q), φ(k) too
    **{t: torch.rand(8, 4, generator=torch.Generator().manual_seed(0))
       for t in ("q", "k", "v", "phi_q", "phi_k", "x")},
}  # fmt: skip

# Per function: values that differ from GOOD (a MoE preset, a string of the right kind).
OVERRIDES: dict[str, dict[str, Any]] = {
    **{
        f: {"model": "DeepSeek-V3"}
        for f in ("mla_attention_matmul_flops", "mla_projection_flops_per_token",
                  "moe_ffn_flops_per_token", "moe_attention_ffn_ratio", "moe_parameter_count",
                  "mla_kv_cache_bytes", "get_moe_model")
    },  # fmt: skip
    "get_hardware": {"hardware": "H100-SXM5-80GB"},
    "tiling_schedule": {"n": 32},
    "matmul_flops": {"k": 4},  # k is a size here, the keys elsewhere
    "expected_tokens_per_pass": {"k": 4},  # k: tokens a draft proposes
    "expected_speedup": {"k": 4},
    "split_ranges": {"context_len": 64, "splits": 3},
    **{f: {"contexts": [4096], "batches": [1, 8]} for f in ("decode_grid_rows", "busy_sm_figure")},
}

# Bad values by kind. "strict" must raise an error naming the parameter; "lenient" (0 for
# counts that may start at 0, huge sizes) may also return, but never hang or raise bare.
STRICT = {
    "count": [-1, 1.5, 4.0, "8", True, math.nan],
    "number": [math.nan, math.inf, -math.inf, "1.0", True, -1.0],
    "flag": ["no", 1, 0, None, "True"],
    "dtype": ["float12", "fp17", 16, ""],
    "choice": ["nope", 3],
}
LENIENT = {"count": [0, 10**21], "number": [0.0, 1e300]}

# str parameters that are names of a preset or a choice (anything else is free text).
CHOICE_PARAMS = {"model", "hardware", "kind", "kernel", "method", "name", "axis", "op",
                 "logits", "pattern", "stabilise", "baseline", "link"}  # fmt: skip
# Return types of functions that compute a number from the arguments (no tensors): only they
# get huge sizes, since a function that builds a tensor of 10**21 elements would try to.
SCALAR_RETURNS = re.compile(
    r"^(int|float|str|bool|float \| None|LayerFlops|RooflineEstimate|DecodeGridCost|"
    r"BlockSizes|PrefixSharingReport|FragmentationReport|tuple\[int, int\]|"
    r"list\[TileStep\]|list\[dict\[str, Any\]\]|ModelShape|MoEShape|Hardware)$"
)


def _kind(name: str, annotation: Any) -> str | None:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    parts = {p.strip() for p in text.split("|")}
    if "dtype" in name:
        return "dtype"
    if "bool" in parts:
        return "flag"
    if "int" in parts:
        return "count"
    if "float" in parts:
        return "number"
    if "str" in parts and name in CHOICE_PARAMS:
        return "choice"
    return None


def _public_functions() -> Iterator[tuple[str, Callable[..., Any]]]:
    for module in MODULES:
        for name in getattr(module, "__all__", dir(module)):
            fn = getattr(module, name)
            callable_ = inspect.isfunction(fn) or (inspect.isclass(fn) and name in CLASSES)
            if name.startswith("_") or name in SKIP or not callable_:
                continue
            if fn.__module__ == module.__name__ or name in CLASSES:
                yield f"{module.__name__.rsplit('.', 1)[1]}.{name}", fn


def _base_kwargs(fn: Callable[..., Any]) -> dict[str, Any] | None:
    """Valid keyword arguments for ``fn``; None if a required one has no known good value."""
    kwargs: dict[str, Any] = {}
    overrides = OVERRIDES.get(fn.__name__, {})
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            return None
        if p.name in overrides:
            kwargs[p.name] = overrides[p.name]
        elif p.default is p.empty:
            if p.name not in GOOD:
                return None
            kwargs[p.name] = GOOD[p.name]
    return kwargs


def _cases() -> Iterator[Any]:
    for label, fn in _public_functions():
        kwargs = _base_kwargs(fn)
        assert kwargs is not None, f"{label}: add good values to GOOD/OVERRIDES or it to SKIP"
        for p in inspect.signature(fn).parameters.values():
            kind = _kind(p.name, p.annotation)
            if kind is not None:
                yield pytest.param(fn, kwargs, p.name, kind, id=f"{label}-{p.name}")


CASES = list(_cases())


class Hang(Exception):
    pass


@contextmanager
def _cpu_alarm(seconds: float) -> Iterator[None]:
    """Raise :class:`Hang` after ``seconds`` of CPU time (load on the machine does not count)."""

    def on_alarm(signum: int, frame: Any) -> None:
        raise Hang

    previous = signal.signal(signal.SIGPROF, on_alarm)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def _call(fn: Callable[..., Any], kwargs: dict[str, Any]) -> tuple[str, Any]:
    """("returned", value), ("raised", error) for ValueError/TypeError, or ("bad", why)."""
    try:
        with _cpu_alarm(3.0):
            return "returned", fn(**kwargs)
    except Hang:
        return "bad", "ran for more than 3 s of CPU time (a hang)"
    except (ValueError, TypeError) as error:
        return "raised", error
    except Exception as error:  # noqa: BLE001 - any other error is what we are looking for
        return "bad", f"raised a bare {type(error).__name__}: {error}"


def _names(error: BaseException, name: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", str(error)) is not None


def _problems(fn: Callable[..., Any], kwargs: dict[str, Any], name: str, value: Any,
              strict: bool) -> str | None:  # fmt: skip
    outcome, result = _call(fn, {**kwargs, name: value})
    call = f"{fn.__name__}({name}={value!r})"
    if outcome == "bad":
        return f"{call} {result}"
    if outcome == "raised" and not _names(result, name):
        return f"{call} raised {type(result).__name__} not naming {name}: {result}"
    if outcome == "returned" and strict:
        return f"{call} returned {result!r:.80} instead of an error naming {name}"
    return None


def test_every_function_with_good_arguments_returns():
    # The base of the fuzz: if it fails, the fuzz below would test the wrong parameter.
    failures = []
    for label, fn in _public_functions():
        outcome, result = _call(fn, _base_kwargs(fn) or {})
        if outcome != "returned":
            failures.append(f"{label}: {result}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(("fn", "kwargs", "name", "kind"), CASES)
def test_bad_arguments_are_errors_naming_the_parameter(fn, kwargs, name, kind):
    huge_ok = SCALAR_RETURNS.match(str(inspect.signature(fn).return_annotation))
    values = [(v, True) for v in STRICT[kind]]
    values += [(v, False) for v in LENIENT.get(kind, []) if huge_ok or abs(v) < 1e6]
    failures = [msg for v, strict in values if (msg := _problems(fn, kwargs, name, v, strict))]
    assert not failures, "\n".join(failures)


BAD_VALUE = {
    "count": st.one_of(st.integers(max_value=-1), st.floats(allow_nan=True), st.text(max_size=3)),
    "number": st.one_of(st.sampled_from([math.nan, math.inf, -math.inf]),
                        st.floats(max_value=-1e-300), st.text(max_size=3)),
    "flag": st.one_of(st.integers(), st.text(max_size=3), st.none(), st.floats()),
    "dtype": st.text(alphabet="abcdefilnoptu0123468", min_size=1, max_size=8).filter(
        lambda s: not _is_dtype(s)),
    "choice": st.text(alphabet="xyzq_-", min_size=1, max_size=6),
}  # fmt: skip


def _is_dtype(text: str) -> bool:
    try:
        canonical_dtype(text)
    except ValueError:
        return False
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(CASES), data=st.data())
def test_random_bad_arguments_are_errors_naming_the_parameter(case, data):
    fn, kwargs, name, kind = case.values
    value = data.draw(BAD_VALUE[kind], label=name)
    problem = _problems(fn, kwargs, name, value, strict=True)
    assert problem is None, problem


# --- one rule for empty batches ---------------------------------------------------------------


def test_batch_zero_is_refused_by_every_attention_like_the_kernels():
    from attn_course.kernels.validate import validate_inputs

    empty = torch.zeros(0, 2, 8, 16)
    for attention in (scores.naive_attention, tiling.tiled_attention, tiling.tiled_attention_loops,
                      validate_inputs):  # fmt: skip
        with pytest.raises(ValueError, match=r"^q needs batch"):
            attention(empty, empty, empty, causal=False, scale=None)
    pool = torch.zeros(4, 4, 2, 16)
    with pytest.raises(ValueError, match=r"^q needs every size >= 1"):
        paged.validate_paged_inputs(torch.zeros(0, 2, 16), pool, pool,
                                    torch.zeros(0, 1, dtype=torch.int32),
                                    torch.zeros(0, dtype=torch.int32), None)  # fmt: skip

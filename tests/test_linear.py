"""Notebook 05: linear attention's three causal forms agree, the kernel trick is exact, random
features converge to softmax, Linformer sees the future, and the Triton kernel matches.

Tolerances, stated once: the parallel, recurrent and chunked forms add the same terms in a
different order, so in float64 they agree to 1e-10 (rounding ~1e-16 per term); in float32
to 1e-5 relative (a few hundred terms of size ~1, eps 6e-8). The Triton kernel is compared
with the float64 recurrent form: float32 atol 1e-5, float16 and bfloat16 with the
FlashAttention tests' rule, error <= 2 x (error of torch's own computation in that dtype)
+ 1e-3 (torch rounds inputs and output the same way as the kernel).
"""

from __future__ import annotations

import math

import pytest
import torch

from attn_course.checks import exercises_for
from attn_course.kernels import kernel_device
from attn_course.kernels.linear import linear_attention_forward
from attn_course.linear import (
    causal_linear_attention_chunked,
    causal_linear_attention_parallel,
    causal_linear_attention_recurrent,
    crossover_figure,
    decode_memory_table,
    elu_feature_map,
    future_influence,
    kernel_attention_explicit,
    linear_attention,
    linear_attention_flops,
    linear_state_bytes,
    linformer_attention,
    linformer_projections,
    mamba_scan_flops,
    mamba_state_bytes,
    measure_crossover,
    measured_crossover_n,
    performer_features,
    performer_projection,
    predicted_crossover_n,
    random_feature_attention,
    random_feature_error,
    recurrent_step,
    retrieval_accuracy,
    softmax_attention_flops,
)
from attn_course.scores import naive_attention

pytestmark = pytest.mark.nb05


def features(*shape: int, dtype=torch.float64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(*shape, generator=g, dtype=torch.float64) for _ in range(3))
    return elu_feature_map(q).to(dtype), elu_feature_map(k).to(dtype), v.to(dtype)


# --- the three causal forms ----------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, chunk",
    [((1, 8), 4), ((13, 4), 5), ((2, 3, 37, 8), 16), ((1, 2, 64, 16), 64), ((3, 1, 10, 6), 1),
     ((9, 5), 100)],
)  # fmt: skip
def test_parallel_recurrent_and_chunked_agree_float64(shape, chunk):
    phi_q, phi_k, v = features(*shape)
    parallel = causal_linear_attention_parallel(phi_q, phi_k, v)
    recurrent = causal_linear_attention_recurrent(phi_q, phi_k, v)
    chunked = causal_linear_attention_chunked(phi_q, phi_k, v, chunk_size=chunk)
    assert parallel.shape == v.shape
    torch.testing.assert_close(recurrent, parallel, rtol=0, atol=1e-10)
    torch.testing.assert_close(chunked, parallel, rtol=0, atol=1e-10)


def test_causal_forms_agree_float32():
    phi_q, phi_k, v = features(2, 2, 300, 16, dtype=torch.float32)
    reference = causal_linear_attention_parallel(*(t.double() for t in (phi_q, phi_k, v)))
    for form in (causal_linear_attention_parallel, causal_linear_attention_recurrent,
                 lambda *a: causal_linear_attention_chunked(*a, chunk_size=48)):  # fmt: skip
        torch.testing.assert_close(form(phi_q, phi_k, v).double(), reference, rtol=1e-5, atol=1e-5)


def test_first_output_is_the_first_value_and_last_is_the_full_average():
    # Token 0 sees only itself: out_0 = v_0 whatever the features. The last token sees all,
    # so causal and non-causal agree on it.
    phi_q, phi_k, v = features(11, 4)
    out = causal_linear_attention_chunked(phi_q, phi_k, v, chunk_size=3)
    torch.testing.assert_close(out[0], v[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(out[-1], linear_attention(phi_q, phi_k, v)[-1], rtol=0, atol=1e-12)


def test_recurrent_step_by_hand():
    # m = 2, d_v = 1. φ(k) = (1, 2), v = 3: S = [[3], [6]], z = (1, 2).
    # φ(q) = (1, 1): out = (3 + 6) / (1 + 2) = 3.
    out, state, z = recurrent_step(
        torch.zeros(2, 1), torch.zeros(2), torch.tensor([1.0, 1.0]), torch.tensor([1.0, 2.0]),
        torch.tensor([3.0]),
    )  # fmt: skip
    assert state.tolist() == [[3.0], [6.0]] and z.tolist() == [1.0, 2.0]
    assert out.tolist() == [3.0]


# --- non-causal: the kernel trick ---------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 3), (2, 4, 33, 8), (1, 1, 100, 16)])
def test_linear_equals_explicit_normalised_form(shape):
    phi_q, phi_k, v = features(*shape)
    torch.testing.assert_close(
        linear_attention(phi_q, phi_k, v), kernel_attention_explicit(phi_q, phi_k, v),
        rtol=0, atol=1e-10,
    )  # fmt: skip


def test_explicit_form_is_a_weighted_average():
    # With constant features every weight is equal: the output is the mean of v.
    v = torch.arange(12.0, dtype=torch.float64).reshape(4, 3)
    ones = torch.ones(4, 2, dtype=torch.float64)
    out = linear_attention(ones, ones, v)
    torch.testing.assert_close(out, v.mean(0).expand(4, 3))


def test_elu_feature_map_values():
    # elu(x) + 1: x + 1 above 0, e^x below.
    x = torch.tensor([-2.0, 0.0, 1.5])
    torch.testing.assert_close(elu_feature_map(x), torch.tensor([math.exp(-2.0), 1.0, 2.5]))


# --- random features approximate softmax --------------------------------------------------


def test_orthogonal_projection_rows_are_orthogonal_within_a_block():
    w = performer_projection(8, 20, generator=torch.Generator().manual_seed(0))
    assert w.shape == (20, 8)
    block = w[:8] / w[:8].norm(dim=1, keepdim=True)
    torch.testing.assert_close(block @ block.T, torch.eye(8, dtype=w.dtype), atol=1e-12, rtol=0)
    again = performer_projection(8, 20, generator=torch.Generator().manual_seed(0))
    other = performer_projection(8, 20, generator=torch.Generator().manual_seed(1))
    assert torch.equal(w, again) and not torch.equal(w, other)


def test_positive_random_features_estimate_the_softmax_kernel():
    # E[φ(q)·φ(k)] = exp(q·k). q·k = 0.5·0.2·4 = 0.4 for the vectors below; with 20,000
    # iid features the standard error is below 2 %.
    q = torch.full((1, 4), 0.5, dtype=torch.float64)
    k = torch.full((1, 4), 0.2, dtype=torch.float64)
    w = performer_projection(4, 20_000, generator=torch.Generator().manual_seed(3),
                             orthogonal=False)  # fmt: skip
    estimate = (performer_features(q, w) * performer_features(k, w)).sum()
    assert estimate.item() == pytest.approx(math.exp(0.4), rel=0.03)
    assert (performer_features(q, w) > 0).all()


def test_random_feature_attention_converges_to_softmax_as_features_grow():
    # Fixed seed; small scores (q, k ~ N(0, 0.5²)). The error falls roughly as 1/√m:
    # 16 -> 1024 features is 64x more, so we ask for at least a 3x smaller error.
    rows = random_feature_error([16, 64, 256, 1024], [0.5], n=128, head_dim=16, draws=3)
    errors = [row["rel_error"] for row in rows]
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < errors[0] / 3 and errors[-1] < 0.1


def test_random_features_break_down_for_large_scores():
    # Same m = 256, scores 4x wider: the estimator's variance grows like exp(|q|² + |k|²).
    small, large = random_feature_error([256], [0.5, 2.0], n=128, head_dim=16, draws=2)
    assert large["rel_error"] > 5 * small["rel_error"]


def test_random_feature_attention_causal_matches_its_own_explicit_form():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(20, 8, generator=g, dtype=torch.float64) * 0.5 for _ in range(3))
    out = random_feature_attention(q, k, v, 64, causal=True,
                                   generator=torch.Generator().manual_seed(1))  # fmt: skip
    assert torch.isfinite(out).all()
    # Row 0 sees only key 0: its output is v_0 exactly.
    torch.testing.assert_close(out[0], v[0], rtol=0, atol=1e-12)


# --- Linformer is not causal; linear attention is ------------------------------------------


def test_linformer_output_depends_on_future_tokens():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(16, 8, generator=g, dtype=torch.float64) for _ in range(3))
    e, f = linformer_projections(16, 4, generator=g)
    leak = future_influence(lambda q, k, v: linformer_attention(q, k, v, e, f), q, k, v, 12)
    assert leak > 1e-3  # token 12 changes the outputs of tokens 0..11
    causal_linear = future_influence(
        lambda q, k, v: linear_attention(elu_feature_map(q), elu_feature_map(k), v, causal=True),
        q, k, v, 12,
    )  # fmt: skip
    causal_softmax = future_influence(lambda q, k, v: naive_attention(q, k, v, causal=True).out,
                                      q, k, v, 12)  # fmt: skip
    assert causal_linear == 0.0 and causal_softmax == 0.0


# --- costs ----------------------------------------------------------------------------------


def test_flop_counts_by_hand():
    # softmax: 4 n² d = 4 · 128² · 64 = 4,194,304.
    assert softmax_attention_flops(128, 64) == 4 * 128 * 128 * 64
    # linear non-causal: 4 n m (d + 1) = 4 · 128 · 64 · 65 = 2,129,920.
    assert linear_attention_flops(128, 64) == 2_129_920
    # causal chunked, C = 64: + 2 chunks · (2·64²·64 + 2·64²·65) = 2 · 1,056,768 = 2,113,536.
    assert linear_attention_flops(128, 64, causal=True, chunk_size=64) == 2_129_920 + 2_113_536
    # crossover: n* = m (d + 1) / d = 64 · 65 / 64 = 65; there the two counts are equal.
    assert predicted_crossover_n(64) == 65.0
    assert softmax_attention_flops(65, 64) == linear_attention_flops(65, 64)
    assert predicted_crossover_n(64, features=256) == 260.0


def test_state_bytes_are_constant_while_the_kv_cache_grows():
    # one head, d = 64, float16: S + z = (64·64 + 64) · 2 = 8,320 B.
    assert linear_state_bytes(64, dtype="float16") == 8_320
    # Mamba, d_model 768: d_inner 1536 · (16 + 3) · 4 B = 116,736 B.
    assert mamba_state_bytes(768) == 116_736
    # scan: 7 FLOPs · n 1000 · d_inner 1536 · N 16 = 172,032,000
    assert mamba_scan_flops(1000, 768) == 172_032_000
    short, long = (decode_memory_table(n, 768, 12) for n in (1_000, 100_000))
    kv_short, kv_long = short[0]["decode_bytes"], long[0]["decode_bytes"]
    assert kv_long == 100 * kv_short  # KV cache: linear in n
    # 2 · 12 heads · 64 · 1000 tokens · 2 B = 3,072,000 B
    assert kv_short == 3_072_000
    for row_short, row_long in zip(short[1:], long[1:], strict=True):
        assert row_short["decode_bytes"] == row_long["decode_bytes"]


# --- measurements -------------------------------------------------------------------------


def test_measured_crossover_interpolates_and_figure_has_units():
    rows = measure_crossover([32, 64], head_dim=16, heads=1, min_total_s=0.0, progress=False)
    assert [row.n for row in rows] == [32, 64]
    assert all(row.linear_s > 0 and row.naive_bytes > 0 for row in rows)
    crossing = measured_crossover_n(rows)
    assert crossing is None or 32 <= crossing <= 64
    figure = crossover_figure(rows, predicted_n=17.0, measured_n=crossing)
    assert figure.layout.xaxis.type == "log" and "ms" in figure.layout.yaxis.title.text
    # Hand-made rows: ratio sdpa/linear goes 0.5 -> 2 between n = 100 and 400:
    # log-interpolation puts the crossing at the geometric middle, 200.
    from attn_course.linear import CrossoverRow

    fake = [CrossoverRow(100, 1, 1, 2, 0, 0, 0), CrossoverRow(400, 1, 2, 1, 0, 0, 0)]
    assert measured_crossover_n(fake) == pytest.approx(200.0)


def test_exact_retrieval_softmax_succeeds_linear_attention_fails():
    # 512 stored pairs, d = 64: softmax finds every one; elu+1 linear attention almost none.
    assert retrieval_accuracy("softmax", 512) == 1.0
    assert retrieval_accuracy("linear_elu", 512) < 0.1
    # The best a d × d outer-product memory can do: fine for n ≤ d, lost for n ≫ d.
    assert retrieval_accuracy("linear_identity", 32) == 1.0
    assert retrieval_accuracy("linear_identity", 2048) < 0.2


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, word",
    [
        (lambda: linear_attention(-torch.ones(3, 2), torch.ones(3, 2), torch.ones(3, 2)), "phi_q"),
        (lambda: linear_attention(torch.ones(3, 2), torch.ones(4, 2), torch.ones(3, 2)), "v"),
        (lambda: linear_attention(torch.ones(3, 2), torch.ones(3, 2), torch.ones(3, 2),
                                  causal="yes"), "causal"),  # fmt: skip
        (lambda: causal_linear_attention_chunked(*features(4, 2), chunk_size=0), "chunk_size"),
        (lambda: performer_projection(8, 0), "features"),
        (lambda: linear_attention_flops(0, 64), "n"),
        (lambda: future_influence(lambda q, k, v: v, *features(4, 2), 4), "position"),
        (lambda: retrieval_accuracy("magic", 8), "method"),
        (lambda: linformer_attention(*features(6, 2), torch.ones(2, 5), torch.ones(2, 5)), "e"),
        (lambda: elu_feature_map([1.0]), "x"),
    ],
)
def test_bad_input_is_a_value_error_naming_the_parameter(call, word):
    with pytest.raises(ValueError, match=word):
        call()


# --- the Triton kernel (interpreter on CPU) -------------------------------------------------


@pytest.fixture(scope="module")
def kernels():
    return linear_attention_forward, kernel_device()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("feature_map", ["elu", "none"])
def test_triton_kernel_matches_the_recurrent_form(kernels, dtype, feature_map):
    forward, device = kernels
    g = torch.Generator().manual_seed(1)
    # n = 40: chunks of 16, 16 and a ragged 8 in the interpreter.
    q, k = (torch.randn(1, 2, 40, 16, generator=g, dtype=torch.float64) for _ in range(2))
    v = torch.randn(1, 2, 40, 32, generator=g, dtype=torch.float64)
    phi_q, phi_k = elu_feature_map(q), elu_feature_map(k)
    reference = causal_linear_attention_recurrent(phi_q, phi_k, v)
    inputs = (q, k, v) if feature_map == "elu" else (phi_q, phi_k, v)
    got = forward(*(t.to(dtype).to(device) for t in inputs), feature_map=feature_map)
    assert got.dtype == dtype and got.shape == v.shape
    error = (got.cpu().double() - reference).abs().max().item()
    if dtype == torch.float32:
        assert error < 1e-5
    else:
        rounded = [t.to(dtype).double() for t in (phi_q, phi_k, v)]
        torch_error = (
            causal_linear_attention_recurrent(*rounded).to(dtype).double() - reference
        ).abs().max().item()
        assert error <= 2 * torch_error + 1e-3


@pytest.mark.parametrize(
    "change, word",
    [
        ({"q": torch.ones(1, 1, 8, 12)}, "features"),
        ({"v": torch.ones(1, 1, 9, 16)}, "v must have"),
        ({"feature_map": "relu"}, "feature_map"),
        ({"chunk_size": 24}, "chunk_size"),
        ({"k": torch.ones(1, 1, 8, 16, dtype=torch.float64)}, "dtype"),
    ],
)
def test_triton_kernel_refuses_bad_input_before_launch(kernels, change, word):
    forward, _ = kernels
    args = {"q": torch.ones(1, 1, 8, 16), "k": torch.ones(1, 1, 8, 16),
            "v": torch.ones(1, 1, 8, 16)}  # fmt: skip
    args.update(change)
    with pytest.raises(ValueError, match=word):
        forward(args.pop("q"), args.pop("k"), args.pop("v"), **args)


# --- the benchmark suite ------------------------------------------------------------------


def test_bench_linear_smoke_writes_a_record(tmp_path):
    import argparse

    from attn_course.bench import linear as bench_linear
    from attn_course.bench.records import load_records, results_table, write_record

    parser = argparse.ArgumentParser()
    bench_linear.add_arguments(parser)
    record = bench_linear.run(parser.parse_args(["--smoke"]), command="test")
    assert record["benchmark"] == "linear" and record["smoke"] is True
    # 3 sizes x 3 implementations
    assert len(record["results"]) == 9
    by_impl = {}
    for result in record["results"]:
        by_impl.setdefault(result["implementation"], []).append(result)
    for result in by_impl["linear_chunked"] + by_impl["sdpa"]:
        assert result["status"] == "ok" and result["ms"] > 0 and result["tflops"] > 0
        assert result["max_abs_error"] < 1e-4  # float32 against float64, n <= 128
    for result in by_impl["linear_triton"]:
        assert result["status"] in ("ok", "checked, not timed")
        assert result["max_abs_error"] < 1e-4
    write_record(record, tmp_path / "linear.json")
    (loaded,) = load_records(tmp_path / "*.json")
    # The same suite through the command line: python -m attn_course.bench linear ...
    from attn_course.bench.__main__ import main as bench_main

    assert bench_main(["linear", "--smoke", "--quiet", "--out", str(tmp_path / "cli.json")]) == 0
    assert load_records(tmp_path / "cli.json")[0]["benchmark"] == "linear"
    # The course's benchmark figure draws any suite's record, one line per implementation.
    from attn_course.bench.plots import benchmark_figure

    figure = benchmark_figure(record)
    drawn = {trace.name for trace in figure.data}
    assert {bench_linear.LABELS["linear_chunked"], bench_linear.LABELS["sdpa"]} <= drawn
    assert loaded["results"] == record["results"]
    assert "linear_chunked" in results_table(loaded)


# --- exercise checks ---------------------------------------------------------------------
# The checks themselves are tested against a corpus of wrong answers: tests/corpus/nb05.py.


def test_notebook_05_has_four_exercises():
    ids = [e.id for e in exercises_for("05_linear_attention")]
    assert ids == ["linear_recurrent_step", "linear_crossover_n", "elu_linear_attention",
                   "linear_chunk_step"]  # fmt: skip

"""Notebook 01: naive attention, softmax, masks, byte formulas, the toy sentence, the checks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from attn_course.checks import exercises_for
from attn_course.cost import max_n_for_memory, score_count, score_matrix_bytes
from attn_course.scores import (
    DTYPE_NAMES,
    causal_mask,
    largest_safe_exponent,
    naive_attention,
    naive_attention_peak_bytes,
    naive_softmax,
    stable_softmax,
    tokenize,
    toy_sentence_qkv,
)
from attn_course.validate import resolve_dtype

pytestmark = pytest.mark.nb01

TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}


def random_qkv(*shape: int, n_k: int | None = None, dtype=torch.float64, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    key_shape = (*shape[:-2], n_k or shape[-2], shape[-1])
    q = torch.randn(shape, generator=generator, dtype=dtype)
    k = torch.randn(key_shape, generator=generator, dtype=dtype)
    v = torch.randn(key_shape, generator=generator, dtype=dtype)
    return q, k, v


# --- naive attention against PyTorch's ----------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", [(7, 16), (1, 1, 1, 8), (2, 3, 33, 16), (1, 4, 128, 64)])
def test_naive_attention_matches_sdpa(shape, causal, dtype):
    q, k, v = random_qkv(*shape, dtype=dtype)
    got = naive_attention(q, k, v, causal=causal).out
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(got, expected, atol=tol, rtol=tol)


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 2),
    heads=st.integers(1, 3),
    n_q=st.integers(1, 24),
    n_k=st.integers(1, 24),
    head_dim=st.sampled_from([1, 2, 8, 17]),
    causal=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_naive_attention_matches_sdpa_any_shape(batch, heads, n_q, n_k, head_dim, causal, seed):
    # causal with n_q != n_k: both sides align the mask at the top-left (query i sees keys <= i).
    q, k, v = random_qkv(batch, heads, n_q, head_dim, n_k=n_k, seed=seed)
    result = naive_attention(q, k, v, causal=causal)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    torch.testing.assert_close(result.out, expected, atol=1e-10, rtol=1e-10)
    assert result.scores.shape == result.probs.shape == (batch, heads, n_q, n_k)


def test_custom_scale_and_mask_match_sdpa():
    q, k, v = random_qkv(2, 2, 9, 8, n_k=11)
    allowed = torch.rand(9, 11, generator=torch.Generator().manual_seed(3)) > 0.3
    allowed[:, 0] = True  # every query keeps one key; SDPA's fully-masked rows differ by version
    got = naive_attention(q, k, v, mask=allowed, scale=0.25).out
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=0.25)
    torch.testing.assert_close(got, expected)


def test_scores_are_scaled_dot_products():
    # q = [1, 2], k = [3, 4]: q·k = 11, d = 2, S = 11/√2 = 7.778...
    q, k, v = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 4.0]]), torch.tensor([[5.0, 6.0]])
    result = naive_attention(q, k, v)
    assert result.scores.item() == pytest.approx(11 / math.sqrt(2))
    assert result.probs.item() == 1.0  # one key takes all the weight
    assert result.out.tolist() == [[5.0, 6.0]]


def test_probability_rows_sum_to_one_and_causal_zeros_the_future():
    q, k, v = random_qkv(2, 3, 20, 8)
    result = naive_attention(q, k, v, causal=True)
    torch.testing.assert_close(result.probs.sum(-1), torch.ones(2, 3, 20, dtype=torch.float64))
    future = torch.ones(20, 20, dtype=torch.bool).triu(1)
    assert (result.probs[..., future] == 0).all()
    assert torch.isneginf(result.scores[..., future]).all()
    assert (result.probs[..., ~future] > 0).all()


def test_fully_masked_row_gives_zeros_not_nan():
    q, k, v = random_qkv(5, 4)
    allowed = torch.ones(5, 5, dtype=torch.bool)
    allowed[2] = False  # query 2 may attend to nothing
    result = naive_attention(q, k, v, mask=allowed)
    assert not torch.isnan(result.probs).any() and not torch.isnan(result.out).any()
    assert (result.probs[2] == 0).all() and (result.out[2] == 0).all()
    torch.testing.assert_close(
        result.probs[[0, 1, 3, 4]].sum(-1), torch.ones(4, dtype=torch.float64)
    )


def test_attention_keeps_autograd_working():
    q, k, v = (t.requires_grad_() for t in random_qkv(1, 2, 6, 4))
    naive_attention(q, k, v, causal=True).out.sum().backward()
    q2, k2, v2 = (t.detach().clone().requires_grad_() for t in (q, k, v))
    F.scaled_dot_product_attention(q2, k2, v2, is_causal=True).sum().backward()
    for mine, theirs in ((q, q2), (k, k2), (v, v2)):
        torch.testing.assert_close(mine.grad, theirs.grad)


# --- softmax -----------------------------------------------------------------------------------


@pytest.mark.parametrize("magnitude", [1.0, 100.0, 1e4])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_stable_softmax_matches_torch_even_for_huge_inputs(magnitude, dtype):
    x = (torch.randn(6, 9, generator=torch.Generator().manual_seed(1)) * magnitude).to(dtype)
    got = stable_softmax(x)
    expected = torch.softmax(x.double(), dim=-1)
    tol = {torch.float16: 2e-3, torch.bfloat16: 1e-2}.get(dtype, 1e-6)
    torch.testing.assert_close(got.double(), expected, atol=tol, rtol=tol)


def test_stable_softmax_along_other_dims_and_leaves_input_alone():
    x = torch.randn(3, 4, 5, dtype=torch.float64)
    before = x.clone()
    for dim in (0, 1, -1):
        torch.testing.assert_close(stable_softmax(x, dim=dim), torch.softmax(x, dim=dim))
    assert torch.equal(x, before)


def test_stable_softmax_hand_values():
    # [0, ln 3]: exp -> [1, 3], sum 4 -> [0.25, 0.75]; shifting by 1e4 changes nothing.
    x = torch.tensor([0.0, math.log(3.0)], dtype=torch.float64)
    assert stable_softmax(x).tolist() == pytest.approx([0.25, 0.75])
    assert stable_softmax(x + 1e4).tolist() == pytest.approx([0.25, 0.75])
    masked = torch.tensor([1.0, float("-inf"), 1.0])
    assert stable_softmax(masked).tolist() == [0.5, 0.0, 0.5]


def test_stable_softmax_gradient_matches_torch():
    x = torch.randn(4, 7, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(4, 7, dtype=torch.float64)
    (stable_softmax(x) * weights).sum().backward()
    x2 = x.detach().clone().requires_grad_()
    (torch.softmax(x2, -1) * weights).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_stable_softmax_refuses_nan_and_plus_inf(bad):
    with pytest.raises(ValueError, match="nan or \\+inf"):
        stable_softmax(torch.tensor([1.0, bad, 2.0]))


def test_naive_softmax_overflows_where_stable_does_not():
    # float32's largest finite value is 3.4e38 = e^88.72, so exp(1e4) = inf, and inf/inf = nan.
    assert largest_safe_exponent("float32") == pytest.approx(88.7228, abs=1e-4)
    big = torch.tensor([1e4, 1e4 + 1.0])
    assert torch.isinf(torch.exp(big)).all()
    assert torch.isnan(naive_softmax(big)).all()
    # float16 tops out at 65504 = e^11.09: a score of 12 already overflows.
    assert largest_safe_exponent("float16") == pytest.approx(math.log(65504))
    assert torch.isnan(naive_softmax(torch.tensor([10.0, 12.0], dtype=torch.float16))).any()
    # Every score very negative: exp underflows to 0 everywhere and 0/0 = nan.
    assert torch.isnan(naive_softmax(torch.tensor([-1e4, -1e4 - 1.0]))).all()
    # Where nothing overflows the two agree.
    small = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    torch.testing.assert_close(naive_softmax(small), stable_softmax(small))


# --- masks ----------------------------------------------------------------------------------


def test_causal_mask_values():
    assert causal_mask(3).tolist() == [
        [True, False, False],
        [True, True, False],
        [True, True, True],
    ]
    # n_q != n_k: aligned at the top-left, as SDPA's is_causal.
    assert causal_mask(2, 4).tolist() == [[True, False, False, False], [True, True, False, False]]
    assert causal_mask(1).dtype == torch.bool


# --- byte formulas ------------------------------------------------------------------------------


def test_score_matrix_bytes_hand_values():
    assert score_matrix_bytes(1024, "float16") == 2_097_152  # 1024·1024·2
    assert score_matrix_bytes(1024, torch.float32, heads=8) == 33_554_432  # 1024²·8·4 = 32 MiB
    assert score_matrix_bytes(4096, "float32") == 67_108_864  # 4096²·4 = 64 MiB per head
    assert score_matrix_bytes(32_000, "float32") == 4_096_000_000  # 32000²·4 ≈ 4.1 GB per head
    assert score_matrix_bytes(10, "float64", heads=3, batch=2, n_k=7) == 3_360  # 10·7·3·2·8
    assert score_count(8192) == 67_108_864  # 8192² = 64 Mi scores per head per layer
    assert score_count(1_000_000) == 10**12  # one trillion
    assert score_matrix_bytes(1_000_000, "float16") == 2 * 10**12  # 2 TB in fp16


def test_peak_formula_hand_value():
    # n=1024, d=64, float32: S + P = 2·1024²·4 = 8,388,608; O = 1024·64·4 = 262,144.
    assert naive_attention_peak_bytes(1024, 64, "float32") == 8_650_752
    # bf16, 2 heads, batch 3, n_q=5, n_k=7, v_dim=3: 2·5·7·2·3·2 = 840; O = 5·3·2·3·2 = 180.
    assert naive_attention_peak_bytes(5, 4, "bfloat16", 2, 3, n_k=7, v_dim=3) == 1_020


@pytest.mark.parametrize("dtype", list(DTYPE_NAMES))
@pytest.mark.parametrize("shape", [(1, 1, 64, 32, 64), (2, 3, 40, 8, 24)])
def test_bytes_formula_equals_real_tensor_bytes(dtype, shape):
    batch, heads, n_q, head_dim, n_k = shape
    q, k, v = random_qkv(batch, heads, n_q, head_dim, n_k=n_k, dtype=resolve_dtype(dtype))
    result = naive_attention(q, k, v)
    expected = score_matrix_bytes(n_q, dtype, heads=heads, batch=batch, n_k=n_k)
    for matrix in (result.scores, result.probs):
        assert matrix.element_size() * matrix.nelement() == expected
        assert matrix.untyped_storage().nbytes() == expected


def test_resolve_dtype_sizes_and_names():
    assert [resolve_dtype(name).itemsize for name in DTYPE_NAMES] == [8, 4, 2, 2]
    assert resolve_dtype(torch.bfloat16) is torch.bfloat16
    with pytest.raises(ValueError, match="float64, float32, float16, bfloat16"):
        resolve_dtype("int8")  # the reference attention computes in floating point only
    with pytest.raises(ValueError, match="^dtype"):
        naive_attention_peak_bytes(8, 4, "int8")


# --- bad input ----------------------------------------------------------------------------------


def _qkv():
    return random_qkv(1, 2, 4, 8)


@pytest.mark.parametrize(
    "change, name",
    [
        (lambda q, k, v: (q[0, 0], k, v), "k"),  # rank 2 vs 4: k is compared with q
        (lambda q, k, v: (q[0], k, v), "q"),  # rank 3
        (lambda q, k, v: (q.long(), k, v), "q"),  # integer dtype
        (lambda q, k, v: (q, k.float(), v), "k"),  # dtype differs from q
        (lambda q, k, v: (q, k[..., :4], v), "k"),  # head_dim differs
        (lambda q, k, v: (q, k, v[:, :, :3]), "v"),  # fewer values than keys
        (lambda q, k, v: (q, k[:, :1], v[:, :1]), "k"),  # heads differ
        (lambda q, k, v: (q, k, "v"), "v"),  # not a tensor
        (lambda q, k, v: (q[:, :, :0], k, v), "q"),  # no tokens
    ],
)
def test_bad_inputs_name_the_parameter(change, name):
    q, k, v = change(*_qkv())
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        naive_attention(q, k, v)


def test_bad_options_name_the_parameter():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="^scale"):
        naive_attention(q, k, v, scale=0.0)
    with pytest.raises(ValueError, match="^mask"):
        naive_attention(q, k, v, mask=torch.ones(4, 4))  # float, not bool
    with pytest.raises(ValueError, match="^mask"):
        naive_attention(q, k, v, mask=torch.ones(3, 4, dtype=torch.bool))  # wrong shape
    with pytest.raises(ValueError, match="^causal"):
        naive_attention(q, k, v, causal="yes")
    for bad, name in [(0, "n"), (True, "n"), (2.5, "n")]:
        with pytest.raises(ValueError, match=f"^{name} must be an integer"):
            score_matrix_bytes(bad, "float32")
    with pytest.raises(ValueError, match="^heads"):
        score_matrix_bytes(8, "float32", heads=0)
    with pytest.raises(ValueError, match="^n_k"):
        causal_mask(3, 0)
    with pytest.raises(ValueError, match="^x must"):
        stable_softmax(torch.tensor([1, 2]))


# --- the toy sentence --------------------------------------------------------------------------


def test_toy_sentence_heads_show_their_patterns():
    toy = toy_sentence_qkv()
    assert toy.tokens == tokenize("The cat sat on the mat, and the dog sat on the cat.")
    probs = naive_attention(toy.q, toy.k, toy.v).probs[0]
    same_word, neighbours, previous = probs
    n = len(toy.tokens)
    # "same word": each token's weight goes to the occurrences of its own word, shared equally
    # ("the" appears 4 times: 1/4 each).
    for i, token in enumerate(toy.tokens):
        same = [j for j, other in enumerate(toy.tokens) if other == token]
        assert same_word[i, same].sum() > 0.95
        assert same_word[i, same].tolist() == pytest.approx([1 / len(same)] * len(same), abs=0.02)
    # "neighbours": the largest weight is on the token itself, then decays with distance.
    assert neighbours.argmax(-1).tolist() == list(range(n))
    # "previous token": every token but the first looks mostly at the one before it.
    assert previous.argmax(-1)[1:].tolist() == list(range(n - 1))
    assert (previous[torch.arange(1, n), torch.arange(n - 1)] > 0.7).all()


def test_toy_sentence_is_deterministic_and_validated():
    first, second = toy_sentence_qkv("a b a"), toy_sentence_qkv("a b a")
    assert torch.equal(first.q, second.q) and torch.equal(first.v, second.v)
    assert first.q.shape == (1, 3, 3, 32)
    with pytest.raises(ValueError, match="text"):
        toy_sentence_qkv("...")
    with pytest.raises(ValueError, match="head_dim"):
        toy_sentence_qkv("a b", head_dim=7)


# --- widgets and plots (no browser needed) --------------------------------------------------


def test_score_explorer_reacts_to_its_controls():
    from attn_course.ui.scores import ScoreExplorer

    explorer = ScoreExplorer()
    n = len(explorer.toy.tokens)
    z = explorer.figure.data[0].z
    assert len(z) == n and all(value is not None for row in z for value in row)
    explorer.causal.value = True  # above the diagonal is masked: P = 0 there
    z = explorer.figure.data[0].z
    assert z[0][1] == 0.0 and "causal" in explorer.figure.layout.title.text
    explorer.matrix.value = "scores"  # masked scores are -inf, drawn blank
    assert explorer.figure.data[0].z[0][1] is None
    explorer.head.value = 2
    assert "previous token" in explorer.figure.layout.title.text
    explorer.text.value = "one two one"
    assert list(explorer.figure.data[0].y) == ["0 one", "1 two", "2 one"]
    assert explorer.head.value == 2
    explorer.text.value = "?!"  # no words: refused without an exception, old data kept
    assert explorer.toy.tokens == ["one", "two", "one"]


def test_memory_figure_is_log_log_with_units():
    from attn_course.memory import measure_naive_attention
    from attn_course.ui.scores import memory_scaling_figure, time_scaling_figure

    rows = measure_naive_attention([32, 64], head_dim=8, rss=False, repeats=1)
    figure = memory_scaling_figure(rows, head_dim=8)
    assert figure.layout.xaxis.type == figure.layout.yaxis.type == "log"
    assert (
        "(bytes)" in figure.layout.yaxis.title.text and "(tokens)" in figure.layout.xaxis.title.text
    )
    formula = next(trace for trace in figure.data if trace.name == "S alone (formula)")
    assert list(formula.y) == [32 * 32 * 4, 64 * 64 * 4]
    assert time_scaling_figure(rows).layout.yaxis.title.text == "time (s)"


# --- the exercise checks: tests/test_checks.py and tests/corpus/nb01.py ---------------------


def test_notebook_01_registers_four_exercises():
    assert [e.id for e in exercises_for("01_score_matrix")] == [
        "score_bytes", "stable_softmax", "causal_mask", "naive_attention",
    ]  # fmt: skip


def test_max_n_for_s_and_p_inverts_the_formula():
    # S and P (copies=2) must fit. 24 GiB, float32, one head:
    # n = ⌊√(24·2^30 / 8)⌋ = ⌊√3,221,225,472⌋ = 56,755.
    n = max_n_for_memory(24 * 2**30, "float32", copies=2)
    assert n == 56_755
    assert (
        2 * score_matrix_bytes(n, "float32")
        <= 24 * 2**30
        < 2 * score_matrix_bytes(n + 1, "float32")
    )
    assert max_n_for_memory(7, "float16", copies=2) == 1  # 2·1²·2 = 4 <= 7 < 2·2²·2 = 16
    assert max_n_for_memory(3, "float16", copies=2) == 0
    with pytest.raises(ValueError, match="memory_bytes"):
        max_n_for_memory(-1, "float16", copies=2)

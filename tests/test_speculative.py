"""Notebook 08: speculative decoding equals greedy decoding, its counts add up, and the
Leviathan et al. (2023) formula for tokens per pass and speed-up.

No test reads the clock: the measured seconds are only checked to be positive and the
predicted speed-up to be the formula of the measured α and c.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from attn_course.figures import figure_problems
from attn_course.kvcache import generate_cached
from attn_course.measure import torch_threads
from attn_course.model import GPT, GPTConfig
from attn_course.speculative import (
    best_k,
    decode_step_seconds,
    expected_speedup,
    expected_tokens_per_pass,
    measure_speculative,
    speculative_generate,
    speedup_figure,
    train_pair,
)

pytestmark = pytest.mark.nb08

VOCAB, CONTEXT, NEW = 13, 48, 30
NOISE = 0.6  # relative weight noise of the "noisy copy" draft: some tokens accepted, not all


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny models: a second torch thread only waits for the first on a shared machine.
    with torch_threads(1):
        yield


def tiny(layers: int, d_model: int, heads: int, kv_heads: int, seed: int) -> GPT:
    return GPT(GPTConfig(vocab=VOCAB, context=CONTEXT, layers=layers, d_model=d_model,
                         heads=heads, kv_heads=kv_heads, seed=seed)).eval()  # fmt: skip


def noisy_copy(model: GPT, scale: float, seed: int) -> GPT:
    """The target with noise on its weights: agrees with it on some tokens, not all."""
    draft = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in draft.parameters():
            p.add_(scale * p.abs().mean() * torch.randn(p.shape, generator=g).to(p.dtype))
    return draft


def prompt(seed: int = 0, length: int = 5) -> torch.Tensor:
    return torch.randint(0, VOCAB, (1, length), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def pair():
    """A trained nb07-like pair at tiny size (a few seconds)."""
    return train_pair(steps=40, draft_steps=40, context=64, layers=2, d_model=32, heads=4,
                      draft_layers=1, draft_d_model=16, draft_heads=2, window=32)  # fmt: skip


# --- the output is the target's greedy output ---------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("draft_kind", ["other model", "noisy copy", "target itself"])
def test_speculative_output_equals_greedy_decoding(dtype, draft_kind):
    target = tiny(2, 32, 4, 2, seed=1).to(dtype)
    draft = {
        "other model": lambda: tiny(1, 16, 2, 1, seed=2).to(dtype),
        "noisy copy": lambda: noisy_copy(target, NOISE, seed=3),
        "target itself": lambda: target,
    }[draft_kind]()
    for seed in (0, 1):
        p = prompt(seed)
        expected = generate_cached(target, p, NEW).tokens
        for k in (1, 2, 4, 100):  # 100: more than the tokens left to generate
            result = speculative_generate(target, draft, p, NEW, k=k)
            assert torch.equal(result.tokens, expected), (draft_kind, k)


def test_a_noisy_copy_is_partly_accepted_so_both_branches_run():
    target = tiny(2, 32, 4, 2, seed=1).double()
    result = speculative_generate(target, noisy_copy(target, NOISE, seed=3), prompt(), NEW, k=3)
    assert 0 < result.accepted < result.proposed
    assert result.rejected > 0 and result.accepted > 0


def test_trained_pair_equals_greedy_decoding_and_agrees_often(pair):
    target, draft, tok, data = pair
    p = data[:12][None]
    result = speculative_generate(target, draft, p, 40, k=4)
    assert torch.equal(result.tokens, generate_cached(target, p, 40).tokens)
    assert result.accepted > 0  # a trained draft agrees with its target on some characters
    assert target.cfg.vocab == draft.cfg.vocab == tok.vocab


# --- the counts -----------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 3, 7, 50])
def test_the_counts_add_up(k):
    target = tiny(2, 32, 4, 2, seed=1).double()
    draft = noisy_copy(target, NOISE, seed=4)
    r = speculative_generate(target, draft, prompt(), NEW, k=k)
    assert r.new_tokens == r.accepted + r.target_passes == r.tokens.shape[1] - 5 == NEW
    assert r.draft_passes == 1 + r.proposed  # its prefill, then one pass per proposal
    assert r.accepted <= r.proposed <= k * (r.target_passes - 1)
    assert r.proposed <= NEW - 1  # never a proposal that could not be kept
    assert r.rejected <= r.target_passes - 1
    assert r.acceptance_rate == pytest.approx(r.accepted / r.proposed)
    assert r.alpha == pytest.approx(r.accepted / (r.accepted + r.rejected))
    assert r.tokens_per_pass == pytest.approx(NEW / r.target_passes)
    assert r.seconds > 0


@pytest.mark.parametrize("k", [1, 2, 4, 29, 64])
def test_the_target_as_its_own_draft_accepts_everything(k):
    target = tiny(2, 32, 4, 2, seed=1)
    r = speculative_generate(target, target, prompt(), NEW, k=k)
    assert r.acceptance_rate == 1.0 and r.alpha == 1.0 and r.rejected == 0
    # the prefill gives one token, then each pass k + 1 (the last pass what is left)
    assert r.target_passes == 1 + math.ceil((NEW - 1) / (k + 1))


def test_one_new_token_needs_no_draft():
    target = tiny(2, 32, 4, 2, seed=1)
    r = speculative_generate(target, tiny(1, 16, 2, 1, seed=2), prompt(), 1, k=4)
    assert (r.proposed, r.target_passes, r.draft_passes) == (0, 1, 1)
    assert r.acceptance_rate == 0.0 and r.alpha == 0.0
    assert torch.equal(r.tokens, generate_cached(target, prompt(), 1).tokens)


def test_a_generation_up_to_the_last_position_fits():
    target = tiny(2, 32, 4, 2, seed=1)
    p = prompt(length=8)
    new = CONTEXT - 8 + 1  # the last generated token is never fed back
    r = speculative_generate(target, noisy_copy(target, NOISE, seed=5), p, new, k=5)
    assert torch.equal(r.tokens, generate_cached(target, p, new).tokens)


# --- the formula ----------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.7, 0.95, 1.0])
@pytest.mark.parametrize("k", [1, 2, 5, 16])
def test_tokens_per_pass_is_the_geometric_sum(alpha, k):
    assert expected_tokens_per_pass(alpha, k) == pytest.approx(sum(alpha**i for i in range(k + 1)))


def test_the_alpha_one_limit_is_continuous():
    for k in (1, 4, 30):
        assert expected_tokens_per_pass(1 - 1e-12, k) == pytest.approx(k + 1, rel=1e-9)
        assert expected_tokens_per_pass(1.0, k) == k + 1


def test_tokens_per_pass_matches_a_simulation_of_independent_acceptance():
    # Each proposed token is accepted with probability alpha until the first rejection.
    g = torch.Generator().manual_seed(0)
    alpha, k, passes = 0.7, 4, 20000
    accept = torch.rand(passes, k, generator=g) < alpha
    prefix = accept.int().cumprod(dim=1).sum(dim=1)
    assert (prefix + 1).float().mean().item() == pytest.approx(
        expected_tokens_per_pass(alpha, k), rel=0.02
    )


def test_speedup_formula_and_its_limits():
    assert expected_speedup(1.0, 4, 0.25) == pytest.approx(5 / 2)
    assert expected_speedup(0.0, 3, 0.1) == pytest.approx(1 / 1.3)  # always rejected: a loss
    a, k, c = 0.8, 3, 0.05
    assert expected_speedup(a, k, c) == pytest.approx((1 - a ** (k + 1)) / ((1 - a) * (k * c + 1)))
    # a verifying pass that costs v decode steps: the denominator is k c + v
    assert expected_speedup(a, k, c, verify_ratio=1.5) == pytest.approx(
        expected_tokens_per_pass(a, k) / (k * c + 1.5)
    )


def test_best_k():
    for alpha, c in ((0.8, 0.05), (0.6, 0.2), (0.95, 0.01), (0.3, 0.5)):
        brute = max(range(1, 17), key=lambda k: (expected_speedup(alpha, k, c), -k))
        assert best_k(alpha, c) == brute
    assert best_k(0.0, 0.1) == 1  # nothing is ever accepted: propose as little as possible
    assert best_k(1.0, 0.01, max_k=8) == 8  # all accepted and nearly free: as many as allowed
    assert best_k(0.95, 0.01) > best_k(0.6, 0.01)  # a better draft earns a longer proposal


# --- measuring and drawing ------------------------------------------------------------------


def test_measure_speculative_reports_consistent_numbers(pair):
    target, draft, _, data = pair
    prompts = [data[:10][None], data[200:210][None]]
    rows = measure_speculative(target, draft, prompts, 20, [1, 3], repeats=1)
    assert [m.k for m in rows] == [1, 3]
    for m in rows:
        assert m.identical
        assert 0 <= m.acceptance_rate <= m.alpha <= 1
        assert m.speculative_s > 0 and m.plain_s > 0 and m.cost_ratio > 0
        assert m.measured_speedup == pytest.approx(m.plain_s / m.speculative_s)
        assert m.predicted_speedup == pytest.approx(expected_speedup(m.alpha, m.k, m.cost_ratio))
        assert m.verify_ratio > 0
        assert m.predicted_speedup_with_verify == pytest.approx(
            expected_speedup(m.alpha, m.k, m.cost_ratio, verify_ratio=m.verify_ratio)
        )
        assert 1 <= m.tokens_per_pass <= m.k + 1
        row = m.row()
        assert (row["k"], row["alpha"], row["speed-up measured"], row["identical"]) == (
            m.k, m.alpha, m.measured_speedup, True)  # fmt: skip
    figure = speedup_figure(rows)
    assert not figure_problems(figure)
    assert "speed-up" in figure.layout.title.text.lower()
    assert figure.layout.xaxis.title.text and figure.layout.yaxis.title.text


def test_decode_step_seconds_is_positive_and_checks_the_context():
    model = tiny(1, 16, 2, 1, seed=2)
    assert decode_step_seconds(model, 10, min_total_s=0.001) > 0
    assert decode_step_seconds(model, 10, tokens=5, min_total_s=0.001) > 0
    with pytest.raises(ValueError, match="tokens"):
        decode_step_seconds(model, CONTEXT - 2, tokens=5)


def test_train_pair_gives_a_smaller_draft_on_the_same_vocabulary(pair):
    target, draft, tok, data = pair
    assert not target.training and not draft.training
    size = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert size(draft) * 4 < size(target)
    assert data.max().item() < tok.vocab


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "match"),
    [(lambda: expected_tokens_per_pass(-0.1, 3), "alpha"),
     (lambda: expected_tokens_per_pass(1.1, 3), "alpha"),
     (lambda: expected_tokens_per_pass(math.nan, 3), "alpha"),
     (lambda: expected_tokens_per_pass(0.5, 0), "k"),
     (lambda: expected_tokens_per_pass(0.5, 2.0), "k"),
     (lambda: expected_speedup(0.5, 3, 0.0), "cost_ratio"),
     (lambda: expected_speedup(0.5, 3, -1.0), "cost_ratio"),
     (lambda: expected_speedup(0.5, 3, 0.1, verify_ratio=0), "verify_ratio"),
     (lambda: best_k(0.5, 0.1, max_k=0), "max_k"),
     (lambda: best_k(2.0, 0.1), "alpha"),
     (lambda: train_pair(steps=-1), "steps"),
     (lambda: speedup_figure([]), "measurements")],
)  # fmt: skip
def test_bad_numbers_are_errors_naming_the_parameter(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_models_and_prompts_are_errors():
    target = tiny(2, 32, 4, 2, seed=1)
    other_vocab = GPT(GPTConfig(vocab=VOCAB + 1, context=CONTEXT, layers=1, d_model=16,
                                heads=2, kv_heads=1)).eval()  # fmt: skip
    with pytest.raises(ValueError, match="vocab"):
        speculative_generate(target, other_vocab, prompt(), 4, k=2)
    with pytest.raises(ValueError, match="prompt"):
        speculative_generate(target, target, torch.zeros(2, 4, dtype=torch.long), 4, k=2)
    with pytest.raises(ValueError, match="context"):
        speculative_generate(target, target, prompt(), CONTEXT, k=2)
    with pytest.raises(ValueError, match="k must"):
        speculative_generate(target, target, prompt(), 4, k=0)
    with pytest.raises(ValueError, match="new_tokens"):
        speculative_generate(target, target, prompt(), 0, k=2)
    with pytest.raises(ValueError, match="ks"):
        measure_speculative(target, target, [prompt()], 4, [])
    with pytest.raises(ValueError, match="prompts"):
        measure_speculative(target, target, [], 4, [1])

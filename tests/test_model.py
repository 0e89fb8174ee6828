"""The small GPT of notebook 07: shapes, causality, MHA/GQA/MQA from one code path, seeds."""

from __future__ import annotations

import pytest
import torch

from attn_course.model import GPT, CharTokenizer, GPTConfig, corpus_text, evaluate_loss, train

pytestmark = pytest.mark.nb07


def tiny(kv_heads: int = 4, seed: int = 0) -> GPT:
    return GPT(GPTConfig(vocab=11, context=16, layers=2, d_model=16, heads=4,
                         kv_heads=kv_heads, seed=seed)).eval()  # fmt: skip


@pytest.mark.parametrize("kv_heads", [4, 2, 1])
def test_logit_shape_and_kv_projection_size(kv_heads):
    model = tiny(kv_heads)
    logits, caches = model(torch.zeros(3, 5, dtype=torch.long))
    assert logits.shape == (3, 5, 11)
    assert len(caches) == 2
    # head_dim = 16 / 4 = 4; K and V each have kv_heads heads of 4 channels
    assert caches[0][0].shape == (3, kv_heads, 5, 4)
    assert model.blocks[0].attn.kv.weight.shape == (2 * kv_heads * 4, 16)


def test_causal_future_tokens_do_not_change_past_logits():
    model = tiny()
    a = torch.tensor([[1, 2, 3, 4, 5]])
    b = torch.tensor([[1, 2, 3, 9, 0]])
    la, lb = model(a)[0], model(b)[0]
    assert torch.allclose(la[:, :3], lb[:, :3], atol=1e-6)
    assert not torch.allclose(la[:, 3], lb[:, 3], atol=1e-4)


def test_init_is_deterministic_in_the_seed():
    x = torch.tensor([[1, 2, 3]])
    assert torch.equal(tiny(seed=1)(x)[0], tiny(seed=1)(x)[0])
    assert not torch.equal(tiny(seed=1)(x)[0], tiny(seed=2)(x)[0])


def test_config_validation():
    with pytest.raises(ValueError, match="kv_heads"):
        GPTConfig(d_model=16, heads=4, kv_heads=3)
    with pytest.raises(ValueError, match="d_model"):
        GPTConfig(d_model=18, heads=4, kv_heads=4)
    with pytest.raises(ValueError, match="layers"):
        GPTConfig(layers=0)
    with pytest.raises(ValueError, match="context"):
        tiny()(torch.zeros(1, 17, dtype=torch.long))


def test_tokenizer_round_trip_and_unknown_characters():
    tok = CharTokenizer(corpus_text())
    text = "Beautiful is better than ugly."
    assert tok.decode(tok.encode(text)) == text
    with pytest.raises(ValueError, match="vocabulary"):
        tok.encode("\x00")


def test_training_lowers_the_loss():
    tok = CharTokenizer(corpus_text())
    data = tok.encode(corpus_text())
    model = GPT(GPTConfig(vocab=tok.vocab, context=32, layers=1, d_model=32, heads=4, kv_heads=2))
    before = evaluate_loss(model, data)
    # random init predicts ~uniformly: loss ≈ ln(vocab)
    assert abs(before - torch.tensor(float(tok.vocab)).log().item()) < 0.2
    train(model, data, steps=40, batch=8)
    assert evaluate_loss(model, data) < before - 0.5


def test_train_window_validation():
    model = GPT(GPTConfig(vocab=5, context=8, layers=1, d_model=8, heads=2, kv_heads=1))
    data = torch.arange(40) % 5
    with pytest.raises(ValueError, match="window"):
        train(model, data, steps=1, window=9)
    with pytest.raises(ValueError, match="steps"):
        train(model, data, steps=-1)

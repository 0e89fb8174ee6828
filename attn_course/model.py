"""A compact, readable GPT for notebook 07 (the KV cache).

Token embedding + learned positions, pre-norm blocks (causal self-attention, MLP), tied
head. ``kv_heads`` selects multi-head (``kv_heads = heads``), grouped-query
(``1 < kv_heads < heads``) or multi-query (``kv_heads = 1``) attention from one code path:
each key/value head is shared by ``heads // kv_heads`` query heads.

Every layer's ``forward`` takes an optional ``cache``: a per-layer list of ``(k, v)``
tensors of shape ``(batch, kv_heads, t, head_dim)``. With a cache, only the new tokens are
projected; their keys and values are appended and the queries attend to everything cached.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from attn_course.validate import check_count, check_positive


@dataclass(frozen=True)
class GPTConfig:
    """Model shape: ``vocab`` tokens, ``context`` positions, ``d_model = heads * head_dim``."""

    vocab: int = 64
    context: int = 128
    layers: int = 2
    d_model: int = 64
    heads: int = 4
    kv_heads: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("vocab", "context", "layers", "d_model", "heads", "kv_heads"):
            check_count(name, getattr(self, name))
        check_count("seed", self.seed, minimum=0)
        if self.d_model % self.heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by heads ({self.heads})")
        if self.heads % self.kv_heads:
            raise ValueError(
                f"kv_heads must divide heads ({self.heads}), got kv_heads={self.kv_heads}"
            )

    @property
    def head_dim(self) -> int:
        return self.d_model // self.heads


# One layer's cache: (keys, values), each (batch, kv_heads, cached tokens, head_dim).
LayerCache = tuple[torch.Tensor, torch.Tensor]


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.q = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        # K and V have kv_heads heads: fewer than the queries under GQA/MQA.
        self.kv = nn.Linear(cfg.d_model, 2 * cfg.kv_heads * cfg.head_dim, bias=False)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(
        self, x: torch.Tensor, cache: LayerCache | None = None
    ) -> tuple[torch.Tensor, LayerCache]:
        """x: (batch, new tokens, d_model). Returns (output, updated cache)."""
        cfg = self.cfg
        b, t, _ = x.shape
        q = self.q(x).view(b, t, cfg.heads, cfg.head_dim).transpose(1, 2)
        k, v = self.kv(x).view(b, t, 2, cfg.kv_heads, cfg.head_dim).permute(2, 0, 3, 1, 4)
        if cache is not None:
            k = torch.cat([cache[0], k], dim=2)  # append the new tokens' keys ...
            v = torch.cat([cache[1], v], dim=2)  # ... and values
        past = k.shape[2] - t
        group = cfg.heads // cfg.kv_heads
        k_all = k.repeat_interleave(group, dim=1)  # each kv head serves `group` query heads
        v_all = v.repeat_interleave(group, dim=1)
        scores = q @ k_all.transpose(-2, -1) / cfg.head_dim**0.5
        # New token i sits at position past + i and may see positions <= past + i.
        rows = torch.arange(t, device=x.device)[:, None] + past
        cols = torch.arange(k.shape[2], device=x.device)[None, :]
        scores = scores.masked_fill(cols > rows, float("-inf"))
        y = torch.softmax(scores, dim=-1) @ v_all
        y = y.transpose(1, 2).reshape(b, t, cfg.d_model)
        return self.out(y), (k, v)


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.norm2 = nn.LayerNorm(cfg.d_model)
        d = cfg.d_model
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(
        self, x: torch.Tensor, cache: LayerCache | None = None
    ) -> tuple[torch.Tensor, LayerCache]:
        a, cache = self.attn(self.norm1(x), cache)
        x = x + a
        return x + self.mlp(self.norm2(x)), cache


class GPT(nn.Module):
    """The model. ``forward(tokens, caches=None, start=0)`` returns ``(logits, caches)``."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        torch.manual_seed(cfg.seed)  # deterministic init from the config's seed
        self.tok = nn.Embedding(cfg.vocab, cfg.d_model)
        self.pos = nn.Embedding(cfg.context, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(
        self, tokens: torch.Tensor, caches: list[LayerCache] | None = None
    ) -> tuple[torch.Tensor, list[LayerCache]]:
        """tokens: (batch, new tokens) int64. ``caches`` holds the earlier tokens' k, v.

        Returns logits (batch, new tokens, vocab) and the caches including the new tokens.
        """
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be (batch, tokens), got shape {tuple(tokens.shape)}")
        start = 0 if caches is None else caches[0][0].shape[2]
        end = start + tokens.shape[1]
        if end > self.cfg.context:
            raise ValueError(f"position {end} exceeds the context of {self.cfg.context} tokens")
        positions = torch.arange(start, end, device=tokens.device)
        x = self.tok(tokens) + self.pos(positions)
        new_caches = []
        for i, block in enumerate(self.blocks):
            x, c = block(x, None if caches is None else caches[i])
            new_caches.append(c)
        logits = self.norm(x) @ self.tok.weight.T  # tied head
        return logits, new_caches


# --- a tiny character-level corpus from the Python distribution -----------------------


def corpus_text() -> str:
    """The Zen of Python (``this`` stores it rot13-encoded) plus a few stdlib docstrings."""
    import codecs
    import collections
    import contextlib
    import io
    import json

    with contextlib.redirect_stdout(io.StringIO()):  # importing `this` prints the Zen
        import this

    parts = [codecs.decode(this.s, "rot13"), json.__doc__ or "", collections.__doc__ or ""]
    return "\n".join(parts)


class CharTokenizer:
    """Characters ↔ ids, built from a text."""

    def __init__(self, text: str) -> None:
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}

    @property
    def vocab(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        unknown = sorted(set(text) - set(self.index))
        if unknown:
            raise ValueError(f"text contains characters outside the vocabulary: {unknown}")
        return torch.tensor([self.index[c] for c in text], dtype=torch.long)

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def train(
    model: GPT,
    data: torch.Tensor,
    *,
    steps: int = 200,
    batch: int = 16,
    lr: float = 3e-3,
    seed: int = 0,
    window: int | None = None,
    progress: bool = False,
) -> list[float]:
    """Next-character training with AdamW on random windows of ``data``; returns the losses.

    ``window`` (default: the model's context) is the length of each training sequence;
    shorter windows train faster but only teach positions below ``window``.
    ``progress=True`` shows a tqdm bar with the running loss.
    """
    check_count("steps", steps, minimum=0)
    check_count("batch", batch)
    check_positive("lr", lr)
    n = model.cfg.context if window is None else check_count("window", window, 1, model.cfg.context)
    if data.numel() <= n + 1:
        raise ValueError(f"data needs more than context + 1 = {n + 1} tokens, got {data.numel()}")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    model.train()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="training", unit="step")
    for _ in range(steps):
        starts = torch.randint(0, data.numel() - n - 1, (batch,), generator=g)
        x = torch.stack([data[s : s + n] for s in starts])
        y = torch.stack([data[s + 1 : s + n + 1] for s in starts])
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if bar is not None:
            bar.update()
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    if bar is not None:
        bar.close()
    model.eval()
    return losses


@torch.no_grad()
def evaluate_loss(model: GPT, data: torch.Tensor, *, windows: int = 8) -> float:
    """Mean next-character cross-entropy (nats) over ``windows`` evenly spaced windows."""
    n = model.cfg.context
    starts = torch.linspace(0, data.numel() - n - 2, windows).long()
    x = torch.stack([data[s : s + n] for s in starts])
    y = torch.stack([data[s + 1 : s + n + 1] for s in starts])
    logits, _ = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)).item()

"""Notebook 08: a tiny serving engine over notebook 07's GPT and the paged KV cache.

Requests arrive over time (:func:`sample_workload`); a scheduler admits them while blocks
are free (:func:`admit`, first come first served), and every *step* runs the model once on a
batch that mixes sequences decoding one token and sequences prefilling (part of) a prompt.
Three policies share that loop (:meth:`Engine.run`):

* ``"continuous"``: requests join the running batch as soon as they are admitted and leave
  when done (continuous batching; Yu et al., "Orca", OSDI 2022; Kwon et al., "vLLM", SOSP 2023);
* ``"static"``: a batch of up to ``max_batch`` arrived requests runs until all finish;
* ``"sequential"``: one request at a time.

Options: chunked prefill (a token budget per step, decodes first; Agrawal et al.,
"Sarathi-Serve", OSDI 2024), prefix caching (full prompt blocks indexed by a hash chain, LRU
eviction; vLLM's automatic prefix caching) and an offload tier (preempted sequences swap
their blocks to CPU tensors standing for host memory, or recompute when the host is full).

Greedy outputs equal :func:`attn_course.kvcache.generate_cached` request by request
(tests/test_serving.py): batching and caching change when tokens come, never which.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from attn_course.cost import prefill_chunk_flops
from attn_course.figures import style
from attn_course.kvcache import generate_cached
from attn_course.measure import torch_threads
from attn_course.model import GPT
from attn_course.paged import PagedKVCache, blocks_needed, paged_attention_decode
from attn_course.presets import ModelShape
from attn_course.validate import (
    check_choice,
    check_count,
    check_flag,
    check_non_negative,
    check_positive,
)

__all__ = [
    "MODEL_STEP_S",
    "MODEL_TOKEN_S",
    "POLICIES",
    "Engine",
    "OffloadCounts",
    "Request",
    "RequestStats",
    "ServingReport",
    "StepRecord",
    "admit",
    "gpt_shape",
    "greedy_outputs",
    "latency_figure",
    "long_prompt_rows",
    "sample_workload",
    "summary_rows",
    "timeline_figure",
]

POLICIES = ("continuous", "static", "sequential")
CLOCKS = ("measured", "model")
ATTENTIONS = ("torch", "triton")
# The deterministic clock ("model"): a fixed cost per step (launch, scheduling, reading the
# weights once) plus a cost per token in the batch. Round numbers of the order this CPU
# measures for the 2-layer, d_model 64 GPT; they only have to be reproducible, not exact.
MODEL_STEP_S = 2e-3
MODEL_TOKEN_S = 5e-5


# --- requests and workloads -------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One request: it arrives ``arrival_s`` seconds after the run starts."""

    request_id: int
    arrival_s: float
    prompt: tuple[int, ...]
    max_new_tokens: int


def _check_range(name: str, value: object) -> tuple[int, int]:
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise ValueError(f"{name} must be a (low, high) pair of token counts, got {value!r}")
    low, high = check_count(name, value[0]), check_count(name, value[1])
    if low > high:
        raise ValueError(f"{name} must have low <= high, got {value!r}")
    return low, high


def sample_workload(
    num_requests: int,
    *,
    vocab: int,
    prompt_range: tuple[int, int] = (8, 48),
    output_range: tuple[int, int] = (4, 24),
    rate_per_s: float = 50.0,
    shared_prefix: tuple[int, ...] = (),
    seed: int = 0,
    long_prompt: int | None = None,
) -> list[Request]:
    """Seeded requests: Poisson arrivals at ``rate_per_s`` requests per second.

    Gaps between arrivals are exponential with mean ``1 / rate_per_s`` seconds (the first
    request arrives at 0). Each prompt is ``shared_prefix`` followed by a uniform random
    number of tokens in ``prompt_range`` (inclusive), ids uniform in ``[0, vocab)``; output
    lengths are uniform in ``output_range``. ``long_prompt``: one extra request (the last
    id, ``num_requests``) whose prompt has ``long_prompt`` tokens in all, arriving with the
    middle request, to show one long prefill stalling everyone else. Sorted by arrival.
    """
    check_count("num_requests", num_requests)
    check_count("vocab", vocab)
    p_low, p_high = _check_range("prompt_range", prompt_range)
    o_low, o_high = _check_range("output_range", output_range)
    check_positive("rate_per_s", rate_per_s)
    prefix = tuple(check_count("shared_prefix", t, 0, vocab - 1) for t in shared_prefix)
    g = torch.Generator().manual_seed(check_count("seed", seed, minimum=0))
    gaps = torch.empty(num_requests, dtype=torch.float64).exponential_(rate_per_s, generator=g)
    arrivals = (torch.cumsum(gaps, 0) - gaps[0]).tolist()
    prompt_lens = torch.randint(p_low, p_high + 1, (num_requests,), generator=g).tolist()
    outputs = torch.randint(o_low, o_high + 1, (num_requests,), generator=g).tolist()
    requests = [
        Request(i, arrivals[i], prefix + _random_tokens(n, vocab, g), outputs[i])
        for i, n in enumerate(prompt_lens)
    ]
    if long_prompt is not None:
        rest = check_count("long_prompt", long_prompt) - len(prefix)
        if rest < 1:
            raise ValueError(f"long_prompt must exceed the shared prefix, got {long_prompt}")
        mid = arrivals[num_requests // 2]
        long = Request(num_requests, mid, prefix + _random_tokens(rest, vocab, g), o_high)
        requests.insert(num_requests // 2 + 1, long)
    return requests


def _random_tokens(n: int, vocab: int, g: torch.Generator) -> tuple[int, ...]:
    return tuple(torch.randint(0, vocab, (n,), generator=g).tolist())


def gpt_shape(model: GPT) -> ModelShape:
    """Notebook 07's GPT as a cost-model preset, so :mod:`attn_course.cost` applies to it.

    d_ff = 4 d (``Block.mlp``), plain GELU FFN (2 matrices), tied head, learned positions,
    biases and LayerNorm: the shape of attn_course/model.py.
    """
    if not isinstance(model, GPT):
        raise ValueError(f"model must be an attn_course.model.GPT, got {type(model).__name__}")
    cfg = model.cfg
    return ModelShape(
        name=f"course GPT (L={cfg.layers}, d={cfg.d_model})",
        layers=cfg.layers,
        d_model=cfg.d_model,
        heads=cfg.heads,
        kv_heads=cfg.kv_heads,
        d_ff=4 * cfg.d_model,
        gated_ffn=False,
        vocab=cfg.vocab,
        context=cfg.context,
        tied_embeddings=True,
        learned_positions=True,
        biases=True,
        norm="layernorm",
        source="attn_course/model.py (notebook 07's GPT)",
    )


# --- admission --------------------------------------------------------------------------


def _admit_blocks(needs: list[int], free_blocks: int, running: int, max_batch: int) -> int:
    """How many of ``needs`` (blocks per queued request, head first) fit, in order."""
    admitted = 0
    for need in needs:
        if running + admitted >= max_batch or need > free_blocks:
            break  # head-of-line: the first that does not fit stops the queue
        free_blocks -= need
        admitted += 1
    return admitted


def admit(
    prompt_lengths: list[int],
    free_blocks: int,
    block_size: int,
    *,
    running: int = 0,
    max_batch: int,
) -> int:
    """How many requests from the head of the queue are admitted (FCFS, head-of-line).

    Request i needs ``ceil((prompt_lengths[i] + 1) / block_size)`` blocks: its prompt and
    its first generated token. Requests are taken in order while their blocks fit in what is
    left of ``free_blocks`` and the batch has room (``running + admitted < max_batch``); the
    first that does not fit stops admission, as in vLLM's FCFS scheduler.
    """
    if not isinstance(prompt_lengths, list | tuple):
        raise ValueError(f"prompt_lengths must be a list of token counts, got {prompt_lengths!r}")
    lengths = [check_count("prompt_lengths", n) for n in prompt_lengths]
    check_count("free_blocks", free_blocks, 0)
    check_count("block_size", block_size)
    check_count("max_batch", max_batch)
    check_count("running", running, 0, max_batch)
    needs = [blocks_needed(n + 1, block_size) for n in lengths]
    return _admit_blocks(needs, free_blocks, running, max_batch)


# --- results ----------------------------------------------------------------------------


@dataclass
class RequestStats:
    """One request's life; times in seconds on the run's clock."""

    request_id: int
    arrival_s: float
    prompt_tokens: int
    token_times_s: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    prefix_hit_tokens: int = 0

    @property
    def ttft_s(self) -> float:
        """Time to first token: ``token_times_s[0] - arrival_s`` (s)."""
        if not self.token_times_s:
            raise ValueError(f"request {self.request_id} produced no token")
        return self.token_times_s[0] - self.arrival_s

    @property
    def latency_s(self) -> float:
        """End-to-end latency: last token's time - ``arrival_s`` (s)."""
        return self.ttft_s + sum(self.tbt_s)

    @property
    def tbt_s(self) -> list[float]:
        """Times between consecutive generated tokens (s)."""
        t = self.token_times_s
        return [b - a for a, b in zip(t, t[1:], strict=False)]


@dataclass(frozen=True)
class StepRecord:
    """One engine step: when it started and how long it ran (s), tokens by kind, batch size."""

    start_s: float
    seconds: float
    decode_tokens: int
    prefill_tokens: int
    running: int

    @property
    def tokens(self) -> int:
        """All tokens the step computed."""
        return self.decode_tokens + self.prefill_tokens


@dataclass
class OffloadCounts:
    """What preemption moved: blocks and bytes to and from host memory, tokens recomputed.

    hits: resumes by swapping in; misses: resumes by recomputing (the host tier was full).
    """

    swapped_out_blocks: int = 0
    swapped_in_blocks: int = 0
    recomputed_tokens: int = 0
    bytes_out: int = 0
    bytes_in: int = 0
    preemptions: int = 0
    hits: int = 0
    misses: int = 0


def _percentile(name: str, values: list[float], q: float) -> float:
    if not 0 <= check_non_negative("q", q) <= 100:
        raise ValueError(f"q must be in [0, 100], got {q}")
    if not values:
        raise ValueError(f"no {name} samples: every request needs >= 2 tokens for a TBT")
    return float(np.percentile(values, q))


@dataclass
class ServingReport:
    """A run: per-request stats, the step log and totals; times in seconds, FLOPs counted
    with :func:`attn_course.cost.prefill_chunk_flops` on :func:`gpt_shape`."""

    policy: str
    requests: list[RequestStats]
    clock_s: float
    steps: list[StepRecord]
    prefill_tokens_computed: int = 0
    prefill_flops: float = 0.0
    prefill_flops_saved: float = 0.0
    prefix_evictions: int = 0
    offload: OffloadCounts = field(default_factory=OffloadCounts)

    @property
    def outputs(self) -> dict[int, list[int]]:
        """Generated token ids by request id."""
        return {r.request_id: list(r.tokens) for r in self.requests}

    @property
    def generated_tokens(self) -> int:
        """Tokens generated by all requests."""
        return sum(len(r.tokens) for r in self.requests)

    @property
    def throughput_tokens_per_s(self) -> float:
        """Generated tokens / ``clock_s`` (tokens/s)."""
        return self.generated_tokens / self.clock_s if self.clock_s > 0 else 0.0

    def ttft_percentile(self, q: float) -> float:
        """The q-th percentile (q in [0, 100], linear) of the requests' TTFT (s)."""
        return _percentile("TTFT", [r.ttft_s for r in self.requests], q)

    def tbt_percentile(self, q: float) -> float:
        """The q-th percentile (q in [0, 100], linear) of all gaps between tokens (s)."""
        return _percentile("TBT", [g for r in self.requests for g in r.tbt_s], q)

    @property
    def prefix_hit_tokens(self) -> int:
        """Prompt tokens served from the prefix cache."""
        return sum(r.prefix_hit_tokens for r in self.requests)

    @property
    def prefix_hit_rate(self) -> float:
        """Hit prompt tokens / all prompt tokens."""
        total = sum(r.prompt_tokens for r in self.requests)
        return self.prefix_hit_tokens / total if total else 0.0


# --- the engine -------------------------------------------------------------------------


@dataclass
class _Seq:
    """A request being served: its tokens so far and how many of them are in the cache."""

    request: Request
    stats: RequestStats
    tokens: list[int]
    computed: int = 0  # tokens whose k, v are in the cache
    prefilling: bool = True  # feeding its prompt (or recomputing it) rather than decoding
    host: tuple[torch.Tensor, torch.Tensor, int] | None = None  # swapped-out k, v, length
    started: bool = False  # admitted once already (a resume is not a new prefix lookup)

    @property
    def key(self) -> int:
        """The sequence's id in the paged cache: its request id (unique within a run)."""
        return self.request.request_id

    @property
    def done(self) -> bool:
        return len(self.stats.tokens) >= self.request.max_new_tokens

    @property
    def pending(self) -> int:
        """Tokens to feed before the next logits: the rest of the prompt, or 1 when decoding."""
        return len(self.tokens) - self.computed


class _PrefixCache:
    """Full prompt blocks by hash chain: ``hash((previous hash, block tokens))`` -> block.

    The cache holds one reference to each block it indexes, so a block outlives the request
    that computed it; :meth:`evict` frees the least recently used one that no sequence uses.
    """

    def __init__(self, cache: PagedKVCache) -> None:
        self.cache = cache
        self.blocks: OrderedDict[int, int] = OrderedDict()

    def chain(self, tokens: list[int], full_blocks: int) -> list[int]:
        """Hashes of the first ``full_blocks`` blocks of ``tokens``."""
        size, h, out = self.cache.block_size, 0, []
        for i in range(full_blocks):
            h = hash((h, tuple(tokens[i * size : (i + 1) * size])))
            out.append(h)
        return out

    def lookup(self, tokens: list[int]) -> list[int]:
        """Blocks of the longest cached prefix, leaving at least the last token to compute."""
        hits = []
        for h in self.chain(tokens, (len(tokens) - 1) // self.cache.block_size):
            if h not in self.blocks:
                break
            self.blocks.move_to_end(h)  # most recently used
            hits.append(self.blocks[h])
        return hits

    def insert(self, seq_id: int, tokens: list[int], full_blocks: int) -> None:
        """Index the sequence's first ``full_blocks`` blocks (already computed)."""
        table = self.cache.block_tables[seq_id]
        for i, h in enumerate(self.chain(tokens, full_blocks)):
            if h not in self.blocks:
                self.cache.allocator.share(table[i])
                self.blocks[h] = table[i]

    def evictable(self) -> int:
        """Blocks held by the cache alone (freed by eviction)."""
        refs = self.cache.allocator.ref_counts
        return sum(refs[b] == 1 for b in self.blocks.values())

    def evict(self) -> bool:
        """Free the least recently used block no sequence holds; False if there is none."""
        refs = self.cache.allocator.ref_counts
        for h, block in self.blocks.items():
            if refs[block] == 1:
                del self.blocks[h]
                self.cache.allocator.free(block)
                return True
        return False

    def clear(self) -> None:
        for block in self.blocks.values():
            self.cache.allocator.free(block)
        self.blocks.clear()


def _is_token(t: object, vocab: int) -> bool:
    return isinstance(t, int) and not isinstance(t, bool) and 0 <= t < vocab


class Engine:
    """A serving engine over a :class:`~attn_course.model.GPT` and a paged KV cache.

    ``num_blocks`` blocks of ``block_size`` tokens per layer; at most ``max_batch``
    sequences per step; ``chunk_size``: tokens per step (decodes first, the rest to prompt
    chunks), None: prompts prefill whole in prefill-only steps; ``prefix_caching``: reuse
    cached full prompt blocks; ``host_blocks``: blocks of host memory for preempted
    sequences (0: recompute instead); ``clock``: "measured" (perf_counter seconds per step)
    or "model" (:data:`MODEL_STEP_S` + :data:`MODEL_TOKEN_S` per token, deterministic);
    ``attention``: decode rows through :func:`attn_course.paged.paged_attention_decode`
    ("torch") or :func:`attn_course.kernels.paged.paged_decode` ("triton"); ``threads``:
    torch CPU threads during :meth:`run` (None: as set), one by default because a small
    model's calls gain nothing from a second thread and, on a shared machine, a
    multi-threaded call waits for its slowest thread (:func:`attn_course.measure.torch_threads`).

    :attr:`cache`: the :class:`~attn_course.paged.PagedKVCache` (each :meth:`run` starts a
    fresh one and leaves every block free); :meth:`forward` runs the model over it.
    """

    def __init__(
        self,
        model: GPT,
        *,
        num_blocks: int,
        block_size: int = 16,
        max_batch: int = 8,
        chunk_size: int | None = None,
        prefix_caching: bool = False,
        host_blocks: int = 0,
        clock: str = "measured",
        attention: str = "torch",
        threads: int | None = 1,
    ) -> None:
        if not isinstance(model, GPT):
            raise ValueError(f"model must be an attn_course.model.GPT, got {type(model).__name__}")
        self.model = model
        self.num_blocks = check_count("num_blocks", num_blocks)
        self.block_size = check_count("block_size", block_size)
        self.max_batch = check_count("max_batch", max_batch)
        if chunk_size is not None and check_count("chunk_size", chunk_size) < max_batch:
            # every running sequence decodes one token per step, inside the budget
            raise ValueError(f"chunk_size must be >= max_batch ({max_batch}), got {chunk_size}")
        self.chunk_size = chunk_size
        self.prefix_caching = check_flag("prefix_caching", prefix_caching)
        self.host_blocks = check_count("host_blocks", host_blocks, 0)
        self.clock = check_choice("clock", clock, CLOCKS)
        self.attention = check_choice("attention", attention, ATTENTIONS)
        self.threads = None if threads is None else check_count("threads", threads)
        self.shape = gpt_shape(model)
        self.cache = self._new_cache()

    def _new_cache(self) -> PagedKVCache:
        """An empty paged cache in the model's dtype, on its device."""
        cfg, weight = self.model.cfg, self.model.tok.weight
        return PagedKVCache(cfg.layers, self.num_blocks, self.block_size, cfg.kv_heads,
                            cfg.head_dim, dtype=weight.dtype, device=weight.device)  # fmt: skip

    # --- the model forward over the paged cache -----------------------------------------

    @torch.no_grad()
    def forward(self, feeds: list[tuple[int, list[int], int]]) -> torch.Tensor:
        """One step of the model for a batch of ``(seq_id, new tokens, start position)``.

        All new tokens are projected together; per layer their k, v go into the paged
        cache, then single-token feeds attend through the paged decode attention and longer
        chunks attend to their sequence's gathered cache under a causal mask offset by the
        start. Each seq_id must be a sequence of :attr:`cache` holding ``start`` tokens.
        Returns the logits of each feed's last token, ``(len(feeds), vocab)``.
        """
        model, cache = self.model, self.cache
        cfg = model.cfg
        device = model.tok.weight.device
        if not feeds:
            raise ValueError("feeds must hold at least one (seq_id, tokens, start)")
        for seq, toks, start in feeds:
            if not toks or start != cache.lengths.get(seq, -1) or start + len(toks) > cfg.context:
                raise ValueError(
                    f"feeds: sequence {seq!r} must be in the cache with start = its cached length "
                    f"and 1 <= tokens, start + tokens <= context {cfg.context}"
                )
        ids = torch.tensor([t for _, toks, _ in feeds for t in toks], device=device)
        positions = torch.cat([torch.arange(s, s + len(t)) for _, t, s in feeds]).to(device)
        slots = torch.cat([cache.next_slots(seq, len(t)) for seq, t, _ in feeds])
        sizes = [len(t) for _, t, _ in feeds]
        ends = torch.tensor(sizes, device=device).cumsum(0)
        decode = [i for i, n in enumerate(sizes) if n == 1]
        decode_rows = (ends - 1)[decode]
        tables, lens = cache.batch_tables([feeds[i][0] for i in decode])
        x = model.tok(ids) + model.pos(positions)
        for layer, block in enumerate(model.blocks):
            attn, h = block.attn, block.norm1(x)
            q = attn.q(h).view(-1, cfg.heads, cfg.head_dim)
            k, v = attn.kv(h).view(-1, 2, cfg.kv_heads, cfg.head_dim).unbind(1)
            cache.write(layer, slots, k, v)
            y = torch.empty_like(q)
            if decode:
                y[decode_rows] = self._decode(q[decode_rows], layer, tables, lens)
            for i, (seq, _, start) in enumerate(feeds):
                if sizes[i] > 1:
                    rows = slice(int(ends[i]) - sizes[i], int(ends[i]))
                    y[rows] = self._prefill_attention(q[rows], seq, layer, start)
            x = x + attn.out(y.reshape(-1, cfg.d_model))
            x = x + block.mlp(block.norm2(x))
        return model.norm(x[ends - 1]) @ model.tok.weight.T

    def _decode(
        self, q: torch.Tensor, layer: int, tables: torch.Tensor, lens: torch.Tensor
    ) -> torch.Tensor:
        pools = self.cache.k_pools[layer], self.cache.v_pools[layer]
        if self.attention == "triton":
            from attn_course.kernels.paged import paged_decode  # the interpreter is slow to load

            return paged_decode(q, *pools, tables, lens)
        return paged_attention_decode(q, *pools, tables, lens)

    def _prefill_attention(self, q: torch.Tensor, seq: int, layer: int, start: int) -> torch.Tensor:
        """A prompt chunk at positions ``start ..``: token i sees cached positions <= start + i."""
        k, v = self.cache.gather(seq, layer)  # (start + chunk, kv_heads, head_dim)
        group = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        scores = torch.einsum("qhd,khd->hqk", q, k) / q.shape[-1] ** 0.5
        rows = torch.arange(q.shape[0], device=q.device)[:, None] + start
        cols = torch.arange(k.shape[0], device=q.device)[None, :]
        scores = scores.masked_fill(cols > rows, float("-inf"))
        return torch.einsum("hqk,khd->qhd", scores.softmax(-1), v)

    # --- the run --------------------------------------------------------------------------

    def run(self, requests: list[Request], policy: str = "continuous") -> ServingReport:
        """Serve ``requests`` under ``policy`` ("continuous", "static" or "sequential").

        Greedy decoding; each request produces ``max_new_tokens`` tokens. Returns the
        :class:`ServingReport`; at the end every block is back on the free list.
        """
        policy = check_choice("policy", policy, POLICIES)
        self._check_requests(requests)
        with torch_threads(self.threads):
            return self._serve(requests, policy)

    def _serve(self, requests: list[Request], policy: str) -> ServingReport:
        self.cache = self._new_cache()
        self._prefix = _PrefixCache(self.cache)
        self._report = ServingReport(policy, [], 0.0, [])
        self._host_used = 0
        self._running: list[_Seq] = []  # in admission order
        self._waiting: deque[_Seq] = deque()
        self._batch: set[int] = set()  # a static batch's members
        limit = 1 if policy == "sequential" else self.max_batch
        arrivals = deque(sorted(requests, key=lambda r: r.arrival_s))
        stats = {}
        clock = 0.0
        while arrivals or self._waiting or self._running:
            while arrivals and arrivals[0].arrival_s <= clock:
                r = arrivals.popleft()
                stats[r.request_id] = RequestStats(r.request_id, r.arrival_s, len(r.prompt))
                self._waiting.append(_Seq(r, stats[r.request_id], list(r.prompt)))
            if not self._running and not self._waiting:
                clock = max(clock, arrivals[0].arrival_s)  # idle: jump to the next arrival
                continue
            clock = self._step(clock, limit, static=policy != "continuous")
        self._prefix.clear()
        if self.cache.allocator.num_free != self.num_blocks:
            raise RuntimeError("blocks leaked: the engine's bookkeeping is wrong")
        report = self._report
        report.requests = [stats[r.request_id] for r in requests]
        report.clock_s = clock
        return report

    def _check_requests(self, requests: list[Request]) -> None:
        if not isinstance(requests, list | tuple) or not requests:
            raise ValueError("requests must be a non-empty list of Request")
        ids = set()
        for r in requests:
            if not isinstance(r, Request):
                raise ValueError(f"requests must hold Request objects, got {type(r).__name__}")
            if r.request_id in ids:
                raise ValueError(f"requests have a duplicate request_id {r.request_id}")
            ids.add(r.request_id)
            check_non_negative("arrival_s", r.arrival_s)
            check_count("max_new_tokens", r.max_new_tokens)
            if not r.prompt or any(not _is_token(t, self.model.cfg.vocab) for t in r.prompt):
                raise ValueError(f"request {r.request_id}: prompt must be >= 1 ids in [0, vocab)")
            total = len(r.prompt) + r.max_new_tokens
            if total - 1 > self.model.cfg.context:
                raise ValueError(
                    f"request {r.request_id}: prompt + max_new_tokens - 1 = {total - 1} exceeds "
                    f"the context of {self.model.cfg.context}"
                )
            if blocks_needed(total, self.block_size) > self.num_blocks:
                raise ValueError(
                    f"num_blocks ({self.num_blocks}) cannot hold request {r.request_id} "
                    f"({total} tokens in blocks of {self.block_size})"
                )

    def _available(self) -> int:
        """Blocks a request can take: free ones plus cached ones no sequence holds."""
        return self.cache.allocator.num_free + self._prefix.evictable()

    def _take(self, blocks: int) -> None:
        """Make ``blocks`` blocks free, evicting cached prefix blocks (LRU) if needed."""
        while self.cache.allocator.num_free < blocks and self._prefix.evict():
            self._report.prefix_evictions += 1

    # --- one step ---------------------------------------------------------------------------

    def _step(self, clock: float, limit: int, *, static: bool) -> float:
        t0 = time.perf_counter()
        # running decodes get their next slot first; new prompts only when nobody was
        # preempted for it (vLLM's order: never admit what forces a preemption)
        if not self._grow_decodes():
            self._admit(limit, static)
        feeds = self._schedule()
        seqs = [s for s, _ in feeds]
        decode = sum(not s.prefilling for s in seqs)
        prefill = sum(n for s, n in feeds if s.prefilling)
        self._count_prefill(feeds)
        if not feeds:
            raise RuntimeError("a step with nothing to run: the scheduler's bookkeeping is wrong")
        logits = self.forward(
            [(s.key, s.tokens[s.computed : s.computed + n], s.computed) for s, n in feeds]
        )
        next_ids = logits.argmax(-1).tolist()
        seconds = time.perf_counter() - t0
        if self.clock == "model":
            seconds = MODEL_STEP_S + MODEL_TOKEN_S * (decode + prefill)
        end = clock + seconds
        self._advance(feeds, next_ids, end)
        self._report.steps.append(StepRecord(clock, seconds, decode, prefill, len(feeds)))
        return end

    def _admit(self, limit: int, static: bool) -> None:
        """Admit from the head of the queue while blocks and batch slots allow (FCFS)."""
        forming = not self._running  # a static batch forms only when the last one is done
        if forming:
            self._batch = set()
        while self._waiting and len(self._running) < limit:
            seq = self._waiting[0]
            if static and not forming and seq.request.request_id not in self._batch:
                break  # a static batch runs until all its members finish
            hits = [] if seq.host or not self.prefix_caching else self._prefix.lookup(seq.tokens)
            refs = self.cache.allocator.ref_counts
            # blocks for its tokens and one more; shared hits cost only the ones that were
            # evictable (held by the cache alone) and will not be any more
            need = blocks_needed(len(seq.tokens) + 1, self.block_size) - len(hits)
            need += sum(refs[b] == 1 for b in hits)
            if _admit_blocks([need], self._available(), len(self._running), limit) == 0:
                break
            self._waiting.popleft()
            self._start(seq, hits)

    def _start(self, seq: _Seq, hits: list[int]) -> None:
        """Give ``seq`` its blocks: swapped back in, or shared prefix hits plus fresh ones."""
        cache, key = self.cache, seq.key
        self._batch.add(seq.request.request_id)
        missing = blocks_needed(len(seq.tokens) + 1, self.block_size) - len(hits)
        if seq.host is not None:  # resume from host memory: a hit of the offload tier
            k, v, length = seq.host
            self._take(missing)
            cache.swap_in(key, k, v, length)
            offload = self._report.offload
            offload.swapped_in_blocks += k.shape[1]
            offload.bytes_in += k.nbytes + v.nbytes
            offload.hits += 1
            self._host_used -= k.shape[1]
            seq.host = None
        else:
            cache.add_shared_sequence(key, hits, len(hits) * self.block_size)  # hits held now
            self._take(missing)
            seq.computed = len(hits) * self.block_size
            if not seq.started:
                seq.stats.prefix_hit_tokens = seq.computed
                if seq.computed:
                    flops = prefill_chunk_flops(self.shape, 0, seq.computed)
                    self._report.prefill_flops_saved += flops
        seq.started = True
        cache.reserve(key, len(seq.tokens) + 1)
        self._running.append(seq)

    def _schedule(self) -> list[tuple[_Seq, int]]:
        """The step's feeds ``(sequence, tokens)``: decodes first, then prompt chunks."""
        decoding = [s for s in self._running if not s.prefilling]
        prefilling = [s for s in self._running if s.prefilling]
        if self.chunk_size is None:
            # whole prompts, in a step of their own: the running decodes wait for it
            return [(s, s.pending) for s in prefilling] or [(s, 1) for s in decoding]
        feeds = [(s, 1) for s in decoding]
        budget = self.chunk_size - len(feeds)
        for seq in prefilling:
            if budget == 0:
                break
            n = min(seq.pending, budget)
            feeds.append((seq, n))
            budget -= n
        return feeds

    def _grow_decodes(self) -> bool:
        """A slot for each decoding sequence's next token, oldest first; True if any was
        preempted to make room."""
        before = self._report.offload.preemptions
        for seq in [s for s in self._running if not s.prefilling]:
            if seq in self._running:  # not preempted by an older one's growth
                self._grow(seq)
        return self._report.offload.preemptions > before

    def _grow(self, seq: _Seq) -> None:
        """Room for one more token of ``seq``; preempts the newest request if none is free."""
        key = seq.key
        while self.cache.lengths[key] >= len(self.cache.block_tables[key]) * self.block_size:
            if self._available() > 0:
                self._take(1)
                self.cache.reserve(key, self.cache.lengths[key] + 1)
                return
            victim = self._running[-1]
            self._preempt(victim)
            if victim is seq:
                return

    def _preempt(self, seq: _Seq) -> None:
        """Move ``seq`` out of the pool: to host memory if it fits, else drop its cache."""
        offload, key = self._report.offload, seq.key
        self._running.remove(seq)
        blocks = len(self.cache.block_tables[key])
        offload.preemptions += 1
        if self._host_used + blocks <= self.host_blocks:
            seq.host = self.cache.swap_out(key)
            self._host_used += blocks
            offload.swapped_out_blocks += blocks
            offload.bytes_out += seq.host[0].nbytes + seq.host[1].nbytes
        else:  # no room on the host: recompute prompt + generated tokens on resume
            self.cache.free_sequence(key)
            offload.recomputed_tokens += seq.computed
            offload.misses += 1
            seq.computed = 0
            seq.prefilling = True
        self._waiting.appendleft(seq)  # first in line to resume

    def _count_prefill(self, feeds: list[tuple[_Seq, int]]) -> None:
        for seq, n in feeds:
            if seq.prefilling:
                self._report.prefill_tokens_computed += n
                self._report.prefill_flops += prefill_chunk_flops(self.shape, seq.computed, n)

    def _advance(self, feeds: list[tuple[_Seq, int]], next_ids: list[int], now: float) -> None:
        """Book the fed tokens; a feed that reached the end of its tokens yields one token."""
        for (seq, n), token in zip(feeds, next_ids, strict=True):
            seq.computed += n
            if self.prefix_caching:
                full = min(seq.computed, len(seq.request.prompt)) // self.block_size
                self._prefix.insert(seq.key, seq.tokens, full)
            if seq.pending:
                continue  # a prompt chunk short of the end: no logits to use yet
            seq.prefilling = False
            seq.tokens.append(token)
            seq.stats.tokens.append(token)
            seq.stats.token_times_s.append(now)
            if seq.done:
                self._running.remove(seq)
                self.cache.free_sequence(seq.key)


# --- checking and summarising runs -----------------------------------------------------


@torch.no_grad()
def greedy_outputs(model: GPT, requests: list[Request]) -> dict[int, list[int]]:
    """Every request decoded alone by :func:`attn_course.kvcache.generate_cached`: the tokens
    any policy, chunking, prefix cache or offload setting must reproduce, by request id."""
    if not isinstance(requests, list) or not all(isinstance(r, Request) for r in requests):
        raise ValueError("requests must be a list of Request")
    outputs = {}
    for r in requests:
        tokens = generate_cached(model, torch.tensor([r.prompt]), r.max_new_tokens).tokens
        outputs[r.request_id] = tokens[0, len(r.prompt) :].tolist()
    return outputs


def long_prompt_rows(
    reports: dict[str, ServingReport], request_id: int
) -> list[dict[str, float | str]]:
    """What one (long) request does to the others, per report: its TTFT (ms) and the worst
    and p99 time between tokens (ms) of every *other* request."""
    rows = []
    for name, r in _check_reports(reports).items():
        mine = [s for s in r.requests if s.request_id == request_id]
        if not mine:
            raise ValueError(f"request_id {request_id} is not in report {name!r}")
        gaps = [g for s in r.requests if s.request_id != request_id for g in s.tbt_s]
        rows.append({
            "run": name,
            "its TTFT (ms)": 1e3 * mine[0].ttft_s,
            "others' worst TBT (ms)": 1e3 * max(gaps, default=0.0),
            "others' TBT p99 (ms)": 1e3 * _percentile("tbt", gaps, 99) if gaps else 0.0,
        })  # fmt: skip
    return rows


# --- tables and figures -----------------------------------------------------------------


def summary_rows(reports: dict[str, ServingReport]) -> list[dict[str, float | str]]:
    """One row per report: throughput (tokens/s), TTFT and TBT p50/p99 (ms), steps, clock (s),
    prefix hit rate and preemptions; the keys name their units."""
    rows = []
    for name, r in _check_reports(reports).items():
        rows.append(
            {
                "policy": name,
                "throughput (tok/s)": r.throughput_tokens_per_s,
                "TTFT p50 (ms)": 1e3 * r.ttft_percentile(50),
                "TTFT p99 (ms)": 1e3 * r.ttft_percentile(99),
                "TBT p50 (ms)": 1e3 * r.tbt_percentile(50),
                "TBT p99 (ms)": 1e3 * r.tbt_percentile(99),
                "steps": len(r.steps),
                "clock (s)": r.clock_s,
                "prefix hit rate": r.prefix_hit_rate,
                "preemptions": r.offload.preemptions,
            }
        )
    return rows


def _check_reports(reports: object) -> dict[str, ServingReport]:
    if not isinstance(reports, dict) or not reports:
        raise ValueError("reports must be a non-empty dict of name -> ServingReport")
    for name, r in reports.items():
        if not isinstance(r, ServingReport):
            raise ValueError(f"reports[{name!r}] must be a ServingReport, got {type(r).__name__}")
    return reports


def latency_figure(reports: dict[str, ServingReport]) -> go.Figure:
    """TTFT and TBT distributions per policy (box plots, ms, log axis)."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=("time to first token",
                                                           "time between tokens"))  # fmt: skip
    for i, (name, r) in enumerate(_check_reports(reports).items()):
        color = _COLORS[i % len(_COLORS)]
        ttft = [1e3 * s.ttft_s for s in r.requests]
        tbt = [1e3 * g for s in r.requests for g in s.tbt_s]
        for col, values in ((1, ttft), (2, tbt)):
            figure.add_trace(
                go.Box(y=values, name=name, marker_color=color, boxpoints="outliers",
                       showlegend=col == 1, legendgroup=name),
                row=1, col=col,
            )  # fmt: skip
    figure.update_yaxes(type="log", title_text="ms (log scale)")
    figure.update_xaxes(title_text="policy")
    figure.update_layout(template="plotly_white")
    return style(figure, "Latency per request: TTFT and TBT by scheduling policy", height=440)


_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def timeline_figure(report: ServingReport) -> go.Figure:
    """Per step: decode and prefill tokens (stacked bars) and the step's time (ms)."""
    if not isinstance(report, ServingReport):
        raise ValueError(f"report must be a ServingReport, got {type(report).__name__}")
    steps = list(range(len(report.steps)))
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                           subplot_titles=("tokens per step", "step time"))  # fmt: skip
    decode = [s.decode_tokens for s in report.steps]
    prefill = [s.prefill_tokens for s in report.steps]
    figure.add_trace(go.Bar(x=steps, y=decode, name="decode tokens"), row=1, col=1)
    figure.add_trace(go.Bar(x=steps, y=prefill, name="prefill tokens"), row=1, col=1)
    seconds = [1e3 * s.seconds for s in report.steps]
    figure.add_trace(go.Scatter(x=steps, y=seconds, name="step time", mode="lines"), row=2, col=1)
    figure.update_layout(barmode="stack", template="plotly_white")
    figure.update_yaxes(title_text="tokens", row=1, col=1)
    figure.update_yaxes(title_text="ms", row=2, col=1)
    figure.update_xaxes(title_text="step", row=2, col=1)
    title = f"Engine steps ({report.policy}): tokens by kind and time per step"
    return style(figure, title, height=520)

"""Notebook 08: the serving engine (attn_course/serving.py).

The hard requirement: whatever the policy, chunking, prefix caching or preemption, every
request's greedy tokens equal :func:`attn_course.kvcache.generate_cached` on its prompt
alone. The equality runs use a float64 model (argmax ties cannot flip on rounding) with
grouped-query attention, plus one float32 run. Schedules run on the deterministic "model"
clock, so no assertion depends on this machine's speed.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attn_course import cost
from attn_course.kvcache import generate_cached
from attn_course.model import GPT, GPTConfig
from attn_course.paged import PagedKVCache, blocks_needed
from attn_course.serving import (
    MODEL_STEP_S,
    MODEL_TOKEN_S,
    Engine,
    Request,
    ServingReport,
    admit,
    gpt_shape,
    greedy_outputs,
    latency_figure,
    long_prompt_rows,
    sample_workload,
    summary_rows,
    timeline_figure,
)

pytestmark = pytest.mark.nb08

VOCAB = 64


def _sharp(model: GPT, seed: int) -> GPT:
    """Larger weights than the init's std 0.02: attention far from uniform, so a wrong key,
    value or mask changes the argmax (the tests catch it) instead of vanishing in the noise."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.25)
    return model.eval()


@pytest.fixture(scope="module")
def gqa64() -> GPT:
    """2 layers, d 64, 4 query heads over 2 kv heads, float64."""
    cfg = GPTConfig(vocab=VOCAB, context=96, layers=2, d_model=64, heads=4, kv_heads=2, seed=1)
    return _sharp(GPT(cfg).double(), 1)


@pytest.fixture(scope="module")
def mha32() -> GPT:
    return _sharp(GPT(GPTConfig(vocab=VOCAB, context=96, layers=2, d_model=64, heads=4)), 2)


def _workload(n: int = 12, **kwargs) -> list[Request]:
    defaults = dict(vocab=VOCAB, prompt_range=(3, 30), output_range=(2, 10), rate_per_s=400.0)
    return sample_workload(n, **{**defaults, **kwargs})


def _reference(model: GPT, requests: list[Request]) -> dict[int, list[int]]:
    out = {}
    for r in requests:
        tokens = generate_cached(model, torch.tensor([r.prompt]), r.max_new_tokens).tokens
        out[r.request_id] = tokens[0, len(r.prompt) :].tolist()
    return out


@pytest.fixture(scope="module")
def workload() -> list[Request]:
    return _workload()


@pytest.fixture(scope="module")
def reference(gqa64, workload) -> dict[int, list[int]]:
    return _reference(gqa64, workload)


def _run(model: GPT, requests: list[Request], policy: str = "continuous", **kwargs):
    engine = Engine(model, **{"num_blocks": 48, "block_size": 8, "max_batch": 4,
                              "clock": "model", **kwargs})  # fmt: skip
    report = engine.run(requests, policy)
    assert engine.cache.allocator.num_free == engine.num_blocks  # every block returned
    assert all(n == 0 for n in engine.cache.allocator.ref_counts)
    return report


# --- the forward over the paged cache ------------------------------------------------------


def test_forward_over_the_paged_cache_matches_the_model(gqa64):
    engine = Engine(gqa64, num_blocks=8, block_size=4)
    prompt = [5, 7, 1, 9, 2, 3, 3, 8, 1, 0, 4]
    full, _ = gqa64(torch.tensor([prompt]))
    engine.cache.add_sequence(0)
    engine.cache.add_sequence(1)
    # a chunk of 6, then a chunk of 4 beside a one-token feed of another sequence, then 1
    first = engine.forward([(0, prompt[:6], 0)])
    engine.forward([(1, prompt[:1], 0)])
    mixed = engine.forward([(0, prompt[6:10], 6), (1, prompt[1:2], 1)])
    last = engine.forward([(0, prompt[10:], 10)])
    torch.testing.assert_close(first[0], full[0, 5])
    torch.testing.assert_close(mixed[0], full[0, 9])
    torch.testing.assert_close(mixed[1], gqa64(torch.tensor([prompt[:2]]))[0][0, 1])
    torch.testing.assert_close(last[0], full[0, 10])
    with pytest.raises(ValueError, match="feeds"):
        engine.forward([(0, [1], 3)])  # the sequence holds 11 tokens, not 3
    with pytest.raises(ValueError, match="feeds"):
        engine.forward([])


# --- greedy equality, the requirement -----------------------------------------------


@pytest.mark.parametrize("policy", ["continuous", "static", "sequential"])
def test_every_policy_reproduces_greedy_decoding(gqa64, workload, reference, policy):
    report = _run(gqa64, workload, policy)
    assert report.outputs == reference
    assert all(len(r.token_times_s) == len(r.tokens) for r in report.requests)


@pytest.mark.parametrize("policy", ["continuous", "static"])
def test_chunked_prefill_reproduces_greedy_and_bounds_each_step(gqa64, workload, reference,
                                                                policy):  # fmt: skip
    whole = _run(gqa64, workload, policy)
    chunked = _run(gqa64, workload, policy, chunk_size=8)
    assert chunked.outputs == reference
    assert max(s.tokens for s in chunked.steps) <= 8
    assert max(s.tokens for s in whole.steps) > 8  # the test would prove nothing otherwise
    # chunking moves no FLOPs: the same prompt tokens, the same lower triangle of scores
    shape = gpt_shape(gqa64)
    expected = sum(cost.prefill_chunk_flops(shape, 0, len(r.prompt)) for r in workload)
    assert chunked.prefill_flops == pytest.approx(expected, rel=1e-12)
    assert whole.prefill_flops == pytest.approx(expected, rel=1e-12)
    assert chunked.prefill_tokens_computed == sum(len(r.prompt) for r in workload)


def test_without_chunking_prefill_steps_stall_decodes(gqa64):
    # One long prompt arrives while others decode: unchunked, its prefill is a step of its own
    # (no decodes), so a running request waits one long step; chunked, every step is bounded.
    requests = _workload(6, output_range=(8, 12), long_prompt=80, rate_per_s=100.0)
    whole = _run(gqa64, requests)
    chunked = _run(gqa64, requests, chunk_size=16)
    assert not any(s.decode_tokens and s.prefill_tokens for s in whole.steps)
    assert any(s.decode_tokens and s.prefill_tokens for s in chunked.steps)
    assert whole.tbt_percentile(100) > chunked.tbt_percentile(100)
    assert chunked.outputs == whole.outputs == _reference(gqa64, requests)


def test_prefix_caching_reuses_blocks_and_saves_the_skipped_flops(gqa64):
    requests = _workload(10, shared_prefix=tuple(range(20)), prompt_range=(1, 12))
    plain = _run(gqa64, requests, num_blocks=64)
    cached = _run(gqa64, requests, num_blocks=64, prefix_caching=True)
    assert cached.outputs == plain.outputs == _reference(gqa64, requests)
    hits = [r.prefix_hit_tokens for r in cached.requests]
    assert sum(hits) > 0 and cached.prefix_hit_rate > 0 and plain.prefix_hit_rate == 0
    for r in cached.requests:  # whole blocks, and never the last prompt token
        assert r.prefix_hit_tokens % 8 == 0 and r.prefix_hit_tokens < r.prompt_tokens
    shape = gpt_shape(gqa64)
    saved = sum(cost.prefill_chunk_flops(shape, 0, h) for h in hits if h)
    assert cached.prefill_flops_saved == pytest.approx(saved, rel=1e-12)
    assert cached.prefill_flops + saved == pytest.approx(plain.prefill_flops, rel=1e-12)
    assert cached.prefill_tokens_computed + sum(hits) == plain.prefill_tokens_computed


def test_a_fully_cached_prompt_still_computes_its_last_token(gqa64):
    prompt = tuple(range(16))  # exactly two blocks of 8
    requests = [Request(0, 0.0, prompt, 3), Request(1, 1.0, prompt, 3)]
    report = _run(gqa64, requests, prefix_caching=True)
    assert [r.prefix_hit_tokens for r in report.requests] == [0, 8]
    assert report.outputs == _reference(gqa64, requests)


def test_prefix_cache_evicts_lru_blocks_when_the_pool_runs_out(gqa64):
    # Different prefixes, a pool too small to keep them all: cached blocks must be evicted.
    requests = [
        Request(i, 0.01 * i, tuple((7 * i + j) % VOCAB for j in range(17)) + (i,), 4)
        for i in range(8)
    ]
    report = _run(gqa64, requests, num_blocks=8, prefix_caching=True, max_batch=2)
    assert report.prefix_evictions > 0
    assert report.outputs == _reference(gqa64, requests)


@pytest.fixture(scope="module")
def crowded() -> list[Request]:
    """Long answers arriving together: 8 blocks of 8 tokens cannot hold 4 of them."""
    return _workload(8, prompt_range=(3, 20), output_range=(12, 20), rate_per_s=5000.0, seed=2)


@pytest.fixture(scope="module")
def crowded_reference(gqa64, crowded) -> dict[int, list[int]]:
    return _reference(gqa64, crowded)


def test_preemption_with_host_room_swaps_blocks_out_and_back(gqa64, crowded, crowded_reference):
    report = _run(gqa64, crowded, num_blocks=8, host_blocks=40)
    counts = report.offload
    assert counts.preemptions > 0 and counts.hits == counts.preemptions and counts.misses == 0
    assert counts.swapped_out_blocks == counts.swapped_in_blocks > 0
    cfg = gqa64.cfg
    block_bytes = 2 * cfg.layers * 8 * cfg.kv_heads * cfg.head_dim * 8  # K and V, float64
    assert counts.bytes_out == counts.bytes_in == counts.swapped_out_blocks * block_bytes
    assert counts.recomputed_tokens == 0
    assert report.outputs == crowded_reference


def test_preemption_without_host_room_recomputes(gqa64, crowded, crowded_reference):
    report = _run(gqa64, crowded, num_blocks=8)
    counts = report.offload
    assert counts.misses == counts.preemptions > 0 and counts.swapped_out_blocks == 0
    assert counts.recomputed_tokens > 0
    prompts = sum(len(r.prompt) for r in crowded)
    assert report.prefill_tokens_computed >= prompts + counts.recomputed_tokens
    assert report.outputs == crowded_reference


def test_a_small_host_tier_swaps_some_and_recomputes_the_rest(gqa64, crowded,
                                                             crowded_reference):  # fmt: skip
    report = _run(gqa64, crowded, num_blocks=8, host_blocks=3)
    counts = report.offload
    assert counts.hits > 0 and counts.misses > 0
    assert report.outputs == crowded_reference


def test_offload_with_chunks_and_prefix_cache_together(gqa64):
    requests = _workload(10, shared_prefix=tuple(range(9)))
    kwargs = dict(num_blocks=10, host_blocks=6, chunk_size=8, prefix_caching=True)
    report = _run(gqa64, requests, **kwargs)
    assert report.offload.preemptions > 0
    assert report.outputs == _reference(gqa64, requests)


def test_float32_and_multi_head_attention_reproduce_greedy(mha32, workload):
    report = _run(mha32, workload, chunk_size=8, prefix_caching=True)
    assert report.outputs == _reference(mha32, workload)


def test_triton_decode_attention_reproduces_greedy(mha32):
    requests = _workload(3, prompt_range=(2, 6), output_range=(2, 3))
    report = _run(mha32, requests, attention="triton", num_blocks=8)
    assert report.outputs == _reference(mha32, requests)


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 10**6),
    policy=st.sampled_from(["continuous", "static", "sequential"]),
    num_blocks=st.integers(6, 24),
    chunk_size=st.sampled_from([None, 4, 9]),
    prefix_caching=st.booleans(),
    host_blocks=st.sampled_from([0, 3, 50]),
)
def test_any_setting_reproduces_greedy_and_returns_every_block(
    gqa64, seed, policy, num_blocks, chunk_size, prefix_caching, host_blocks
):
    requests = _workload(5, shared_prefix=(3, 1, 4, 1, 5, 9, 2, 6, 5), prompt_range=(1, 20),
                         rate_per_s=1000.0, seed=seed)  # fmt: skip
    report = _run(gqa64, requests, policy, num_blocks=num_blocks, chunk_size=chunk_size,
                  prefix_caching=prefix_caching, host_blocks=host_blocks)  # fmt: skip
    assert report.outputs == _reference(gqa64, requests)


# --- the schedule -----------------------------------------------------------------------


def test_model_clock_is_deterministic_and_counts_tokens(gqa64, workload):
    a, b = _run(gqa64, workload), _run(gqa64, workload)
    assert a.steps == b.steps
    assert [r.token_times_s for r in a.requests] == [r.token_times_s for r in b.requests]
    for s in a.steps:
        assert s.seconds == pytest.approx(MODEL_STEP_S + MODEL_TOKEN_S * s.tokens)
    assert a.throughput_tokens_per_s == pytest.approx(a.generated_tokens / a.clock_s)
    for r in a.requests:
        assert r.latency_s == pytest.approx(r.token_times_s[-1] - r.arrival_s)
        assert r.ttft_s > 0 and all(g > 0 for g in r.tbt_s)


def test_clock_jumps_over_idle_gaps_and_never_runs_a_request_early(gqa64):
    requests = [Request(0, 0.0, (1, 2, 3), 3), Request(1, 5.0, (4, 5), 3)]
    report = _run(gqa64, requests, clock="measured")
    assert report.clock_s >= 5.0
    late = report.requests[1]
    assert late.token_times_s[0] > 5.0 and late.ttft_s > 0
    assert report.clock_s < 5.0 + 60  # jumped, did not wait


def test_static_batches_wait_for_the_whole_batch(gqa64, workload):
    static = _run(gqa64, workload, "static")
    continuous = _run(gqa64, workload, "continuous")
    sequential = _run(gqa64, workload, "sequential")
    assert max(s.running for s in static.steps) == 4
    assert max(s.running for s in sequential.steps) == 1
    # the batch shrinks as its members finish and only refills once it is empty
    sizes = [s.running for s in static.steps]
    refills = [i for i in range(1, len(sizes)) if sizes[i] > sizes[i - 1]]
    assert all(sizes[i - 1] == 0 or static.steps[i].prefill_tokens for i in refills)
    assert len(continuous.steps) < len(static.steps) < len(sequential.steps)


def test_engine_admits_what_admit_allows(gqa64):
    prompts = [(1,) * 15, (2,) * 7, (3,) * 20, (4,) * 3]
    requests = [Request(i, 0.0, p, 2) for i, p in enumerate(prompts)]
    for num_blocks in (4, 5, 6, 8):
        report = _run(gqa64, requests, num_blocks=num_blocks, block_size=8)
        expected = admit([len(p) for p in prompts], num_blocks, 8, max_batch=4)
        assert report.steps[0].running == expected


# --- admit, the exercise's reference --------------------------------------------------------


def test_admit_counts_the_first_token_and_rounds_blocks_up():
    assert admit([16], 2, 16, max_batch=8) == 1  # 16 + 1 tokens -> 2 blocks
    assert admit([16], 1, 16, max_batch=8) == 0
    assert admit([15], 1, 16, max_batch=8) == 1
    assert admit([1, 1, 1], 3, 16, max_batch=8) == 3
    assert admit([], 5, 16, max_batch=8) == 0


def test_admit_is_head_of_line_and_bounded_by_the_batch():
    assert admit([4, 100, 4], 3, 16, max_batch=8) == 1  # the big one blocks the small one
    assert admit([4, 4, 4, 4], 10, 16, max_batch=3) == 3
    assert admit([4, 4, 4, 4], 10, 16, running=2, max_batch=3) == 1
    assert admit([4], 10, 16, running=3, max_batch=3) == 0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(prompt_lengths=[0]), "prompt_lengths"),
        (dict(prompt_lengths=5), "prompt_lengths"),
        (dict(free_blocks=-1), "free_blocks"),
        (dict(block_size=0), "block_size"),
        (dict(max_batch=0), "max_batch"),
        (dict(running=9), "running"),
    ],
)
def test_admit_rejects_bad_input_by_name(kwargs, name):
    args = {"prompt_lengths": [4], "free_blocks": 4, "block_size": 16, "max_batch": 8, **kwargs}
    with pytest.raises(ValueError, match=name):
        admit(**args)


# --- workloads, shapes, bad input -----------------------------------------------------------


def test_sample_workload_is_seeded_and_in_range():
    a = sample_workload(20, vocab=50, shared_prefix=(1, 2, 3), seed=3, long_prompt=70)
    assert a == sample_workload(20, vocab=50, shared_prefix=(1, 2, 3), seed=3, long_prompt=70)
    assert a != sample_workload(20, vocab=50, shared_prefix=(1, 2, 3), seed=4, long_prompt=70)
    assert len(a) == 21 and a[0].arrival_s == 0
    assert [r.arrival_s for r in a] == sorted(r.arrival_s for r in a)
    assert {r.request_id for r in a} == set(range(21))
    long = next(r for r in a if r.request_id == 20)
    assert len(long.prompt) == 70
    for r in a:
        assert r.prompt[:3] == (1, 2, 3) and all(0 <= t < 50 for t in r.prompt)
        assert r is long or 3 + 8 <= len(r.prompt) <= 3 + 48
        assert 4 <= r.max_new_tokens <= 24


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(num_requests=0), "num_requests"),
        (dict(rate_per_s=0.0), "rate_per_s"),
        (dict(prompt_range=(9, 3)), "prompt_range"),
        (dict(output_range=(0, 3)), "output_range"),
        (dict(shared_prefix=(64,)), "shared_prefix"),
        (dict(long_prompt=0), "long_prompt"),
    ],
)
def test_sample_workload_rejects_bad_input_by_name(kwargs, name):
    with pytest.raises(ValueError, match=name):
        sample_workload(**{"num_requests": 4, "vocab": 64, **kwargs})


def test_gpt_shape_gives_the_cost_model_the_course_gpt(gqa64):
    shape = gpt_shape(gqa64)
    cfg = gqa64.cfg
    d, kv, n = cfg.d_model, cfg.kv_heads * cfg.head_dim, 10
    # per layer: q, k, v, out projections, the 4d FFN, causal scores (2 n² d)
    hand = cfg.layers * (2 * n * (2 * d * d + 2 * d * kv) + 2 * n * 8 * d * d + 2 * n * n * d)
    assert cost.prefill_chunk_flops(shape, 0, n) == hand
    assert (shape.d_ff, shape.tied_embeddings, shape.norm) == (4 * d, True, "layernorm")
    with pytest.raises(ValueError, match="model"):
        gpt_shape("Llama-3-8B")


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(num_blocks=0), "num_blocks"),
        (dict(chunk_size=2), "chunk_size"),
        (dict(clock="wall"), "clock"),
        (dict(attention="cuda"), "attention"),
        (dict(host_blocks=-1), "host_blocks"),
        (dict(prefix_caching=1), "prefix_caching"),
        (dict(threads=0), "threads"),
    ],
)
def test_engine_rejects_bad_settings_by_name(gqa64, kwargs, name):
    with pytest.raises(ValueError, match=name):
        Engine(gqa64, **{"num_blocks": 8, "max_batch": 4, **kwargs})


def test_run_rejects_requests_it_cannot_serve(gqa64):
    engine = Engine(gqa64, num_blocks=2, block_size=8)
    with pytest.raises(ValueError, match="policy"):
        engine.run([Request(0, 0.0, (1,), 1)], "fastest")
    with pytest.raises(ValueError, match="num_blocks"):
        engine.run([Request(0, 0.0, (1,) * 20, 4)])
    with pytest.raises(ValueError, match="context"):
        Engine(gqa64, num_blocks=64).run([Request(0, 0.0, (1,) * 90, 10)])
    with pytest.raises(ValueError, match="duplicate"):
        engine.run([Request(0, 0.0, (1,), 1), Request(0, 0.0, (2,), 1)])
    with pytest.raises(ValueError, match="vocab"):
        engine.run([Request(0, 0.0, (VOCAB,), 1)])
    with pytest.raises(ValueError, match="vocab"):
        engine.run([Request(0, 0.0, (1.0,), 1)])


# --- the paged cache's engine methods --------------------------------------------------------


def test_swap_out_and_in_restore_a_sequence():
    cache = PagedKVCache(2, 6, 4, 2, 8, dtype=torch.float64)
    cache.add_sequence(0)
    k, v = torch.randn(2, 2, 7, 2, 8, dtype=torch.float64).unbind(0)
    cache.append(0, k, v)
    before = [cache.gather(0, layer) for layer in range(2)]
    hk, hv, length = cache.swap_out(0)
    assert cache.allocator.num_free == 6 and hk.shape == (2, 2, 4, 2, 8) and length == 7
    cache.add_sequence(9)  # take block 0 so the sequence comes back elsewhere
    cache.append(9, k[:, :1], v[:, :1])
    cache.swap_in(0, hk, hv, length)
    for layer in range(2):
        for a, b in zip(before[layer], cache.gather(0, layer), strict=True):
            torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="k must"):
        cache.swap_in(1, hk[0], hv, length)


def test_reserve_and_shared_starts_keep_the_reference_counts():
    cache = PagedKVCache(1, 6, 4, 1, 8)
    cache.add_sequence(0)
    cache.reserve(0, 9)  # 3 blocks now, none written yet
    assert len(cache.block_tables[0]) == 3 and cache.lengths[0] == 0
    cache.append(0, torch.ones(1, 8, 1, 8), torch.ones(1, 8, 1, 8))
    assert len(cache.block_tables[0]) == 3  # the reserved blocks were used, none added
    cache.add_shared_sequence(1, cache.block_tables[0][:2], 8)
    assert [cache.allocator.ref_counts[b] for b in cache.block_tables[0]] == [2, 2, 1]
    with pytest.raises(ValueError, match="length"):
        cache.add_shared_sequence(2, cache.block_tables[0][:2], 7)
    with pytest.raises(ValueError, match="tokens"):
        cache.reserve(1, 100)
    assert blocks_needed(9, 4) == 3


# --- tables and figures ---------------------------------------------------------------------


def test_summary_rows_and_figures(gqa64, workload):
    reports = {p: _run(gqa64, workload, p) for p in ("continuous", "static")}
    rows = summary_rows(reports)
    assert [r["policy"] for r in rows] == ["continuous", "static"]
    for row, report in zip(rows, reports.values(), strict=True):
        assert row["TTFT p50 (ms)"] == pytest.approx(1e3 * report.ttft_percentile(50))
        assert row["TBT p99 (ms)"] >= row["TBT p50 (ms)"] > 0
        assert row["throughput (tok/s)"] == pytest.approx(report.throughput_tokens_per_s)
    fig = latency_figure(reports)
    assert len(fig.data) == 4 and fig.layout.title.text
    assert "ms" in fig.layout.yaxis.title.text and fig.layout.yaxis.type == "log"
    timeline = timeline_figure(reports["continuous"])
    assert {t.name for t in timeline.data} == {"decode tokens", "prefill tokens", "step time"}
    assert timeline.layout.title.text
    with pytest.raises(ValueError, match="reports"):
        summary_rows({})
    with pytest.raises(ValueError, match="q"):
        reports["static"].ttft_percentile(101)
    with pytest.raises(ValueError, match="TBT"):
        ServingReport("x", [], 1.0, []).tbt_percentile(50)


def test_greedy_outputs_is_the_reference_and_long_prompt_rows_single_one_request_out(
    gqa64, workload, reference
):
    assert greedy_outputs(gqa64, workload) == reference
    with pytest.raises(ValueError, match="requests"):
        greedy_outputs(gqa64, [("not", "a request")])
    long = sample_workload(6, vocab=VOCAB, prompt_range=(3, 10), output_range=(3, 6),
                           rate_per_s=400.0, long_prompt=60, seed=3)  # fmt: skip
    reports = {"whole": _run(gqa64, long, "continuous"),
               "chunked": Engine(gqa64, num_blocks=64, chunk_size=16, clock="model").run(long)}
    rows = long_prompt_rows(reports, long[-1].request_id)
    for row, report in zip(rows, reports.values(), strict=True):
        mine = next(r for r in report.requests if r.request_id == long[-1].request_id)
        others = [g for r in report.requests if r is not mine for g in r.tbt_s]
        assert row["its TTFT (ms)"] == pytest.approx(1e3 * mine.ttft_s)
        assert row["others' worst TBT (ms)"] == pytest.approx(1e3 * max(others))
        assert row["others' worst TBT (ms)"] >= row["others' TBT p99 (ms)"]
    with pytest.raises(ValueError, match="request_id"):
        long_prompt_rows(reports, 999)

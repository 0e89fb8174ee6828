"""Notebook 07: the paged KV cache, its simulation, the paged-decode kernel, the budget widget.

Kernel tolerance, FlashAttention-style: the kernel is compared with a float64 reference; its
error must be <= 2 x (error of torch's reference run on the same inputs rounded to the
input dtype) + a small absolute floor.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import attn_course.kernels  # noqa: F401  (fixes the kernel mode before anything imports triton)
from attn_course import cost
from attn_course.kernels.paged import paged_decode
from attn_course.kvcache import max_batch
from attn_course.paged import (
    BlockAllocator,
    PagedKVCache,
    blocks_needed,
    dense_decode_attention,
    fragmentation,
    fragmentation_figure,
    paged_attention_decode,
    prefix_sharing,
    prefix_sharing_figure,
    sample_requests,
)
from attn_course.triton_mode import kernel_device
from attn_course.ui.kvcache import KVBudgetCalculator

pytestmark = pytest.mark.nb07

LAYERS, KV_HEADS, HEAD_DIM = 2, 2, 16


def _tokens(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shape = (LAYERS, n, KV_HEADS, HEAD_DIM)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g)


def _cache(num_blocks: int = 16, block_size: int = 4) -> PagedKVCache:
    return PagedKVCache(LAYERS, num_blocks, block_size, KV_HEADS, HEAD_DIM)


def _owned_blocks(cache: PagedKVCache) -> list[int]:
    return [b for table in cache.block_tables.values() for b in table]


# --- allocator --------------------------------------------------------------------------


def test_allocator_hands_out_each_block_once_and_takes_them_back():
    alloc = BlockAllocator(5)
    blocks = [alloc.allocate() for _ in range(5)]
    assert sorted(blocks) == [0, 1, 2, 3, 4] and alloc.num_free == 0
    with pytest.raises(ValueError, match="num_blocks"):
        alloc.allocate()
    for b in blocks:
        alloc.free(b)
    assert alloc.num_free == 5 and alloc.ref_counts == [0] * 5
    with pytest.raises(ValueError, match="free"):
        alloc.free(0)  # double free


def test_shared_block_returns_only_when_last_owner_frees():
    alloc = BlockAllocator(2)
    b = alloc.allocate()
    alloc.share(b)
    alloc.free(b)
    assert alloc.num_free == 1  # still owned once
    alloc.free(b)
    assert alloc.num_free == 2


def test_sequences_never_share_a_block_without_a_fork_and_free_restores_the_pool():
    cache = _cache(num_blocks=10, block_size=4)
    for seq, n in enumerate([5, 9, 3]):  # 2 + 3 + 1 = 6 blocks
        cache.add_sequence(seq)
        cache.append(seq, *_tokens(n, seq))
    owned = _owned_blocks(cache)
    assert len(owned) == len(set(owned)) == 6
    assert cache.allocator.num_free == 10 - 6
    for seq in range(3):
        cache.free_sequence(seq)
    assert cache.allocator.num_free == 10 and sorted(cache.allocator._free) == list(range(10))


def test_out_of_blocks_names_the_parameter():
    cache = _cache(num_blocks=2, block_size=4)
    cache.add_sequence(0)
    with pytest.raises(ValueError, match="num_blocks"):
        cache.append(0, *_tokens(9, 0))  # 9 tokens need ceil(9/4) = 3 blocks


_OPERATIONS = st.lists(
    st.tuples(st.sampled_from(["append", "fork", "free"]), st.integers(0, 5), st.integers(1, 6)),
    max_size=25,
)


@settings(max_examples=40, deadline=None)
@given(_OPERATIONS)
def test_reference_counts_match_the_block_tables_after_any_operations(operations):
    """Invariant: a block's reference count = how many tables hold it; the rest are free."""
    cache = _cache(num_blocks=64, block_size=4)
    contents: dict[int, torch.Tensor] = {}  # what each sequence should hold (layer 0 keys)
    next_id = 0
    for op, pick_seq, n in operations:
        live = sorted(cache.block_tables)
        if op == "append" or not live:
            if not live or pick_seq % 2:
                cache.add_sequence(next_id)
                contents[next_id] = torch.empty(0, KV_HEADS, HEAD_DIM)
                live, next_id = [next_id], next_id + 1
            seq = live[pick_seq % len(live)]
            k, v = _tokens(n, next_id * 10 + n)
            cache.append(seq, k, v)
            contents[seq] = torch.cat([contents[seq], k[0]])
        elif op == "fork":
            parent = live[pick_seq % len(live)]
            cache.fork(parent, next_id)
            contents[next_id] = contents[parent].clone()
            next_id += 1
        else:
            seq = live[pick_seq % len(live)]
            cache.free_sequence(seq)
            del contents[seq]
        owned = _owned_blocks(cache)
        for block in range(64):
            assert cache.allocator.ref_counts[block] == owned.count(block)
        assert cache.allocator.num_free == 64 - len(set(owned))
        for seq, expected in contents.items():
            assert torch.equal(cache.gather(seq, 0)[0], expected)  # no write leaked


# --- gather and decode attention --------------------------------------------------------


def test_gather_returns_the_appended_tokens_in_order():
    cache = _cache(block_size=4)
    cache.add_sequence(7)
    k1, v1 = _tokens(3, 1)
    k2, v2 = _tokens(6, 2)  # crosses two block boundaries (3 -> 9 tokens)
    cache.append(7, k1, v1)
    cache.append(7, k2, v2)
    assert len(cache.block_tables[7]) == blocks_needed(9, 4) == 3
    for layer in range(LAYERS):
        k, v = cache.gather(7, layer)
        assert torch.equal(k, torch.cat([k1[layer], k2[layer]]))
        assert torch.equal(v, torch.cat([v1[layer], v2[layer]]))


def test_paged_reference_equals_dense_attention_with_gqa():
    cache = _cache(num_blocks=20, block_size=4)
    lengths = [1, 4, 5, 13]
    for seq, n in enumerate(lengths):
        cache.add_sequence(seq)
        cache.append(seq, *_tokens(n, 10 + seq))
    tables, lens = cache.batch_tables(list(range(4)))
    q = torch.randn(4, 6, HEAD_DIM, generator=torch.Generator().manual_seed(0))  # 6 heads, 2 kv
    out = paged_attention_decode(q, cache.k_pools[1], cache.v_pools[1], tables, lens)
    for seq in range(4):
        k, v = cache.gather(seq, 1)
        # dense attention written out: head h reads kv head h // 3
        kk, vv = k.repeat_interleave(3, dim=1), v.repeat_interleave(3, dim=1)
        p = (torch.einsum("hd,nhd->hn", q[seq], kk) / math.sqrt(HEAD_DIM)).softmax(-1)
        torch.testing.assert_close(out[seq], torch.einsum("hn,nhd->hd", p, vv))
        torch.testing.assert_close(out[seq], dense_decode_attention(q[seq], k, v))


def test_one_token_context_returns_its_value():
    # softmax over one key is 1, so the output is that key's value exactly.
    cache = _cache()
    cache.add_sequence(0)
    k, v = _tokens(1, 3)
    cache.append(0, k, v)
    tables, lens = cache.batch_tables([0])
    out = paged_attention_decode(torch.randn(1, 2, HEAD_DIM), cache.k_pools[0], cache.v_pools[0],
                                 tables, lens)  # fmt: skip
    torch.testing.assert_close(out[0], v[0, 0])


# --- copy-on-write ----------------------------------------------------------------------


def test_fork_shares_blocks_and_a_write_copies_only_the_partial_last_block():
    cache = _cache(num_blocks=10, block_size=4)
    cache.add_sequence(0)
    k, v = _tokens(6, 0)  # blocks: [full, 2 of 4 filled]
    cache.append(0, k, v)
    cache.fork(0, 1)
    assert cache.block_tables[1] == cache.block_tables[0]
    assert cache.allocator.num_used == 2  # nothing copied yet
    parent_before = [t.clone() for t in cache.gather(0, 0)]

    k_new, v_new = _tokens(1, 99)
    cache.append(1, k_new, v_new)
    # The full first block stays shared; the partial one was copied: 3 blocks in use.
    assert cache.block_tables[1][0] == cache.block_tables[0][0]
    assert cache.block_tables[1][1] != cache.block_tables[0][1]
    assert cache.allocator.num_used == 3
    for before, after in zip(parent_before, cache.gather(0, 0), strict=True):
        assert torch.equal(before, after)  # the parent did not change
    child_k, _ = cache.gather(1, 0)
    assert torch.equal(child_k, torch.cat([k[0], k_new[0]]))
    # The parent writes its own 7th token: the child's 7th token must survive it.
    k_parent, v_parent = _tokens(1, 100)
    cache.append(0, k_parent, v_parent)
    assert torch.equal(cache.gather(1, 0)[0], child_k)
    assert torch.equal(cache.gather(0, 0)[0], torch.cat([k[0], k_parent[0]]))
    cache.free_sequence(0)
    cache.free_sequence(1)
    assert cache.allocator.num_free == 10


def test_measured_blocks_of_a_shared_prompt_match_prefix_sharing():
    block, prefix, suffixes = 4, 10, [3, 0, 7]
    cache = _cache(num_blocks=40, block_size=block)
    cache.add_sequence(0)
    cache.append(0, *_tokens(prefix, 0))
    for i, s in enumerate(suffixes, start=1):
        cache.fork(0, i)
        if s:
            cache.append(i, *_tokens(s, i))
    cache.free_sequence(0)  # the prompt lives on in its forks
    report = prefix_sharing(prefix, suffixes, block)
    # shared: 2 full prompt blocks + ceil((2+3)/4) + ceil(2/4) + ceil((2+7)/4) = 2+2+1+3 = 8
    # private: ceil(13/4) + ceil(10/4) + ceil(17/4) = 4 + 3 + 5 = 12
    assert (report.shared_blocks, report.private_blocks) == (8, 12)
    assert cache.allocator.num_used == report.shared_blocks
    assert report.saving == pytest.approx(1 - 8 / 12)


# --- simulation -------------------------------------------------------------------------


def test_fragmentation_hand_checked():
    # lengths 5 and 12; block 4 -> 8 + 12 = 20 slots; max_len = 3 + 9 = 12 -> 24 slots.
    report = fragmentation([(2, 3), (3, 9)], block_size=4)
    assert (report.used, report.paged_reserved, report.contiguous_reserved) == (17, 20, 24)
    assert report.paged_waste == pytest.approx(3 / 20)
    assert report.contiguous_waste == pytest.approx(7 / 24)
    assert fragmentation([(2, 3)], block_size=1).paged_waste == 0


def test_paging_wastes_less_than_contiguous_on_sampled_requests():
    requests = sample_requests(200, 512, 512, seed=0)
    assert requests == sample_requests(200, 512, 512, seed=0)
    report = fragmentation(requests, 16)
    # Per request at most 15 wasted slots: waste < 15 * 200 / used.
    assert report.paged_waste < 15 * 200 / report.used
    assert report.contiguous_waste > 0.4 > report.paged_waste
    fig = fragmentation_figure(requests)
    assert fig.layout.xaxis.title.text and "%" in fig.layout.yaxis.title.text
    assert prefix_sharing_figure(512, [s for _, s in requests]).layout.title.text


# --- kernel -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize(("heads", "kv_heads", "head_dim"), [(4, 2, 16), (4, 4, 32), (8, 1, 64)])
def test_kernel_matches_the_reference(dtype, heads, kv_heads, head_dim):
    g = torch.Generator().manual_seed(1)
    num_blocks, block_size = 12, 4
    k_pool = torch.randn(num_blocks, block_size, kv_heads, head_dim, generator=g)
    v_pool = torch.randn(num_blocks, block_size, kv_heads, head_dim, generator=g)
    q = torch.randn(3, heads, head_dim, generator=g)
    tables = torch.tensor([[7, 2, 0], [11, 5, 9], [3, 0, 0]], dtype=torch.int32)
    lens = torch.tensor([6, 12, 1], dtype=torch.int32)  # partial, full, one token
    exact = paged_attention_decode(q.double(), k_pool.double(), v_pool.double(), tables, lens)
    rounded = [t.to(dtype) for t in (q, k_pool, v_pool)]
    torch_err = (paged_attention_decode(*rounded, tables, lens).double() - exact).abs().max()
    device = kernel_device()
    out = paged_decode(*(t.to(device) for t in rounded), tables.to(device), lens.to(device))
    err = (out.cpu().double() - exact).abs().max()
    assert out.dtype == dtype and out.shape == q.shape
    assert err <= 2 * torch_err + 1e-5


def test_kernel_validates_before_launch():
    q = torch.randn(1, 2, HEAD_DIM)
    pool = torch.randn(4, 4, 2, HEAD_DIM)
    tables = torch.zeros(1, 2, dtype=torch.int32)
    with pytest.raises(ValueError, match="context_lens"):
        paged_decode(q, pool, pool, tables, torch.tensor([9], dtype=torch.int32))  # > 2*4
    with pytest.raises(ValueError, match="block_tables"):
        paged_decode(q, pool, pool, tables + 4, torch.tensor([3], dtype=torch.int32))
    with pytest.raises(ValueError, match="block_size"):
        paged_decode(q, *[torch.randn(4, 3, 2, HEAD_DIM)] * 2, tables,
                     torch.tensor([3], dtype=torch.int32))  # fmt: skip
    with pytest.raises(ValueError, match="kv_heads"):
        paged_decode(torch.randn(1, 3, HEAD_DIM), pool, pool, tables,
                     torch.tensor([3], dtype=torch.int32))  # fmt: skip


def test_cache_validation_names_parameters():
    with pytest.raises(ValueError, match="block_size"):
        PagedKVCache(1, 4, 0, 1, 16)
    cache = _cache()
    with pytest.raises(ValueError, match="seq_id"):
        cache.append(3, *_tokens(1, 0))
    cache.add_sequence(0)
    with pytest.raises(ValueError, match="k must have shape"):
        cache.append(0, torch.randn(LAYERS, 1, 3, HEAD_DIM), torch.randn(LAYERS, 1, 3, HEAD_DIM))
    with pytest.raises(ValueError, match="max_len"):
        fragmentation([(4, 4)], 4, max_len=7)


# --- widget -----------------------------------------------------------------------------


def test_budget_widget_numbers_equal_cost():
    calc = KVBudgetCalculator()
    calc.set(model="Llama-3-8B", hardware="H100-SXM5-80GB", kv_heads=8, dtype="int4",
             context=8192, batch=4)  # fmt: skip
    assert calc.error == ""
    kv = cost.model_kv_cache_bytes("Llama-3-8B", 8192, batch=4, dtype="int4", kv_heads=8)
    # Llama-3-8B: 2 * 32 layers * 8 kv heads * 128 * 8192 tokens * 4 * 0.5 bytes = 1 GiB
    assert calc.numbers["kv_bytes"] == kv == 2 * 32 * 8 * 128 * 8192 * 4 * 0.5
    weights = cost.weight_bytes("Llama-3-8B", "bfloat16")
    assert calc.numbers["weights_bytes"] == weights
    assert calc.numbers["free_bytes"] == 80 * 2**30 - weights - kv
    per_seq = kv / 4
    assert calc.numbers["max_batch"] == math.floor((80 * 2**30 - weights) / per_seq)
    assert calc.numbers["max_batch"] == max_batch("Llama-3-8B", "H100-SXM5-80GB", 8192,
                                                  kv_heads=8, dtype="int4")  # fmt: skip
    # MQA caches 1/8 of GQA-8 per sequence, so about 8x the batch fits.
    assert calc.numbers["max_batch_mqa"] // 8 == calc.numbers["max_batch"]
    assert list(calc.trace("kv").y) == [4 * kv, kv, kv / 8]  # MHA has 32 kv heads

"""Notebook 08: split-K decode (FlashDecoding): the logsumexp merge, the reference, the kernels.

Kernel tolerance as in tests/test_paged.py, FlashAttention-style: the kernel is compared with
a float64 reference; its error must be <= 2 x (error of torch's reference run on the same
inputs rounded to the input dtype) + a small absolute floor (1e-5).
"""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import attn_course.kernels  # noqa: F401  (fixes the kernel mode before anything imports triton)
from attn_course import splitk
from attn_course.kernels import splitk as kernels_splitk
from attn_course.kernels.paged import paged_decode
from attn_course.kernels.splitk import default_splits, split_decode, split_decode_partials
from attn_course.kvcache import paged_decode_grid_cost
from attn_course.paged import paged_attention_decode
from attn_course.presets import hardware_names
from attn_course.splitk import (
    SM_COUNTS,
    decode_grid_rows,
    merge_many,
    merge_partials,
    partial_attention,
    split_decode_reference,
    split_ranges,
)
from attn_course.tiling import ON_CHIP_MEMORY
from attn_course.triton_mode import kernel_device

pytestmark = pytest.mark.nb08

F64 = torch.float64


def _qkv(n: int, heads: int = 4, kv_heads: int = 2, d: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(heads, d, generator=g, dtype=F64)
    return q, *(torch.randn(n, kv_heads, d, generator=g, dtype=F64) for _ in range(2))


def _batch(lens, *, heads=4, kv_heads=2, head_dim=16, block_size=4, seed=1):
    """A pool and shuffled block tables for sequences of the given lengths (float32)."""
    g = torch.Generator().manual_seed(seed)
    width = max(-(-n // block_size) for n in lens)
    num_blocks = width * len(lens) + 1
    pool = [torch.randn(num_blocks, block_size, kv_heads, head_dim, generator=g) for _ in "kv"]
    tables = torch.randperm(num_blocks, generator=g)[: width * len(lens)].reshape(len(lens), -1)
    q = torch.randn(len(lens), heads, head_dim, generator=g)
    return q, *pool, tables.to(torch.int32), torch.tensor(lens, dtype=torch.int32)


def _full(q, k, v):
    """Softmax attention over all keys, written out, and the logsumexp of the scores."""
    group = q.shape[0] // k.shape[1]
    s = torch.einsum("hd,nhd->hn", q, k.repeat_interleave(group, 1)) / math.sqrt(q.shape[1])
    return torch.einsum("hn,nhd->hd", s.softmax(-1), v.repeat_interleave(group, 1)), s.logsumexp(-1)


# --- the merge ----------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [1, 5, 11])
def test_merging_two_halves_is_the_full_softmax_in_float64(cut):
    q, k, v = _qkv(12)
    merged = merge_partials(*partial_attention(q, k[:cut], v[:cut]),
                            *partial_attention(q, k[cut:], v[cut:]))  # fmt: skip
    o, lse = _full(q, k, v)
    torch.testing.assert_close(merged[0], o, rtol=0, atol=1e-12)
    torch.testing.assert_close(merged[1], lse, rtol=0, atol=1e-12)
    assert merged[0].dtype == F64


def test_merge_is_commutative_and_associative():
    q, k, v = _qkv(9, seed=3)
    a, b, c = (partial_attention(q, k[i:j], v[i:j]) for i, j in ((0, 2), (2, 7), (7, 9)))
    ab_c = merge_partials(*merge_partials(*a, *b), *c)
    a_bc = merge_partials(*a, *merge_partials(*b, *c))
    c_ab = merge_partials(*c, *merge_partials(*b, *a))
    many = merge_many(torch.stack([a[0], b[0], c[0]]), torch.stack([a[1], b[1], c[1]]))
    for got in (a_bc, c_ab, many):
        torch.testing.assert_close(got[0], ab_c[0], rtol=0, atol=1e-12)
        torch.testing.assert_close(got[1], ab_c[1], rtol=0, atol=1e-12)


def test_empty_ranges_have_lse_minus_inf_and_merge_as_nothing():
    q, k, v = _qkv(5)
    o_empty, lse_empty = partial_attention(q, k[:0], v[:0])
    assert torch.equal(o_empty, torch.zeros_like(o_empty))
    assert torch.all(lse_empty == -math.inf)
    o, lse = partial_attention(q, k, v)
    for merged in (merge_partials(o, lse, o_empty, lse_empty),
                   merge_partials(o_empty, lse_empty, o, lse)):  # fmt: skip
        assert torch.equal(merged[0], o) and torch.equal(merged[1], lse)
    both = merge_partials(o_empty, lse_empty, o_empty, lse_empty)
    assert torch.equal(both[0], o_empty) and torch.all(both[1] == -math.inf)


def test_merge_does_not_overflow_on_large_logsumexps():
    o1, o2 = torch.ones(1, 2), -torch.ones(1, 2)
    o, lse = merge_partials(o1, torch.tensor([1000.0]), o2, torch.tensor([1000.0]))
    assert torch.equal(o, torch.zeros(1, 2)) and lse.item() == pytest.approx(1000 + math.log(2))


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 24), cuts=st.lists(st.integers(0, 24), max_size=4), seed=st.integers(0, 99))
def test_any_cut_of_the_keys_merges_to_the_full_softmax(n, cuts, seed):
    q, k, v = _qkv(n, seed=seed)
    edges = [0, *sorted(min(c, n) for c in cuts), n]  # empty ranges allowed
    parts = [partial_attention(q, k[a:b], v[a:b]) for a, b in zip(edges, edges[1:], strict=False)]
    o, lse = merge_many(torch.stack([p[0] for p in parts]), torch.stack([p[1] for p in parts]))
    expected = _full(q, k, v)
    torch.testing.assert_close(o, expected[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(lse, expected[1], rtol=0, atol=1e-12)


def test_merge_validation_names_parameters():
    o, lse = torch.zeros(2, 4), torch.zeros(2)
    with pytest.raises(ValueError, match="lse1"):
        merge_partials(o, torch.zeros(3), o, lse)
    with pytest.raises(ValueError, match="o1 and o2"):
        merge_partials(o, lse, torch.zeros(2, 5), lse)
    with pytest.raises(ValueError, match="outs"):
        merge_many(torch.zeros(0, 2, 4), torch.zeros(0, 2))
    with pytest.raises(ValueError, match="kv_heads"):
        partial_attention(torch.zeros(3, 8), torch.zeros(4, 2, 8), torch.zeros(4, 2, 8))


# --- split ranges and the torch reference ----------------------------------------------


def test_split_ranges_deal_whole_blocks_balanced():
    # 70 tokens = 5 blocks of 16 (the last holds 6): 1 + 2 + 2 blocks.
    assert split_ranges(70, 16, 3) == [(0, 16), (16, 48), (48, 70)]
    assert split_ranges(70, 16, 1) == [(0, 70)]
    assert split_ranges(70, 16, 5) == [(0, 16), (16, 32), (32, 48), (48, 64), (64, 70)]
    # 2 blocks, 4 splits: two of them empty
    assert split_ranges(20, 16, 4) == [(0, 0), (0, 16), (16, 16), (16, 20)]
    for n, bs, s in ((1, 4, 1), (97, 8, 6), (128, 16, 8), (33, 1, 7)):
        ranges = split_ranges(n, bs, s)
        sizes = [b - a for a, b in ranges]
        assert ranges[0][0] == 0 and ranges[-1][1] == n and sum(sizes) == n
        assert all(a % bs == 0 for a, _ in ranges)
        blocks = [-(-(b - a) // bs) for a, b in ranges]
        assert max(blocks) - min(blocks) <= 1
    with pytest.raises(ValueError, match="splits"):
        split_ranges(10, 4, 0)


@pytest.mark.parametrize(("heads", "kv_heads"), [(4, 4), (4, 2), (6, 1)])
@pytest.mark.parametrize("splits", [1, 2, 5])
def test_split_reference_equals_paged_reference_in_float64(heads, kv_heads, splits):
    q, kp, vp, tables, lens = _batch([1, 7, 17, 20], heads=heads, kv_heads=kv_heads)
    q, kp, vp = q.double(), kp.double(), vp.double()
    expected = paged_attention_decode(q, kp, vp, tables, lens)
    got = split_decode_reference(q, kp, vp, tables, lens, splits=splits)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    assert got.dtype == F64


def test_split_reference_validates_like_the_paged_reference():
    q, kp, vp, tables, lens = _batch([5, 3])
    with pytest.raises(ValueError, match="splits"):
        split_decode_reference(q, kp, vp, tables, lens, splits=tables.shape[1] + 1)
    with pytest.raises(ValueError, match="context_lens"):
        split_decode_reference(q, kp, vp, tables, lens * 10, splits=1)


# --- the kernels --------------------------------------------------------------------------

# Ragged: 1 token (one block: 2 of 3 splits empty), a partial block, full blocks.
RAGGED = [1, 6, 12]


def _on_device(*tensors):
    return [t.to(kernel_device()) for t in tensors]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize(("heads", "kv_heads", "head_dim"), [(4, 2, 16), (2, 2, 32)])
def test_kernel_matches_the_float64_reference(dtype, heads, kv_heads, head_dim):
    q, kp, vp, tables, lens = _batch(RAGGED, heads=heads, kv_heads=kv_heads, head_dim=head_dim)
    exact = paged_attention_decode(q.double(), kp.double(), vp.double(), tables, lens)
    rounded = [t.to(dtype) for t in (q, kp, vp)]
    torch_err = (paged_attention_decode(*rounded, tables, lens).double() - exact).abs().max()
    for splits in (1, 3):  # 3 = max_blocks
        out = split_decode(*_on_device(*rounded, tables, lens), splits=splits)
        err = (out.cpu().double() - exact).abs().max()
        assert out.dtype == dtype and out.shape == q.shape
        assert err <= 2 * torch_err + 1e-5, (splits, err, torch_err)


def test_kernel_equals_the_unsplit_kernel_and_empty_splits_write_minus_inf():
    q, kp, vp, tables, lens = _on_device(*_batch(RAGGED))
    unsplit = paged_decode(q, kp, vp, tables, lens)
    for splits in (1, 2, 3):
        torch.testing.assert_close(split_decode(q, kp, vp, tables, lens, splits=splits), unsplit,
                                   rtol=1e-5, atol=1e-6)  # fmt: skip
    partial_out, partial_lse = split_decode_partials(q, kp, vp, tables, lens, splits=3)
    assert torch.isfinite(partial_out).all() and not partial_lse.isnan().any()
    # The 1-token sequence has one block: splits 0 and 1 are empty (split_ranges(1, 4, 3)).
    assert torch.all(partial_lse[0, :, :2] == -math.inf)
    assert torch.equal(partial_out[0, :, :2], torch.zeros_like(partial_out[0, :, :2]))
    # Each non-empty partial is the torch partial_attention of its range, lse in natural log.
    k = kp.cpu()[tables[1, :2].long().cpu()].reshape(-1, 2, 16)[:6]
    v = vp.cpu()[tables[1, :2].long().cpu()].reshape(-1, 2, 16)[:6]
    for s, (a, b) in enumerate(split_ranges(6, 4, 3)):
        o, lse = partial_attention(q[1].cpu(), k[a:b], v[a:b])
        torch.testing.assert_close(partial_out[1, :, s].cpu(), o, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(partial_lse[1, :, s].cpu(), lse, rtol=1e-5, atol=1e-6)
    merged, _ = merge_many(partial_out.movedim(2, 0).cpu(), partial_lse.movedim(2, 0).cpu())
    torch.testing.assert_close(merged, unsplit.cpu(), rtol=1e-5, atol=1e-6)
    # 2 blocks over 4 splits: empty, full, empty, full (split_ranges(5, 4, 4)).
    q, kp, vp, tables, lens = _on_device(*_batch([5, 16], heads=8, kv_heads=1, seed=4))
    expected = paged_decode(q, kp, vp, tables, lens)
    got = split_decode(q, kp, vp, tables, lens, splits=4)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_default_splits_fill_the_sms():
    # batch 1, 4 heads on an H100's 132 SMs: ceil(132 / 4) = 33 splits, capped by the blocks.
    assert default_splits(1, 32, 1000, sm_count=132) == 5
    assert default_splits(8, 32, 1000, sm_count=132) == 1
    assert default_splits(1, 4, 3, sm_count=132) == 3
    q, kp, vp, tables, lens = _on_device(*_batch([3, 2]))  # one block each: 1 split
    torch.testing.assert_close(split_decode(q, kp, vp, tables, lens),
                               split_decode(q, kp, vp, tables, lens, splits=1))  # fmt: skip


def test_kernel_validates_before_launch():
    q, kp, vp, tables, lens = _on_device(*_batch([5, 3]))
    for bad in (0, tables.shape[1] + 1, 1.5, True):
        with pytest.raises(ValueError, match="splits"):
            split_decode(q, kp, vp, tables, lens, splits=bad)
    with pytest.raises(ValueError, match="context_lens"):
        split_decode(q, kp, vp, tables, lens * 10)
    with pytest.raises(ValueError, match="block_tables"):
        split_decode(q, kp, vp, tables + 100, lens)
    with pytest.raises(ValueError, match="block_size"):
        split_decode(q, kp[:, :3], vp[:, :3], tables, lens)
    with pytest.raises(ValueError, match="head_dim"):
        split_decode(q[..., :8], kp[..., :8], vp[..., :8], tables, lens)
    with pytest.raises(ValueError, match="k_pool"):
        split_decode(q, kp.double(), vp, tables, lens)
    with pytest.raises(ValueError, match="kv_heads"):
        split_decode(q[:, :3], kp, vp, tables, lens)


# --- the launch grid ----------------------------------------------------------------------


def test_sm_counts_cover_the_hardware_presets_and_agree_with_tiling():
    assert set(SM_COUNTS) == set(hardware_names()) == set(splitk.SM_COUNT_SOURCES)
    assert all(str(n) in splitk.SM_COUNT_SOURCES[gpu] for gpu, n in SM_COUNTS.items())
    assert SM_COUNTS["A100-SXM4-80GB"] == ON_CHIP_MEMORY["A100"].sm_count == 108
    assert SM_COUNTS["H100-SXM5-80GB"] == ON_CHIP_MEMORY["H100"].sm_count == 132
    with pytest.raises(ValueError, match="hardware"):
        splitk.sm_count("TPU")


def test_decode_grid_rows_llama3_8b_on_h100():
    rows = decode_grid_rows("Llama-3-8B", "H100-SXM5-80GB", [4096, 131072], [1, 8])
    first = rows[0]  # 4K context, batch 1: 32 heads use 32 of 132 SMs; 5 splits fill them
    assert (first["programs_unsplit"], first["splits"], first["programs_split"]) == (32, 5, 160)
    assert first["busy_unsplit"] == pytest.approx(32 / 132) and first["busy_split"] == 1.0
    assert first["blocks_per_program_unsplit"] == 256 and first["blocks_per_program_split"] == 52
    # partial results: 2 (write + read) x 32 heads x 5 splits x (128 + 2) floats x 4 bytes
    assert first["partial_bytes"] == 2 * 32 * 5 * 130 * 4
    cost = paged_decode_grid_cost(4096, heads=32, kv_heads=8, head_dim=128, sm_count=132, splits=5)
    assert first["kv_bytes_read"] == cost.kv_bytes_read
    assert first["extra_traffic"] < 0.003  # a quarter of a percent at 4K, less beyond
    batch8 = rows[1]  # 256 programs already cover the SMs: no split
    assert batch8["splits"] == 1 and batch8["partial_bytes"] == 0 and batch8["busy_unsplit"] == 1
    assert rows[2]["extra_traffic"] < first["extra_traffic"]
    fig = splitk.busy_sm_figure("Llama-3-8B", "H100-SXM5-80GB", [1, 2, 4, 8])
    assert [round(y) for y in fig.data[0].y] == [24, 48, 97, 100] and set(fig.data[1].y) == {100}


def test_the_modelled_split_grid_is_the_one_the_kernel_launches():
    source = inspect.getsource(kernels_splitk)
    assert "split_decode_kernel[(batch, heads, splits)]" in source
    assert "combine_kernel[(batch, heads)]" in source

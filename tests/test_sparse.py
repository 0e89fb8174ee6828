"""Notebook 06: sparse masks, their block layouts, the tile formula, and the sparse kernels.

Tolerances: the blocked torch attention and naive masked attention add the same terms in a
different order (float64: 1e-12). The Triton kernel is compared with a float64 masked
reference, FlashAttention-style: error <= 2 x (error of the same computation done by
torch in the input dtype) + a small absolute floor.
"""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import attn_course.kernels  # noqa: F401  (fixes the kernel mode before FlexAttention imports triton)
from attn_course.checks import exercises_for
from attn_course.checks.sparse import longformer_tile_count
from attn_course.scores import naive_attention, toy_sentence_qkv
from attn_course.sparse import (
    BlockLayout,
    SparsePattern,
    bigbird_pattern,
    blocked_sparse_attention,
    causal_pattern,
    dilated_pattern,
    flex_attention_output,
    flex_available,
    flex_block_layout,
    full_pattern,
    layout_from_flex,
    layout_to_flex,
    local_pattern,
    longformer_pattern,
    make_pattern,
    mask_and,
    mask_or,
    mass_outside_mask,
    measure_window_scaling,
    sliding_window_pattern,
    sliding_window_tiles,
    window_distance_to_keys,
    window_error_curve,
    window_keys_to_distance,
    window_scaling_figure,
)
from attn_course.ui.sparse import SparsityExplorer, sparse_layout_figure

pytestmark = pytest.mark.nb06


def qkv(*shape: int, dtype=torch.float64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(shape, generator=g, dtype=torch.float64).to(dtype) for _ in range(3))


def all_patterns(n: int) -> list[SparsePattern]:
    return [
        full_pattern(n),
        causal_pattern(n),
        sliding_window_pattern(n, 5),
        dilated_pattern(n, 3, 4),
        local_pattern(n, 2),
        longformer_pattern(n, 2, [0, n // 2]),
        bigbird_pattern(n, 8, 1, 1, 1, seed=3),
        sliding_window_pattern(n, 3) | longformer_pattern(n, 0, [1]),
    ]


# --- masks, hand-checked --------------------------------------------------------------------


def test_sliding_window_hand_checked():
    # n = 5, window 2: query i sees keys i-1 and i (key 0 alone for query 0).
    expected = torch.tensor([
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 1, 1, 0, 0],
        [0, 0, 1, 1, 0],
        [0, 0, 0, 1, 1],
    ], dtype=torch.bool)  # fmt: skip
    assert torch.equal(sliding_window_pattern(5, 2).dense_mask(), expected)
    # window >= n is plain causal; window 1 only the diagonal.
    assert torch.equal(sliding_window_pattern(6, 6).dense_mask(), causal_pattern(6).dense_mask())
    assert torch.equal(sliding_window_pattern(4, 1).dense_mask(), torch.eye(4, dtype=torch.bool))
    # 1 + 2 + 2 + 2 + 2 = 9 allowed of 25.
    assert sliding_window_pattern(5, 2).density() == pytest.approx(9 / 25)


def test_dilated_longformer_bigbird_hand_checked():
    # dilated window 2, dilation 3, n = 7: query 6 sees keys 6 and 3 (not 0: 3 keys back
    # would be a third key); query 2 sees only itself.
    mask = dilated_pattern(7, 2, 3).dense_mask()
    assert mask[6].nonzero().flatten().tolist() == [3, 6]
    assert mask[2].nonzero().flatten().tolist() == [2]
    # Longformer n = 6, radius 1, global token 4: row 4 and column 4 all True,
    # row 1 = keys 0, 1, 2 (band) and 4 (global).
    mask = longformer_pattern(6, 1, [4]).dense_mask()
    assert mask[4].all() and mask[:, 4].all()
    assert mask[1].nonzero().flatten().tolist() == [0, 1, 2, 4]
    # band 6 + 5 + 5 = 16; row and column of 4: 6 + 6 - 1 = 11; both: (4,3) (4,4) (4,5)
    # (3,4) (5,4) = 5. Union: 16 + 11 - 5 = 22.
    assert int(mask.sum()) == 22
    # BigBird: every tile full or empty, the neighbouring and global blocks present, and
    # random_blocks extra key blocks per query block (here 8 blocks, 1 random each).
    layout = bigbird_pattern(64, 8, 1, 1, 1, seed=0).layout(8)
    assert layout.partial_tiles == 0
    index = torch.arange(8)
    structural = ((index[:, None] - index[None, :]).abs() <= 1) | (index[:, None] == 0)
    structural |= index[None, :] == 0
    extra = (layout.tiles & ~structural).sum(dim=1)
    # rows 0 (global: all keys already) gets none; every other row exactly one.
    assert extra.tolist() == [0, 1, 1, 1, 1, 1, 1, 1]
    assert torch.equal(bigbird_pattern(64, 8, seed=5).dense_mask(),
                       bigbird_pattern(64, 8, seed=5).dense_mask())  # fmt: skip


def test_composition():
    n = 9
    band_and_causal = mask_and(local_pattern(n, 2), causal_pattern(n))
    assert torch.equal(band_and_causal.dense_mask(), sliding_window_pattern(n, 3).dense_mask())
    union = mask_or(sliding_window_pattern(n, 1), longformer_pattern(n, 0, [0]))
    expected = torch.eye(n, dtype=torch.bool)
    expected[0, :] = True
    expected[:, 0] = True
    assert torch.equal(union.dense_mask(), expected)
    assert torch.equal((local_pattern(n, 2) & causal_pattern(n)).dense_mask(),
                       band_and_causal.dense_mask())  # fmt: skip


def test_bad_inputs_name_the_parameter():
    with pytest.raises(ValueError, match="window"):
        sliding_window_pattern(8, 0)
    with pytest.raises(ValueError, match="n must"):
        causal_pattern(0)
    with pytest.raises(ValueError, match="dilation"):
        dilated_pattern(8, 2, 0)
    with pytest.raises(ValueError, match="global_tokens"):
        longformer_pattern(8, 1, [8])
    with pytest.raises(ValueError, match="global_tokens"):
        longformer_pattern(8, 1, "0")
    with pytest.raises(ValueError, match="random_blocks"):
        bigbird_pattern(8, 4, random_blocks=-1)
    with pytest.raises(ValueError, match="same n"):
        causal_pattern(4) & causal_pattern(5)
    with pytest.raises(ValueError, match="block"):
        causal_pattern(8).layout(0)
    with pytest.raises(ValueError, match="name must be one of"):
        make_pattern("dense", 8)
    with pytest.raises(ValueError, match="which"):
        causal_pattern(8).layout(4).kv_lists("empty")
    with pytest.raises(ValueError, match="bool"):
        mass_outside_mask(torch.ones(2, 2), torch.ones(2, 2))


# --- layouts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [16, 37, 64])
@pytest.mark.parametrize("block", [4, 8, 16])
def test_layout_consistent_with_dense_mask(n, block):
    for pattern in all_patterns(n):
        mask = pattern.dense_mask()
        layout = pattern.layout(block)
        for i in range(layout.blocks):
            for j in range(layout.blocks):
                tile = mask[i * block : (i + 1) * block, j * block : (j + 1) * block]
                assert bool(layout.tiles[i, j]) == bool(tile.any()), (pattern.name, i, j)
                assert bool(layout.full[i, j]) == bool(tile.all()), (pattern.name, i, j)
        # Every allowed entry lies in a visited tile, so computed >= allowed.
        assert layout.computed_entries() >= int(mask.sum())


def test_layout_counts_and_flops_hand_checked():
    # causal, n = 10, block 4: blocks of 4, 4, 2 tokens; tiles (0,0) (1,0) (1,1) (2,0) (2,1)
    # (2,2) = 6 visited; full: (1,0), (2,0), (2,1) = 3; partial: the 3 diagonal ones.
    layout = causal_pattern(10).layout(4)
    assert (layout.visited_tiles, layout.full_tiles, layout.partial_tiles) == (6, 3, 3)
    # entries: 16 + 16 + 16 + 8 + 8 + 4 = 68 of 100.
    assert layout.computed_entries() == 68
    assert layout.computed_fraction() == pytest.approx(0.68)
    assert layout.flops(head_dim=2) == 4 * 2 * 68
    counts, indices = layout.kv_lists("tiles")
    assert counts.tolist() == [1, 2, 3]
    assert indices[2, :3].tolist() == [0, 1, 2] and indices[1, :2].tolist() == [0, 1]
    counts, indices = layout.kv_lists("full")
    assert counts.tolist() == [0, 1, 2] and indices[2, :2].tolist() == [0, 1]


def test_formula_hand_values():
    # n = 4096, w = 512, b = 128: T = 32, c = 1 + ceil(511/128) = 5, 5·32 − 10 = 150.
    assert sliding_window_tiles(4096, 512, 128) == 150
    # window >= n: causal, T(T+1)/2 = 8·9/2 = 36 for n = 1024, b = 128.
    assert sliding_window_tiles(1024, 5000, 128) == 36
    # window 1: only the diagonal tiles, T = ceil(100/16) = 7.
    assert sliding_window_tiles(100, 1, 16) == 7


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 300),
    window=st.integers(1, 320),
    block=st.sampled_from([1, 2, 3, 4, 7, 8, 16, 32, 64]),
)
def test_formula_equals_counted_tiles(n, window, block):
    assert sliding_window_pattern(n, window).layout(block).visited_tiles == sliding_window_tiles(
        n, window, block
    )


# --- attention that visits only the layout's tiles ---------------------------------------------


@pytest.mark.parametrize("n", [16, 50])
@pytest.mark.parametrize("block", [4, 16])
def test_blocked_torch_attention_equals_masked_reference(n, block):
    q, k, v = qkv(2, 3, n, 8)
    for pattern in all_patterns(n):
        expected = naive_attention(q, k, v, mask=pattern.dense_mask()).out
        got = blocked_sparse_attention(q, k, v, pattern, block)
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_rows_with_no_allowed_key_give_zeros():
    # Queries 0..5 see nothing; the rest are causal.
    pattern = SparsePattern(12, lambda i, j: (i >= 6) & (j <= i), "late start")
    q, k, v = qkv(1, 1, 12, 4)
    got = blocked_sparse_attention(q, k, v, pattern, 4)
    assert not torch.isnan(got).any()
    assert torch.equal(got[..., :6, :], torch.zeros_like(got[..., :6, :]))
    expected = naive_attention(q, k, v, mask=pattern.dense_mask()).out
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_mass_outside_and_window_error_curve():
    # Uniform probabilities over 4 keys, mask keeps 1: mass outside 3/4.
    probs = torch.full((2, 4), 0.25)
    mask = torch.tensor([True, False, False, False])
    assert mass_outside_mask(probs, mask) == pytest.approx(0.75)
    toy = toy_sentence_qkv()
    n = len(toy.tokens)
    rows = window_error_curve(toy.q.double(), toy.k.double(), toy.v.double(), [1, 4, n])
    # window n is causal attention itself: nothing lost.
    assert rows[-1].mass_outside == pytest.approx(0.0, abs=1e-12)
    assert rows[-1].relative_error == pytest.approx(0.0, abs=1e-12)
    # wider windows lose less mass
    assert rows[0].mass_outside > rows[1].mass_outside > 0
    assert rows[0].density == pytest.approx(n / (n * n))


def test_measure_window_scaling_small():
    rows = measure_window_scaling([64, 128], window=16, block=16, head_dim=16, dense_max_n=64)
    assert [r.tiles for r in rows] == [r.formula_tiles for r in rows]
    # n = 128, w = 16, b = 16: T = 8, c = 1 + ceil(15/16) = 2, 2·8 − 1 = 15 tiles.
    assert rows[1].tiles == 15
    assert rows[1].flops == 4 * 16 * 15 * 16 * 16
    assert rows[0].dense_seconds is not None and rows[1].dense_seconds is None
    figure = window_scaling_figure(rows, 16)
    assert figure.layout.xaxis.type == "log" and figure.layout.yaxis2.type == "log"


# --- FlexAttention ------------------------------------------------------------------------------


flex_ok, flex_reason = flex_available()


@pytest.mark.skipif(not flex_ok, reason=flex_reason)
def test_flex_block_mask_layout_equals_ours():
    n, block = 128, 16
    for pattern in all_patterns(n):
        ours, theirs = pattern.layout(block), flex_block_layout(pattern, block)
        assert torch.equal(ours.tiles, theirs.tiles), pattern.name
        assert torch.equal(ours.full, theirs.full), pattern.name


@pytest.mark.skipif(not flex_ok, reason=flex_reason)
def test_flex_attention_output_agrees_on_cpu():
    n = 64
    q, k, v = qkv(1, 2, n, 16, dtype=torch.float32)
    for pattern in all_patterns(n):
        expected = naive_attention(q.double(), k.double(), v.double(), mask=pattern.dense_mask())
        got = flex_attention_output(q, k, v, pattern, block=16)
        torch.testing.assert_close(got.double(), expected.out, rtol=1e-5, atol=1e-5)


# --- conventions of other code ------------------------------------------------------------------


def distance_window_mask(n: int, window_size: int) -> torch.Tensor:
    """attention-gym's and FlexAttention's examples: q - kv <= window_size, and causal."""
    q, kv = torch.arange(n)[:, None], torch.arange(n)[None, :]
    return (q - kv <= window_size) & (q >= kv)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 80), window=st.integers(1, 90))
def test_window_in_keys_is_a_distance_one_shorter(n, window):
    distance = window_keys_to_distance(window)
    assert torch.equal(sliding_window_pattern(n, window).dense_mask(),
                       distance_window_mask(n, distance))  # fmt: skip
    assert window_distance_to_keys(distance) == window


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 80), window_size=st.integers(0, 90))
def test_distance_is_a_window_one_key_wider(n, window_size):
    keys = window_distance_to_keys(window_size)
    assert torch.equal(distance_window_mask(n, window_size),
                       sliding_window_pattern(n, keys).dense_mask())  # fmt: skip
    assert window_keys_to_distance(keys) == window_size


def test_window_conventions_hand_checked():
    n, w = 6, 3
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    ours = sliding_window_pattern(n, w).dense_mask()
    assert ours.sum(dim=1).tolist() == [1, 2, 3, 3, 3, 3]  # w keys, the query included
    assert distance_window_mask(n, w).sum(dim=1).tolist() == [1, 2, 3, 4, 4, 4]  # w + 1
    # Hugging Face transformers (masking_utils): kv_idx > q_idx - sliding_window, causal.
    assert torch.equal(ours, (j > i - w) & (j <= i))
    # xformers' make_local_attention(w), used by mistral-inference: triu(diagonal=-w + 1).
    lower = torch.ones(n, n).tril()
    assert torch.equal(ours, lower.triu(diagonal=-w + 1).bool())
    # mistral-inference's one_file_ref.py until March 2024: triu(diagonal=-w), w + 1 keys.
    assert torch.equal(lower.triu(diagonal=-w).bool(), distance_window_mask(n, w))
    assert (window_keys_to_distance(1), window_distance_to_keys(0)) == (0, 1)
    assert window_keys_to_distance(4096) == 4095


def test_ragged_last_tile_hand_checked():
    # n = 40, tiles of 16: blocks of 16, 16 and 8 tokens. Dense attention: the course's
    # layout calls all 9 tiles full; FlexAttention pads block 2 with disallowed entries,
    # so only the 4 tiles of complete blocks stay full and the 5 that touch block 2 are
    # partial. Causal: (1, 0) is full in both, (2, 0) and (2, 1) in the course's only.
    dense = full_pattern(40).layout(16)
    flex = layout_to_flex(dense)
    assert (dense.full_tiles, dense.partial_tiles) == (9, 0)
    assert (flex.full_tiles, flex.partial_tiles) == (4, 5)
    assert flex.full.tolist() == [[True, True, False], [True, True, False], [False] * 3]
    assert layout_from_flex(flex, full_pattern(40)).full.all()
    causal = causal_pattern(40).layout(16)
    assert causal.full.nonzero().tolist() == [[1, 0], [2, 0], [2, 1]]
    assert layout_to_flex(causal).full.nonzero().tolist() == [[1, 0]]
    assert torch.equal(layout_to_flex(causal).tiles, causal.tiles)
    assert torch.equal(layout_from_flex(layout_to_flex(causal), causal_pattern(40)).full,
                       causal.full)  # fmt: skip
    # block divides n: both conventions agree, nothing changes.
    even = causal_pattern(48).layout(16)
    assert torch.equal(layout_to_flex(even).full, even.full)


def test_conversions_refuse_bad_input():
    with pytest.raises(ValueError, match="window must be an integer >= 1, got 0"):
        window_keys_to_distance(0)
    with pytest.raises(ValueError, match="window must be an integer >= 1, got True"):
        window_keys_to_distance(True)
    with pytest.raises(ValueError, match="window_size must be an integer >= 0, got -1"):
        window_distance_to_keys(-1)
    with pytest.raises(ValueError, match="window_size must be an integer >= 0, got 2.0"):
        window_distance_to_keys(2.0)
    with pytest.raises(ValueError, match="layout must be a BlockLayout"):
        layout_to_flex(causal_pattern(8))
    with pytest.raises(ValueError, match="flex must be a BlockLayout"):
        layout_from_flex("layout", causal_pattern(8))
    with pytest.raises(ValueError, match="pattern must be a SparsePattern with n = flex.n = 8"):
        layout_from_flex(causal_pattern(8).layout(3), causal_pattern(9))


@pytest.mark.skipif(not flex_ok, reason=flex_reason)
@settings(max_examples=80, deadline=None)
@given(n=st.integers(2, 150), block=st.integers(1, 40), which=st.integers(0, 7))
def test_conversion_equals_create_block_mask(n, block, which):
    pattern = all_patterns(n)[which]
    ours, theirs = pattern.layout(block), flex_block_layout(pattern, block)
    converted = layout_to_flex(ours)
    assert torch.equal(converted.tiles, theirs.tiles), pattern.name
    assert torch.equal(converted.full, theirs.full), pattern.name
    back = layout_from_flex(theirs, pattern)
    assert torch.equal(back.tiles, ours.tiles) and torch.equal(back.full, ours.full), pattern.name


# --- the Triton kernel (interpreter on CPU) ------------------------------------------------------


@pytest.fixture(scope="module")
def kernels():
    from attn_course.kernels import kernel_device
    from attn_course.kernels.sparse import block_sparse_attention, block_sparse_attention_forward

    return kernel_device(), block_sparse_attention, block_sparse_attention_forward


_KERNEL_PATTERNS = [
    lambda n: sliding_window_pattern(n, 9),
    lambda n: longformer_pattern(n, 3, [0, n // 2]),
    lambda n: bigbird_pattern(n, 16, 1, 1, 1),
    lambda n: dilated_pattern(n, 4, 3),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("make", _KERNEL_PATTERNS)
def test_kernel_matches_masked_reference(kernels, dtype, make):
    device, block_sparse_attention, _ = kernels
    n = 48 if dtype == torch.float32 else 40  # 40: a short last block
    pattern = make(n)
    q, k, v = (t.to(device) for t in qkv(1, 2, n, 16, dtype=torch.float32, seed=1))
    mask = pattern.dense_mask(device)
    expected = naive_attention(q.double(), k.double(), v.double(), mask=mask).out
    torch_error = (naive_attention(q.to(dtype), k.to(dtype), v.to(dtype), mask=mask).out.double()
                   - expected).abs().max().item()  # fmt: skip
    got = block_sparse_attention(q.to(dtype), k.to(dtype), v.to(dtype), pattern, 16)
    assert got.dtype == dtype and got.shape == q.shape
    error = (got.double() - expected).abs().max().item()
    assert error <= 2 * torch_error + 1e-5, (error, torch_error)


def test_kernel_grouped_query_and_empty_rows(kernels):
    device, block_sparse_attention, forward = kernels
    n = 32
    pattern = SparsePattern(n, lambda i, j: (i >= 16) & (j <= i), "late start")
    g = torch.Generator().manual_seed(2)
    q = torch.randn(1, 4, n, 16, generator=g).to(device)
    k, v = (torch.randn(1, 2, n, 16, generator=g).to(device) for _ in range(2))
    out, lse = forward(q, k, v, pattern.layout(16), pattern.dense_mask(device))
    assert not torch.isnan(out).any()
    assert torch.equal(out[:, :, :16], torch.zeros_like(out[:, :, :16]))
    assert torch.isinf(lse[:, :, :16]).all() and torch.isfinite(lse[:, :, 16:]).all()
    k4, v4 = k.repeat_interleave(2, dim=1), v.repeat_interleave(2, dim=1)
    expected = naive_attention(q.double(), k4.double(), v4.double(), mask=pattern.dense_mask())
    torch.testing.assert_close(out.double(), expected.out, rtol=1e-5, atol=1e-5)


def test_kernel_gives_the_same_output_with_flexattention_classification(kernels):
    # n = 40, tiles of 16: the tiles of the short last block are full in the course's
    # layout and partial in FlexAttention's; the kernel masks keys past n in both loops.
    device, _, forward = kernels
    pattern = causal_pattern(40)
    q, k, v = (t.to(device) for t in qkv(1, 1, 40, 16, dtype=torch.float32, seed=3))
    mask = pattern.dense_mask(device)
    ours, flex = pattern.layout(16), layout_to_flex(pattern.layout(16))
    assert ours.full_tiles == 3 and flex.full_tiles == 1
    out, lse = forward(q, k, v, ours, mask)
    out_flex, lse_flex = forward(q, k, v, flex, mask)
    torch.testing.assert_close(out_flex, out, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(lse_flex, lse, rtol=1e-6, atol=1e-6)


def test_kernel_validates_before_launch(kernels):
    device, block_sparse_attention, forward = kernels
    q, k, v = (t.to(device) for t in qkv(1, 1, 32, 16, dtype=torch.float32))
    pattern = sliding_window_pattern(32, 4)
    with pytest.raises(ValueError, match="block"):
        block_sparse_attention(q, k, v, pattern, block=8)
    with pytest.raises(ValueError, match="pattern is for n"):
        block_sparse_attention(q, k, v, sliding_window_pattern(16, 4), block=16)
    with pytest.raises(ValueError, match="pattern must be"):
        block_sparse_attention(q, k, v, "window", block=16)
    with pytest.raises(ValueError, match="mask must be"):
        forward(q, k, v, pattern.layout(16), pattern.dense_mask(device).float())
    with pytest.raises(ValueError, match="layout is for n"):
        forward(q, k, v, sliding_window_pattern(64, 4).layout(16), pattern.dense_mask(device))
    with pytest.raises(ValueError, match="head_dim"):
        block_sparse_attention(q[..., :8], k[..., :8], v[..., :8], pattern, block=16)


# --- pictures and the explorer ------------------------------------------------------------------


def test_layout_figure_and_explorer():
    figure = sparse_layout_figure(sliding_window_pattern(32, 4), 8)
    assert "32" in figure.layout.title.text and len(figure.data) >= 2
    explorer = SparsityExplorer(n=32, pattern="sliding window", block=8)
    c = explorer.controls
    c["window"].value = 8
    # n = 32, w = 8, b = 8: T = 4, c = 1 + ceil(7/8) = 2, 2·4 − 1 = 7 tiles.
    assert explorer.layout.visited_tiles == 7
    assert "7 of 16 tiles" in explorer.summary.value
    c["pattern"].value = "full"
    assert explorer.layout.visited_tiles == 16 and explorer.density == 1.0
    c["pattern"].value = "BigBird"
    assert explorer.layout.partial_tiles == 0
    c["block"].value = 4
    assert explorer.layout.blocks == 8
    assert explorer.figure.data[0].z is not None and len(explorer.figure.data[0].z) == 32
    for name in ("causal", "dilated", "Longformer"):
        c["pattern"].value = name
        assert 0 < explorer.density < 1


def test_layout_is_a_blocklayout_and_frozen():
    layout = causal_pattern(8).layout(4)
    assert isinstance(layout, BlockLayout)
    with pytest.raises(AttributeError):
        layout.n = 3  # type: ignore[misc]
    assert math.isclose(layout.computed_fraction(), 48 / 64)  # 3 tiles of 16 of 64


# --- exercises ----------------------------------------------------------------------------------
# The checks themselves are tested against a corpus of wrong answers: tests/corpus/nb06.py.


def test_notebook_06_registers_four_exercises():
    assert [e.id for e in exercises_for("06_sparse_attention")] == [
        "sliding_window_mask",
        "longformer_mask",
        "window_tile_count",
        "global_window_tile_count",
    ]


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(n=st.integers(1, 120), radius=st.integers(0, 50), block=st.integers(1, 20),
       drawn=st.lists(st.integers(0, 10**4), max_size=5))  # fmt: skip
def test_the_checks_longformer_tile_count_matches_the_layout(n, radius, block, drawn):
    # The check counts per block at n = 10^6, where no layout can be built: it must agree
    # with the tiles counted from the mask wherever both can be computed.
    tokens = sorted({t % n for t in drawn})
    counted = longformer_pattern(n, radius, tokens).layout(block).visited_tiles
    assert longformer_tile_count(n, radius, tokens, block) == counted


# --- the benchmark suite ------------------------------------------------------------------------


def test_bench_sparse_smoke(tmp_path):
    from attn_course.bench import sparse as bench_sparse
    from attn_course.bench.__main__ import main as bench_main
    from attn_course.bench.records import SCHEMA, load_records

    parser = argparse.ArgumentParser()
    bench_sparse.add_arguments(parser)
    record = bench_sparse.run(parser.parse_args(["--smoke"]), command="test")
    out = tmp_path / "sparse.json"
    # The same suite through the command line: python -m attn_course.bench sparse ...
    assert bench_main(["sparse", "--smoke", "--quiet", "--out", str(out)]) == 0
    assert record["schema"] == SCHEMA and record["benchmark"] == "sparse" and record["smoke"]
    saved = json.loads(out.read_text())
    assert [r["implementation"] for r in saved["results"]] == [
        r["implementation"] for r in record["results"]
    ]
    assert load_records(tmp_path / "*.json")[0]["benchmark"] == "sparse"
    by_impl = {}
    for r in record["results"]:
        by_impl.setdefault(r["implementation"], []).append(r)
    assert by_impl["window_torch"][0]["status"] == "ok" and by_impl["window_torch"][0]["ms"] > 0
    assert all(r["max_abs_error"] < 1e-4 for r in by_impl["window_torch"])
    assert all(r["config"]["tiles"] == r["config"]["formula_tiles"] for r in record["results"])

"""Notebook 03: tiled attention is exact, moves the bytes the formula says, and needs O(n) memory.

Tolerances, stated once: tiled and naive attention add the same terms in a different
order, so they differ by rounding only. Against naive attention in float64 (error ~1e-16
per term) we allow 1e-12; in float32 we compare both with a float64 reference and
require the tiled error to be at most 4x naive attention's own error plus 1e-6.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attn_course.checks import exercises_for
from attn_course.measure import loglog_slope, measure_peak_bytes, random_qkv
from attn_course.scores import naive_attention
from attn_course.tiling import (
    ON_CHIP_MEMORY,
    HBMTraffic,
    causal_visited_fraction,
    compare_with_naive,
    flash_block_sizes,
    hbm_traffic_figure,
    hbm_traffic_ratio,
    measure_tiled_memory,
    naive_hbm_bytes,
    online_softmax_finish,
    online_softmax_init,
    online_softmax_update,
    tiled_attention,
    tiled_attention_loops,
    tiled_attention_peak_bytes,
    tiled_hbm_bytes,
    tiled_hbm_bytes_for_blocks,
    tiling_memory_figure,
    tiling_schedule,
    trace_row,
    visited_tiles,
)
from attn_course.ui.tiling import TilingExplorer

pytestmark = pytest.mark.nb03


def qkv(*shape: int, n_k: int | None = None, dtype=torch.float64, seed: int = 0, std=1.0):
    generator = torch.Generator().manual_seed(seed)
    key_shape = (*shape[:-2], n_k or shape[-2], shape[-1])
    q = torch.randn(shape, generator=generator, dtype=torch.float64) * std
    k = torch.randn(key_shape, generator=generator, dtype=torch.float64) * std
    v = torch.randn(key_shape, generator=generator, dtype=torch.float64)
    return q.to(dtype), k.to(dtype), v.to(dtype)


# --- exactness ----------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    lead=st.sampled_from([(), (1, 1), (2, 3)]),
    n_q=st.integers(1, 40),
    n_k=st.integers(1, 40),
    head_dim=st.sampled_from([1, 3, 8]),
    block_q=st.integers(1, 48),
    block_k=st.integers(1, 48),
    causal=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_tiled_equals_naive_float64(lead, n_q, n_k, head_dim, block_q, block_k, causal, seed):
    # Odd n, n < block, n not a multiple of the block, n_q != n_k: all the tails.
    q, k, v = qkv(*lead, n_q, head_dim, n_k=n_k, seed=seed)
    reference = naive_attention(q, k, v, causal=causal)
    expected_lse = torch.logsumexp(reference.scores, dim=-1)
    loops = tiled_attention_loops(q, k, v, causal=causal, block_q=block_q, block_k=block_k)
    vectorised = tiled_attention(q, k, v, causal=causal, block_k=block_k)
    for result in (loops, vectorised):
        torch.testing.assert_close(result.out, reference.out, atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(result.lse, expected_lse, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
def test_tiled_float32_error_is_naive_attentions_own(causal):
    q64, k64, v64 = qkv(2, 2, 300, 64, std=2.0)
    exact = naive_attention(q64, k64, v64, causal=causal).out
    q, k, v = (t.float() for t in (q64, k64, v64))
    naive_error = (naive_attention(q, k, v, causal=causal).out.double() - exact).abs().max()
    for out in (
        tiled_attention_loops(q, k, v, causal=causal, block_q=48, block_k=40).out,
        tiled_attention(q, k, v, causal=causal, block_k=96).out,
    ):
        error = (out.double() - exact).abs().max()
        assert out.dtype == torch.float32
        assert error <= 4 * naive_error + 1e-6, (error, naive_error)


def test_scale_option_and_huge_scores():
    # Scores of several thousand: exp would overflow float32 without the running max.
    q, k, v = qkv(50, 16, dtype=torch.float32, std=20.0)
    for scale in (None, 0.5):
        expected = naive_attention(q.double(), k.double(), v.double(), scale=scale).out
        got = tiled_attention_loops(q, k, v, scale=scale, block_q=16, block_k=16).out
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got.double(), expected, atol=1e-4, rtol=1e-4)


def test_fully_masked_rows_give_zeros_not_nan():
    q, k, v = qkv(1, 2, 10, 4)
    allowed = torch.rand(10, 10, generator=torch.Generator().manual_seed(1)) > 0.5
    allowed[3] = False  # query 3 sees no key at all
    allowed[7, :] = False
    allowed[7, 9] = True  # query 7 sees only the last key: its early blocks are all masked
    reference = naive_attention(q, k, v, mask=allowed).out
    for result in (
        tiled_attention_loops(q, k, v, mask=allowed, block_q=3, block_k=4),
        tiled_attention(q, k, v, mask=allowed, block_k=4),
    ):
        assert not torch.isnan(result.out).any() and not torch.isnan(result.lse).any()
        assert (result.out[..., 3, :] == 0).all() and torch.isneginf(result.lse[..., 3]).all()
        torch.testing.assert_close(result.out, reference, atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(result.out[..., 7, :], v[..., 9, :])  # all weight on key 9


def test_online_softmax_update_hand_values():
    # One row, scores [0, ln 3] then [ln 8]: exp -> 1, 3, then 8; softmax = [1, 3, 8] / 12.
    m, l, acc = online_softmax_init((1,), 1, torch.float64)  # noqa: E741
    v1 = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    m, l, acc = online_softmax_update(m, l, acc, torch.tensor([[0.0, math.log(3)]]).double(), v1)  # noqa: E741
    assert m.item() == pytest.approx(math.log(3)) and l.item() == pytest.approx(4 / 3)
    m, l, acc = online_softmax_update(  # noqa: E741
        m, l, acc, torch.tensor([[math.log(8)]]).double(), torch.tensor([[4.0]]).double()
    )
    # New max ln 8: α = 3/8, ℓ = 4/3 · 3/8 + 1 = 1.5 = 12/8; acc = (1·1 + 3·2)/8 + 4 = 39/8.
    assert m.item() == pytest.approx(math.log(8)) and l.item() == pytest.approx(1.5)
    out, lse = online_softmax_finish(m, l, acc)
    assert out.item() == pytest.approx((1 * 1 + 3 * 2 + 8 * 4) / 12)  # = 3.25
    assert lse.item() == pytest.approx(math.log(12))


# --- bad input ----------------------------------------------------------------------------


def test_bad_inputs_name_the_parameter():
    q, k, v = qkv(1, 2, 8, 4)
    for kwargs, name in [
        ({"block_q": 0}, "block_q"),
        ({"block_k": 2.5}, "block_k"),
        ({"scale": -1.0}, "scale"),
        ({"causal": "yes"}, "causal"),
        ({"mask": torch.ones(8, 8)}, "mask"),
        ({"mask": torch.ones(3, 8, dtype=torch.bool)}, "mask"),
    ]:
        with pytest.raises(ValueError, match=f"^{name}"):
            tiled_attention_loops(q, k, v, **kwargs)
    with pytest.raises(ValueError, match="^k"):
        tiled_attention(q, k[..., :3], v)
    with pytest.raises(ValueError, match="^block_k"):
        tiled_attention(q, k, v, block_k=0)
    with pytest.raises(ValueError, match="^row"):
        trace_row(q[0, 0], k[0, 0], v[0, 0], 8, block_k=4)
    with pytest.raises(ValueError, match="^sram_bytes"):
        flash_block_sizes(64, 100, "float16")  # 50 elements < 4·64


# --- schedule and counts -----------------------------------------------------------------------


def test_schedule_hand_checked():
    # n = 10, blocks of 4: 3 query blocks x 3 key blocks = 9 tiles.
    steps = tiling_schedule(10, 4, 4, causal=True)
    assert len(steps) == 9
    # Causal: tile (i, j) is skipped iff key block j starts after query block i's last row.
    assert [(s.q_block, s.k_block) for s in steps if s.skipped] == [(0, 1), (0, 2), (1, 2)]
    assert [(s.q_block, s.k_block) for s in steps if s.partial] == [(0, 0), (1, 1), (2, 2)]
    assert steps[-1][2:6] == (8, 10, 8, 10)  # the short last tile: rows 8-9, keys 8-9
    assert visited_tiles(10, 4, 4, causal=True) == 6  # T = 3: 3·4/2
    assert visited_tiles(10, 4, 4) == 9
    # Unequal blocks, n = 10, block_q = 4, block_k = 3: query block ends 4, 8, 10 need
    # ⌈4/3⌉ + ⌈8/3⌉ + ⌈10/3⌉ = 2 + 3 + 4 = 9 of the 3·4 = 12 tiles.
    assert visited_tiles(10, 4, 3, causal=True) == 9
    assert sum(not s.skipped for s in tiling_schedule(10, 4, 3, causal=True)) == 9
    # 1024 tokens in blocks of 128: 36 of 64 tiles = 0.5625; 8192 in 128: 2080/4096.
    assert causal_visited_fraction(1024, 128, 128) == 36 / 64
    assert causal_visited_fraction(8192, 128, 128) == pytest.approx(2080 / 4096)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n, block_q, block_k", [(100, 32, 16), (64, 64, 64), (37, 5, 8)])
def test_counted_traffic_equals_formula_exactly(n, block_q, block_k, causal):
    q, k, v = random_qkv(n, 16, "float32", heads=2)
    traffic = HBMTraffic()
    tiled_attention_loops(q, k, v, causal=causal, block_q=block_q, block_k=block_k,
                          traffic=traffic)  # fmt: skip
    formula = tiled_hbm_bytes_for_blocks(n, 16, block_q, block_k, "float32", causal=causal,
                                         heads=2)  # fmt: skip
    assert traffic.total_bytes == formula
    assert traffic.tiles == 2 * 0 + visited_tiles(n, block_q, block_k, causal)
    assert traffic.read_bytes["Q"] == traffic.written_bytes["O"] == 2 * n * 16 * 4


def test_closed_form_count_agrees_with_the_schedule():
    for n, block_q, block_k in [(100, 32, 16), (10, 4, 3), (7, 8, 8), (129, 64, 10)]:
        for causal in (False, True):
            steps = tiling_schedule(n, block_q, block_k, causal)
            keys = sum(s.k_end - s.k_start for s in steps if not s.skipped)
            elements = 2 * n * 8 + 2 * 8 * keys + n  # Q, O, L once; K and V per visited tile
            assert tiled_hbm_bytes_for_blocks(n, 8, block_q, block_k, "float64",
                                              causal=causal) == elements * 8  # fmt: skip


def test_exactness_report_and_traffic_figure():
    row = compare_with_naive(130, head_dim=16, dtype="float32", causal=True, block_k=48)
    assert row.dtype == "float32" and row.causal
    assert 0 < row.naive_vs_exact < 1e-5 and row.vectorised_vs_exact <= 4 * row.naive_vs_exact
    figure = hbm_traffic_figure([1024, 4096], 64, [48 * 1024, 164 * 1024])
    assert figure.layout.xaxis.type == figure.layout.yaxis.type == "log"
    assert list(figure.data[0].y) == [naive_hbm_bytes(n, 64, "float16") for n in (1024, 4096)]
    assert "block_q = 96" in figure.data[1].name  # 48 KiB fp16: 24,576 / 256 = 96 rows


def test_hbm_formulas_hand_values():
    # Naive, n = 1024, d = 64, fp16: (4·1024² + 4·1024·64)·2 = (4,194,304 + 262,144)·2.
    assert naive_hbm_bytes(1024, 64, "float16") == 8_912_896
    # 100 KiB fp16: M = 51,200, block_q = ⌈51200/256⌉ = 200, block_k = min(200, 64) = 64.
    assert flash_block_sizes(64, 100 * 1024, "float16") == (200, 64)
    # T_r = ⌈1024/200⌉ = 6: (2·1024·64 + 2·1024·64·6 + 1024)·2 = 1,837,056 (the exercise's).
    assert tiled_hbm_bytes(1024, 64, 100 * 1024, "float16") == 1_837_056
    # Theorem 2: traffic · M / (n² d²) tends to 8 (elements) for n ≫ block_q.
    n, d, sram = 2**16, 64, 100 * 1024
    elements = tiled_hbm_bytes(n, d, sram, "float16") / 2
    assert elements * (sram / 2) / (n * n * d * d) == pytest.approx(8, rel=0.01)
    assert ON_CHIP_MEMORY["A100"].total_l1_shared_bytes == 108 * 192 * 1024  # ≈ 20 MiB


def test_trace_row_ends_at_the_exact_output():
    q, k, v = qkv(30, 8, std=1.5)
    reference = naive_attention(q, k, v, causal=True)
    steps = trace_row(q, k, v, 17, block_k=8, causal=True)
    assert [s.k_block for s in steps] == [0, 1, 2]  # key 17 is in block 2; block 3 starts at 24
    torch.testing.assert_close(steps[-1].partial_out, reference.out[17])
    assert steps[-1].m == pytest.approx(reference.scores[17, :18].max().item())
    assert steps[0].alpha == 0.0  # nothing to rescale before the first block
    assert all(later.m >= earlier.m for earlier, later in zip(steps, steps[1:], strict=False))


# --- the widget, driven without a browser ----------------------------------------------------


def test_tiling_explorer_steps_through_the_schedule():
    explorer = TilingExplorer(n=20, head_dim=4, block_q=5, block_k=5, causal=True)
    c = explorer.controls
    assert c["step"].max == 9  # T = 4: 4·5/2 = 10 computed tiles
    c["step"].value = 4  # order (0,0) (1,0) (1,1) (2,0) (2,1): now tile (2, 1)
    z = explorer.grid_figure.data[0].z
    assert z[10][5] == 4 and z[0][0] == 1 and z[0][19] == 2  # current, done, skipped
    assert z[12][17] == 2  # query block 2 against key block 3: skipped
    assert z[15][0] == 0  # query block 3 has not started
    assert z[5][7] == 3 and z[7][5] == 1  # done diagonal tile (1, 1): key 7 > query 5 masked

    assert "tile (2, 1)" in explorer.grid_figure.layout.title.text
    assert "K, V blocks (keys 5–9)" in explorer.on_chip.value
    c["row"].value = 3  # its block (0) is finished: its whole trace is shown
    assert list(explorer.row_figure.data[0].x) == [0]
    c["causal"].value = False
    assert c["step"].max == 15 and 2 not in {v for row in explorer.grid_figure.data[0].z
                                             for v in row}  # fmt: skip
    c["block_k"].value = 4
    assert c["step"].max == 4 * 5 - 1
    assert len(explorer.row_figure.data[2].x) == 5  # row 3's query block 0 is current


# --- memory: linear for tiled, quadratic for naive ----------------------------------------------


def test_tiled_peak_matches_formula_and_grows_linearly():
    rows = measure_tiled_memory([512, 1024, 2048], head_dim=32, block_k=64,
                                naive_budget_bytes=2**26)  # fmt: skip
    for row in rows:
        # The allocator peak equals the model to the byte (2nB + 2nd + 6n) · 4.
        assert row.tiled_peak_bytes == row.tiled_formula_bytes
        assert row.naive_formula_bytes <= row.naive_peak_bytes <= row.naive_formula_bytes * 1.01
    ns = [row.n for row in rows]
    assert abs(loglog_slope(ns, [r.tiled_peak_bytes for r in rows]) - 1) < 0.2
    assert abs(loglog_slope(ns, [r.naive_peak_bytes for r in rows]) - 2) < 0.2
    # (2·1024·256 + 2·1024·64 + 6·1024)·4 = (524,288 + 131,072 + 6,144)·4 = 2,646,016 B
    assert tiled_attention_peak_bytes(1024, 64, "float32", 256) == 2_646_016
    figure = tiling_memory_figure(rows, head_dim=32, block_k=64)
    assert figure.layout.xaxis.type == figure.layout.yaxis.type == "log"
    assert "(bytes)" in figure.layout.yaxis.title.text


def test_naive_is_skipped_above_the_budget():
    # naive peak at n = 256, d = 8: 2·256²·4 + 256·8·4 = 532,480 B > 500,000.
    rows = measure_tiled_memory([128, 256], head_dim=8, block_k=32, naive_budget_bytes=500_000)
    assert rows[0].naive_peak_bytes is not None and rows[1].naive_peak_bytes is None


def test_causal_peak_with_heads():
    q, k, v = random_qkv(512, 16, heads=3)
    peak = measure_peak_bytes(tiled_attention, q, k, v, causal=True, block_k=128)
    assert peak == tiled_attention_peak_bytes(512, 16, "float32", 128, heads=3)


# --- the exercise checks ----------------------------------------------------------------------
# Each check against its wrong answers: tests/corpus/nb03.py, run by tests/test_checks.py.


def test_notebook_03_registers_four_exercises():
    assert [e.id for e in exercises_for("03_tiling")] == [
        "online_softmax_step", "online_softmax_final", "tiled_hbm_bytes", "causal_tiles",
    ]  # fmt: skip


def test_traffic_ratio_with_real_tiles_and_unfused_passes():
    # Extra elementwise passes: each writes and reads the n x n matrix once more, 2 n² b.
    n, d = 1024, 64
    assert naive_hbm_bytes(n, d, "float16", extra_passes=2) == 8_912_896 + 2 * 2 * n * n * 2
    with pytest.raises(ValueError, match="extra_passes"):
        naive_hbm_bytes(n, d, extra_passes=-1)
    # The ratio is the quotient of the two exact counts.
    assert hbm_traffic_ratio(n, d, 128, 64) == naive_hbm_bytes(n, d) / tiled_hbm_bytes_for_blocks(
        n, d, 128, 64
    )
    # Long sequences: 4 n² against 2 n d · n / block_q -> 2 · block_q / d.
    n = 2**17
    assert hbm_traffic_ratio(n, 64, 128, 64) == pytest.approx(4, rel=0.01)
    assert hbm_traffic_ratio(n, 128, 128, 64) == pytest.approx(2, rel=0.01)
    assert hbm_traffic_ratio(n, 64, 128, 64, extra_passes=2) == pytest.approx(8, rel=0.01)
    # Blocks that fill the A100's 164 KiB of shared memory: block_q = 328 at d = 64.
    blocks = flash_block_sizes(64, ON_CHIP_MEMORY["A100"].max_shared_bytes_per_sm)
    assert blocks.block_q == 328
    assert hbm_traffic_ratio(n, 64, *blocks) == pytest.approx(2 * 328 / 64, rel=0.01)


def test_on_chip_memory_l2_sizes():
    # Whitepapers: 40 MB L2 on the A100, 50 MB on the H100 SXM5 (MB meaning MiB there).
    assert ON_CHIP_MEMORY["A100"].l2_bytes == 40 * 2**20
    assert ON_CHIP_MEMORY["H100"].l2_bytes == 50 * 2**20

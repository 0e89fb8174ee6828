"""attn_course.claims: every claim of the source texts gets a computed figure and verdict."""

from __future__ import annotations

import pytest

from attn_course import claims, cost
from attn_course.claims import HOLDS, NOT_ARITHMETIC, ROUGHLY, VERDICTS, WRONG, get_claim

pytestmark = pytest.mark.nb02


@pytest.fixture(scope="module")
def all_claims():
    return claims.all_claims()


def test_claims_are_well_formed(all_claims):
    ids = [c.id for c in all_claims]
    assert len(ids) == len(set(ids)) >= 25
    assert {c.source for c in all_claims} == {claims.TEXTBOOK, claims.INTERVIEW}
    for claim in all_claims:
        assert claim.verdict in VERDICTS
        assert claim.claim and claim.stated and claim.recomputed and claim.assumption
        # a text that is off must say what is right, with the arithmetic
        if claim.verdict == WRONG:
            assert claim.correction, claim.id
        if claim.verdict == NOT_ARITHMETIC:
            assert claim.stated_value is None


@pytest.mark.parametrize(
    ("claim_id", "verdict"),
    [
        ("scores_8k", HOLDS),
        ("scores_1m_2tb", HOLDS),
        ("scores_1m_no_device", HOLDS),
        ("matmul_n2d", ROUGHLY),  # n²d is multiply-adds; 2n²d FLOPs
        ("double_context_4x", ROUGHLY),  # 4x for attention, ~2.2x for a whole 7B model
        ("training_70gb", WRONG),  # one head per layer; 32 heads -> 2.2 TB
        ("a100_bandwidth", HOLDS),
        ("score_tensor_2gb", HOLDS),
        ("a100_30ms", WRONG),  # 2.1 ms
        ("crossover_n_d", WRONG),  # 4d / 6d
        ("frontier_100x", WRONG),  # ~20x
        ("decode_cache_t3_t2", ROUGHLY),
        ("kv_cache_50gb", HOLDS),  # 52.4 GB
        ("kv_cache_vs_weights", HOLDS),
        ("ttft_200k_h100", ROUGHLY),  # 8B: ~27 s; 70B: minutes
        ("mla_10x", ROUGHLY),
        ("flash_2_4x", NOT_ARITHMETIC),
        ("mamba_scan", WRONG),
        ("context_lengths", NOT_ARITHMETIC),
        ("oom_at_8k", NOT_ARITHMETIC),
        ("qk_macs", HOLDS),
        ("n4096_fp32_64mb", HOLDS),  # 64 MiB
        ("scores_dominate_memory", HOLDS),
        ("n32000_fp32_4gb", HOLDS),
        ("kv_growth_n2", WRONG),  # memory grows O(1) per token; reads are O(n²)
        ("alibi_rope_cheaper", WRONG),
        ("flash_3_5x", NOT_ARITHMETIC),
    ],
)
def test_verdicts(all_claims, claim_id, verdict):
    by_id = {c.id: c for c in all_claims}
    assert by_id[claim_id].verdict == verdict


def test_a100_claim_is_flagged_with_the_right_figure():
    claim = get_claim("a100_30ms")
    # 2 * 32768^2 * 2 B / 2.039e12 B/s = 2 * 2,147,483,648 / 2.039e12 = 2.106 ms
    assert claim.recomputed_value == pytest.approx(2.106e-3, rel=1e-3)
    assert claim.stated_value == 30e-3
    assert "2.11 ms" in claim.recomputed and "2.11 ms" in claim.correction


def test_training_claim_counts_heads():
    claim = get_claim("training_70gb")
    # 32 layers * 32 heads * 32768^2 * 2 B = 2,199,023,255,552 B (the text counted one head)
    assert claim.recomputed_value == 2_199_023_255_552
    assert "68.7 GB" in claim.correction  # 32 * 32768^2 * 2 B, the text's own product


def test_crossover_and_frontier_figures():
    assert get_claim("crossover_n_d").recomputed_value == 4 * 4096  # n* = d_ff = 4d
    # n / d_ff = 10^6 / 49,152 = 20.3
    assert get_claim("frontier_100x").recomputed_value == pytest.approx(20.345, rel=1e-3)


def test_kv_and_memory_figures():
    assert get_claim("kv_cache_50gb").recomputed_value == 52_428_800_000  # 2*32*4096*1e5*2
    assert get_claim("n4096_fp32_64mb").recomputed_value == 64 * 2**20
    assert get_claim("n32000_fp32_4gb").recomputed_value == 4_096_000_000  # 32000^2 * 4


def test_verdicts_are_computed_not_typed_in(monkeypatch):
    # If moving the tensor really took 30 ms, the claim would hold.
    monkeypatch.setattr(cost, "transfer_time_s", lambda n_bytes, bandwidth: 0.030)
    assert get_claim("a100_30ms").verdict == HOLDS
    # If d_ff were d, attention would overtake the FFN at n = d.
    monkeypatch.setattr(cost, "attention_ffn_crossover_n", lambda d, d_ff, **kw: d)
    assert get_claim("crossover_n_d").verdict == HOLDS


@pytest.mark.parametrize(
    ("stated", "recomputed", "verdict"),
    [
        (64e6, 64e6, HOLDS),
        (50e9, 52.4e9, HOLDS),  # 4.8 % off
        (4.0, 2.15, ROUGHLY),  # 1.86x
        (1.0, 2.0, ROUGHLY),  # exactly 2x
        (30e-3, 2.1e-3, WRONG),
        (100, 20, WRONG),
    ],
)
def test_verdict_from_ratio(stated, recomputed, verdict):
    assert claims.verdict_from_ratio(stated, recomputed) == verdict


def test_verdict_from_ratio_refuses_non_positive():
    with pytest.raises(ValueError, match="stated and recomputed must be > 0"):
        claims.verdict_from_ratio(0, 1)


def test_unknown_claim_lists_the_ids():
    with pytest.raises(ValueError, match=r"claim_id must be one of \[.*'a100_30ms'"):
        get_claim("nope")


def test_tables(all_claims):
    rows = claims.claims_table(all_claims)
    assert len(rows) == len(all_claims)
    assert rows[0]["id"] == all_claims[0].id and "verdict" in rows[0]
    markdown = claims.claims_markdown(all_claims)
    lines = markdown.splitlines()
    assert lines[0].startswith("| source | claim | stated | recomputed | verdict")
    assert len(lines) == 2 + len(all_claims)
    page = claims.claims_html(all_claims)
    assert page.count("<tr>") == 1 + len(all_claims)
    assert "<b style='color:#c62828'>wrong</b>" in page
    assert "Q Kᵀ" in page and "<script" not in page


def test_sources_are_described_for_a_reader_without_them(all_claims):
    # The table names each source by a label a learner can look up in SOURCES, not by a
    # section number of a book they do not have.
    assert set(claims.SOURCES) == {claims.TEXTBOOK, claims.INTERVIEW}
    for label, description in claims.SOURCES.items():
        assert "§" not in label and len(description) > 100
        assert f"**{label}**: {description}." in claims.sources_markdown()
    assert {c.source for c in all_claims} <= set(claims.SOURCES)

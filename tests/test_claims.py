"""attn_course.claims: every statement of the source texts gets computed checks and a verdict."""

from __future__ import annotations

import dataclasses
import re

import pytest

from attn_course import claims, cost
from attn_course.claims import (
    HOLDS,
    NOT_CHECKABLE,
    PARTLY,
    ROUGHLY,
    VERDICTS,
    WRONG,
    Check,
    Claim,
    get_claim,
)

pytestmark = pytest.mark.nb02

ISO_DATE = re.compile(r"\b(19|20)\d\d-[01]\d-[0-3]\d\b")


@pytest.fixture(scope="module")
def all_claims():
    return claims.all_claims()


# --- the audit as a whole -------------------------------------------------------------------


def test_claims_are_well_formed(all_claims):
    ids = [c.id for c in all_claims]
    assert len(ids) == len(set(ids)) >= 65
    assert {c.source for c in all_claims} == {claims.TEXTBOOK, claims.INTERVIEW}
    for claim in all_claims:
        assert claim.verdict in VERDICTS
        assert claim.claim and claim.stated and claim.recomputed and claim.where
        if claim.verdict == NOT_CHECKABLE:
            assert claim.not_checkable.startswith("not checkable, because ")
            assert claim.stated_value is None and not claim.checks
            continue
        # a checked claim says where its figures come from and which rules judge it
        assert claim.reference and claim.reference != "—", claim.id
        assert claim.rule and claim.checks
        # a text that is off must say what is right, with the arithmetic
        if claim.verdict in (WRONG, PARTLY):
            assert claim.correction, claim.id


def test_documented_facts_name_their_source(all_claims):
    # a fact (yes/no, a name) or a product figure is looked up, so it must say where
    for claim in all_claims:
        for check in claim.checks:
            if isinstance(check.found, (bool, str)):
                assert check.source, (claim.id, check.label)
    # product facts carry a date: when announced, or when the vendor page was consulted
    for key, fact in claims.CONTEXTS.items():
        assert ISO_DATE.fullmatch(fact.date), key
        assert fact.source and fact.value > 0
        assert ISO_DATE.search(fact.cite())
    for fact in (*claims.SPEEDUPS.values(), claims.ALIBI_TRAIN_SHORT, claims.GEMINI_RECALL):
        assert ISO_DATE.fullmatch(fact.date)
        assert "arXiv" in fact.source or "repository" in fact.source


def test_context_checks_cite_a_dated_source(all_claims):
    context_claims = [c for c in all_claims if c.id.startswith("context_")]
    assert len(context_claims) >= 8
    for claim in context_claims:
        for check in claim.checks:
            assert ISO_DATE.search(check.source) or "config" in check.source, check.label


def test_the_statements_the_review_found_missing_are_audited(all_claims):
    ids = {c.id for c in all_claims}
    # position encodings, random features, "routing", chunked prefill, which model had which
    # context when, whether prefill is avoidable -- and the rest of both texts
    expected = {
        "position_bias_at_scores", "alibi_rope_cheaper", "performer_features",
        "sparse_and_routing", "chunked_prefill", "prefill_unavoidable", "context_gpt3",
        "context_gpt4", "context_claude2_first", "context_claude_200k_1m", "context_gemini",
        "context_open_weights", "context_deepseek", "none_naive", "early_512", "mamba_scan",
        "linformer_projects_kv", "retnet_rwkv_recurrence", "kv_cache_shrinkers",
        "matmuls_dominate", "backward_materialise_twice", "n32000_needs_approximation",
    }  # fmt: skip
    assert expected <= ids


EXPECTED = {
    # textbook
    "double_context_4x": HOLDS,  # said of attention: exactly 4x (whole model 2.15x beside)
    "redesign_not_tweak": NOT_CHECKABLE,
    "scores_8k": HOLDS,
    "million_gemini_claude": HOLDS,
    "scores_1m_2tb": HOLDS,
    "scores_1m_no_device": HOLDS,
    "matmul_n2d": ROUGHLY,  # n²d is multiply-adds; 2n²d FLOPs
    "matmuls_dominate": ROUGHLY,  # 102x the softmax, 0.5x the projections at n = 4096
    "per_layer_o_n2d": HOLDS,
    "forward_o_ln2d": ROUGHLY,  # the whole forward grows as n^1.1 at 4K
    "backward_materialise_twice": ROUGHLY,  # two at the forward peak, one kept
    "training_70gb": WRONG,  # one head per layer; 32 heads -> 2.2 TB
    "pre_flash_remedies": NOT_CHECKABLE,
    "a100_bandwidth": HOLDS,
    "score_tensor_2gb": HOLDS,
    "a100_30ms": WRONG,  # 2.1 ms
    "softmax_read_modify_write": HOLDS,
    "bandwidth_bill": HOLDS,
    "oom_at_8k": NOT_CHECKABLE,
    "early_512": ROUGHLY,  # GPT-2 had 1024
    "ffn_more_parameters": HOLDS,
    "ffn_o_nd2": HOLDS,
    "crossover_n_d": WRONG,  # 4d / 6d
    "frontier_100x": ROUGHLY,  # dense ~20x, MoE ~103x: depends on the architecture
    "data_chicken_and_egg": NOT_CHECKABLE,
    "flash_memory_compute": HOLDS,
    "flash_2_4x": ROUGHLY,  # FA-1's own figures 2.4-3x; BERT-large 1.15x
    "linear_o_nd2": HOLDS,
    "linformer_projects_kv": HOLDS,
    "performer_features": PARTLY,  # random features yes, Fourier no
    "retnet_rwkv_recurrence": HOLDS,
    "mamba_scan": PARTLY,  # it has a conv; the selective part is a scan
    "sparse_and_routing": PARTLY,  # MoE routing is in the FFN
    "decode_cache_t3_t2": ROUGHLY,
    "kv_cache_50gb": HOLDS,  # 52.4 GB
    "kv_cache_vs_weights": ROUGHLY,  # MHA yes, GQA no
    "kv_cache_shrinkers": HOLDS,
    "training_scores_inference_cache": ROUGHLY,
    "ttft_200k_h100": ROUGHLY,  # 8B: ~27 s; 70B: minutes
    "chunked_prefill": PARTLY,  # chunking moves no FLOPs
    "prefill_unavoidable": ROUGHLY,  # prefix caching
    "context_gpt3": HOLDS,
    "context_gpt4": HOLDS,
    "context_claude2_first": ROUGHLY,  # 100K came with Claude 1 over the API
    "context_claude_200k_1m": PARTLY,  # Sonnet 4.5 is 200K
    "context_gemini": ROUGHLY,  # 2.5 Pro's 2M was announced, not shipped
    "context_open_weights": HOLDS,
    "context_deepseek": HOLDS,
    "mla_10x": ROUGHLY,  # 57x vs MHA, 3.6x vs GQA-8
    "none_naive": PARTLY,  # GPT-3 predates FlashAttention
    "gemini_subquadratic": NOT_CHECKABLE,
    "context_frontier_range": HOLDS,
    "takeaway_judgements": NOT_CHECKABLE,
    # interview
    "scores_must_be_stored": ROUGHLY,
    "quadratic_prohibitive": ROUGHLY,
    "qk_macs": HOLDS,
    "n4096_fp32_64mb": HOLDS,  # 64 MiB
    "scores_dominate_memory": HOLDS,
    "n1000_fine": HOLDS,
    "n32000_fp32_4gb": HOLDS,
    "n32000_needs_approximation": WRONG,
    "kv_growth_n2": ROUGHLY,  # true of the bytes read, not of the size
    "sparse_o_n": HOLDS,
    "flash_o_n2_o_n": HOLDS,
    "linear_o_n": HOLDS,
    "sliding_window_onw": HOLDS,
    "alibi_rope_cheaper": PARTLY,  # ALiBi: only by training short; RoPE: not at all
    "position_bias_at_scores": PARTLY,  # RoPE is a rotation
    "flash_most_adopted": NOT_CHECKABLE,
    "flash_3_5x": ROUGHLY,
}


def test_every_claim_has_an_expected_verdict(all_claims):
    assert {c.id for c in all_claims} == set(EXPECTED)


@pytest.mark.parametrize(("claim_id", "verdict"), EXPECTED.items())
def test_verdicts(all_claims, claim_id, verdict):
    by_id = {c.id: c for c in all_claims}
    assert by_id[claim_id].verdict == verdict


# --- every verdict follows from the stated figure ---------------------------------------------


def _fixed(check: Check):
    """A stated figure that agrees with ours under the check's rule."""
    found = check.found
    if check.rule == "range":
        return (found, found)
    if check.rule == "more than":
        return found / 2 if found > 0 else found - 1
    if check.rule == "less than":
        return found * 2 if found > 0 else found + 1
    return found  # ratio, exponent, same


def _broken(check: Check):
    """A stated figure that disagrees with ours under the check's rule."""
    found = check.found
    if check.rule == "ratio":
        return check.stated * 10
    if check.rule == "exponent":
        return check.stated + 5
    if check.rule == "range":
        return (check.stated[0] * 10, check.stated[1] * 10)
    if check.rule == "more than":
        return found * 10 if found > 0 else found + 1
    if check.rule == "less than":
        return found / 10 if found > 0 else found - 1
    return (not found) if isinstance(found, bool) else f"not {found}"


@pytest.mark.parametrize("claim_id", [k for k, v in EXPECTED.items() if v != NOT_CHECKABLE])
def test_changing_the_stated_figure_changes_the_verdict(all_claims, claim_id):
    claim = next(c for c in all_claims if c.id == claim_id)
    if claim.verdict == HOLDS:
        # e.g. "64 million" -> "640 million": the same arithmetic now says wrong
        mutated = claim.with_stated(_broken)
        assert mutated.verdict == WRONG
    else:
        # the text had said what we compute: every check, hence the claim, now holds
        mutated = claim.with_stated(_fixed)
        assert mutated.verdict == HOLDS
    assert mutated.verdict != claim.verdict


def test_a_tenfold_figure_breaks_every_numeric_claim_that_holds(all_claims):
    for claim in all_claims:
        ratio_checks = [c for c in claim.checks if c.rule == "ratio"]
        if claim.verdict == HOLDS and len(ratio_checks) == len(claim.checks):
            assert claim.with_stated(lambda c: c.stated * 10).verdict == WRONG, claim.id


def test_verdicts_are_computed_not_typed_in(monkeypatch):
    # If moving the tensor really took 30 ms, the claim would hold.
    monkeypatch.setattr(cost, "transfer_time_s", lambda n_bytes, bandwidth: 0.030)
    assert get_claim("a100_30ms").verdict == HOLDS
    # If d_ff were d, attention would overtake the FFN at n = d.
    monkeypatch.setattr(cost, "attention_ffn_crossover_n", lambda d, d_ff, **kw: d)
    assert get_claim("crossover_n_d").verdict == HOLDS
    # If a mixture-of-experts model were as FFN-heavy as a dense one, 100x would be wrong.
    monkeypatch.setattr(cost, "moe_attention_ffn_ratio", lambda *a, **kw: 20.0)
    assert get_claim("frontier_100x").verdict == WRONG


def test_the_kv_growth_verdict_follows_the_readings(monkeypatch):
    claim = get_claim("kv_growth_n2")
    verdicts = {c.label: c.verdict for c in claim.checks}
    assert verdicts["whole generation: bytes read"] == HOLDS
    assert verdicts["whole generation: the cache's size"] == WRONG
    # a text that had said "O(n) in all" would be right about the size and wrong about
    # the reading: still true under one reading only
    assert claim.with_stated(lambda c: c.stated - 1).verdict == ROUGHLY


def test_alibi_is_judged_against_its_own_paper(monkeypatch):
    claim = get_claim("alibi_rope_cheaper")
    alibi = claim.parts[0]
    assert [c.verdict for c in alibi] == [WRONG, HOLDS]  # same length / train short
    assert "11%" in alibi[1].source  # the abstract's figure
    # had ALiBi's paper found training short no cheaper, nothing of the claim would hold
    monkeypatch.setattr(
        claims, "ALIBI_TRAIN_SHORT", dataclasses.replace(claims.ALIBI_TRAIN_SHORT, value=1.05)
    )
    assert get_claim("alibi_rope_cheaper").verdict == WRONG


def test_the_mamba_sentence_is_partly_wrong():
    claim = get_claim("mamba_scan")
    assert [c.verdict for c in claim.checks] == [HOLDS, WRONG, HOLDS]
    assert "scan" in claim.correction and "S4" in claim.correction


def test_doubling_is_scored_on_attention_with_the_whole_model_beside():
    claim = get_claim("double_context_4x")
    assert claim.recomputed_value == pytest.approx(4.0)
    assert "2.15x" in claim.recomputed  # Llama-2-7B, 4096 -> 8192


# --- figures --------------------------------------------------------------------------------


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
    dense, moe = (c.found for c in get_claim("frontier_100x").checks)
    assert dense == pytest.approx(20.345, rel=1e-3)  # n / d_ff = 10^6 / 49,152
    # DeepSeek-V3: 81,920 · 10^6 / (9 experts · 6 · 7168 · 2048 + router) = 102.9
    assert moe == pytest.approx(102.9, abs=0.1)
    assert "depends on the architecture" in get_claim("frontier_100x").correction


def test_kv_and_memory_figures():
    assert get_claim("kv_cache_50gb").recomputed_value == 52_428_800_000  # 2*32*4096*1e5*2
    assert get_claim("n4096_fp32_64mb").recomputed_value == 64 * 2**20
    assert get_claim("n32000_fp32_4gb").recomputed_value == 4_096_000_000  # 32000^2 * 4
    mha, gqa = (c.found for c in get_claim("mla_10x").checks)
    assert mha == pytest.approx(2 * 128 * 128 / 576) and gqa == pytest.approx(2 * 8 * 128 / 576)


def test_speed_claims_cite_measurements_with_their_gpus():
    for claim_id in ("flash_2_4x", "flash_3_5x"):
        claim = get_claim(claim_id)
        assert len(claim.checks) >= 5
        for check in claim.checks:
            assert "A100" in check.label + check.source and check.source
        assert "open" in claim.correction and "230 TFLOP/s" in claim.correction
    bert = next(c for c in get_claim("flash_2_4x").checks if "BERT" in c.label)
    assert bert.found == 1.15 and bert.verdict == ROUGHLY  # 15 % end to end


def test_chunked_prefill_moves_no_flops():
    chunked = next(c for c in get_claim("chunked_prefill").checks if "chunked" in c.label)
    assert chunked.found == pytest.approx(1.0, rel=1e-12) and chunked.verdict == WRONG


def test_performer_features_are_positive_and_fourier_ones_are_not():
    assert claims._negative_kernel_estimates("positive") == 0.0
    assert claims._negative_kernel_estimates("trigonometric") > 0.2
    with pytest.raises(ValueError, match="kind must be"):
        claims._negative_kernel_estimates("cosine")


# --- the rules and how they combine ---------------------------------------------------------------


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


@pytest.mark.parametrize(
    ("rule", "stated", "found", "verdict"),
    [
        ("exponent", 2.0, 2.05, HOLDS),
        ("exponent", 2.0, 1.6, ROUGHLY),
        ("exponent", 2.0, 1.1, WRONG),
        ("range", (2.0, 4.0), 3.0, HOLDS),
        ("range", (2.0, 4.0), 1.15, ROUGHLY),
        ("range", (2.0, 4.0), 9.0, WRONG),
        ("more than", 1.0, 1.5, HOLDS),
        ("more than", 1.0, 0.99, WRONG),
        ("less than", 1.0, 0.89, HOLDS),
        ("less than", 1.0, 1.002, WRONG),
        ("same", True, True, HOLDS),
        ("same", "Claude 2", "Claude 1", WRONG),
    ],
)
def test_rules(rule, stated, found, verdict):
    assert Check("x", stated, found, rule).verdict == verdict


def _claim(*parts, **changes):
    base = dict(
        id="x", source=claims.TEXTBOOK, where="w", claim="c", stated="s", recomputed="r",
        assumption="a", reference="ref", parts=parts,
    )  # fmt: skip
    return Claim(**{**base, **changes})


def _check(verdict):
    found = {HOLDS: 1.0, ROUGHLY: 1.5, WRONG: 5.0}[verdict]
    return Check(verdict, 1.0, found, "ratio")


@pytest.mark.parametrize(
    ("parts", "verdict"),
    [
        ([[HOLDS]], HOLDS),
        ([[HOLDS, WRONG]], ROUGHLY),  # true under one reading
        ([[WRONG, ROUGHLY]], ROUGHLY),
        ([[WRONG, WRONG]], WRONG),
        ([[HOLDS], [ROUGHLY]], ROUGHLY),
        ([[HOLDS], [WRONG]], PARTLY),
        ([[ROUGHLY], [WRONG]], PARTLY),
        ([[WRONG], [WRONG]], WRONG),
        ([[HOLDS, WRONG], [WRONG]], PARTLY),
    ],
)
def test_parts_and_readings_combine(parts, verdict):
    claim = _claim(*(tuple(_check(v) for v in part) for part in parts))
    assert claim.verdict == verdict


def test_claims_refuse_to_be_half_made():
    with pytest.raises(ValueError, match="either checks .* or a not_checkable reason"):
        _claim()
    with pytest.raises(ValueError, match="either checks"):
        _claim((_check(HOLDS),), not_checkable="not checkable, because x")
    with pytest.raises(ValueError, match="must start 'not checkable, because'"):
        _claim(not_checkable="cannot tell")
    with pytest.raises(ValueError, match="every part needs at least one check"):
        _claim(())
    with pytest.raises(ValueError, match="rule must be one of"):
        Check("x", 1.0, 1.0, "about")


def test_unknown_claim_lists_the_ids():
    with pytest.raises(ValueError, match=r"claim_id must be one of \[.*'a100_30ms'"):
        get_claim("nope")


# --- what the notebook shows --------------------------------------------------------------------


def test_tables(all_claims):
    rows = claims.claims_table(all_claims)
    assert len(rows) == len(all_claims)
    assert rows[0]["id"] == all_claims[0].id and rows[0]["verdict"] == all_claims[0].verdict
    assert "[ratio] -> holds" in rows[0]["checks"]
    markdown = claims.claims_markdown(all_claims)
    lines = markdown.splitlines()
    assert lines[0].startswith("| id | source | where | claim | stated | recomputed | checks")
    assert len(lines) == 2 + len(all_claims)
    page = claims.claims_html(all_claims)
    assert page.count("<tr>") == 1 + len(all_claims)
    assert "<b style='color:#c62828'>wrong</b>" in page
    assert "<b style='color:#ad1457'>partly wrong</b>" in page
    assert "Q Kᵀ" in page and "<script" not in page


def test_verdict_counts_and_summary(all_claims):
    counts = claims.verdict_counts(all_claims)
    assert list(counts) == list(VERDICTS) and sum(counts.values()) == len(all_claims)
    summary = claims.verdicts_markdown(all_claims)
    assert summary.count("\n") == sum(1 for n in counts.values() if n) - 1
    assert f"* **{WRONG}** ({counts[WRONG]}): " in summary and "`a100_30ms`" in summary


def test_sources_are_described_for_a_reader_without_them(all_claims):
    # The table names each source by a label a learner can look up in SOURCES, not by a
    # section number of a book they do not have.
    assert set(claims.SOURCES) == {claims.TEXTBOOK, claims.INTERVIEW}
    for label, description in claims.SOURCES.items():
        assert "§" not in label and len(description) > 100
        assert f"**{label}**: {description}." in claims.sources_markdown()
    assert {c.source for c in all_claims} <= set(claims.SOURCES)

"""Notebook 01: the memory measurements agree with the byte formulas, and grow as n².

Tolerances, stated once:

* allocator peak (torch.profiler): within 0.5 % of ``naive_attention_peak_bytes`` for
  float32/float64/float16. The formula ignores only the row max and sum vectors
  (n·4 bytes each in float32), so it should be this close. bfloat16 may add up to 512 KiB:
  on this CPU the bf16 matmul (aten::bmm) allocates a scratch buffer of 140-330 kB
  that is freed before it returns (measured at n = 512-2048, head_dim 32, 2 heads).
* resident memory (VmHWM in a fresh process): at least the formula, at most
  formula · 1.05 + 2 MiB. Measured on the course's 2-core machine, float32, head_dim 64:
  n = 1024: 9.59 MB vs 8.65 MB; 2048: 35.4 vs 34.1 MB; 4096: 137.6 vs 135.3 MB
  (library workspaces and page granularity add about 1-2.5 MB).
"""

from __future__ import annotations

import pytest
import torch

from attn_course.measure import measure_peak_bytes, random_qkv
from attn_course.memory import (
    format_table,
    measure_naive_attention,
    measure_naive_attention_rss,
    peak_rss_supported,
    tensor_bytes,
)
from attn_course.scores import naive_attention, naive_attention_peak_bytes

pytestmark = pytest.mark.nb01

MIB = 2**20


# --- tensor bytes -----------------------------------------------------------------------------


def test_tensor_bytes_counts_storage_once():
    x = torch.zeros(100, 10)  # 1000 float32 = 4000 B
    assert tensor_bytes(x) == 4000
    assert tensor_bytes(x, x[:10], x.T) == 4000  # views share x's storage
    assert tensor_bytes(x, torch.zeros(5, dtype=torch.float16)) == 4010  # + 5·2
    with pytest.raises(ValueError, match="tensors"):
        tensor_bytes([1, 2])


# --- the allocator peak -----------------------------------------------------------------------


@pytest.mark.parametrize("n", [1024, 2048])
@pytest.mark.parametrize("causal", [False, True])
def test_allocator_peak_matches_formula(n, causal):
    q, k, v = random_qkv(n, 64, "float32")
    measured = measure_peak_bytes(naive_attention, q, k, v, causal=causal)
    formula = naive_attention_peak_bytes(n, 64, "float32")  # 8,650,752 B at n = 1024
    assert formula <= measured <= formula * 1.005


def _matmul_scratch(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> int:
    """Bytes the CPU matmuls of attention allocate beyond their results, on this machine.

    For half-precision dtypes the CPU matmul may allocate a scratch buffer inside the call,
    how large depends on the CPU (oneDNN picks a kernel per instruction set: on a CPU with
    AMX and AVX512-FP16, P V in float16 takes 1.4 MB for the shapes below, elsewhere none).
    It is measured here rather than assumed, so that the formula is tested exactly."""
    scores = q @ k.transpose(-2, -1)
    extra_qk = measure_peak_bytes(torch.matmul, q, k.transpose(-2, -1)) - _bytes(scores)
    extra_pv = measure_peak_bytes(torch.matmul, scores, v) - _bytes(scores @ v)
    return max(extra_qk, extra_pv, 0)


def _bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


@pytest.mark.parametrize("dtype", ["float64", "float16", "bfloat16"])
def test_allocator_peak_matches_formula_other_dtypes(dtype):
    q, k, v = random_qkv(512, 32, dtype, heads=2)
    measured = measure_peak_bytes(naive_attention, q, k, v)
    formula = naive_attention_peak_bytes(512, 32, dtype, heads=2)
    assert formula <= measured <= formula * 1.005 + _matmul_scratch(q, k, v)


def test_allocator_peak_grows_four_times_when_n_doubles():
    peaks = [measure_peak_bytes(naive_attention, *random_qkv(n, 64)) for n in (1024, 2048)]
    # (2·2048²·4 + 2048·256) / (2·1024²·4 + 1024·256) = 34,078,720 / 8,650,752 = 3.94:
    # 4× for S and P, 2× for the small output.
    assert 3.85 < peaks[1] / peaks[0] < 4.0


# --- resident memory ------------------------------------------------------------------------


needs_proc = pytest.mark.skipif(not peak_rss_supported(), reason="needs Linux /proc clear_refs")


@needs_proc
def test_rss_peak_matches_formula_and_grows_quadratically():
    sizes = (1024, 2048, 4096)
    measured = [measure_naive_attention_rss(n) for n in sizes]
    for n, rss in zip(sizes, measured, strict=True):
        formula = naive_attention_peak_bytes(n, 64, "float32")
        assert formula <= rss <= formula * 1.05 + 2 * MIB, (n, rss, formula)
    # Overheads that grow more slowly than n² (library workspaces, page granularity: 2–5 MB
    # here, depending on the CPU) pull both ratios below 4; linear growth would give 2.
    assert 3.2 < measured[1] / measured[0] < 4.1
    assert 3.6 < measured[2] / measured[1] < 4.1


# --- the table and its helpers ---------------------------------------------------------------


def test_measure_naive_attention_rows_agree_with_formulas():
    rows = measure_naive_attention([64, 128], head_dim=16, rss=False, repeats=1)
    assert [row.n for row in rows] == [64, 128]
    for row in rows:
        # float32, one head: S is n²·4 B (64² · 4 = 16,384 B); S and P measured the same.
        assert row.formula_score_bytes == row.score_bytes == row.probs_bytes == row.n**2 * 4
        assert row.formula_peak_bytes <= row.peak_bytes <= row.formula_peak_bytes * 1.01
        assert row.rss_peak_bytes is None and row.seconds > 0
    table = format_table(rows)
    assert "peak alloc" in table and "n/a" in table and len(table.splitlines()) == 5
    with pytest.raises(ValueError, match="ns"):
        measure_naive_attention([])

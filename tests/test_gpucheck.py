"""The one-shot GPU check, run here in its dry-run mode: every step but the GPU launches."""

from __future__ import annotations

import json
import math

import pytest
import torch

from attn_course.bench import gpucheck

pytestmark = pytest.mark.nb04


@pytest.fixture(scope="module")
def dry_record(tmp_path_factory):
    path = gpucheck.run_gpucheck(tmp_path_factory.mktemp("gpucheck"), dry_run=True)
    return path, json.loads(path.read_text())


def test_a_dry_run_goes_through_every_step(dry_record):
    path, record = dry_record
    assert record["schema"] == gpucheck.SCHEMA and record["dry_run"] is True
    assert list(record["steps"]) == ["kernel_tests", "device_peaks", "headline"]
    for name, step in record["steps"].items():
        assert step["status"].startswith("dry run"), (name, step)
        assert 0 <= step["seconds"] <= step["budget_s"]
    assert path.name.startswith("gpucheck_cpu") and record["date"][:10] in path.name


def test_the_kernel_tests_it_would_run_are_the_kernel_test_files(dry_record):
    step = dry_record[1]["steps"]["kernel_tests"]
    assert all(name in step["command"] for name in gpucheck.KERNEL_TESTS)
    assert step["counts"]["tests collected"] > 100


def test_the_peaks_and_the_benchmark_produce_numbers(dry_record):
    steps = dry_record[1]["steps"]
    assert steps["device_peaks"]["bf16_matmul_tflops"] > 0
    assert steps["device_peaks"]["copy_gb_per_s"] > 0
    [result] = steps["headline"]["record"]["results"]
    assert result["implementation"] == "sdpa" and result["status"] == "ok"
    assert result["grad_max_abs_error"] < 1e-5


def test_the_peak_formulas():
    def one_ms(call):
        call()
        return 1.0

    cpu = torch.device("cpu")
    assert math.isclose(gpucheck.matmul_tflops(64, cpu, one_ms), 2 * 64**3 / 1e-3 / 1e12)
    assert math.isclose(gpucheck.copy_bandwidth(10**6, cpu, one_ms), 2 * 10**6 / 1e-3 / 1e9)


def test_the_headline_benchmark_is_the_one_the_issue_asks_for():
    configs = gpucheck.headline_configs(dry_run=False)
    assert {c.n for c in configs} == {4096, 8192, 16384}
    assert {c.head_dim for c in configs} == {64, 128} and {c.dtype for c in configs} == {"bfloat16"}
    assert {(c.causal, c.backward) for c in configs} == {(a, b) for a in (0, 1) for b in (0, 1)}
    assert len(configs) == 3 * 2 * 2 * 2
    assert sum(gpucheck.STEP_BUDGET_S.values()) < 8 * 60


def test_a_failing_step_is_recorded_and_the_next_one_runs(tmp_path, monkeypatch):
    def broken(dry_run, device):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(gpucheck, "device_peaks", broken)
    monkeypatch.setattr(gpucheck, "kernel_tests", lambda dry_run, budget: {"status": "ok"})
    record = json.loads(gpucheck.run_gpucheck(tmp_path, dry_run=True).read_text())
    assert record["steps"]["device_peaks"]["status"] == "failed"
    assert record["steps"]["device_peaks"]["error"] == "RuntimeError: out of memory"
    assert record["steps"]["headline"]["status"].startswith("dry run")
    assert gpucheck.main(["--out", str(tmp_path), "--dry-run"]) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_without_a_gpu_it_says_so(tmp_path, capsys):
    assert gpucheck.main(["--out", str(tmp_path)]) == 2
    assert "no CUDA device" in capsys.readouterr().err

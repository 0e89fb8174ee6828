"""The benchmark command, its records and figure, and the checks of notebook 04's exercises."""

from __future__ import annotations

import ast
import json
import math
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from attn_course.bench import flash as flash_suite
from attn_course.bench.__main__ import SUITES
from attn_course.bench.__main__ import main as bench_main
from attn_course.bench.harness import (
    INTERPRETER_MAX_N,
    BenchConfig,
    configs_from,
)
from attn_course.bench.plots import benchmark_figure
from attn_course.bench.records import (
    SCHEMA,
    BenchResult,
    load_records,
    ratios,
    record_label,
    scaling_exponent,
    write_record,
)
from attn_course.checks import get_exercise
from attn_course.checks.flash import _blocked_reference
from attn_course.cost import attention_flops, attention_matmul_flops, tflops_per_s
from attn_course.grade import NOT_ATTEMPTED, run_check

pytestmark = pytest.mark.nb04

RECORD_KEYS = {
    "schema", "benchmark", "smoke", "date", "host", "device", "kernel_mode", "versions",
    "command", "timing", "peak_memory", "flops", "error_max_n", "results",
}  # fmt: skip


# --- the smoke run: a real record ---------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_record(tmp_path_factory):
    path = tmp_path_factory.mktemp("records") / "smoke.json"
    assert bench_main(["flash", "--smoke", "--quiet", "--out", str(path)]) == 0
    return json.loads(path.read_text())


def test_smoke_record_has_the_schema(smoke_record):
    assert set(smoke_record) >= RECORD_KEYS
    assert smoke_record["schema"] == SCHEMA
    assert smoke_record["smoke"] is True
    assert smoke_record["command"] == "python -m attn_course.bench flash --smoke --quiet --out " + \
        smoke_record["command"].split("--out ")[1]  # fmt: skip
    assert smoke_record["versions"]["torch"] == torch.__version__
    assert smoke_record["versions"]["python"].count(".") == 2
    assert smoke_record["versions"]["triton"]
    device = smoke_record["device"]
    assert device["type"] in ("cpu", "cuda") and device["name"]
    assert smoke_record["date"].endswith("Z") and smoke_record["date"][:2] == "20"
    assert smoke_record["kernel_mode"] in ("gpu", "interpreter")


def test_every_config_has_a_result_or_a_reason_for_every_implementation(smoke_record):
    results = smoke_record["results"]
    configs = {json.dumps(r["config"], sort_keys=True) for r in results}
    # smoke_configs: n in (64, 128, 256) x causal in (no, yes) = 6 configurations
    assert len(configs) == 6
    assert len(results) == 6 * len(flash_suite.IMPLEMENTATIONS)
    for r in results:
        assert r["label"] == flash_suite.LABELS[r["implementation"]]
        if r["status"] == "ok":
            assert r["ms"] > 0 and r["peak_bytes"] > 0 and r["tflops"] > 0
            assert r["reason"] is None
        else:
            assert r["reason"], f"{r['implementation']} {r['status']} without a reason"
            assert r["ms"] is None


def test_torch_paths_are_timed_and_accurate(smoke_record):
    for r in smoke_record["results"]:
        if r["implementation"] in ("naive", "sdpa", "sdpa_math"):
            assert r["status"] == "ok"
            # float32 against the float64 reference: rounding only (n <= error_max_n)
            assert r["max_abs_error"] < 1e-5
            # the record's TFLOP/s is its FLOPs over its time
            c = r["config"]
            flops = attention_flops(c["batch"], c["heads"], c["n"], c["head_dim"],
                                    causal=c["causal"])  # fmt: skip
            assert r["tflops"] == pytest.approx(flops / (r["ms"] * 1e-3) / 1e12)


def test_naive_peak_holds_s_and_p_and_flash_does_not(smoke_record):
    by_impl = {
        (r["implementation"], r["config"]["n"], r["config"]["causal"]): r
        for r in smoke_record["results"]
    }
    # n=256, 2 heads, float32: S and P are 2 · 2 · 256² · 4 B = 1,048,576 B together.
    naive = by_impl[("naive", 256, False)]
    assert naive["peak_bytes"] >= 2 * 2 * 256**2 * 4
    if by_impl[("sdpa_flash", 256, False)]["status"] == "ok":  # PyTorch's CPU flash path
        assert by_impl[("sdpa_flash", 256, False)]["peak_bytes"] < naive["peak_bytes"] / 2


def test_triton_is_checked_not_timed_in_the_interpreter(smoke_record):
    triton_results = [r for r in smoke_record["results"] if r["implementation"] == "triton"]
    if smoke_record["kernel_mode"] != "interpreter":
        pytest.skip("kernels run on a GPU here; the GPU path is timed")
    for r in triton_results:
        assert r["ms"] is None and r["tflops"] is None
        if r["config"]["n"] <= INTERPRETER_MAX_N:
            assert r["status"] == "checked, not timed"
            assert r["max_abs_error"] < 1e-5  # correct: float32 vs float64
        else:
            assert r["status"] == "unavailable" and "interpreter" in r["reason"]


def test_cuda_only_backends_are_unavailable_on_cpu_with_a_reason(smoke_record):
    if smoke_record["device"]["type"] != "cpu":
        pytest.skip("a GPU run")
    for r in smoke_record["results"]:
        if r["implementation"] in ("sdpa_efficient", "sdpa_cudnn"):
            assert r["status"] == "unavailable" and "CUDA" in r["reason"]


def test_a_configuration_the_kernel_refuses_is_recorded_not_raised():
    # The course's kernel takes head dims that are multiples of 8 from 16 to 256 (it pads
    # them to a power of two): 44 is a ValueError.
    record = flash_suite.run_flash_benchmark(
        [BenchConfig(n=32, heads=1, head_dim=44)], ["triton", "naive"], progress=False
    )
    triton_result, naive_result = record["results"]
    assert triton_result["status"] == "unavailable" and "head_dim" in triton_result["reason"]
    assert naive_result["status"] == "ok"


def test_a_backend_that_cannot_run_is_recorded_with_its_warnings(monkeypatch):
    import warnings

    def refuses(q, k, v, causal):
        warnings.warn(
            "Flash attention requires q, k, v to have the same last dimension", stacklevel=1
        )
        raise RuntimeError("No available kernel. Aborting execution.")

    monkeypatch.setattr(flash_suite, "_implementation", lambda name: refuses)
    record = flash_suite.run_flash_benchmark([BenchConfig(n=32, heads=1)], ["sdpa"], progress=False)
    (result,) = record["results"]
    assert result["status"] == "unavailable"
    assert "No available kernel" in result["reason"] and "same last dimension" in result["reason"]


# --- FLOPs and TFLOP/s: hand-checked ------------------------------------------------------


def test_attention_flops_by_hand():
    # 4 · b · h · n² · d: 4 · 1 · 1 · 1000² · 100 = 4e8
    assert attention_flops(1, 1, 1000, 100) == 4e8
    assert attention_flops(1, 1, 1000, 100, causal=True) == 2e8
    # backward = 2.5 × forward, so forward + backward = 3.5 × 4e8 = 1.4e9
    assert attention_flops(1, 1, 1000, 100, backward=True) == pytest.approx(1.4e9)
    # 4 · 2 · 8 · 1024² · 64 = 4,294,967,296 = 2^32; the same as cost.py's d_model form
    assert attention_flops(2, 8, 1024, 64) == 2**32
    assert attention_flops(2, 8, 1024, 64) == attention_matmul_flops(1024, 8 * 64, batch=2)


def test_tflops_by_hand():
    # 4e8 FLOP in 1 ms = 4e11 FLOP/s = 0.4 TFLOP/s
    assert tflops_per_s(4e8, 1.0) == pytest.approx(0.4)
    # 2^32 FLOP in 2 ms = 2.147e12 FLOP/s
    assert tflops_per_s(2**32, 2.0) == pytest.approx(2**32 / 2e-3 / 1e12)
    for bad in (0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="ms"):
            tflops_per_s(1e9, bad)


def test_config_validation():
    with pytest.raises(ValueError, match="n must"):
        BenchConfig(n=0)
    with pytest.raises(ValueError, match="kv_heads"):
        BenchConfig(n=64, heads=8, kv_heads=3)
    with pytest.raises(ValueError, match="dtype"):
        BenchConfig(n=64, dtype="int8")
    assert BenchConfig(n=64, dtype="bf16").dtype == "bfloat16"
    assert BenchConfig(n=64, heads=4).kv_heads == 4
    with pytest.raises(ValueError, match="causal"):
        configs_from([64], causal="maybe")
    # 2 dtypes x 1 head_dim x 2 causal x 3 n (the duplicate 64 counts once) = 12
    assert len(configs_from([64, 128, 256, 64], [64], ["fp32", "bf16"], "both")) == 12


# One cheap implementation per suite, so that the command-line test runs in seconds.
CHEAP = {"flash": "naive", "linear": "sdpa", "sparse": "sdpa"}


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_every_suite_records_the_command_it_was_given(suite, tmp_path, monkeypatch):
    # A regression test: the linear and sparse suites used to record sys.argv, not the
    # argv main() was given. Make sys.argv say something else to tell the two apart.
    monkeypatch.setattr(sys, "argv", ["elsewhere", suite, "--not-these-options"])
    argv = [suite, "--smoke", "--quiet", "--impl", CHEAP[suite], "--out", str(tmp_path / "r.json")]
    assert bench_main(argv) == 0
    (record,) = load_records(tmp_path / "r.json")
    assert record["benchmark"] == suite
    assert record["command"] == "python -m attn_course.bench " + shlex.join(argv)
    assert {r["implementation"] for r in record["results"]} == {CHEAP[suite]}
    assert all(r["label"] == SUITES[suite].LABELS[CHEAP[suite]] for r in record["results"])
    # every suite's results are BenchResults: the same keys, whatever the suite
    assert all(set(r) == set(BenchResult.__dataclass_fields__) for r in record["results"])


def test_measuring_and_records_import_neither_plotly_nor_the_suites():
    # Imports point one way: __main__ -> suites -> harness -> records; plots stand apart.
    code = (
        "import sys, attn_course.bench.harness; "
        "print(sorted(m for m in sys.modules if m.startswith(('plotly', 'attn_course.bench'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    loaded = ast.literal_eval(done.stdout)
    assert loaded == ["attn_course.bench", "attn_course.bench.harness", "attn_course.bench.records"]


def test_cli_usage_error_exits_2(capsys):
    assert bench_main(["flash", "--n", "0", "--quiet"]) == 2
    assert "n must be" in capsys.readouterr().err


# --- records: loader, ratios, figure -------------------------------------------------------


def _synthetic_record(device: str, date: str) -> dict:
    """A record with ms ∝ n² (naive) and ∝ n^1.5 (flash), peak ∝ n² and ∝ n."""
    results = []
    for n in (256, 512, 1024):
        config = {**BenchConfig(n=n, heads=1).__dict__, "mode": "fwd"}
        measured = (("naive", n**2 / 1e4, 8 * n**2), ("sdpa_flash", n**1.5 / 1e3, 64 * n))
        for impl, ms, peak in measured:
            results.append(
                {
                    "implementation": impl,
                    "label": flash_suite.LABELS[impl],
                    "config": config,
                    "status": "ok",
                    "ms": ms,
                    "tflops": 1.0,
                    "peak_bytes": peak,
                    "max_abs_error": None,
                    "grad_max_abs_error": None,
                    "reason": None,
                }
            )
        results.append({"implementation": "sdpa_cudnn", "label": flash_suite.LABELS["sdpa_cudnn"],
                        "config": config, "status": "unavailable", "ms": None, "tflops": None,
                        "peak_bytes": None, "max_abs_error": None, "grad_max_abs_error": None,
                        "reason": "CUDA only"})  # fmt: skip
    return {"schema": SCHEMA, "date": date, "device": {"type": "cpu", "name": device},
            "command": "test", "results": results}  # fmt: skip


def test_load_records_reads_sorts_and_skips_other_files(tmp_path):
    write_record(_synthetic_record("Later CPU", "2026-11-24T10:00:00Z"), tmp_path / "b.json")
    earlier = _synthetic_record("Earlier CPU", "2026-11-20T10:00:00Z")
    write_record(earlier, tmp_path / "a2.json")
    (tmp_path / "notes.json").write_text(json.dumps({"schema": "something else"}))
    (tmp_path / "broken.json").write_text("{not json")
    records = load_records(tmp_path / "*.json")
    assert [r["device"]["name"] for r in records] == ["Earlier CPU", "Later CPU"]
    assert records[0]["path"].endswith("a2.json")
    assert load_records(tmp_path / "none-*.json") == []


def test_committed_records_are_valid():
    for record in load_records():
        assert set(record) >= RECORD_KEYS
        assert record["results"]
        assert all(r["status"] == "ok" or r["reason"] for r in record["results"])
        if record["device"]["type"] == "cpu":  # a CPU record never claims a Triton timing
            triton_runs = [r for r in record["results"] if r["implementation"] == "triton"]
            assert all(r["ms"] is None for r in triton_runs)


def test_scaling_exponent_and_ratios():
    record = _synthetic_record("CPU", "2026-11-23T00:00:00Z")
    assert scaling_exponent(record, "naive", "ms") == pytest.approx(2.0)
    assert scaling_exponent(record, "sdpa_flash", "ms") == pytest.approx(1.5)
    assert scaling_exponent(record, "sdpa_flash", "peak_bytes") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="measured points"):
        scaling_exponent(record, "sdpa_cudnn", "ms")
    # naive / flash time at n = 1024: (1024² / 1e4) / (1024^1.5 / 1e3) = 1024^0.5 / 10 = 3.2
    speed = ratios(record, "naive", "sdpa_flash", "ms")
    assert [row["n"] for row in speed] == [256, 512, 1024]
    assert speed[-1]["ratio"] == pytest.approx(3.2)
    # memory: 8 n² / 64 n = n / 8 = 128 at n = 1024
    assert ratios(record, metric="peak_bytes")[-1]["ratio"] == pytest.approx(128)


def test_figure_is_labelled_and_log_scaled():
    record = _synthetic_record("Test CPU 9000", "2026-11-23T12:00:00Z")
    figure = benchmark_figure(record, "ms")
    title = figure.layout.title.text
    assert "recorded on Test CPU 9000, 2026-11-23" in title
    assert figure.layout.xaxis.type == "log" and figure.layout.yaxis.type == "log"
    assert figure.layout.xaxis.title.text == "sequence length n (tokens)"
    assert figure.layout.yaxis.title.text == "time per call (ms)"
    # one line per measured implementation; the unavailable backend draws nothing
    names = [trace.name for trace in figure.data]
    assert names == [flash_suite.LABELS["naive"], flash_suite.LABELS["sdpa_flash"]]
    assert list(figure.data[0].x) == [256, 512, 1024]
    assert "(TFLOP/s)" in benchmark_figure(record, "tflops").layout.yaxis.title.text
    assert "(bytes)" in benchmark_figure(record, "peak_bytes").layout.yaxis.title.text
    # filters that match nothing give an empty figure, still titled
    assert len(benchmark_figure(record, "ms", causal=True).data) == 0
    with pytest.raises(ValueError, match="metric"):
        benchmark_figure(record, "seconds")
    two = benchmark_figure([record, _synthetic_record("Other GPU", "2026-11-24T00:00:00Z")])
    assert len(two.data) == 4 and "Other GPU" in two.layout.title.text
    assert record_label(record) == "recorded on Test CPU 9000, 2026-11-23"


# --- the exercises (their checks: tests/test_checks.py, tests/corpus/nb04.py) ---------------


def test_exercise_ids_belong_to_notebook_04():
    for exercise_id in ("causal_kv_blocks", "kv_head_for", "attention_tflops", "flash_inner_loop"):
        assert get_exercise(exercise_id).notebook == "04_flash_attention"


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(("n", "blocks"), [(1, (16, 16)), (40, (16, 16)), (40, (32, 16))])
def test_the_kernel_checks_reference_is_attention(n, blocks, causal):
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, n, 16, generator=generator, dtype=torch.float64) for _ in "qkv")
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    got = _blocked_reference(q, k, v, causal, *blocks)
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=1e-12)


def test_the_notebooks_kernel_stub_is_not_attempted():
    # the interpreter wraps the stub's NotImplementedError; the launcher unwraps it
    from tests.corpus.nb04 import STUB_KERNEL

    assert run_check(get_exercise("flash_inner_loop"), STUB_KERNEL).status == NOT_ATTEMPTED

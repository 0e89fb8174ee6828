"""The compile check: every Triton kernel compiles for every GPU target, and fits it.

The compiler needs the kernels defined as real JITFunctions, and this test process runs them
in Triton's interpreter (no GPU), so everything that compiles runs in a child process
started with ``TRITON_INTERPRET=0`` (see :mod:`attn_course.kernels.compile`). No assertion
depends on how fast the machine compiles.

* The unit tests (pruning rules, limits, MMA detection on text) run here, in milliseconds.
* ``test_compile_facts`` compiles a handful of cases in one child: MMA family on real PTX,
  a refusal, a compiler error reported as data, and the committed record's coverage.
* ``test_ci_subset[...]`` (marker ``compile``) compiles CI's subset, every kernel × target ×
  head dim once, with the Triton of this environment (CI pins 3.9) and with Triton 3.6.0
  (the GPU machines' version) installed by ``.ci/run`` into ``.ci-cache/triton-3.6``: that
  one is skipped when the folder is absent, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from attn_course.course import COURSE_ROOT
from attn_course.kernels import fit
from attn_course.kernels.compile import KERNELS, mma_family
from attn_course.kernels.targets import (
    KIB,
    SPILL_LIMIT_BYTES,
    TARGETS,
    get_target,
    limits_exceeded,
    occupancy,
    target_for_capability,
)

pytestmark = pytest.mark.nb04

ROOT = COURSE_ROOT
TRITON_36 = ROOT / ".ci-cache" / "triton-3.6"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def compiled_env(tmp_path: Path, extra_path: Path | None = None) -> dict[str, str]:
    """The environment of a child process that defines compiled kernels."""
    paths = [str(p) for p in (extra_path, ROOT) if p is not None]
    old = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "TRITON_INTERPRET": "0",
        "TRITON_DEFAULT_FP_FUSION": "1",  # Triton 3.9's default, said aloud: no warning
        "TRITON_CACHE_DIR": str(tmp_path / "triton-cache"),  # really compile, every time
        "PYTHONPATH": os.pathsep.join(paths + ([old] if old else [])),
    }


# --- the table and the limits ---------------------------------------------------------


def test_target_table_is_the_published_one() -> None:
    names = [t.name for t in TARGETS]
    assert names == ["sm_75", "sm_80", "sm_86", "sm_89", "sm_90", "sm_100"]
    for target in TARGETS:
        assert target.name == f"sm_{target.arch}"
        assert target.shared_per_block <= target.shared_per_sm
        assert target.gpus
    assert target_for_capability((7, 5)).shared_per_block == 64 * 1024  # T4
    assert target_for_capability((12, 0)) is None


def test_limits_name_what_is_exceeded() -> None:
    t4 = target_for_capability((7, 5))
    fits = dict(shared_bytes=64 * 1024, registers=255, threads=256, stack_bytes=0)
    assert limits_exceeded(t4, **fits) == []
    [shared] = limits_exceeded(t4, **{**fits, "shared_bytes": 98304})
    assert "shared memory 98304 B > 65536 B" in shared and "sm_75" in shared
    [registers] = limits_exceeded(t4, **{**fits, "threads": 512})
    assert "registers 255 x 512 threads" in registers
    [spills] = limits_exceeded(t4, **{**fits, "stack_bytes": SPILL_LIMIT_BYTES + 8})
    assert spills.startswith("spills")


def test_mma_family_reads_instructions_not_names() -> None:
    assert mma_family("\tmma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%f1}, ...;") == (
        "mma.sync"
    )
    assert mma_family("  @%p1 wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 ...;") == "wgmma"
    assert mma_family("\ttcgen05.mma.cta_group::1.kind::f16 [%r1], ...;") == "tcgen05"
    assert mma_family("// wgmma.mma_async in a comment\n\tfma.rn.f32 %f1, %f2, %f3, %f4;") == (
        "none"
    )


# --- pruning ----------------------------------------------------------------------------


class FakeConfig:
    """What the pruning reads of a triton.Config."""

    def __init__(self, block_m: int, warps: int = 4, stages: int = 3) -> None:
        self.kwargs = {"BLOCK_M": block_m, "BLOCK_N": 32}
        self.num_warps, self.num_stages = warps, stages

    def key(self) -> str:
        return fit.config_key(self.kwargs, self.num_warps, self.num_stages)


def table_of(*entries: tuple[FakeConfig, str, list[str]]) -> fit.Table:
    results = [
        {"kernel": "forward", "target": "sm_75", "dtype": "float16", "head_dim": 128,
         "config_key": c.key(), "status": status, "reasons": reasons}
        for c, status, reasons in entries
    ]  # fmt: skip
    return fit.fit_table([{"results": results}])


def test_pruning_keeps_what_fits_and_never_what_does_not() -> None:
    small, medium, big, new = FakeConfig(32), FakeConfig(64), FakeConfig(128), FakeConfig(16)
    table = table_of(
        (small, "ok", []),
        (medium, "refused", ["spills: 600 B of stack per thread > 256 B tolerated"]),
        (big, "refused", ["shared memory 98304 B > 65536 B per block on sm_75"]),
    )
    kept = fit.fitting_configs("forward", [small, medium, big, new], "sm_75", "float16", 128,
                               table)  # fmt: skip
    assert kept == [small, new]  # an unrecorded configuration is kept: it is new
    # No configuration fits cleanly: the one that only spills still runs, slowly.
    assert fit.fitting_configs("forward", [medium, big], "sm_75", "float16", 128, table) == [
        medium
    ]
    with pytest.raises(ValueError, match=r"forward.*sm_75.*float16.*head_dim 128"):
        fit.fitting_configs("forward", [big], "sm_75", "float16", 128, table)
    # Another target, dtype or head dim: not in the table, nothing pruned.
    assert fit.fitting_configs("forward", [big], "sm_90", "float16", 128, table) == [big]


def test_prune_hook_leaves_the_interpreter_alone() -> None:
    import torch

    prune = fit.prune_hook("forward")
    configs = [FakeConfig(128)]
    q = torch.zeros(1, 1, 4, 16)
    assert prune(configs, {"Q": q}, HEAD_DIM=16) == configs


def test_choose_record_prefers_the_installed_triton() -> None:
    def record(version: str, date: str, subset: str = "full") -> dict:
        return {"versions": {"triton": version}, "date": date, "subset": subset}

    older, newer = record("3.6.0", "2026-01-01"), record("3.9.0", "2026-02-01")
    newest = record("3.9.0", "2026-03-01")
    assert fit.choose_records([older, newer, newest], "3.6.0") == [older]
    assert fit.choose_records([older, newer, newest], "3.7.0") == [newer, newest]
    assert fit.choose_records([record("3.6.0", "2026-03-01", "ci")], "3.6.0") == []


# --- real compilations, in a child process -----------------------------------------------

FACTS = textwrap.dedent(
    """
    import json
    from attn_course.kernels.compile import Case, KERNELS, cases, compile_case, run_cases
    from attn_course.kernels.fit import compile_records, choose_records
    from attn_course.kernels.targets import Target
    from attn_course.kernels.validate import ALLOWED_HEAD_DIMS
    import triton

    out = {}
    forward = KERNELS["forward"].configs()[0]  # (constexprs, warps, stages): 64 x 32
    for target in ("sm_80", "sm_90"):
        for dtype in ("float16", "bfloat16"):
            case = Case("forward", target, dtype, 64, *forward)
            out[f"{target} {dtype}"] = compile_case(case)
    tiny = Target("sm_tiny", (8, 0), 1024, 1024, 65536, 255, ("none",))
    out["tiny"] = compile_case(Case("forward", "sm_80", "float16", 64, *forward), tiny)
    # tl.dot needs every dimension >= 16: a compiler error, then a case that compiles.
    broken = Case("forward", "sm_80", "float16", 64, {"BLOCK_M": 64, "BLOCK_N": 8}, 4, 1)
    fine = Case("paged", "sm_80", "float16", 64, {"BLOCK_SIZE": 16})
    out["broken"], out["after"] = run_cases([broken, fine], jobs=1)
    # The committed records must know every configuration the autotuners may try, for
    # every (kernel, target, dtype) they cover at all: a record made before a
    # configuration list changed is stale, and this says so.
    records = choose_records(compile_records(), triton.__version__)
    if records:
        results = [r for record in records for r in record["results"]]
        recorded = {(r["kernel"], r["target"], r["dtype"], r["head_dim"], r["config_key"])
                    for r in results}
        covered = {(r["kernel"], r["target"], r["dtype"]) for r in results}
        targets = sorted({r["target"] for r in results})
        from attn_course.kernels.fit import config_key
        wanted = {(c.kernel, c.target, c.dtype, c.head_dim,
                   config_key(c.config, c.num_warps, c.num_stages))
                  for c in cases(["forward", "dkdv", "dq"], targets)
                  if c.head_dim in ALLOWED_HEAD_DIMS
                  and (c.kernel, c.target, c.dtype) in covered}
        out["unrecorded"] = sorted(map(str, wanted - recorded))
        out["covered"] = sorted(map(list, covered))
    print("RESULT" + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def facts(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp_path = tmp_path_factory.mktemp("compile")
    done = subprocess.run(
        [sys.executable, "-c", FACTS], capture_output=True, text=True, cwd=ROOT,
        env=compiled_env(tmp_path), timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line.removeprefix("RESULT"))


@pytest.mark.compile
def test_mma_family_on_real_ptx(facts: dict) -> None:
    for dtype in ("float16", "bfloat16"):
        assert facts[f"sm_80 {dtype}"]["mma"] == "mma.sync", facts[f"sm_80 {dtype}"]
        assert facts[f"sm_90 {dtype}"]["mma"] == "wgmma", facts[f"sm_90 {dtype}"]
        for target in ("sm_80", "sm_90"):
            result = facts[f"{target} {dtype}"]
            assert result["status"] == "ok", result
            assert 0 < result["registers"] <= 255
            assert result["shared_bytes"] > 0


@pytest.mark.compile
def test_an_over_large_config_is_refused(facts: dict) -> None:
    tiny = facts["tiny"]
    assert tiny["status"] == "refused"
    assert any(r.startswith("shared memory") and "1024 B per block" in r for r in tiny["reasons"])
    # The same case on the real sm_80 fits: the refusal is the target's, not the kernel's.
    assert facts["sm_80 float16"]["shared_bytes"] == tiny["shared_bytes"]


@pytest.mark.compile
def test_a_compiler_error_is_data(facts: dict) -> None:
    broken = facts["broken"]
    assert broken["status"] == "error"
    assert broken["error"] and broken["registers"] is None
    assert facts["after"]["status"] == "ok"  # the run went on


@pytest.mark.compile
def test_committed_record_covers_every_autotune_config(facts: dict) -> None:
    if "unrecorded" not in facts:
        pytest.skip("no compile record for this Triton in records/")
    assert facts["unrecorded"] == [], "rerun python -m attn_course.kernels.compile --out ..."
    # The records cover at least the three flash kernels on A100 and H100 in every dtype.
    covered = {tuple(c) for c in facts["covered"]}
    for kernel in ("forward", "dkdv", "dq"):
        for target in ("sm_80", "sm_90"):
            for dtype in ("float32", "float16", "bfloat16"):
                assert (kernel, target, dtype) in covered


# --- CI's subset -------------------------------------------------------------------------


@pytest.mark.compile
@pytest.mark.parametrize("triton_version", ["installed", "3.6.0"])
def test_ci_subset(triton_version: str, tmp_path: Path) -> None:
    extra = None
    if triton_version == "3.6.0":
        if not (TRITON_36 / "triton").is_dir():
            message = (
                f"Triton 3.6.0 is not in {TRITON_36}; .ci/run installs it with "
                f"pip install --target {TRITON_36.relative_to(ROOT)} triton==3.6.0 --no-deps"
            )
            if IN_CI:
                pytest.fail(message)
            pytest.skip(message)
        extra = TRITON_36
    # With the GPU machines' Triton the question is whether the older compiler takes the
    # kernels' code at all, which the head dim does not change: one head dim keeps CI's
    # time down. Resource numbers per head dim come from the installed Triton's run and the
    # committed record.
    head_dims = ["--head-dims", "64"] if extra else []
    out = tmp_path / "ci.json"
    done = subprocess.run(
        [sys.executable, "-m", "attn_course.kernels.compile", "--subset", "ci", "--jobs", "2",
         *head_dims, "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, env=compiled_env(tmp_path, extra), timeout=900,
    )  # fmt: skip
    assert out.exists(), done.stdout[-2000:] + done.stderr[-3000:]
    record = json.loads(out.read_text())
    if triton_version == "3.6.0":
        assert record["versions"]["triton"] == "3.6.0"
    errors = [r for r in record["results"] if r["status"] not in ("ok", "refused")]
    assert errors == [], "\n".join(f"{r['kernel']} {r['target']}: {r['error']}" for r in errors)
    assert done.returncode == 0, done.stderr[-3000:]
    covered = {(r["kernel"], r["target"], r["head_dim"]) for r in record["results"]}
    dims = {64} if extra else None
    per_target = sum(
        len([d for d in KERNELS[name].ci_head_dims if dims is None or d in dims])
        for name in record["kernels"]
    )
    assert len(covered) == len(record["results"]) == per_target * len(TARGETS)


# --- occupancy ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "registers", "shared", "warps", "blocks", "limiter"),
    [
        # 183 registers: 32 · 183 = 5856 per warp, allocated as 23 · 256 = 5888; a block of
        # 4 warps needs 23552 of the SM's 65536: 2 blocks.
        ("sm_80", 183, 53248, 4, 2, "registers"),
        # 100 KiB of shared memory + 1 KiB reserved per block: one fits in 164 KiB.
        ("sm_80", 32, 100 * KIB, 4, 1, "shared memory"),
        # 16 warps per block, at most 48 per SM on sm_86: 3 blocks.
        ("sm_86", 32, 0, 16, 3, "warps"),
        # Tiny blocks: sm_75 holds at most 16 blocks, whatever they use.
        ("sm_75", 16, 0, 1, 16, "blocks"),
        # sm_75 reserves nothing: 2 blocks of exactly 32 KiB fill its 64 KiB.
        ("sm_75", 32, 32 * KIB, 1, 2, "shared memory"),
    ],
)
def test_occupancy_by_hand(target, registers, shared, warps, blocks, limiter) -> None:
    got = occupancy(get_target(target), registers=registers, shared_bytes=shared, num_warps=warps)
    assert (got.blocks, got.limiter) == (blocks, limiter)
    assert got.warps == blocks * warps
    assert got.fraction == got.warps / get_target(target).max_warps_per_sm


def test_occupancy_rejects_impossible_kernels() -> None:
    with pytest.raises(ValueError, match="registers must be <= 255, got 300"):
        occupancy(get_target("sm_90"), registers=300, shared_bytes=0, num_warps=4)
    with pytest.raises(ValueError, match="num_warps must be an int >= 1, got 0"):
        occupancy(get_target("sm_90"), registers=32, shared_bytes=0, num_warps=0)
    with pytest.raises(ValueError, match=r"target must be one of \['sm_75'"):
        get_target("sm_70")

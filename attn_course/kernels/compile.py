"""Compile every Triton kernel of the course for real GPUs, on any machine, launching nothing.

Command::

    python -m attn_course.kernels.compile                 # the full matrix, a table on stdout
    python -m attn_course.kernels.compile --subset ci     # CI's subset (about two minutes)
    python -m attn_course.kernels.compile --out records/compile_triton-<version>_<date>.json
    python -m attn_course.kernels.compile --kernels forward --targets sm_80 sm_90 --jobs 2

For each *case* (kernel × target × dtype × head_dim × configuration) it runs Triton's
whole compiler, ``triton.compile(ASTSource(...), target=GPUTarget("cuda", arch, 32))``,
down to a cubin assembled by the ``ptxas`` bundled in the Triton wheel, and reports:

* ``status``: ``"ok"``; ``"refused"`` (it compiles but exceeds the target's shared memory
  or register file, or spills more than :data:`~attn_course.kernels.targets.SPILL_LIMIT_BYTES`:
  see :func:`~attn_course.kernels.targets.limits_exceeded`, and ``reasons``); ``"error"``
  (the compiler raised: ``error`` holds its message, the run goes on);
  ``"unavailable"`` (the kernel's source is not in this checkout);
* ``registers`` per thread and ``stack_bytes`` (local-memory stack frame per thread: spilled
  registers) from ``cuobjdump --dump-resource-usage``; ``shared_bytes`` = dynamic shared
  memory (Triton's ``metadata.shared``) + static shared memory (cuobjdump's ``SHARED``);
* ``mma``: the tensor-core instruction family found in the PTX (:func:`mma_family`):
  ``"tcgen05"`` (Blackwell), ``"wgmma"`` (Hopper), ``"mma.sync"`` (Ampere and later's warp
  MMA) or ``"none"`` (the dots became FMA loops).

Which kernels: the FlashAttention forward, backward preprocess, dK/dV and dQ passes
(:mod:`attn_course.kernels.flash`), the chunked linear attention
(:mod:`~attn_course.kernels.linear`), the block-sparse forward
(:mod:`~attn_course.kernels.sparse`), the paged decode (:mod:`~attn_course.kernels.paged`),
its split-K version's two kernels (:mod:`~attn_course.kernels.splitk`) and notebook 04's
exercise kernel as its solution writes it (``solutions/04_flash_attention.py``, launched by
:func:`attn_course.checks.flash.launch_exercise_kernel`). Every dtype and head dim a kernel
accepts, every configuration its autotuner (or its caller) may use; the flash
kernels with ``CAUSAL=True`` only, the variant with the most code (it holds the unmasked
loop of the non-causal kernel plus the masked diagonal loop), and linear attention with
m = d_v and ``APPLY_ELU=True`` for the same reason.
Targets: :data:`~attn_course.kernels.targets.TARGETS`.

**Why a separate process.** On a machine without a GPU, importing :mod:`attn_course`
sets ``TRITON_INTERPRET=1`` (:mod:`attn_course.triton_mode`), and then ``@triton.jit``
returns interpreted functions, which have no compiler. This module therefore needs the
kernels defined as real ``JITFunction`` objects: it must run in a process started with
``TRITON_INTERPRET=0``. The command does that for you: run in interpreter mode, it starts
itself again with ``TRITON_INTERPRET=0`` (the variable :mod:`attn_course.triton_mode`
respects when it is set); the functions below raise a RuntimeError that says so when
called in interpreter mode.

Records: ``--out`` writes the JSON record described in ``records/README.md`` (schema
``attn_course.compile/1``); :mod:`attn_course.kernels.fit` reads the committed one to prune
the autotuners on a real GPU.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import importlib.util
import json
import multiprocessing
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from attn_course.course import COURSE_ROOT
from attn_course.kernels.fit import SCHEMA, config_key
from attn_course.kernels.targets import SPILL_LIMIT_BYTES, TARGETS, Target, limits_exceeded
from attn_course.kernels.tiles import dtype_flags
from attn_course.kernels.validate import ALLOWED_DTYPES, ALLOWED_HEAD_DIMS
from attn_course.triton_mode import kernel_mode

__all__ = [
    "KERNELS",
    "SCHEMA",
    "Case",
    "cases",
    "compile_case",
    "config_key",
    "main",
    "make_record",
    "mma_family",
    "run_cases",
]

EXERCISE_SOURCE = COURSE_ROOT / "solutions" / "04_flash_attention.py"

#: torch dtype -> Triton's pointer element type in a signature.
TRITON_TYPES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"`` (the name used in records)."""
    return str(dtype).removeprefix("torch.")


# --- the kernels ------------------------------------------------------------------------


@dataclass(frozen=True)
class KernelSpec:
    """How to compile one kernel: where it is, its argument types, its configurations.

    ``load()`` returns the JITFunction; ``signature(ptr)`` maps every argument to a Triton
    type given the pointer type ``ptr`` of the attention tensors ("*fp16", ...);
    ``constexprs(dtype, head_dim)`` the constexprs that do not come from a configuration;
    ``configs()`` the configurations: (constexprs, num_warps or None, num_stages or None),
    None meaning Triton's default; ``dtypes`` the dtypes it accepts; ``head_dims`` those the
    full matrix compiles and ``ci_head_dims`` those of CI's subset.
    """

    name: str
    load: Callable[[], Any]
    signature: Callable[[str], dict[str, str]]
    constexprs: Callable[[torch.dtype, int], dict[str, Any]]
    configs: Callable[[], list[tuple[dict[str, Any], int | None, int | None]]]
    dtypes: tuple[torch.dtype, ...] = ALLOWED_DTYPES
    description: str = ""
    head_dims: tuple[int, ...] = ALLOWED_HEAD_DIMS
    ci_head_dims: tuple[int, ...] = (16, 64, 128)


def _autotune_configs(kernel: Any) -> list[tuple[dict[str, Any], int | None, int | None]]:
    """Every configuration of a ``triton.autotune``'d kernel, before any pruning."""
    return [(dict(c.kwargs), c.num_warps, c.num_stages) for c in kernel.configs]


def _flash(attribute: str) -> Callable[[], Any]:
    def load() -> Any:
        from attn_course.kernels import flash

        kernel = getattr(flash, attribute)
        return kernel.fn if hasattr(kernel, "configs") else kernel  # unwrap the Autotuner

    return load


def _flash_configs(attribute: str) -> Callable[[], list[tuple[dict[str, Any], Any, Any]]]:
    def configs() -> list[tuple[dict[str, Any], Any, Any]]:
        from attn_course.kernels import flash

        return _autotune_configs(getattr(flash, attribute))

    return configs


def _pointers(names: str, ptr: str) -> dict[str, str]:
    return {name: ptr for name in names.split()}


def _typed(names: str, kind: str) -> dict[str, str]:
    return {name: kind for name in names.split()}


def _padded(head_dim: int) -> int:
    """The power of two the flash kernels pad ``head_dim`` to (their ``BLOCK_D``)."""
    return 1 << (head_dim - 1).bit_length()


def _flash_constexprs(dtype: torch.dtype, head_dim: int) -> dict[str, Any]:
    return {"HEAD_DIM": head_dim, "BLOCK_D": _padded(head_dim), "CAUSAL": True,
            **dtype_flags(dtype, interpreted=False)}  # fmt: skip


def _preprocess_configs() -> list[tuple[dict[str, Any], Any, Any]]:
    from attn_course.kernels import flash

    return [({"BLOCK_M": flash.PREPROCESS_BLOCK_M}, None, None)]


def _linear_load() -> Any:
    from attn_course.kernels import linear

    return linear.chunked_forward_kernel


def _linear_configs() -> list[tuple[dict[str, Any], Any, Any]]:
    # validate_linear_inputs accepts these chunk sizes; the GPU default is one of them.
    return [({"BLOCK_C": chunk}, None, None) for chunk in (16, 32, 64, 128)]


def _sparse_load() -> Any:
    from attn_course.kernels import sparse

    return sparse.sparse_forward_kernel


def _sparse_configs() -> list[tuple[dict[str, Any], Any, Any]]:
    from attn_course.kernels import sparse

    return [({"BLOCK": block}, None, None) for block in sparse.ALLOWED_BLOCKS]


def _paged_load() -> Any:
    from attn_course.kernels import paged

    return paged.paged_decode_kernel


def _paged_configs() -> list[tuple[dict[str, Any], Any, Any]]:
    from attn_course.kernels import paged

    return [({"BLOCK_SIZE": size}, None, None) for size in paged.ALLOWED_BLOCK_SIZES]


def _splitk(attribute: str) -> Callable[[], Any]:
    def load() -> Any:
        from attn_course.kernels import splitk

        return getattr(splitk, attribute)

    return load


def _exercise_load() -> Any:
    """Notebook 04's exercise kernel, as ``solutions/04_flash_attention.py`` writes it.

    The notebook script runs its checks at top level, so it is not imported: the
    ``attention_forward_kernel`` function (with its decorator) is cut out with :mod:`ast`
    and written to a module of its own (Triton reads a kernel's source from its file).
    Returns None when the solutions are not in this checkout (a student release).
    """
    if not EXERCISE_SOURCE.exists():
        return None
    text = EXERCISE_SOURCE.read_text()
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef) and node.name == "attention_forward_kernel":
            first = min([d.lineno for d in node.decorator_list] + [node.lineno])
            body = "\n".join(text.splitlines()[first - 1 : node.end_lineno])
            break
    else:
        raise RuntimeError(f"no attention_forward_kernel in {EXERCISE_SOURCE}")
    folder = Path(tempfile.mkdtemp(prefix="attn_course_exercise_"))
    path = folder / "exercise_04_kernel.py"
    path.write_text(
        f"# cut from {EXERCISE_SOURCE.name} by attn_course.kernels.compile\n"
        "import triton\nimport triton.language as tl\n\n\n" + body + "\n"
    )
    spec = importlib.util.spec_from_file_location("exercise_04_kernel", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.attention_forward_kernel


def _exercise_configs() -> list[tuple[dict[str, Any], Any, Any]]:
    # launch_exercise_kernel's default blocks (16, 16), and (32, 16), which its check uses.
    return [({"BLOCK_M": m, "BLOCK_N": n}, None, None) for m, n in ((16, 16), (32, 16))]


_SCALARS_FLASH = "n_q n_k heads group_size causal_offset"
#: The flash kernels take any multiple of 8 from 16 to 256 (padded to BLOCK_D inside): the
#: powers of two, and the head dims of published models that are not (40: Stable Diffusion;
#: 80: Phi-2; 96: Phi-3-mini; 112; 160; 192: MLA's q/k with RoPE; 256: Gemma).
FLASH_HEAD_DIMS = (16, 32, 40, 64, 80, 96, 112, 128, 160, 192, 256)
_FLASH_DIMS = {"head_dims": FLASH_HEAD_DIMS, "ci_head_dims": (16, 64, 96, 128)}

#: Every kernel of the course, by the name used on the command line and in records.
KERNELS: dict[str, KernelSpec] = {
    spec.name: spec
    for spec in (
        KernelSpec(
            "forward", _flash("forward_kernel"),
            lambda p: {**_pointers("Q K V Out", p), "LSE": "*fp32", **_typed(_SCALARS_FLASH, "i32"),
                       "scale": "fp32"},
            _flash_constexprs, _flash_configs("forward_kernel"),
            description="FlashAttention forward (flash.py)", **_FLASH_DIMS,
        ),
        KernelSpec(
            "preprocess", _flash("backward_preprocess_kernel"),
            lambda p: {**_pointers("Out DO", p), "Delta": "*fp32", "n_q": "i32"},
            lambda dtype, head_dim: {"HEAD_DIM": head_dim, "BLOCK_D": _padded(head_dim)},
            _preprocess_configs,
            description="backward preprocess D = rowsum(dO * O) (flash.py)", **_FLASH_DIMS,
        ),
        KernelSpec(
            "dkdv", _flash("backward_dkdv_kernel"),
            lambda p: {**_pointers("Q K V DO DK DV", p), **_typed("LSE Delta", "*fp32"),
                       **_typed(_SCALARS_FLASH, "i32"), "scale": "fp32"},
            _flash_constexprs, _flash_configs("backward_dkdv_kernel"),
            description="backward pass 1, dK and dV (flash.py)", **_FLASH_DIMS,
        ),
        KernelSpec(
            "dq", _flash("backward_dq_kernel"),
            lambda p: {**_pointers("Q K V DO DQ", p), **_typed("LSE Delta", "*fp32"),
                       **_typed(_SCALARS_FLASH, "i32"), "scale": "fp32"},
            _flash_constexprs, _flash_configs("backward_dq_kernel"),
            description="backward pass 2, dQ (flash.py)", **_FLASH_DIMS,
        ),
        KernelSpec(
            "linear", _linear_load,
            lambda p: {**_pointers("Q K V Out", p), "n": "i32"},
            lambda dtype, head_dim: {"FEATURES": head_dim, "VALUE_DIM": head_dim,
                                     "APPLY_ELU": True, **dtype_flags(dtype, interpreted=False)},
            _linear_configs,
            description="chunked causal linear attention forward (linear.py), m = d_v",
        ),
        KernelSpec(
            "sparse", _sparse_load,
            lambda p: {**_pointers("Q K V Out", p), "LSE": "*fp32", "Mask": "*u8",
                       **_typed("FullNum FullIdx PartialNum PartialIdx", "*i32"),
                       **_typed("max_blocks n heads group_size", "i32"), "scale": "fp32"},
            lambda dtype, head_dim: {"HEAD_DIM": head_dim, **dtype_flags(dtype, interpreted=False)},
            _sparse_configs,
            description="block-sparse attention forward (sparse.py)",
        ),
        KernelSpec(
            "paged", _paged_load,
            lambda p: {**_pointers("Q KPool VPool", p), "Out": "*fp32",
                       **_typed("BlockTables ContextLens", "*i32"),
                       **_typed("max_blocks heads kv_heads group_size", "i32"),
                       "qk_scale": "fp32"},
            lambda dtype, head_dim: {"HEAD_DIM": head_dim}, _paged_configs,
            description="paged decode attention (paged.py)",
        ),
        KernelSpec(
            "splitk", _splitk("split_decode_kernel"),
            lambda p: {**_pointers("Q KPool VPool", p), **_typed("PartialOut PartialLse", "*fp32"),
                       **_typed("BlockTables ContextLens", "*i32"),
                       **_typed("max_blocks heads kv_heads group_size splits", "i32"),
                       "qk_scale": "fp32"},
            lambda dtype, head_dim: {"HEAD_DIM": head_dim}, _paged_configs,
            description="split-K paged decode, the split pass (splitk.py)",
        ),
        KernelSpec(
            "splitk_combine", _splitk("combine_kernel"),
            lambda p: {**_typed("PartialOut PartialLse Out", "*fp32"),
                       **_typed("heads splits", "i32")},
            lambda dtype, head_dim: {"HEAD_DIM": head_dim}, lambda: [({}, None, None)],
            dtypes=(torch.float32,),
            description="split-K paged decode, the combine pass (splitk.py); its partial "
            "results are float32 whatever q's dtype",
        ),
        KernelSpec(
            "exercise04", _exercise_load,
            lambda p: {**_pointers("Q K V Out", p), "n": "i32", "qk_scale_log2": "fp32"},
            lambda dtype, head_dim: {"CAUSAL": True, "HEAD_DIM": head_dim},
            _exercise_configs, dtypes=(torch.float32,),
            description="notebook 04's exercise kernel (solutions/04_flash_attention.py), "
            "float32 as launch_exercise_kernel passes it",
        ),
    )
}  # fmt: skip


# --- cases ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One compilation: a kernel for a target, a dtype, a head dim and one configuration."""

    kernel: str
    target: str
    dtype: str
    head_dim: int
    config: dict[str, Any] = field(hash=False)
    num_warps: int | None = None
    num_stages: int | None = None


SUBSETS = ("full", "ci")


def cases(
    kernels: Sequence[str] | None = None,
    targets: Sequence[str] | None = None,
    subset: str = "full",
) -> list[Case]:
    """The cases to compile, kernel by kernel, target by target.

    ``subset="full"``: every dtype × head dim (``spec.head_dims``) × configuration.
    ``subset="ci"``: every kernel × target × head dim of ``spec.ci_head_dims`` (16, 64 and
    128, and 96 for the flash kernels, which pad it) once, with the kernel's first
    configuration (the smallest tile of every list here) and dtype number min(i, #dtypes -
    1) of (float32, float16, bfloat16) for head-dim number i: every dtype appears, and
    float32 only at the smallest head dim. Large tiles and float32 tiles (FMA loops; on sm_75 every
    dot is one, Triton has no tensor-core path there) can each keep the compiler busy for
    a minute or more: they are in the full matrix, not in CI's two minutes.
    """
    _require_compiled_kernels()
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    names = list(KERNELS) if kernels is None else list(kernels)
    for name in names:
        if name not in KERNELS:
            raise ValueError(f"kernels: unknown kernel {name!r}; known: {sorted(KERNELS)}")
    known_targets = {t.name: t for t in TARGETS}
    chosen = [t.name for t in TARGETS] if targets is None else list(targets)
    for name in chosen:
        if name not in known_targets:
            raise ValueError(f"targets: unknown target {name!r}; known: {sorted(known_targets)}")
    result = []
    for name in names:
        spec = KERNELS[name]
        configs = spec.configs()
        for target in chosen:
            head_dims = spec.ci_head_dims if subset == "ci" else spec.head_dims
            for i, head_dim in enumerate(head_dims):
                if subset == "ci":
                    dtype = spec.dtypes[min(i, len(spec.dtypes) - 1)]
                    picks = [(dtype, configs[0])]
                else:
                    picks = [(d, c) for d in spec.dtypes for c in configs]
                for dtype, (config, warps, stages) in picks:
                    result.append(
                        Case(name, target, dtype_name(dtype), head_dim, config, warps, stages)
                    )
    return result


# --- compiling one case -----------------------------------------------------------------

_MMA_PATTERNS = (  # most specific first: "tcgen05.mma" and "wgmma.mma_async" contain "mma"
    ("tcgen05", re.compile(r"^\s*(@\S+\s+)?tcgen05\.mma", re.M)),
    ("wgmma", re.compile(r"^\s*(@\S+\s+)?wgmma\.mma_async", re.M)),
    ("mma.sync", re.compile(r"^\s*(@\S+\s+)?mma\.sync", re.M)),
)


def mma_family(ptx: str) -> str:
    """The tensor-core instruction family in a PTX listing, the newest one found.

    ``"tcgen05"`` (``tcgen05.mma``: Blackwell's 5th-generation tensor cores), ``"wgmma"``
    (``wgmma.mma_async``: Hopper's warp-group MMA), ``"mma.sync"`` (the warp-level MMA of
    sm_80 and later) or ``"none"`` (no MMA instruction: every ``tl.dot`` became FMAs).
    Only instructions count (a line that starts with the opcode, maybe after a predicate
    such as ``@%p1``), not comments or names.
    """
    for family, pattern in _MMA_PATTERNS:
        if pattern.search(ptx):
            return family
    return "none"


def mma_instructions(ptx: str) -> tuple[str | None, int]:
    """(the opcode of the first tensor-core instruction in ``ptx``, how many there are).

    The opcode carries the tile shape one instruction multiplies, e.g.
    ``mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32`` (one warp: 16 x 8 x 16) or
    ``wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16`` (four warps together: 64 x 32 x
    16); the count is static (instructions in the listing, not executions). (None, 0)
    when the dots became FMA loops.
    """
    opcodes = [match.group("opcode") for match in _MMA_OPCODE.finditer(ptx)]
    return (opcodes[0] if opcodes else None), len(opcodes)


_MMA_OPCODE = re.compile(
    r"^\s*(?:@\S+\s+)?(?P<opcode>(?:tcgen05\.mma|wgmma\.mma_async|mma\.sync)[\w.:]*)", re.M
)


_RESOURCE = re.compile(r"(REG|STACK|SHARED|LOCAL):(\d+)")


def resource_usage(cubin: bytes, cuobjdump: str) -> dict[str, int]:
    """``cuobjdump --dump-resource-usage`` of one cubin: registers per thread and
    stack / static shared / local bytes. Keys: ``REG``, ``STACK``, ``SHARED``, ``LOCAL``.
    """
    with tempfile.NamedTemporaryFile(suffix=".cubin") as file:
        file.write(cubin)
        file.flush()
        done = subprocess.run(
            [cuobjdump, "--dump-resource-usage", file.name],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    found = _RESOURCE.findall(done.stdout)
    if not found:
        raise RuntimeError(f"cuobjdump printed no resource usage: {done.stdout[-500:]!r}")
    return {key: int(value) for key, value in found}


def _cuobjdump_path() -> str:
    from triton import knobs

    return knobs.nvidia.cuobjdump.path


def _require_compiled_kernels() -> None:
    if kernel_mode() == "interpreter":
        raise RuntimeError(
            "the kernels are defined for Triton's interpreter in this process, which cannot "
            "compile them: run `python -m attn_course.kernels.compile` (it restarts itself), or "
            "start Python with TRITON_INTERPRET=0 before importing attn_course"
        )


_LOADED: dict[str, Any] = {}


def _kernel_function(name: str) -> Any:
    if name not in _LOADED:
        _LOADED[name] = KERNELS[name].load()
    return _LOADED[name]


def _short_error(error: BaseException, limit: int = 2000) -> str:
    """The compiler's message, at most ``limit`` characters: the root cause first.

    Triton's front end wraps an error inside a called ``@triton.jit`` function in one
    CompilationError per call level; the innermost says what is wrong, the outer ones where.
    """
    chain = [error]
    while (inner := chain[-1].__cause__ or chain[-1].__context__) is not None:
        if inner in chain or len(chain) > 20:
            break
        chain.append(inner)
    root = chain[-1]
    text = f"{type(root).__name__}: {root}".strip()
    if root is not error:
        text += f"\n--- raised while compiling:\n{type(error).__name__}: {error}".rstrip()
    return text if len(text) <= limit else text[: limit - 10] + " ... (cut)"


def compile_case_skeleton(case: Case, target: Target | None = None) -> dict[str, Any]:
    """A case's result before compiling: its identity, every measurement None."""
    if target is None:
        target = next(t for t in TARGETS if t.name == case.target)
    return {
        "kernel": case.kernel,
        "target": case.target,
        "capability": f"{target.capability[0]}.{target.capability[1]}",
        "dtype": case.dtype,
        "head_dim": case.head_dim,
        "config": dict(case.config),
        "config_key": config_key(case.config, case.num_warps, case.num_stages),
        "num_warps": case.num_warps,
        "num_stages": case.num_stages,
        "status": None,
        "registers": None,
        "stack_bytes": None,
        "shared_bytes": None,
        "mma": None,
        "reasons": [],
        "error": None,
        "seconds": None,
    }


def compile_case(case: Case, target: Target | None = None) -> dict[str, Any]:
    """Compile one case for its target and return its result (a record's ``results`` entry).

    ``target`` overrides the table's entry of ``case.target`` (its limits: a test passes a
    fake target with little shared memory); the code is compiled for ``target.arch``.
    A compiler error is returned as ``status="error"`` with its message, never raised.
    """
    _require_compiled_kernels()
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    if target is None:
        target = next(t for t in TARGETS if t.name == case.target)
    spec = KERNELS[case.kernel]
    result = compile_case_skeleton(case, target)
    function = _kernel_function(case.kernel)
    if function is None:
        result["status"] = "unavailable"
        result["error"] = f"{EXERCISE_SOURCE} is not in this checkout"
        return result
    dtype = getattr(torch, case.dtype)
    signature = dict(spec.signature("*" + TRITON_TYPES[dtype]))
    constexprs = {**spec.constexprs(dtype, case.head_dim), **case.config}
    for name in constexprs:
        signature[name] = "constexpr"
    missing = set(function.arg_names) - set(signature)
    if missing:
        raise RuntimeError(f"{case.kernel}: no type for arguments {sorted(missing)}")
    signature = {name: signature[name] for name in function.arg_names}
    # torch allocations are 16-byte aligned, and Triton specialises on it at launch.
    attrs = {
        (i,): [["tt.divisibility", 16]]
        for i, name in enumerate(function.arg_names)
        if signature[name].startswith("*")
    }
    options = {}
    if case.num_warps is not None:
        options["num_warps"] = case.num_warps
    if case.num_stages is not None:
        options["num_stages"] = case.num_stages
    start = time.perf_counter()
    try:
        source = ASTSource(function, signature, constexprs, attrs)
        compiled = triton.compile(source, target=GPUTarget("cuda", target.arch, 32),
                                  options=options)  # fmt: skip
        usage = resource_usage(compiled.asm["cubin"], _cuobjdump_path())
    except Exception as error:  # the compiler's failure is this case's result
        result.update(status="error", error=_short_error(error))
        result["seconds"] = round(time.perf_counter() - start, 2)
        return result
    result["seconds"] = round(time.perf_counter() - start, 2)
    metadata = compiled.metadata
    result["num_warps"], result["num_stages"] = metadata.num_warps, metadata.num_stages
    result["registers"] = usage["REG"]
    result["stack_bytes"] = usage.get("STACK", 0)
    result["shared_bytes"] = int(metadata.shared) + usage.get("SHARED", 0)
    result["mma"] = mma_family(compiled.asm["ptx"])
    result["mma_instruction"], result["mma_count"] = mma_instructions(compiled.asm["ptx"])
    result["reasons"] = limits_exceeded(
        target,
        shared_bytes=result["shared_bytes"],
        registers=result["registers"],
        threads=32 * metadata.num_warps,
        stack_bytes=result["stack_bytes"],
    )
    result["status"] = "refused" if result["reasons"] else "ok"
    return result


def _worker(tasks: Any, done: Any) -> None:
    """A compile process: take (index, case) from ``tasks``, put (index, result) in ``done``.

    It is spawned, so it imports attn_course afresh with the parent's environment: the
    parent defines compiled kernels, so does the worker.
    """
    _require_compiled_kernels()
    while True:
        item = tasks.get()
        if item is None:
            return
        index, case = item
        done.put((index, compile_case(case)))


def _timed_out(case: Case, seconds: float) -> dict[str, Any]:
    result = compile_case_skeleton(case)
    result.update(status="timeout", seconds=seconds,
                  error=f"the compiler did not finish within {seconds:g} s")  # fmt: skip
    return result


def run_cases(
    todo: Iterable[Case],
    jobs: int = 1,
    case_timeout: float | None = None,
    progress: Callable[[dict], None] | None = None,
) -> list[dict[str, Any]]:
    """Compile every case in ``jobs`` processes and return the results in the cases' order.

    ``case_timeout`` (seconds, None: no limit): a case still compiling after that long is
    stopped (its process is killed and replaced) and reported as ``status="timeout"``.
    Some float32 cases make the compiler unroll FMA loops over 128 x 128 tiles for minutes.
    ``progress`` is called with each result as it arrives (in completion order).
    """
    todo = list(todo)
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if case_timeout is not None and case_timeout <= 0:
        raise ValueError(f"case_timeout must be > 0 seconds or None, got {case_timeout}")
    context = multiprocessing.get_context("spawn")
    done = context.Queue()
    results: list[dict[str, Any] | None] = [None] * len(todo)
    workers: list[Any] = []
    running: dict[int, tuple[float, int]] = {}  # worker number -> (start time, case index)
    queue = list(enumerate(todo))[::-1]

    def start_worker() -> Any:
        tasks = context.Queue()  # one queue per worker: the parent knows who runs what
        process = context.Process(target=_worker, args=(tasks, done), daemon=True)
        process.start()
        process.own_tasks = tasks  # type: ignore[attr-defined]
        return process

    try:
        workers = [start_worker() for _ in range(min(jobs, len(todo)))]
        finished = 0
        while finished < len(todo):
            for number, process in enumerate(workers):
                if number not in running and queue:
                    index, case = queue.pop()
                    process.own_tasks.put((index, case))
                    running[number] = (time.monotonic(), index)
            try:
                index, result = done.get(timeout=1.0)
            except Exception:  # queue.Empty: check the clocks
                index = None
            if index is not None:
                results[index] = result
                finished += 1
                number = next(n for n, (_, i) in running.items() if i == index)
                del running[number]
                if progress:
                    progress(result)
            if case_timeout is None:
                continue
            now = time.monotonic()
            for number, (started, index) in list(running.items()):
                if now - started > case_timeout:
                    workers[number].kill()
                    workers[number].join()
                    workers[number] = start_worker()
                    del running[number]
                    results[index] = _timed_out(todo[index], case_timeout)
                    finished += 1
                    if progress:
                        progress(results[index])
    finally:
        for process in workers:
            if process.is_alive():
                process.own_tasks.put(None)
        for process in workers:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
    return [r for r in results if r is not None]


# --- records and reports ----------------------------------------------------------------


def make_record(results: list[dict[str, Any]], command: str, subset: str) -> dict[str, Any]:
    """The JSON record of one run (schema in ``records/README.md``)."""
    import triton

    return {
        "schema": SCHEMA,
        "subset": subset,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": platform.node(),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "triton": triton.__version__,
        },  # fmt: skip
        "command": command,
        "targets": [
            {
                "name": t.name,
                "capability": list(t.capability),
                "shared_per_block": t.shared_per_block,
                "shared_per_sm": t.shared_per_sm,
                "registers_per_sm": t.registers_per_sm,
                "registers_per_thread": t.registers_per_thread,
                "gpus": list(t.gpus),
            }
            for t in TARGETS
        ],  # fmt: skip
        "spill_limit_bytes": SPILL_LIMIT_BYTES,
        "kernels": {name: spec.description for name, spec in KERNELS.items()},
        "results": results,
    }


def format_result(result: dict[str, Any]) -> str:
    """One line of the report for one case."""
    head = (
        f"{result['kernel']:<10} {result['target']:<6} {result['dtype']:<8} "
        f"d={result['head_dim']:<3} {result['config_key']:<46}"
    )
    if result["status"] in ("error", "unavailable", "timeout"):
        first = (result["error"] or "").splitlines()[0][:100]
        return f"{head} {result['status'].upper():<8} {first}"
    line = (
        f"{head} {result['status']:<8} regs {result['registers']:>3}  "
        f"stack {result['stack_bytes']:>5} B  shared {result['shared_bytes']:>6} B  "
        f"{result['mma']}  {result['seconds']} s"
    )
    if result["reasons"]:
        line += "  (" + "; ".join(result["reasons"]) + ")"
    return line


def summary(results: list[dict[str, Any]]) -> str:
    """Counts by status, and the (kernel, target, dtype, head_dim) with no config that fits."""
    counts: dict[str, int] = {}
    fitting: dict[tuple, bool] = {}
    for r in results:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
        key = (r["kernel"], r["target"], r["dtype"], r["head_dim"])
        fitting[key] = fitting.get(key, False) or r["status"] == "ok"
    lines = [", ".join(f"{n} {status}" for status, n in sorted(counts.items()))]
    stuck = [key for key, ok in fitting.items() if not ok]
    for kernel, target, dtype, head_dim in stuck:
        lines.append(f"no configuration fits: {kernel} on {target}, {dtype}, head_dim {head_dim}")
    return "\n".join(lines)


def compile_now(
    kernel: str, targets: Sequence[str], *, head_dim: int, dtype: str = "bfloat16",
    config_index: int = 0,
) -> list[dict[str, Any]]:
    """Compile ``kernel``'s ``config_index``-th configuration at (``dtype``, ``head_dim``) for
    each of ``targets``, now, and return the results (as in a record). In interpreter mode
    (no GPU) this runs the command in a compiler process (see "Why a separate process")."""
    argv = ["--kernels", kernel, "--targets", *targets, "--head-dims", str(head_dim),
            "--dtypes", dtype, "--config-index", str(config_index), "--json"]  # fmt: skip
    environment = {**os.environ, "TRITON_INTERPRET": "0"}
    done = subprocess.run([sys.executable, "-m", "attn_course.kernels.compile", *argv],
                          env=environment, capture_output=True, text=True, timeout=600)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"the compile check failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)["results"]


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status: 1 if any case is a compiler error.

    Refusals and timeouts are results, not failures: the autotuners never try a refused
    configuration (:mod:`attn_course.kernels.fit`).
    """
    parser = argparse.ArgumentParser(
        prog="python -m attn_course.kernels.compile",
        description="Compile every Triton kernel of the course for each GPU target "
        "(no GPU needed, nothing launched) and report registers, spills, shared memory "
        "and the MMA instructions used.",
    )
    parser.add_argument("--kernels", nargs="+", choices=sorted(KERNELS), help="default: all")
    parser.add_argument("--targets", nargs="+", choices=[t.name for t in TARGETS],
                        help="default: all")  # fmt: skip
    parser.add_argument(
        "--subset",
        choices=SUBSETS,
        default="full",
        help="ci: one configuration and dtype per head dim (default: full)",
    )
    parser.add_argument(
        "--head-dims", nargs="+", type=int, metavar="D",
        help="only these head dims (default: every one each kernel accepts)",
    )  # fmt: skip
    parser.add_argument("--dtypes", nargs="+", choices=[dtype_name(d) for d in ALLOWED_DTYPES],
                        help="only these dtypes (default: every one a kernel accepts)")  # fmt: skip
    parser.add_argument("--config-index", type=int, metavar="I",
                        help="only each kernel's I-th configuration (default: all)")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=1, help="compile in this many processes")
    parser.add_argument(
        "--case-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop a case that compiles longer than this (default: no limit)",
    )
    parser.add_argument("--out", type=Path, help="write the JSON record here")
    parser.add_argument("--json", action="store_true", help="print the record, not a table")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    if args.case_timeout is not None and args.case_timeout <= 0:
        parser.error(f"--case-timeout must be > 0 seconds, got {args.case_timeout}")

    if kernel_mode() == "interpreter":
        # See "Why a separate process" in the module docstring.
        environment = {**os.environ, "TRITON_INTERPRET": "0"}
        command = [sys.executable, "-m", "attn_course.kernels.compile", *sys.argv[1:]]
        if argv is not None:
            command = [sys.executable, "-m", "attn_course.kernels.compile", *argv]
        return subprocess.run(command, env=environment).returncode

    todo = cases(args.kernels, args.targets, args.subset)
    if args.head_dims:
        todo = [case for case in todo if case.head_dim in args.head_dims]
    if args.dtypes:
        todo = [case for case in todo if case.dtype in args.dtypes]
    if args.config_index is not None:
        todo = [case for case in todo if KERNELS[case.kernel].configs()[args.config_index]
                == (case.config, case.num_warps, case.num_stages)]  # fmt: skip

    def progress(result: dict[str, Any]) -> None:
        if not args.json:
            print(format_result(result), flush=True)

    results = run_cases(todo, jobs=args.jobs, case_timeout=args.case_timeout,
                        progress=progress)  # fmt: skip
    shown = " ".join(argv if argv is not None else sys.argv[1:])
    record = make_record(results, f"python -m attn_course.kernels.compile {shown}".strip(),
                         args.subset)  # fmt: skip
    if args.json:
        print(json.dumps(record, indent=1))
    else:
        print(summary(results))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=1) + "\n")
        if not args.json:
            print(f"record written to {args.out}")
    return 1 if any(r["status"] == "error" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())

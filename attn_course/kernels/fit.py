"""Autotune pruning on a real GPU: never try a configuration that cannot fit the device.

``python -m attn_course.kernels.compile`` compiles every autotune configuration of the
flash kernels for every target of :data:`~attn_course.kernels.targets.TARGETS` and records,
for each (kernel, target, dtype, head_dim, configuration), whether it fits (``"ok"``), is
refused (too much shared memory, too many registers, or spills) or fails to compile. The
committed record (``records/compile_*.json``) is the table this module reads: the
autotuners of :mod:`attn_course.kernels.flash` call :func:`prune_hook`'s function as their
``early_config_prune``, which keeps only the configurations recorded as fitting the
device's compute capability.

Why a record rather than a shared-memory formula: what a configuration needs is decided by
the compiler (pipeline depth, layout conversions, the MMA family of the target: the same
tile takes twice the shared memory on sm_75, where the dots become FMA loops, as on
sm_80), so an estimate would be one more model to keep in step with Triton. The record is
the compiler's own answer, per target; a test checks that the committed one covers every
configuration the autotuners list.

Rules, for one launch on a device of capability ``cc`` with dtype ``dtype`` and head dim
``d``:

* not on CUDA (the interpreter), no committed record, or ``cc`` not in the table: every
  configuration is kept (Triton's autotuner still skips one that raises OutOfResources);
* a configuration the record does not list is kept (it is new: rerun the compile check;
  the committed record covers the power-of-two head dims, so a padded one such as 96 is
  never pruned, and Triton's autotuner then skips a configuration whose launch fails for
  lack of resources);
* otherwise the ``"ok"`` ones are kept; if there are none, those refused only for spilling
  (they run, slowly); if there are none of those either, ValueError naming the kernel,
  target, dtype and head_dim.

Which records: those made with the installed Triton version if there are any, else those
of the newest version recorded (the fit of a tile changes little between Triton versions;
the autotuner's own OutOfResources handling covers the rest).
"""

from __future__ import annotations

import functools
import glob
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from attn_course.course import COURSE_ROOT

__all__ = [
    "SCHEMA",
    "choose_records",
    "compile_records",
    "config_key",
    "fitting_configs",
    "prune_hook",
]

SCHEMA = "attn_course.compile/1"


def config_key(config: dict[str, Any], num_warps: int | None, num_stages: int | None) -> str:
    """A configuration as one stable string: ``"BLOCK_M=64,BLOCK_N=32,warps=4,stages=3"``.

    None (Triton's default) is written ``default``. Records and the pruning both identify
    configurations by this string.
    """
    parts = [f"{k}={config[k]}" for k in sorted(config)]
    parts.append(f"warps={'default' if num_warps is None else num_warps}")
    parts.append(f"stages={'default' if num_stages is None else num_stages}")
    return ",".join(parts)


def default_records_dir() -> Path:
    """The course's ``records/`` folder (next to the package)."""
    return COURSE_ROOT / "records"


def compile_records(pattern: str | Path | None = None) -> list[dict[str, Any]]:
    """Every compile record (schema ``attn_course.compile/1``) matching ``pattern``, oldest first.

    ``pattern`` defaults to ``records/compile_*.json`` of this checkout.
    """
    pattern = str(pattern or default_records_dir() / "compile_*.json")
    records = []
    for name in sorted(glob.glob(pattern)):
        try:
            with open(name) as file:
                record = json.load(file)
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(record, dict) and record.get("schema") == SCHEMA:
            record["path"] = name
            records.append(record)
    return sorted(records, key=lambda r: r["date"])


def choose_records(records: list[dict[str, Any]], triton_version: str) -> list[dict[str, Any]]:
    """The full records made with ``triton_version``, else those of the newest version used.

    Several records of one version may each cover some targets or kernels (e.g.
    ``--targets sm_80 sm_90``); :func:`fit_table` merges them, the newer winning.
    """
    full = [r for r in records if r.get("subset") == "full"]
    same = [r for r in full if r["versions"]["triton"] == triton_version]
    if same or not full:
        return same
    newest = full[-1]["versions"]["triton"]
    return [r for r in full if r["versions"]["triton"] == newest]


Table = dict[tuple[str, str, str, int], dict[str, dict[str, Any]]]


def fit_table(records: list[dict[str, Any]]) -> Table:
    """(kernel, target, dtype, head_dim) -> {config_key: result} of records, oldest first."""
    table: Table = {}
    for record in records:
        for r in record["results"]:
            key = (r["kernel"], r["target"], r["dtype"], r["head_dim"])
            table.setdefault(key, {})[r["config_key"]] = r
    return table


@functools.lru_cache(maxsize=1)
def _committed_table() -> tuple[Table, str | None]:
    import triton

    records = choose_records(compile_records(), triton.__version__)
    return fit_table(records), ", ".join(Path(r["path"]).name for r in records) or None


def _only_spills(result: dict[str, Any]) -> bool:
    return result["status"] == "refused" and all(
        reason.startswith("spills") for reason in result["reasons"]
    )


def fitting_configs(
    kernel: str,
    configs: list[Any],
    target: str,
    dtype: str,
    head_dim: int,
    table: Table | None = None,
) -> list[Any]:
    """The ``triton.Config`` objects of ``configs`` that the record says fit ``target``.

    kernel: a name of :data:`attn_course.kernels.compile.KERNELS` ("forward", "dkdv", "dq");
    target: "sm_90"; dtype: "bfloat16"; table: :func:`fit_table` of a record (default: the
    committed one). The rules are in the module docstring.
    """
    source = None
    if table is None:
        table, source = _committed_table()
    known = table.get((kernel, target, dtype, head_dim))
    if not known:
        return list(configs)
    ok, spilling = [], []
    for config in configs:
        result = known.get(config_key(config.kwargs, config.num_warps, config.num_stages))
        if result is None or result["status"] == "ok":
            ok.append(config)
        elif _only_spills(result):
            spilling.append(config)
    if ok or spilling:
        return ok or spilling
    raise ValueError(
        f"no configuration of the {kernel} kernel fits {target} for dtype {dtype}, "
        f"head_dim {head_dim} (compile record {source or 'given'}); try float16/bfloat16 or "
        "a smaller head_dim"
    )


def prune_hook(kernel: str) -> Callable[..., list[Any]]:
    """An ``early_config_prune`` for ``triton.autotune(prune_configs_by=...)`` of ``kernel``.

    Triton calls it as ``prune(configs, named_args, **kwargs)`` before timing; it reads the
    device and dtype from the first tensor argument and ``HEAD_DIM`` from the call's
    keyword arguments, and returns :func:`fitting_configs`.
    """

    def prune(configs: list[Any], named_args: dict[str, Any], **kwargs: Any) -> list[Any]:
        import torch

        from attn_course.kernels.targets import target_for_capability

        tensor = next((v for v in named_args.values() if isinstance(v, torch.Tensor)), None)
        head_dim = kwargs.get("HEAD_DIM", named_args.get("HEAD_DIM"))
        if tensor is None or tensor.device.type != "cuda" or head_dim is None:
            return list(configs)
        target = target_for_capability(torch.cuda.get_device_capability(tensor.device))
        if target is None:
            return list(configs)
        dtype = str(tensor.dtype).removeprefix("torch.")
        return fitting_configs(kernel, configs, target.name, dtype, int(head_dim))

    prune.__name__ = f"prune_{kernel}"
    return prune


def recorded_resources(
    kernel: str, targets: list[str], *, dtype: str, head_dim: int
) -> list[dict[str, Any]]:
    """What the committed compile record says of ``kernel`` at (``dtype``, ``head_dim``) on
    each of ``targets``: one result per configuration (``config_key``, ``status``,
    ``registers`` per thread, ``stack_bytes``, ``shared_bytes`` per block, ``num_warps``,
    ``mma``, ``target``), in the record's order; [] where the record has none."""
    table, _ = _committed_table()
    return [
        result
        for target in targets
        for result in table.get((kernel, target, dtype, head_dim), {}).values()
    ]

"""What notebook 00 reports about your setup: ``python -m attn_course.start_here``.

:func:`environment_report` collects the facts the course depends on (Python,
torch, Triton, whether the kernels run compiled on a GPU or in Triton's
interpreter, memory, the notebook libraries, the size knob) and turns each
into a :class:`Finding`: ``ok``, ``note`` (works, but read this) or ``missing``
(something in the course will not run) with what to do about it. It can also
run the course's Triton FlashAttention kernel once on a tiny input and compare
it with PyTorch, which proves the whole chain works end to end.

In a notebook the report shows as a table; in a terminal as text.
"""

from __future__ import annotations

import html
import importlib.metadata
import os
import platform
import sys
from dataclasses import dataclass, field
from typing import Literal

from attn_course.config import SIZE_ENV, course_size

__all__ = ["Finding", "EnvironmentReport", "environment_report", "kernel_smoke_test", "main"]

Level = Literal["ok", "note", "missing"]
_MARKS = {"ok": "✓", "note": "!", "missing": "✗"}
_COLOURS = {"ok": "#2e7d32", "note": "#ef6c00", "missing": "#c62828"}

# Below this much memory the full-size experiments (n up to 16k naive attention in
# notebook 01, ~4.3 GB at peak) may not fit; the small size always does.
FULL_SIZE_MEMORY_BYTES = 8 * 2**30
INSTALL = "run `make lab` in the course folder (it installs everything into .venv)"


@dataclass(frozen=True)
class Finding:
    """One line of the report: what was checked, what was found, and what to do."""

    topic: str
    level: Level
    found: str
    advice: str = ""


@dataclass(repr=False)
class EnvironmentReport:
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing the course needs is missing (notes are fine)."""
        return all(f.level != "missing" for f in self.findings)

    def __str__(self) -> str:
        width = max(len(f.topic) for f in self.findings)
        lines = []
        for f in self.findings:
            lines.append(f"{_MARKS[f.level]} {f.topic:<{width}}  {f.found}")
            if f.advice:
                lines.append(f"  {'':<{width}}  → {f.advice}")
        verdict = "ready" if self.ok else "something is missing (see ✗ above)"
        return "\n".join([*lines, f"\nThe course is {verdict}."])

    __repr__ = __str__  # what a notebook shows as text/plain

    def _repr_html_(self) -> str:
        e = html.escape
        rows = "".join(
            f"<tr><td style='color:{_COLOURS[f.level]};font-weight:bold'>{_MARKS[f.level]}</td>"
            f"<td style='text-align:left'>{e(f.topic)}</td>"
            f"<td style='text-align:left'>{e(f.found)}</td>"
            f"<td style='text-align:left'>{e(f.advice)}</td></tr>"
            for f in self.findings
        )
        verdict = "ready" if self.ok else "something is missing (see ✗)"
        return (
            "<table><thead><tr><th></th><th style='text-align:left'>what</th>"
            "<th style='text-align:left'>found</th><th style='text-align:left'>what to do</th>"
            f"</tr></thead><tbody>{rows}</tbody></table><p><b>The course is {verdict}.</b></p>"
        )


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _memory_bytes() -> tuple[int | None, int | None]:
    """(total, available) RAM in bytes, None where the system does not tell."""
    try:
        import psutil

        memory = psutil.virtual_memory()
        return memory.total, memory.available
    except ImportError:
        pass
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        free = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
        return total, free
    except (ValueError, OSError, AttributeError):
        return None, None


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def _python_finding() -> Finding:
    # pip refuses to install the course on Python < 3.11 (pyproject's requires-python).
    return Finding("Python", "ok", f"{platform.python_version()} ({sys.executable})")


def _torch_findings() -> list[Finding]:
    try:
        import torch
    except ImportError:
        return [Finding("PyTorch", "missing", "not installed", INSTALL)]
    findings = [Finding("PyTorch", "ok", torch.__version__)]
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        memory = torch.cuda.get_device_properties(0).total_memory
        findings.append(Finding("GPU", "ok", f"{name}, {_gib(memory)}, CUDA {torch.version.cuda}"))
    else:
        findings.append(
            Finding(
                "GPU",
                "note",
                "none (CPU only)",
                "every notebook runs on the CPU; only the live GPU benchmarks (notebooks "
                "04-06) need a GPU, and the notebooks show recorded results instead",
            )
        )
    return findings


def _triton_findings() -> list[Finding]:
    version = _version("triton")
    if version is None:
        advice = (
            "Triton exists for Linux only; on macOS or Windows use Linux (WSL2, a container "
            "or a cloud machine) for notebooks 04-08's kernels"
            if platform.system() != "Linux"
            else INSTALL
        )
        return [Finding("Triton", "missing", "not installed", advice)]
    from attn_course.triton_mode import kernel_mode

    findings = [Finding("Triton", "ok", version)]
    if kernel_mode() == "gpu":
        findings.append(Finding("Kernels run", "ok", "compiled on the GPU"))
    else:
        findings.append(
            Finding(
                "Kernels run",
                "note",
                "in Triton's interpreter on the CPU (TRITON_INTERPRET=1)",
                "correct but slow: fine for learning and for the tests; time kernels only on "
                "a GPU",
            )
        )
    return findings


def _memory_finding() -> Finding:
    total, available = _memory_bytes()
    if total is None:
        return Finding("Memory", "note", "unknown", "the full-size experiments want ~8 GiB")
    found = f"{_gib(total)} in all, {_gib(available)} available" if available else _gib(total)
    if total < FULL_SIZE_MEMORY_BYTES:
        advice = f"below 8 GiB: start JupyterLab with {SIZE_ENV}=small for smaller experiments"
        return Finding("Memory", "note", found, advice)
    return Finding("Memory", "ok", found)


def _library_findings() -> list[Finding]:
    wanted = {
        "jupyterlab": "the course's notebooks",
        "ipywidgets": "the interactive calculators",
        "anywidget": "plotly's FigureWidget in the calculators",
        "plotly": "every plot",
        "numpy": "Triton's interpreter and the references",
        "tqdm": "progress bars",
    }
    findings = []
    for name, needed_for in wanted.items():
        version = _version(name)
        if version is None:
            findings.append(Finding(name, "missing", "not installed", f"{INSTALL} ({needed_for})"))
        else:
            findings.append(Finding(name, "ok", version))
    return findings


def _size_finding() -> Finding:
    try:
        size = course_size()
    except ValueError as error:
        return Finding("Experiment size", "missing", str(error), f"unset {SIZE_ENV}")
    if size == "small":
        return Finding(
            "Experiment size",
            "note",
            f"small ({SIZE_ENV}=small)",
            "heavy cells run tiny inputs; the text talks about the full size",
        )
    return Finding("Experiment size", "ok", f"full (set {SIZE_ENV}=small for quick runs)")


def kernel_smoke_test() -> Finding:
    """Run the course's Triton FlashAttention forward once (n=32, d=16) against PyTorch."""
    try:
        import torch

        from attn_course.kernels import flash_attention
        from attn_course.triton_mode import kernel_mode
    except ImportError as error:
        return Finding("Kernel smoke test", "missing", f"could not import: {error}", INSTALL)
    device = "cuda" if kernel_mode() == "gpu" else "cpu"
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 32, 16, generator=generator).to(device) for _ in range(3))
    try:
        out = flash_attention(q, k, v, causal=True)
    except Exception as error:  # noqa: BLE001 - any failure is the finding
        advice = "run `make test` to see which part fails"
        return Finding("Kernel smoke test", "missing", f"{type(error).__name__}: {error}", advice)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    error = (out - expected).abs().max().item()
    if not error < 1e-4:
        return Finding(
            "Kernel smoke test",
            "missing",
            f"FlashAttention differs from PyTorch by {error:.2g}",
            "run `make test` and report the failing test",
        )
    return Finding(
        "Kernel smoke test", "ok", f"FlashAttention = PyTorch's attention (max error {error:.1e})"
    )


def environment_report(smoke_test: bool = True) -> EnvironmentReport:
    """Everything notebook 00 checks, in the order it shows them.

    ``smoke_test`` also runs the Triton kernel once (about a second in the interpreter).
    """
    findings = [_python_finding(), *_torch_findings(), *_triton_findings(), _memory_finding()]
    findings += [*_library_findings(), _size_finding()]
    if smoke_test and not any(f.level == "missing" for f in findings[:4]):
        findings.append(kernel_smoke_test())
    return EnvironmentReport(findings)


def main() -> int:
    report = environment_report()
    print(report)
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

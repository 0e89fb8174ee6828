"""Notebook 00's environment report (attn_course/start_here.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from attn_course import start_here
from attn_course.start_here import environment_report, kernel_smoke_test


def by_topic(report):
    return {f.topic: f for f in report.findings}


def test_this_machine_is_ready_and_the_kernel_works():
    report = environment_report()
    assert report.ok, str(report)
    findings = by_topic(report)
    assert findings["PyTorch"].found == torch.__version__
    assert findings["Kernel smoke test"].level == "ok"
    if not torch.cuda.is_available():
        assert findings["Kernels run"].found.startswith("in Triton's interpreter")
        assert findings["GPU"].level == "note"


def test_a_wrong_kernel_is_reported_missing(monkeypatch):
    import attn_course.kernels as kernels

    monkeypatch.setattr(kernels, "flash_attention", lambda q, k, v, causal: v)
    finding = kernel_smoke_test()
    assert finding.level == "missing"
    assert finding.found.startswith("FlashAttention differs from PyTorch by")


def test_a_crashing_kernel_is_reported_missing(monkeypatch):
    import attn_course.kernels as kernels

    def broken(q, k, v, causal):
        raise RuntimeError("no launch")

    monkeypatch.setattr(kernels, "flash_attention", broken)
    assert kernel_smoke_test().found == "RuntimeError: no launch"


def test_missing_library_makes_the_report_not_ok(monkeypatch):
    real = start_here._version
    monkeypatch.setattr(start_here, "_version", lambda n: None if n == "anywidget" else real(n))
    report = environment_report(smoke_test=False)
    assert not report.ok
    finding = by_topic(report)["anywidget"]
    assert (finding.level, finding.found) == ("missing", "not installed")
    assert "make lab" in finding.advice and "FigureWidget" in finding.advice
    assert "something is missing" in str(report)


def test_little_memory_suggests_the_small_size(monkeypatch):
    monkeypatch.setattr(start_here, "_memory_bytes", lambda: (4 * 2**30, 2 * 2**30))
    finding = by_topic(environment_report(smoke_test=False))["Memory"]
    assert finding.level == "note"
    assert finding.found == "4.0 GiB in all, 2.0 GiB available"
    assert "ATTN_COURSE_SIZE=small" in finding.advice


@pytest.mark.parametrize(
    ("value", "level"), [("small", "note"), ("full", "ok"), ("huge", "missing")]
)
def test_size_knob(monkeypatch, value, level):
    monkeypatch.setenv("ATTN_COURSE_SIZE", value)
    assert by_topic(environment_report(smoke_test=False))["Experiment size"].level == level


def test_text_and_html_show_every_finding():
    report = environment_report(smoke_test=False)
    text, page = str(report), report._repr_html_()
    for finding in report.findings:
        assert finding.topic in text and finding.topic in page
    assert text.endswith("The course is ready.")


def test_command_line_exit_status():
    done = subprocess.run(
        [sys.executable, "-m", "attn_course.start_here"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Kernel smoke test" in done.stdout

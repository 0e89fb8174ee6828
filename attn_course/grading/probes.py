"""What a check may measure about an answer while it runs: its memory peak and its work.

Each probe is an :func:`~attn_course.grading.answers.answer_helper`: a check runs it with
``answer.through(probe, *args)``, and it runs where the answer runs (in the student's
kernel, under the grader), returning plain numbers. Memory alone cannot tell O(n) from
O(n²) work (an answer can compute an n × n matrix a few rows at a time and keep its peak
small), so :func:`work` counts the work itself, two ways:

* ``flops``: matmul FLOPs as ``torch.utils.flop_counter.FlopCounterMode`` counts them
  (2 per multiply-add of mm, bmm, addmm, baddbmm, einsum, SDPA);
* ``elements``: the number of tensor elements every non-view ATen operator produced, which
  also sees work done without matmuls (broadcast products, Python loops of small ops).

A check compares the counts at n and 4n: O(n) work grows 4×, O(n²) work 16×.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from attn_course.grading.answers import answer_helper

__all__ = ["growth", "peak_bytes", "work"]


@answer_helper
def peak_bytes(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Peak extra bytes PyTorch's CPU allocator handed out while ``fn`` ran
    (:func:`attn_course.measure.measure_peak_bytes`)."""
    from attn_course.measure import measure_peak_bytes

    return measure_peak_bytes(fn, *args, **kwargs)


@answer_helper
def work(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, int]:
    """``{"flops": matmul FLOPs, "elements": elements produced}`` of one call of ``fn``."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    class ElementCounter(TorchDispatchMode):
        elements = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            out = func(*args, **(kwargs or {}))
            if not func.is_view:
                leaves = out if isinstance(out, tuple | list) else (out,)
                self.elements += sum(t.numel() for t in leaves if isinstance(t, torch.Tensor))
            return out

    counter = ElementCounter()
    with FlopCounterMode(display=False) as flops, counter:
        fn(*args, **kwargs)
    return {"flops": int(flops.get_total_flops()), "elements": int(counter.elements)}


def growth(small: dict[str, int], large: dict[str, int]) -> float:
    """How much the larger of the two work counts grew between two :func:`work` results."""
    ratios = [large[key] / small[key] for key in ("flops", "elements") if small.get(key)]
    return max(ratios, default=0.0)

"""Where the Triton kernels run: on a GPU, or in Triton's interpreter on the CPU.

Triton decides how to treat a kernel when ``@triton.jit`` *decorates* it: if the
environment variable ``TRITON_INTERPRET`` is ``"1"`` at that moment, the kernel becomes an
``InterpretedFunction`` that runs every program of the launch grid one after another in
NumPy, on CPU tensors. That is slow (a Python loop over programs) but exact enough to test
and to teach with on a laptop. So the choice has to be made *before* any kernel module is
imported, which is why importing the :mod:`attn_course` package imports this module first:
torch's profiler and FlexAttention import triton on their own and must not come first.

The rule:

* ``TRITON_INTERPRET`` already set by the user: respected as it is.
* otherwise, no CUDA device (``torch.cuda.is_available()`` is False): set it to ``"1"``.
* otherwise: compiled kernels on the GPU.

``TRITON_INTERPRET=0`` on a machine without a GPU is therefore the way to get the kernels
as real, compilable ``JITFunction`` objects that cannot be launched there: mode ``"gpu"``,
which is what the compile check ``python -m attn_course.kernels.compile`` needs (it starts
itself again with that setting when it finds the interpreter chosen).
"""

from __future__ import annotations

import os
import sys
import warnings

import torch

_INTERPRET_VARIABLE = "TRITON_INTERPRET"

if _INTERPRET_VARIABLE not in os.environ and not torch.cuda.is_available():
    if "triton" in sys.modules:
        # Triton's own library functions (tl.max, tl.sum, ...) were decorated when triton was
        # imported, in compiled mode; interpreted kernels that call them fail later with
        # "Cannot call @triton.jit'd outside of the scope of a kernel". Say so now.
        warnings.warn(
            "triton was imported before attn_course, so the interpreter mode chosen now will "
            "not reach Triton's own library functions. Import attn_course first (torch's "
            "profiler and FlexAttention import triton), or start Python with TRITON_INTERPRET=1.",
            RuntimeWarning,
            stacklevel=2,
        )
    os.environ[_INTERPRET_VARIABLE] = "1"


def _triton_will_interpret() -> bool:
    """Ask Triton how it reads the variable ("1", "true", "on" ... are all yes)."""
    try:
        from triton import knobs  # triton >= 3.4

        return bool(knobs.runtime.interpret)
    except (ImportError, AttributeError):
        return os.environ.get(_INTERPRET_VARIABLE, "0").lower() in ("1", "true", "on", "yes")


# Frozen now: kernels decorated after this point follow this mode, so a later change of the
# variable would make the reported mode lie about kernels that already exist.
_MODE = "interpreter" if _triton_will_interpret() else "gpu"


def kernel_mode() -> str:
    """``"gpu"`` (compiled kernels, CUDA tensors) or ``"interpreter"`` (CPU tensors)."""
    return _MODE


def kernel_device() -> torch.device:
    """The device kernel inputs must live on: ``cuda`` in GPU mode, ``cpu`` in the interpreter."""
    return torch.device("cpu") if _MODE == "interpreter" else torch.device("cuda")

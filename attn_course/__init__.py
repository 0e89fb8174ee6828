"""The Quadratic Wall — companion package of the attention course.

Importing the package first decides where the course's Triton kernels run (a GPU, or
Triton's interpreter on the CPU; see :mod:`attn_course.triton_mode`). That choice must be
made before anything imports triton — torch's profiler, used to measure memory, and
FlexAttention both do — so it is made here, before any submodule is used.
"""

from attn_course import triton_mode as _triton_mode  # noqa: F401  (sets TRITON_INTERPRET)

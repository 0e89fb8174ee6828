"""The GPUs the course's kernels are compiled for: one table, with its sources.

Each :class:`Target` is one NVIDIA compute capability (what Triton and ``ptxas`` call
``sm_XY``) with the per-block and per-SM limits that decide whether a compiled kernel can
be launched at all. ``python -m attn_course.kernels.compile`` compiles every kernel for every
target of :data:`TARGETS` and refuses what does not fit (:func:`limits_exceeded`); the
autotuners skip refused configurations on a real GPU (:mod:`attn_course.kernels.fit`).

Sources (all numbers below come from them, none is measured here):

* NVIDIA, *CUDA C++ Programming Guide*, "Compute Capabilities", table "Technical
  Specifications per Compute Capability": shared memory per SM, the largest shared memory
  one block may opt into (``cudaFuncAttributeMaxDynamicSharedMemorySize``), 32-bit registers
  per SM, registers per thread.
  https://docs.nvidia.com/cuda/cuda-c-programming-guide/index.html#compute-capabilities
* The per-architecture tuning guides, which restate the shared-memory figures:
  Turing https://docs.nvidia.com/cuda/turing-tuning-guide/ , Ampere
  https://docs.nvidia.com/cuda/ampere-tuning-guide/ (A100 164 KB per SM, 163 KB per block;
  GA10x 100 KB / 99 KB), Ada https://docs.nvidia.com/cuda/ada-tuning-guide/ , Hopper
  https://docs.nvidia.com/cuda/hopper-tuning-guide/ (228 KB / 227 KB), Blackwell
  https://docs.nvidia.com/cuda/blackwell-tuning-guide/ (228 KB / 227 KB).
* Which GPUs have which capability: https://developer.nvidia.com/cuda-gpus

"KB" in NVIDIA's tables is 1024 bytes; every field here is in bytes or registers.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KIB", "TARGETS", "Target", "limits_exceeded", "target_for_capability"]

KIB = 1024  # bytes

#: Spilled registers tolerated per thread, in bytes of local-memory stack: 64 four-byte
#: values, a quarter of the 255 registers a thread may hold. A few spilled values cost a
#: few L1-cached loads; beyond this the tile does not fit in the register file and local
#: memory traffic dominates, so the configuration is refused (and never autotuned).
SPILL_LIMIT_BYTES = 256


@dataclass(frozen=True)
class Target:
    """One compute capability and the limits a kernel launch must respect.

    name: ``"sm_90"``; capability: (9, 0); shared_per_block: the most shared memory one
    block may use (bytes, opt-in maximum); shared_per_sm: shared memory of one SM (bytes);
    registers_per_sm: 32-bit registers of one SM; registers_per_thread: the most one
    thread may use; gpus: examples of GPUs with this capability.
    """

    name: str
    capability: tuple[int, int]
    shared_per_block: int
    shared_per_sm: int
    registers_per_sm: int
    registers_per_thread: int
    gpus: tuple[str, ...]

    @property
    def arch(self) -> int:
        """The capability as one integer, 10·major + minor (Triton's ``GPUTarget.arch``)."""
        return 10 * self.capability[0] + self.capability[1]


#: The published table, oldest first. sm_75 is the oldest GPU the course promises (Colab's
#: free T4); Triton 3.x supports nothing older with tensor cores.
TARGETS: tuple[Target, ...] = (
    Target("sm_75", (7, 5), 64 * KIB, 64 * KIB, 65536, 255, ("T4 (Colab free tier)", "RTX 20xx")),
    Target("sm_80", (8, 0), 163 * KIB, 164 * KIB, 65536, 255, ("A100", "A30")),
    Target("sm_86", (8, 6), 99 * KIB, 100 * KIB, 65536, 255, ("RTX 30xx", "A10", "A40")),
    Target("sm_89", (8, 9), 99 * KIB, 100 * KIB, 65536, 255, ("L4", "L40S", "RTX 40xx")),
    Target("sm_90", (9, 0), 227 * KIB, 228 * KIB, 65536, 255, ("H100", "H200")),
    Target("sm_100", (10, 0), 227 * KIB, 228 * KIB, 65536, 255, ("B200", "GB200")),
)


def target_for_capability(capability: tuple[int, int]) -> Target | None:
    """The table's entry for a device's ``torch.cuda.get_device_capability()``, or None."""
    for target in TARGETS:
        if target.capability == tuple(capability):
            return target
    return None


def limits_exceeded(
    target: Target, *, shared_bytes: int, registers: int, threads: int, stack_bytes: int
) -> list[str]:
    """Why a compiled kernel cannot (or should not) run on ``target``; [] when it fits.

    shared_bytes: static + dynamic shared memory of one block; registers: per thread;
    threads: per block (32 · num_warps); stack_bytes: local-memory stack frame per thread
    (spilled registers). Rules: shared_bytes <= target.shared_per_block;
    registers · threads <= target.registers_per_sm (else not even one block fits on an SM);
    registers <= target.registers_per_thread; stack_bytes <= :data:`SPILL_LIMIT_BYTES`.
    """
    reasons = []
    if shared_bytes > target.shared_per_block:
        reasons.append(
            f"shared memory {shared_bytes} B > {target.shared_per_block} B per block on "
            f"{target.name}"
        )
    if registers * threads > target.registers_per_sm:
        reasons.append(
            f"registers {registers} x {threads} threads = {registers * threads} > "
            f"{target.registers_per_sm} per SM on {target.name}"
        )
    if registers > target.registers_per_thread:
        reasons.append(f"registers {registers} > {target.registers_per_thread} per thread")
    if stack_bytes > SPILL_LIMIT_BYTES:
        reasons.append(
            f"spills: {stack_bytes} B of stack per thread > {SPILL_LIMIT_BYTES} B tolerated"
        )
    return reasons

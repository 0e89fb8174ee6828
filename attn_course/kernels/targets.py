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

__all__ = [
    "KIB",
    "TARGETS",
    "Occupancy",
    "Target",
    "get_target",
    "limits_exceeded",
    "occupancy",
    "target_for_capability",
]

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
    max_warps_per_sm: int = 64
    max_blocks_per_sm: int = 32

    @property
    def arch(self) -> int:
        """The capability as one integer, 10·major + minor (Triton's ``GPUTarget.arch``)."""
        return 10 * self.capability[0] + self.capability[1]


#: The published table, oldest first. sm_75 is the oldest GPU the course promises (Colab's
#: free T4); Triton 3.x supports nothing older with tensor cores.
TARGETS: tuple[Target, ...] = (
    Target("sm_75", (7, 5), 64 * KIB, 64 * KIB, 65536, 255, ("T4 (Colab free tier)", "RTX 20xx"),
           max_warps_per_sm=32, max_blocks_per_sm=16),
    Target("sm_80", (8, 0), 163 * KIB, 164 * KIB, 65536, 255, ("A100", "A30"),
           max_warps_per_sm=64, max_blocks_per_sm=32),
    Target("sm_86", (8, 6), 99 * KIB, 100 * KIB, 65536, 255, ("RTX 30xx", "A10", "A40"),
           max_warps_per_sm=48, max_blocks_per_sm=16),
    Target("sm_89", (8, 9), 99 * KIB, 100 * KIB, 65536, 255, ("L4", "L40S", "RTX 40xx"),
           max_warps_per_sm=48, max_blocks_per_sm=24),
    Target("sm_90", (9, 0), 227 * KIB, 228 * KIB, 65536, 255, ("H100", "H200"),
           max_warps_per_sm=64, max_blocks_per_sm=32),
    Target("sm_100", (10, 0), 227 * KIB, 228 * KIB, 65536, 255, ("B200", "GB200"),
           max_warps_per_sm=64, max_blocks_per_sm=32),
)  # fmt: skip

#: Registers are given to a warp in units of this many (the guide's "register allocation
#: unit size", 256 on every target here): a thread's count is rounded up to a multiple of 8.
REGISTER_ALLOCATION_UNIT = 256


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


def get_target(name: str) -> Target:
    """The table's entry named ``name`` ("sm_90"); the error lists the names there are."""
    for target in TARGETS:
        if target.name == name:
            return target
    raise ValueError(f"target must be one of {[t.name for t in TARGETS]}, got {name!r}")


@dataclass(frozen=True)
class Occupancy:
    """How many blocks of one kernel an SM holds at once, and what stops it holding more.

    blocks: resident blocks per SM; warps: blocks · warps per block; fraction: warps /
    the SM's maximum; limiter: "registers", "shared memory", "warps" or "blocks" (the
    smallest of the limits; the first of them in that order on a tie); by_limit: each
    limit's count of blocks (no "shared memory" entry for a block that uses none).
    """

    blocks: int
    warps: int
    fraction: float
    limiter: str
    by_limit: dict[str, int]


def occupancy(target: Target, *, registers: int, shared_bytes: int, num_warps: int) -> Occupancy:
    """Resident blocks per SM of a kernel using ``registers`` per thread, ``shared_bytes``
    per block and ``num_warps`` warps per block, on ``target``:

        registers:      registers_per_sm // (ceil(32 · registers / 256) · 256 · num_warps)
        shared memory:  shared_per_sm // (shared_bytes + reserved), reserved =
                        shared_per_sm − shared_per_block (1 KiB the system keeps per block
                        from sm_80 on, 0 on sm_75)
        warps:          max_warps_per_sm // num_warps
        blocks:         max_blocks_per_sm

    and the smallest of the four. (The guide's occupancy calculator also rounds shared
    memory to a unit of 128 or 256 bytes; Triton's allocations are multiples of it here.)
    """
    for name, value, low in (("registers", registers, 1), ("num_warps", num_warps, 1),
                             ("shared_bytes", shared_bytes, 0)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if registers > target.registers_per_thread:
        raise ValueError(f"registers must be <= {target.registers_per_thread}, got {registers}")
    unit = REGISTER_ALLOCATION_UNIT
    per_warp = -(-32 * registers // unit) * unit
    reserved = target.shared_per_sm - target.shared_per_block
    by_limit = {"registers": target.registers_per_sm // (per_warp * num_warps)}
    if shared_bytes + reserved:  # a block that takes no shared memory is not limited by it
        by_limit["shared memory"] = target.shared_per_sm // (shared_bytes + reserved)
    by_limit["warps"] = target.max_warps_per_sm // num_warps
    by_limit["blocks"] = target.max_blocks_per_sm
    blocks = min(by_limit.values())
    limiter = next(name for name, count in by_limit.items() if count == blocks)
    warps = blocks * num_warps
    return Occupancy(blocks, warps, warps / target.max_warps_per_sm, limiter, by_limit)

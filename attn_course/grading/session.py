"""The grader's side of one student kernel: start it confined, run cells, call answers.

:class:`KernelSession` starts a Jupyter kernel through :mod:`~attn_course.grading.sandbox`
in a folder that holds nothing but the student's notebook, with a minimal environment (no
variable of the grader's leaks into it), and talks to it over ZeroMQ with a cap on the
size of every message. It keeps the time: the student's cells and answers are limited in
*CPU* seconds (armed inside the kernel by :mod:`~attn_course.grading.kernel` and measured
from outside through ``/proc``), with wall-clock deadlines only as generous backstops for
code that waits instead of computing. Printed output is counted and thrown away, never
stored, and a cell that prints too much is stopped.

:class:`RemoteAnswer` is the :class:`~attn_course.grading.answers.Answer` the class grader
hands to a check: each call sends the inputs to the kernel and turns the reply back into
a value or an exception with :func:`~attn_course.grading.answers.raise_or_return`, exactly
as :class:`~attn_course.grading.answers.LocalAnswer` does in a notebook.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import site
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attn_course.grading import sandbox
from attn_course.grading.answers import (
    Answer,
    Forbidden,
    Outcome,
    StudentError,
    TimeLimitReached,
    WireError,
    decode,
    encode,
    helper_name,
    raise_or_return,
    resolve_helper,
)
from attn_course.grading.kernel import MARK, REPLY_MIME

__all__ = [
    "KernelLost",
    "KernelSession",
    "Limits",
    "RemoteAnswer",
    "SandboxError",
    "package_copy",
    "wall_backstop_s",
]

PACKAGE_DIR = Path(__file__).resolve().parents[1]
SANDBOX_SCRIPT = Path(sandbox.__file__).resolve()
# Libraries a notebook of the course may import; the grader imports them before any limit.
WARM_MODULES = ("torch", "numpy", "triton", "attn_course", "plotly", "ipywidgets")
_SYSTEM_READ = (
    "/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/proc", "/sys", "/dev",
)  # fmt: skip


# CPU seconds a kernel may run past its limit before the grader interrupts it (its own
# timer normally stops it first), and the seconds it then has to stop: a kernel that keeps
# computing for CPU_GRACE_S more, or is silent for INTERRUPT_GRACE_S, ignored the interrupt.
CPU_GRACE_S = 2.0
INTERRUPT_GRACE_S = 30.0
# Seconds to wait, after a cell's reply, for the rest of its output and its "idle" status.
IDLE_GRACE_S = 10.0


def wall_backstop_s(cpu_s: float) -> float:
    """Wall seconds after which work limited to ``cpu_s`` CPU seconds is stopped anyway: only
    for code that waits (sleep, a lock) rather than computes; generous, so that a loaded
    machine never reaches it before the CPU limit does."""
    return 4 * cpu_s + 30


@dataclass(frozen=True)
class Limits:
    """What one notebook's grading may use."""

    cell_cpu_s: float = 120.0  # CPU seconds per student cell
    memory_bytes: int | None = 6 * 2**30  # the kernel's address space
    notebook_s: float = 1200.0  # absolute wall-clock cap for one notebook, restarts included
    output_bytes: int = 32 * 2**20  # printed output one cell may produce before it is stopped
    internal_s: float = 300.0  # wall seconds for the grader's own cells (start, warm-up, probes)
    message_bytes: int = 64 * 2**20  # the largest message accepted from the kernel
    file_bytes: int = 256 * 2**20  # the largest file the kernel may write


class SandboxError(RuntimeError):
    """The kernel cannot be confined here (no Landlock, or an unsafe layout)."""


class KernelLost(BaseException):
    """The kernel died, stopped answering, was left unusable, or the notebook's time ran out.

    A BaseException, so that no check's or answer's error handling can swallow it: it must
    reach the grader, which goes on in a fresh kernel."""

    def __init__(self, how: str) -> None:
        super().__init__(how)
        self.how = how  # "died" | "hung" | "broken" | "flooded" | "out of time"


@dataclass
class CellRun:
    """How one student cell ended."""

    status: str  # "ok" | "error" | "timed out" | "too much output"
    ename: str = ""
    evalue: str = ""


# --- the read-only copy of the package the kernel imports -----------------------------------


def package_copy(root: Path) -> Path:
    """Copy ``attn_course`` under ``root/site`` (compiled, read-only); return ``root/site``.

    The kernel imports this copy, never the grader's own package: with an editable install
    that would be the course checkout, next to ``solutions/``, and writable.
    """
    site_dir = root / "site"
    target = site_dir / "attn_course"
    shutil.copytree(PACKAGE_DIR, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(target)],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for folder, _dirs, files in os.walk(site_dir):
        for name in files:
            os.chmod(os.path.join(folder, name), 0o444)
        os.chmod(folder, 0o555)
    return site_dir


def _course_root() -> Path | None:
    """The checkout the grader's package came from, if it holds solutions (editable install)."""
    root = PACKAGE_DIR.parent
    return root if (root / "solutions").is_dir() else None


def read_paths(site_dir: Path) -> list[str]:
    """Folders the kernel may read: the system, the interpreter and its packages, the copy.

    Refuses a layout where one of them contains the course's sources (``solutions/``).
    """
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(site_dir)}
    user_site = site.getusersitepackages() if site.ENABLE_USER_SITE else None
    if user_site and os.path.isdir(user_site):
        prefixes.add(user_site)
    paths = [p for p in (*_SYSTEM_READ, *sorted(prefixes)) if os.path.exists(p)]
    course = _course_root()
    if course is not None:
        for path in paths:
            if course.resolve().is_relative_to(Path(path).resolve()):
                raise SandboxError(
                    f"the grading kernel must read {path}, which contains the course sources "
                    f"({course}); install Python and the course's packages outside the checkout"
                )
    return paths


def _gpu_devices() -> list[str]:
    """NVIDIA's device files, which CUDA opens read-write (and controls with ioctl)."""
    return sorted(str(p) for p in Path("/dev").glob("nvidia*")) if Path("/dev").is_dir() else []


def _kernel_env(folder: Path, site_dir: Path) -> dict[str, str]:
    """The kernel's whole environment: nothing of the grader's but PATH and a few knobs."""
    keep = ("PATH", "ATTN_COURSE_SIZE", "TRITON_INTERPRET", "CUDA_VISIBLE_DEVICES")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env.setdefault("ATTN_COURSE_SIZE", "small")  # grade answers, not experiments
    home = str(folder)
    env.update(
        HOME=home, TMPDIR=str(folder / ".tmp"), PYTHONPATH=str(site_dir),
        PYTHONDONTWRITEBYTECODE="1", PYTHONNOUSERSITE="1", LANG="C.UTF-8",
        IPYTHONDIR=str(folder / ".ipython"), JUPYTER_CONFIG_DIR=str(folder / ".jupyter"),
        JUPYTER_DATA_DIR=str(folder / ".jupyter"), JUPYTER_RUNTIME_DIR=str(folder / ".jupyter"),
        MPLCONFIGDIR=str(folder / ".cache"), XDG_CACHE_HOME=str(folder / ".cache"),
        TRITON_HOME=home, TORCHINDUCTOR_CACHE_DIR=str(folder / ".cache"),
        # One thread: CPU accounting stays meaningful and `--jobs N` uses N cores.
        OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
    )  # fmt: skip
    (folder / ".tmp").mkdir(exist_ok=True)
    return env


# --- one confined kernel ----------------------------------------------------------------------


class KernelSession:
    """One confined kernel in ``folder`` (its cwd and its only writable place)."""

    def __init__(
        self, folder: Path, site_dir: Path, limits: Limits, deadline: float, confined: bool = True
    ) -> None:
        self.folder, self.site_dir, self.limits = folder, site_dir, limits
        self.deadline, self.confined = deadline, confined
        self.km: Any = None
        self.kc: Any = None
        self.started_ticks = 0

    # -- starting and stopping

    def start(self, warm_modules: Sequence[str]) -> None:
        import zmq
        from jupyter_client import KernelManager

        session = self

        class ConfinedKernelManager(KernelManager):
            def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
                command = super().format_kernel_cmd(extra_arguments)
                return session._confined_command(command, self)

        self.km = ConfinedKernelManager(kernel_name="python3")
        self.started_ticks = sandbox.now_ticks()
        self.km.connection_file = str(self.folder / ".jupyter" / "kernel.json")
        (self.folder / ".jupyter").mkdir(exist_ok=True)
        self.km.start_kernel(
            env=_kernel_env(self.folder, self.site_dir),
            cwd=str(self.folder),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        context = zmq.Context()
        context.setsockopt(zmq.MAXMSGSIZE, self.limits.message_bytes)
        self.kc = self.km.client(context=context)
        self.kc.start_channels()
        try:
            self.kc.wait_for_ready(timeout=self._internal_wall())
        except RuntimeError as error:
            raise KernelLost("died") from error
        self.internal("install", self.limits.cell_cpu_s, self.limits.output_bytes)
        self.warm = list(warm_modules)
        self.internal("warm_up", self.warm)

    def _confined_command(self, command: list[str], km: Any) -> list[str]:
        ports = [km.shell_port, km.iopub_port, km.stdin_port, km.control_port, km.hb_port]
        policy = sandbox.Policy(
            read=read_paths(self.site_dir),
            write=[str(self.folder), "/dev/null", *_gpu_devices()],
            bind_ports=[int(p) for p in ports],
            memory_bytes=self.limits.memory_bytes,
            cpu_seconds=math.ceil(self.limits.notebook_s) + 60,
            file_bytes=self.limits.file_bytes,
        )
        flags = [] if self.confined else ["--unconfined"]
        return [sys.executable, "-I", "-S", str(SANDBOX_SCRIPT), policy.to_json(), *flags, "--",
                *command]  # fmt: skip

    def close(self) -> None:
        """Stop the kernel and kill every process it left behind (its tree, and the orphans
        re-parented to this process since it started)."""
        pid = getattr(self.km, "provisioner", None) and self.km.provisioner.pid
        try:
            if pid:
                sandbox.kill_tree(pid)
            if self.kc is not None:
                self.kc.stop_channels()
                self.kc.context.destroy(linger=0)
            if self.km is not None and self.km.has_kernel:
                self.km.shutdown_kernel(now=True)
        except Exception:  # noqa: BLE001 - the kernel may already be gone
            pass
        sandbox.kill_orphans(since=self.started_ticks)

    # -- time

    def cpu_seconds(self) -> float:
        """CPU time the kernel process has used so far, read by the grader from /proc."""
        try:
            return sandbox.cpu_seconds(self.km.provisioner.pid)
        except (OSError, AttributeError, TypeError):
            return 0.0

    def _internal_wall(self) -> float:
        return max(1.0, min(self.limits.internal_s, self.deadline - time.monotonic()))

    # -- running code

    def run_cell(self, source: str) -> CellRun:
        """Run one student cell under the cell CPU limit; never raises for the student's errors."""
        wall = min(wall_backstop_s(self.limits.cell_cpu_s), self.deadline - time.monotonic())
        if wall <= 0:
            raise KernelLost("out of time")
        reply, _, too_much, interrupted = self._execute(
            source, wall, self.limits.output_bytes, cpu_s=self.limits.cell_cpu_s
        )
        ename, evalue = str(reply.get("ename", ""))[:200], str(reply.get("evalue", ""))[:2000]
        if too_much or ename == "OutputLimit":
            if too_much:
                self._after_interrupt()
            return CellRun("too much output")
        if interrupted or ename == "CellTimeLimit":
            self._after_interrupt()
            return CellRun("timed out")
        if reply.get("status") == "error":
            return CellRun("error", ename, evalue)
        return CellRun("ok")

    def internal(
        self, function: str, *args: Any, wall_s: float | None = None, cpu_s: float | None = None
    ) -> dict[str, Any]:
        """Run ``attn_course.grading.kernel.<function>(*args)`` in the kernel; its reply.

        ``cpu_s``: the CPU seconds the student's code may use during it (for ``call``).
        """
        arguments = json.dumps(list(args))
        code = (f"{MARK}__import__('attn_course.grading.kernel', fromlist=['_'])."
                f"{function}(*__import__('json').loads({arguments!r}))")  # fmt: skip
        wall = self._internal_wall() if wall_s is None else wall_s
        reply, payloads, _, interrupted = self._execute(code, wall, None, cpu_s=cpu_s)
        if interrupted:
            self._after_interrupt()
        if not payloads or not isinstance(payloads[-1], dict):
            raise KernelLost("broken")
        return payloads[-1]

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        """One remote call of the student's answer; raises KernelLost if the kernel is lost."""
        cpu_s = float(request["cpu_s"])
        wall = min(wall_backstop_s(cpu_s), self.deadline - time.monotonic())
        if wall <= 0:
            raise KernelLost("out of time")
        return self.internal("call", json.dumps(request), wall_s=wall, cpu_s=cpu_s)

    def _after_interrupt(self) -> None:
        """After an interrupt, make sure the kernel still works (not left mid-import)."""
        health = self.internal("health", [*getattr(self, "warm", []), "attn_course.grading.kernel"])
        if not health.get("healthy"):
            raise KernelLost("broken")

    def _execute(
        self, code: str, wall_s: float, output_cap: int | None, cpu_s: float | None = None
    ) -> tuple[dict[str, Any], list[Any], bool, bool]:
        """Run ``code``; returns (execute reply, grader payloads, output capped, interrupted).

        Output is counted and discarded. The kernel is interrupted after ``wall_s`` seconds,
        after too much output, or once it has used ``cpu_s`` CPU seconds and a little more
        (measured here, from /proc: the kernel's own timer should have stopped it first).
        If it does not finish after the interrupt (it keeps computing, or stays silent for
        :data:`INTERRUPT_GRACE_S`), or dies, KernelLost is raised.
        """
        import zmq

        msg_id = self.kc.execute(code, store_history=False, allow_stdin=False, stop_on_error=False)
        poller = zmq.Poller()
        iopub, shell = self.kc.iopub_channel.socket, self.kc.shell_channel.socket
        poller.register(iopub, zmq.POLLIN)
        poller.register(shell, zmq.POLLIN)
        deadline = time.monotonic() + wall_s
        cpu_start = self.cpu_seconds()
        cpu_limit = None if cpu_s is None else cpu_start + cpu_s + CPU_GRACE_S
        reply: dict[str, Any] | None = None
        idle, printed, capped, interrupted = False, 0, False, False
        payloads: list[Any] = []
        last_check = idle_by = time.monotonic()
        while reply is None or not idle:
            now = time.monotonic()
            if reply is not None and now > idle_by:
                # The reply came but the output stream's end did not: the kernel can no
                # longer send output (a flood of it broke the connection).
                raise KernelLost("flooded")
            over_cpu = False
            if now - last_check > 0.25:
                last_check = now
                if not self.km.is_alive():
                    raise KernelLost("died")
                over_cpu = cpu_limit is not None and self.cpu_seconds() > cpu_limit
            if now >= deadline or over_cpu or (capped and not interrupted):
                if interrupted:
                    raise KernelLost("hung")
                self.km.interrupt_kernel()
                interrupted = True
                deadline = now + INTERRUPT_GRACE_S
                cpu_limit = None if cpu_limit is None else self.cpu_seconds() + CPU_GRACE_S
            events = dict(poller.poll(timeout=100))
            if iopub in events:
                for msg in self._drain(self.kc.iopub_channel):
                    if msg["parent_header"].get("msg_id") != msg_id:
                        continue
                    kind, content = msg["msg_type"], msg["content"]
                    if kind == "status" and content.get("execution_state") == "idle":
                        idle = True
                    elif kind in ("display_data", "execute_result"):
                        data = content.get("data", {})
                        if REPLY_MIME in data and output_cap is None:
                            payloads.append(data[REPLY_MIME])
                        else:
                            printed += len(json.dumps(data))
                    elif kind in ("stream", "error"):
                        printed += len(str(content.get("text", ""))) + len(
                            str(content.get("traceback", ""))
                        )
                    if output_cap is not None and printed > output_cap:
                        capped = True
            if shell in events:
                for msg in self._drain(self.kc.shell_channel):
                    if msg["parent_header"].get("msg_id") == msg_id:
                        reply = msg["content"]
                        idle_by = time.monotonic() + IDLE_GRACE_S
        return reply, payloads, capped, interrupted

    @staticmethod
    def _drain(channel: Any) -> list[dict[str, Any]]:
        messages = []
        while channel.msg_ready():
            try:
                messages.append(channel.get_msg(timeout=0))
            except Exception:  # noqa: BLE001 - a malformed message is dropped, not trusted
                break
        return messages


# --- answers called in the kernel -------------------------------------------------------------


@dataclass
class RemoteAnswer(Answer):
    """The student's answer ``name`` in the kernel of ``session``, called with a CPU budget
    of ``cpu_s`` seconds for the whole check (measured by the grader from outside)."""

    session: KernelSession
    name: str
    forbidden: Sequence[Forbidden]
    cpu_s: float

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(None, args, kwargs)

    def through(self, helper: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        name = helper_name(helper)
        resolve_helper(name)
        return self._call(name, args, kwargs)

    def _call(self, helper: str | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.cpu_s <= 0:
            raise TimeLimitReached
        request = {
            "answer": self.name, "helper": helper, "args": encode(list(args)),
            "kwargs": encode(kwargs), "forbidden": [list(f.names) for f in self.forbidden],
            "cpu_s": self.cpu_s,
        }  # fmt: skip
        before = self.session.cpu_seconds()
        reply = self.session.call(request)
        self.cpu_s -= self.session.cpu_seconds() - before
        outcome = _outcome(reply, self.forbidden)
        if outcome is None or self.cpu_s < -1.0:
            raise TimeLimitReached  # the kernel said so, or it ran over without saying so
        _reflect(list(args), reply.get("args_after"))
        _reflect(kwargs, reply.get("kwargs_after"))
        return raise_or_return(outcome, self.forbidden)


def _outcome(reply: dict[str, Any], forbidden: Sequence[Forbidden]) -> Outcome | None:
    """The kernel's reply as an Outcome (None: the time limit); WireError if malformed."""
    status = reply.get("status")
    if status in ("time limit", "interrupted"):
        return None
    if status == "returned":
        return Outcome("returned", value=decode(reply.get("value")))
    if status == "not implemented":
        return Outcome("not implemented")
    if status == "forbidden":
        allowed = {name for f in forbidden for name in f.names}
        called = tuple(str(n) for n in reply.get("called", []) if str(n) in allowed)
        return Outcome("forbidden", called=called) if called else Outcome("raised", error=_lost())
    if status == "raised" and isinstance(reply.get("error"), dict):
        error = reply["error"]
        names = error.get("type_names", [])
        return Outcome("raised", error=StudentError(
            str(error.get("type_name", "Exception"))[:100], str(error.get("message", ""))[:300],
            str(error.get("where", ""))[:120],
            tuple(str(n)[:100] for n in names[:50]) if isinstance(names, list) else (),
        ))  # fmt: skip
    raise WireError(f"unexpected reply status {status!r}")


def _lost() -> StudentError:
    return StudentError("Exception", "the kernel's reply could not be read")


def _reflect(originals: Any, encoded_after: Any) -> None:
    """Carry in-place changes the student's code made to the inputs back to the grader's
    copies, so that a check comparing inputs before and after sees them, as in a notebook."""
    try:
        after = decode(encoded_after)
    except WireError:
        return
    _copy_into(originals, after)


def _copy_into(original: Any, after: Any) -> None:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(original, torch.Tensor) and isinstance(after, torch.Tensor):
        if original.shape == after.shape and original.dtype == after.dtype:
            if not torch.equal(original, after):
                original.copy_(after)
        else:
            original.set_(after.to(original.device))
    elif isinstance(original, list) and isinstance(after, list):
        if len(original) == len(after):
            for item, new in zip(original, after, strict=True):
                _copy_into(item, new)
        else:
            original[:] = after
    elif isinstance(original, tuple) and isinstance(after, tuple) and len(original) == len(after):
        for item, new in zip(original, after, strict=True):
            _copy_into(item, new)
    elif isinstance(original, dict) and isinstance(after, dict):
        for key in original:
            if key in after:
                _copy_into(original[key], after[key])


def new_folder(root: Path, name: str) -> Path:
    """A fresh empty folder under ``root`` for one kernel."""
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root))

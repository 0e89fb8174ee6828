"""Confine a grading kernel, and clean up every process it leaves behind.

The grader starts each student's kernel through this file, run as a script::

    python -I -S sandbox.py POLICY_JSON -- python -m ipykernel_launcher -f kernel.json

It applies the policy to its own process and then ``exec``s the kernel, which inherits it
(and so does every process the student's code starts):

* **Landlock** (Linux ≥ 5.13, unprivileged): the kernel may read (and execute) only the
  directories the policy lists — the interpreter, its site-packages, a read-only copy of
  ``attn_course``, system libraries — and write only its own throwaway folder. The course
  sources (``solutions/``), the submissions, the gradebook and the package the grader itself
  uses are neither readable nor writable. Landlock also forbids ptrace-like access to
  processes outside the sandbox (so ``/proc/<grader>/fd/1`` cannot be opened); from ABI 4
  (Linux 6.7) TCP is limited to binding the kernel's own ports (no connection anywhere);
  from ABI 6 (Linux 6.12) signals and abstract Unix sockets cannot reach outside processes
  (the grader cannot be killed from inside).
* **resource limits**: address space (memory), CPU seconds of the whole kernel (an absolute
  backstop), largest file it may write, no core dumps;
* **parent-death signal**: the kernel is killed if the grader dies.

This file must run before anything else is imported (``-I -S``: no site, no user paths),
so it uses the standard library only. The process-tree helpers at the bottom are used by
the grader itself: it becomes a *child subreaper*, so that a process the student starts
with a double fork and ``setsid`` is re-parented to the grader, not to init, and
:func:`kill_orphans` finds and kills it after the kernel is gone.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import struct
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

# Landlock system calls: the same numbers on every architecture.
_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2

_FS_EXECUTE = 1 << 0
_FS_WRITE_FILE = 1 << 1
_FS_READ_FILE = 1 << 2
_FS_READ_DIR = 1 << 3
_FS_TRUNCATE = 1 << 14
_FS_IOCTL_DEV = 1 << 15
_FILE_ONLY_RIGHTS = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV
_READ = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1

_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_CHILD_SUBREAPER = 36


def _fs_rights(abi: int) -> int:
    """Every filesystem right this Landlock ABI knows (rights it does not handle stay allowed)."""
    rights = (1 << 13) - 1  # ABI 1: execute … make_sym
    if abi >= 2:
        rights |= 1 << 13  # refer (rename/link across folders)
    if abi >= 3:
        rights |= _FS_TRUNCATE
    if abi >= 5:
        rights |= _FS_IOCTL_DEV
    return rights


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def landlock_abi() -> int:
    """The Landlock ABI version of this kernel, 0 when Landlock is unavailable."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        version = _libc().syscall(_CREATE_RULESET, None, ctypes.c_size_t(0),
                                  ctypes.c_uint32(_CREATE_RULESET_VERSION))  # fmt: skip
    except (AttributeError, OSError):
        return 0
    return max(int(version), 0)


def protections(abi: int) -> list[str]:
    """What a sandbox gives on a kernel with this Landlock ABI, for reports and docs."""
    if abi < 1:
        return []
    found = ["files: read only the listed folders, write only the throwaway folder",
             "no access to other processes' /proc entries"]  # fmt: skip
    if abi >= 4:
        found.append("network: TCP only to bind the kernel's own ports, no connections")
    if abi >= 6:
        found.append("signals and abstract sockets cannot reach processes outside")
    return found


@dataclass
class Policy:
    """What one confined kernel may do (paths are absolute)."""

    read: list[str] = field(default_factory=list)
    write: list[str] = field(default_factory=list)
    bind_ports: list[int] = field(default_factory=list)
    memory_bytes: int | None = None
    cpu_seconds: int | None = None
    file_bytes: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Policy:
        return cls(**json.loads(text))


def _check(result: int, what: str) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")
    return result


def _add_path_rule(libc: ctypes.CDLL, ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return  # an optional path (e.g. /lib64 on some systems)
    try:
        if not os.path.isdir(path):
            rights &= _FILE_ONLY_RIGHTS
        rule = ctypes.create_string_buffer(struct.pack("=Qi", rights, fd))
        _check(libc.syscall(_ADD_RULE, ruleset, _RULE_PATH_BENEATH, rule, 0), f"rule for {path}")
    finally:
        os.close(fd)


def apply_landlock(policy: Policy) -> int:
    """Restrict this process (and what it executes) to ``policy``; returns the ABI used."""
    abi = landlock_abi()
    if abi < 1:
        raise OSError("Landlock is not available on this system")
    libc = _libc()
    fs = _fs_rights(abi)
    net = (_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 else 0
    scope = (_SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL) if abi >= 6 else 0
    attr = struct.pack("=QQQ", fs, net, scope)[: 8 if abi < 4 else 16 if abi < 6 else 24]
    buffer = ctypes.create_string_buffer(attr, len(attr))
    ruleset = _check(libc.syscall(_CREATE_RULESET, buffer, ctypes.c_size_t(len(attr)),
                                  ctypes.c_uint32(0)), "landlock_create_ruleset")  # fmt: skip
    try:
        for path in policy.read:
            _add_path_rule(libc, ruleset, path, _READ | (fs & _FS_IOCTL_DEV))
        for path in policy.write:
            _add_path_rule(libc, ruleset, path, fs)
        if net:
            for port in policy.bind_ports:
                rule = ctypes.create_string_buffer(struct.pack("=QQ", _NET_BIND_TCP, port))
                _check(libc.syscall(_ADD_RULE, ruleset, _RULE_NET_PORT, rule, 0), "port rule")
        _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        _check(libc.syscall(_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
    finally:
        os.close(ruleset)
    return abi


def apply_limits(policy: Policy) -> None:
    """Resource limits and the parent-death signal, for this process and what it executes."""
    import resource

    def cap(which: int, value: int | None) -> None:
        if value is not None:
            try:
                resource.setrlimit(which, (value, value))
            except (ValueError, OSError):  # a limit this system does not support
                pass

    cap(resource.RLIMIT_AS, policy.memory_bytes)
    cap(resource.RLIMIT_FSIZE, policy.file_bytes)
    cap(resource.RLIMIT_CORE, 0)
    if policy.cpu_seconds is not None:
        # SIGXCPU at the soft limit (the kernel dies of it), SIGKILL a little later.
        try:
            resource.setrlimit(resource.RLIMIT_CPU, (policy.cpu_seconds, policy.cpu_seconds + 5))
        except (ValueError, OSError):
            pass
    die_with_parent()


def main(argv: list[str]) -> None:
    """``sandbox.py POLICY_JSON [--unconfined] -- command...``: confine, then exec command."""
    if "--" not in argv:
        raise SystemExit("usage: sandbox.py POLICY_JSON [--unconfined] -- command ...")
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1 :]
    policy = Policy.from_json(options[0])
    apply_limits(policy)
    if "--unconfined" not in options[1:]:
        apply_landlock(policy)
    os.execv(command[0], command)


# --- process trees (used by the grader, not inside the sandbox) ----------------------------


def die_with_parent() -> bool:
    """Have this process killed when its parent dies (Linux); True if it worked."""
    if not sys.platform.startswith("linux"):
        return False
    return _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0


def become_subreaper() -> bool:
    """Make orphaned descendants of this process its children (Linux); True if it worked."""
    if not sys.platform.startswith("linux"):
        return False
    return _libc().prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


@dataclass(frozen=True)
class _Process:
    parent: int
    zombie: bool
    started: int  # clock ticks since boot


def _stat_fields(pid: int) -> list[bytes]:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces)."""
    with open(f"/proc/{pid}/stat", "rb") as stream:
        stat = stream.read()
    return stat[stat.rfind(b")") + 2 :].split()


def _processes() -> dict[int, _Process]:
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = _stat_fields(int(entry))
            except OSError:
                continue
            # fields[0] is stat(5)'s field 3 (state); ppid is 4, starttime 22.
            found[int(entry)] = _Process(int(fields[1]), fields[0] == b"Z", int(fields[19]))
    return found


def now_ticks() -> int:
    """The time now, in the clock ticks since boot that :func:`start_ticks` counts."""
    try:
        with open("/proc/uptime") as stream:
            return int(float(stream.read().split()[0]) * os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError):
        return 0


def start_ticks(pid: int) -> int:
    """When process ``pid`` started, in clock ticks since boot (Linux; 0 elsewhere)."""
    try:
        return int(_stat_fields(pid)[19])
    except (OSError, IndexError, ValueError):
        return 0


def descendants(pid: int, *, zombies: bool = False) -> list[int]:
    """Every process below ``pid`` in the process tree, zombies only if asked (Linux)."""
    if not os.path.isdir("/proc"):
        return []
    processes = _processes()
    return _below([pid], processes, zombies)


def _below(roots: list[int], processes: dict[int, _Process], zombies: bool) -> list[int]:
    children: dict[int, list[int]] = {}
    for child, info in processes.items():
        children.setdefault(info.parent, []).append(child)
    found, pending = [], [c for root in roots for c in children.get(root, [])]
    while pending:
        process = pending.pop()
        if zombies or not processes[process].zombie:
            found.append(process)
        pending.extend(children.get(process, []))
    return found


def kill_tree(pid: int) -> int:
    """SIGKILL every descendant of ``pid``; returns how many (Linux; 0 elsewhere)."""
    return _kill_until_gone(lambda: descendants(pid))


def kill_orphans(since: int, keep: set[int] | frozenset[int] = frozenset()) -> int:
    """SIGKILL the processes re-parented to this subreaper that started at or after
    ``since`` (clock ticks since boot: when the grading that left them behind began), and
    everything below them; never ``keep`` and what is below it. Zombies among them are
    reaped. Returns how many were killed.

    A process orphaned by a kernel (a double fork, ``setsid``) is re-parented to the
    nearest subreaper, and started after that kernel: so these are exactly what a kernel
    started since ``since``, and nothing this process started before (or is still using).
    """
    if not os.path.isdir("/proc"):
        return 0
    me = os.getpid()

    def orphans(zombies: bool = False) -> list[int]:
        processes = _processes()
        roots = [p for p, info in processes.items()
                 if info.parent == me and info.started >= since and p not in keep]  # fmt: skip
        alive = [p for p in roots if zombies or not processes[p].zombie]
        return alive + _below(roots, processes, zombies)

    killed = _kill_until_gone(orphans)
    for zombie in orphans(zombies=True):  # the ones that had exited on their own
        _reap(zombie)
    return killed


def _kill_until_gone(targets_now: Callable[[], list[int]]) -> int:
    """Kill what ``targets_now()`` lists until it lists nothing (a process may fork while
    it is being killed)."""
    killed = 0
    for _ in range(50):
        targets = targets_now()
        if not targets:
            break
        for target in targets:
            try:
                os.kill(target, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        for target in targets:
            _reap(target)
    return killed


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is a child of ours (an orphan re-parented to this subreaper
    becomes our zombie); only the processes we killed, never a child someone else waits on."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, waited-for children included) of process ``pid`` (Linux)."""
    # utime, stime, cutime, cstime are stat(5)'s fields 14–17.
    ticks = sum(int(value) for value in _stat_fields(pid)[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main(sys.argv[1:])

"""The grading machinery: the codec, forbidden calls, intake, the sandbox and the session.

The class-level guarantees (a hostile class graded on a loaded machine gives the exact
expected gradebook) are in test_gradebook.py; these are the parts they rest on.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from attn_course import scores
from attn_course.checks import CheckFailed, expect_raises
from attn_course.grading import sandbox
from attn_course.grading.answers import (
    Forbidden,
    ForbiddenCall,
    LocalAnswer,
    StudentError,
    Unreadable,
    WireError,
    decode,
    encode,
    roundtrip,
)
from attn_course.grading.intake import IntakeLimits, Rejected, read_notebook
from attn_course.grading.session import (
    KernelLost,
    KernelSession,
    Limits,
    RemoteAnswer,
    new_folder,
    package_copy,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "grading"
sys.path.insert(0, str(FIXTURES))
from load import cpu_hog  # noqa: E402

LANDLOCK = sandbox.landlock_abi()
needs_landlock = pytest.mark.skipif(
    LANDLOCK < 1 and not os.environ.get("CI"), reason="no Landlock on this system"
)

# --- the codec ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype",
    [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int8,
     torch.uint8, torch.bool, torch.complex64],
)  # fmt: skip
def test_tensors_cross_the_wire_bit_for_bit(dtype):
    x = (torch.randn(3, 4, 5) * 100).to(dtype)
    back = roundtrip(x)
    assert back.dtype == dtype and back.shape == x.shape
    assert torch.equal(back.view(torch.uint8), x.view(torch.uint8))


def test_views_and_empty_tensors_arrive_as_their_values():
    x = torch.arange(12.0).reshape(3, 4)
    assert torch.equal(roundtrip(x.T), x.T) and roundtrip(x.T).is_contiguous()
    empty = roundtrip(torch.zeros(0, 4, dtype=torch.float16))
    assert empty.shape == (0, 4) and empty.dtype == torch.float16


def test_plain_values_keep_their_types():
    value = {"a": (1, 2.5, -0.0, None, True), 3: [float("nan"), float("inf"), "é"],
             (1, 2): 2**80, "dtype": torch.bfloat16}  # fmt: skip
    back = roundtrip(value)
    assert back.keys() == value.keys()
    assert back["a"] == (1, 2.5, -0.0, None, True) and isinstance(back["a"], tuple)
    assert math.copysign(1, back["a"][2]) == -1
    assert math.isnan(back[3][0]) and back[3][1:] == [float("inf"), "é"]
    assert back[(1, 2)] == 2**80 and back["dtype"] is torch.bfloat16


def test_foreign_objects_arrive_as_named_stand_ins():
    import numpy as np

    assert roundtrip(np.int64(7)) == 7 and type(roundtrip(np.int64(7))) is int
    array = roundtrip(np.zeros(3))
    assert isinstance(array, Unreadable) and type(array).__name__ == "ndarray"
    assert type(roundtrip(object())).__name__ == "object"
    deep: list = []
    for _ in range(40):
        deep = [deep]
    assert type(roundtrip(deep)).__name__ == "list"  # too deep: refused, not crashed


@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner) | st.tuples(inner, inner)
    | st.dictionaries(st.text(), inner), max_leaves=20,
))  # fmt: skip
def test_roundtrip_is_identity_on_plain_data(value):
    assert roundtrip(value) == value


@pytest.mark.parametrize(
    "data",
    [
        {"tensor": {"dtype": "float32", "shape": [2], "data": "AAAA"}},  # 3 bytes for 8
        {"tensor": {"dtype": "float32", "shape": [-1], "data": ""}},
        {"tensor": {"dtype": "object", "shape": [1], "data": ""}},
        {"tensor": {"dtype": "uint8", "shape": [1], "data": "!!"}},
        {"pickle": "gASV"},
        {"tuple": [1], "extra": 2},
        {"int": "--5"},
        {"float": "1e400"},
        {"dict": [[1]]},
        {"dict": [[[1], 2]]},
        {"tensor": {"dtype": "float64", "shape": [2**40], "data": ""}},
    ],
)
def test_the_grader_refuses_malformed_data(data):
    with pytest.raises(WireError):
        decode(data)


def test_encode_refuses_too_much():
    with pytest.raises(WireError, match="items"):
        encode(list(range(200_000)))


# --- the student's errors and forbidden calls ------------------------------------------------


def test_student_errors_are_data_that_still_match_their_type():
    class BadSize(ValueError):
        pass

    def answer(n):
        raise BadSize(f"n must be >= 1, got {n}")

    local = LocalAnswer(answer)
    with pytest.raises(StudentError) as caught:
        local(0)
    assert caught.value.feedback() == (
        "your code raised BadSize: n must be >= 1, got 0 (in answer, line 2)"
    ) or caught.value.feedback().startswith("your code raised BadSize: n must be >= 1, got 0")
    expect_raises(lambda: local(0), ValueError, "n = 0")  # a subclass of ValueError counts
    with pytest.raises(CheckFailed, match="expected KeyError, got BadSize"):
        expect_raises(lambda: local(0), KeyError, "n = 0")


SOFTMAX = Forbidden(("aten._softmax", "attn_course.scores.stable_softmax"), "write it yourself")
SDPA = Forbidden(("torch.nn.functional.scaled_dot_product_attention",), "no SDPA")


@pytest.mark.parametrize(
    "spelling",
    [
        lambda x: torch.softmax(x, -1),
        lambda x: F.softmax(x, dim=-1),
        lambda x: x.softmax(-1),
        lambda x: torch.nn.Softmax(dim=-1)(x),
        lambda x: torch.ops.aten._softmax(x, -1, False),
        lambda x: scores.stable_softmax(x),
        lambda x: (lambda f: f(x))(scores.stable_softmax),
    ],
    ids=["torch", "F", "method", "module", "ops", "package", "indirect"],
)
def test_a_forbidden_routine_is_seen_however_it_is_called(spelling):
    with pytest.raises(ForbiddenCall) as caught:
        LocalAnswer(spelling, forbidden=[SOFTMAX])(torch.randn(2, 3))
    assert caught.value.hint == "write it yourself"


def test_a_forbidden_call_inside_a_try_is_still_seen():
    def sneaky(x):
        try:
            torch.softmax(x, -1)
        except Exception:  # noqa: BLE001
            pass
        w = (x - x.amax(-1, keepdim=True)).exp()
        return w / w.sum(-1, keepdim=True)

    with pytest.raises(ForbiddenCall):
        LocalAnswer(sneaky, forbidden=[SOFTMAX])(torch.randn(2, 3))


def test_allowed_routines_pass_and_sdpa_is_seen_at_function_level():
    def written(x):
        w = (x - x.amax(-1, keepdim=True)).exp()
        return w / w.sum(-1, keepdim=True)

    x = torch.randn(2, 3)
    assert torch.allclose(LocalAnswer(written, forbidden=[SOFTMAX])(x), torch.softmax(x, -1))
    q = torch.randn(1, 4, 8)
    with pytest.raises(ForbiddenCall, match="scaled_dot_product_attention"):
        LocalAnswer(lambda q: F.scaled_dot_product_attention(q, q, q), forbidden=[SDPA])(q)


def test_forbidden_names_must_say_how_they_are_watched():
    with pytest.raises(ValueError, match="must start with"):
        Forbidden(("numpy.exp",), "")


# --- intake ---------------------------------------------------------------------------------------


def notebook_file(folder: Path, cells: int = 2, name: str = "01_score_matrix.ipynb") -> Path:
    code = [nbformat.v4.new_code_cell(f"x = {i}") for i in range(cells)]
    nb = nbformat.v4.new_notebook(cells=code)
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="old output")]
    path = folder / name
    nbformat.write(nb, path)
    return path


def test_intake_reads_a_notebook_and_drops_its_outputs(tmp_path):
    nb = read_notebook(notebook_file(tmp_path))
    assert [c.source for c in nb.cells] == ["x = 0", "x = 1"]
    assert all(c.outputs == [] for c in nb.cells)


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: p.symlink_to("/etc/passwd"), "symbolic link"),
        (lambda p: p.symlink_to("/dev/zero"), "symbolic link"),
        (lambda p: os.mkfifo(p), "not a regular file"),
        (lambda p: p.mkdir(), "not a regular file"),
        (lambda p: p.write_bytes(b"\xff\xfe not text"), "not a notebook Jupyter can read"),
        (lambda p: p.write_text("root:x:0:0:root:/root:/bin/bash\n"), "(NotJSONError)"),
        (lambda p: p.write_text('{"cells": 3, "nbformat": 4}'), "not a notebook"),
    ],
    ids=["passwd link", "zero link", "fifo", "folder", "binary", "text", "bad cells"],
)
def test_intake_refuses_anything_but_a_notebook_without_echoing_it(tmp_path, make, says):
    path = tmp_path / "01_score_matrix.ipynb"
    make(path)
    start = time.monotonic()
    with pytest.raises(Rejected) as caught:
        read_notebook(path)
    assert time.monotonic() - start < 10  # a FIFO must not block the reader
    assert says in caught.value.message
    assert "root:" not in caught.value.message and caught.value.hint


def test_intake_caps_size_and_cells(tmp_path):
    with pytest.raises(Rejected, match="10001 code cells; at most 500"):
        read_notebook(notebook_file(tmp_path, cells=10_001))
    big = notebook_file(tmp_path, cells=3, name="big.ipynb")
    with pytest.raises(Rejected, match="larger than"):
        read_notebook(big, IntakeLimits(file_bytes=100))


# --- the sandbox ---------------------------------------------------------------------------------


def confined_python(code: str, policy: sandbox.Policy) -> subprocess.CompletedProcess:
    command = [sys.executable, "-I", "-S", sandbox.__file__, policy.to_json(), "--",
               sys.executable, "-I", "-c", code]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def policy_for(folder: Path) -> sandbox.Policy:
    reads = ["/usr", "/lib", "/lib64", "/bin", "/etc", "/proc", "/dev", sys.base_prefix, sys.prefix]
    return sandbox.Policy(read=reads, write=[str(folder), "/dev/null"])


@needs_landlock
def test_a_confined_process_reads_and_writes_only_what_it_is_given(tmp_path):
    inside, outside = tmp_path / "inside", tmp_path / "outside"
    inside.mkdir()
    outside.mkdir()
    (outside / "secret").write_text("the solutions")
    code = textwrap.dedent(f"""
        import os
        open({str(inside / 'ok')!r}, 'w').write('fine')
        for action in (lambda: open({str(outside / 'secret')!r}).read(),
                       lambda: open({str(outside / 'new')!r}, 'w'),
                       lambda: os.listdir({str(outside)!r}),
                       lambda: open(f"/proc/{{os.getppid()}}/fd/1", "w")):
            try:
                action()
                print("allowed")
            except PermissionError:
                print("denied")
    """)
    done = confined_python(code, policy_for(inside))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["denied"] * 4
    assert (inside / "ok").read_text() == "fine" and not (outside / "new").exists()


@needs_landlock
@pytest.mark.skipif(0 < LANDLOCK < 6, reason="signal scoping needs Landlock ABI 6")
def test_a_confined_process_cannot_signal_or_connect_outside(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    code = textwrap.dedent(f"""
        import os, signal, socket
        try:
            os.kill({os.getpid()}, signal.SIGKILL)
            print("killed")
        except PermissionError:
            print("denied")
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=5)
            print("connected")
        except PermissionError:
            print("denied")
    """)
    done = confined_python(code, policy_for(tmp_path))
    server.close()
    assert done.stdout.split() == ["denied", "denied"], done.stderr


def test_limits_cap_memory_and_files(tmp_path):
    policy = sandbox.Policy(memory_bytes=2 * 2**30, file_bytes=2**20)
    code = textwrap.dedent(f"""
        import signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        try:
            bytearray(4 * 2**30)
            print("allocated")
        except MemoryError:
            print("refused")
        try:
            open({str(tmp_path / 'big')!r}, 'wb').write(b'x' * 2**21)
            print("written")
        except OSError:
            print("refused")
    """)
    command = [sys.executable, "-I", "-S", sandbox.__file__, policy.to_json(), "--unconfined",
               "--", sys.executable, "-I", "-c", code]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["refused", "refused"], done.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc")
def test_a_double_forked_setsid_child_is_found_and_killed():
    marker = f"attn-course-orphan-{os.getpid()}"
    # A subreaper whose grading (everything after `since`) leaves a double-forked, setsid
    # sleeper behind; a child it started before then (like a test's CPU hog) must survive.
    program = textwrap.dedent(f"""
        import os, subprocess, sys, time
        from attn_course.grading import sandbox
        sandbox.become_subreaper()
        older = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        time.sleep(0.2)
        since = sandbox.now_ticks()
        if os.fork() == 0:
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", {marker!r}],
                             start_new_session=True)
            os._exit(0)
        time.sleep(2)
        print(sandbox.kill_orphans(since), older.poll() is None)
        older.kill()
    """)
    helper = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, text=True)
    out, _ = helper.communicate(timeout=60)
    killed, older_alive = out.split()
    assert int(killed) >= 1 and older_alive == "True"
    alive = [p for p in os.listdir("/proc") if p.isdigit() and _has(p, marker)]
    assert alive == []


def _has(pid: str, marker: str) -> bool:
    try:
        return marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


# --- a kernel session ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return package_copy(tmp_path_factory.mktemp("package"))


def start_session(root: Path, site: Path, **limits) -> KernelSession:
    session = KernelSession(new_folder(root, "student"), site, Limits(**limits),
                            time.monotonic() + 600, confined=LANDLOCK >= 1)  # fmt: skip
    session.start(["attn_course"])
    return session


@pytest.mark.slow
def test_the_kernel_imports_the_read_only_copy_not_the_checkout(tmp_path, site):
    session = start_session(tmp_path, site)
    try:
        session.run_cell("import attn_course, pathlib\nfound = attn_course.__file__\n"
                         "pathlib.Path('where').write_text(found)")  # fmt: skip
        assert (session.folder / "where").read_text().startswith(str(site))
        package_file = site / "attn_course" / "grade.py"
        assert session.run_cell(f"open({str(package_file)!r}, 'a')").status == "error"
    finally:
        session.close()


@pytest.mark.slow
@pytest.mark.parametrize("load", ["idle", "every core busy"])
def test_cell_limits_count_cpu_seconds_not_the_machine_s_load(tmp_path, site, load):
    session = start_session(tmp_path, site, cell_cpu_s=1.5)
    try:
        with cpu_hog() if load != "idle" else _nothing():
            assert session.run_cell("total = sum(range(10**6))").status == "ok"
            assert session.run_cell("while True:\n    pass").status == "timed out"
            assert session.run_cell("import time\ntime.sleep(0.5)").status == "ok"
            assert session.run_cell("print('x' * 2**26)").status == "too much output"
            assert session.run_cell("1 / 0").ename == "ZeroDivisionError"
            assert session.run_cell("total").status == "ok"  # the kernel is still there
    finally:
        session.close()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.slow
def test_a_kernel_left_mid_import_is_reported_broken(tmp_path, site):
    session = start_session(tmp_path, site, cell_cpu_s=1.0)
    try:
        session.run_cell(textwrap.dedent("""
            import sys, types, importlib.machinery
            half = types.ModuleType("half")
            half.__spec__ = importlib.machinery.ModuleSpec("half", None)
            half.__spec__._initializing = True  # what an import cut short leaves behind
            sys.modules["half"] = half
        """))
        with pytest.raises(KernelLost) as lost:
            session.run_cell("while True:\n    pass")
        assert lost.value.how == "broken"
    finally:
        session.close()


@pytest.mark.slow
def test_remote_answers_carry_values_errors_and_in_place_changes(tmp_path, site):
    session = start_session(tmp_path, site)
    try:
        session.run_cell(textwrap.dedent("""
            import torch
            def double(x):
                return 2 * x
            def grow(x):
                x += 1
                return None
            def refuse(n):
                raise ValueError(f"n must be >= 1, got {n}")
            def cheat(x):
                return torch.softmax(x, -1)
        """))
        assert RemoteAnswer(session, "double", (), 10.0)(21) == 42
        x = torch.zeros(3)
        RemoteAnswer(session, "grow", (), 10.0)(x)
        assert torch.equal(x, torch.ones(3))  # the check sees the change, as in a notebook
        with pytest.raises(StudentError, match="n must be >= 1, got 0"):
            RemoteAnswer(session, "refuse", (), 10.0)(0)
        with pytest.raises(ForbiddenCall):
            RemoteAnswer(session, "cheat", [SOFTMAX], 10.0)(torch.randn(2, 3))
    finally:
        session.close()

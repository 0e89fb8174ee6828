"""The grading code that runs *inside* the student's kernel — and decides nothing.

The grader (:mod:`attn_course.grading.session`) runs cells in a confined kernel. Its own
cells start with :data:`MARK` and call one function of this module each; every function
answers with one display message under :data:`REPLY_MIME`, plain JSON data:

``install(cell_cpu_s)``
    before the student's cells run: a CPU-time limit for every student cell (IPython's
    ``pre_run_cell``/``post_run_cell`` events arm and disarm ``ITIMER_PROF``);
``warm_up(modules)``
    import the course's libraries before any limit applies, so that a slow ``import
    torch`` on a busy machine is never mistaken for the student's work;
``describe(name)``
    whether the notebook defined the answer ``name``, and whether it is still the stub;
``call(request)``
    call the student's answer with the request's inputs under a CPU limit and return the
    outcome (:func:`attn_course.grading.answers.call_answer`) through the codec;
``health(modules)``
    after an interrupt: is the kernel still usable (no import left half done)?

Nothing here compares, scores or hints: a student who patches this module (or anything
else in their kernel) can only change what their own answers appear to return, never a
check, a point or another student's grade.
"""

from __future__ import annotations

import importlib
import json
import signal
import sys
from typing import Any

from attn_course.grading.answers import (
    Forbidden,
    TimeLimitReached,
    call_answer,
    decode,
    encode_result,
    resolve_helper,
)

MARK = "# attn-course grader\n"
REPLY_MIME = "application/vnd.attn-course.reply+json"


class CellTimeLimit(BaseException):
    """A student cell used up its CPU time (a BaseException: ``except Exception`` won't hide it)."""


class OutputLimit(BaseException):
    """A cell (or an answer) printed more than the grader reads; stopped where it was."""


_printed = {"bytes": 0, "limit": 0}


def _reply(payload: dict[str, Any]) -> None:
    from IPython.display import display

    display({REPLY_MIME: payload, "text/plain": "(grader)"}, raw=True)


def _namespace() -> dict[str, Any]:
    from IPython import get_ipython

    return get_ipython().user_ns


def install(cell_cpu_s: float, output_bytes: int) -> None:
    """Limit every student cell to ``cell_cpu_s`` CPU seconds (the grader's cells are exempt)
    and every cell to ``output_bytes`` of printed or displayed output.

    The output limit acts where the output is made, before it is sent: a notebook that
    prints in an endless loop is stopped after a few MB instead of flooding the connection.
    """
    from IPython import get_ipython

    def on_limit(signum: int, frame: Any) -> None:
        raise CellTimeLimit(f"the cell used more than {cell_cpu_s:g} s of CPU time")

    def before(info: Any) -> None:
        _printed["bytes"] = 0
        _count_streams()
        if not (info.raw_cell or "").startswith(MARK):
            signal.signal(signal.SIGPROF, on_limit)
            signal.setitimer(signal.ITIMER_PROF, cell_cpu_s)

    def after(result: Any) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0)

    shell = get_ipython()
    shell.events.register("pre_run_cell", before)
    shell.events.register("post_run_cell", after)
    _printed["limit"] = int(output_bytes)
    _count_display(shell)
    _reply({"installed": True})


def _counted(size: int) -> None:
    _printed["bytes"] += size
    if _printed["limit"] and _printed["bytes"] > _printed["limit"]:
        _printed["bytes"] = 0  # the error's own traceback must get through
        raise OutputLimit(f"more than {_printed['limit'] / 2**20:g} MiB of output")


def _count_streams() -> None:
    """Wrap ``sys.stdout.write`` and ``sys.stderr.write`` so that they count.

    Called at the start of every cell: IPython replaces ``write`` on the stream objects
    for the duration of each cell (to keep output history) and restores it after, so the
    count has to be wrapped around whatever is there when the cell starts.
    """
    for stream in (sys.stdout, sys.stderr):
        original_write = stream.write

        def write(text: str, *args: Any, _original: Any = original_write, **kwargs: Any) -> Any:
            _counted(len(text))
            return _original(text, *args, **kwargs)

        try:
            stream.write = write
        except AttributeError:  # a stream that does not allow it: not counted
            continue


def _count_display(shell: Any) -> None:
    """Count what the display publisher is asked to send (rich outputs, not our replies)."""
    publisher = shell.display_pub
    original_publish = publisher.publish

    def publish(data: Any, *args: Any, **kwargs: Any) -> Any:
        if not (isinstance(data, dict) and REPLY_MIME in data):
            _counted(sum(len(str(value)) for value in dict(data).values()))
        return original_publish(data, *args, **kwargs)

    publisher.publish = publish


def warm_up(modules: list[str]) -> None:
    """Import ``modules`` (the course's libraries a notebook uses); failures are the
    notebook's to report when its own cell imports them."""
    imported = []
    for name in modules:
        try:
            importlib.import_module(name)
            imported.append(name)
        except Exception:  # noqa: BLE001, S112 - reported by the student's own cell later
            continue
    _reply({"imported": imported})


def health(modules: list[str]) -> None:
    """Is the kernel usable after an interrupt? An import cut short leaves a module marked
    as initialising, or a package without its submodules; either breaks every later cell."""
    half_done = [
        name
        for name, module in list(sys.modules.items())
        if getattr(getattr(module, "__spec__", None), "_initializing", False)
    ]
    broken = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - any failure means the kernel is not usable
            broken.append(name)
    _reply({"healthy": not half_done and not broken, "half_imported": half_done[:10],
            "broken": broken})  # fmt: skip


def describe(name: str) -> None:
    """Whether the notebook defines ``name``, and whether it is still a stub."""
    namespace = _namespace()
    if name not in namespace:
        _reply({"defined": False, "stub": False})
        return
    answer = namespace[name]
    code = getattr(answer, "__code__", None)
    stub = (
        answer is None
        or answer is Ellipsis
        or (code is not None and code.co_names == ("NotImplementedError",))
    )
    _reply({"defined": True, "stub": bool(stub)})


def call(request_text: str) -> None:
    """Call the student's answer as the request says; reply with the encoded outcome."""
    request = json.loads(request_text)
    forbidden = [Forbidden(tuple(names), "") for names in request.get("forbidden", [])]
    args = decode(request["args"])
    kwargs = decode(request["kwargs"])
    helper = resolve_helper(request["helper"]) if request.get("helper") else None
    fn = _namespace().get(request["answer"])

    def on_limit(signum: int, frame: Any) -> None:
        raise TimeLimitReached

    previous = signal.signal(signal.SIGPROF, on_limit)
    signal.setitimer(signal.ITIMER_PROF, max(float(request["cpu_s"]), 0.001))
    try:
        outcome = call_answer(fn, args, kwargs, forbidden, helper)
    except TimeLimitReached:
        _reply({"status": "time limit"})
        return
    except KeyboardInterrupt:
        _reply({"status": "interrupted"})
        return
    except OutputLimit as error:
        _reply({"status": "raised", "error": {"type_name": "OutputLimit", "message": str(error),
                                              "where": "", "type_names": ["OutputLimit"]},
                "called": [], "args_after": None, "kwargs_after": None})  # fmt: skip
        return
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)
    error = outcome.error
    _reply({
        "status": outcome.status,
        "value": encode_result(outcome.value) if outcome.status == "returned" else None,
        "error": None if error is None else {
            "type_name": error.type_name, "message": error.message,
            "where": error.where, "type_names": list(error.type_names),
        },
        "called": list(outcome.called),
        "args_after": encode_result(args),
        "kwargs_after": encode_result(kwargs),
    })  # fmt: skip

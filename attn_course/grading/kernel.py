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


def _reply(payload: dict[str, Any]) -> None:
    from IPython.display import display

    display({REPLY_MIME: payload, "text/plain": "(grader)"}, raw=True)


def _namespace() -> dict[str, Any]:
    from IPython import get_ipython

    return get_ipython().user_ns


def install(cell_cpu_s: float) -> None:
    """Limit every student cell to ``cell_cpu_s`` CPU seconds (the grader's cells are exempt)."""
    from IPython import get_ipython

    def on_limit(signum: int, frame: Any) -> None:
        raise CellTimeLimit(f"the cell used more than {cell_cpu_s:g} s of CPU time")

    def before(info: Any) -> None:
        if not (info.raw_cell or "").startswith(MARK):
            signal.signal(signal.SIGPROF, on_limit)
            signal.setitimer(signal.ITIMER_PROF, cell_cpu_s)

    def after(result: Any) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0)

    events = get_ipython().events
    events.register("pre_run_cell", before)
    events.register("post_run_cell", after)
    _reply({"installed": True})


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

"""The PyTorch half of :func:`attn_course.grading.answers.observe_calls` (imports torch).

Two modes, because a forbidden routine can be reached two ways:

* a ``TorchDispatchMode`` sees every ATen operator that runs, whichever Python spelling
  led to it (``torch.softmax``, ``F.softmax``, ``x.softmax``, ``nn.Softmax``, ``torch.ops``);
* a ``TorchFunctionMode`` sees the public functions themselves. It is needed for routines
  that decompose into ordinary operators before dispatch, such as
  ``scaled_dot_product_attention`` on the CPU (its math path is bmm + softmax + bmm).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torch.overrides import TorchFunctionMode, resolve_name
from torch.utils._python_dispatch import TorchDispatchMode


class _OperatorWatch(TorchDispatchMode):
    def __init__(self, names: set[str], hits: list[str]) -> None:
        super().__init__()
        self.names, self.hits = names, hits

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = str(func.overloadpacket)
        if name in self.names and name not in self.hits:
            self.hits.append(name)
        return func(*args, **(kwargs or {}))


class _FunctionWatch(TorchFunctionMode):
    def __init__(self, names: set[str], hits: list[str]) -> None:
        super().__init__()
        self.names, self.hits = names, hits

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = resolve_name(func)
        if name in self.names and name not in self.hits:
            self.hits.append(name)
        return func(*args, **(kwargs or {}))


@contextmanager
def watch_operators(names: set[str], hits: list[str]) -> Iterator[None]:
    with _OperatorWatch(names, hits):
        yield


@contextmanager
def watch_functions(names: set[str], hits: list[str]) -> Iterator[None]:
    with _FunctionWatch(names, hits):
        yield

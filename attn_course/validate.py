"""One vocabulary for checking arguments, shared by every lesson module and the kernels.

Every check takes ``(name, value, ...)`` in that order and returns the value in its plain
Python form (``numpy.int64(8)`` -> ``8``), so a caller writes ``n = check_count("n", n)``.
A bad argument is an error whose message starts with the parameter's name and says what
it accepts, e.g. ``n must be an integer >= 1, got 0``:

* a value of the wrong kind (``1.5`` for a count, ``"no"`` for a flag) is an
  :class:`ArgumentTypeError`: a ``TypeError`` that is also a ``ValueError``, because the
  course has always promised ``ValueError`` for every bad argument (numpy's ``AxisError``
  is a ``ValueError`` and an ``IndexError`` for the same reason);
* a value of the right kind outside the allowed range is a ``ValueError``.

The module imports only torch and numpy, so anything in the package may use it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = [
    "ArgumentTypeError",
    "DTYPE_BYTES",
    "DTYPE_NAMES",
    "MAX_LOOP_STEPS",
    "bytes_per_element",
    "canonical_dtype",
    "check_choice",
    "check_count",
    "check_fraction",
    "check_flag",
    "check_loop_size",
    "check_non_negative",
    "check_positive",
    "describe_value",
    "resolve_dtype",
    "resolve_scale",
]

T = TypeVar("T")


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong kind: a TypeError, and a ValueError like every bad argument."""


def describe_value(value: object) -> str:
    """What an error message should say about a bad argument: shape and dtype of a tensor."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}, dtype {value.dtype}"
    return type(value).__name__


# --- numbers ----------------------------------------------------------------------------


def _is_integer(value: object) -> bool:
    # bool is an int in Python (and numpy.bool_ is not Integral); n=True is a mistake.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def check_count(name: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an int in ``[minimum, maximum]`` (no upper end when ``maximum`` is None).

    Python and numpy integers are counts; bools, floats (even ``4.0``) and strings are not.
    """
    allowed = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    message = f"{name} must be an integer {allowed}, got {value!r}"
    if not _is_integer(value):
        raise ArgumentTypeError(message)
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(message)
    return int(value)


def _real(name: str, value: Any, allowed: str) -> float:
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{name} must be {allowed}, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return number


def check_positive(name: str, value: Any) -> float:
    """``value`` as a float, finite and > 0 (a size, a bandwidth, a time)."""
    number = _real(name, value, "a finite number > 0")
    if number <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return number


def check_non_negative(name: str, value: Any) -> float:
    """``value`` as a float, finite and >= 0 (a probability of dropout, a byte count)."""
    number = _real(name, value, "a finite number >= 0")
    if number < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


def check_fraction(name: str, value: Any) -> float:
    """``value`` as a float in (0, 1]: a utilisation, a fraction of peak."""
    number = check_positive(name, value)
    if number > 1:
        raise ValueError(f"{name} must be in (0, 1] (a fraction), got {value!r}")
    return number


def check_flag(name: str, value: Any) -> bool:
    """``value`` as a bool; only True/False (or numpy's), since ``causal="no"`` is truthy."""
    if not isinstance(value, bool | np.bool_):
        raise ArgumentTypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_choice(name: str, value: T, choices: Collection[Any]) -> T:
    """``value`` if it is one of ``choices`` (compared with ==, of the same type), else an error."""
    if not any(type(value) is type(c) and value == c for c in choices):
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


#: The most steps a function that walks a schedule in Python will take (tiles, tokens);
#: beyond it the answer would take minutes, so it asks for a smaller size instead.
MAX_LOOP_STEPS = 10**6


def check_loop_size(name: str, steps: int, what: str) -> None:
    """Refuse a Python loop of more than :data:`MAX_LOOP_STEPS` ``what`` (a hang, not an answer).

    ``name`` is the parameter (or parameters, "n, n_k") that set the number of steps.
    """
    if steps > MAX_LOOP_STEPS:
        raise ValueError(
            f"{name} too large: it would walk {steps:,} {what}, more than the "
            f"{MAX_LOOP_STEPS:,} this Python loop handles in about a second"
        )


# --- dtypes -----------------------------------------------------------------------------

#: Bytes per element of each dtype we know. int4 packs two values per byte.
#: "tf32" is a matmul mode of float32 tensors, so it is stored in 4 bytes.
DTYPE_BYTES: dict[str, float] = {
    "float64": 8,
    "float32": 4,
    "tf32": 4,
    "float16": 2,
    "bfloat16": 2,
    "float8": 1,
    "int8": 1,
    "int4": 0.5,
    "bool": 1,
}

_DTYPE_ALIASES = {
    "fp64": "float64",
    "double": "float64",
    "fp32": "float32",
    "float": "float32",
    "fp16": "float16",
    "half": "float16",
    "bf16": "bfloat16",
    "fp8": "float8",
    "float8_e4m3fn": "float8",
    "float8_e5m2": "float8",
    "e4m3": "float8",
    "e5m2": "float8",
}

#: The floating dtypes torch computes attention in, by canonical name. The size of an
#: element is read from torch (dtype.itemsize), not typed in by hand.
DTYPE_NAMES: dict[str, torch.dtype] = {
    "float64": torch.float64,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def canonical_dtype(dtype: Any, name: str = "dtype") -> str:
    """Canonical name of ``dtype``: ``"fp16"`` -> ``"float16"``; ``torch.bfloat16`` works too."""
    if not isinstance(dtype, str | torch.dtype):
        raise ArgumentTypeError(
            f"{name} must be a dtype name such as 'bfloat16' or a torch dtype, got {dtype!r}"
        )
    key = str(dtype).strip().lower().removeprefix("torch.")
    key = _DTYPE_ALIASES.get(key, key)
    if key not in DTYPE_BYTES:
        known = sorted(DTYPE_BYTES) + sorted(_DTYPE_ALIASES)
        raise ValueError(f"{name} must be one of {known}, got {dtype!r}")
    return key


def bytes_per_element(dtype: Any, name: str = "dtype") -> float:
    """Bytes one element of ``dtype`` occupies: float32 -> 4, bfloat16 -> 2, int4 -> 0.5."""
    return DTYPE_BYTES[canonical_dtype(dtype, name)]


def resolve_dtype(dtype: Any, name: str = "dtype") -> torch.dtype:
    """The torch floating dtype ``dtype`` names: ``"bf16"``, ``"bfloat16"``, ``torch.bfloat16``.

    Same names as :func:`canonical_dtype`, restricted to :data:`DTYPE_NAMES` (the reference
    attention computes in floating point only, so "int8" is an error here).
    """
    allowed = ", ".join(DTYPE_NAMES)
    message = f"{name} must be one of {allowed} (a name, fp32/fp16/bf16, or the torch dtype)"
    try:
        key = canonical_dtype(dtype, name)
    except ValueError:
        raise ValueError(f"{message}, got {dtype!r}") from None
    if key not in DTYPE_NAMES:
        raise ValueError(f"{message}, got {dtype!r}")
    return DTYPE_NAMES[key]


# --- attention --------------------------------------------------------------------------


def resolve_scale(scale: Any, head_dim: int) -> float:
    """The softmax scale: ``1/√head_dim`` when ``scale`` is None, else a finite number > 0.

    Every attention implementation of the course (naive, tiled, Triton) takes ``scale``
    the way ``scaled_dot_product_attention`` does and checks it here.
    """
    head_dim = check_count("head_dim", head_dim)
    if scale is None:
        return 1.0 / math.sqrt(head_dim)
    allowed = "None (1/√head_dim) or a finite number > 0"
    number = _real("scale", scale, allowed)
    if number <= 0:
        raise ValueError(f"scale must be {allowed}, got {scale!r}")
    return number

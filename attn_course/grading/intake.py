"""Reading a submitted file without trusting it.

A submission is whatever a learning-management system exported, or whatever a student
chose to put there: a notebook, but also a symbolic link to ``/etc/passwd``, a FIFO that
blocks every reader, a link to ``/dev/zero``, a 4 GB file, a notebook of 10,000 cells.
:func:`read_notebook` accepts only a regular file (it never follows a link and never blocks
on a special file), caps its size, its number of code cells and the size of its sources,
and returns the parsed notebook with every output removed. Its error messages say what was
wrong with the file and never echo the file's contents.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nbformat import NotebookNode

__all__ = ["IntakeLimits", "Rejected", "read_notebook"]


@dataclass(frozen=True)
class IntakeLimits:
    """The largest submission that is graded at all."""

    file_bytes: int = 20 * 2**20
    code_cells: int = 500
    source_bytes: int = 2 * 2**20


class Rejected(Exception):
    """The file is not something the grader will run; ``message`` and ``hint`` are feedback."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


_RESUBMIT = "hand in the .ipynb file itself, as JupyterLab saved it (File > Save Notebook)"


def read_notebook(path: Path | str, limits: IntakeLimits = IntakeLimits()) -> NotebookNode:
    """The notebook at ``path``, outputs removed; raises :class:`Rejected` for anything else."""
    raw = _read_regular_file(Path(path), limits.file_bytes)
    return parse_notebook(raw, limits)


def _read_regular_file(path: Path, cap: int) -> bytes:
    try:
        info = os.lstat(path)
    except OSError:
        raise Rejected("the file could not be found or read", _RESUBMIT) from None
    if stat.S_ISLNK(info.st_mode):
        raise Rejected("the file is a symbolic link, not a notebook", _RESUBMIT)
    if not stat.S_ISREG(info.st_mode):
        raise Rejected("not a regular file (a folder, a pipe or a device)", _RESUBMIT)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        raise Rejected("the file could not be opened", _RESUBMIT) from None
    with os.fdopen(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):  # swapped since the lstat
            raise Rejected("not a regular file (a folder, a pipe or a device)", _RESUBMIT)
        raw = stream.read(cap + 1)
    if len(raw) > cap:
        raise Rejected(
            f"the file is larger than {cap / 2**20:g} MiB, the most that is graded",
            "clear the outputs (Edit > Clear Outputs of All Cells), save, and hand it in again",
        )
    return raw


def parse_notebook(raw: bytes, limits: IntakeLimits = IntakeLimits()) -> NotebookNode:
    """Parse and bound a notebook's bytes; raises :class:`Rejected`."""
    import nbformat

    try:
        text = raw.decode("utf-8")
        nb = nbformat.reads(text, as_version=4)
    except Exception as error:  # noqa: BLE001 - the message may quote the file: not shown
        raise Rejected(
            f"the file is not a notebook Jupyter can read ({type(error).__name__})", _RESUBMIT
        ) from None
    cells = nb.get("cells")
    if not isinstance(cells, list) or not all(_well_formed(c) for c in cells):
        raise Rejected("the file is not a notebook Jupyter can read (malformed cells)", _RESUBMIT)
    code = [c for c in cells if c.cell_type == "code"]
    if len(code) > limits.code_cells:
        raise Rejected(
            f"the notebook has {len(code)} code cells; at most {limits.code_cells} are graded",
            "hand in the exercise notebook with your answers, not a generated one",
        )
    if sum(len(c.source.encode()) for c in code) > limits.source_bytes:
        raise Rejected(
            f"the notebook's code is longer than {limits.source_bytes / 2**20:g} MiB",
            "hand in the exercise notebook with your answers, not a generated one",
        )
    for cell in code:
        cell.outputs, cell.execution_count = [], None
    return nb


def _well_formed(cell: object) -> bool:
    return (
        isinstance(cell, dict)
        and cell.get("cell_type") in ("code", "markdown", "raw")
        and isinstance(cell.get("source"), str)
        and isinstance(cell.get("metadata", {}), dict)
    )

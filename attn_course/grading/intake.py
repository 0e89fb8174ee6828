"""Reading a submitted file without trusting it.

A submission is whatever a learning-management system exported, or whatever a student
chose to put there: a notebook, but also a symbolic link to ``/etc/passwd``, a FIFO that
blocks every reader, a link to ``/dev/zero``, a 4 GB file, a notebook of 10,000 cells.
:func:`read_notebook` accepts only a regular file (it never follows a link and never blocks
on a special file), caps its size, its number of code cells and the size of its sources,
and returns the parsed notebook with every output removed. Its error messages say what was
wrong with the file and never echo the file's contents.

:func:`course_notebook_in` reads a submitted file's *name* the same way for both graders:
which course notebook it is and whose it is, whatever a student or a learning-management
system made of the name (``Copy of 01-Score-Matrix (2)``, ``smith_4711_01_score_matrix``,
Moodle's ``Carol Jones_12345_assignsubmission_file_…``, Canvas's ``jonesdave_LATE_12_34_…``).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nbformat import NotebookNode

__all__ = ["IntakeLimits", "Rejected", "course_notebook_in", "read_notebook"]


# --- what a file's name says -------------------------------------------------------------

# Decorations that say nothing about the student, removed from the rest of a file's name.
_NAME_NOISE = (
    r"(?i)\bcopy(\s*\(\d+\))?\s+of\b",  # "Copy of", "Copy (2) of" (Google Drive, Colab)
    r"(?i)[\s_-]*\(\d+\)",  # " (2)": a browser's second download
    r"(?i)_assignsubmission_file_?$",  # Moodle: "Full Name_ID_assignsubmission_file_"
    r"(?i)(?<=[a-z])_late(?=_\d)",  # Canvas marks late work in the name
)
# Canvas: "lastnamefirstname_userid_fileid_"; the file id differs from file to file.
_CANVAS = re.compile(r"([a-z]+_\d+)_\d+")


def _name_pattern(stem: str) -> re.Pattern[str]:
    """A notebook stem as it may appear in a file name: any case, ``_`` as space, dash or dot."""
    words = (re.escape(word) for word in stem.split("_"))
    return re.compile(r"[\s\-._]*".join(words), re.IGNORECASE)


def _student_part(text: str) -> str:
    for noise in _NAME_NOISE:
        text = re.sub(noise, "", text)
    text = text.strip(" _-.")
    canvas = _CANVAS.fullmatch(text)
    return canvas.group(1) if canvas else text


def course_notebook_in(file_stem: str, notebooks: Sequence[str]) -> tuple[str, str] | None:
    """(the course notebook named in ``file_stem``, the student part of the name), or None.

    The notebook is the longest of ``notebooks`` whose words occur in the name in any case,
    joined by ``_``, ``-``, ``.``, spaces or nothing. The student part is the text before it
    with the decorations of :data:`_NAME_NOISE` removed, or, when nothing is left there, the
    text after it (``01_score_matrix_alice``); a bare number after it is a download counter,
    not a name. It may be empty: a file in a student's own folder needs no name.
    """
    found = [(stem, m) for stem in notebooks if (m := _name_pattern(stem).search(file_stem))]
    if not found:
        return None
    stem, match = max(found, key=lambda pair: len(pair[0]))
    student = _student_part(file_stem[: match.start()])
    if not student:
        after = _student_part(file_stem[match.end() :])
        student = "" if after.isdigit() else after
    return stem, student


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

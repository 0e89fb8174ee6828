"""Build the course's notebooks from their sources: ``python -m attn_course.classroom.build``.

Notebooks are written as jupytext percent scripts; the ``.ipynb`` files are
generated from them and committed::

    notebooks/NN_topic.py  ->  notebooks/NN_topic.ipynb    (the lesson)
    solutions/NN_topic.py  ->  solutions/NN_topic.ipynb    (lesson + worked exercises)
                           ->  exercises/NN_topic.ipynb    (solutions cleared by nbgrader)

Every generated notebook has no outputs, no execution counts, the ``python3``
kernel, and stable cell ids, so that building twice gives the same bytes and a
diff shows only real changes. Exercise notebooks are made with nbgrader's own
preprocessors, used as a library (no nbgrader course directory needed):
ClearSolutions replaces each ``### BEGIN SOLUTION`` ... ``### END SOLUTION``
region with a stub that raises NotImplementedError (which the grader reports as
"not attempted"), and LockCells makes the check cells read-only in JupyterLab.

    python -m attn_course.classroom.build             # (re)write whatever is out of date
    python -m attn_course.classroom.build --check     # only report; exit 1 if any is out of date
    python -m attn_course.classroom.build --root DIR  # a course checkout other than this one
    python -m attn_course.classroom.build --force     # also overwrite notebooks changed by hand

A generated notebook carries its own fingerprint: it has no outputs and each cell's id
is a hash of the cell's content, which JupyterLab keeps when it saves. A notebook that
was run, or had a cell edited or added, no longer matches it
(:func:`changes_by_hand`), and the build refuses to overwrite it, saying why, unless
``--force`` is given: answers written into ``exercises/`` or a lesson run in place are
never lost silently. (Learners work in copies, see :mod:`attn_course.classroom.lab`.)

The build also checks every solutions notebook: each solution cell is followed
by a check cell of a registered exercise of that notebook
(:func:`validate_exercise_notebook`), and no solution line survives into the
exercise notebook (:func:`leaked_solution_lines`).

jupytext and nbgrader are development dependencies, imported only when needed.
"""

from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat

from attn_course.course import COURSE_ROOT, lesson_files

if TYPE_CHECKING:
    from nbformat import NotebookNode

__all__ = [
    "build",
    "changes_by_hand",
    "check_call",
    "exercise_notebook",
    "leaked_solution_lines",
    "main",
    "nbgrader_meta",
    "normalise",
    "notebook_from_script",
    "notebook_text",
    "planned_notebooks",
    "validate_exercise_notebook",
]

SOURCE_FOLDERS = ("notebooks", "solutions")
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}

# What a student finds in place of a solution. Keep the NotImplementedError: the
# grader reports an exercise whose code raises it as "not attempted".
CODE_STUB = (
    "# YOUR CODE HERE: delete the `raise` line below and write your solution\n"
    "raise NotImplementedError()"
)
BEGIN_SOLUTION = "BEGIN SOLUTION"
END_SOLUTION = "END SOLUTION"

# Cell metadata jupytext adds only to reproduce blank lines of the script.
JUPYTEXT_CELL_NOISE = ("lines_to_next_cell",)


def default_root() -> Path:
    """This checkout (the folder holding the package) if it has the course folders, else cwd."""
    return COURSE_ROOT if (COURSE_ROOT / "solutions").is_dir() else Path.cwd()


# --- one notebook ----------------------------------------------------------------------


def normalise(nb: NotebookNode) -> NotebookNode:
    """Strip outputs and run state, set the python3 kernel and cell ids, in place.

    A cell's id is derived from its content, so building twice gives the same ids.
    """
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    nb.nbformat, nb.nbformat_minor = 4, 5
    seen: set[str] = set()
    for cell in nb.cells:
        for key in JUPYTEXT_CELL_NOISE:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.id = _stable_id(cell, seen)
    return nb


def _stable_id(cell: NotebookNode, seen: set[str]) -> str:
    """The first 8 hex digits of a hash of the cell: editing one cell changes one id."""
    digest = hashlib.sha1(f"{cell.cell_type}\n{cell.source}".encode()).hexdigest()
    cell_id, n = digest[:8], 1
    while cell_id in seen:  # identical cells (e.g. two empty ones) need distinct ids
        cell_id, n = f"{digest[:8]}-{n}", n + 1
    seen.add(cell_id)
    return cell_id


def changes_by_hand(path: Path) -> list[str]:
    """How the notebook at ``path`` differs from anything the build writes (empty: it does not).

    Finds outputs (the notebook was run), and cells whose id is not the hash of their
    content (edited, added or moved by hand). A deleted cell leaves no trace, and loses
    no work.
    """
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as error:  # noqa: BLE001 - whatever it is, the build did not write it
        return [f"it is not a notebook nbformat can read ({type(error).__name__})"]
    changes = []
    if any(c.get("outputs") or c.get("execution_count") for c in nb.cells if c.cell_type == "code"):
        changes.append("it has outputs (it was run)")
    seen: set[str] = set()
    edited = [
        i + 1 for i, cell in enumerate(nb.cells) if cell.get("id") != _stable_id(cell, seen)
    ]
    if edited:
        shown = ", ".join(map(str, edited[:5])) + (" …" if len(edited) > 5 else "")
        changes.append(f"cell{'s' if len(edited) > 1 else ''} {shown} edited or added")
    return changes


def notebook_from_script(script: Path) -> NotebookNode:
    """Read a jupytext percent script into a normalised notebook."""
    import jupytext

    return normalise(jupytext.read(script, fmt="py:percent"))


def notebook_text(nb: NotebookNode) -> str:
    """The bytes we commit for ``nb``: validated nbformat v4 JSON with a trailing newline."""
    nbformat.validate(nb)
    return nbformat.writes(nb, version=4).rstrip("\n") + "\n"


def exercise_notebook(solution: NotebookNode) -> NotebookNode:
    """The student's version of a solutions notebook: solutions cleared, check cells locked."""
    from nbgrader.preprocessors import ClearOutput, ClearSolutions, LockCells

    nb = copy.deepcopy(solution)
    resources: dict = {}
    clear = ClearSolutions(
        code_stub={"python": CODE_STUB},
        begin_solution_delimeter=BEGIN_SOLUTION,
        end_solution_delimeter=END_SOLUTION,
    )
    for preprocessor in (clear, ClearOutput(), LockCells()):
        nb, resources = preprocessor.preprocess(nb, resources)
    # Ids come from the cleared cells, not the solutions (a hash of a solution is a clue).
    return normalise(nb)


# --- checks on a solutions / exercise pair ---------------------------------------------


def _code_lines(nb: NotebookNode) -> list[tuple[str, bool]]:
    """(stripped line, inside a solution region?) for every non-blank line of every cell."""
    found = []
    for cell in nb.cells:
        inside = False
        for line in cell.source.splitlines():
            if BEGIN_SOLUTION in line:
                inside = True
            elif END_SOLUTION in line:
                inside = False
            elif line.strip():
                found.append((line.strip(), inside))
    return found


def leaked_solution_lines(solution_nb: NotebookNode, exercise_nb: NotebookNode) -> list[str]:
    """Lines of the solutions' BEGIN/END SOLUTION regions that appear in the exercise notebook.

    A line that also appears outside the solution regions (a blank ``return``
    shared with the narrative, say) is not secret, so it does not count.
    """
    lines = _code_lines(solution_nb)
    public = {line for line, inside in lines if not inside}
    secret = {line for line, inside in lines if inside} - public
    in_exercise = {line for line, _ in _code_lines(exercise_nb)}
    return sorted(secret & in_exercise)


def nbgrader_meta(cell: NotebookNode) -> dict:
    return cell.metadata.get("nbgrader", {})


def check_call(source: str) -> tuple[str, str] | None:
    """(exercise id, answer name) of a ``check("id", answer)`` call in ``source``, if any."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "check"
            and len(node.args) == 2
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            answer = node.args[1].id if isinstance(node.args[1], ast.Name) else ""
            return node.args[0].value, answer
    return None


def validate_exercise_notebook(path: Path | str) -> list[str]:
    """Problems with the exercises of a solutions notebook (``.ipynb`` or percent ``.py``).

    Every solution cell (nbgrader ``solution: true``) must have its grade_id
    registered as an exercise of this notebook (its ``notebook`` is the file's
    stem), contain a BEGIN/END SOLUTION region, and be followed by a check cell
    (nbgrader ``grade: true``, grade_id ``<id>_check``) whose source is
    ``check("<id>", <answer>)``. Every registered exercise of the notebook must
    appear. An empty list means all is well.
    """
    from attn_course.checks import all_exercises

    path = Path(path)
    nb = notebook_from_script(path) if path.suffix == ".py" else nbformat.read(path, as_version=4)
    registered = {e.id: e for e in all_exercises()}
    stem = path.stem
    problems: list[str] = []
    seen: list[str] = []
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    for index, cell in enumerate(code_cells):
        meta = nbgrader_meta(cell)
        if not meta.get("solution"):
            continue
        ex_id = meta.get("grade_id", "")
        where = f"{path.name}: solution cell {ex_id!r}"
        seen.append(ex_id)
        exercise = registered.get(ex_id)
        if exercise is None:
            problems.append(f"{where}: no exercise with this id is registered")
            continue
        if exercise.notebook != stem:
            problems.append(f"{where}: exercise is registered for notebook {exercise.notebook!r}")
        if BEGIN_SOLUTION not in cell.source or END_SOLUTION not in cell.source:
            problems.append(f"{where}: no ### BEGIN SOLUTION / ### END SOLUTION region")
        following = code_cells[index + 1] if index + 1 < len(code_cells) else None
        call = check_call(following.source) if following is not None else None
        if following is None or call is None:
            problems.append(f"{where}: the next code cell must be check({ex_id!r}, ...)")
            continue
        if call != (ex_id, exercise.answer):
            problems.append(
                f"{where}: check cell calls check{call!r}, expected "
                f"check({ex_id!r}, {exercise.answer})"
            )
        check_meta = nbgrader_meta(following)
        if not check_meta.get("grade") or check_meta.get("solution"):
            problems.append(f"{where}: its check cell needs nbgrader grade: true, solution: false")
        if check_meta.get("grade_id") != f"{ex_id}_check":
            problems.append(f"{where}: its check cell's grade_id must be {ex_id + '_check'!r}")
        if check_meta.get("points") != exercise.points:
            problems.append(
                f"{where}: check cell is worth {check_meta.get('points')} points, "
                f"the exercise {exercise.points}"
            )
    missing = [e.id for e in registered.values() if e.notebook == stem and e.id not in seen]
    if missing:
        problems.append(f"{path.name}: registered exercises without a solution cell: {missing}")
    return problems


# --- the whole course ------------------------------------------------------------------


def planned_notebooks(root: Path) -> dict[Path, NotebookNode]:
    """Every notebook the build writes under ``root``, by path, in build order."""
    planned: dict[Path, NotebookNode] = {}
    for folder in SOURCE_FOLDERS:
        for script in lesson_files(root / folder, ".py"):
            planned[script.with_suffix(".ipynb")] = notebook_from_script(script)
    for path, nb in list(planned.items()):
        if path.parent.name == "solutions":
            planned[root / "exercises" / path.name] = exercise_notebook(nb)
    return planned


def _orphans(root: Path, planned: dict[Path, NotebookNode]) -> list[Path]:
    """Committed course notebooks that no source builds any more."""
    found = []
    for folder in (*SOURCE_FOLDERS, "exercises"):
        found += [p for p in lesson_files(root / folder) if p not in planned]
    return found


def build(
    root: Path | str | None = None, check_only: bool = False, *, force: bool = False
) -> tuple[list[Path], list[str]]:
    """Write (or with ``check_only`` just compare) every generated notebook under ``root``.

    Returns the notebooks written (with ``check_only``: out of date), and the problems found
    (leaked solutions, invalid exercise notebooks, notebooks with no source, and
    notebooks left as they were because they hold changes made by hand, see
    :func:`changes_by_hand`; ``force=True`` overwrites those too).
    """
    root = Path(root) if root is not None else default_root()
    planned = planned_notebooks(root)
    stale, problems = [], []
    for path, nb in planned.items():
        text = notebook_text(nb)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if check_only:
            continue
        by_hand = changes_by_hand(path) if path.exists() and not force else []
        if by_hand:
            problems.append(
                f"{path.relative_to(root)}: NOT overwritten, {'; '.join(by_hand)}. Move it "
                "elsewhere to keep that work, or discard it with "
                "`python -m attn_course.classroom.build --force`"
            )
            stale.pop()  # still out of date, but not written: reported as a problem instead
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    orphans = _orphans(root, planned)
    problems += [f"{p.relative_to(root)}: no source script builds it" for p in orphans]
    for path, nb in planned.items():
        if path.parent.name != "solutions":
            continue
        exercise_path = root / "exercises" / path.name
        leaks = leaked_solution_lines(nb, planned[exercise_path])
        problems += [f"exercises/{path.name}: solution line leaked: {line}" for line in leaks]
        problems += validate_exercise_notebook(path.with_suffix(".py"))
    return stale, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m attn_course.classroom.build",
        description="Build notebooks/, solutions/ and exercises/ .ipynb files from the "
        "jupytext scripts notebooks/NN_*.py and solutions/NN_*.py.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if any notebook is out of date or a check fails",
    )
    parser.add_argument(
        "--root", type=Path, default=None, help="course checkout to build (default: this one)"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="overwrite generated notebooks even where they were run or edited by hand",
    )
    args = parser.parse_args(argv)
    root = args.root if args.root is not None else default_root()
    if not any((root / folder).is_dir() for folder in SOURCE_FOLDERS):
        print(f"error: {root} has no notebooks/ or solutions/ folder", file=sys.stderr)
        return 2

    stale, problems = build(root, check_only=args.check, force=args.force)
    verb = "out of date" if args.check else "wrote"
    for path in stale:
        print(f"{verb}: {path.relative_to(root)}")
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    if args.check and stale:
        print("run `python -m attn_course.classroom.build` to regenerate them", file=sys.stderr)
    if not stale and not problems:
        print("all notebooks up to date")
    return 1 if problems or (args.check and stale) else 0


if __name__ == "__main__":
    raise SystemExit(main())

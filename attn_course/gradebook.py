"""Grade a whole class: ``python -m attn_course.gradebook SUBMISSIONS --out RESULTS``.

``SUBMISSIONS`` is a folder as a learning management system exports it, either
one sub-folder per student or one file per student (or a mix)::

    submissions/alice/01_score_matrix.ipynb           student "alice"
    submissions/smith_4711_01_score_matrix.ipynb      student "smith_4711"
    submissions/bob/Copy of 01_score_matrix (2).ipynb student "bob"

A file belongs to the course notebook whose name (``01_score_matrix``) occurs in
its file name; the student is the sub-folder's name, or the file name without
the notebook's name. Each submission is graded by ``attn-grade`` in a process
of its own (which runs the notebook in a kernel of its own, see
:func:`attn_course.grade.run_notebook`): every cell and every check has a time
limit, the kernel has a memory limit, a cell that crashes or hangs the kernel is
skipped in a fresh one, and check cells are never run, so editing them changes
nothing. A submission whose grading process fails altogether (or runs past its
overall time limit) costs that student that notebook's exercises and nothing else.

``RESULTS`` receives:

``gradebook.csv``
    one row per student, one column per exercise (points earned), and ``total``;
    the first row, ``points possible``, holds each exercise's maximum.
``feedback/<student>.md``
    what each exercise earned and why, with hints, for the student to read.
``gradebook.json``
    all of it, for other programs.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attn_course.checks import Exercise, all_exercises, exercises_for
from attn_course.grade import (
    CHECK_GRACE_S,
    DEFAULT_CELL_TIMEOUT_S,
    DEFAULT_MEMORY_LIMIT_BYTES,
    FAILED,
    NOT_ATTEMPTED,
    PASSED,
    PROBE_TIMEOUT_S,
    CheckResult,
    Scored,
    load_extra_checks,
    memory_limit_arg,
)

__all__ = [
    "POINTS_POSSIBLE",
    "NotebookGrade",
    "StudentGrade",
    "Submission",
    "feedback_text",
    "find_submissions",
    "grade_class",
    "grade_submission",
    "main",
    "write_gradebook",
]

# The first row of gradebook.csv: the most each exercise can earn.
POINTS_POSSIBLE = "points possible"
_SYMBOLS = {PASSED: "✓", FAILED: "✗", NOT_ATTEMPTED: "…"}
# Seconds a grading process needs besides running cells: start Python, start kernels.
_STARTUP_S = 60.0


@dataclass(frozen=True)
class Submission:
    """One student's file for one course notebook."""

    student: str
    notebook: str  # the course notebook's stem, e.g. "01_score_matrix"
    path: Path


@dataclass
class NotebookGrade(Scored):
    """The results of one submission (or of a missing one)."""

    notebook: str
    path: Path | None
    results: list[CheckResult]
    notes: list[str] = field(default_factory=list)


@dataclass
class StudentGrade(Scored):
    """One student's results over every graded notebook."""

    student: str
    notebooks: list[NotebookGrade]

    @property
    def results(self) -> list[CheckResult]:  # type: ignore[override]
        return [r for n in self.notebooks for r in n.results]

    def points_by_exercise(self) -> dict[str, float]:
        return {r.exercise_id: r.points for r in self.results}


# --- finding the submissions -------------------------------------------------------------


def _name_pattern(stem: str) -> re.Pattern[str]:
    """A notebook stem as it may appear in a file name: any case, ``_`` as space, dash or dot."""
    words = (re.escape(word) for word in stem.split("_"))
    return re.compile(r"[\s\-._]+".join(words), re.IGNORECASE)


def _notebook_in(file_name: str, notebooks: Sequence[str]) -> tuple[str, str] | None:
    """(the longest course notebook stem found in ``file_name``, the text before it)."""
    found = [(stem, m) for stem in notebooks if (m := _name_pattern(stem).search(file_name))]
    if not found:
        return None
    stem, match = max(found, key=lambda pair: len(pair[0]))
    return stem, file_name[: match.start()].strip(" _-.")


def find_submissions(
    folder: Path | str, notebooks: Sequence[str]
) -> tuple[list[Submission], list[str]]:
    """The submissions under ``folder`` for the course notebooks ``notebooks``, and warnings.

    Files that name no course notebook, or whose student cannot be told, are left
    out with a warning. When a student handed in one notebook twice, the newest
    file counts (an LMS keeps resubmissions side by side) and a warning says so.
    """
    folder = Path(folder)
    warnings: list[str] = []
    chosen: dict[tuple[str, str], Path] = {}
    for path in sorted(folder.rglob("*.ipynb")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue  # .ipynb_checkpoints and other hidden copies
        found = _notebook_in(path.name, notebooks)
        if found is None:
            warnings.append(f"{relative}: ignored, its name names none of {', '.join(notebooks)}")
            continue
        notebook, prefix = found
        # A sub-folder is the student's; a file on its own carries the name before the stem.
        student = relative.parts[0] if len(relative.parts) > 1 else prefix
        if not student:
            warnings.append(f"{relative}: ignored, no student name in the file name")
            continue
        key = (student, notebook)
        if key in chosen:
            older, newer = sorted([chosen[key], path], key=lambda p: p.stat().st_mtime)
            warnings.append(
                f"{student}: two files for {notebook}; graded the newer "
                f"{newer.relative_to(folder)}, not {older.relative_to(folder)}"
            )
            path = newer
        chosen[key] = path
    order = sorted(chosen, key=lambda key: (key[0].casefold(), key[1]))
    submissions = [Submission(s, n, chosen[s, n]) for s, n in order]
    return submissions, warnings


# --- grading one submission in a process of its own --------------------------------------


def _unreadable(path: Path) -> str | None:
    """Why ``path`` is not a notebook Jupyter can read, or None if it is one."""
    import nbformat

    try:
        nbformat.read(path, as_version=4)
    except Exception as error:  # noqa: BLE001 - any unreadable file is the student's
        detail = " ".join(str(error).split())[:120]
        return f"{type(error).__name__}: {detail}" if detail else type(error).__name__
    return None


def _failed_all(
    exercises: Iterable[Exercise], message: str, hint: str, status: str = FAILED
) -> list[CheckResult]:
    return [
        CheckResult(e.id, e.title, status, 0.0, e.points, message, hint)  # type: ignore[arg-type]
        for e in exercises
    ]


def _overall_limit_s(path: Path, exercises: Sequence[Exercise], timeout_s: float) -> float:
    """The longest a grading process may take: every cell and check at its limit, twice
    (a crash restarts the kernel once per fatal cell, rarely more than once)."""
    import nbformat

    cells = sum(c.cell_type == "code" for c in nbformat.read(path, as_version=4).cells)
    checks = sum(e.timeout_s + CHECK_GRACE_S + PROBE_TIMEOUT_S for e in exercises)
    return 2 * (cells * timeout_s + checks) + _STARTUP_S


def _run_grader(command: list[str], limit_s: float) -> tuple[int | None, str, str]:
    """Run ``command`` in a new session; kill the whole session after ``limit_s`` seconds.

    Returns (exit status or None when killed, stdout, stderr).
    """
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        return None, out, err
    return process.returncode, out, err


def grade_submission(
    submission: Submission,
    timeout_s: float = DEFAULT_CELL_TIMEOUT_S,
    memory_limit_bytes: int | None = DEFAULT_MEMORY_LIMIT_BYTES,
    extra_checks: Sequence[str] = (),
) -> NotebookGrade:
    """Grade one submission with ``python -m attn_course.grade --json`` in a new process."""
    exercises = exercises_for(submission.notebook)
    why = _unreadable(submission.path)
    if why is not None:
        message = f"the file is not a notebook Jupyter can read ({why})"
        hint = "hand in the .ipynb file itself, as JupyterLab saved it (File > Save)"
        results = _failed_all(exercises, message, hint)
        return NotebookGrade(submission.notebook, submission.path, results)

    memory_gib = (memory_limit_bytes or 0) / 2**30
    command = [
        sys.executable, "-m", "attn_course.grade", "--json",
        "--timeout", f"{timeout_s:g}", "--memory-limit", f"{memory_gib:g}",
        *(f"--checks={module}" for module in extra_checks),
        str(submission.path),
    ]  # fmt: skip
    limit_s = _overall_limit_s(submission.path, exercises, timeout_s)
    status, out, err = _run_grader(command, limit_s)
    try:
        [run] = json.loads(out)
    except ValueError:
        if status is None:
            problem = f"grading did not finish within {limit_s:g} s and was stopped"
        else:
            last_line = (err.strip().splitlines() or ["no output"])[-1][:200]
            problem = f"grading failed (exit status {status}: {last_line})"
        hint = "run the notebook top to bottom yourself; ask your instructor if it works there"
        return NotebookGrade(
            submission.notebook, submission.path, _failed_all(exercises, problem, hint)
        )
    results = [CheckResult.from_dict(r) for r in run["results"]]
    notes = [_cell_note(p) for p in run["cell_problems"]]
    return NotebookGrade(submission.notebook, submission.path, results, notes)


def _cell_note(problem: dict[str, Any]) -> str:
    return f"cell {problem['number']} (`{problem['first_line']}`) {problem['error']}"


# --- grading the class ---------------------------------------------------------------------


def grade_class(
    submissions: Sequence[Submission],
    notebooks: Sequence[str],
    timeout_s: float = DEFAULT_CELL_TIMEOUT_S,
    memory_limit_bytes: int | None = DEFAULT_MEMORY_LIMIT_BYTES,
    extra_checks: Sequence[str] = (),
    jobs: int = 1,
    progress: bool = True,
) -> list[StudentGrade]:
    """Grade every student's submissions; a notebook a student did not hand in scores 0.

    Students are graded ``jobs`` at a time (each submission still in its own
    process), with a progress bar over students unless ``progress`` is False.
    """
    from tqdm.auto import tqdm

    by_student: dict[str, dict[str, Submission]] = {}
    for submission in submissions:
        by_student.setdefault(submission.student, {})[submission.notebook] = submission

    def grade_student(student: str) -> StudentGrade:
        handed_in = by_student[student]
        graded = []
        for notebook in notebooks:
            if notebook in handed_in:
                graded.append(
                    grade_submission(
                        handed_in[notebook], timeout_s, memory_limit_bytes, extra_checks
                    )
                )
            else:
                results = _failed_all(
                    exercises_for(notebook),
                    "no submission",
                    f"hand in {notebook}.ipynb",
                    status=NOT_ATTEMPTED,
                )
                graded.append(NotebookGrade(notebook, None, results))
        return StudentGrade(student, graded)

    students = sorted(by_student, key=str.casefold)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        graded = pool.map(grade_student, students)
        if progress:
            graded = tqdm(graded, total=len(students), desc="grading", unit="student")
        return list(graded)


# --- writing the gradebook -----------------------------------------------------------------


def _number(value: float) -> str:
    return f"{value:g}"


def feedback_text(grade: StudentGrade) -> str:
    """The Markdown feedback file of one student."""
    lines = [
        f"# Feedback for {grade.student}",
        "",
        f"**Total: {_number(grade.points)} / {_number(grade.max_points)} points**",
    ]
    for notebook in grade.notebooks:
        lines += [
            "",
            f"## {notebook.notebook}: {_number(notebook.points)} / "
            f"{_number(notebook.max_points)} points",
            "",
            f"Graded file: `{notebook.path.name}`" if notebook.path else "No file handed in.",
            "",
        ]
        for r in notebook.results:
            lines.append(
                f"- {_SYMBOLS[r.status]} **{r.title}** (`{r.exercise_id}`): {r.status}, "
                f"{_number(r.points)} / {_number(r.max_points)}"
            )
            if not r.passed and r.message:
                lines.append(f"  - {r.message}")
            if not r.passed and r.hint:
                lines.append(f"  - hint: {r.hint}")
        if notebook.notes:
            lines += ["", "Other problems found while running your notebook:", ""]
            lines += [f"- {note}" for note in notebook.notes]
    return "\n".join(lines) + "\n"


def _file_name(student: str, taken: set[str]) -> str:
    """A safe, unique file name for a student's feedback."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", student).strip("._") or "student"
    name, number = base, 2
    while name.lower() in taken:
        name, number = f"{base}_{number}", number + 1
    taken.add(name.lower())
    return f"{name}.md"


def write_gradebook(
    grades: Sequence[StudentGrade], notebooks: Sequence[str], out: Path | str
) -> Path:
    """Write gradebook.csv, gradebook.json and feedback/<student>.md under ``out``."""
    out = Path(out)
    (out / "feedback").mkdir(parents=True, exist_ok=True)
    exercises = [e for notebook in notebooks for e in exercises_for(notebook)]
    csv_path = out / "gradebook.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["student", *(e.id for e in exercises), "total"])
        possible = [_number(e.points) for e in exercises]
        writer.writerow([POINTS_POSSIBLE, *possible, _number(sum(e.points for e in exercises))])
        for grade in grades:
            earned = grade.points_by_exercise()
            row = [_number(earned.get(e.id, 0.0)) for e in exercises]
            writer.writerow([grade.student, *row, _number(grade.points)])

    taken: set[str] = set()
    records = []
    for grade in grades:
        feedback = out / "feedback" / _file_name(grade.student, taken)
        feedback.write_text(feedback_text(grade), encoding="utf-8")
        records.append(
            {
                "student": grade.student,
                "points": grade.points,
                "max_points": grade.max_points,
                "feedback": str(feedback.relative_to(out)),
                "notebooks": [
                    {
                        "notebook": n.notebook,
                        "file": str(n.path) if n.path else None,
                        "points": n.points,
                        "results": [r.to_dict() for r in n.results],
                        "notes": n.notes,
                    }
                    for n in grade.notebooks
                ],
            }
        )
    (out / "gradebook.json").write_text(
        json.dumps(records, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return csv_path


# --- command line ----------------------------------------------------------------------------


def _course_notebooks() -> list[str]:
    return sorted({e.notebook for e in all_exercises()})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="attn-gradebook",
        description="Grade a class's exercise notebooks into a CSV gradebook and a feedback "
        "file per student. Exit status 0 when grading ran, 2 on a usage error.",
    )
    parser.add_argument("submissions", type=Path, help="folder of the class's submissions")
    parser.add_argument("--out", type=Path, default=Path("gradebook"), help="results folder")
    parser.add_argument(
        "--notebook",
        action="append",
        default=[],
        metavar="STEM",
        help="grade only this course notebook, e.g. 01_score_matrix (repeatable; default: "
        "every course notebook someone handed in)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_CELL_TIMEOUT_S,
        help="seconds each cell of a submission may run (default: %(default)g); each "
        "check has its own limit too",
    )
    parser.add_argument(
        "--memory-limit",
        type=memory_limit_arg,
        default=DEFAULT_MEMORY_LIMIT_BYTES,
        metavar="GIB",
        help="address space each submission's kernel may use, in GiB; 0 for no limit "
        f"(default: {DEFAULT_MEMORY_LIMIT_BYTES / 2**30:g})",
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="students graded at once (default: %(default)s)"
    )
    parser.add_argument(
        "--checks", action="append", default=[], metavar="MODULE", help="extra exercises"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    load_extra_checks(args.checks)
    known = _course_notebooks()
    unknown = [n for n in args.notebook if n not in known]
    problem = None
    if not args.submissions.is_dir():
        problem = f"{args.submissions}: no such folder"
    elif unknown:
        problem = f"no exercises for {', '.join(unknown)}; known: {', '.join(known)}"
    elif args.jobs < 1:
        problem = f"--jobs must be at least 1, got {args.jobs}"
    elif not math.isfinite(args.timeout) or args.timeout <= 0:
        problem = f"--timeout must be a number of seconds > 0, got {args.timeout}"
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2

    submissions, warnings = find_submissions(args.submissions, args.notebook or known)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not submissions:
        print(f"error: no submissions found under {args.submissions}", file=sys.stderr)
        return 2
    notebooks = args.notebook or sorted({s.notebook for s in submissions})
    grades = grade_class(
        submissions,
        notebooks,
        args.timeout,
        args.memory_limit,
        args.checks,
        args.jobs,
        progress=not args.quiet,
    )
    csv_path = write_gradebook(grades, notebooks, args.out)
    print(f"graded {len(grades)} students: {csv_path}, feedback in {args.out / 'feedback'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

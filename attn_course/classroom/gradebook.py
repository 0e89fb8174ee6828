"""Grade a whole class: ``python -m attn_course.classroom.gradebook SUBMISSIONS --out RESULTS``.

``SUBMISSIONS`` is a folder as a learning management system exports it, either
one sub-folder per student or one file per student (or a mix)::

    submissions/alice/01_score_matrix.ipynb           student "alice"
    submissions/smith_4711_01_score_matrix.ipynb      student "smith_4711"
    submissions/bob/Copy of 01_score_matrix (2).ipynb student "bob"

A file belongs to the course notebook whose name (``01_score_matrix``) occurs in
its file name, in any case and with ``_``, ``-``, ``.``, spaces or nothing between the words;
the student is the sub-folder's name, or the rest of the file name with what learning-
management systems add removed (:func:`attn_course.grading.intake.course_notebook_in`). Folders
are walked without following symbolic links; a symbolic link, FIFO or device named like a
submission counts as that student's submission and scores 0 with the reason, unopened.

Each submission is graded by ``attn-grade`` in a process of its own, which runs the
notebook in a confined kernel in a throwaway folder (see :func:`attn_course.grade.run_notebook`
and :mod:`attn_course.grading`): the checks run in the grading process, never in the
student's kernel. This process only trusts what it can verify of that result: the exit
status must be 0, the exercise ids must be the notebook's, the statuses known, and the
points are recomputed from the statuses. A submission whose grading fails altogether (or
runs past its overall time limit) costs that student that notebook's exercises and nothing
else; every process it left behind is killed.

``RESULTS`` receives:

``gradebook.csv``
    one row per student, one column per exercise (points earned), and ``total``;
    the first row, ``points possible``, holds each exercise's maximum.
``feedback/<student>.md``
    what each exercise earned and why, with hints, for the student to read.
``gradebook.json``
    all of it, for other programs.

They are written to a temporary folder first and moved into place at the end, so an
interrupted run leaves the previous gradebook as it was. Text cells of the CSV that a
spreadsheet would read as a formula (``=``, ``+``, ``-``, ``@``) are quoted with ``'``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attn_course.checks import Exercise, exercises_for
from attn_course.grade import (
    DEFAULT_CELL_TIMEOUT_S,
    DEFAULT_MEMORY_LIMIT_BYTES,
    FAILED,
    NOT_ATTEMPTED,
    PARENT_ENV,
    PASSED,
    CheckResult,
    Scored,
    course_notebooks,
    load_extra_checks,
    memory_limit_arg,
)
from attn_course.grading import sandbox
from attn_course.grading.intake import Rejected, course_notebook_in, read_notebook
from attn_course.grading.session import Limits

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
_STATUSES = frozenset(_SYMBOLS)
# Seconds a grading process may take beyond its notebook's own limit: start Python, copy
# the package, start and stop kernels.
_STARTUP_S = 120.0
# Feedback text taken from a grading process is cut to this many characters per field.
_MAX_TEXT = 1000
_MAX_NAME = 80


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


def display_name(name: str) -> str:
    """A student name fit to show: control characters removed, at most 80 characters."""
    cleaned = "".join(c if unicodedata.category(c)[0] != "C" else "?" for c in name)
    cleaned = " ".join(cleaned.split())
    return cleaned[:_MAX_NAME] or "?"


def _walk_files(folder: Path) -> Iterator[Path]:
    """Every non-directory entry under ``folder``, hidden folders and links to folders skipped."""
    for here, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(here) / name


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
    for path in _walk_files(folder):
        if path.suffix.lower() != ".ipynb":
            continue
        relative = path.relative_to(folder)
        shown = display_name(str(relative))
        found = course_notebook_in(path.stem, notebooks)
        if found is None:
            warnings.append(f"{shown}: ignored, its name names none of {', '.join(notebooks)}")
            continue
        notebook, prefix = found
        # A sub-folder is the student's; a file on its own carries the name before the stem.
        student = display_name(relative.parts[0] if len(relative.parts) > 1 else prefix)
        if student == "?":
            warnings.append(f"{shown}: ignored, no student name in the file name")
            continue
        key = (student, notebook)
        if key in chosen:
            older, newer = sorted([chosen[key], path], key=_modified)
            warnings.append(
                f"{student}: two files for {notebook}; graded the newer "
                f"{display_name(str(newer.relative_to(folder)))}, not "
                f"{display_name(str(older.relative_to(folder)))}"
            )
            path = newer
        chosen[key] = path
    order = sorted(chosen, key=lambda key: (key[0].casefold(), key[1]))
    submissions = [Submission(s, n, chosen[s, n]) for s, n in order]
    return submissions, warnings


def _modified(path: Path) -> float:
    return os.lstat(path).st_mtime  # the entry itself: never follow a link


# --- grading one submission in a process of its own --------------------------------------


def _failed_all(
    exercises: Iterable[Exercise], message: str, hint: str, status: str = FAILED
) -> list[CheckResult]:
    return [
        CheckResult(e.id, e.title, status, 0.0, e.points, message, hint)  # type: ignore[arg-type]
        for e in exercises
    ]


class _Children:
    """The grading processes alive right now, so that cleaning up after one of them never
    touches another's (they run side by side with ``--jobs``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: dict[int, int] = {}  # pid -> clock ticks when it started

    def start(self, *args: Any, **kwargs: Any) -> subprocess.Popen:
        """``subprocess.Popen(*args, **kwargs)``, registered before any cleanup can run."""
        with self._lock:
            process = subprocess.Popen(*args, **kwargs)
            self._started[process.pid] = sandbox.start_ticks(process.pid)
        return process

    def done(self, pid: int) -> None:
        with self._lock:
            since = self._started.pop(pid)
            # Orphans of a finished grading process were re-parented to this subreaper.
            sandbox.kill_orphans(since, keep=frozenset(self._started))


_CHILDREN = _Children()


def _run_grader(command: list[str], limit_s: float, folder: Path) -> int | None:
    """Run ``command`` in ``folder`` with its output in files there; None if it was killed
    for running past ``limit_s`` seconds. Every process it left behind is killed."""
    env = dict(os.environ, **{PARENT_ENV: str(os.getpid())})
    with (folder / "stdout").open("wb") as out, (folder / "stderr").open("wb") as err:
        process = _CHILDREN.start(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=folder,
            start_new_session=True, env=env,
        )  # fmt: skip
    try:
        return process.wait(timeout=limit_s)
    except subprocess.TimeoutExpired:
        sandbox.kill_tree(process.pid)
        process.kill()
        process.wait()
        return None
    finally:
        _CHILDREN.done(process.pid)


def grade_submission(
    submission: Submission,
    timeout_s: float = DEFAULT_CELL_TIMEOUT_S,
    memory_limit_bytes: int | None = DEFAULT_MEMORY_LIMIT_BYTES,
    extra_checks: Sequence[str] = (),
    *,
    notebook_limit_s: float = Limits.notebook_s,
    confined: bool = True,
) -> NotebookGrade:
    """Grade one submission with ``python -m attn_course.grade`` in a new process."""
    exercises = exercises_for(submission.notebook)
    try:
        read_notebook(submission.path)
    except Rejected as rejected:
        results = _failed_all(exercises, rejected.message, rejected.hint)
        return NotebookGrade(submission.notebook, submission.path, results)

    memory_gib = (memory_limit_bytes or 0) / 2**30
    with tempfile.TemporaryDirectory(prefix="attn-gradebook-") as tmp:
        folder = Path(tmp)
        command = [
            sys.executable, "-m", "attn_course.grade", "--out", str(folder / "result.json"),
            "--notebook", submission.notebook, "--timeout", f"{timeout_s:g}",
            "--memory-limit", f"{memory_gib:g}", "--notebook-limit", f"{notebook_limit_s:g}",
            *(f"--checks={module}" for module in extra_checks),
            *([] if confined else ["--unconfined"]),
            "--", os.path.abspath(submission.path),
        ]  # fmt: skip
        limit_s = notebook_limit_s + _STARTUP_S
        status = _run_grader(command, limit_s, folder)
        result_file, stderr = folder / "result.json", folder / "stderr"
        run = _read_result(result_file) if status == 0 else None
        if run is None:
            if status is None:
                problem = f"grading did not finish within {limit_s:g} s and was stopped"
            else:
                lines = stderr.read_bytes()[-16000:].decode("utf-8", "replace").strip()
                last = shorten((lines.splitlines() or ["no output"])[-1])
                problem = f"grading failed (exit status {status}: {last})"
            hint = "run the notebook top to bottom yourself; ask your instructor if it works there"
            return NotebookGrade(
                submission.notebook, submission.path, _failed_all(exercises, problem, hint)
            )
    results, notes = _verified(run, exercises)
    return NotebookGrade(submission.notebook, submission.path, results, notes)


def _read_result(path: Path) -> dict[str, Any] | None:
    try:
        if path.stat().st_size > 4 * 2**20:
            return None
        runs = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(runs, list) or len(runs) != 1 or not isinstance(runs[0], dict):
        return None
    return runs[0]


def shorten(text: str, limit: int = _MAX_TEXT) -> str:
    """``text`` whole if it fits in ``limit`` characters, else cut at a word and marked so:
    feedback never ends mid-word without saying that something was left out."""
    if len(text) <= limit:
        return text
    kept = text[: limit - 40].rsplit(" ", 1)[0]
    return f"{kept} … [{len(text) - len(kept)} more characters]"


def _text(value: Any) -> str:
    return shorten(str(value)) if isinstance(value, str | int | float) else ""


def _verified(
    run: dict[str, Any], exercises: Sequence[Exercise]
) -> tuple[list[CheckResult], list[str]]:
    """The results of ``run`` that can be trusted: one per exercise of the notebook, a known
    status, and the points that status earns (all or nothing), whatever the run claimed."""
    claimed = {}
    for item in run.get("results", []) if isinstance(run.get("results"), list) else []:
        if isinstance(item, dict) and isinstance(item.get("exercise_id"), str):
            claimed.setdefault(item["exercise_id"], item)
    results = []
    for e in exercises:
        item = claimed.get(e.id)
        status = item.get("status") if item else None
        if status not in _STATUSES:
            message = "the grader returned no result for this exercise"
            results.append(CheckResult(e.id, e.title, FAILED, 0.0, e.points, message))
            continue
        points = e.points if status == PASSED else 0.0
        message, hint = _text(item.get("message", "")), _text(item.get("hint", ""))
        results.append(CheckResult(e.id, e.title, status, points, e.points, message, hint))
    notes = []
    problems = run.get("cell_problems", [])
    for problem in problems[:100] if isinstance(problems, list) else []:
        if isinstance(problem, dict) and isinstance(problem.get("number"), int):
            notes.append(f"cell {problem['number']} (`{_text(problem.get('first_line'))[:60]}`) "
                         f"{_text(problem.get('error'))}")  # fmt: skip
    return results, notes


# --- grading the class ---------------------------------------------------------------------


def grade_class(
    submissions: Sequence[Submission],
    notebooks: Sequence[str],
    timeout_s: float = DEFAULT_CELL_TIMEOUT_S,
    memory_limit_bytes: int | None = DEFAULT_MEMORY_LIMIT_BYTES,
    extra_checks: Sequence[str] = (),
    jobs: int = 1,
    progress: bool = True,
    *,
    notebook_limit_s: float = Limits.notebook_s,
    confined: bool = True,
) -> list[StudentGrade]:
    """Grade every student's submissions; a notebook a student did not hand in scores 0.

    Students are graded ``jobs`` at a time (each submission still in its own
    process), with a progress bar over students unless ``progress`` is False.
    """
    from tqdm.auto import tqdm

    sandbox.become_subreaper()
    by_student: dict[str, dict[str, Submission]] = {}
    for submission in submissions:
        by_student.setdefault(submission.student, {})[submission.notebook] = submission

    def grade_student(student: str) -> StudentGrade:
        handed_in = by_student[student]
        graded = []
        for notebook in notebooks:
            if notebook in handed_in:
                graded.append(grade_submission(
                    handed_in[notebook], timeout_s, memory_limit_bytes, extra_checks,
                    notebook_limit_s=notebook_limit_s, confined=confined,
                ))  # fmt: skip
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


def spreadsheet_safe(text: str) -> str:
    """``text`` as a CSV cell no spreadsheet runs as a formula (OWASP's CSV-injection rule)."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _markdown_safe(text: str) -> str:
    """Feedback text from the grading run, inert in Markdown (no HTML, no links, one line)."""
    text = " ".join(str(text).split())
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("[", "\\[").replace("]", "\\]")


def feedback_text(grade: StudentGrade) -> str:
    """The Markdown feedback file of one student."""
    e = _markdown_safe
    lines = [
        f"# Feedback for {e(grade.student)}",
        "",
        f"**Total: {_number(grade.points)} / {_number(grade.max_points)} points**",
    ]
    for notebook in grade.notebooks:
        lines += [
            "",
            f"## {notebook.notebook}: {_number(notebook.points)} / "
            f"{_number(notebook.max_points)} points",
            "",
            f"Graded file: `{e(notebook.path.name)}`" if notebook.path else "No file handed in.",
            "",
        ]
        for r in notebook.results:
            lines.append(
                f"- {_SYMBOLS[r.status]} **{e(r.title)}** (`{r.exercise_id}`): {r.status}, "
                f"{_number(r.points)} / {_number(r.max_points)}"
            )
            if not r.passed and r.message:
                lines.append(f"  - {e(r.message)}")
            if not r.passed and r.hint:
                lines.append(f"  - hint: {e(r.hint)}")
        if notebook.notes:
            lines += ["", "Other problems found while running your notebook:", ""]
            lines += [f"- {e(note)}" for note in notebook.notes]
    return "\n".join(lines) + "\n"


def _file_name(student: str, taken: set[str]) -> str:
    """A safe, unique file name for a student's feedback."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", student).strip("._") or "student"
    base = base[:60]
    name, number = base, 2
    while name.lower() in taken:
        name, number = f"{base}_{number}", number + 1
    taken.add(name.lower())
    return f"{name}.md"


def write_gradebook(
    grades: Sequence[StudentGrade], notebooks: Sequence[str], out: Path | str
) -> Path:
    """Write gradebook.csv, gradebook.json and feedback/<student>.md under ``out``.

    Everything is written into a temporary folder inside ``out`` first and moved into place
    at the end (feedback, then the JSON, then the CSV), so that an interrupted run leaves
    the previous gradebook intact.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=".gradebook-partial-", dir=out))
    try:
        _write_into(grades, notebooks, partial)
        _swap_into_place(partial / "feedback", out / "feedback")
        os.replace(partial / "gradebook.json", out / "gradebook.json")
        os.replace(partial / "gradebook.csv", out / "gradebook.csv")
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return out / "gradebook.csv"


def _swap_into_place(new: Path, target: Path) -> None:
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists() or target.is_symlink():
        if target.is_dir() and not target.is_symlink():
            os.replace(target, old)
        else:
            target.unlink()
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def _write_into(grades: Sequence[StudentGrade], notebooks: Sequence[str], folder: Path) -> None:
    (folder / "feedback").mkdir()
    exercises = [e for notebook in notebooks for e in exercises_for(notebook)]
    with (folder / "gradebook.csv").open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["student", *(e.id for e in exercises), "total"])
        possible = [_number(e.points) for e in exercises]
        writer.writerow([POINTS_POSSIBLE, *possible, _number(sum(e.points for e in exercises))])
        for grade in grades:
            earned = grade.points_by_exercise()
            row = [_number(earned.get(e.id, 0.0)) for e in exercises]
            writer.writerow([spreadsheet_safe(grade.student), *row, _number(grade.points)])

    taken: set[str] = set()
    records = []
    for grade in grades:
        feedback = folder / "feedback" / _file_name(grade.student, taken)
        feedback.write_text(feedback_text(grade), encoding="utf-8")
        records.append(
            {
                "student": grade.student,
                "points": grade.points,
                "max_points": grade.max_points,
                "feedback": str(feedback.relative_to(folder)),
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
    (folder / "gradebook.json").write_text(
        json.dumps(records, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


# --- command line ----------------------------------------------------------------------------


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="attn-gradebook",
        description="Grade a class's exercise notebooks into a CSV gradebook and a feedback "
        "file per student. Exit status 0 when grading ran, 1 when the grader could not work, "
        "2 on a usage error.",
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
        help="CPU seconds each cell of a submission may use (default: %(default)g); each "
        "check has its own limit too",
    )
    parser.add_argument(
        "--notebook-limit",
        type=float,
        default=Limits.notebook_s,
        metavar="SECONDS",
        help="wall-clock seconds one submission's grading may take in all "
        "(default: %(default)g)",
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
    parser.add_argument(
        "--unconfined",
        action="store_true",
        help="run kernels without the Landlock sandbox (only for submissions you trust, on a "
        "system without Landlock)",
    )
    args = parser.parse_args(argv)

    load_extra_checks(args.checks)
    known = course_notebooks()
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
    elif not math.isfinite(args.notebook_limit) or args.notebook_limit <= 0:
        problem = f"--notebook-limit must be a number of seconds > 0, got {args.notebook_limit}"
    elif _inside(args.out, args.submissions) or _inside(args.submissions, args.out):
        problem = f"--out {args.out} and the submissions {args.submissions} must not overlap"
    elif not args.unconfined and sandbox.landlock_abi() < 1:
        problem = ("this system has no Landlock (Linux 5.13 or newer), so students' kernels "
                   "cannot be confined; grade on a recent Linux, or pass --unconfined only for "
                   "submissions you trust")  # fmt: skip
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
        notebook_limit_s=args.notebook_limit,
        confined=not args.unconfined,
    )
    csv_path = write_gradebook(grades, notebooks, args.out)
    print(f"graded {len(grades)} students: {csv_path}, feedback in {args.out / 'feedback'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Build and verify the student release: ``python -m attn_course.classroom.release --out DIR``.

The release is the course as students get it: the lessons, the exercise
notebooks, the package (whose checks the exercises call), the recorded
benchmark results and the install files, without ``solutions/`` or the test
suite. One command

1. rebuilds every notebook from its source (:func:`attn_course.classroom.build.build`), which
   regenerates ``exercises/`` from ``solutions/`` and fails on any problem there;
2. copies the student files into ``DIR``, with the students' own README
   (``docs/release-README.md``) in place of the course repository's;
3. verifies the copy (:func:`verify_release`): no solutions folder, every
   exercise notebook holds, for each exercise registered for it, a stub cell that
   raises NotImplementedError followed by its locked check cell, no line of the
   worked solutions, and no outputs; and every relative link of its README and
   notebooks resolves to a file inside the release (:func:`broken_links`).

Exit status 0 when the release is ready, 1 when a check found a problem.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import urllib.parse
from pathlib import Path

import nbformat

from attn_course.classroom.build import (
    CODE_STUB,
    build,
    check_call,
    default_root,
    leaked_solution_lines,
    nbgrader_meta,
    notebook_from_script,
)
from attn_course.course import lesson_files

__all__ = [
    "RELEASE_FILES",
    "broken_links",
    "local_links",
    "main",
    "make_release",
    "verify_release",
]

# What students get, relative to the course root (folders copied whole, minus caches).
# The repository's README is for the people who work on the course; students get theirs.
STUDENT_README = Path("docs") / "release-README.md"
RELEASE_FILES = (
    "pyproject.toml",
    "environment.yml",
    "Makefile",
    "constraints",
    "attn_course",
    "records",
    "notebooks",
    "exercises",
)
# Never in a release, whatever RELEASE_FILES says.
WITHHELD = ("solutions", "tests", ".ci")
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info")
# The line of build.CODE_STUB that makes an untouched exercise "not attempted".
_STUB = CODE_STUB.splitlines()[-1]


def _copy(root: Path, out: Path) -> None:
    out.mkdir(parents=True)
    shutil.copy2(root / STUDENT_README, out / "README.md")
    for name in RELEASE_FILES:
        source, target = root / name, out / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=_IGNORED)
        elif source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    # The lessons' paired .py sources are the authors' files, not the students'.
    for script in lesson_files(out / "notebooks", ".py"):
        script.unlink()


def _exercise_problems(path: Path) -> list[str]:
    """Each registered exercise of ``path`` is a stub followed by its locked check cell."""
    from attn_course.checks import exercises_for

    nb = nbformat.read(path, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    problems = [
        f"{path.name}: cell {i + 1} has outputs" for i, c in enumerate(code) if c.get("outputs")
    ]
    by_id = {nbgrader_meta(c).get("grade_id"): i for i, c in enumerate(code) if nbgrader_meta(c)}
    for exercise in exercises_for(path.stem):
        where = f"{path.name}: exercise {exercise.id!r}"
        index = by_id.get(exercise.id)
        if index is None or not nbgrader_meta(code[index]).get("solution"):
            problems.append(f"{where} has no solution cell")
            continue
        if _STUB not in code[index].source:
            problems.append(f"{where}: its cell is not a stub raising NotImplementedError")
        following = code[index + 1] if index + 1 < len(code) else None
        meta = nbgrader_meta(following) if following is not None else {}
        call = check_call(following.source) if following is not None else None
        if call != (exercise.id, exercise.answer):
            problems.append(f"{where} is not followed by check({exercise.id!r}, {exercise.answer})")
        elif not (meta.get("grade") and meta.get("locked")):
            problems.append(f"{where}: its check cell is not a locked nbgrader grade cell")
    return problems


# [text](target) in Markdown, not images; the target up to a space or ")".
MARKDOWN_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def local_links(text: str) -> list[str]:
    """The link targets of Markdown ``text`` that point to files (no URLs, no #anchors only)."""
    targets = MARKDOWN_LINK.findall(text)
    return [t for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


def _markdown_texts(out: Path) -> list[tuple[Path, str]]:
    texts = [(path, path.read_text(encoding="utf-8")) for path in sorted(out.glob("*.md"))]
    for folder in ("notebooks", "exercises"):
        for path in sorted((out / folder).glob("*.ipynb")):
            nb = nbformat.read(path, as_version=4)
            cells = [cell.source for cell in nb.cells if cell.cell_type == "markdown"]
            texts.append((path, "\n".join(cells)))
    return texts


def broken_links(out: Path | str) -> list[str]:
    """Every relative link in the README and notebooks of ``out`` that does not resolve to
    a file inside ``out`` (a link to a withheld folder, or out of the release)."""
    out = Path(out).resolve()
    problems = []
    for path, text in _markdown_texts(out):
        for target in local_links(text):
            file_part = urllib.parse.unquote(target.split("#", 1)[0])
            resolved = (path.parent / file_part).resolve()
            if not (resolved.is_relative_to(out) and resolved.exists()):
                problems.append(f"{path.relative_to(out)}: link to {target} leads nowhere")
    return problems


def verify_release(out: Path | str, root: Path | str | None = None) -> list[str]:
    """Problems with the release in ``out`` (an empty list: ready to hand out).

    ``root`` is the course checkout whose ``solutions/`` the exercises must not leak.
    """
    out = Path(out)
    root = Path(root) if root is not None else default_root()
    problems = [f"{name}/ must not be in a release" for name in WITHHELD if (out / name).exists()]
    exercise_notebooks = lesson_files(out / "exercises")
    if not exercise_notebooks:
        problems.append("exercises/ holds no exercise notebooks")
    for path in exercise_notebooks:
        problems += _exercise_problems(path)
        solution_source = root / "solutions" / path.with_suffix(".py").name
        if not solution_source.is_file():
            problems.append(f"{path.name}: no solutions/{solution_source.name} to compare with")
            continue
        leaks = leaked_solution_lines(
            notebook_from_script(solution_source), nbformat.read(path, as_version=4)
        )
        problems += [f"{path.name}: solution line leaked: {line}" for line in leaks]
    return problems + broken_links(out)


def make_release(out: Path | str, root: Path | str | None = None) -> list[str]:
    """Rebuild the notebooks, copy the release into ``out`` (replaced), verify it.

    Returns the problems found; nothing is copied when the build itself has problems.
    """
    root = Path(root) if root is not None else default_root()
    out = Path(out)
    _, problems = build(root)
    if problems:
        return problems
    if out.exists():
        shutil.rmtree(out)
    _copy(root, out)
    return verify_release(out, root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m attn_course.classroom.release",
        description="Build the student release (lessons, exercise notebooks, package; no "
        "solutions) from the solutions and verify it.",
    )
    parser.add_argument("--out", type=Path, default=Path("release"), help="release folder")
    parser.add_argument("--root", type=Path, default=None, help="course checkout")
    args = parser.parse_args(argv)
    problems = make_release(args.out, args.root)
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    if problems:
        return 1
    count = len(list((args.out / "exercises").glob("*.ipynb")))
    print(f"release ready in {args.out}: {count} exercise notebooks, verified")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

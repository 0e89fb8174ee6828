"""Open the course in JupyterLab: ``python -m attn_course.classroom.lab [options] [lab options]``.

``make lab`` sets up the virtual environment and then runs this module. A learner's work
never lives in the course's tracked files: the first time, the lessons (``notebooks/``) and
the exercise notebooks (``exercises/``) are copied into a *workspace* folder (``workspace/``
in the course folder, ignored by git; ``--workspace DIR`` or ``ATTN_COURSE_WORKSPACE`` to
put it elsewhere), and JupyterLab opens there, on ``notebooks/00_start_here.ipynb``. Running
a lesson, answering an exercise and saving only ever change those copies: ``git pull``,
``make notebooks`` and ``make release`` cannot touch them.

When the course is updated, ``make lab`` refreshes each copy the learner has not changed
and keeps every copy they have changed (it says which, and how to get the new version):
``workspace/.course-copies.json`` remembers the SHA-256 of what it copied.

The learner's JupyterLab also differs from a plain ``jupyter lab`` in two settings:

* nbgrader's instructor tools (its menu, Formgrader, the Create Assignment panel, the
  Validate button) are switched off: learners check their work with the check cells.
  ``--instructor`` opens the course folder itself with them switched on.
* widget state is saved with the notebook, so a reopened lesson shows its calculators
  as they were (interactive again once the cell runs) instead of "model not found".

Other arguments go straight to ``jupyter lab`` (``make lab LAB_ARGS="--no-browser --port
8890"``); the test suite uses them to start a headless server.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from attn_course.course import COURSE_ROOT, LESSONS, lesson_files

__all__ = [
    "FIRST_NOTEBOOK",
    "WorkspaceReport",
    "default_workspace",
    "lab_command",
    "main",
    "prepare_workspace",
]

# The course map (lesson 00), first lesson of the map.
FIRST_NOTEBOOK = Path("notebooks") / f"{LESSONS[0].slug}.ipynb"
WORKSPACE_ENV = "ATTN_COURSE_WORKSPACE"
# Copied side by side under the same names, so the lessons' relative links
# (``../exercises/01_score_matrix.ipynb``) work in the workspace too.
COPIED_FOLDERS = ("notebooks", "exercises")
MANIFEST = ".course-copies.json"
SETTINGS_DIR = Path(".lab") / "settings"  # hidden from JupyterLab's file browser

# nbgrader's lab extension (menu, Formgrader, Create Assignment, Validate) and its server
# parts: instructor tools, off in the learner's lab.
NBGRADER_LAB_EXTENSION = "@jupyter/nbgrader"
NBGRADER_SERVER_EXTENSIONS = (
    "nbgrader.server_extensions.formgrader",
    "nbgrader.server_extensions.validate_assignment",
    "nbgrader.server_extensions.assignment_list",
    "nbgrader.server_extensions.course_list",
)
# Defaults the learner can still change in Settings (JupyterLab's overrides.json).
LEARNER_SETTINGS = {"@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": True}}


def default_workspace() -> Path:
    """``$ATTN_COURSE_WORKSPACE`` if set, else ``workspace/`` in the course folder."""
    return Path(os.environ.get(WORKSPACE_ENV) or COURSE_ROOT / "workspace")


# --- the workspace --------------------------------------------------------------------------


@dataclass
class WorkspaceReport:
    """What :func:`prepare_workspace` did, by path relative to the workspace."""

    copied: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # changed by the learner and by the course

    def notes(self, workspace: Path) -> list[str]:
        """Lines for the terminal: what was copied, and every copy kept back from an update."""
        lines = []
        if self.copied:
            lines.append(f"copied {len(self.copied)} notebooks into {workspace}")
        if self.updated:
            lines.append(f"updated to the course's new version: {', '.join(self.updated)}")
        for name in self.kept:
            lines.append(
                f"note: the course has a new version of {name}, but your copy has your work in "
                f"it, so it was kept. To get the new version, rename {workspace / name} and "
                "run `make lab` again."
            )
        return lines


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _course_notebooks(course: Path) -> list[Path]:
    return [
        path.relative_to(course)
        for folder in COPIED_FOLDERS
        for path in lesson_files(course / folder)
    ]


def _read_manifest(workspace: Path) -> dict[str, str]:
    try:
        data = json.loads((workspace / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def prepare_workspace(workspace: Path, course: Path = COURSE_ROOT) -> WorkspaceReport:
    """Copy the course's lessons and exercises into ``workspace``; never overwrite work.

    For each course notebook ``N`` and its copy ``W`` (the SHA-256 of what was last copied
    is in the manifest):

    * no ``W``: copy ``N``;
    * ``W`` unchanged since it was copied and ``N`` changed: replace ``W`` by the new ``N``;
    * ``W`` changed (answers, outputs, edits) and ``N`` changed: keep ``W``, report it;
    * ``W`` changed and ``N`` did not: the learner's work, left alone without a word;
    * otherwise: leave ``W`` alone.
    """
    workspace.mkdir(parents=True, exist_ok=True)
    copied_as = _read_manifest(workspace)
    report = WorkspaceReport()
    for relative in _course_notebooks(course):
        name, source, copy = relative.as_posix(), course / relative, workspace / relative
        new = _sha256(source)
        if copy.is_symlink() or (copy.exists() and not copy.is_file()):
            report.kept.append(name)  # not ours to replace, whatever it is
            continue
        if copy.exists():
            current = _sha256(copy)
            if current == new:
                copied_as[name] = new  # the same bytes: nothing to do, whatever the record says
                continue
            if new == copied_as.get(name):
                continue  # the course did not change: the copy holds the learner's work
            if current != copied_as.get(name):
                report.kept.append(name)
                continue
            report.updated.append(name)
        else:
            report.copied.append(name)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, copy)
        copied_as[name] = new
    manifest = json.dumps(dict(sorted(copied_as.items())), indent=1) + "\n"
    (workspace / MANIFEST).write_text(manifest, encoding="utf-8")
    return report


def write_learner_settings(workspace: Path) -> Path:
    """The JupyterLab application-settings folder of the learner's lab, (re)written.

    ``page_config.json`` switches nbgrader's lab extension off; ``overrides.json`` holds
    :data:`LEARNER_SETTINGS`. Returns the folder, for ``--LabApp.app_settings_dir``.
    """
    folder = workspace / SETTINGS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    page_config = {"disabledExtensions": {NBGRADER_LAB_EXTENSION: True}}
    (folder / "page_config.json").write_text(json.dumps(page_config, indent=1) + "\n")
    (folder / "overrides.json").write_text(json.dumps(LEARNER_SETTINGS, indent=1) + "\n")
    return folder


# --- the command ----------------------------------------------------------------------------


def lab_command(
    extra_args: list[str] | None = None, workspace: Path | None = None, *, instructor: bool = False
) -> list[str]:
    """The ``jupyter lab`` command line that opens the course on its first notebook.

    The learner's lab (the default) is rooted in ``workspace`` (see :func:`prepare_workspace`)
    with nbgrader's tools off; ``instructor=True`` roots it in the course folder with them on.
    """
    command = [sys.executable, "-m", "jupyterlab"]
    if instructor:
        command.append(f"--ServerApp.root_dir={COURSE_ROOT}")
    else:
        workspace = workspace or default_workspace()
        command += [
            f"--ServerApp.root_dir={workspace}",
            f"--LabApp.app_settings_dir={workspace / SETTINGS_DIR}",
            *(f"--ServerApp.jpserver_extensions={ext}=False" for ext in NBGRADER_SERVER_EXTENSIONS),
        ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Containers and CI machines often run as root, where Jupyter refuses to
        # start unless told that this is deliberate.
        command.append("--allow-root")
    return [*command, *(extra_args or []), str(FIRST_NOTEBOOK)]


def _parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m attn_course.classroom.lab",
        description="Open the course in JupyterLab; other options go to `jupyter lab`.",
        allow_abbrev=False,  # never take one of jupyter's options for one of ours
    )
    parser.add_argument(
        "--workspace", type=Path, default=None,
        help=f"where your copies of the notebooks live (default: ${WORKSPACE_ENV} or "
        "workspace/ in the course folder)",
    )  # fmt: skip
    parser.add_argument(
        "--instructor", action="store_true",
        help="open the course folder itself, with nbgrader's instructor tools",
    )  # fmt: skip
    return parser.parse_known_args(argv)


def main(argv: list[str] | None = None) -> int:
    args, jupyter_args = _parse(sys.argv[1:] if argv is None else argv)
    if not (COURSE_ROOT / FIRST_NOTEBOOK).exists():
        print(
            f"error: {FIRST_NOTEBOOK} not found under {COURSE_ROOT}. Run this from a checkout of "
            "the course (the package is installed editable by `make lab`).",
            file=sys.stderr,
        )
        return 2
    workspace = None
    if not args.instructor:
        workspace = (args.workspace or default_workspace()).resolve()
        for line in prepare_workspace(workspace).notes(workspace):
            print(line, file=sys.stderr)
        write_learner_settings(workspace)
        print(f"your work is saved in {workspace}; stop the server with Ctrl-C", file=sys.stderr)
    command = lab_command(jupyter_args, workspace, instructor=args.instructor)
    cwd = COURSE_ROOT if args.instructor else workspace
    if os.name == "posix":
        # Become JupyterLab rather than wait for it as a child: a signal that stops this
        # process (Ctrl-C, a terminal closing, a test's terminate()) then reaches the
        # server itself instead of leaving it running as an orphan.
        os.chdir(cwd)
        os.execv(command[0], command)
    return subprocess.call(command, cwd=cwd, env=os.environ.copy())


if __name__ == "__main__":
    raise SystemExit(main())

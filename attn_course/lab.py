"""Open the course in JupyterLab: ``python -m attn_course.lab [jupyter lab options]``.

``make lab`` sets up the virtual environment and then runs this module, which
starts JupyterLab with the course folder as its root and the first notebook
open. Extra arguments go straight to ``jupyter lab`` (e.g. ``--no-browser
--port 8890``); the test suite uses them to start a headless server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

COURSE_ROOT = Path(__file__).resolve().parent.parent
FIRST_NOTEBOOK = Path("notebooks") / "00_start_here.ipynb"


def lab_command(extra_args: list[str] | None = None) -> list[str]:
    """The ``jupyter lab`` command line that opens the course on its first notebook."""
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={COURSE_ROOT}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Containers and CI machines often run as root, where Jupyter refuses to
        # start unless told that this is deliberate.
        command.append("--allow-root")
    return [*command, *(extra_args or []), str(FIRST_NOTEBOOK)]


def main(argv: list[str] | None = None) -> int:
    if not (COURSE_ROOT / FIRST_NOTEBOOK).exists():
        print(
            f"error: {FIRST_NOTEBOOK} not found under {COURSE_ROOT}. Run this from a checkout of "
            "the course (the package is installed editable by `make lab`).",
            file=sys.stderr,
        )
        return 2
    command = lab_command(sys.argv[1:] if argv is None else argv)
    if os.name == "posix":
        # Become JupyterLab rather than wait for it as a child: a signal that stops this
        # process (Ctrl-C, a terminal closing, a test's terminate()) then reaches the
        # server itself instead of leaving it running as an orphan.
        os.chdir(COURSE_ROOT)
        os.execv(command[0], command)
    return subprocess.call(command, cwd=COURSE_ROOT, env=os.environ.copy())


if __name__ == "__main__":
    raise SystemExit(main())

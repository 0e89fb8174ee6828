"""The lab command: a workspace nothing overwrites, and a JupyterLab that really serves it.

The workspace tests copy a small fake course. The server test starts ``python -m
attn_course.classroom.lab`` (what ``make lab`` runs once the environment is set up) headless on a
free local port with a workspace in a temporary folder, waits for HTTP 200 from its REST
API, saves a notebook through it the way JupyterLab does, checks that only the workspace
copy changed, that nbgrader's instructor tools are off and widget state is saved, and
stops it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from attn_course.classroom.lab import (
    FIRST_NOTEBOOK,
    NBGRADER_LAB_EXTENSION,
    lab_command,
    prepare_workspace,
)
from attn_course.course import COURSE_ROOT

# --- the workspace ----------------------------------------------------------------------------


@pytest.fixture
def course(tmp_path: Path) -> Path:
    root = tmp_path / "course"
    for name in ("notebooks/00_start_here.ipynb", "notebooks/01_a.ipynb", "exercises/01_a.ipynb"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(f"version 1 of {name}")
    (root / "notebooks" / "01_a.py").write_text("a lesson's source is not copied")
    return root


def test_the_first_lab_copies_lessons_and_exercises(course: Path, tmp_path: Path):
    work = tmp_path / "work"
    report = prepare_workspace(work, course)
    expected = ["notebooks/00_start_here.ipynb", "notebooks/01_a.ipynb", "exercises/01_a.ipynb"]
    assert sorted(report.copied) == sorted(expected)
    for name in expected:
        assert (work / name).read_text() == (course / name).read_text()
    assert not (work / "notebooks" / "01_a.py").exists()
    assert prepare_workspace(work, course) == type(report)()  # the second time: nothing to do


def test_a_learners_work_survives_a_course_update(course: Path, tmp_path: Path):
    work = tmp_path / "work"
    prepare_workspace(work, course)
    (work / "exercises" / "01_a.ipynb").write_text("my answers")
    for name in ("exercises/01_a.ipynb", "notebooks/01_a.ipynb"):
        (course / name).write_text(f"version 2 of {name}")

    report = prepare_workspace(work, course)
    assert report.updated == ["notebooks/01_a.ipynb"]  # untouched copy: refreshed
    assert report.kept == ["exercises/01_a.ipynb"]  # changed copy: kept, and said so
    assert (work / "exercises" / "01_a.ipynb").read_text() == "my answers"
    assert (work / "notebooks" / "01_a.ipynb").read_text() == "version 2 of notebooks/01_a.ipynb"
    (note,) = [line for line in report.notes(work) if "exercises/01_a.ipynb" in line]
    assert "was kept" in note and "rename" in note

    # Renamed away, the learner gets the new version; their file stays where they put it.
    (work / "exercises" / "01_a.ipynb").rename(work / "exercises" / "01_a (mine).ipynb")
    assert prepare_workspace(work, course).copied == ["exercises/01_a.ipynb"]
    assert (work / "exercises" / "01_a (mine).ipynb").read_text() == "my answers"


def test_work_in_a_notebook_the_course_did_not_change_is_not_news(course, tmp_path):
    work = tmp_path / "work"
    prepare_workspace(work, course)
    (work / "notebooks" / "01_a.ipynb").write_text("ran it, outputs saved")
    (course / "exercises" / "01_a.ipynb").write_text("version 2")
    report = prepare_workspace(work, course)
    assert report.kept == [] and report.updated == ["exercises/01_a.ipynb"]
    assert (work / "notebooks" / "01_a.ipynb").read_text() == "ran it, outputs saved"


def test_a_lost_record_never_costs_work(course: Path, tmp_path: Path):
    work = tmp_path / "work"
    prepare_workspace(work, course)
    (work / "notebooks" / "01_a.ipynb").write_text("ran it, outputs saved")
    (work / ".course-copies.json").write_text("not json")
    (course / "notebooks" / "01_a.ipynb").write_text("version 2")
    report = prepare_workspace(work, course)
    assert "notebooks/01_a.ipynb" in report.kept
    assert (work / "notebooks" / "01_a.ipynb").read_text() == "ran it, outputs saved"


def test_a_link_in_the_workspace_is_left_alone(course: Path, tmp_path: Path):
    work = tmp_path / "work"
    prepare_workspace(work, course)
    target = tmp_path / "elsewhere.ipynb"
    target.write_text("someone else's file")
    (work / "exercises" / "01_a.ipynb").unlink()
    (work / "exercises" / "01_a.ipynb").symlink_to(target)
    (course / "exercises" / "01_a.ipynb").write_text("version 2")
    assert prepare_workspace(work, course).kept == ["exercises/01_a.ipynb"]
    assert target.read_text() == "someone else's file"


def test_the_learners_lab_is_rooted_in_the_workspace(tmp_path: Path):
    learner = lab_command(["--no-browser"], tmp_path)
    assert f"--ServerApp.root_dir={tmp_path}" in learner
    assert any("nbgrader.server_extensions.formgrader=False" in a for a in learner)
    assert learner[-1] == str(FIRST_NOTEBOOK) and "--no-browser" in learner
    instructor = lab_command([], tmp_path, instructor=True)
    assert f"--ServerApp.root_dir={COURSE_ROOT}" in instructor
    assert not any("nbgrader" in a for a in instructor)


# --- the server ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, token: str, data: bytes | None = None) -> tuple[int, bytes]:
    """GET ``url`` (or PUT ``data`` as JSON) with the server's token."""
    headers = {"Authorization": f"token {token}", "Content-Type": "application/json"}
    request = urllib.request.Request(
        url, headers=headers, data=data, method="PUT" if data is not None else "GET"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, response.read()


@pytest.mark.slow
def test_make_lab_runs_the_lab_module():
    makefile = (COURSE_ROOT / "Makefile").read_text()
    lab_recipe = makefile.split("\nlab:", 1)[1].split("\n\n", 1)[0]
    assert "-m attn_course.classroom.lab" in lab_recipe


@pytest.mark.slow
def test_lab_serves_the_course(tmp_path: Path):
    port, token = free_port(), secrets.token_hex(16)
    work = tmp_path / "workspace"
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "ATTN_COURSE_WORKSPACE": str(work),
    }
    tracked = {p: p.read_bytes() for p in (COURSE_ROOT / "exercises").glob("*.ipynb")}
    args = [
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        f"--IdentityProvider.token={token}",
        "--ServerApp.port_retries=0",
    ]
    log = (tmp_path / "lab.log").open("w")
    command = [sys.executable, "-m", "attn_course.classroom.lab", *args]
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline, status = time.monotonic() + 90, None
        while time.monotonic() < deadline:
            assert server.poll() is None, (tmp_path / "lab.log").read_text()
            try:
                status, body = get(f"{base}/api/status", token)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        assert status == 200, (tmp_path / "lab.log").read_text()
        assert "started" in json.loads(body)

        status, body = get(f"{base}/api/contents/{FIRST_NOTEBOOK.as_posix()}", token)
        assert status == 200 and json.loads(body)["type"] == "notebook"
        assert (work / FIRST_NOTEBOOK).is_file()

        # A learner answers an exercise and saves: only the workspace copy changes.
        exercise = "exercises/01_score_matrix.ipynb"
        status, body = get(f"{base}/api/contents/{exercise}", token)
        model = json.loads(body)
        model["content"]["cells"][0]["source"] = "my notes"
        saved = json.dumps({"type": "notebook", "format": "json", "content": model["content"]})
        status, _ = get(f"{base}/api/contents/{exercise}", token, saved.encode())
        assert status == 200
        assert "my notes" in (work / exercise).read_text()
        assert {p: p.read_bytes() for p in tracked} == tracked

        # Learners see no instructor tools; widget state is saved with the notebook.
        status, page = get(f"{base}/lab", token)
        assert status == 200
        disabled = re.search(rb'"disabledExtensions": *\[([^]]*)\]', page)
        assert disabled and NBGRADER_LAB_EXTENSION.encode() in disabled.group(1)
        with pytest.raises(urllib.error.HTTPError):
            get(f"{base}/formgrader", token)
        plugin = "@jupyter-widgets/jupyterlab-manager:plugin"
        status, body = get(f"{base}/lab/api/settings/{plugin}", token)
        assert json.loads(body)["schema"]["properties"]["saveState"]["default"] is True
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
    # Stopping the command stops the server: nothing is left serving the port.
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        get(f"{base}/api/status", token)

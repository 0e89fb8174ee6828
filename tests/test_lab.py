"""The lab command really serves JupyterLab.

Starts ``python -m attn_course.lab`` (what ``make lab`` runs once the
environment is set up) headless on a free local port, waits for HTTP 200 from
its REST API, checks the first notebook is served, and stops it.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from attn_course.lab import COURSE_ROOT, FIRST_NOTEBOOK

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, token: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, response.read()


def test_make_lab_runs_the_lab_module():
    makefile = (COURSE_ROOT / "Makefile").read_text()
    lab_recipe = makefile.split("\nlab:", 1)[1].split("\n\n", 1)[0]
    assert "-m attn_course.lab" in lab_recipe


def test_lab_serves_the_course(tmp_path: Path):
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    args = [
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        f"--IdentityProvider.token={token}",
        "--ServerApp.port_retries=0",
    ]
    log = (tmp_path / "lab.log").open("w")
    command = [sys.executable, "-m", "attn_course.lab", *args]
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
        status, _ = get(f"{base}/lab", token)
        assert status == 200
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

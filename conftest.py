"""Per-notebook markers, so a student runs one topic's tests: ``pytest -m nb01``.

Unit tests mark themselves (``pytestmark = pytest.mark.nb01``); the notebook
items that nbval collects (lesson, solutions, exercises) get the marker of
their number here. A marker is registered for every ``notebooks/NN_*.ipynb``,
so a new topic needs no edit to pyproject.toml.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
NOTEBOOK_NUMBER = re.compile(r"^(\d\d)_.*\.ipynb$")


def notebook_marker(path: Path) -> str | None:
    """``notebooks/01_score_matrix.ipynb`` -> ``"nb01"``; None for anything else."""
    match = NOTEBOOK_NUMBER.match(path.name)
    return f"nb{match[1]}" if match else None


def pytest_configure(config: pytest.Config) -> None:
    for notebook in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        marker = notebook_marker(notebook)
        config.addinivalue_line("markers", f"{marker}: notebook {notebook.stem} and its tests")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marker = notebook_marker(Path(str(item.path)))
        if marker:
            item.add_marker(marker)

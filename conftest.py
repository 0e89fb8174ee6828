"""Per-lesson markers, so a student runs one topic's tests: ``pytest -m nb01``.

Unit tests mark themselves (``pytestmark = pytest.mark.nb01``); the notebook
items that nbval collects (lesson, solutions, exercises) get the marker of
their number here. A marker is registered for every lesson of the course map
(:data:`attn_course.course.LESSONS`), so a new lesson needs no edit to pyproject.toml.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from attn_course import course


def notebook_marker(path: Path) -> str | None:
    """``notebooks/01_score_matrix.ipynb`` -> ``"nb01"``; None for anything else."""
    return course.marker_name(path.stem) if path.suffix == ".ipynb" else None


def pytest_configure(config: pytest.Config) -> None:
    for lesson in course.LESSONS:
        config.addinivalue_line("markers", f"{lesson.marker}: lesson {lesson.slug} and its tests")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marker = notebook_marker(Path(str(item.path)))
        if marker:
            item.add_marker(marker)

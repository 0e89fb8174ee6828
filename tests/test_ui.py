"""The boundary of attn_course.ui: only the screens import a widget library.

A lesson module or a kernel that imported ipywidgets (directly, or through a screen) would
make the kernels, the checks and the grader load a widget library they never use; these
tests fail as soon as one does.
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import attn_course

PACKAGE = Path(attn_course.__file__).parent
WIDGET_LIBRARIES = ("ipywidgets", "IPython")
# The grading kernel hooks into IPython itself (output capture, cell time limits).
MAY_IMPORT_IPYTHON = {"attn_course.grading.kernel"}
# What sits above the screens: the static site freezes every widget it meets (site.py moves
# into attn_course/classroom/ with the rest of the machinery).
ABOVE_THE_SCREENS = ("attn_course.ui", "attn_course.classroom")


def module_names() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages([str(PACKAGE)], "attn_course."))


def module_path(name: str) -> Path:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def imported(name: str) -> set[str]:
    """Every module ``name`` imports (absolute names; ``from x import y`` gives x and x.y)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(module_path(name).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def is_under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_only_the_screens_import_a_widget_library():
    offenders = {
        name: sorted(n for n in imported(name) if is_under(n, WIDGET_LIBRARIES))
        for name in module_names()
        if not is_under(name, ("attn_course.ui",)) and name not in MAY_IMPORT_IPYTHON
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_lessons_and_kernels_never_import_the_screens():
    offenders = [
        name
        for name in module_names()
        if not is_under(name, ABOVE_THE_SCREENS)
        and any(is_under(n, ("attn_course.ui",)) for n in imported(name))
    ]
    assert offenders == [], "screens import lessons, never the other way round"


def test_importing_every_lesson_module_and_kernel_loads_no_widget_library():
    # The same rule, seen from a fresh interpreter: it also catches a third-party import chain.
    lessons = [
        name
        for name in module_names()
        if not is_under(name, ABOVE_THE_SCREENS) and not is_under(name, ("attn_course.grading",))
        and not name.endswith("__main__")
    ]  # fmt: skip
    code = (
        f"import importlib, sys\nfor name in {lessons!r}:\n    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ipywidgets', 'IPython')"
        " or m.startswith('attn_course.ui')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert "attn_course.kernels.sparse" in lessons
    assert result.stdout.strip() == "[]", result.stdout

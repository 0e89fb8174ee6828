"""The package's layout rules, read from its imports (nothing of the package is imported).

The layout is the architecture (README, "How the package is laid out"): lessons' maths and
kernels at the bottom, screens (``ui/``) and machinery (``bench/``, ``checks/``,
``grading/``, ``classroom/``, ``grade.py``) above them, every import pointing down. These
tests parse every module of ``attn_course`` with :mod:`ast` and fail when

* an import cycle appears between modules (lazy imports inside functions count: a cycle
  that only works because one side imports late is still a tangle);
* a lesson or kernel module imports ipywidgets or IPython, or any screen or machinery module;
* a module imports another module's private (``_name``) helper.

Each rule has a test that breaks it on a throwaway copy of a module, so none of them can
pass by reading nothing.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PACKAGE = "attn_course"
PACKAGE_DIR = Path(__file__).resolve().parent.parent / PACKAGE

# Folders (and top-level modules) above the lessons. Lessons and kernels import none of them.
SCREENS = ("ui",)
MACHINERY = ("bench", "checks", "grading", "classroom", "grade")
# The only module outside ui/ that may talk to IPython: the grading kernel's side of the
# wire protocol runs inside the student's Jupyter kernel and replies through display().
IPYTHON_ALLOWED = {"attn_course.grading.kernel"}
UI_LIBRARIES = ("ipywidgets", "IPython")


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    imports: dict[str, set[str]] = field(default_factory=dict)  # module -> names taken from it


def module_name(path: Path, package_dir: Path) -> str:
    parts = path.relative_to(package_dir.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.name if module.path.name == "__init__.py" else module.name.rpartition(".")[0]
    base = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def read_package(package_dir: Path) -> dict[str, Module]:
    """Every module of the package with what it imports (resolved to absolute names)."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        module = Module(module_name(path, package_dir), path, ast.parse(path.read_text()))
        modules[module.name] = module
    for module in modules.values():
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    module.imports.setdefault(alias.name, set())
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(module, node)
                for alias in node.names:
                    submodule = f"{target}.{alias.name}"
                    if submodule in modules:  # `from attn_course import cost` imports a module
                        module.imports.setdefault(submodule, set())
                    else:
                        module.imports.setdefault(target, set()).add(alias.name)
    return modules


def internal_edges(modules: Mapping[str, Module]) -> dict[str, set[str]]:
    return {
        name: {target for target in module.imports if target in modules and target != name}
        for name, module in modules.items()
    }


def cycles(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def layer_of(name: str) -> str:
    """``screen``, ``machinery`` or ``lesson`` (lesson modules, kernels and the package's base)."""
    first = name.split(".")[1] if "." in name else ""
    if first in SCREENS:
        return "screen"
    if first in MACHINERY:
        return "machinery"
    return "lesson"


def upward_imports(modules: Mapping[str, Module]) -> list[str]:
    problems = []
    for name, module in modules.items():
        if layer_of(name) != "lesson":
            continue
        for target in module.imports:
            library = target.split(".")[0]
            if library in UI_LIBRARIES and name not in IPYTHON_ALLOWED:
                problems.append(f"{name} imports {target} (only ui/ may)")
            elif target.startswith(PACKAGE + ".") and layer_of(target) != "lesson":
                problems.append(f"{name} imports {target} ({layer_of(target)})")
    return problems


def ui_library_imports_outside_ui(modules: Mapping[str, Module]) -> list[str]:
    return [
        f"{name} imports {target}"
        for name, module in modules.items()
        for target in module.imports
        if target.split(".")[0] in UI_LIBRARIES
        and layer_of(name) != "screen"
        and name not in IPYTHON_ALLOWED
    ]


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _owner_package(module: str) -> str:
    """The package a private module belongs to: ``a.b._c`` → ``a.b``."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if _private(part):
            return ".".join(parts[:i])
    return module


def private_imports(modules: Mapping[str, Module]) -> list[str]:
    """``from other import _helper`` and ``other._helper`` between modules of the package.

    A private *module* (``checks/_forbid.py``) may be used inside its own package; that is
    what the underscore says.
    """
    problems = []
    for name, module in modules.items():
        for target, names in module.imports.items():
            if not target.startswith(PACKAGE):
                continue
            owner = _owner_package(target)
            if owner != target and name != owner and not name.startswith(owner + "."):
                problems.append(f"{name} imports private module {target}")
            problems += [f"{name} imports {target}.{n}" for n in sorted(names) if _private(n)]
        problems += list(_private_attribute_uses(module, modules))
    return problems


def _private_attribute_uses(module: Module, modules: Mapping[str, Module]) -> Iterator[str]:
    """``cost._count(...)`` after ``from attn_course import cost``."""
    aliases = {}
    for node in ast.walk(module.tree):
        if isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            for alias in node.names:
                if f"{target}.{alias.name}" in modules:
                    aliases[alias.asname or alias.name] = f"{target}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules and alias.asname:
                    aliases[alias.asname] = alias.name
    for node in ast.walk(module.tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and _private(node.attr)
            and aliases[node.value.id] != module.name
        ):
            yield f"{module.name} uses {aliases[node.value.id]}.{node.attr}"


@pytest.fixture(scope="module")
def modules() -> dict[str, Module]:
    return read_package(PACKAGE_DIR)


def test_the_package_is_read(modules: dict[str, Module]) -> None:
    # The rules below hold vacuously over an empty or unparsed package.
    assert len(modules) > 40
    assert sum(len(m.imports) for m in modules.values()) > 200


def test_no_import_cycles(modules: dict[str, Module]) -> None:
    assert cycles(internal_edges(modules)) == []


def test_lessons_and_kernels_import_no_screens_and_no_machinery(modules: dict[str, Module]) -> None:
    assert upward_imports(modules) == []


def test_only_ui_imports_ipywidgets_and_ipython(modules: dict[str, Module]) -> None:
    assert ui_library_imports_outside_ui(modules) == []


def test_no_module_imports_another_modules_private_helper(modules: dict[str, Module]) -> None:
    assert private_imports(modules) == []


def test_importing_the_lessons_kernels_checks_and_benchmarks_loads_no_widget_library(
    modules: dict[str, Module],
) -> None:
    # The same rule seen from a fresh interpreter: it also catches a chain through a third-party
    # library. The grader (grading/, classroom/) may load IPython; the screens are ui/ itself.
    names = [
        name for name in modules
        if layer_of(name) != "screen" and name.split(".")[1:2] not in (["grading"], ["classroom"])
        and not name.endswith("__main__")
    ]  # fmt: skip
    code = (
        f"import importlib, sys\nfor name in {names!r}:\n    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ipywidgets', 'IPython')"
        " or m.startswith('attn_course.ui')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert {"attn_course.kernels.sparse", "attn_course.checks.flash", "attn_course.bench"} <= {
        *names
    }
    assert result.stdout.strip() == "[]", result.stdout


# -- each rule fails when it is broken ------------------------------------------------------


def _write(root: Path, relative: str, text: str) -> None:
    path = root / PACKAGE / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """A tiny package shaped like this one, with one breach of every rule."""
    _write(tmp_path, "__init__.py", "")
    _write(tmp_path, "cost.py", "from attn_course import scores\ndef _count(): ...\n")
    _write(tmp_path, "scores.py", "import ipywidgets\nfrom attn_course.cost import flops\n")
    _write(tmp_path, "linear.py", "from attn_course import cost\nx = cost._count()\n")
    _write(tmp_path, "tiling.py", "from attn_course.ui.tiling import Explorer\n")
    _write(tmp_path, "ui/__init__.py", "")
    _write(tmp_path, "ui/tiling.py", "import ipywidgets\nfrom attn_course.cost import _count\n")
    _write(tmp_path, "kernels/__init__.py", "")
    _write(tmp_path, "kernels/flash.py", "from attn_course.bench.harness import OK\n")
    _write(tmp_path, "bench/__init__.py", "")
    _write(tmp_path, "bench/harness.py", "OK = 'ok'\n")
    return tmp_path / PACKAGE


def test_the_rules_catch_each_breach(broken: Path) -> None:
    modules = read_package(broken)
    assert cycles(internal_edges(modules)) == [["attn_course.cost", "attn_course.scores"]]
    assert sorted(upward_imports(modules)) == [
        "attn_course.kernels.flash imports attn_course.bench.harness (machinery)",
        "attn_course.scores imports ipywidgets (only ui/ may)",
        "attn_course.tiling imports attn_course.ui.tiling (screen)",
    ]
    assert ui_library_imports_outside_ui(modules) == ["attn_course.scores imports ipywidgets"]
    assert sorted(private_imports(modules)) == [
        "attn_course.linear uses attn_course.cost._count",
        "attn_course.ui.tiling imports attn_course.cost._count",
    ]

"""pyproject.toml is the source of truth for dependencies; environment.yml must agree with it.

Both files list the same requirements with the same version specifiers and
markers; only the spelling differs (conda lists most packages at top level,
torch and triton come from PyPI through the pip section). A package added to
one file and not the other fails here.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
# Conda-only entries that pyproject expresses differently (the interpreter itself,
# pip, and the editable install of this package).
CONDA_ONLY = {"python", "pip"}


def _key(req: Requirement) -> tuple[str, str, str]:
    return canonicalize_name(req.name), str(req.specifier), str(req.marker or "")


def pyproject_requirements(root: Path = ROOT) -> set[tuple[str, str, str]]:
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + project["optional-dependencies"]["dev"]
    return {_key(Requirement(line)) for line in lines}


def environment_requirements(root: Path = ROOT) -> set[tuple[str, str, str]]:
    env = yaml.safe_load((root / "environment.yml").read_text())
    found = set()
    for entry in env["dependencies"]:
        if isinstance(entry, dict):
            for line in entry["pip"]:
                if not line.startswith("-e"):
                    found.add(_key(Requirement(line)))
        elif Requirement(entry).name not in CONDA_ONLY:
            found.add(_key(Requirement(entry)))
    return found


def assert_in_agreement(root: Path = ROOT) -> None:
    in_pyproject, in_env = pyproject_requirements(root), environment_requirements(root)
    assert in_pyproject - in_env == set(), "in pyproject.toml but not environment.yml"
    assert in_env - in_pyproject == set(), "in environment.yml but not pyproject.toml"


def test_environment_yml_matches_pyproject():
    assert_in_agreement()


def test_environment_yml_installs_the_package_itself():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(e["pip"] for e in env["dependencies"] if isinstance(e, dict))
    assert "-e ." in pip_section


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        ("  - plotly>=5.24\n", "", "not environment.yml"),  # dropped from the conda file
        ("  - tqdm>=4.66\n", "  - tqdm>=4.0\n", "not environment.yml"),  # a looser pin
        ("  - pip:\n", "  - pip:\n      - rich\n", "not pyproject.toml"),  # an extra package
    ],
)
def test_drift_is_detected(tmp_path, old, new, complaint):
    """The comparison above can fail: each kind of drift is caught."""
    env_text = (ROOT / "environment.yml").read_text()
    assert old in env_text
    (tmp_path / "environment.yml").write_text(env_text.replace(old, new))
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    with pytest.raises(AssertionError, match=complaint):
        assert_in_agreement(tmp_path)


def test_ci_pins_torch_cpu_build():
    """CI installs through constraints/cpu.txt, which pins the CPU wheel of torch."""
    pins = {
        canonicalize_name(Requirement(line).name): str(Requirement(line).specifier)
        for line in (ROOT / "constraints" / "cpu.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert pins["torch"] == "==2.13.0"
    assert "TORCH_BUILD=cpu" in (ROOT / ".ci" / "run").read_text()
    assert "-c constraints/cpu.txt" in (ROOT / "Makefile").read_text()

"""Every third-party package the code imports is declared in pyproject.toml, not just present
because something else pulled it in."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imported_packages() -> set[str]:
    found = set()
    for path in (ROOT / "src" / "clicktune").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names} - {"clicktune"}


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_runtime_import_is_a_declared_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_normalized(re.split(r"[\[<>=!~; ]", d)[0]) for d in project["dependencies"]}
    providers = packages_distributions()
    undeclared = sorted(
        package
        for package in _imported_packages()
        if not declared.intersection(_normalized(d) for d in providers.get(package, [package]))
    )
    assert undeclared == []


def test_extras_are_pinned_as_the_constraints_say() -> None:
    """`pip install clicktune[s3]` gets the versions the constraints file was checked with."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    pins = {
        _normalized(line.split("==")[0]): line.split("==")[1]
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    assert "s3" in extras
    for requirement in (r for extra in extras.values() for r in extra):
        name, _, version = requirement.partition("==")
        assert pins.get(_normalized(name)) == version, requirement

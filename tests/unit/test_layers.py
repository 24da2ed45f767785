"""Dependencies point one way: no module imports from a layer above it.

Every `import` in `src/clicktune` counts, those inside functions and under `TYPE_CHECKING` too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "clicktune"

FOUNDATION = {
    "errors",
    "device",
    "settings",
    "logs",
    "ids",
    "timeutil",
    "status",
    "api_paths",
    "jsontext",
    "heap",
}
"""The bottom: configuration, logging, ids, time, the shared exceptions, device policy, the task
statuses, the API's URL paths (shared by the server and its client), fast JSON writing, the
start-up heap."""

ALLOWED: dict[str, set[str]] = {
    **{module: FOUNDATION for module in FOUNDATION},
    "client": FOUNDATION,
    "store": FOUNDATION,
    "evaluation": FOUNDATION,
    "tracking": FOUNDATION,
    "ingest": FOUNDATION | {"store"},
    "training": FOUNDATION | {"evaluation"},
    "methods": FOUNDATION | {"training", "evaluation", "tracking"},
    "api": FOUNDATION | {"facade", "store", "ingest", "methods", "tracking", "evaluation"},
    "worker": FOUNDATION | {"store", "methods", "tracking"},
    "simulate": FOUNDATION | {"client", "evaluation", "methods"},
    "facade": FOUNDATION | {"methods", "training"},
    "cli": FOUNDATION | {"api", "ingest", "worker", "simulate", "store", "tracking"},
    "__main__": {"cli"},
}
"""What each part may import, besides itself. `facade` is the package root (`clicktune`), the
public surface that re-exports what plugins use."""


def component(module: str) -> str:
    parts = module.split(".")
    if parts == ["clicktune"] or parts[1:] == ["__init__"]:
        return "facade"
    return parts[1]


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        if "migrations" in relative.parts:
            continue
        name = ".".join(relative.parts).removesuffix(".__init__")
        found[name] = path
    return found


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name == "clicktune" or name.startswith("clicktune.")}


def test_every_part_is_placed() -> None:
    assert {component(name) for name in modules()} <= set(ALLOWED)


@pytest.mark.parametrize("module", sorted(modules()))
def test_no_upward_import(module: str) -> None:
    own = component(module)
    upward = sorted(
        imported
        for imported in imports(modules()[module])
        if component(imported) != own and component(imported) not in ALLOWED[own]
    )
    assert upward == [], f"{module} ({own}) imports from a layer above it"

"""Dependencies point one way: no module imports from a layer above it, and no module imports
itself back through others (no import circle).

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
    "tuning": FOUNDATION | {"training", "evaluation", "tracking"},
    "methods": FOUNDATION | {"tuning", "training", "evaluation"},
    "api": FOUNDATION | {"facade", "store", "ingest", "methods", "tracking", "evaluation"},
    "worker": FOUNDATION | {"store", "tuning", "methods", "tracking"},
    "simulate": FOUNDATION | {"client", "evaluation", "tuning", "methods"},
    "facade": FOUNDATION | {"tuning", "methods", "training"},
    "supervisor": FOUNDATION | {"tracking"},
    "cli": FOUNDATION | {"api", "ingest", "worker", "supervisor", "simulate", "store", "tracking"},
    "__main__": {"cli"},
}
"""What each part may import, besides itself. `facade` is the package root (`clicktune`), the
public surface that re-exports what plugins use. `tuning` is the fine-tuning framework (the plugin
interface and the standard iteration); `methods` implements it (the embedding methods' hooks,
plugin discovery)."""


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
    """The `clicktune` modules or packages `path` names in its import statements."""
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


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The modules `path` imports: `from clicktune.x import y` is module `clicktune.x.y` when
    that is a module, else `clicktune.x` (a package counts as its `__init__`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in known else node.module)
    return found & known


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted; a module
    importing itself counts too."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph[module]):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1 or module in graph[module]:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(cycles)


def test_import_cycles_are_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}, "f": set()}
    assert import_cycles(graph) == [["a", "b", "c"], ["e"]]


def test_no_import_cycle() -> None:
    found = modules()
    known = set(found)
    graph = {module: imported_modules(path, known) for module, path in found.items()}
    cycles = import_cycles(graph)
    assert cycles == [], (
        "modules that import each other, directly or through others:\n"
        + "\n".join(" ↔ ".join(cycle) for cycle in cycles)
    )

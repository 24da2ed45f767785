"""Discovery of fine-tuning methods: the `clicktune.methods` entry points and the plugins folder.

A plugin that fails to load (import error, bad class, duplicate name) is logged, kept in
`MethodRegistry.errors` for `/health`, and skipped: a broken plugin never stops the service.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from clicktune.logs import get_logger
from clicktune.settings import Settings
from clicktune.tuning.plugin import FineTuningMethod, MethodMeta

ENTRY_POINT_GROUP = "clicktune.methods"
PLUGIN_MODULE_PREFIX = "clicktune_plugin_"

log = get_logger(__name__)


@dataclass(frozen=True)
class PluginError:
    """Why one plugin source (an entry point or a file) contributed nothing, or less than it had."""

    source: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"source": self.source, "message": self.message}


@dataclass
class MethodRegistry:
    """The methods this process can run, by `meta.name`, and the plugins that failed."""

    methods: dict[str, FineTuningMethod] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    errors: list[PluginError] = field(default_factory=list)

    def get(self, name: str) -> FineTuningMethod | None:
        return self.methods.get(name)

    def names(self) -> list[str]:
        return sorted(self.methods)

    def add(self, cls: Any, source: str) -> None:
        """Instantiate and register a method class; report it instead when it is unusable."""
        if not (inspect.isclass(cls) and issubclass(cls, FineTuningMethod)):
            self.report(source, f"{cls!r} is not a FineTuningMethod subclass")
            return
        meta = getattr(cls, "meta", None)
        if not isinstance(meta, MethodMeta):
            self.report(source, f"{cls.__qualname__} has no `meta` (a MethodMeta)")
            return
        if inspect.isabstract(cls):
            missing = ", ".join(sorted(cls.__abstractmethods__))
            self.report(source, f"{cls.__qualname__} does not implement {missing}")
            return
        if meta.name in self.methods:
            self.report(
                source,
                f"duplicate method name {meta.name!r} (already loaded from "
                f"{self.sources[meta.name]}); skipped",
            )
            return
        try:
            method = cls()
        except Exception as exc:
            self.report(source, f"{cls.__qualname__}() failed: {type(exc).__name__}: {exc}")
            return
        try:
            method.describe()
        except Exception as exc:
            self.report(
                source, f"{cls.__qualname__}.describe() failed: {type(exc).__name__}: {exc}"
            )
            return
        self.methods[meta.name] = method
        self.sources[meta.name] = source
        log.info("method_loaded", method=meta.name, version=meta.version, source=source)

    def report(self, source: str, message: str) -> None:
        log.error("plugin_failed", source=source, error=message)
        self.errors.append(PluginError(source, message))


def load_registry(settings: Settings) -> MethodRegistry:
    """Entry points first, then the plugins folder's files in name order; first name wins."""
    registry = MethodRegistry()
    for entry_point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
        source = f"entry point {entry_point.name} = {entry_point.value}"
        try:
            cls = entry_point.load()
        except (Exception, SystemExit) as exc:
            registry.report(source, f"{type(exc).__name__}: {exc}")
            continue
        registry.add(cls, source)
    if settings.plugins_path is not None:
        _load_folder(registry, settings.plugins_path)
    return registry


def _load_folder(registry: MethodRegistry, folder: Path) -> None:
    folder = folder.expanduser().resolve()
    if not folder.is_dir():
        registry.report(str(folder), "CLICKTUNE_PLUGINS_PATH is not a folder")
        return
    for path in sorted(folder.glob("*.py")):
        try:
            module = _import_file(path)
        except (Exception, SystemExit) as exc:
            registry.report(str(path), f"{type(exc).__name__}: {exc}")
            continue
        classes = [
            cls
            for _name, cls in inspect.getmembers(module, inspect.isclass)
            if cls.__module__ == module.__name__
            and issubclass(cls, FineTuningMethod)
            and "meta" in vars(cls)
        ]
        for cls in classes:
            registry.add(cls, f"{path}:{cls.__qualname__}")


def _import_file(path: Path) -> ModuleType:
    """Import a plugin file as module `clicktune_plugin_<stem>`, registered in `sys.modules` so
    dataclasses and pickling inside it work."""
    name = f"{PLUGIN_MODULE_PREFIX}{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module

"""Method discovery: entry points and the plugins folder; broken plugins reported and skipped."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from clicktune.methods.registry import load_registry
from clicktune.settings import Settings

GOOD = '''
from clicktune import FineTuningMethod, MethodMeta, TaskResult


class Helper:
    """Not a method: ignored."""


class Good(FineTuningMethod):
    meta = MethodMeta(name="{name}", version="2.0", description="a plugin")

    def describe(self):
        return {{**super().describe(), "hyperparameters": {{"alpha": {{"type": "float"}}}}}}

    def run(self, context):
        return TaskResult(promoted=False)
'''


def _write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


def _settings(tmp_path: Path, plugins: Path | None) -> Settings:
    return Settings(data_dir=tmp_path / "data", plugins_path=plugins)


def test_entry_point_methods_load(tmp_path: Path) -> None:
    registry = load_registry(_settings(tmp_path, None))
    assert "Default Fine Tuning Method" in registry.names()
    assert registry.errors == []


def test_plugins_folder_loads_methods_and_reports_broken_files(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    _write(plugins, "a_good.py", GOOD.format(name="Plugin A"))
    broken = _write(plugins, "b_broken.py", "import no_such_module_anywhere\n")
    exits = _write(plugins, "c_exits.py", "import sys\nsys.exit(3)\n")
    duplicate = _write(plugins, "d_duplicate.py", GOOD.format(name="Plugin A"))
    _write(
        plugins,
        "e_bad_init.py",
        """
        from clicktune import FineTuningMethod, MethodMeta, TaskResult

        class NeedsArgs(FineTuningMethod):
            meta = MethodMeta(name="Needs Args", version="1", description="")

            def __init__(self, required):
                self.required = required

            def run(self, context):
                return TaskResult()
        """,
    )
    _write(
        plugins,
        "f_bad_describe.py",
        """
        from clicktune import FineTuningMethod, MethodMeta, TaskResult

        class BadDescribe(FineTuningMethod):
            meta = MethodMeta(name="Bad Describe", version="1", description="")

            def describe(self):
                raise KeyError("oops")

            def run(self, context):
                return TaskResult()
        """,
    )
    _write(plugins, "notes.txt", "not python")
    registry = load_registry(_settings(tmp_path, plugins))
    method = registry.get("Plugin A")
    assert method is not None
    assert method.describe()["hyperparameters"] == {"alpha": {"type": "float"}}
    assert "Needs Args" not in registry.names()
    errors = {Path(e.source.split(":")[0]).name: e.message for e in registry.errors}
    assert "ModuleNotFoundError" in errors[broken.name]
    assert "SystemExit" in errors[exits.name]
    assert "duplicate method name 'Plugin A'" in errors[duplicate.name]
    assert "NeedsArgs()" in errors["e_bad_init.py"]
    assert "BadDescribe.describe() failed: KeyError" in errors["f_bad_describe.py"]
    assert len(registry.errors) == 5
    assert registry.names() == ["Default Fine Tuning Method", "Plugin A"]


def test_relative_plugins_path_and_missing_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "rel").mkdir()
    _write(tmp_path / "rel", "plugin.py", GOOD.format(name="Relative"))
    monkeypatch.chdir(tmp_path)
    assert "Relative" in load_registry(_settings(tmp_path, Path("rel"))).names()
    missing = load_registry(_settings(tmp_path, Path("nowhere")))
    assert [e.message for e in missing.errors] == ["CLICKTUNE_PLUGINS_PATH is not a folder"]
    assert "Default Fine Tuning Method" in missing.names()


def test_plugin_cannot_shadow_the_default_method(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    _write(plugins, "shadow.py", GOOD.format(name="Default Fine Tuning Method"))
    registry = load_registry(_settings(tmp_path, plugins))
    assert type(registry.get("Default Fine Tuning Method")).__name__ == "DefaultFineTuningMethod"
    assert "duplicate method name" in registry.errors[0].message


def test_a_method_without_run_is_reported(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    _write(
        plugins,
        "no_run.py",
        """
        from clicktune import FineTuningMethod, MethodMeta

        class NoRun(FineTuningMethod):
            meta = MethodMeta(name="No Run", version="1", description="")
        """,
    )
    registry = load_registry(_settings(tmp_path, plugins))
    assert "No Run" not in registry.names()
    assert [e.message for e in registry.errors] == ["NoRun does not implement run"]

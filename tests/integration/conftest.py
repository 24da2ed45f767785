"""Fixtures of the tests that run the iteration: the tiny test methods and a fresh MLflow store."""

from __future__ import annotations

import pytest

from clicktune.methods.registry import MethodRegistry, load_registry
from clicktune.settings import Settings
from tests.pipeline_support import pipeline_settings, tiny_model_path


@pytest.fixture
def psettings(settings: Settings) -> Settings:
    tiny_model_path()
    return pipeline_settings(settings)


@pytest.fixture
def registry(psettings: Settings) -> MethodRegistry:
    registry = load_registry(psettings)
    assert not registry.errors, registry.errors
    return registry

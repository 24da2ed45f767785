"""Fixtures of the API tests that serve models: the tiny test methods, a fresh MLflow store, and
aliases re-read on every request (a promotion shows at once)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from clicktune.api.app import create_app
from clicktune.settings import Settings
from tests.pipeline_support import pipeline_settings, tiny_model_path


@pytest.fixture
def psettings(settings: Settings) -> Settings:
    tiny_model_path()
    return pipeline_settings(settings).model_copy(update={"embeddings_champion_ttl_s": 0.0})


@pytest.fixture
def api(psettings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(psettings)) as client:
        yield client

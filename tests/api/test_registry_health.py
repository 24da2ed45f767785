"""`/health` shows the loaded methods, broken plugins and the workers seen."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from clicktune.settings import Settings
from clicktune.store.workers import record_worker
from clicktune.timeutil import now
from tests.store_support import write


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "broken.py").write_text("raise RuntimeError('plugin bug')\n")
    return settings.model_copy(update={"plugins_path": plugins})


def test_health_reports_broken_plugins_and_workers(client: TestClient) -> None:
    health = client.get("/api/v1/health").json()
    assert health["status"] == "degraded"
    methods = health["components"]["methods"]
    assert methods["status"] == "error"
    assert "Default Fine Tuning Method" in methods["loaded"]
    [error] = methods["errors"]
    assert error["source"].endswith("broken.py")
    assert "RuntimeError: plugin bug" in error["message"]
    assert health["components"]["workers"] == {"status": "warning", "online": 0, "seen": []}

    engine = client.app.state.engine  # type: ignore[attr-defined]
    write(engine, record_worker, "host-1-abc", hostname="host", pid=1, started_at=now())
    workers = client.get("/api/v1/health").json()["components"]["workers"]
    assert workers["status"] == "ok" and workers["online"] == 1
    assert workers["seen"][0]["worker_id"] == "host-1-abc"
    assert workers["seen"][0]["seen_at"].endswith("+00:00")
    # The service goes on: other methods still work.
    names = [m["name"] for m in client.get("/api/v1/fine-tuning/methods").json()]
    assert "Default Fine Tuning Method" in names


def test_health_reports_the_tracking_store(client: TestClient) -> None:
    mlflow = client.get("/api/v1/health").json()["components"]["mlflow"]
    assert mlflow["status"] == "ok"
    assert mlflow["tracking_uri"].startswith("sqlite:")

    app = client.app  # type: ignore[attr-defined]
    app.state.settings = app.state.settings.model_copy(
        update={"mlflow_tracking_uri": "http://127.0.0.1:9/"}
    )
    health = client.get("/api/v1/health").json()
    assert health["components"]["mlflow"]["status"] == "error"
    assert health["status"] == "degraded"

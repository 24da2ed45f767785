"""The plugin guide's examples (docs/plugins.md) load, validate and run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from clicktune.settings import Settings
from tests.task_support import in_status, register_sessions, wait_for, workers

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
EXAMPLE = re.compile(r"```python\n# plugins/(\w+\.py)\n(.*?)```", re.DOTALL)


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    examples = EXAMPLE.findall(GUIDE.read_text())
    assert [name for name, _ in examples] == ["catalog_titles.py", "click_stats.py"]
    for name, source in examples:
        # A plugin needs only the public surface: nothing from clicktune's modules.
        assert "clicktune." not in source, name
        (plugins / name).write_text(source)
    return settings.model_copy(update={"plugins_path": plugins})


def test_guide_examples_load_validate_and_run(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    health = client.get("/api/v1/health").json()
    assert health["components"]["methods"]["errors"] == []
    methods = {m["name"]: m for m in client.get("/api/v1/fine-tuning/methods").json()}
    assert methods["Catalog Titles"]["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert methods["Click Statistics"]["hyperparameters"]["min_sessions"]["default"] == 1

    create = "/api/v1/fine-tuning/task"
    bad = client.post(
        create,
        json={"fine_tuning_method": "Click Statistics", "hyperparameters": {"min_sessions": 0}},
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["param"] == "hyperparameters.min_sessions"

    register_sessions(client, 4)
    counted = client.post(
        create,
        json={"fine_tuning_method": "Click Statistics", "hyperparameters": {"min_sessions": 2}},
    ).json()
    register_sessions(client, 4)
    too_few = client.post(
        create,
        json={"fine_tuning_method": "Click Statistics", "hyperparameters": {"min_sessions": 100}},
    ).json()
    with workers(settings, tmp_path):
        done = wait_for(lambda: in_status(client, counted["id"], "done", "error"), what="done")
        failed = wait_for(lambda: in_status(client, too_few["id"], "done", "error"), what="error")
    # Four sessions showing two results each, one clicked in each.
    assert done["metrics"] == {"main_metric": "ctr", "best": 0.5, "sessions": 4}
    assert done["promoted"] is False
    assert failed["error"] == {
        "code": "batch_too_small",
        "message": "The batch has 4 sessions; 100 needed.",
    }

"""`GET /metrics`: Prometheus text a scraper reads, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from clicktune.api.app import create_app
from clicktune.settings import Settings
from tests.api.test_clickstream import API, session_body
from tests.pipeline_support import TINY_METHOD

pytestmark = pytest.mark.usefixtures("one_thread")


def scrape(
    client: TestClient, **headers: str
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_requests_stored_clickstream_embeddings_and_tasks_are_scraped(api: TestClient) -> None:
    events = [{"event_id": "e-1", "object_id": "o-1"}, {"event_id": "e-2", "object_id": "o-2"}]
    assert api.post(f"{API}/session", json=session_body("s-1", events=events)).status_code == 201
    assert api.post(f"{API}/session", json=session_body("s-1", events=events)).status_code == 200
    api.post(f"{API}/sessions", json={"sessions": [session_body("s-2"), session_body("s-3")]})
    api.post(f"{API}/session/events", json={"session_id": "s-2", "events": [events[0]]})
    embedded = api.post("/api/v1/embeddings", json={"input": ["a", "b"], "model": TINY_METHOD})
    version = embedded.json()["model_version"]
    task = api.post("/api/v1/fine-tuning/task", json={"fine_tuning_method": TINY_METHOD})
    assert task.status_code == 201, task.text
    assert api.get("/api/v1/nowhere").status_code == 404

    metrics = scrape(api)
    route = "/api/v1/clickstream/session"
    assert (
        metrics[
            (
                "clicktune_http_requests_total",
                (("method", "POST"), ("route", route), ("status", "201")),
            )
        ]
        == 1
    )
    assert (
        metrics[
            (
                "clicktune_http_requests_total",
                (("method", "POST"), ("route", route), ("status", "200")),
            )
        ]
        == 1
    )
    assert (
        metrics[
            (
                "clicktune_http_requests_total",
                (("method", "GET"), ("route", "unrouted"), ("status", "404")),
            )
        ]
        == 1
    )
    assert (
        metrics[
            (
                "clicktune_http_request_duration_seconds_count",
                (("method", "POST"), ("route", route)),
            )
        ]
        == 2
    )
    assert metrics[("clicktune_sessions_stored_total", ())] == 3
    assert metrics[("clicktune_events_stored_total", ())] == 3
    assert metrics[("clicktune_embeddings_total", (("model_version", version),))] == 2
    assert metrics[("clicktune_tasks", (("status", "pending"),))] == 1
    assert metrics[("clicktune_tasks", (("status", "done"),))] == 0
    assert metrics[("clicktune_queue_depth", ())] == 1
    assert metrics[("clicktune_task_run_seconds_count", (("status", "done"),))] == 0


def test_metrics_need_an_admin_key_when_keys_are_set(settings: Settings) -> None:
    keys = SecretStr("admin:adm-metrics-0001-x, ingest:ing-metrics-0001-x")
    with TestClient(create_app(settings.model_copy(update={"api_keys": keys}))) as client:
        assert client.get("/metrics").status_code == 401
        refused = client.get("/metrics", headers={"Authorization": "Bearer ing-metrics-0001-x"})
        assert refused.status_code == 403
        metrics = scrape(client, Authorization="Bearer adm-metrics-0001-x")
        unrouted = (("method", "GET"), ("route", "unrouted"))
        assert metrics[("clicktune_http_requests_total", (*unrouted, ("status", "401")))] == 1
        assert metrics[("clicktune_http_requests_total", (*unrouted, ("status", "403")))] == 1

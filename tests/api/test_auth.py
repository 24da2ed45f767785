"""API keys (docs/api.md, Authentication): who may call what, refused in the contract's format
before anything is read or changed, and no key or password in any answer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError

from clicktune.api.app import create_app
from clicktune.api.auth import INGEST_ROUTES, OPEN_ROUTES
from clicktune.client import ClicktuneClient, ErrorResponse
from clicktune.settings import Settings

ADMIN_KEY = "adm-7f3c9a1e5b2d4c"
INGEST_KEY = "ing-2d8e4b6f0a1c3e"
SESSION = {
    "session_id": "s-1",
    "search_query": "red shoes",
    "search_results": [{"object_id": "o-1"}, {"object_id": "o-2"}],
}


@pytest.fixture
def keyed(settings: Settings) -> Iterator[TestClient]:
    keys = SecretStr(f"admin:{ADMIN_KEY}, ingest:{INGEST_KEY}")
    with TestClient(create_app(settings.model_copy(update={"api_keys": keys}))) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_refused(response: Any, status: int, code: str) -> None:
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_without_a_known_key_nothing_is_read_or_changed(keyed: TestClient) -> None:
    assert keyed.get("/api/v1/ping").json() == {"status": "ok"}
    assert_refused(keyed.get("/api/v1/health"), 401, "unauthorized")
    assert_refused(keyed.post("/api/v1/clickstream/session", json=SESSION), 401, "unauthorized")
    garbage = keyed.post(
        "/api/v1/clickstream/session", content=b"{not json", headers=bearer("wrong")
    )
    assert_refused(garbage, 401, "unauthorized")  # before the body is even parsed
    basic = keyed.get("/api/v1/health", headers={"Authorization": f"Basic {ADMIN_KEY}"})
    assert_refused(basic, 401, "unauthorized")
    missing = keyed.get("/api/v1/clickstream/session/s-1", headers=bearer(ADMIN_KEY))
    assert missing.status_code == 404  # the refused session was not stored


def test_an_ingest_key_writes_clickstream_and_nothing_else(keyed: TestClient) -> None:
    ingest = bearer(INGEST_KEY)
    assert (
        keyed.post("/api/v1/clickstream/session", json=SESSION, headers=ingest).status_code == 201
    )
    events = {"session_id": "s-1", "events": [{"event_id": "e-1", "object_id": "o-2"}]}
    assert keyed.post("/api/v1/clickstream/session/events", json=events, headers=ingest).is_success
    batch = {"sessions": [{**SESSION, "session_id": "s-2"}]}
    stored = keyed.post("/api/v1/clickstream/sessions", json=batch, headers=ingest).json()
    assert stored["sessions"] == 1
    for method, path in [
        ("GET", "/api/v1/clickstream/session/s-1"),
        ("GET", "/api/v1/clickstream/batches"),
        ("POST", "/api/v1/clickstream/internal/batch/release"),
        ("POST", "/api/v1/fine-tuning/task"),
        ("PUT", "/api/v1/judgments/set-1"),
        ("POST", "/api/v1/items"),
        ("GET", "/api/v1/health"),
    ]:
        assert_refused(keyed.request(method, path, headers=ingest, json={}), 403, "forbidden")
    batches = keyed.get("/api/v1/clickstream/batches", headers=bearer(ADMIN_KEY)).json()
    assert [b["status"] for b in batches["data"]] == ["collecting"]  # the release was refused
    assert keyed.get("/api/v1/health", headers=bearer(ADMIN_KEY)).status_code == 200


def test_every_route_is_admin_but_the_declared_ingest_and_open_ones(settings: Settings) -> None:
    openapi = create_app(settings).openapi()
    routes = {(method.upper(), path) for path, ops in openapi["paths"].items() for method in ops}
    assert routes >= INGEST_ROUTES and routes >= OPEN_ROUTES
    scheme = openapi["components"]["securitySchemes"]
    assert scheme["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": scheme["HTTPBearer"]["description"],
    }


def test_the_python_client_sends_its_key(keyed: TestClient) -> None:
    with pytest.raises(ErrorResponse) as refused:
        ClicktuneClient(http=keyed).list_batches()
    assert refused.value.code == "unauthorized"
    assert ClicktuneClient(http=keyed, api_key=ADMIN_KEY).list_batches()["data"] == []


def test_without_keys_the_api_is_open(client: TestClient) -> None:
    assert client.get("/api/v1/clickstream/batches").status_code == 200


def test_health_shows_no_password(settings: Settings) -> None:
    password = "hunter2-Zq81"
    broken = settings.model_copy(
        update={"mlflow_tracking_uri": f"postgresql://clicktune:{password}@127.0.0.1:9/mlflow"}
    )
    with TestClient(create_app(broken)) as client:
        response = client.get("/api/v1/health")
    mlflow = response.json()["components"]["mlflow"]
    assert mlflow["status"] == "error"
    assert mlflow["tracking_uri"] == "postgresql://clicktune:***@127.0.0.1:9/mlflow"
    assert password not in response.text


def test_malformed_keys_are_refused_without_showing_them() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(api_keys=SecretStr(f"admin:{ADMIN_KEY},owner:{INGEST_KEY}"))
    assert "entry 2" in str(refused.value)
    assert ADMIN_KEY not in str(refused.value) and INGEST_KEY not in str(refused.value)


def test_failed_key_attempts_are_throttled_per_address(
    keyed: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clicktune.api import auth

    clock = [1000.0]
    monkeypatch.setattr(auth.time, "monotonic", lambda: clock[0])
    for attempt in range(auth.MAX_FAILURES):
        guess = keyed.get("/api/v1/clickstream/batches", headers=bearer(f"guess-{attempt}"))
        assert_refused(guess, 401, "unauthorized")
    for headers in (bearer("one-more-guess"), bearer(ADMIN_KEY)):  # a right guess is not told
        throttled = keyed.get("/api/v1/clickstream/batches", headers=headers)
        assert throttled.status_code == 429
        assert throttled.json()["error"]["code"] == "too_many_failed_attempts"
        assert 0 < int(throttled.headers["Retry-After"]) <= auth.FAILURE_WINDOW_S + 1
    assert keyed.get("/api/v1/ping").status_code == 200  # open routes stay open
    clock[0] += auth.FAILURE_WINDOW_S + 1
    assert keyed.get("/api/v1/clickstream/batches", headers=bearer(ADMIN_KEY)).status_code == 200


def test_the_api_description_needs_a_key_when_keys_are_set(keyed: TestClient) -> None:
    for path in ("/openapi.json", "/docs", "/redoc"):
        assert_refused(keyed.get(path), 401, "unauthorized")
        for key in (ADMIN_KEY, INGEST_KEY):
            assert keyed.get(path, headers=bearer(key)).status_code == 200
    schema = keyed.get("/openapi.json", headers=bearer(INGEST_KEY)).json()
    assert "/api/v1/clickstream/session" in schema["paths"]


def test_the_api_description_is_open_without_keys(client: TestClient) -> None:
    assert client.get("/openapi.json").status_code == 200

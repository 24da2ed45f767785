"""`POST /clickstream/sessions`: many searches in one request, each stored on its own, on SQLite
and PostgreSQL; and the per-endpoint limits that bound what a request can make the server hold."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

from clicktune.api.app import create_app
from clicktune.settings import Settings
from tests.api.test_clickstream import API, assert_error, session_body


def with_events(session_id: str, clicks: int = 1) -> dict[str, Any]:
    events = [
        {"event_id": f"{session_id}-e{n}", "object_id": f"o-{n}", "event_type": "click"}
        for n in range(clicks)
    ]
    return session_body(session_id, events=events)


def stored_ids(client: TestClient) -> set[str]:
    batch_id = client.get(f"{API}/batches").json()["data"][0]["batch_id"]
    client.post(f"{API}/internal/batch/release", json={"release_id": f"check-{time.time()}"})
    page = client.get(
        f"{API}/internal/batch/sessions", params={"batch_id": batch_id, "limit": 1000}
    ).json()
    return {session["session_id"] for session in page["sessions"]}


def test_a_batch_stores_each_session_with_its_events(client: TestClient) -> None:
    sessions = [with_events(f"s-{n}", clicks=2) for n in range(5)]
    answer = client.post(f"{API}/sessions", json={"sessions": sessions})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"sessions": 5, "events": 10, "duplicates": 0, "errors": []}
    stored = client.get(f"{API}/session/s-3").json()
    assert [event["event_id"] for event in stored["events"]] == ["s-3-e0", "s-3-e1"]
    assert stored["search_query"] == "red shoes"


def test_a_resent_batch_is_a_safe_retry(client: TestClient) -> None:
    sessions = [with_events(f"s-{n}") for n in range(3)]
    client.post(f"{API}/sessions", json={"sessions": sessions})
    again = client.post(f"{API}/sessions", json={"sessions": sessions}).json()
    assert again == {"sessions": 0, "events": 0, "duplicates": 6, "errors": []}
    assert client.get(f"{API}/batches").json()["data"][0]["sessions"] == 3


def test_bad_sessions_are_reported_by_index_and_the_rest_kept(client: TestClient) -> None:
    client.post(f"{API}/session", json=session_body("taken"))
    sessions = [
        with_events("good-0"),
        {"session_id": "no-query", "search_results": []},
        with_events("good-1"),
        {**with_events("bad-event"), "events": [{"event_id": "x", "object_id": "never-shown"}]},
        session_body("taken", search_meta={"changed": True}),
        {**with_events("extra"), "surprise": 1},
        with_events("good-0"),
        session_body("future", created_at=time.time() + 3600),
        with_events("good-2"),
    ]
    answer = client.post(f"{API}/sessions", json={"sessions": sessions})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["sessions"] == 3
    assert report["events"] == 3
    assert report["duplicates"] == 2  # the repeated good-0 and its event
    assert [(e["index"], e["error"]["code"], e["error"]["param"]) for e in report["errors"]] == [
        (1, "invalid_request", "search_query"),
        (3, "unknown_object", "events.0.object_id"),
        (4, "session_conflict", "session_id"),
        (5, "invalid_request", "surprise"),
        (7, "invalid_timestamp", "created_at"),
    ]
    assert stored_ids(client) == {"taken", "good-0", "good-1", "good-2"}


def test_a_malformed_or_oversized_batch_changes_nothing(client: TestClient) -> None:
    url = f"{API}/sessions"
    too_many = [session_body(f"s-{n}", results=1) for n in range(1001)]
    refused = client.post(url, json={"sessions": too_many})
    assert_error(refused, 422, "too_many_sessions", "sessions")
    assert_error(client.post(url, json={"sessions": {"a": 1}}), 422, "invalid_request", "sessions")
    assert_error(client.post(url, json={"session": []}), 422, "invalid_request")
    broken = b'{"sessions": [{"session_id": "s-1"'
    response = client.post(url, content=broken, headers={"content-type": "application/json"})
    assert_error(response, 400, "invalid_json")
    assert_error(client.post(url, content=b"{}"), 415, "unsupported_media_type")
    assert client.get(f"{API}/batches").json()["total"] == 0
    empty = client.post(url, json={"sessions": []}).json()
    assert empty == {"sessions": 0, "events": 0, "duplicates": 0, "errors": []}


def test_session_endpoints_have_their_own_body_limit(settings: Settings) -> None:
    small = settings.model_copy(
        update={"max_session_bytes": 4000, "max_sessions_batch_bytes": 20000}
    )
    with TestClient(create_app(small)) as client:
        big = session_body(search_meta={"blob": "x" * 5000})
        for path, body in (
            ("/session", big),
            ("/session/events", {"session_id": "s", "events": [], "pad": "x" * 5000}),
            ("/session/irrelevant", {"session_id": "x" * 5000}),
            ("/sessions", {"sessions": [session_body(f"s-{n}") for n in range(200)]}),
        ):
            assert_error(client.post(f"{API}{path}", json=body), 413, "payload_too_large")
        batch = {"sessions": [session_body(f"s-{n}") for n in range(20)]}
        assert client.post(f"{API}/sessions", json=batch).json()["sessions"] == 20
        assert client.post(f"{API}/session", json=session_body("one")).status_code == 201


def test_long_queries_and_texts_are_refused(client: TestClient) -> None:
    long_query = session_body(search_query="q" * 4097)
    assert_error(client.post(f"{API}/session", json=long_query), 422, "invalid_request")
    assert client.post(f"{API}/session", json=session_body(search_query="q" * 4096)).is_success
    long_text = {"text": "t" * 32769}
    assert_error(client.put("/api/v1/items/long", json=long_text), 422, "invalid_request", "text")


def test_integer_query_parameters_out_of_range_are_422(client: TestClient) -> None:
    huge = "99999999999999999999"
    for path, params in (
        (f"{API}/batches", {"offset": huge}),
        ("/api/v1/fine-tuning/task", {"offset": huge}),
        (f"{API}/internal/batch/sessions", {"batch_id": "b", "after_number": huge}),
        (f"{API}/batches", {"limit": huge}),
    ):
        assert_error(client.get(path, params=params), 422, "invalid_request")
    assert client.get(f"{API}/batches", params={"offset": 2**63 - 1}).json()["data"] == []


def test_meta_comes_back_exactly_as_sent(client: TestClient) -> None:
    """Integers beyond 64 bits, floats and any text survive storage, and a resend is a retry."""
    meta = {"id": 10**30, "negative": -(2**63) - 1, "score": 1e-05, "text": "Grüße \u2028 ✓"}
    single = session_body("exact-1", search_meta=meta)
    batched = session_body("exact-2", search_meta=meta)
    assert client.post(f"{API}/session", json=single).status_code == 201
    assert client.post(f"{API}/sessions", json={"sessions": [batched]}).json()["sessions"] == 1
    for session_id in ("exact-1", "exact-2"):
        assert client.get(f"{API}/session/{session_id}").json()["search_meta"] == meta
    assert client.post(f"{API}/session", json=single).status_code == 200
    assert client.post(f"{API}/sessions", json={"sessions": [batched]}).json()["duplicates"] == 1

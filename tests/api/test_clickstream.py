"""Sessions, events and irrelevant marks through the API, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

from clicktune.api.app import create_app
from clicktune.settings import Settings

API = "/api/v1/clickstream"


def session_body(session_id: str = "s-1", results: int = 3, **fields: Any) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "search_query": "red shoes",
        "search_results": [{"object_id": f"o-{i}", "rank": 1.0 - i / 10} for i in range(results)],
        **fields,
    }


def assert_error(response: Any, status: int, code: str, param: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    if param is not None:
        assert error["param"] == param, error


def test_register_session_then_retry_and_conflict(client: TestClient) -> None:
    body = session_body(
        search_meta={"engine": "bm25"},
        user_id="u-1",
        created_at=time.time() - 60,
        search_results=[
            {"object_id": "a", "rank": 0.3, "meta": {"pos": 1}},
            {"object_id": "b", "item_info": {"pos": 2}},
        ],
    )
    created = client.post(f"{API}/session", json=body)
    assert created.status_code == 201, created.text
    session = created.json()
    assert session["session_id"] == "s-1"
    assert len(session["batch_id"]) == 24
    assert session["created_at"] == body["created_at"]
    assert session["search_query"] == "red shoes"
    assert session["search_results"] == [
        {"object_id": "a", "rank": 0.3, "meta": {"pos": 1}},
        {"object_id": "b", "rank": None, "meta": {"pos": 2}},
    ]
    assert session["search_meta"] == {"engine": "bm25"}
    assert session["user_id"] == "u-1"
    assert session["is_irrelevant"] is False
    assert session["events"] == []

    retry = client.post(f"{API}/session", json=body)
    assert retry.status_code == 200
    assert retry.json() == session

    changed = client.post(f"{API}/session", json={**body, "search_query": "blue shoes"})
    assert_error(changed, 409, "session_conflict", "session_id")

    assert client.get(f"{API}/session/s-1").json() == session
    assert client.get(f"{API}/session", params={"session_id": "s-1"}).json() == session


def test_a_session_with_its_events_in_one_request(client: TestClient) -> None:
    events = [
        {"event_id": "e-1", "object_id": "o-1"},
        {"event_id": "e-2", "object_id": "o-2", "event_type": "purchase", "meta": {"qty": 2}},
    ]
    created = client.post(f"{API}/session", json=session_body(events=events))
    assert created.status_code == 201, created.text
    stored = created.json()["events"]
    assert [(e["event_id"], e["event_type"]) for e in stored] == [
        ("e-1", "click"),
        ("e-2", "purchase"),
    ]
    retry = client.post(f"{API}/session", json=session_body(events=events))
    assert retry.status_code == 200 and retry.json() == created.json()  # stored once
    later = [*events, {"event_id": "e-3", "object_id": "o-0"}]
    assert len(client.post(f"{API}/session", json=session_body(events=later)).json()["events"]) == 3
    batch = client.get(f"{API}/batches").json()["data"][0]
    assert (batch["sessions"], batch["events"]) == (1, 3)


def test_created_at_defaults_to_server_time(client: TestClient) -> None:
    before = time.time()
    session = client.post(f"{API}/session", json=session_body()).json()
    assert before <= session["created_at"] <= time.time()
    # Without created_at a retry has the same content: still a retry, not a conflict.
    assert client.post(f"{API}/session", json=session_body()).status_code == 200


def test_session_ids_with_slashes_and_unknown_sessions(client: TestClient) -> None:
    assert client.post(f"{API}/session", json=session_body("shop/eu/42")).status_code == 201
    assert client.get(f"{API}/session/shop/eu/42").json()["session_id"] == "shop/eu/42"
    assert_error(client.get(f"{API}/session/nope"), 404, "session_not_found")
    assert_error(
        client.get(f"{API}/session", params={"session_id": "nope"}), 404, "session_not_found"
    )
    assert_error(client.get(f"{API}/session"), 422, "invalid_request", "session_id")


def test_invalid_sessions_are_rejected_and_store_nothing(client: TestClient) -> None:
    now = time.time()
    too_big_meta = {"blob": "x" * 70_000}
    cases: list[tuple[dict[str, Any], int, str, str | None]] = [
        (
            session_body(search_results=[{"object_id": "a"}, {"object_id": "a"}]),
            422,
            "duplicate_object",
            "search_results.1.object_id",
        ),
        (session_body(search_query=""), 422, "invalid_request", "search_query"),
        (session_body(search_query="   "), 422, "invalid_request", "search_query"),
        ({"search_query": "q", "search_results": []}, 422, "invalid_request", "session_id"),
        (session_body("x" * 257), 422, "invalid_request", "session_id"),
        (session_body(user_id=""), 422, "invalid_request", "user_id"),
        (
            session_body(search_results=[{"object_id": 7}]),
            422,
            "invalid_request",
            "search_results.0.object_id",
        ),
        (
            session_body(search_results=[{"object_id": "a", "rank": "high"}]),
            422,
            "invalid_request",
            "search_results.0.rank",
        ),
        (session_body(results=1001), 422, "too_many_search_results", "search_results"),
        (session_body(search_meta=too_big_meta), 422, "meta_too_large", "search_meta"),
        (
            session_body(search_results=[{"object_id": "a", "meta": too_big_meta}]),
            422,
            "meta_too_large",
            "search_results.0.meta",
        ),
        (session_body(created_at=now + 3600), 422, "invalid_timestamp", "created_at"),
        (session_body(created_at=now - 13 * 3600), 422, "invalid_timestamp", "created_at"),
        (session_body(created_at=(now) * 1000), 422, "invalid_timestamp", "created_at"),
        (session_body(created_at="yesterday"), 422, "invalid_request", "created_at"),
        (session_body(created_at=-5), 422, "invalid_request", "created_at"),
        (session_body(search_query="nul\x00byte"), 422, "invalid_request", "search_query"),
        (session_body(search_meta={"deep": _nested(40)}), 422, "invalid_request", "search_meta"),
        (session_body(search_meta=[1, 2]), 422, "invalid_request", "search_meta"),
        (session_body(clicks=["o-1"]), 422, "invalid_request", "clicks"),
        (
            session_body(search_results=[{"object_id": "a", "title": "Red shoe"}]),
            422,
            "invalid_request",
            "search_results.0.title",
        ),
        (
            session_body(events=[{"event_id": "e-1", "object_id": "elsewhere"}]),
            422,
            "unknown_object",
            "events.0.object_id",
        ),
        (
            session_body(
                events=[{"event_id": "e-1", "object_id": "o-1", "created_at": now + 3600}]
            ),
            422,
            "invalid_timestamp",
            "events.0.created_at",
        ),
    ]
    for body, status, code, param in cases:
        assert_error(client.post(f"{API}/session", json=body), status, code, param)
    assert client.get(f"{API}/batches").json() == {"data": [], "total": 0}


def test_unparseable_bodies(client: TestClient) -> None:
    url = f"{API}/session"
    json_type = {"content-type": "application/json"}
    assert_error(client.post(url, content=b"{nope", headers=json_type), 400, "invalid_json")
    assert_error(client.post(url, content=b"[1, 2]", headers=json_type), 422, "invalid_request")
    body = (
        b'{"session_id": "s", "search_query": "q", "search_results": [], "search_meta": {"a": NaN}}'
    )
    assert_error(client.post(url, content=body, headers=json_type), 422, "invalid_request")
    surrogate = b'{"session_id": "s\\ud800", "search_query": "q", "search_results": []}'
    assert_error(client.post(url, content=surrogate, headers=json_type), 422, "invalid_request")
    plain = {"content-type": "text/plain"}
    assert_error(client.post(url, content=b"{}", headers=plain), 415, "unsupported_media_type")
    assert_error(client.post(url, content=b"{}"), 415, "unsupported_media_type")
    assert_error(client.post(url), 422, "invalid_request")
    assert client.post(url, json=session_body(), headers=json_type).status_code == 201
    charset = {"content-type": "application/json; charset=utf-8"}
    assert client.post(url, json=session_body("s-2"), headers=charset).status_code == 201


def test_oversize_bodies_are_413(settings: Settings) -> None:
    small = settings.model_copy(update={"max_session_bytes": 2000})
    with TestClient(create_app(small)) as client:
        big = session_body(search_meta={"blob": "x" * 3000})
        assert_error(client.post(f"{API}/session", json=big), 413, "payload_too_large")

        def chunked() -> Any:
            yield b'{"session_id": "s", "search_query": "'
            yield b"x" * 3000
            yield b'", "search_results": []}'

        response = client.post(
            f"{API}/session", content=chunked(), headers={"content-type": "application/json"}
        )
        assert_error(response, 413, "payload_too_large")
        assert client.post(f"{API}/session", json=session_body()).status_code == 201


def test_age_window_can_be_disabled(settings: Settings) -> None:
    unlimited = settings.model_copy(update={"clickstream_max_age_s": 0})
    with TestClient(create_app(unlimited)) as client:
        old = client.post(f"{API}/session", json=session_body(created_at=1_000_000))
        assert old.status_code == 201
        future = client.post(
            f"{API}/session", json=session_body("s-2", created_at=time.time() + 3600)
        )
        assert_error(future, 422, "invalid_timestamp", "created_at")


def test_events_accepted_duplicates_and_order(client: TestClient) -> None:
    client.post(f"{API}/session", json=session_body())
    first = client.post(
        f"{API}/session/events",
        json={
            "session_id": "s-1",
            "events": [
                {"event_id": "e-1", "object_id": "o-0"},
                {
                    "event_id": "e-2",
                    "object_id": "o-2",
                    "event_type": "add_to_cart",
                    "meta": {"q": 2},
                },
                {"event_id": "e-1", "object_id": "o-0"},
            ],
        },
    )
    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": 2, "duplicates": 1}
    now = time.time()
    retry = client.post(
        f"{API}/session/events",
        json={
            "session_id": "s-1",
            "events": [
                {"event_id": "e-2", "object_id": "o-2"},
                {
                    "event_id": "e-3",
                    "object_id": "o-1",
                    "event_type": "purchase",
                    "created_at": now,
                },
            ],
        },
    )
    assert retry.json() == {"accepted": 1, "duplicates": 1}
    stored = client.get(f"{API}/session/s-1").json()["events"]
    assert [(e["event_id"], e["object_id"], e["event_type"]) for e in stored] == [
        ("e-1", "o-0", "click"),
        ("e-2", "o-2", "add_to_cart"),
        ("e-3", "o-1", "purchase"),
    ]
    assert stored[1]["meta"] == {"q": 2}
    assert stored[2]["created_at"] == now
    assert client.post(
        f"{API}/session/events", json={"session_id": "s-1", "events": []}
    ).json() == {
        "accepted": 0,
        "duplicates": 0,
    }


def test_events_are_all_or_nothing(client: TestClient) -> None:
    client.post(f"{API}/session", json=session_body())
    url = f"{API}/session/events"
    good = {"event_id": "e-1", "object_id": "o-0"}
    now = time.time()
    cases: list[tuple[dict[str, Any], int, str, str | None]] = [
        (
            {"session_id": "s-1", "events": [good, {"event_id": "e-2", "object_id": "other"}]},
            422,
            "unknown_object",
            "events.1.object_id",
        ),
        (
            {
                "session_id": "s-1",
                "events": [good, {**good, "event_id": "e-2", "created_at": now + 900}],
            },
            422,
            "invalid_timestamp",
            "events.1.created_at",
        ),
        (
            {
                "session_id": "s-1",
                "events": [good, {**good, "event_id": "e-2", "event_type": "x" * 65}],
            },
            422,
            "invalid_request",
            "events.1.event_type",
        ),
        (
            {
                "session_id": "s-1",
                "events": [good, {**good, "event_id": "e-2", "meta": {"b": "x" * 70_000}}],
            },
            422,
            "meta_too_large",
            "events.1.meta",
        ),
        (
            {"session_id": "s-1", "events": [{**good, "event_id": f"e-{i}"} for i in range(1001)]},
            422,
            "too_many_events",
            "events",
        ),
        (
            {"session_id": "s-1", "events": [good, {"object_id": "o-0"}]},
            422,
            "invalid_request",
            "events.1.event_id",
        ),
        ({"session_id": "nope", "events": [good]}, 404, "session_not_found", "session_id"),
        ({"session_id": "s-1"}, 422, "invalid_request", "events"),
    ]
    for body, status, code, param in cases:
        assert_error(client.post(url, json=body), status, code, param)
    assert client.get(f"{API}/session/s-1").json()["events"] == []
    assert_error(
        client.post(url, content=b"{}", headers={"content-type": "text/csv"}),
        415,
        "unsupported_media_type",
    )


def test_mark_irrelevant(client: TestClient) -> None:
    client.post(f"{API}/session", json=session_body())
    marked = client.post(f"{API}/session/irrelevant", json={"session_id": "s-1"})
    assert marked.status_code == 200
    assert marked.json()["is_irrelevant"] is True
    assert client.post(f"{API}/session/irrelevant", json={"session_id": "s-1"}).status_code == 200
    assert client.get(f"{API}/session/s-1").json()["is_irrelevant"] is True
    assert_error(
        client.post(f"{API}/session/irrelevant", json={"session_id": "nope"}),
        404,
        "session_not_found",
    )
    assert_error(
        client.post(f"{API}/session/irrelevant", json={}), 422, "invalid_request", "session_id"
    )


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"x": value}
    return value

"""Releasing batches, batch summaries and content, and the freeze at release."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from clicktune.store import clickstream as store
from clicktune.store.engine import read_transaction, write_transaction
from tests.api.test_clickstream import API, assert_error, session_body
from tests.store_support import stream


def register(client: TestClient, session_id: str, events: list[str] | None = None) -> None:
    assert client.post(f"{API}/session", json=session_body(session_id)).status_code in (200, 201)
    if events:
        response = client.post(
            f"{API}/session/events",
            json={
                "session_id": session_id,
                "events": [{"event_id": e, "object_id": "o-0"} for e in events],
            },
        )
        assert response.status_code == 200, response.text


def release(client: TestClient, release_id: str | None = None) -> Any:
    body = {} if release_id is None else {"release_id": release_id}
    return client.post(f"{API}/internal/batch/release", json=body)


def test_release_is_idempotent_and_starts_a_new_batch(client: TestClient) -> None:
    assert_error(release(client, "r-0"), 404, "no_collecting_batch")
    register(client, "s-1", ["e-1"])
    register(client, "s-2")
    first = release(client, "r-1")
    assert first.status_code == 200, first.text
    released = first.json()
    assert released["release_id"] == "r-1"
    assert len(released["batch_id"]) == 24
    assert isinstance(released["released_at"], float)
    assert release(client, "r-1").json() == released
    assert_error(release(client, "r-2"), 404, "no_collecting_batch")

    register(client, "s-3")
    session = client.get(f"{API}/session/s-3").json()
    assert session["batch_id"] != released["batch_id"]
    second = release(client).json()
    assert second["release_id"] is None
    assert second["batch_id"] == session["batch_id"]
    assert client.post(f"{API}/internal/batch/release").status_code == 404
    assert release(client, "r-1").json() == released


def test_batch_summaries_and_list(client: TestClient) -> None:
    register(client, "s-1", ["e-1", "e-2"])
    register(client, "s-2")
    client.post(f"{API}/session/irrelevant", json={"session_id": "s-2"})
    first = release(client, "r-1").json()["batch_id"]
    register(client, "s-3", ["e-3"])
    collecting = client.get(f"{API}/session/s-3").json()["batch_id"]

    summary = client.get(f"{API}/batches/{first}").json()
    assert summary == {
        "batch_id": first,
        "status": "released",
        "created_at": summary["created_at"],
        "released_at": summary["released_at"],
        "release_id": "r-1",
        "sessions": 2,
        "sessions_with_events": 1,
        "irrelevant_sessions": 1,
        "events": 2,
    }
    live = client.get(f"{API}/batches/{collecting}").json()
    assert (live["status"], live["released_at"], live["release_id"]) == ("collecting", None, None)
    assert (live["sessions"], live["sessions_with_events"], live["events"]) == (1, 1, 1)

    listed = client.get(f"{API}/batches").json()
    assert listed["total"] == 2
    assert [b["batch_id"] for b in listed["data"]] == [collecting, first]
    released = client.get(f"{API}/batches", params={"status": "released"}).json()
    assert (released["total"], [b["batch_id"] for b in released["data"]]) == (1, [first])
    paged = client.get(f"{API}/batches", params={"limit": 1, "offset": 1}).json()
    assert (paged["total"], [b["batch_id"] for b in paged["data"]]) == (2, [first])

    assert_error(client.get(f"{API}/batches/nope"), 404, "batch_not_found")
    assert_error(
        client.get(f"{API}/batches", params={"status": "open"}), 422, "invalid_request", "status"
    )
    assert_error(client.get(f"{API}/batches", params={"limit": 0}), 422, "invalid_request", "limit")
    assert_error(
        client.get(f"{API}/batches", params={"offset": -1}), 422, "invalid_request", "offset"
    )


def test_batch_sessions_pages(client: TestClient) -> None:
    for i in range(5):
        register(client, f"s-{i}", [f"e-{i}-{j}" for j in range(i)])
    batch_id = release(client, "r-1").json()["batch_id"]
    url = f"{API}/internal/batch/sessions"

    first = client.get(url, params={"batch_id": batch_id, "limit": 2}).json()
    assert first["batch_id"] == batch_id
    assert first["last_number"] == 2
    assert [(s["session_id"], s["session_number"]) for s in first["sessions"]] == [
        ("s-0", 1),
        ("s-1", 2),
    ]
    assert first["sessions"][1]["events"][0]["event_id"] == "e-1-0"
    assert first["sessions"][1]["batch_id"] == batch_id

    rest = client.get(url, params={"batch_id": batch_id, "after_number": 2, "events_limit": 2})
    page = rest.json()
    assert [s["session_number"] for s in page["sessions"]] == [3, 4, 5]
    assert [len(s["events"]) for s in page["sessions"]] == [2, 2, 2]
    assert [e["event_id"] for e in page["sessions"][2]["events"]] == ["e-4-0", "e-4-1"]
    end = client.get(url, params={"batch_id": batch_id, "after_number": 5}).json()
    assert end == {"batch_id": batch_id, "last_number": None, "sessions": []}
    no_events = client.get(url, params={"batch_id": batch_id, "events_limit": 0}).json()
    assert all(s["events"] == [] for s in no_events["sessions"])

    assert_error(client.get(url, params={"batch_id": "nope"}), 404, "batch_not_found")
    assert_error(client.get(url), 422, "invalid_request", "batch_id")
    bad_limit = client.get(url, params={"batch_id": batch_id, "limit": 1001})
    assert_error(bad_limit, 422, "invalid_request", "limit")


def test_released_batch_is_frozen(client: TestClient, engine: Engine) -> None:
    register(client, "s-1", ["e-1"])
    register(client, "s-2")
    batch_id = release(client, "r-1").json()["batch_id"]
    frozen_summary = client.get(f"{API}/batches/{batch_id}").json()

    # After the release: a new event, a repeated one, and an irrelevant mark on the old sessions.
    late = client.post(
        f"{API}/session/events",
        json={
            "session_id": "s-1",
            "events": [
                {"event_id": "e-1", "object_id": "o-0"},
                {"event_id": "e-late", "object_id": "o-1"},
            ],
        },
    )
    assert late.json() == {"accepted": 1, "duplicates": 1}
    client.post(
        f"{API}/session/events",
        json={"session_id": "s-2", "events": [{"event_id": "x", "object_id": "o-2"}]},
    )
    client.post(f"{API}/session/irrelevant", json={"session_id": "s-2"})

    # The sessions show everything...
    s1 = client.get(f"{API}/session/s-1").json()
    assert [e["event_id"] for e in s1["events"]] == ["e-1", "e-late"]
    s2 = client.get(f"{API}/session/s-2").json()
    assert (s2["is_irrelevant"], len(s2["events"])) == (True, 1)
    # ...the batch only what it had at its release: summary, pages and the pipeline's stream.
    assert client.get(f"{API}/batches/{batch_id}").json() == frozen_summary
    page = client.get(f"{API}/internal/batch/sessions", params={"batch_id": batch_id}).json()
    streamed = list(stream(engine, store.iter_batch_sessions, batch_id, page_size=1))
    for content in (page["sessions"], streamed):
        assert [[e["event_id"] for e in s["events"]] for s in content] == [["e-1"], []]
        assert [s["is_irrelevant"] for s in content] == [False, False]
    # A new session after the release goes to the next batch, numbered from 1.
    register(client, "s-3")
    with read_transaction(engine) as conn:
        collecting = store.list_batches(conn, "collecting", 10, 0)[0][0]
    assert collecting["batch_id"] != batch_id
    assert collecting["sessions"] == 1


def test_iter_batch_sessions_streams_in_order(client: TestClient, engine: Engine) -> None:
    for i in range(7):
        register(client, f"s-{i}", [f"e-{i}"])
    with write_transaction(engine) as conn:
        released = store.release_collecting_batch(conn, "r-1")
    assert released is not None and released["sessions"] == 7
    with write_transaction(engine) as conn:
        assert store.release_collecting_batch(conn, "r-1") == released
        assert store.release_collecting_batch(conn, None) is None
    streamed = list(stream(engine, store.iter_batch_sessions, released["batch_id"], page_size=3))
    assert [s["session_number"] for s in streamed] == list(range(1, 8))
    assert [s["session_id"] for s in streamed] == [f"s-{i}" for i in range(7)]
    first = streamed[0]
    assert set(first) >= {
        "session_id",
        "session_number",
        "search_query",
        "search_results",
        "user_id",
        "created_at",
        "is_irrelevant",
        "events",
    }
    assert first["search_results"][0] == {"object_id": "o-0", "rank": 1.0, "meta": {}}
    assert set(first["events"][0]) == {"event_id", "object_id", "event_type", "created_at", "meta"}
    with read_transaction(engine) as conn:
        assert store.get_batch_summary(conn, "nope") is None
    with pytest.raises(store.BatchNotFound):
        next(stream(engine, store.iter_batch_sessions, "nope"))

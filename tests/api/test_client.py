"""The Python client against the real app (SQLite and PostgreSQL), through FastAPI's TestClient."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from clicktune.client import ClicktuneClient, ErrorResponse
from clicktune.simulate.click_model import PositionBasedClickModel
from clicktune.simulate.collection import load_collection
from clicktune.simulate.senders import import_sessions, load_items, send_sessions, write_ndjson
from clicktune.simulate.sessions import simulate_sessions

METHOD = "Default Fine Tuning Method"


@pytest.fixture
def api(client: TestClient) -> ClicktuneClient:
    return ClicktuneClient(http=client)


def results(*ids: str) -> list[dict[str, str]]:
    return [{"object_id": object_id} for object_id in ids]


def test_sessions_events_and_errors_carry_the_contract_codes(api: ClicktuneClient) -> None:
    assert api.ping() == {"status": "ok"}
    created = api.create_session("s/1 ?#", "red shoes", results("a", "b"), search_meta={"p": 1})
    assert created["session_id"] == "s/1 ?#"
    assert api.create_session("s/1 ?#", "red shoes", results("a", "b"), search_meta={"p": 1})
    with pytest.raises(ErrorResponse) as conflict:
        api.create_session("s/1 ?#", "blue shoes", results("a"))
    assert (conflict.value.status_code, conflict.value.code) == (409, "session_conflict")
    events = [{"event_id": "e1", "object_id": "b", "event_type": "add_to_cart"}]
    assert api.add_events("s/1 ?#", events) == {"accepted": 1, "duplicates": 0}
    assert api.add_events("s/1 ?#", events) == {"accepted": 0, "duplicates": 1}
    stored = api.get_session("s/1 ?#")
    assert [(e["object_id"], e["event_type"]) for e in stored["events"]] == [("b", "add_to_cart")]
    with pytest.raises(ErrorResponse) as unknown:
        api.add_events("s/1 ?#", [{"event_id": "e2", "object_id": "zzz"}])
    assert (unknown.value.status_code, unknown.value.code) == (422, "unknown_object")
    with pytest.raises(ErrorResponse) as invalid:
        api.create_session("s2", "q", [{"object_id": ""}])
    assert invalid.value.code == "invalid_request"
    assert invalid.value.param == "search_results.0.object_id"
    with pytest.raises(ErrorResponse) as missing:
        api.mark_irrelevant("nope")
    assert (missing.value.status_code, missing.value.code) == (404, "session_not_found")
    assert "session_not_found" in str(missing.value)


def test_many_sessions_in_one_request(api: ClicktuneClient) -> None:
    click = [{"event_id": "e-a", "object_id": "a"}]
    sessions = [
        {"session_id": "m1", "search_query": "q", "search_results": results("a"), "events": click},
        {"session_id": "m2", "search_query": "", "search_results": results("a")},
        {"session_id": "m3", "search_query": "q", "search_results": results("a", "b")},
    ]
    answer = api.create_sessions(sessions)
    assert (answer["sessions"], answer["events"], answer["duplicates"]) == (2, 1, 0)
    assert [(e["index"], e["error"]["param"]) for e in answer["errors"]] == [(1, "search_query")]
    assert api.get_session("m1")["events"][0]["event_id"] == "e-a"
    assert api.create_sessions(sessions[:1])["duplicates"] == 2


def test_release_batches_and_paginated_sessions(api: ClicktuneClient) -> None:
    for n in range(5):
        api.create_session(f"s{n}", f"query {n}", results("a", "b"))
    api.mark_irrelevant("s3")
    released = api.release_batch("r1")
    assert api.release_batch("r1") == released
    summary = api.get_batch(released["batch_id"])
    assert (summary["sessions"], summary["irrelevant_sessions"]) == (5, 1)
    assert api.list_batches(status="released")["data"][0]["batch_id"] == released["batch_id"]
    sessions = list(api.iter_batch_sessions(released["batch_id"], page_size=2))
    assert [s["session_id"] for s in sessions] == [f"s{n}" for n in range(5)]
    with pytest.raises(ErrorResponse) as empty:
        api.release_batch("r2")
    assert empty.value.code == "no_collecting_batch"


def test_items_bulk_is_chunked_and_ids_are_escaped(api: ClicktuneClient) -> None:
    chunks: list[int] = []
    items = ({"object_id": f"item/{n} #x", "text": f"text {n}"} for n in range(25))
    assert api.bulk_items(items, chunk_size=10, on_chunk=chunks.append) == 25
    assert chunks == [10, 10, 5]
    assert api.get_item("item/7 #x")["text"] == "text 7"
    api.put_item("item/7 #x", fields={"title": "seven"})
    assert api.get_item("item/7 #x")["fields"] == {"title": "seven"}
    api.delete_item("item/7 #x")
    with pytest.raises(ErrorResponse) as gone:
        api.get_item("item/7 #x")
    assert (gone.value.status_code, gone.value.code) == (404, "item_not_found")
    with pytest.raises(ValueError):
        api.bulk_items([], chunk_size=0)


def test_tasks_create_cancel_restart_and_events(api: ClicktuneClient) -> None:
    assert METHOD in [m["name"] for m in api.list_methods()]
    with pytest.raises(ErrorResponse) as no_method:
        api.create_task("No Such Method")
    assert (no_method.value.status_code, no_method.value.code) == (404, "method_not_found")
    api.create_session("s1", "q", results("a"))
    task = api.create_task(METHOD, idempotency_key="k1", metadata={"by": "test"})
    assert task["status"] == "pending"
    assert (
        api.create_task(METHOD, idempotency_key="k1", metadata={"by": "test"})["id"] == (task["id"])
    )
    assert api.get_task(task["id"])["batch_id"] == task["batch_id"]
    assert api.list_tasks(status="pending")["total"] == 1
    with pytest.raises(ErrorResponse) as not_yet:
        api.download_model(task["id"], Path("unused"))
    assert not_yet.value.status_code == 404
    assert api.cancel_task(task["id"])["status"] == "canceled"
    seen: list[str] = []
    final = api.wait_for_task(task["id"], on_progress=lambda t: seen.append(t["status"]))
    assert final["status"] == seen[-1] == "canceled"
    with pytest.raises(ErrorResponse) as finished:
        api.cancel_task(task["id"])
    assert finished.value.code == "task_finished"
    restarted = api.restart_task(task["id"])
    assert (restarted["status"], restarted["attempts"]) == ("pending", 2)
    events = list(api.iter_task_events(task["id"]))
    assert [e["created_at"] for e in events] == sorted(e["created_at"] for e in events)
    with pytest.raises(TimeoutError):
        api.wait_for_task(task["id"], poll_s=0.01, timeout_s=0.05)


def write_tiny_collection(root: Path) -> Path:
    root.mkdir()
    docs = [{"id": f"d{i}", "title": f"title {i}", "text": f"body {i}"} for i in range(30)]
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    queries = [{"id": f"q{q}", "text": f"query {q}"} for q in range(12)]
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    qrels = "".join(f"q{q}\td{q}\t{1 + q % 2}\n" for q in range(12))
    (root / "qrels.tsv").write_text("query-id\tdoc-id\tgrade\n" + qrels)
    return root


def test_simulated_traffic_reaches_the_service_and_resending_is_safe(
    api: ClicktuneClient, tmp_path: Path
) -> None:
    collection = load_collection(write_tiny_collection(tmp_path / "tiny"))
    assert load_items(api, collection, chunk_size=7) == 30
    assert api.get_item("d3")["text"] == "title 3\nbody 3"
    assert api.get_item("d3")["fields"] == {"title": "title 3"}

    def search(texts: list[str], k: int) -> list[list[str]]:
        return [[f"d{(int(t.split()[1]) + n) % 30}" for n in range(k)] for t in texts]

    sessions = list(
        simulate_sessions(
            collection,
            list(collection.queries),
            search,
            PositionBasedClickModel(collection.max_grade),
            sessions_per_query=3,
            seed=4,
        )
    )
    stats = send_sessions(api, sessions, concurrency=2)
    assert stats.sessions == 36
    assert stats.events == sum(len(s.outcome.interactions) for s in sessions)
    assert stats.irrelevant == sum(s.outcome.irrelevant for s in sessions)
    assert send_sessions(api, sessions, concurrency=2).sessions == 36
    batch = api.release_batch("sim")
    summary = api.get_batch(batch["batch_id"])
    assert (summary["sessions"], summary["events"]) == (36, stats.events)
    stored = {s["session_id"]: s for s in api.iter_batch_sessions(batch["batch_id"])}
    for session in sessions:
        got = stored[session.session_id]
        assert [r["object_id"] for r in got["search_results"]] == list(session.shown)
        assert [(e["object_id"], e["event_type"]) for e in got["events"]] == [
            (i.object_id, i.event_type) for i in session.outcome.interactions
        ]
        assert got["is_irrelevant"] == session.outcome.irrelevant

    later = list(
        simulate_sessions(
            collection,
            list(collection.queries),
            search,
            PositionBasedClickModel(collection.max_grade),
            seed=5,
        )
    )
    report = import_sessions(api, later)
    assert (report["sessions"], report["errors"]) == (36, [])
    again = import_sessions(api, later)
    assert (again["sessions"], again["errors"]) == (0, [])
    assert import_sessions(api, sessions)["errors"] == []
    path = tmp_path / "sessions.ndjson"
    assert write_ndjson(path, later) == 36
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["session_id"] for line in lines] == [s.session_id for s in later]
    assert lines[0] == later[0].import_line()


def test_busy_answers_are_retried_with_backoff_and_streams_never_resent() -> None:
    answers = iter([(503, {}), (429, {"retry-after": "0"}), (200, {})])
    seen: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        status, headers = next(answers)
        return httpx.Response(status, headers=headers, json={"status": "ok"})

    http = httpx.Client(base_url="http://clicktune", transport=httpx.MockTransport(server))
    client = ClicktuneClient(http=http, backoff_s=0.01)
    assert client.ping() == {"status": "ok"}
    assert seen == ["/api/v1/ping"] * 3

    def always_busy(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request.url.path)
        return httpx.Response(503, json={"error": {"code": "busy", "message": "m", "param": None}})

    busy = ClicktuneClient(
        http=httpx.Client(base_url="http://c", transport=httpx.MockTransport(always_busy)),
        retries=2,
        backoff_s=0.01,
    )
    seen.clear()
    with pytest.raises(ErrorResponse) as refused:
        busy.ping()
    assert (refused.value.status_code, len(seen)) == (503, 3)
    seen.clear()
    with pytest.raises(ErrorResponse):
        busy.import_sessions([{"session_id": "s"}])
    assert len(seen) == 1  # a streamed body cannot be sent twice

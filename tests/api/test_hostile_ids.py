"""Ids a client cannot reach again are never stored: control characters are refused in every
client id (422), and a path whose escapes are not UTF-8 is refused (400) instead of being read
with U+FFFD in place of the bytes, which made two different paths name one item."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.test_clickstream import assert_error

ITEMS = "/api/v1/items"


def test_control_characters_are_refused_in_client_ids(client: TestClient) -> None:
    for escaped in ("nl%0Aid", "esc%1B%5B2J", "del%7F", "c1%C2%85"):
        put = client.put(f"{ITEMS}/{escaped}", json={"text": "x"})
        assert_error(put, 422, "invalid_request", "path")
        assert "control characters" in put.json()["error"]["message"]
        assert_error(client.delete(f"{ITEMS}/{escaped}"), 422, "invalid_request", "path")
    bulk = client.post(f"{ITEMS}/bulk", json={"items": [{"object_id": "a\nb", "text": "x"}]})
    assert_error(bulk, 422, "invalid_request", "items.0.object_id")
    assert "control characters" in bulk.json()["error"]["message"]
    session = client.post(
        "/api/v1/clickstream/session",
        json={
            "session_id": "s\r\n1",
            "search_query": "red shoes",
            "search_results": [{"object_id": "o\t1"}],
        },
    )
    assert_error(session, 422, "invalid_request", "session_id")
    assert client.get(ITEMS).json()["items"] == []
    assert client.get("/api/v1/clickstream/batches").json()["data"] == []


def test_paths_with_escapes_that_are_not_utf8_are_refused(client: TestClient) -> None:
    for path in (f"{ITEMS}/coll%FF", f"{ITEMS}/coll%FE", f"{ITEMS}/coll%C3"):
        assert_error(client.put(path, json={"text": "x"}), 400, "invalid_path")
    assert_error(client.get("/api/v1/clickstream/session/s%FF"), 400, "invalid_path")
    assert client.get(ITEMS).json()["items"] == []
    utf8 = client.put(f"{ITEMS}/caf%C3%A9", json={"text": "x"})
    assert utf8.status_code == 200 and utf8.json()["object_id"] == "café"


def test_a_method_a_path_does_not_have_answers_405_with_allow(client: TestClient) -> None:
    answer = client.patch(f"{ITEMS}/p-1", json={"text": "x"})
    assert_error(answer, 405, "method_not_allowed")
    assert set(answer.headers["Allow"].replace(" ", "").split(",")) == {"GET", "PUT", "DELETE"}

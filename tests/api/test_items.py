"""The item catalog through the API and the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from clicktune.api.app import create_app
from clicktune.settings import Settings
from clicktune.store.engine import read_transaction
from clicktune.store.items import get_items
from tests.api.test_clickstream import assert_error

API = "/api/v1/items"
NDJSON = {"content-type": "application/x-ndjson"}


def test_put_get_replace_delete(client: TestClient) -> None:
    put = client.put(
        f"{API}/sku/1",
        json={"text": "Red shoe", "fields": {"title": "Shoe"}, "item_info": {"a": 1}},
    )
    assert put.status_code == 200, put.text
    item = put.json()
    assert {k: item[k] for k in ("object_id", "text", "fields", "meta")} == {
        "object_id": "sku/1",
        "text": "Red shoe",
        "fields": {"title": "Shoe"},
        "meta": {"a": 1},
    }
    assert isinstance(item["updated_at"], float)
    assert client.get(f"{API}/sku/1").json() == item

    replaced = client.put(f"{API}/sku/1", json={"fields": {"title": "Boot"}}).json()
    assert (replaced["text"], replaced["fields"], replaced["meta"]) == (None, {"title": "Boot"}, {})

    deleted = client.delete(f"{API}/sku/1")
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert_error(client.get(f"{API}/sku/1"), 404, "item_not_found")
    assert_error(client.delete(f"{API}/sku/1"), 404, "item_not_found")


def test_put_rejects_bad_items(client: TestClient) -> None:
    cases = [
        ({}, 422, "invalid_request", None),
        ({"text": ""}, 422, "invalid_request", None),
        ({"fields": {}}, 422, "invalid_request", None),
        ({"text": 5}, 422, "invalid_request", "text"),
        ({"text": "t", "meta": {"blob": "x" * 70_000}}, 422, "meta_too_large", "meta"),
        ({"text": "t", "fields": ["title"]}, 422, "invalid_request", "fields"),
    ]
    for body, status, code, param in cases:
        assert_error(client.put(f"{API}/x", json=body), status, code, param)
    assert_error(
        client.put(f"{API}/{'x' * 257}", json={"text": "t"}), 422, "invalid_request", "object_id"
    )
    plain = {"content-type": "text/plain"}
    assert_error(
        client.put(f"{API}/x", content=b'{"text": "t"}', headers=plain),
        415,
        "unsupported_media_type",
    )
    json_type = {"content-type": "application/json"}
    assert_error(client.put(f"{API}/x", content=b"{", headers=json_type), 400, "invalid_json")
    assert client.get(API).json() == {"items": [], "next_after": None}


def test_bulk_json_and_ndjson(client: TestClient) -> None:
    body = {
        "items": [
            {"object_id": "b", "text": "first"},
            {"object_id": "a", "fields": {"title": "A"}},
            {"object_id": "b", "text": "second"},
        ]
    }
    assert client.post(f"{API}/bulk", json=body).json() == {"upserted": 2}
    assert client.get(f"{API}/b").json()["text"] == "second"

    lines = "\n".join(json.dumps({"object_id": f"n-{i}", "text": f"t {i}"}) for i in range(5))
    response = client.post(f"{API}/bulk", content=lines + "\n\n", headers=NDJSON)
    assert response.json() == {"upserted": 5}
    assert client.get(f"{API}/n-4").json()["text"] == "t 4"


def test_bulk_is_all_or_nothing(client: TestClient, settings: Settings) -> None:
    bad_json = {"items": [{"object_id": "a", "text": "t"}, {"object_id": "b"}]}
    assert_error(client.post(f"{API}/bulk", json=bad_json), 422, "invalid_request", "items.1")
    missing_id = {"items": [{"text": "t"}]}
    assert_error(
        client.post(f"{API}/bulk", json=missing_id), 422, "invalid_request", "items.0.object_id"
    )
    lines = b'{"object_id": "a", "text": "t"}\n{"object_id": "b", "text": 1}\n'
    response = client.post(f"{API}/bulk", content=lines, headers=NDJSON)
    assert_error(response, 422, "invalid_request", "items.1.text")
    assert "Line 2" in response.json()["error"]["message"]
    broken = client.post(
        f"{API}/bulk", content=b'{"object_id": "a", "text": "t"}\n{oops\n', headers=NDJSON
    )
    assert_error(broken, 400, "invalid_json", "items.1")
    other = client.post(f"{API}/bulk", content=b"{}", headers={"content-type": "text/csv"})
    assert_error(other, 415, "unsupported_media_type")
    assert_error(client.post(f"{API}/bulk", json=[]), 422, "invalid_request")
    assert_error(
        client.post(f"{API}/bulk", content=b"{", headers={"content-type": "application/json"}),
        400,
        "invalid_json",
    )
    assert client.get(API).json()["items"] == []

    few = settings.model_copy(update={"max_bulk_items": 2})
    with TestClient(create_app(few)) as limited:
        three = {"items": [{"object_id": str(i), "text": "t"} for i in range(3)]}
        assert_error(limited.post(f"{API}/bulk", json=three), 422, "too_many_items", "items")
        ndjson = "\n".join(json.dumps(item) for item in three["items"])
        assert_error(
            limited.post(f"{API}/bulk", content=ndjson, headers=NDJSON), 422, "too_many_items"
        )


def test_list_pages_by_object_id(client: TestClient) -> None:
    ids = [f"item-{i:02d}" for i in range(7)]
    client.post(f"{API}/bulk", json={"items": [{"object_id": i, "text": i} for i in reversed(ids)]})
    seen: list[str] = []
    after = None
    while True:
        params = {"limit": 3} | ({"after": after} if after else {})
        page = client.get(API, params=params).json()
        seen += [item["object_id"] for item in page["items"]]
        after = page["next_after"]
        if after is None:
            break
    assert seen == ids
    assert_error(client.get(API, params={"limit": 0}), 422, "invalid_request", "limit")
    assert_error(client.get(API, params={"limit": 1001}), 422, "invalid_request", "limit")


def test_get_items_for_the_pipeline(client: TestClient, engine: Engine) -> None:
    items = [{"object_id": f"o-{i}", "text": f"text {i}", "meta": {"i": i}} for i in range(1200)]
    assert client.post(f"{API}/bulk", json={"items": items}).json() == {"upserted": 1200}
    wanted = [f"o-{i}" for i in range(0, 1200, 2)] + ["unknown", "o-0"]
    with read_transaction(engine) as conn:
        found = get_items(conn, wanted)
    assert len(found) == 600
    assert found["o-10"] == {
        "object_id": "o-10",
        "text": "text 10",
        "fields": {},
        "meta": {"i": 10},
    }
    assert "unknown" not in found

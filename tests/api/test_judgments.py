"""Judged sets through the API, the store and the CLI, on SQLite and PostgreSQL (docs/api.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from clicktune.settings import Settings
from clicktune.store.judgments import load_judgments
from tests.api.test_clickstream import assert_error
from tests.store_support import read

API = "/api/v1/judgments"
NDJSON = {"content-type": "application/x-ndjson"}
GOLDEN = [
    {"query": "red shoe", "object_id": "p-1", "grade": 3},
    {"query": "red shoe", "object_id": "p-2", "grade": 0},
    {"query": "blue hat", "object_id": "p-3", "grade": 2},
]


def test_put_get_list_replace_delete(client: TestClient, engine: Engine) -> None:
    client.post("/api/v1/items/bulk", json={"items": [{"object_id": "p-1", "text": "shoe"}]})
    put = client.put(f"{API}/golden", json={"judgments": GOLDEN})
    assert put.status_code == 200, put.text
    assert put.json() == {"set_id": "golden", "queries": 2, "judgments": 3, "unknown_objects": 2}
    one = client.get(f"{API}/golden").json()
    assert (one["set_id"], one["queries"], one["judgments"]) == ("golden", 2, 3)
    assert one["sample"] == GOLDEN and isinstance(one["updated_at"], float)
    listed = client.get(API).json()["data"]
    assert [(s["set_id"], s["judgments"]) for s in listed] == [("golden", 3)]
    digest, graded = read(engine, load_judgments, "golden")
    assert graded == {"red shoe": {"p-1": 3, "p-2": 0}, "blue hat": {"p-3": 2}}

    lines = "\n".join(json.dumps(j) for j in GOLDEN[:1]) + "\n"
    replaced = client.put(f"{API}/golden", content=lines.encode(), headers=NDJSON)
    assert replaced.json() == {
        "set_id": "golden",
        "queries": 1,
        "judgments": 1,
        "unknown_objects": 0,
    }
    assert read(engine, load_judgments, "golden")[0] != digest  # a new version of the set
    assert client.put(f"{API}/golden", json={"judgments": GOLDEN[:1]}).json() == replaced.json()

    assert client.delete(f"{API}/golden").status_code == 204
    assert_error(client.get(f"{API}/golden"), 404, "judgment_set_not_found")
    assert_error(client.delete(f"{API}/golden"), 404, "judgment_set_not_found")
    assert client.get(API).json() == {"data": []}


def test_bad_judgments_are_refused_and_change_nothing(
    client: TestClient, settings: Settings
) -> None:
    assert client.put(f"{API}/golden", json={"judgments": GOLDEN}).status_code == 200
    cases = [
        ({"judgments": [*GOLDEN, GOLDEN[0]]}, 422, "duplicate_judgment", "judgments.3.object_id"),
        ({"judgments": [{**GOLDEN[0], "grade": -1}]}, 422, "invalid_request", "judgments.0.grade"),
        ({"judgments": [{**GOLDEN[0], "grade": 1.5}]}, 422, "invalid_request", "judgments.0.grade"),
        (
            {"judgments": [{**GOLDEN[0], "grade": True}]},
            422,
            "invalid_request",
            "judgments.0.grade",
        ),
        ({"judgments": [{**GOLDEN[0], "query": " "}]}, 422, "invalid_request", "judgments.0.query"),
        ({"judgments": [{**GOLDEN[0], "extra": 1}]}, 422, "invalid_request", "judgments.0.extra"),
        (
            {"judgments": [{"query": "q", "grade": 1}]},
            422,
            "invalid_request",
            "judgments.0.object_id",
        ),
        ({"items": []}, 422, "invalid_request", "judgments"),
        ({"judgments": []}, 422, "invalid_request", "judgments"),
    ]
    for body, status, code, param in cases:
        assert_error(client.put(f"{API}/golden", json=body), status, code, param)
    bad_line = json.dumps(GOLDEN[0]) + "\n{not json\n"
    assert_error(
        client.put(f"{API}/golden", content=bad_line.encode(), headers=NDJSON),
        400,
        "invalid_json",
        "judgments.1",
    )
    assert_error(
        client.put(f"{API}/golden", content=b"x", headers={"content-type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    assert_error(
        client.put(f"{API}/golden", content=b"", headers=NDJSON),
        422,
        "invalid_request",
        "judgments",
    )
    assert client.get(f"{API}/golden").json()["judgments"] == 3  # unchanged


def test_too_many_judgments(settings: Settings) -> None:
    from clicktune.api.app import create_app

    with TestClient(create_app(settings.model_copy(update={"max_judgments": 2}))) as client:
        assert_error(
            client.put(f"{API}/big", json={"judgments": GOLDEN}), 422, "too_many_judgments"
        )
        assert client.get(API).json() == {"data": []}


def test_import_judgments_command(settings: Settings, tmp_path: Path, engine: Engine) -> None:
    env = {"CLICKTUNE_DATABASE_URL": settings.effective_database_url}
    env["CLICKTUNE_DATA_DIR"] = str(settings.data_dir)
    good = tmp_path / "golden.jsonl"
    good.write_text("".join(json.dumps(j) + "\n" for j in GOLDEN))
    command = [sys.executable, "-m", "clicktune", "import-judgments", "golden"]
    done = subprocess.run([*command, str(good)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "judged set golden: 2 queries, 3 judgments" in done.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(GOLDEN[0]) + "\n" + json.dumps({**GOLDEN[1], "grade": "x"}) + "\n")
    refused = subprocess.run([*command, str(bad)], env=env, capture_output=True, text=True)
    assert refused.returncode == 1
    assert "judgments.1.grade" in refused.stdout and "Line 2" in refused.stdout
    assert len(read(engine, load_judgments, "golden")[1]) == 2  # the good version stays

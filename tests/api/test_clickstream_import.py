"""`POST /clickstream/import`: NDJSON streamed in, bad lines reported, good lines kept."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from fastapi.testclient import TestClient

from clicktune.api.app import create_app
from clicktune.settings import Settings
from tests.api.test_clickstream import API, assert_error, session_body

NDJSON = {"content-type": "application/x-ndjson"}


def line(session_id: str, events: list[dict[str, Any]] | None = None, **fields: Any) -> str:
    return json.dumps({**session_body(session_id), "events": events or [], **fields})


def post_import(client: TestClient, lines: list[str]) -> Any:
    response = client.post(f"{API}/import", content="\n".join(lines) + "\n", headers=NDJSON)
    assert response.status_code == 200, response.text
    return response.json()


def test_import_keeps_good_lines_and_reports_bad_ones(client: TestClient) -> None:
    old = 1_500_000_000.0  # historical logs are exempt from the age window
    click = {"event_id": "e-1", "object_id": "o-1", "created_at": old}
    report = post_import(
        client,
        [
            line("s-1", [click], created_at=old),
            "not json",
            "",
            line("s-2", [{"event_id": "e-1", "object_id": "elsewhere"}]),
            line("s-3", is_irrelevant=True),
            json.dumps({"session_id": "s-4", "search_query": "q"}),
            line("s-5", created_at=time.time() + 3600),
            line("s-6", [click, click]),
        ],
    )
    assert report["sessions"] == 3
    assert report["events"] == 2
    assert report["duplicates"] == 1
    assert report["errors_total"] == 4
    assert [(e["line"], e["error"]["code"], e["error"]["param"]) for e in report["errors"]] == [
        (2, "invalid_json", None),
        (4, "unknown_object", "events.0.object_id"),
        (6, "invalid_request", "search_results"),
        (7, "invalid_timestamp", "created_at"),
    ]
    s1 = client.get(f"{API}/session/s-1").json()
    assert s1["created_at"] == old
    assert [(e["event_id"], e["created_at"]) for e in s1["events"]] == [("e-1", old)]
    assert client.get(f"{API}/session/s-3").json()["is_irrelevant"] is True
    assert_error(client.get(f"{API}/session/s-2"), 404, "session_not_found")
    assert_error(client.get(f"{API}/session/s-4"), 404, "session_not_found")
    batch = client.get(f"{API}/batches").json()["data"][0]
    assert (batch["sessions"], batch["events"], batch["irrelevant_sessions"]) == (3, 2, 1)


def test_reimport_is_safe_and_adds_new_events(client: TestClient) -> None:
    lines = [line(f"s-{i}", [{"event_id": "e-1", "object_id": "o-0"}]) for i in range(3)]
    assert post_import(client, lines)["sessions"] == 3
    again = post_import(client, lines)
    assert (again["sessions"], again["events"], again["duplicates"]) == (0, 0, 6)
    more = post_import(
        client,
        [
            line(
                "s-0",
                [{"event_id": "e-1", "object_id": "o-0"}, {"event_id": "e-2", "object_id": "o-2"}],
            ),
            json.dumps({**session_body("s-1", search_query="changed"), "events": []}),
        ],
    )
    assert (more["sessions"], more["events"], more["duplicates"]) == (0, 1, 2)
    assert [(e["line"], e["error"]["code"]) for e in more["errors"]] == [(2, "session_conflict")]
    assert len(client.get(f"{API}/session/s-0").json()["events"]) == 2


def test_repeated_sessions_within_one_body(client: TestClient) -> None:
    report = post_import(
        client,
        [
            line("s-1", [{"event_id": "e-1", "object_id": "o-0"}]),
            line(
                "s-1",
                [{"event_id": "e-1", "object_id": "o-0"}, {"event_id": "e-2", "object_id": "o-1"}],
            ),
            line("s-1", is_irrelevant=True),
            json.dumps({**session_body("s-1", search_query="other"), "events": []}),
        ],
    )
    assert (report["sessions"], report["events"], report["duplicates"]) == (1, 2, 3)
    assert [(e["line"], e["error"]["code"]) for e in report["errors"]] == [(4, "session_conflict")]
    session = client.get(f"{API}/session/s-1").json()
    assert (session["is_irrelevant"], [e["event_id"] for e in session["events"]]) == (
        True,
        ["e-1", "e-2"],
    )


def test_import_after_release_marks_late_events(client: TestClient) -> None:
    post_import(client, [line("s-1", [{"event_id": "e-1", "object_id": "o-0"}])])
    batch_id = client.post(f"{API}/internal/batch/release", json={"release_id": "r"}).json()[
        "batch_id"
    ]
    report = post_import(
        client,
        [line("s-1", [{"event_id": "e-2", "object_id": "o-1"}], is_irrelevant=True), line("s-2")],
    )
    assert (report["sessions"], report["events"], report["duplicates"]) == (1, 1, 1)
    frozen = client.get(f"{API}/batches/{batch_id}").json()
    assert (frozen["sessions"], frozen["events"], frozen["irrelevant_sessions"]) == (1, 1, 0)
    page = client.get(f"{API}/internal/batch/sessions", params={"batch_id": batch_id}).json()
    assert [e["event_id"] for e in page["sessions"][0]["events"]] == ["e-1"]
    session = client.get(f"{API}/session/s-1").json()
    assert (session["is_irrelevant"], len(session["events"])) == (True, 2)
    assert client.get(f"{API}/session/s-2").json()["batch_id"] != batch_id


def test_import_streams_a_chunked_body_in_many_chunks(client: TestClient) -> None:
    total = 1234

    def body() -> Iterator[bytes]:
        for i in range(total):
            encoded = (line(f"s-{i}", [{"event_id": "e", "object_id": "o-1"}]) + "\n").encode()
            # Split lines across transfer chunks, as a network would.
            yield encoded[:7]
            yield encoded[7:]

    response = client.post(f"{API}/import", content=body(), headers=NDJSON)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["sessions"], report["events"], report["errors"]) == (total, total, [])
    page = client.get(
        f"{API}/internal/batch/sessions",
        params={
            "batch_id": client.get(f"{API}/batches").json()["data"][0]["batch_id"],
            "after_number": total - 1,
        },
    ).json()
    assert [(s["session_id"], s["session_number"]) for s in page["sessions"]] == [
        (f"s-{total - 1}", total)
    ]


def test_import_rejects_other_content_types_and_long_lines(settings: Settings) -> None:
    small = settings.model_copy(update={"max_session_bytes": 600})
    with TestClient(create_app(small)) as client:
        body = (line("s-1") + "\n").encode()
        for content_type in ("application/json", "text/plain"):
            response = client.post(
                f"{API}/import", content=body, headers={"content-type": content_type}
            )
            assert_error(response, 415, "unsupported_media_type")
        assert_error(client.post(f"{API}/import", content=body), 415, "unsupported_media_type")
        long_line = line("s-2", search_meta={"blob": "x" * 1000})
        report = post_import(client, [line("s-1"), long_line, line("s-3")])
        assert report["sessions"] == 2
        assert [(e["line"], e["error"]["code"]) for e in report["errors"]] == [(2, "line_too_long")]
        empty = client.post(f"{API}/import", content=b"", headers=NDJSON).json()
        assert empty == {
            "sessions": 0,
            "events": 0,
            "duplicates": 0,
            "errors": [],
            "errors_total": 0,
        }

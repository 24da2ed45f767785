"""Many rows in one statement (one JSON parameter on PostgreSQL): every value stored exactly,
rows already stored skipped and left out of the count. Real SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, select

from clicktune.store import clickstream as store
from clicktune.store.bulk import insert_rows
from clicktune.store.tables import events
from tests.integration.test_release_race import new_session
from tests.store_support import read, write

META = {"id": 10**30, "negative": -(2**63) - 1, "score": 1e-05, "text": 'Grüße "✓" \\ \u2028'}


def event_row(event_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "session_id": "s",
        "event_id": event_id,
        "object_id": "o-0",
        "event_type": "purchase",
        "created_at": 1764000000.123456,
        "received_at": 1764000001.5,
        "meta": {},
        "post_release": False,
        **fields,
    }


def test_rows_are_stored_exactly_and_stored_ones_skipped(engine: Engine) -> None:
    write(engine, store.register_session, new_session("s"), [])
    conflict = ("session_id", "event_id")
    first = [event_row("e-1", meta=META), event_row("e-2", post_release=True)]
    assert write(engine, insert_rows, events, first, conflict) == 2
    again = [event_row("e-2"), event_row("e-3", event_type="click"), event_row("e-1")]
    assert write(engine, insert_rows, events, again, conflict) == 1

    def stored(conn: Connection) -> list[dict[str, Any]]:
        rows = conn.execute(select(events).order_by(events.c.event_id)).mappings()
        return [{k: v for k, v in row.items() if k != "seq"} for row in rows]

    assert read(engine, stored) == [
        event_row("e-1", meta=META),
        event_row("e-2", post_release=True),
        event_row("e-3", event_type="click"),
    ]

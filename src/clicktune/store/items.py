"""The item catalog: the content behind every object_id the clickstream points at."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

from sqlalchemy import Connection, Row, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from clicktune.errors import ClicktuneError
from clicktune.store.tables import items
from clicktune.timeutil import now as current_time

# Ids per `IN (...)` query: well under SQLite's bound-parameter limit.
_IDS_PER_QUERY = 500


class NewItem(TypedDict):
    object_id: str
    text: str | None
    fields: dict[str, Any]
    meta: dict[str, Any]


class ItemNotFound(ClicktuneError):
    code = "item_not_found"

    def __init__(self, object_id: str) -> None:
        super().__init__(f"No item with object_id {object_id!r}.", "object_id")


def upsert_items(conn: Connection, new_items: Sequence[NewItem]) -> int:
    """Insert or replace items (the last of repeated object_ids wins); returns how many distinct."""
    latest = {item["object_id"]: item for item in new_items}
    if not latest:
        return 0
    updated_at = current_time()
    rows = [{**item, "updated_at": updated_at} for item in latest.values()]
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(items)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[items.c.object_id],
            set_={
                "text": statement.excluded.text,
                "fields": statement.excluded.fields,
                "meta": statement.excluded.meta,
                "updated_at": statement.excluded.updated_at,
            },
        ),
        rows,
    )
    return len(rows)


def upsert_item(conn: Connection, item: NewItem) -> dict[str, Any]:
    upsert_items(conn, [item])
    stored = get_item(conn, item["object_id"])
    assert stored is not None
    return stored


def get_item(conn: Connection, object_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(items).where(items.c.object_id == object_id)).first()
    return None if row is None else _item_view(row)


def delete_item(conn: Connection, object_id: str) -> bool:
    """Remove the item; False when there was none."""
    return conn.execute(delete(items).where(items.c.object_id == object_id)).rowcount > 0


def list_items(
    conn: Connection, after: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """One keyset page in object_id order, and the `after` of the next page (None at the end)."""
    query = select(items).order_by(items.c.object_id).limit(limit)
    if after is not None:
        query = query.where(items.c.object_id > after)
    page = [_item_view(row) for row in conn.execute(query)]
    return page, page[-1]["object_id"] if len(page) == limit else None


def get_items(conn: Connection, object_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The stored items among `object_ids` (unknown ids are absent), for training's item loader."""
    found: dict[str, dict[str, Any]] = {}
    wanted = list(dict.fromkeys(object_ids))
    for start in range(0, len(wanted), _IDS_PER_QUERY):
        chunk = wanted[start : start + _IDS_PER_QUERY]
        query = select(items.c.object_id, items.c.text, items.c.fields, items.c.meta).where(
            items.c.object_id.in_(chunk)
        )
        for row in conn.execute(query):
            found[row.object_id] = {
                "object_id": row.object_id,
                "text": row.text,
                "fields": row.fields,
                "meta": row.meta,
            }
    return found


def _item_view(row: Row[Any]) -> dict[str, Any]:
    return {
        "object_id": row.object_id,
        "text": row.text,
        "fields": row.fields,
        "meta": row.meta,
        "updated_at": row.updated_at,
    }

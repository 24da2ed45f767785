"""The item catalog: what training reads for each object_id."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from clicktune.api.bodies import documented_body, parse_bulk_body, raw_body
from clicktune.api.deps import JSON_BODY, EngineDep, SettingsDep
from clicktune.api.schemas.items import BulkItemsIn, BulkUpserted, ItemOut, ItemsPage
from clicktune.ingest.fields import ClientId
from clicktune.ingest.items import ItemBody, ItemIn, check_bulk_count, check_item
from clicktune.store import items as store
from clicktune.store.engine import read_transaction, write_transaction

router = APIRouter(prefix="/items", tags=["items"])


@router.get("", response_model=ItemsPage)
def list_items(
    engine: EngineDep,
    after: Annotated[
        ClientId | None, Query(description="The last object_id of the page before.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Items in object_id order, one keyset page at a time."""
    with read_transaction(engine) as conn:
        page, next_after = store.list_items(conn, after, limit)
    return {"items": page, "next_after": next_after}


@router.post(
    "/bulk",
    response_model=BulkUpserted,
    openapi_extra=documented_body(application_json=BulkItemsIn, application_x_ndjson=ItemIn),
)
def bulk_upsert(
    request: Request,
    raw: Annotated[bytes, Depends(raw_body)],
    engine: EngineDep,
    settings: SettingsDep,
) -> dict[str, int]:
    """Insert or replace many items, all or nothing: `{"items": [...]}` or NDJSON, one per line."""
    new_items = parse_bulk_body(
        request,
        raw,
        envelope=BulkItemsIn,
        field="items",
        line=ItemIn,
        max_line_bytes=settings.max_request_bytes,
        check_count=lambda count: check_bulk_count(count, settings),
        check=lambda item: check_item(item, settings),
    )
    with write_transaction(engine) as conn:
        return {"upserted": store.upsert_items(conn, [item.to_item() for item in new_items])}


@router.put("/{object_id:path}", response_model=ItemOut, dependencies=JSON_BODY)
def put_item(
    object_id: ClientId, body: ItemBody, engine: EngineDep, settings: SettingsDep
) -> dict[str, Any]:
    """Insert or replace one item."""
    check_item(body, settings)
    with write_transaction(engine) as conn:
        return store.upsert_item(conn, body.to_new_item(object_id))


@router.get("/{object_id:path}", response_model=ItemOut)
def get_item(object_id: ClientId, engine: EngineDep) -> dict[str, Any]:
    with read_transaction(engine) as conn:
        item = store.get_item(conn, object_id)
    if item is None:
        raise store.ItemNotFound(object_id)
    return item


@router.delete("/{object_id:path}", status_code=204, response_class=Response, response_model=None)
def delete_item(object_id: ClientId, engine: EngineDep) -> Response:
    with write_transaction(engine) as conn:
        deleted = store.delete_item(conn, object_id)
    if not deleted:
        raise store.ItemNotFound(object_id)
    return Response(status_code=204)

"""The item catalog: what training reads for each object_id."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import ValidationError

from clicktune.api.bodies import (
    NDJSON_TYPES,
    LineSplitter,
    documented_body,
    is_json,
    media_type,
    unsupported_media_type,
)
from clicktune.api.deps import JSON_BODY, EngineDep, SettingsDep
from clicktune.api.errors import ApiError, validation_error
from clicktune.api.schemas.common import ClientId
from clicktune.api.schemas.items import (
    BulkItemsIn,
    BulkUpserted,
    ItemBody,
    ItemIn,
    ItemOut,
    ItemsPage,
    check_bulk_count,
    check_item,
)
from clicktune.settings import Settings
from clicktune.store import items as store
from clicktune.store.engine import read_transaction, write_transaction
from clicktune.store.items import NewItem

router = APIRouter(prefix="/items", tags=["items"])


async def _raw_body(request: Request) -> bytes:
    return await request.body()


def _not_found(object_id: str) -> ApiError:
    return ApiError(404, "item_not_found", f"No item with object_id {object_id!r}.", "object_id")


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
    raw: Annotated[bytes, Depends(_raw_body)],
    engine: EngineDep,
    settings: SettingsDep,
) -> dict[str, int]:
    """Insert or replace many items, all or nothing: `{"items": [...]}` or NDJSON, one per line."""
    media = media_type(request)
    if is_json(media):
        new_items = _parse_json_items(raw, settings)
    elif media in NDJSON_TYPES:
        new_items = _parse_ndjson_items(raw, settings)
    else:
        raise unsupported_media_type(request, "application/json or application/x-ndjson")
    with write_transaction(engine) as conn:
        return {"upserted": store.upsert_items(conn, new_items)}


def _parse_json_items(raw: bytes, settings: Settings) -> list[NewItem]:
    try:
        body = BulkItemsIn.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_error(exc.errors(include_url=False)) from None
    check_bulk_count(len(body.items), settings)
    for index, item in enumerate(body.items):
        check_item(item, settings, f"items.{index}.")
    return [item.to_item() for item in body.items]


def _parse_ndjson_items(raw: bytes, settings: Settings) -> list[NewItem]:
    splitter = LineSplitter(settings.max_request_bytes)
    lines = splitter.feed(raw) + splitter.finish()
    check_bulk_count(len(lines), settings)
    new_items: list[NewItem] = []
    for index, (number, line) in enumerate(lines):
        try:
            item = ItemIn.model_validate_json(line or b"")
            check_item(item, settings, f"items.{index}.")
        except ValidationError as exc:
            error = validation_error(exc.errors(include_url=False))
        except ApiError as exc:
            error = exc
        else:
            new_items.append(item.to_item())
            continue
        param = f"items.{index}.{error.param}" if error.param else f"items.{index}"
        message = "not valid JSON." if error.code == "invalid_json" else error.message
        raise ApiError(error.status, error.code, f"Line {number}: {message}", param)
    return new_items


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
        raise _not_found(object_id)
    return item


@router.delete("/{object_id:path}", status_code=204, response_class=Response, response_model=None)
def delete_item(object_id: ClientId, engine: EngineDep) -> Response:
    with write_transaction(engine) as conn:
        deleted = store.delete_item(conn, object_id)
    if not deleted:
        raise _not_found(object_id)
    return Response(status_code=204)

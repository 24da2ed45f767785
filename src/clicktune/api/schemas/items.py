"""Catalog items as the API takes and gives them; an item as sent is
`clicktune.ingest.items`'s model."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from clicktune.ingest.items import ItemIn


class BulkItemsIn(BaseModel):
    items: list[ItemIn]


class ItemOut(BaseModel):
    object_id: str
    text: str | None
    fields: dict[str, Any]
    meta: dict[str, Any]
    updated_at: float = Field(description="UNIX epoch seconds of the last upsert.")


class ItemsPage(BaseModel):
    items: list[ItemOut]
    next_after: str | None = Field(
        description="Pass as `after` for the next page; null at the end."
    )


class BulkUpserted(BaseModel):
    upserted: int

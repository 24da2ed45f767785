"""Catalog items as the API takes and gives them."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, Field, model_validator
from pydantic_core import PydanticCustomError

from clicktune.api.errors import ApiError
from clicktune.api.schemas.common import (
    MAX_TEXT_CHARS,
    ClientId,
    JsonObject,
    Text,
    check_json_size,
)
from clicktune.settings import Settings
from clicktune.store.items import NewItem


class ItemBody(BaseModel):
    text: Text | None = Field(
        None, max_length=MAX_TEXT_CHARS, description="The item's text as a whole."
    )
    fields: JsonObject | None = Field(
        None, description="Named parts of the item (title, description, …)."
    )
    meta: JsonObject = Field(
        default_factory=dict,
        validation_alias=AliasChoices("meta", "item_info"),
        description="Anything else; not used for training by default.",
    )

    @model_validator(mode="after")
    def _has_content(self) -> ItemBody:
        if not self.text and not self.fields:
            raise PydanticCustomError("invalid_value", "at least one of text or fields is required")
        return self

    def to_new_item(self, object_id: str) -> NewItem:
        return {
            "object_id": object_id,
            "text": self.text,
            "fields": self.fields or {},
            "meta": self.meta,
        }


class ItemIn(ItemBody):
    """An item in a bulk request or an NDJSON line: its object_id included."""

    object_id: ClientId

    def to_item(self) -> NewItem:
        return self.to_new_item(self.object_id)


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


def check_item(item: ItemBody, settings: Settings, prefix: str = "") -> None:
    """The item's meta within the size limit (`ApiError` 422)."""
    check_json_size(item.meta, settings.max_meta_bytes, f"{prefix}meta")


def check_bulk_count(count: int, settings: Settings) -> None:
    if count > settings.max_bulk_items:
        raise ApiError(
            422,
            "too_many_items",
            f"The request has {count} items; at most {settings.max_bulk_items} are allowed.",
            "items",
        )

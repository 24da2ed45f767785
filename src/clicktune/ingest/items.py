"""Catalog items as clients send them, and the checks they pass."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, Field, model_validator
from pydantic_core import PydanticCustomError

from clicktune.errors import InvalidInput
from clicktune.ingest.fields import MAX_TEXT_CHARS, ClientId, JsonObject, Text, check_json_size
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


def check_item(item: ItemBody, settings: Settings, prefix: str = "") -> None:
    """The item's meta within the size limit (`InvalidInput`)."""
    check_json_size(item.meta, settings.max_meta_bytes, f"{prefix}meta")


def check_bulk_count(count: int, settings: Settings) -> None:
    if count > settings.max_bulk_items:
        raise InvalidInput(
            f"The request has {count} items; at most {settings.max_bulk_items} are allowed.",
            "items",
            code="too_many_items",
        )

"""OpenAI-style embeddings requests and responses."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic_core import PydanticCustomError

from clicktune.ingest.fields import ClientId, NonEmptyText


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: str | list[str] = Field(description="A text or a list of texts to embed.")
    model: Annotated[NonEmptyText, StringConstraints(max_length=256)] = Field(
        description=(
            "A method name (its champion), `<method>@champion`, `<method>@challenger`, "
            "`<method>@ab` (each `user` to one of the two, stably), or a task id (that task's "
            "best model)."
        )
    )
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="`base64`: little-endian float32 bytes, as OpenAI clients ask for."
    )
    user: ClientId | None = Field(
        None, description="The end user (OpenAI's field); `<method>@ab` routes by it."
    )
    dimensions: int | None = Field(
        None,
        strict=True,
        ge=1,
        description="Keep the first `dimensions` of each vector, scaled back to unit length.",
    )

    @field_validator("input", mode="before")
    @classmethod
    def _strings(cls, value: Any) -> Any:
        """One clear message (param `input`) instead of one per member of the union."""
        if isinstance(value, str):
            return value
        if not isinstance(value, list):
            raise PydanticCustomError("invalid_value", "must be a string or a list of strings")
        for index, text in enumerate(value):
            if not isinstance(text, str):
                raise PydanticCustomError("invalid_value", f"item {index} must be a string")
        return value


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(
        description="The vector, or its base64 float32 bytes when `encoding_format` is `base64`."
    )


class EmbeddingsUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    model_version: str = Field(
        description="The model that answered: send it back as the sessions' `served_by`."
    )
    usage: EmbeddingsUsage

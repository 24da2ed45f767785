"""Request bodies: content types, the size limit, and NDJSON read as it arrives."""

from __future__ import annotations

import email.message
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from fastapi import Request
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clicktune.api.errors import PayloadTooLarge, UnsupportedMediaType, send_error, status_of
from clicktune.errors import InvalidInput
from clicktune.ingest.ndjson import LineChunks, NumberedLines, parse_ndjson
from clicktune.ingest.validation import Model, parse_json, placed_under

NDJSON_TYPES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/json-lines"}
)


def media_type(request: Request) -> str | None:
    """The request's media type without parameters, lower case; None when not given."""
    header = request.headers.get("content-type")
    if not header:
        return None
    message = email.message.Message()
    message["content-type"] = header
    return message.get_content_type()


def is_json(media: str | None) -> bool:
    return media is not None and (media == "application/json" or media.endswith("+json"))


async def require_json(request: Request) -> None:
    """Dependency: a request that has a body must declare it JSON (`415` otherwise)."""
    if is_json(media_type(request)) or not await request.body():
        return
    raise unsupported_media_type(request, "application/json")


def unsupported_media_type(request: Request, expected: str) -> UnsupportedMediaType:
    return UnsupportedMediaType(expected, request.headers.get("content-type"))


class BodySizeLimit:
    """ASGI middleware: bodies over their path's limit get `413 payload_too_large`, refused on
    the declared length or as soon as the bytes read pass it, before any parsing.

    `limits` maps a path to its own limit (others get `max_bytes`); `streamed_paths` are read
    incrementally by their endpoints and bound their own memory.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        limits: Mapping[str, int],
        streamed_paths: frozenset[str],
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.limits = dict(limits)
        self.streamed_paths = streamed_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.streamed_paths:
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.max_bytes)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await send_error(send, PayloadTooLarge(limit))
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException: FastAPI turns anything else raised while it reads a
                    # body into 400 bad_request.
                    error = PayloadTooLarge(limit)
                    raise HTTPException(status_of(error), error.message)
            return message

        await self.app(scope, limited_receive, send)


async def raw_body(request: Request) -> bytes:
    """The whole body, for an endpoint that parses it itself (JSON or NDJSON)."""
    return await request.body()


def parse_bulk_body(
    request: Request,
    raw: bytes,
    *,
    envelope: type[BaseModel],
    field: str,
    line: type[Model],
    max_line_bytes: int,
    check_count: Callable[[int], None],
    check: Callable[[Model], None] | None = None,
) -> list[Model]:
    """The objects of a bulk body, all or nothing: `{"<field>": [...]}` as JSON, or NDJSON (one
    object a line). `check_count` sees how many there are first, `check` each one; the first bad
    one is the error, its param `<field>.<index>.…` (and `Line <n>` named for NDJSON)."""
    media = media_type(request)
    if is_json(media):
        parsed = parse_json(raw, envelope)
        if isinstance(parsed, InvalidInput):
            raise parsed
        values: list[Model] = getattr(parsed, field)
        check_count(len(values))
        for index, value in enumerate(values):
            try:
                if check is not None:
                    check(value)
            except InvalidInput as error:
                raise placed_under(error, f"{field}.{index}") from None
        return values
    if media not in NDJSON_TYPES:
        raise unsupported_media_type(request, "application/json or application/x-ndjson")
    return parse_ndjson(
        raw,
        line,
        field=field,
        max_line_bytes=max_line_bytes,
        check_count=check_count,
        check=check,
    )


async def ndjson_chunks(request: Request, chunks: LineChunks) -> AsyncIterator[NumberedLines]:
    """The request body's lines in chunks, read as they arrive (memory: one chunk)."""
    async for data in request.stream():
        for chunk in chunks.feed(data):
            yield chunk
    for chunk in chunks.finish():
        yield chunk


def documented_body(**schemas: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` documenting a body that its endpoint reads itself, one model per media type.

    Keyword names are media types with `_` for `/` and `-` (`application_x_ndjson`).
    """
    content = {
        _media_name(name): {"schema": _inline_refs(model.model_json_schema())}
        for name, model in schemas.items()
    }
    return {"requestBody": {"required": True, "content": content}}


def _media_name(keyword: str) -> str:
    kind, _, subtype = keyword.partition("_")
    return f"{kind}/{subtype.replace('_', '-')}"


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with its `$defs` references replaced by the definitions (ours do not recurse)."""
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(definitions[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(value) for value in node]
        return node

    return resolve(schema)

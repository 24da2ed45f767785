"""Request bodies: content types, the size limit, and NDJSON read line by line."""

from __future__ import annotations

import email.message
import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clicktune.api.errors import ApiError, error_body, validation_error

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


def unsupported_media_type(request: Request, expected: str) -> ApiError:
    given = request.headers.get("content-type") or "none"
    return ApiError(
        415, "unsupported_media_type", f"Content-Type must be {expected} (got {given})."
    )


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
            await self._reject(send, limit)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, _too_large(limit))
            return message

        await self.app(scope, limited_receive, send)

    async def _reject(self, send: Send, limit: int) -> None:
        body = json.dumps(error_body("payload_too_large", _too_large(limit))).encode()
        headers: list[tuple[bytes, bytes]] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _too_large(limit: int) -> str:
    return f"The request body is larger than {limit} bytes."


class LineSplitter:
    """Cuts a byte stream into numbered lines, holding at most one line of `max_line_bytes`.

    A longer line comes out as `(number, None)`; blank lines are counted but not returned.
    """

    def __init__(self, max_line_bytes: int) -> None:
        self.max_line_bytes = max_line_bytes
        self.number = 0
        self._partial = bytearray()
        self._too_long = False

    def feed(self, data: bytes) -> list[tuple[int, bytes | None]]:
        lines: list[tuple[int, bytes | None]] = []
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            self._append(data[start:end])
            self._end_line(lines)
            start = end + 1
        self._append(data[start:])
        return lines

    def finish(self) -> list[tuple[int, bytes | None]]:
        lines: list[tuple[int, bytes | None]] = []
        if self._partial or self._too_long:
            self._end_line(lines)
        return lines

    def _append(self, piece: bytes) -> None:
        if self._too_long:
            return
        self._partial += piece
        if len(self._partial) > self.max_line_bytes:
            self._partial.clear()
            self._too_long = True

    def _end_line(self, lines: list[tuple[int, bytes | None]]) -> None:
        self.number += 1
        if self._too_long:
            lines.append((self.number, None))
        elif self._partial.strip():
            lines.append((self.number, bytes(self._partial)))
        self._partial.clear()
        self._too_long = False


NumberedLines = list[tuple[int, bytes | None]]


class LineChunks:
    """Groups a byte stream's lines into chunks of at most `lines_per_chunk` lines and about
    `bytes_per_chunk` bytes, so an import holds one chunk whatever its lines' sizes."""

    def __init__(self, max_line_bytes: int, lines_per_chunk: int, bytes_per_chunk: int) -> None:
        self.splitter = LineSplitter(max_line_bytes)
        self.lines_per_chunk = lines_per_chunk
        self.bytes_per_chunk = bytes_per_chunk
        self._pending: NumberedLines = []
        self._pending_bytes = 0

    def feed(self, data: bytes) -> list[NumberedLines]:
        """The chunks that `data` completes."""
        return self._collect(self.splitter.feed(data))

    def finish(self) -> list[NumberedLines]:
        """The rest, once the stream has ended."""
        chunks = self._collect(self.splitter.finish())
        if self._pending:
            chunks.append(self._pending)
            self._pending = []
        return chunks

    def _collect(self, lines: NumberedLines) -> list[NumberedLines]:
        chunks: list[NumberedLines] = []
        for number, raw in lines:
            self._pending.append((number, raw))
            self._pending_bytes += len(raw or b"")
            full = len(self._pending) >= self.lines_per_chunk
            if full or self._pending_bytes >= self.bytes_per_chunk:
                chunks.append(self._pending)
                self._pending = []
                self._pending_bytes = 0
        return chunks


Model = TypeVar("Model", bound=BaseModel)


def parse_line(
    raw: bytes, model: type[Model], check: Callable[[Model], None] | None = None
) -> Model | ApiError:
    """One JSON object as `model` (then `check`ed), or the error an endpoint would answer."""
    try:
        try:
            value = model.model_validate_json(raw)
        except ValidationError as exc:
            if exc.errors()[0]["type"] != "json_invalid":
                raise
            # pydantic's parser refuses escaped lone surrogates ("\ud800"), which are JSON:
            # Python's decodes them and the model names the field that cannot hold one.
            try:
                decoded = json.loads(raw)
            except (ValueError, RecursionError):  # not JSON, or nested too deep to be a body
                raise exc from None
            value = model.model_validate(decoded)
        if check is not None:
            check(value)
    except ValidationError as exc:
        return validation_error(exc.errors(include_url=False))
    except ApiError as exc:
        return exc
    return value


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
        parsed = parse_line(raw, envelope)
        if isinstance(parsed, ApiError):
            raise parsed
        values: list[Model] = getattr(parsed, field)
        check_count(len(values))
        for index, value in enumerate(values):
            if check is not None and isinstance(error := parse_checked(value, check), ApiError):
                raise _at(error, f"{field}.{index}")
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


def parse_ndjson(
    raw: bytes,
    line: type[Model],
    *,
    field: str,
    max_line_bytes: int,
    check_count: Callable[[int], None],
    check: Callable[[Model], None] | None = None,
) -> list[Model]:
    """NDJSON as `line` objects, all or nothing (see `parse_bulk_body`)."""
    splitter = LineSplitter(max_line_bytes)
    lines = splitter.feed(raw) + splitter.finish()
    check_count(len(lines))
    values = []
    for index, (number, text) in enumerate(lines):
        result = parse_line(text or b"", line, check)
        if isinstance(result, ApiError):
            error = _at(result, f"{field}.{index}")
            message = "not valid JSON." if error.code == "invalid_json" else error.message
            raise ApiError(error.status, error.code, f"Line {number}: {message}", error.param)
        values.append(result)
    return values


def parse_checked(value: Model, check: Callable[[Model], None]) -> Model | ApiError:
    try:
        check(value)
    except ApiError as exc:
        return exc
    return value


def _at(error: ApiError, where: str) -> ApiError:
    """The error of one object of a bulk body, its param under the object's place."""
    param = f"{where}.{error.param}" if error.param else where
    return ApiError(error.status, error.code, error.message, param)


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

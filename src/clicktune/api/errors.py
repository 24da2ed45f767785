"""The contract's one error body, `{"error": {"code", "message", "param"}}`, on every error path,
and the one table that gives each error code its HTTP status.

Routes raise `ClicktuneError`s, or let those of the layers below pass; one handler answers each
with its code's status. A code missing from the table is a bug, answered 500.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match
from starlette.types import Send

from clicktune.errors import ClicktuneError, DatabaseUnavailable
from clicktune.ingest.validation import invalid_input
from clicktune.jsontext import json_bytes
from clicktune.logs import get_logger
from clicktune.store.clickstream import NothingToRelease
from clicktune.store.engine import DATABASE_OUTAGES

log = get_logger(__name__)

ERROR_STATUS: dict[str | type[ClicktuneError], int] = {
    # The request as HTTP.
    "invalid_json": 400,
    "bad_request": 400,
    "invalid_path": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "too_many_failed_attempts": 429,
    "not_found": 404,
    "method_not_allowed": 405,
    "not_acceptable": 406,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    # Unknown ids.
    "session_not_found": 404,
    "batch_not_found": 404,
    "item_not_found": 404,
    "judgment_set_not_found": 404,
    "task_not_found": 404,
    "event_not_found": 404,
    "method_not_found": 404,
    "model_not_found": 404,
    "no_challenger": 404,
    NothingToRelease: 404,
    # State conflicts.
    "session_conflict": 409,
    "batch_not_released": 409,
    "no_collecting_batch": 409,
    "idempotency_key_reused": 409,
    "task_exists": 409,
    "task_finished": 409,
    "task_not_restartable": 409,
    # Invalid input.
    "invalid_request": 422,
    "invalid_timestamp": 422,
    "duplicate_object": 422,
    "unknown_object": 422,
    "duplicate_judgment": 422,
    "meta_too_large": 422,
    "line_too_long": 422,
    "too_many_search_results": 422,
    "too_many_events": 422,
    "too_many_sessions": 422,
    "too_many_items": 422,
    "too_many_judgments": 422,
    "too_many_inputs": 422,
    "input_too_long": 422,
    "invalid_hyperparameter": 422,
    # A dependency failed: retry later.
    "model_unavailable": 503,
    "model_registry_unavailable": 503,
    "dependency_unavailable": 503,
    "unavailable": 503,
    "internal_error": 500,
}
"""Each code's status. One code has two: `no_collecting_batch` is a conflict for a task create
that needs a batch, but a release that finds nothing collected answers 404 (the collecting batch
it addresses does not exist), so that error is keyed by its type."""

_FRAMEWORK_CODES = (
    "bad_request",
    "not_found",
    "method_not_allowed",
    "not_acceptable",
    "payload_too_large",
    "unsupported_media_type",
)
_CODE_OF_STATUS = {ERROR_STATUS[code]: code for code in _FRAMEWORK_CODES}
"""The code of an error the framework raises with a status of its own (an unknown path, …)."""


class Unauthorized(ClicktuneError):
    code = "unauthorized"


class Forbidden(ClicktuneError):
    code = "forbidden"


class TooManyFailedAttempts(ClicktuneError):
    code = "too_many_failed_attempts"

    def __init__(self, window_s: float) -> None:
        super().__init__(
            f"Too many requests with an unknown API key from this address within "
            f"{window_s:g} s; wait as Retry-After says."
        )


class PayloadTooLarge(ClicktuneError):
    code = "payload_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is larger than {limit} bytes.")


class InvalidPath(ClicktuneError):
    code = "invalid_path"

    def __init__(self) -> None:
        super().__init__(
            "The path's percent-escapes are not UTF-8: an id in a path is UTF-8, escaped byte "
            "by byte."
        )


class UnsupportedMediaType(ClicktuneError):
    code = "unsupported_media_type"

    def __init__(self, expected: str, given: str | None) -> None:
        super().__init__(f"Content-Type must be {expected} (got {given or 'none'}).")


CLIENT_CLOSED_REQUEST = 499
"""What `/metrics` counts for a request whose client went away before its body arrived (as
nginx does): not the server's failure, so never a 5xx."""


def status_of(error: ClicktuneError) -> int:
    """The error's status from `ERROR_STATUS`: by its type where that has one, else its code."""
    status = ERROR_STATUS.get(type(error)) or ERROR_STATUS.get(error.code)
    if status is None:
        log.error("error_code_without_status", code=error.code)
        return 500
    return status


def error_body(error: ClicktuneError) -> dict[str, Any]:
    return {"error": error.detail()}


RETRY_AFTER_S = 2
"""What a 503 asks a client to wait before it retries (the bundled client honours it)."""


def error_response(error: ClicktuneError, headers: dict[str, str] | None = None) -> JSONResponse:
    status = status_of(error)
    if status == 503:
        headers = {"Retry-After": str(RETRY_AFTER_S), **(headers or {})}
    return JSONResponse(status_code=status, content=error_body(error), headers=headers)


async def send_error(send: Send, error: ClicktuneError) -> None:
    """Answer with `error` from an ASGI middleware, before any route (the connection closes)."""
    body = json_bytes(error_body(error))
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status_of(error), "headers": headers})
    await send({"type": "http.response.body", "body": body})


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method a route has for this path (the router names only the first route's, and
    FastAPI makes a route per method)."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ClicktuneError)
    async def _clicktune_error(_request: Request, exc: ClicktuneError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(invalid_input(exc.errors(), located=True))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _CODE_OF_STATUS.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else "HTTP error"
        content = error_body(ClicktuneError(message, code=code))
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return JSONResponse(status_code=exc.status_code, content=content, headers=headers)

    async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning(
            "database_unavailable",
            method=request.method,
            path=request.url.path,
            error=type(exc).__name__,
        )
        return error_response(DatabaseUnavailable())

    for outage in DATABASE_OUTAGES:
        app.add_exception_handler(outage, _database_unavailable)

    @app.exception_handler(ClientDisconnect)
    async def _client_disconnected(request: Request, _exc: ClientDisconnect) -> Response:
        log.info("client_disconnected", method=request.method, path=request.url.path)
        return Response(status_code=CLIENT_CLOSED_REQUEST)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", path=request.url.path, method=request.method)
        return error_response(ClicktuneError("Internal server error (a bug; see the logs)."))

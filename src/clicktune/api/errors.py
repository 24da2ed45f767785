"""The contract's one error body, `{"error": {"code", "message", "param"}}`, on every error path."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from clicktune.logs import get_logger
from clicktune.store.clickstream import ClickstreamError

log = get_logger(__name__)


class ApiError(Exception):
    """Raised anywhere below a route to answer with the contract's error body."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param


def store_error(error: ClickstreamError, status: int) -> ApiError:
    """A store's refusal (it carries the contract's code) as this endpoint answers it."""
    return ApiError(status, error.code, error.message, error.param)


def error_body(code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "param": param}}


def error_response(status: int, code: str, message: str, param: str | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content=error_body(code, message, param))


_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


def _param_path(loc: tuple[Any, ...], located: bool) -> str | None:
    """`a.0.b` from a pydantic location; `located`: its first part says where in the request
    (FastAPI's `body`, `query`, …), not a field."""
    if located and loc and loc[0] in _LOCATIONS:
        loc = loc[1:]
    return ".".join(str(part) for part in loc) or None


def validation_error(errors: Sequence[Any], *, located: bool = False) -> ApiError:
    """The contract's error for pydantic validation errors: the first one names the param.

    `located`: the errors are FastAPI's request errors (their locations start with where in
    the request); else a model validated the body itself.
    """
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    if first.get("type") == "json_invalid":
        return ApiError(400, "invalid_json", "The request body is not valid JSON.")
    param = _param_path(tuple(first.get("loc", ())), located)
    ctx_code = (first.get("ctx") or {}).get("code") if isinstance(first.get("ctx"), dict) else None
    code = ctx_code or "invalid_request"
    message = str(first.get("msg", "invalid request"))
    if param:
        message = f"{param}: {message}"
    return ApiError(422, code, message, param)


def _validation_response(exc: RequestValidationError) -> JSONResponse:
    error = validation_error(exc.errors(), located=True)
    return error_response(error.status, error.code, error.message, error.param)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.param)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else "HTTP error"
        return error_response(exc.status_code, code, message)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", path=request.url.path, method=request.method)
        return error_response(500, "internal_error", "Internal server error (a bug; see the logs).")

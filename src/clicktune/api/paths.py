"""Paths as clients send them: ids in a path are UTF-8, percent-escaped byte by byte, without
control characters (as ids anywhere)."""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

from clicktune.api.errors import InvalidPath, send_error
from clicktune.errors import InvalidInput

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class PathGuard:
    """ASGI middleware: a path whose escapes do not decode as UTF-8 gets `400 invalid_path`;
    one with control characters `422 invalid_request` (param `path`).

    The server decodes bad escapes to U+FFFD, so `PUT /items/a%FF` and `PUT /items/a%FE` would
    name, and overwrite, the same item; and a route does not match a newline, so an id holding
    one could be stored (in a body) but never read or deleted by its path.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and b"%" in scope.get("raw_path", b""):
            try:
                path = unquote_to_bytes(scope["raw_path"]).decode("utf-8")
            except UnicodeDecodeError:
                await send_error(send, InvalidPath())
                return
            if _CONTROL.search(path):
                error = InvalidInput("path: must not contain control characters", "path")
                await send_error(send, error)
                return
        await self.app(scope, receive, send)

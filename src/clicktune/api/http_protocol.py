"""The API's HTTP/1.1 connections: uvicorn's httptools protocol with bounds on what a client may
send before the application sees a request.

Under httptools, uvicorn limits neither the size nor the duration of a request's head: a 120 MiB
header was read whole (buffered by the parser) before any check, and while it uploaded, other
requests waited seconds. Here the head is refused with `431` once it passes `max_head_bytes` or
`max_headers` fields, a head that takes longer than `head_timeout_s` to arrive gets `408`, and a
body that stops arriving for `body_idle_timeout_s` closes the connection. Every refusal closes the
connection, so memory per connection stays bounded by the limit plus one read.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from clicktune.jsontext import json_bytes
from clicktune.logs import get_logger

log = get_logger(__name__)

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


@dataclass(frozen=True)
class ConnectionLimits:
    """What one request may send before the application sees it, and how slowly."""

    max_head_bytes: int = 65536
    """Request line and header fields together, in bytes."""
    max_headers: int = 100
    head_timeout_s: float = 10.0
    """From a request's first byte to the end of its head."""
    body_idle_timeout_s: float = 30.0
    """Longest pause in a body that is being read."""


def bounded_protocol(limits: ConnectionLimits) -> type[BoundedHttpToolsProtocol]:
    """The protocol class to give `uvicorn.run(http=…)`, carrying these limits."""
    return type("BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), {"limits": limits})


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    limits: ClassVar[ConnectionLimits] = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase: Literal["idle", "head", "body"] = "idle"
        self._head_bytes = 0
        self._refused = False
        self._timer: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        if self._refused or self.transport.is_closing():
            self._cancel_timer()
            return
        if self._phase == "head":
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_head_bytes:
                self._refuse(431, "header_too_large", self._too_large())
            elif self._timer is None:
                self._arm(self.limits.head_timeout_s, self._head_timed_out)
        elif self._phase == "body":
            self._arm(self.limits.body_idle_timeout_s, self._body_timed_out)

    def on_message_begin(self) -> None:
        self._phase = "head"
        self._head_bytes = 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.limits.max_head_bytes or len(self.headers) > self.limits.max_headers:
            self._refuse(431, "header_too_large", self._too_large())
            return
        self._cancel_timer()
        self._phase = "body"
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._cancel_timer()
        self._phase = "idle"
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        super().connection_lost(exc)

    def _too_large(self) -> str:
        return (
            f"The request's head is larger than {self.limits.max_head_bytes} bytes or has more "
            f"than {self.limits.max_headers} header fields."
        )

    def _arm(self, delay: float, callback: Any) -> None:
        self._cancel_timer()
        self._timer = self.loop.call_later(delay, callback)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_timed_out(self) -> None:
        self._timer = None
        self._refuse(
            408,
            "request_timeout",
            f"The request's head did not arrive within {self.limits.head_timeout_s:g} s.",
        )

    def _body_timed_out(self) -> None:
        self._timer = None
        if self.flow.read_paused:  # the application is not reading: not the client's pause
            self._arm(self.limits.body_idle_timeout_s, self._body_timed_out)
            return
        log.info(
            "request_body_timeout",
            client=_peer(self.client),
            idle_s=self.limits.body_idle_timeout_s,
        )
        self._refused = True
        self.transport.close()

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer in the contract's error format and close: nothing of the request reaches the
        application."""
        self._refused = True
        self._cancel_timer()
        log.info("request_refused", status=status, code=code, client=_peer(self.client))
        body = json_bytes({"error": {"code": code, "message": message, "param": None}})
        head = b"".join(
            (
                b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status]),
                b"content-type: application/json\r\n",
                b"content-length: %d\r\n" % len(body),
                b"connection: close\r\n\r\n",
            )
        )
        if not self.transport.is_closing():
            self.transport.write(head + body)
            self.transport.close()


def _peer(client: tuple[str, int] | None) -> str | None:
    return None if client is None else f"{client[0]}:{client[1]}"

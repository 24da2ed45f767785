"""Structured logging for every process: key=value text by default, JSON lines on request."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Sequence
from typing import Any

import structlog

from clicktune.settings import redact


def configure_logging(level: str = "INFO", json: bool = False, secrets: Sequence[str] = ()) -> None:
    """`secrets` (keys, passwords) never reach a log line: each is replaced by `***`; control
    characters a client sent (in a path, an id) are written escaped, never raw to a terminal."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            _Redact(secrets),
            _escape_control_characters,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    access = logging.getLogger("uvicorn.access")
    for old in [f for f in access.filters if isinstance(f, AccessLogRedaction)]:
        access.removeFilter(old)
    access.addFilter(AccessLogRedaction(secrets))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)


class _Redact:
    def __init__(self, secrets: Sequence[str]) -> None:
        self.secrets = [s for s in secrets if s]

    def __call__(self, _logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
        if not self.secrets:
            return event
        return {key: self._redact(value) for key, value in event.items()}

    def _redact(self, value: Any) -> Any:
        if value is None or isinstance(value, bool | int | float):
            return value
        text = value if isinstance(value, str) else str(value)
        redacted = redact(text, self.secrets)
        return value if redacted == text else redacted


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_RAW_FIELDS = {"event": "", "exception": "\n\t", "stack": "\n\t"}
"""The fields a text line writes as they are (each with the control characters that are ours:
a traceback's line breaks); every other value is quoted and escaped by the renderer."""


def escape_control(text: str, keep: str = "") -> str:
    """`text` with control characters written as `\\xNN` escapes (but those in `keep`)."""
    return _CONTROL.sub(
        lambda found: found[0] if found[0] in keep else f"\\x{ord(found[0]):02x}", text
    )


def _escape_control_characters(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key, keep in _RAW_FIELDS.items():
        value = event.get(key)
        if isinstance(value, str):
            event[key] = escape_control(value, keep)
    return event


_SECRET_PARAMETER = re.compile(
    r"((?:^|[?&])[^=&]*(?:key|token|secret|password|auth)[^=&]*=)[^&]*", re.IGNORECASE
)


class AccessLogRedaction(logging.Filter):
    """uvicorn's access line shows the query string: a key a client put there (`?api_key=…`)
    is written as `***`, as are configured secrets anywhere in the line and control
    characters."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self._clean(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True

    def _clean(self, text: str) -> str:
        path, mark, query = text.partition("?")
        if mark:
            text = path + mark + _SECRET_PARAMETER.sub(r"\1***", query)
        return escape_control(redact(text, self.secrets))

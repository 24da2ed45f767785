"""Structured logging for every process: key=value text by default, JSON lines on request."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

import structlog

from clicktune.settings import redact


def configure_logging(level: str = "INFO", json: bool = False, secrets: Sequence[str] = ()) -> None:
    """`secrets` (keys, passwords) never reach a log line: each is replaced by `***`."""
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
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


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

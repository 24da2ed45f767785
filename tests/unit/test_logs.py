"""Log lines never carry a client's control characters raw, nor a key put in a query string."""

from __future__ import annotations

import logging

import pytest

from clicktune.logs import AccessLogRedaction, configure_logging, get_logger


def test_control_characters_in_fields_are_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    logger = get_logger("test")
    logger.info("request_unauthorized", path="/api/v1/items/\x1b[2Jx\nforged=1")
    logger.info("a message from \x1b[2J\n\x9b a client")
    lines = capsys.readouterr().err
    assert "\x1b" not in lines and "\x9b" not in lines
    assert "\\x1b[2Jx\\nforged=1" in lines and "from \\x1b[2J\\x0a\\x9b a client" in lines
    assert lines.count("\n") == 2


def test_tracebacks_keep_their_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    try:
        raise ValueError("boom")
    except ValueError:
        get_logger("test").exception("failed")
    assert "Traceback (most recent call last):\n" in capsys.readouterr().err


def test_the_access_line_hides_keys_in_query_strings() -> None:
    configure_logging("INFO", secrets=["s3cr3t-admin-key"])
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        (
            "127.0.0.1:5",
            "GET",
            "/api/v1/clickstream/batches?api_key=abc123&limit=7&x=s3cr3t-admin-key&t=%1b\x1b",
            "1.1",
            200,
        ),
        None,
    )
    for log_filter in logging.getLogger("uvicorn.access").filters:
        assert log_filter.filter(record)
    message = record.getMessage()
    assert "abc123" not in message and "s3cr3t" not in message and "\x1b" not in message
    assert "api_key=***&limit=7&x=***&t=%1b\\x1b" in message


def test_configuring_twice_keeps_one_redaction_filter() -> None:
    configure_logging("INFO", secrets=["a-key-of-some-length"])
    configure_logging("INFO", secrets=["a-key-of-some-length"])
    access = logging.getLogger("uvicorn.access").filters
    assert sum(isinstance(f, AccessLogRedaction) for f in access) == 1

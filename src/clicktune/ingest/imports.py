"""NDJSON imports of clickstream and items, chunk by chunk, and of judged sets: shared by the API
and the CLI.

A bad line is reported with the error the endpoint for one such object would give, and skipped;
the good lines of every chunk are stored. Memory holds one chunk and the first error reports.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from clicktune.errors import ClicktuneError, InvalidJson
from clicktune.ingest.clickstream import SessionImportIn, check_session_with_events
from clicktune.ingest.items import ItemIn, check_item
from clicktune.ingest.judgments import JudgmentIn, check_judgment_count, check_judgments
from clicktune.ingest.ndjson import LineChunks, LineTooLong, NumberedLines, parse_ndjson
from clicktune.ingest.validation import Model, parse_json
from clicktune.settings import Settings
from clicktune.store.clickstream import import_sessions
from clicktune.store.engine import write_transaction
from clicktune.store.items import upsert_items
from clicktune.store.judgments import replace_judgment_set
from clicktune.timeutil import now as current_time

LINES_PER_CHUNK = 500
# A chunk holds at most about this many lines of the largest size allowed.
CHUNK_LINES_OF_MAX_SIZE = 2
MAX_REPORTED_ERRORS = 1000

# A rejected line: (line number, its error).
LineError = tuple[int, ClicktuneError]


class _LineErrors:
    def __init__(self) -> None:
        self.reported: list[dict[str, Any]] = []
        self.total = 0

    def extend(self, errors: list[LineError]) -> None:
        for line, error in sorted(errors, key=lambda numbered: numbered[0]):
            self.total += 1
            if len(self.reported) < MAX_REPORTED_ERRORS:
                self.reported.append({"line": line, "error": error.detail()})


def _parse_lines(
    lines: NumberedLines, model: type[Model], check: Callable[[Model], None], max_line_bytes: int
) -> tuple[list[tuple[int, Model]], list[LineError]]:
    """Each line validated like the body of the endpoint for one object: (good, errors)."""
    good: list[tuple[int, Model]] = []
    errors: list[LineError] = []
    for number, raw in lines:
        parsed = LineTooLong(max_line_bytes) if raw is None else parse_json(raw, model, check)
        if not isinstance(parsed, ClicktuneError):
            good.append((number, parsed))
        elif isinstance(parsed, InvalidJson):
            errors.append((number, InvalidJson("The line is not valid JSON.")))
        else:
            errors.append((number, parsed))
    return good, errors


class ClickstreamImport:
    """One import of session lines (`POST /clickstream/import`, `clicktune import-clickstream`)."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.max_line_bytes = settings.max_session_bytes
        self.sessions = 0
        self.events = 0
        self.duplicates = 0
        self.errors = _LineErrors()

    def add(self, lines: NumberedLines) -> None:
        now = current_time()

        def check(line: SessionImportIn) -> None:
            check_session_with_events(line, self.settings, now, check_age=False)

        good, errors = _parse_lines(lines, SessionImportIn, check, self.max_line_bytes)
        if good:
            incoming = [line.to_incoming(number) for number, line in good]
            with write_transaction(self.engine) as conn:
                result = import_sessions(conn, incoming)
            self.sessions += result.sessions
            self.events += result.events
            self.duplicates += result.duplicates
            errors += result.errors
        self.errors.extend(errors)

    def report(self) -> dict[str, Any]:
        return {
            "sessions": self.sessions,
            "events": self.events,
            "duplicates": self.duplicates,
            "errors": self.errors.reported,
            "errors_total": self.errors.total,
        }


class ItemsImport:
    """One import of item lines (`clicktune import-items`)."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.max_line_bytes = settings.max_request_bytes
        self.upserted = 0
        self.errors = _LineErrors()

    def add(self, lines: NumberedLines) -> None:
        good, errors = _parse_lines(
            lines, ItemIn, lambda item: check_item(item, self.settings), self.max_line_bytes
        )
        if good:
            with write_transaction(self.engine) as conn:
                self.upserted += upsert_items(conn, [item.to_item() for _, item in good])
        self.errors.extend(errors)

    def report(self) -> dict[str, Any]:
        return {
            "upserted": self.upserted,
            "errors": self.errors.reported,
            "errors_total": self.errors.total,
        }


def import_chunks(max_line_bytes: int) -> LineChunks:
    """How an import cuts its lines: `LINES_PER_CHUNK` lines, or fewer when they are long."""
    return LineChunks(max_line_bytes, LINES_PER_CHUNK, CHUNK_LINES_OF_MAX_SIZE * max_line_bytes)


def import_file(
    path: Path, run: ClickstreamImport | ItemsImport, advance: Callable[[int], None]
) -> None:
    """Feed a JSONL file to an import chunk by chunk; `advance` gets each block's byte count."""
    chunks = import_chunks(run.max_line_bytes)
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            for chunk in chunks.feed(block):
                run.add(chunk)
            advance(len(block))
    for chunk in chunks.finish():
        run.add(chunk)


def import_judgments(path: Path, set_id: str, engine: Engine, settings: Settings) -> dict[str, Any]:
    """Replace the judged set `set_id` with a JSONL file's judgments, all or nothing (as
    `PUT /judgments/{set_id}` with NDJSON); an `InvalidInput` names the first bad line."""
    judgments = parse_ndjson(
        path.read_bytes(),
        JudgmentIn,
        field="judgments",
        max_line_bytes=settings.max_request_bytes,
        check_count=lambda count: check_judgment_count(count, settings),
    )
    rows = check_judgments(judgments, settings)
    with write_transaction(engine) as conn:
        summary, unknown = replace_judgment_set(conn, set_id, rows)
    return {
        "set_id": summary.set_id,
        "queries": summary.queries,
        "judgments": summary.judgments,
        "unknown_objects": unknown,
    }

"""NDJSON: a byte stream cut into numbered lines, and lines parsed as input objects."""

from __future__ import annotations

from collections.abc import Callable

from clicktune.errors import InvalidInput
from clicktune.ingest.validation import Model, parse_json, placed_under


class LineTooLong(InvalidInput):
    code = "line_too_long"

    def __init__(self, max_line_bytes: int) -> None:
        super().__init__(f"The line is longer than {max_line_bytes} bytes.")


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


def parse_ndjson(
    raw: bytes,
    line: type[Model],
    *,
    field: str,
    max_line_bytes: int,
    check_count: Callable[[int], None],
    check: Callable[[Model], None] | None = None,
) -> list[Model]:
    """NDJSON as `line` objects, all or nothing: `check_count` sees how many lines there are
    first, `check` each object; the first bad line is the error, `Line <n>: …`, its param
    `<field>.<index>.…`."""
    splitter = LineSplitter(max_line_bytes)
    lines = splitter.feed(raw) + splitter.finish()
    check_count(len(lines))
    values = []
    for index, (number, text) in enumerate(lines):
        result = LineTooLong(max_line_bytes) if text is None else parse_json(text, line, check)
        if isinstance(result, InvalidInput):
            error = placed_under(result, f"{field}.{index}")
            message = "not valid JSON." if error.code == "invalid_json" else error.message
            raise InvalidInput(f"Line {number}: {message}", error.param, code=error.code)
        values.append(result)
    return values

"""An import holds one chunk of lines: at most so many lines, and about so many bytes."""

from __future__ import annotations

from clicktune.ingest.ndjson import LineChunks


def test_chunks_are_cut_by_count_and_by_bytes() -> None:
    chunks = LineChunks(max_line_bytes=100, lines_per_chunk=4, bytes_per_chunk=150)
    body = b"a\nb\nc\nd\n" + b"x" * 90 + b"\n" + b"y" * 90 + b"\n" + b"z" * 500 + b"\nlast"
    got = [chunk for piece in (body[:5], body[5:]) for chunk in chunks.feed(piece)]
    got += chunks.finish()
    assert [[(n, (line or b"")[:1]) for n, line in chunk] for chunk in got] == [
        [(1, b"a"), (2, b"b"), (3, b"c"), (4, b"d")],
        [(5, b"x"), (6, b"y")],
        [(7, b""), (8, b"l")],
    ]
    assert got[2][0] == (7, None)  # longer than max_line_bytes: reported, never held

"""Deliver simulated traffic to a clicktune service, as a search application would.

Live: sessions with their events inline, a batch per `POST /clickstream/sessions`, then the
irrelevant marks, sent by a few concurrent workers. Historical: one streamed NDJSON body for
`POST /clickstream/import`, or a file for `clicktune import-clickstream`. Both are safe to
repeat: ids derive from the seed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clicktune.client import ClicktuneClient, ErrorResponse
from clicktune.simulate.collection import Collection, Document
from clicktune.simulate.sessions import SimulatedSession


@dataclass
class SendStats:
    sessions: int = 0
    events: int = 0
    irrelevant: int = 0

    def add(self, other: SendStats) -> None:
        self.sessions += other.sessions
        self.events += other.events
        self.irrelevant += other.irrelevant


def item_body(document: Document) -> dict[str, Any]:
    """A catalog item: `text` is exactly what the serving model embedded, `fields` for display."""
    return {
        "object_id": document.id,
        "text": document.content,
        "fields": {"title": document.title, **document.extra},
    }


def load_items(
    client: ClicktuneClient,
    collection: Collection,
    *,
    chunk_size: int = 1000,
    on_chunk: Callable[[int], None] | None = None,
) -> int:
    """Upsert the whole corpus into the service's catalog (`POST /items/bulk`, chunked)."""
    items = (item_body(document) for document in collection.documents)
    return client.bulk_items(items, chunk_size=chunk_size, on_chunk=on_chunk)


def send_batch(client: ClicktuneClient, batch: Sequence[SimulatedSession]) -> SendStats:
    """One `POST /clickstream/sessions` with the batch (events inline), then the irrelevant
    marks; a refused session raises, as a search application should notice."""
    answer = client.create_sessions([session.live_body() for session in batch])
    if answer["errors"]:
        first = answer["errors"][0]
        error = first["error"]
        message = f"session {first['index']} of the batch: {error['message']}"
        raise ErrorResponse(422, error["code"], message, error["param"])
    irrelevant = [session for session in batch if session.outcome.irrelevant]
    for session in irrelevant:
        client.mark_irrelevant(session.session_id)
    return SendStats(
        sessions=len(batch),
        events=sum(len(session.outcome.interactions) for session in batch),
        irrelevant=len(irrelevant),
    )


def send_sessions(
    client: ClicktuneClient,
    sessions: Iterable[SimulatedSession],
    *,
    batch_size: int = 50,
    concurrency: int = 2,
    on_session: Callable[[SimulatedSession], None] | None = None,
) -> SendStats:
    """Send every session through the live batch endpoint, `batch_size` sessions a request and
    `concurrency` requests at a time."""
    items = list(sessions)
    batches = [items[start : start + batch_size] for start in range(0, len(items), batch_size)]
    total = SendStats()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        sent = pool.map(lambda batch: send_batch(client, batch), batches)
        for batch, stats in zip(batches, sent, strict=True):
            total.add(stats)
            if on_session is not None:
                for session in batch:
                    on_session(session)
    return total


def import_lines(sessions: Iterable[SimulatedSession]) -> Iterator[dict[str, Any]]:
    for session in sessions:
        yield session.import_line()


def import_sessions(
    client: ClicktuneClient, sessions: Iterable[SimulatedSession]
) -> dict[str, Any]:
    """Send all sessions in one streamed `POST /clickstream/import`; answers the import report."""
    return client.import_sessions(import_lines(sessions))


def write_ndjson(path: Path, sessions: Iterable[SimulatedSession]) -> int:
    """Write the sessions as an import file; returns the number of lines."""
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for line in import_lines(sessions):
            handle.write(json.dumps(line, separators=(",", ":")) + "\n")
            count += 1
    return count

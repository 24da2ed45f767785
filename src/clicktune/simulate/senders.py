"""Deliver simulated traffic to a clicktune service, as a search application would.

Live: one `POST /clickstream/session` per session, its events, and the irrelevant mark, sent by a
few concurrent workers. Historical: one streamed NDJSON body for `POST /clickstream/import`, or a
file for `clicktune import-clickstream`. Both are safe to repeat: ids derive from the seed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clicktune.client import ClicktuneClient
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


def send_session(client: ClicktuneClient, session: SimulatedSession) -> SendStats:
    body = session.session_body()
    events = session.events_body()
    client.create_session(
        body["session_id"],
        body["search_query"],
        body["search_results"],
        search_meta=body["search_meta"],
        user_id=body.get("user_id"),
        served_by=body.get("served_by"),
        events=None if events is None else events["events"],
    )
    if session.outcome.irrelevant:
        client.mark_irrelevant(session.session_id)
    return SendStats(
        sessions=1,
        events=len(session.outcome.interactions),
        irrelevant=int(session.outcome.irrelevant),
    )


def send_sessions(
    client: ClicktuneClient,
    sessions: Iterable[SimulatedSession],
    *,
    concurrency: int = 4,
    on_session: Callable[[SimulatedSession], None] | None = None,
) -> SendStats:
    """Send every session through the live endpoints with `concurrency` parallel requests."""
    items = list(sessions)
    total = SendStats()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        sent = pool.map(lambda session: send_session(client, session), items)
        for session, stats in zip(items, sent, strict=True):
            total.add(stats)
            if on_session is not None:
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

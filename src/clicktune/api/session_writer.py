"""Group commit for `POST /clickstream/session`: one thread stores every registration waiting
at that moment in one transaction.

A request per search is the common case. Stored one transaction per request, each on its own
threadpool thread, a session cost about eight times an empty endpoint's server CPU, most of it
threads contending for the GIL and the database's write lock, the rest a transaction's fixed
statements (bench/RESULTS.md, Ingest). Here requests wait on a future in the event loop while
the writer stores them together: one transaction, one reservation of session numbers, one
`executemany` per table, and each request still gets its own outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from clicktune.api.metrics import ApiMetrics
from clicktune.logs import get_logger
from clicktune.store import clickstream as store
from clicktune.store.engine import DATABASE_OUTAGES, write_transaction

log = get_logger(__name__)

MAX_GROUP = 256
"""Most registrations in one transaction: bounds a group's latency and its statement sizes."""

Outcome = store.RegisteredSession | store.ClickstreamError | Exception


@dataclass(frozen=True)
class _Waiting:
    session: store.NewSession
    events: list[store.NewEvent]
    future: asyncio.Future[Outcome]
    loop: asyncio.AbstractEventLoop


class SessionWriter:
    """The API's single writer of new sessions; `start` at start-up, `stop` at shutdown (it
    stores what is queued before it returns)."""

    def __init__(self, engine: Engine, metrics: ApiMetrics, max_group: int = MAX_GROUP) -> None:
        self._engine = engine
        self._metrics = metrics
        self._max_group = max_group
        self._queue: queue.SimpleQueue[_Waiting | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="session-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join()

    async def register(
        self, session: store.NewSession, events: list[store.NewEvent]
    ) -> store.RegisteredSession:
        """Store the session with its events as `store.register_session` does; raises its
        `ClickstreamError`s."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._queue.put(_Waiting(session, events, future, loop))
        outcome = await future
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            while len(group) < self._max_group:
                try:
                    waiting = self._queue.get_nowait()
                except queue.Empty:
                    break
                if waiting is None:
                    stopping = True
                    break
                group.append(waiting)
            try:
                self._store(group)
            except Exception as exc:  # a fault of ours: answer the group and keep writing
                log.exception("session_writer_failed", sessions=len(group))
                _answer(group, [exc] * len(group))

    def _store(self, group: list[_Waiting]) -> None:
        lines = [
            store.IncomingSession(index, waiting.session, waiting.events)
            for index, waiting in enumerate(group)
        ]
        try:
            with write_transaction(self._engine) as conn:
                registered, stored = store.register_sessions(conn, lines)
        except DATABASE_OUTAGES as exc:  # each request answers 503; one line, no traceback
            log.warning("session_group_unavailable", sessions=len(group), error=type(exc).__name__)
            _answer(group, [exc] * len(group))
            return
        except Exception as exc:  # the database failed: every request of the group learns it
            log.exception("session_group_failed", sessions=len(group))
            _answer(group, [exc] * len(group))
            return
        _answer(group, registered)
        self._metrics.sessions.inc(stored.sessions)
        self._metrics.events.inc(stored.events)


def _answer(group: list[_Waiting], outcomes: Sequence[Outcome]) -> None:
    for waiting, outcome in zip(group, outcomes, strict=True):
        # A closed event loop (RuntimeError) has nobody left waiting for the answer.
        with contextlib.suppress(RuntimeError):
            waiting.loop.call_soon_threadsafe(_settle, waiting.future, outcome)


def _settle(future: asyncio.Future[Outcome], outcome: Outcome) -> None:
    if not future.done():  # answered already, or the client went away and it was cancelled
        future.set_result(outcome)

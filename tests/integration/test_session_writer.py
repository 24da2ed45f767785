"""The API's group commit of single registrations: each request keeps its own outcome when many
are stored in one transaction. Real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Connection, Engine, select

from clicktune.api.metrics import ApiMetrics
from clicktune.api.session_writer import SessionWriter
from clicktune.store import clickstream as store
from clicktune.store.tables import events, sessions
from tests.integration.test_release_race import click, new_session
from tests.store_support import read, write


def stored_numbers(engine: Engine) -> dict[str, int]:
    def query(conn: Connection) -> dict[str, int]:
        rows = conn.execute(select(sessions.c.session_id, sessions.c.session_number))
        return {session_id: number for session_id, number in rows}

    return read(engine, query)


def stored_events(engine: Engine) -> list[tuple[str, str]]:
    def query(conn: Connection) -> list[tuple[str, str]]:
        rows = conn.execute(select(events.c.session_id, events.c.event_id))
        return sorted((session_id, event_id) for session_id, event_id in rows)

    return read(engine, query)


def test_one_group_answers_each_line_as_a_single_registration_would(engine: Engine) -> None:
    write(engine, store.register_session, new_session("stored"), [click("e-1")])
    conflicting = {**new_session("stored"), "search_query": "something else"}
    lines = [
        store.IncomingSession(0, new_session("a"), [click("e-1"), click("e-1")]),
        store.IncomingSession(1, new_session("a"), [click("e-2", "o-1")]),
        store.IncomingSession(2, conflicting, []),
        store.IncomingSession(3, new_session("b"), [click("e-1", "not-shown")]),
        store.IncomingSession(4, new_session("stored"), [click("e-2")]),
        store.IncomingSession(5, new_session("c"), []),
    ]
    outcomes, counts = write(engine, store.register_sessions, lines)
    first, retry, conflict, unknown, stored, plain = outcomes
    assert isinstance(first, store.RegisteredSession) and first.created
    assert [e["event_id"] for e in first.view["events"]] == ["e-1"]
    assert isinstance(retry, store.RegisteredSession) and not retry.created
    assert [e["event_id"] for e in retry.view["events"]] == ["e-1", "e-2"]
    assert isinstance(conflict, store.SessionConflict)
    assert isinstance(unknown, store.UnknownObject) and unknown.param == "events.0.object_id"
    assert isinstance(stored, store.RegisteredSession) and not stored.created
    assert [e["event_id"] for e in stored.view["events"]] == ["e-1", "e-2"]
    assert isinstance(plain, store.RegisteredSession) and plain.created
    assert plain.view["batch_id"] == first.view["batch_id"] == stored.view["batch_id"]
    assert (counts.sessions, counts.events) == (2, 3)
    assert stored_numbers(engine) == {"stored": 1, "a": 2, "c": 3}
    assert stored_events(engine) == [
        ("a", "e-1"),
        ("a", "e-2"),
        ("stored", "e-1"),
        ("stored", "e-2"),
    ]


@pytest.mark.parametrize("max_group", [1, 4, 256])
def test_concurrent_requests_each_get_their_own_answer(engine: Engine, max_group: int) -> None:
    writer = SessionWriter(engine, ApiMetrics(lambda: engine), max_group=max_group)
    writer.start()

    async def send_all() -> list[store.RegisteredSession | BaseException]:
        requests = []
        for n in range(60):
            session_id = f"s-{n % 40}"  # the last 20 are retries of the first 20
            requests.append(writer.register(new_session(session_id), [click(f"e-{n}")]))
        requests.append(writer.register(new_session("bad"), [click("e-0", "not-shown")]))
        return await asyncio.gather(*requests, return_exceptions=True)

    try:
        answers = asyncio.run(send_all())
    finally:
        writer.stop()
    *answered, refused = answers
    assert isinstance(refused, store.UnknownObject)
    registered = [a for a in answered if isinstance(a, store.RegisteredSession)]
    assert len(registered) == len(answered)
    assert [a.created for a in registered] == [True] * 40 + [False] * 20
    assert [e["event_id"] for e in registered[45].view["events"]] == ["e-5", "e-45"]
    assert sorted(stored_numbers(engine).values()) == list(range(1, 41))
    assert len(stored_events(engine)) == 60


def test_stop_stores_what_was_queued(engine: Engine) -> None:
    writer = SessionWriter(engine, ApiMetrics(lambda: engine))

    async def queue_then_stop() -> list[store.RegisteredSession]:
        requests = [
            asyncio.ensure_future(writer.register(new_session(f"s-{n}"), [])) for n in range(10)
        ]
        await asyncio.sleep(0)  # every request is queued before the writer starts
        writer.start()
        await asyncio.get_running_loop().run_in_executor(None, writer.stop)
        return await asyncio.gather(*requests)

    answers = asyncio.run(queue_then_stop())
    assert all(a.created for a in answers)
    assert len(stored_numbers(engine)) == 10


class _FailingCounter:
    def inc(self, amount: float = 1) -> None:
        raise ValueError("a fault after the commit")


def test_a_fault_after_the_commit_answers_every_request_and_the_writer_goes_on(
    engine: Engine,
) -> None:
    metrics = ApiMetrics(lambda: engine)
    metrics.sessions = _FailingCounter()  # type: ignore[assignment]
    writer = SessionWriter(engine, metrics)
    writer.start()

    async def register(session_id: str) -> store.RegisteredSession:
        return await asyncio.wait_for(writer.register(new_session(session_id), []), 30)

    try:
        first = asyncio.run(register("first"))
        second = asyncio.run(register("second"))
    finally:
        writer.stop()
    assert first.created and second.created
    assert stored_numbers(engine) == {"first": 1, "second": 2}

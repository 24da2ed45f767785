"""Releases racing with registrations, events and retries: nothing lost, nothing counted twice.

Real threads against real SQLite and PostgreSQL (where the row locks, not one write lock, decide).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Engine, func, select

from clicktune.store import clickstream as store
from clicktune.store.engine import read_transaction, write_transaction
from clicktune.store.tables import batches, events, sessions
from tests.store_support import stream, write

REGISTRANTS = 4
SESSIONS_EACH = 40


def new_session(session_id: str) -> store.NewSession:
    return {
        "session_id": session_id,
        "search_query": f"query {session_id}",
        "search_results": [{"object_id": f"o-{i}", "rank": None, "meta": {}} for i in range(3)],
        "search_meta": {},
        "user_id": None,
        "created_at": None,
    }


def click(event_id: str, object_id: str = "o-0") -> store.NewEvent:
    return {
        "event_id": event_id,
        "object_id": object_id,
        "event_type": "click",
        "created_at": None,
        "meta": {},
    }


def run_together(workers: list[Callable[[], Any]]) -> list[Any]:
    """Start every worker at the same moment; their results, re-raising any error."""
    barrier = threading.Barrier(len(workers))

    def start(worker: Callable[[], Any]) -> Any:
        barrier.wait()
        return worker()

    with ThreadPoolExecutor(len(workers)) as pool:
        return [f.result() for f in [pool.submit(start, w) for w in workers]]


def test_release_racing_registrations_keeps_every_session_once(engine: Engine) -> None:
    registering = threading.Event()
    registering.set()

    def registrant(worker: int) -> list[str]:
        registered = []
        for n in range(SESSIONS_EACH):
            session_id = f"w{worker}-s{n}"
            assert write(engine, store.register_session, new_session(session_id)).created
            write(engine, store.add_events, session_id, [click("e-1"), click("e-2", "o-1")])
            if n % 5 == 0:
                write(engine, store.mark_irrelevant, session_id)
            write(engine, store.add_events, session_id, [click("e-3", "o-2")])
            registered.append(session_id)
        return registered

    def releaser() -> list[str]:
        released = []
        attempt = 0
        while registering.is_set():
            attempt += 1
            with write_transaction(engine) as conn:
                summary = store.release_collecting_batch(conn, f"r-{attempt}")
            if summary is not None:
                released.append(summary["batch_id"])
        return released

    def registrants_then_stop() -> list[str]:
        try:
            results = run_together([lambda w=w: registrant(w) for w in range(REGISTRANTS)])
        finally:
            registering.clear()
        return [session_id for result in results for session_id in result]

    registered, released = run_together([registrants_then_stop, releaser])
    with write_transaction(engine) as conn:
        last = store.release_collecting_batch(conn, "r-final")
    if last is not None:
        released.append(last["batch_id"])

    assert len(released) >= 2, "the releases should have interleaved with the registrations"
    with read_transaction(engine) as conn:
        stored = conn.execute(select(sessions.c.session_id, sessions.c.batch_id)).all()
        assert Counter(s.session_id for s in stored) == Counter(registered)
        assert {s.batch_id for s in stored} == set(released)
        total = 0
        for batch_id in released:
            summary = store.get_batch_summary(conn, batch_id)
            assert summary is not None and summary["status"] == "released"
            numbers = conn.execute(
                select(sessions.c.session_number)
                .where(sessions.c.batch_id == batch_id)
                .order_by(sessions.c.session_number)
            ).scalars()
            assert list(numbers) == list(range(1, summary["sessions"] + 1))
            total += summary["sessions"]
            # The frozen counts are exactly the batch's content: nothing stored after the release.
            content = list(stream(engine, store.iter_batch_sessions, batch_id, page_size=7))
            assert len(content) == summary["sessions"]
            assert summary["events"] == sum(len(s["events"]) for s in content)
            assert summary["sessions_with_events"] == sum(1 for s in content if s["events"])
            assert summary["irrelevant_sessions"] == sum(1 for s in content if s["is_irrelevant"])
        assert total == REGISTRANTS * SESSIONS_EACH
        # Every event was stored once, in its batch's content or flagged as after the release.
        assert conn.execute(select(func.count()).select_from(events)).scalar_one() == 3 * total
        collecting = conn.execute(
            select(func.count()).select_from(batches).where(batches.c.status == "collecting")
        ).scalar_one()
        assert collecting == 0


def test_concurrent_releases_with_one_release_id_answer_one_batch(engine: Engine) -> None:
    for n in range(3):
        write(engine, store.register_session, new_session(f"s-{n}"))

    def release() -> str | None:
        with write_transaction(engine) as conn:
            summary = store.release_collecting_batch(conn, "the-release")
        return None if summary is None else summary["batch_id"]

    answers = run_together([release] * 6)
    assert len(set(answers)) == 1 and answers[0] is not None
    with read_transaction(engine) as conn:
        released = store.list_batches(conn, "released", 10, 0)
    assert released[1] == 1 and released[0][0]["sessions"] == 3


def test_concurrent_retries_of_a_session_and_its_events(engine: Engine) -> None:
    created = run_together(
        [
            lambda: write(engine, store.register_session, new_session("twin")).created
            for _ in range(6)
        ]
    )
    assert sorted(created) == [False] * 5 + [True]
    ids = [f"e-{n}" for n in range(20)]
    counts = run_together(
        [lambda: write(engine, store.add_events, "twin", [click(i) for i in ids]) for _ in range(6)]
    )
    assert sum(accepted for accepted, _ in counts) == len(ids)
    assert all(accepted + duplicates == len(ids) for accepted, duplicates in counts)
    incoming = [store.IncomingSession(1, new_session("twin"), [click("e-0"), click("e-new")])]
    imported = run_together(
        [lambda: write(engine, store.import_sessions, incoming) for _ in range(4)]
    )
    assert sum(result.events for result in imported) == 1
    assert all(result.errors == [] and result.sessions == 0 for result in imported)
    with read_transaction(engine) as conn:
        session = store.get_session(conn, "twin")
    assert session is not None and len(session["events"]) == len(ids) + 1

"""The clickstream repository: search sessions, their events and the batches that collect them.

The one collecting batch is a row with `status = 'collecting'` (a partial unique index allows one).
Registering a session increments that row's `sessions` counter (`UPDATE ... RETURNING`) in the
transaction that inserts the session, so the counter's new value is the session's dense
`session_number`, and a release, which locks the row `FOR UPDATE`, sees every session either
before it or not at all: a registration that waited on a release finds no collecting row and
opens the next batch.

Events and irrelevant marks lock their session's batch row `FOR KEY SHARE` (it does not conflict
with a registration's counter update but does with a release) and, when the batch is already
released, are stored flagged post-release: shown on the session, never part of the frozen batch.
On SQLite every write transaction holds the database's write lock, which serializes all of this.

Every function takes the caller's `Connection` (a write transaction for writes); a statement that
may lose a race to a concurrent transaction runs in a savepoint and is resolved inside it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

from sqlalchemy import (
    Connection,
    Row,
    Select,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from clicktune.errors import ClicktuneError
from clicktune.ids import new_id
from clicktune.jsontext import canonical_hash
from clicktune.store.bulk import insert_rows
from clicktune.store.tables import batches, events, sessions
from clicktune.timeutil import now as current_time

COLLECTING = "collecting"
RELEASED = "released"
BATCH_STATUSES = (COLLECTING, RELEASED)

# How often a transaction that lost a race to a concurrent one (PostgreSQL) is tried again.
_RACE_RETRIES = 20

# The hot path's statements, built once: building an expression costs more than running it.
_RESERVE_NUMBERS = (
    update(batches)
    .where(batches.c.status == COLLECTING)
    .values(sessions=batches.c.sessions + bindparam("count"))
    .returning(batches.c.batch_id, batches.c.sessions)
)
_LOCK_SESSION = (
    select(sessions.c.search_results, batches.c.status)
    .select_from(sessions.join(batches, sessions.c.batch_id == batches.c.batch_id))
    .where(sessions.c.session_id == bindparam("session_id"))
    .with_for_update(read=True, key_share=True, of=batches)
)
_LOCK_SESSIONS = (
    select(
        sessions.c.session_id, sessions.c.content_hash, sessions.c.search_results, batches.c.status
    )
    .select_from(sessions.join(batches, sessions.c.batch_id == batches.c.batch_id))
    .where(sessions.c.session_id.in_(bindparam("session_ids", expanding=True)))
    .with_for_update(read=True, key_share=True, of=batches)
)


class SearchResult(TypedDict):
    object_id: str
    rank: float | None
    meta: dict[str, Any]
    served_by: NotRequired[str]
    """Interleaving: the model (team) that contributed this result."""


class NewSession(TypedDict):
    """A session as the client sent it (validated); `created_at` None means server time.

    `served_by` (the model version that produced the results) is present only when sent, so a
    session without it hashes as it did before the field existed.
    """

    session_id: str
    search_query: str
    search_results: list[SearchResult]
    search_meta: dict[str, Any]
    user_id: str | None
    created_at: float | None
    served_by: NotRequired[str]


class NewEvent(TypedDict):
    event_id: str
    object_id: str
    event_type: str
    created_at: float | None
    meta: dict[str, Any]


@dataclass(frozen=True)
class IncomingSession:
    """A session to store with its events, as a live request or an import brings it; `position`
    is its place there (an import's line number, a request's index), by which outcomes are told.
    """

    position: int
    session: NewSession
    events: list[NewEvent]
    is_irrelevant: bool = False


@dataclass
class ImportResult:
    """What storing incoming sessions did; `duplicates` counts sessions and events already stored,
    `errors` the refused ones by position."""

    sessions: int = 0
    events: int = 0
    duplicates: int = 0
    errors: list[tuple[int, ClickstreamError]] = field(default_factory=list)
    created: dict[int, tuple[dict[str, Any], list[dict[str, Any]]]] = field(default_factory=dict)
    """By position: the session row stored and the event rows that session brought."""


class ClickstreamError(ClicktuneError):
    """A request the clickstream cannot accept."""


class SessionNotFound(ClickstreamError):
    code = "session_not_found"

    def __init__(self, session_id: str) -> None:
        super().__init__(f"No session with session_id {session_id!r}.", "session_id")


class SessionConflict(ClickstreamError):
    code = "session_conflict"

    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"Session {session_id!r} is already registered with different content.", "session_id"
        )


class UnknownObject(ClickstreamError):
    code = "unknown_object"

    def __init__(self, object_id: str, param: str) -> None:
        super().__init__(
            f"object_id {object_id!r} is not among the session's search_results.", param
        )


class BatchNotFound(ClickstreamError):
    code = "batch_not_found"

    def __init__(self, batch_id: str) -> None:
        super().__init__(f"No batch with batch_id {batch_id!r}.", "batch_id")


class BatchNotReleased(ClickstreamError):
    code = "batch_not_released"

    def __init__(self, batch_id: str) -> None:
        super().__init__(
            f"Batch {batch_id!r} is still collecting; release it first or omit batch_id.",
            "batch_id",
        )


class NoCollectingBatch(ClickstreamError):
    """A task create without a batch_id found nothing collected to release and train on."""

    code = "no_collecting_batch"

    def __init__(self) -> None:
        super().__init__(
            "No sessions were collected since the last release: there is no batch to train on."
        )


class NothingToRelease(ClickstreamError):
    """A release found nothing collected: the collecting batch it addresses does not exist."""

    code = "no_collecting_batch"

    def __init__(self) -> None:
        super().__init__("No sessions were collected since the last release.")


def content_hash(session: NewSession) -> str:
    """Fingerprint of what the client sent, deciding whether a repeated session_id is a retry."""
    return canonical_hash(session)


# --- sessions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisteredSession:
    view: dict[str, Any]
    """The session as stored, with all its events."""
    created: bool
    """Stored by this call (False: a retry of a stored session)."""


def register_session(
    conn: Connection, session: NewSession, new_events: Sequence[NewEvent] = ()
) -> RegisteredSession:
    """Store a new session in the collecting batch with its `new_events`; a repeat with the same
    content is a retry (its events are added as `add_events` adds them).

    Raises `SessionConflict` when the session_id is taken by different content, `UnknownObject`
    for an event on an object the session did not show (nothing of the session is stored).
    """
    [outcome], _ = register_sessions(conn, [IncomingSession(0, session, list(new_events))])
    if isinstance(outcome, ClickstreamError):
        raise outcome
    return outcome


def register_sessions(
    conn: Connection, incoming: Sequence[IncomingSession]
) -> tuple[list[RegisteredSession | ClickstreamError], ImportResult]:
    """Many registrations in one transaction (the API's group commit): each session's outcome as
    `register_session` gives it, in order, and what they stored in all. A new session is
    answered from what was written; a retry is read back, with the events stored before it."""
    result = import_sessions(conn, incoming)
    errors = dict(result.errors)
    outcomes: list[RegisteredSession | ClickstreamError] = []
    for one in incoming:
        if one.position in errors:
            outcomes.append(errors[one.position])
        elif (created := result.created.get(one.position)) is not None:
            row, event_rows = created
            views = [{name: event[name] for name in _EVENT_VIEW_FIELDS} for event in event_rows]
            view = {**_session_fields(row), "is_irrelevant": False, "events": views}
            outcomes.append(RegisteredSession(view, created=True))
        else:
            stored = get_session(conn, one.session["session_id"])
            assert stored is not None
            outcomes.append(RegisteredSession(stored, created=False))
    return outcomes, result


def get_session(conn: Connection, session_id: str) -> dict[str, Any] | None:
    """The session as its client sees it: every event, also those stored after its release."""
    stored = conn.execute(_session_query(session_id)).first()
    if stored is None:
        return None
    return _session_view(stored, _session_events(conn, session_id))


def add_events(
    conn: Connection, session_id: str, new_events: Sequence[NewEvent]
) -> tuple[int, int]:
    """Store events of a session, all or nothing; returns (accepted, duplicates).

    An event_id already stored for the session, or repeated within `new_events`, is a duplicate
    and ignored. Raises `SessionNotFound`, or `UnknownObject` (nothing stored) when an event's
    object_id is not among the session's search_results.
    """
    received_at = current_time()
    target = _lock_session(conn, session_id)
    if target is None:
        raise SessionNotFound(session_id)
    shown = {result["object_id"] for result in target.search_results}
    for index, event in enumerate(new_events):
        if event["object_id"] not in shown:
            raise UnknownObject(event["object_id"], f"events.{index}.object_id")
    post_release = target.status == RELEASED
    rows = _event_rows(session_id, _first_of_each_event_id(new_events), post_release, received_at)
    accepted = _insert_new_events(conn, rows)
    return accepted, len(new_events) - accepted


def mark_irrelevant(conn: Connection, session_id: str) -> dict[str, Any]:
    """Record that the session's user found nothing relevant; returns the session."""
    target = _lock_session(conn, session_id)
    if target is None:
        raise SessionNotFound(session_id)
    flag = "irrelevant_post_release" if target.status == RELEASED else "is_irrelevant"
    conn.execute(update(sessions).where(sessions.c.session_id == session_id).values({flag: True}))
    view = get_session(conn, session_id)
    assert view is not None
    return view


def import_sessions(conn: Connection, incoming: Sequence[IncomingSession]) -> ImportResult:
    """Store incoming sessions with their events; one that cannot be stored is reported.

    A session already stored with the same content adds its events (duplicates ignored); with
    different content it is a `SessionConflict`. A session with an event on an object_id it did
    not show stores nothing (`UnknownObject`).
    """
    if conn.dialect.name == "sqlite":
        # The write transaction holds the database's write lock: no concurrent insert can race.
        return _import_chunk(conn, incoming)
    for attempt in range(_RACE_RETRIES):
        try:
            with conn.begin_nested():
                return _import_chunk(conn, incoming)
        except IntegrityError:
            # A concurrent registration took one of these session_ids; the retry sees it stored.
            if attempt == _RACE_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


@dataclass
class _KnownSession:
    content_hash: str
    shown: set[str]
    post_release: bool
    new_row: dict[str, Any] | None = None  # set while the session is stored by this chunk
    mark_irrelevant: bool = False
    event_ids: set[str] = field(default_factory=set)


def _import_chunk(conn: Connection, incoming: Sequence[IncomingSession]) -> ImportResult:
    result = ImportResult()
    received_at = current_time()
    known: dict[str, _KnownSession] = {}
    session_ids = list({one.session["session_id"] for one in incoming})
    for stored in conn.execute(_LOCK_SESSIONS, {"session_ids": session_ids}):
        known[stored.session_id] = _KnownSession(
            content_hash=stored.content_hash,
            shown={r["object_id"] for r in stored.search_results},
            post_release=stored.status == RELEASED,
        )
    new_rows: list[dict[str, Any]] = []
    event_rows: list[dict[str, Any]] = []
    for one in incoming:
        session = one.session
        session_id = session["session_id"]
        digest = content_hash(session)
        state = known.get(session_id)
        if state is not None and state.content_hash != digest:
            result.errors.append((one.position, SessionConflict(session_id)))
            continue
        shown = state.shown if state else {r["object_id"] for r in session["search_results"]}
        unknown = next(
            (i for i, event in enumerate(one.events) if event["object_id"] not in shown), None
        )
        if unknown is not None:
            error = UnknownObject(one.events[unknown]["object_id"], f"events.{unknown}.object_id")
            result.errors.append((one.position, error))
            continue
        created_here = state is None
        if state is None:
            created_at = received_at if session["created_at"] is None else session["created_at"]
            new_row = {
                **session,
                "served_by": session.get("served_by"),
                "created_at": created_at,
                "received_at": received_at,
                "content_hash": digest,
                "is_irrelevant": False,
            }
            state = _KnownSession(digest, shown, post_release=False, new_row=new_row)
            known[session_id] = state
            new_rows.append(new_row)
            result.sessions += 1
        else:
            result.duplicates += 1
        if one.is_irrelevant:
            if state.new_row is not None:
                state.new_row["is_irrelevant"] = True
            else:
                state.mark_irrelevant = True
        fresh = [
            e for e in _first_of_each_event_id(one.events) if e["event_id"] not in state.event_ids
        ]
        state.event_ids.update(e["event_id"] for e in fresh)
        result.duplicates += len(one.events) - len(fresh)
        session_rows = _event_rows(session_id, fresh, state.post_release, received_at)
        if created_here:
            result.created[one.position] = (new_row, session_rows)
        event_rows += session_rows
    if new_rows:
        batch_id, last_number = _take_session_numbers(conn, len(new_rows))
        first_number = last_number - len(new_rows) + 1
        for offset, row in enumerate(new_rows):
            row["batch_id"], row["session_number"] = batch_id, first_number + offset
        insert_rows(conn, sessions, new_rows)
    accepted = _insert_new_events(conn, event_rows)
    result.events += accepted
    result.duplicates += len(event_rows) - accepted
    for session_id, state in known.items():
        if state.mark_irrelevant:
            flag = "irrelevant_post_release" if state.post_release else "is_irrelevant"
            conn.execute(
                update(sessions).where(sessions.c.session_id == session_id).values({flag: True})
            )
    return result


def _take_session_numbers(conn: Connection, count: int) -> tuple[str, int]:
    """Reserve `count` session numbers in the collecting batch: (batch_id, last number)."""
    for _ in range(_RACE_RETRIES):
        # Zero rows: there is no collecting batch, or (PostgreSQL) the one this statement waited
        # on was released meanwhile; open one (or find the one a concurrent request opened).
        reserved = conn.execute(_RESERVE_NUMBERS, {"count": count}).first()
        if reserved is not None:
            return reserved.batch_id, reserved.sessions
        _open_collecting_batch(conn)
    raise RuntimeError("no collecting batch could be opened")


def _open_collecting_batch(conn: Connection) -> None:
    try:
        with conn.begin_nested():
            conn.execute(
                insert(batches).values(
                    batch_id=new_id(), status=COLLECTING, created_at=current_time(), sessions=0
                )
            )
    except IntegrityError:
        pass  # a concurrent transaction opened it first; the next reservation finds it


def _lock_session(conn: Connection, session_id: str) -> Row[Any] | None:
    """The session's results and its batch's status, with the batch row share-locked."""
    return conn.execute(_LOCK_SESSION, {"session_id": session_id}).first()


def _first_of_each_event_id(new_events: Sequence[NewEvent]) -> list[NewEvent]:
    seen: set[str] = set()
    first: list[NewEvent] = []
    for event in new_events:
        if event["event_id"] not in seen:
            seen.add(event["event_id"])
            first.append(event)
    return first


def _event_rows(
    session_id: str, new_events: Sequence[NewEvent], post_release: bool, received_at: float
) -> list[dict[str, Any]]:
    return [
        {
            "session_id": session_id,
            "event_id": event["event_id"],
            "object_id": event["object_id"],
            "event_type": event["event_type"],
            "created_at": received_at if event["created_at"] is None else event["created_at"],
            "received_at": received_at,
            "meta": event["meta"],
            "post_release": post_release,
        }
        for event in new_events
    ]


def _insert_new_events(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """Insert the rows whose (session_id, event_id) is not stored yet; returns how many."""
    return insert_rows(conn, events, rows, conflict=("session_id", "event_id"))


def _session_query(session_id: str) -> Select[Any]:
    return select(sessions).where(sessions.c.session_id == session_id)


def _session_fields(row: Any) -> dict[str, Any]:
    get = row.__getitem__ if isinstance(row, dict) else row._mapping.__getitem__
    return {
        "session_id": get("session_id"),
        "batch_id": get("batch_id"),
        "created_at": get("created_at"),
        "search_query": get("search_query"),
        "search_results": get("search_results"),
        "search_meta": get("search_meta"),
        "user_id": get("user_id"),
        "served_by": get("served_by"),
    }


def _session_view(stored: Row[Any], session_events: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        **_session_fields(stored),
        "is_irrelevant": stored.is_irrelevant or stored.irrelevant_post_release,
        "events": session_events,
    }


_EVENT_VIEW_FIELDS = ("event_id", "object_id", "event_type", "created_at", "meta")


def _event_view(row: Row[Any]) -> dict[str, Any]:
    return {name: getattr(row, name) for name in _EVENT_VIEW_FIELDS}


def _session_events(conn: Connection, session_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(events).where(events.c.session_id == session_id).order_by(events.c.seq)
    )
    return [_event_view(row) for row in rows]


# --- batches --------------------------------------------------------------------------------


def release_collecting_batch(conn: Connection, release_id: str | None) -> dict[str, Any] | None:
    """Freeze the collecting batch inside the caller's write transaction; its summary, or None.

    A `release_id` already used answers the batch it released (idempotent). None when there is
    nothing collected to release.
    """
    if release_id is not None:
        released = _released_by(conn, release_id)
        if released is not None:
            return released
    collecting = conn.execute(
        select(batches.c.batch_id, batches.c.sessions)
        .where(batches.c.status == COLLECTING)
        .with_for_update()
    ).first()
    if collecting is None or collecting.sessions == 0:
        # A concurrent release with the same release_id may have taken the batch meanwhile.
        return None if release_id is None else _released_by(conn, release_id)
    frozen = _content_counts(conn, collecting.batch_id)
    try:
        with conn.begin_nested():
            conn.execute(
                update(batches)
                .where(batches.c.batch_id == collecting.batch_id)
                .values(
                    status=RELEASED,
                    released_at=current_time(),
                    release_id=release_id,
                    sessions_with_events=frozen["sessions_with_events"],
                    irrelevant_sessions=frozen["irrelevant_sessions"],
                    events=frozen["events"],
                )
            )
    except IntegrityError:
        # The release_id was just used to release the previous batch (PostgreSQL race).
        released = _released_by(conn, release_id) if release_id is not None else None
        if released is None:
            raise
        return released
    return get_batch_summary(conn, collecting.batch_id)


def resolve_task_batch(conn: Connection, batch_id: str | None, release_id: str | None) -> str:
    """The batch a new task trains on: `batch_id` when it is released; None releases the
    collecting batch now (in the caller's transaction). Raises `BatchNotFound`,
    `BatchNotReleased` or `NoCollectingBatch`."""
    if batch_id is not None:
        summary = get_batch_summary(conn, batch_id)
        if summary is None:
            raise BatchNotFound(batch_id)
        if summary["status"] != RELEASED:
            raise BatchNotReleased(batch_id)
        return batch_id
    released = release_collecting_batch(conn, release_id)
    if released is None:
        raise NoCollectingBatch()
    return str(released["batch_id"])


def get_batch_summary(conn: Connection, batch_id: str) -> dict[str, Any] | None:
    """The batch's summary; a released batch's counts are those frozen at its release."""
    row = conn.execute(select(batches).where(batches.c.batch_id == batch_id)).first()
    return None if row is None else _batch_summary(conn, row)


def list_batches(
    conn: Connection, status: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """Batch summaries, newest first, and how many batches match `status` in all."""
    query = select(batches)
    total = select(func.count()).select_from(batches)
    if status is not None:
        query = query.where(batches.c.status == status)
        total = total.where(batches.c.status == status)
    rows = conn.execute(
        query.order_by(batches.c.created_at.desc(), batches.c.batch_id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return [_batch_summary(conn, row) for row in rows], conn.execute(total).scalar_one()


def batch_sessions_page(
    conn: Connection, batch_id: str, after_number: int, limit: int, events_limit: int
) -> dict[str, Any]:
    """One keyset page of a batch's content, as frozen (raises `BatchNotFound`).

    Each session carries its `session_number` and at most `events_limit` of its events.
    """
    found = conn.execute(select(batches.c.batch_id).where(batches.c.batch_id == batch_id)).first()
    if found is None:
        raise BatchNotFound(batch_id)
    page = _content_page(conn, batch_id, after_number, limit, events_limit)
    return {
        "batch_id": batch_id,
        "last_number": page[-1]["session_number"] if page else None,
        "sessions": page,
    }


def iter_batch_sessions(
    conn: Connection, batch_id: str, page_size: int = 1000
) -> Iterator[dict[str, Any]]:
    """Stream a batch's frozen content in session_number order, one query page at a time.

    Each session: session_id, session_number, search_query, search_results, user_id, created_at,
    is_irrelevant (as frozen) and its events stored before the release. Raises `BatchNotFound`.
    """
    if get_batch_summary(conn, batch_id) is None:
        raise BatchNotFound(batch_id)
    after = 0
    while True:
        page = _content_page(conn, batch_id, after, page_size, events_limit=None)
        yield from page
        if len(page) < page_size:
            return
        after = page[-1]["session_number"]


def _content_page(
    conn: Connection, batch_id: str, after_number: int, limit: int, events_limit: int | None
) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(sessions)
        .where(sessions.c.batch_id == batch_id, sessions.c.session_number > after_number)
        .order_by(sessions.c.session_number)
        .limit(limit)
    ).all()
    if not rows:
        return []
    page: dict[str, dict[str, Any]] = {
        row.session_id: {
            **_session_fields(row),
            "session_number": row.session_number,
            "is_irrelevant": row.is_irrelevant,
            "events": [],
        }
        for row in rows
    }
    if events_limit == 0:
        return list(page.values())
    in_page = (
        select(events, sessions.c.session_number)
        .select_from(events.join(sessions, events.c.session_id == sessions.c.session_id))
        .where(
            sessions.c.batch_id == batch_id,
            sessions.c.session_number > after_number,
            sessions.c.session_number <= rows[-1].session_number,
            events.c.post_release.is_(False),
        )
    )
    if events_limit is not None:
        position = (
            func.row_number()
            .over(partition_by=events.c.session_id, order_by=events.c.seq)
            .label("position")
        )
        numbered = in_page.add_columns(position).subquery()
        query = (
            select(numbered)
            .where(numbered.c.position <= events_limit)
            .order_by(numbered.c.session_number, numbered.c.seq)
        )
    else:
        query = in_page.order_by(sessions.c.session_number, events.c.seq)
    for event in conn.execute(query):
        page[event.session_id]["events"].append(_event_view(event))
    return list(page.values())


def _released_by(conn: Connection, release_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(batches).where(batches.c.release_id == release_id)).first()
    return None if row is None else _batch_summary(conn, row)


def _content_counts(conn: Connection, batch_id: str) -> dict[str, int]:
    with_events, event_count = conn.execute(
        select(func.count(func.distinct(events.c.session_id)), func.count())
        .select_from(events.join(sessions, events.c.session_id == sessions.c.session_id))
        .where(sessions.c.batch_id == batch_id, events.c.post_release.is_(False))
    ).one()
    irrelevant = conn.execute(
        select(func.count())
        .select_from(sessions)
        .where(sessions.c.batch_id == batch_id, sessions.c.is_irrelevant.is_(True))
    ).scalar_one()
    return {
        "sessions_with_events": with_events,
        "irrelevant_sessions": irrelevant,
        "events": event_count,
    }


def _batch_summary(conn: Connection, row: Row[Any]) -> dict[str, Any]:
    if row.status == COLLECTING:
        counts = _content_counts(conn, row.batch_id)
    else:
        counts = {
            "sessions_with_events": row.sessions_with_events,
            "irrelevant_sessions": row.irrelevant_sessions,
            "events": row.events,
        }
    return {
        "batch_id": row.batch_id,
        "status": row.status,
        "created_at": row.created_at,
        "released_at": row.released_at,
        "release_id": row.release_id,
        "sessions": row.sessions,
        **counts,
    }

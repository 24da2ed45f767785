"""Search sessions and their events, the batches that collect them, and bulk import."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import ValidationError
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from clicktune.api.bodies import (
    NDJSON_TYPES,
    documented_body,
    media_type,
    ndjson_chunks,
    raw_body,
    require_json,
    unsupported_media_type,
)
from clicktune.api.deps import JSON_BODY, EngineDep, MetricsDep, SettingsDep
from clicktune.api.responses import FastJSONResponse
from clicktune.api.schemas.clickstream import (
    MAX_SESSIONS_PER_REQUEST,
    BatchList,
    BatchSessionsPage,
    BatchStatus,
    BatchSummary,
    EventsAccepted,
    EventsIn,
    ImportReport,
    ReleaseIn,
    ReleaseOut,
    SessionOut,
    SessionRef,
    SessionsEnvelope,
    SessionsIn,
    SessionsStored,
)
from clicktune.api.session_writer import SessionWriter
from clicktune.errors import ClicktuneError, InvalidInput
from clicktune.ingest.clickstream import (
    SessionImportIn,
    SessionWithEventsIn,
    check_events,
    check_session_with_events,
)
from clicktune.ingest.fields import MAX_STORED_INT, ClientId, check_count
from clicktune.ingest.imports import ClickstreamImport, import_chunks
from clicktune.ingest.validation import invalid_input, parse_json
from clicktune.logs import get_logger
from clicktune.settings import Settings
from clicktune.store import clickstream as store
from clicktune.store.engine import read_transaction, write_transaction
from clicktune.timeutil import now as current_time

router = APIRouter(prefix="/clickstream", tags=["clickstream"])
log = get_logger(__name__)


def _missing_body() -> InvalidInput:
    return invalid_input(
        [{"type": "missing", "loc": ("body",), "msg": "Field required"}], located=True
    )


@router.post(
    "/session",
    status_code=201,
    response_model=SessionOut,
    responses={200: {"model": SessionOut, "description": "Already registered (a safe retry)."}},
    openapi_extra=documented_body(application_json=SessionWithEventsIn),
)
async def register_session(request: Request) -> FastJSONResponse:
    """Register a search session in the collecting batch (201; 200 when it is a retry), with its
    inline `events`, all or nothing; an event_id already stored is a duplicate."""
    # The ingest hot path (one request per search) takes what it needs from the request itself:
    # resolving dependencies cost a quarter of its event-loop time. The body is parsed and
    # validated in one pass by pydantic's JSON parser (FastAPI decodes, then validates).
    await require_json(request)
    raw = await request.body()
    body = parse_json(raw, SessionWithEventsIn) if raw else _missing_body()
    if isinstance(body, InvalidInput):
        raise body
    writer: SessionWriter = request.app.state.session_writer
    settings: Settings = request.app.state.settings
    check_session_with_events(body, settings, current_time(), check_age=True)
    new_events = [event.to_new_event() for event in body.events]
    registered = await writer.register(body.to_new_session(), new_events)
    return FastJSONResponse(registered.view, status_code=201 if registered.created else 200)


@router.post(
    "/sessions",
    response_model=SessionsStored,
    dependencies=JSON_BODY,
    openapi_extra=documented_body(application_json=SessionsIn),
)
def register_sessions(
    raw: Annotated[bytes, Depends(raw_body)],
    engine: EngineDep,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> dict[str, Any]:
    """Register many sessions, each with its inline `events`, in one request: each is checked and
    stored on its own as `POST /clickstream/session` would, a bad one reported by its index and
    the rest kept. Safe to resend: stored sessions and events count as duplicates."""
    sessions = _sessions_of(raw)
    check_count(len(sessions), MAX_SESSIONS_PER_REQUEST, "too_many_sessions", "sessions")
    at = current_time()
    incoming: list[store.IncomingSession] = []
    errors: list[tuple[int, ClicktuneError]] = []
    for index, value in enumerate(sessions):
        session = _checked_session(value, settings, at)
        if isinstance(session, InvalidInput):
            errors.append((index, session))
        else:
            incoming.append(session.to_incoming(index))
    result = store.ImportResult()
    if incoming:
        with write_transaction(engine) as conn:
            result = store.import_sessions(conn, incoming)
        errors += result.errors
    metrics.sessions.inc(result.sessions)
    metrics.events.inc(result.events)
    log.info(
        "clickstream_sessions_stored",
        sessions=result.sessions,
        events=result.events,
        duplicates=result.duplicates,
        refused=len(errors),
    )
    return {
        "sessions": result.sessions,
        "events": result.events,
        "duplicates": result.duplicates,
        "errors": [
            {"index": index, "error": error.detail()}
            for index, error in sorted(errors, key=lambda pair: pair[0])
        ],
    }


def _sessions_of(raw: bytes) -> list[SessionWithEventsIn] | list[dict[str, Any]]:
    """The batch's sessions: validated in one pass when all are valid (the common case, done in
    pydantic's JSON parser), else raw, for each to be validated on its own."""
    try:
        return SessionsIn.model_validate_json(raw).sessions
    except ValidationError:
        envelope = parse_json(raw, SessionsEnvelope)
    if isinstance(envelope, InvalidInput):
        raise envelope
    return envelope.sessions


def _checked_session(
    value: SessionWithEventsIn | dict[str, Any], settings: Settings, at: float
) -> SessionWithEventsIn | InvalidInput:
    """One session of a batch, validated and checked as `POST /clickstream/session` does."""
    try:
        session = (
            value
            if isinstance(value, SessionWithEventsIn)
            else SessionWithEventsIn.model_validate(value)
        )
        check_session_with_events(session, settings, at, check_age=True)
    except ValidationError as exc:
        return invalid_input(exc.errors(include_url=False))
    except InvalidInput as exc:
        return exc
    return session


@router.get("/session", response_model=SessionOut)
def get_session_by_query(session_id: Annotated[ClientId, Query()], engine: EngineDep) -> Any:
    """The session with all its events (also those stored after its batch's release)."""
    return _get_session(engine, session_id)


@router.get("/session/{session_id:path}", response_model=SessionOut)
def get_session(session_id: ClientId, engine: EngineDep) -> Any:
    """The session with all its events (also those stored after its batch's release)."""
    return _get_session(engine, session_id)


def _get_session(engine: Engine, session_id: str) -> FastJSONResponse:
    with read_transaction(engine) as conn:
        session = store.get_session(conn, session_id)
    if session is None:
        raise store.SessionNotFound(session_id)
    return FastJSONResponse(session)


@router.post("/session/events", response_model=EventsAccepted, dependencies=JSON_BODY)
def add_events(
    body: EventsIn, engine: EngineDep, settings: SettingsDep, metrics: MetricsDep
) -> FastJSONResponse:
    """Add events to a session, all or nothing; an event_id already stored is a duplicate."""
    check_events(body.events, settings, current_time(), check_age=True)
    new_events = [event.to_new_event() for event in body.events]
    with write_transaction(engine) as conn:
        accepted, duplicates = store.add_events(conn, body.session_id, new_events)
    metrics.events.inc(accepted)
    return FastJSONResponse({"accepted": accepted, "duplicates": duplicates})


@router.post("/session/irrelevant", response_model=SessionOut, dependencies=JSON_BODY)
def mark_irrelevant(body: SessionRef, engine: EngineDep) -> FastJSONResponse:
    """Record that the user found nothing relevant: training treats the results as negatives."""
    with write_transaction(engine) as conn:
        return FastJSONResponse(store.mark_irrelevant(conn, body.session_id))


@router.post("/internal/batch/release", response_model=ReleaseOut, dependencies=JSON_BODY)
def release_batch(engine: EngineDep, body: ReleaseIn | None = None) -> dict[str, Any]:
    """Freeze the collecting batch; the same release_id always answers the same batch."""
    release_id = body.release_id if body is not None else None
    with write_transaction(engine) as conn:
        released = store.release_collecting_batch(conn, release_id)
    if released is None:
        raise store.NothingToRelease()
    log.info(
        "batch_released",
        batch_id=released["batch_id"],
        release_id=released["release_id"],
        sessions=released["sessions"],
    )
    return {
        "release_id": released["release_id"],
        "batch_id": released["batch_id"],
        "released_at": released["released_at"],
    }


@router.get("/internal/batch/sessions", response_model=BatchSessionsPage)
def batch_sessions(
    engine: EngineDep,
    batch_id: Annotated[ClientId, Query()],
    after_number: Annotated[int, Query(ge=0, le=MAX_STORED_INT)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    events_limit: Annotated[int, Query(ge=0, le=1000)] = 100,
) -> FastJSONResponse:
    """A page of the batch's content as frozen at its release, by session_number."""
    with read_transaction(engine) as conn:
        page = store.batch_sessions_page(conn, batch_id, after_number, limit, events_limit)
    return FastJSONResponse(page)


@router.get("/batches", response_model=BatchList)
def list_batches(
    engine: EngineDep,
    status: BatchStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_STORED_INT)] = 0,
) -> dict[str, Any]:
    """Batch summaries, newest first."""
    with read_transaction(engine) as conn:
        data, total = store.list_batches(conn, status, limit, offset)
    return {"data": data, "total": total}


@router.get("/batches/{batch_id}", response_model=BatchSummary)
def get_batch(batch_id: ClientId, engine: EngineDep) -> dict[str, Any]:
    """One batch's summary; a released batch's counts are those frozen at its release."""
    with read_transaction(engine) as conn:
        summary = store.get_batch_summary(conn, batch_id)
    if summary is None:
        raise store.BatchNotFound(batch_id)
    return summary


@router.post(
    "/import",
    response_model=ImportReport,
    openapi_extra=documented_body(application_x_ndjson=SessionImportIn),
)
async def import_clickstream(
    request: Request, engine: EngineDep, settings: SettingsDep, metrics: MetricsDep
) -> dict[str, Any]:
    """Bulk import of historical logs: NDJSON, one session with its `events` per line.

    Read as it arrives, stored in chunks; exempt from the age window. A bad line is reported and
    skipped, good lines are kept.
    """
    if media_type(request) not in NDJSON_TYPES:
        raise unsupported_media_type(request, "application/x-ndjson")
    run = ClickstreamImport(engine, settings)
    outcome = "clickstream_imported"
    try:
        async for chunk in ndjson_chunks(request, import_chunks(run.max_line_bytes)):
            await run_in_threadpool(run.add, chunk)
    except ClientDisconnect:
        outcome = "clickstream_import_interrupted"  # the chunks stored so far stay stored
    report = run.report()
    metrics.sessions.inc(report["sessions"])
    metrics.events.inc(report["events"])
    log.info(
        outcome,
        sessions=report["sessions"],
        events=report["events"],
        duplicates=report["duplicates"],
        bad_lines=report["errors_total"],
    )
    return report

"""Search sessions and their events, the batches that collect them, and bulk import."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from clicktune.api.bodies import (
    NDJSON_TYPES,
    documented_body,
    media_type,
    ndjson_chunks,
    unsupported_media_type,
)
from clicktune.api.deps import JSON_BODY, EngineDep, SettingsDep
from clicktune.api.errors import ApiError, store_error
from clicktune.api.imports import LINES_PER_CHUNK, ClickstreamImport
from clicktune.api.schemas.clickstream import (
    BatchList,
    BatchSessionsPage,
    BatchStatus,
    BatchSummary,
    EventsAccepted,
    EventsIn,
    ImportReport,
    ReleaseIn,
    ReleaseOut,
    SessionImportIn,
    SessionOut,
    SessionRef,
    SessionWithEventsIn,
    check_events,
    check_session,
)
from clicktune.api.schemas.common import ClientId
from clicktune.logs import get_logger
from clicktune.store import clickstream as store
from clicktune.store.engine import read_transaction, write_transaction
from clicktune.timeutil import now as current_time

router = APIRouter(prefix="/clickstream", tags=["clickstream"])
log = get_logger(__name__)

_STATUS = {
    store.SessionNotFound: 404,
    store.BatchNotFound: 404,
    store.SessionConflict: 409,
    store.UnknownObject: 422,
}


def _api_error(error: store.ClickstreamError) -> ApiError:
    return store_error(error, _STATUS[type(error)])


@router.post(
    "/session",
    status_code=201,
    response_model=SessionOut,
    dependencies=JSON_BODY,
    responses={200: {"model": SessionOut, "description": "Already registered (a safe retry)."}},
)
def register_session(
    body: SessionWithEventsIn, engine: EngineDep, settings: SettingsDep
) -> JSONResponse:
    """Register a search session in the collecting batch (201; 200 when it is a retry), with its
    inline `events`, all or nothing; an event_id already stored is a duplicate."""
    at = current_time()
    check_session(body, settings, at, check_age=True)
    check_events(body.events, settings, at, check_age=True)
    new_events = [event.to_new_event() for event in body.events]
    try:
        with write_transaction(engine) as conn:
            session, created = store.register_session(conn, body.to_new_session())
            if new_events:
                store.add_events(conn, body.session_id, new_events)
                session = store.get_session(conn, body.session_id)
    except store.ClickstreamError as exc:
        raise _api_error(exc) from None
    return JSONResponse(session, status_code=201 if created else 200)


@router.get("/session", response_model=SessionOut)
def get_session_by_query(session_id: Annotated[ClientId, Query()], engine: EngineDep) -> Any:
    """The session with all its events (also those stored after its batch's release)."""
    return _get_session(engine, session_id)


@router.get("/session/{session_id:path}", response_model=SessionOut)
def get_session(session_id: ClientId, engine: EngineDep) -> Any:
    """The session with all its events (also those stored after its batch's release)."""
    return _get_session(engine, session_id)


def _get_session(engine: Engine, session_id: str) -> JSONResponse:
    with read_transaction(engine) as conn:
        session = store.get_session(conn, session_id)
    if session is None:
        raise _api_error(store.SessionNotFound(session_id))
    return JSONResponse(session)


@router.post("/session/events", response_model=EventsAccepted, dependencies=JSON_BODY)
def add_events(body: EventsIn, engine: EngineDep, settings: SettingsDep) -> JSONResponse:
    """Add events to a session, all or nothing; an event_id already stored is a duplicate."""
    check_events(body.events, settings, current_time(), check_age=True)
    new_events = [event.to_new_event() for event in body.events]
    try:
        with write_transaction(engine) as conn:
            accepted, duplicates = store.add_events(conn, body.session_id, new_events)
    except store.ClickstreamError as exc:
        raise _api_error(exc) from None
    return JSONResponse({"accepted": accepted, "duplicates": duplicates})


@router.post("/session/irrelevant", response_model=SessionOut, dependencies=JSON_BODY)
def mark_irrelevant(body: SessionRef, engine: EngineDep) -> JSONResponse:
    """Record that the user found nothing relevant: training treats the results as negatives."""
    try:
        with write_transaction(engine) as conn:
            return JSONResponse(store.mark_irrelevant(conn, body.session_id))
    except store.ClickstreamError as exc:
        raise _api_error(exc) from None


@router.post("/internal/batch/release", response_model=ReleaseOut, dependencies=JSON_BODY)
def release_batch(engine: EngineDep, body: ReleaseIn | None = None) -> dict[str, Any]:
    """Freeze the collecting batch; the same release_id always answers the same batch."""
    release_id = body.release_id if body is not None else None
    with write_transaction(engine) as conn:
        released = store.release_collecting_batch(conn, release_id)
    if released is None:
        raise ApiError(
            404, "no_collecting_batch", "No sessions were collected since the last release."
        )
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
    after_number: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    events_limit: Annotated[int, Query(ge=0, le=1000)] = 100,
) -> JSONResponse:
    """A page of the batch's content as frozen at its release, by session_number."""
    try:
        with read_transaction(engine) as conn:
            page = store.batch_sessions_page(conn, batch_id, after_number, limit, events_limit)
    except store.ClickstreamError as exc:
        raise _api_error(exc) from None
    return JSONResponse(page)


@router.get("/batches", response_model=BatchList)
def list_batches(
    engine: EngineDep,
    status: BatchStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
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
        raise _api_error(store.BatchNotFound(batch_id))
    return summary


@router.post(
    "/import",
    response_model=ImportReport,
    openapi_extra=documented_body(application_x_ndjson=SessionImportIn),
)
async def import_clickstream(
    request: Request, engine: EngineDep, settings: SettingsDep
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
        async for chunk in ndjson_chunks(request, settings.max_request_bytes, LINES_PER_CHUNK):
            await run_in_threadpool(run.add, chunk)
    except ClientDisconnect:
        outcome = "clickstream_import_interrupted"  # the chunks stored so far stay stored
    report = run.report()
    log.info(
        outcome,
        sessions=report["sessions"],
        events=report["events"],
        duplicates=report["duplicates"],
        bad_lines=report["errors_total"],
    )
    return report

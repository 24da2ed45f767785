"""Search sessions, events and batches as the API takes and gives them; a session and its
events as sent are `clicktune.ingest.clickstream`'s models."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from clicktune.ingest.clickstream import EventIn, SessionWithEventsIn
from clicktune.ingest.fields import ClientId

BatchStatus = Literal["collecting", "released"]
MAX_SESSIONS_PER_REQUEST = 1000


class EventsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: ClientId
    events: list[EventIn]


class SessionsIn(BaseModel):
    """`POST /clickstream/sessions`: many searches in one request, each stored on its own."""

    model_config = ConfigDict(extra="forbid")

    sessions: list[SessionWithEventsIn] = Field(
        description=f"At most {MAX_SESSIONS_PER_REQUEST:,} sessions, each with its inline events."
    )


class SessionsEnvelope(BaseModel):
    """`SessionsIn` as read: the sessions stay raw until each is validated on its own."""

    model_config = ConfigDict(extra="forbid")

    sessions: list[dict[str, Any]]


class SessionRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: ClientId


class ReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    release_id: ClientId | None = Field(
        None, description="Idempotency key: the same release_id always answers the same batch."
    )


class SearchResultOut(BaseModel):
    object_id: str
    rank: float | None
    meta: dict[str, Any]
    served_by: str | None = None


class EventOut(BaseModel):
    event_id: str
    object_id: str
    event_type: str
    created_at: float
    meta: dict[str, Any]


class SessionOut(BaseModel):
    session_id: str
    batch_id: str
    created_at: float
    search_query: str
    search_results: list[SearchResultOut]
    search_meta: dict[str, Any]
    user_id: str | None
    served_by: str | None
    is_irrelevant: bool
    events: list[EventOut]


class BatchSessionOut(SessionOut):
    session_number: int


class BatchSessionsPage(BaseModel):
    batch_id: str
    last_number: int | None = Field(description="Pass as after_number for the next page.")
    sessions: list[BatchSessionOut]


class EventsAccepted(BaseModel):
    accepted: int
    duplicates: int


class ReleaseOut(BaseModel):
    release_id: str | None
    batch_id: str
    released_at: float


class BatchSummary(BaseModel):
    batch_id: str
    status: BatchStatus
    created_at: float
    released_at: float | None
    release_id: str | None
    sessions: int
    sessions_with_events: int
    irrelevant_sessions: int
    events: int


class BatchList(BaseModel):
    data: list[BatchSummary]
    total: int


class ErrorDetail(BaseModel):
    code: str
    message: str
    param: str | None


class LineError(BaseModel):
    line: int
    error: ErrorDetail


class SessionError(BaseModel):
    index: int = Field(description="The session's place in `sessions`, from 0.")
    error: ErrorDetail


class SessionsStored(BaseModel):
    sessions: int = Field(description="Sessions stored by this request.")
    events: int = Field(description="Events stored by this request.")
    duplicates: int = Field(description="Sessions and events that were already stored (ignored).")
    errors: list[SessionError] = Field(description="The sessions refused, each by its index.")


class ImportReport(BaseModel):
    sessions: int = Field(description="Sessions stored by this import.")
    events: int = Field(description="Events stored by this import.")
    duplicates: int = Field(description="Sessions and events that were already stored (ignored).")
    errors: list[LineError] = Field(description="Lines skipped, the first 1,000 of them.")
    errors_total: int = Field(description="All lines skipped.")

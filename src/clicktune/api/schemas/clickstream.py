"""Search sessions, events and batches as the API takes and gives them.

The models check each field on its own; `check_session` and `check_events` then apply what
depends on the settings and the clock (size limits, the timestamp window) and on several fields
together (duplicate object_ids).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from clicktune.api.errors import ApiError
from clicktune.api.schemas.common import (
    MAX_QUERY_CHARS,
    ClientId,
    Epoch,
    FiniteFloat,
    JsonObject,
    NonEmptyText,
    check_count,
    check_json_size,
)
from clicktune.settings import Settings
from clicktune.store.clickstream import NewEvent, NewSession

BatchStatus = Literal["collecting", "released"]
FUTURE_TOLERANCE_S = 300.0
MAX_SESSIONS_PER_REQUEST = 1000


_SESSION_FIELDS = frozenset(NewSession.__annotations__)
ServedBy = Annotated[
    ClientId,
    Field(
        description="A model version as `POST /embeddings` or `/clickstream/interleave` names it."
    ),
]


class SearchResultIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    object_id: ClientId
    rank: FiniteFloat | None = Field(None, description="The score the search engine gave.")
    meta: JsonObject = Field(
        default_factory=dict,
        validation_alias=AliasChoices("meta", "item_info"),
        description="Anything about the result as shown; `item_info` is accepted as an alias.",
    )
    served_by: ServedBy | None = Field(
        None, description="Interleaving: the model that contributed this result."
    )


class SessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: ClientId
    search_query: NonEmptyText = Field(max_length=MAX_QUERY_CHARS)
    search_results: list[SearchResultIn] = Field(
        description="In the order shown, position 1 first."
    )
    search_meta: JsonObject = Field(default_factory=dict)
    user_id: ClientId | None = None
    created_at: Epoch | None = Field(None, description="UNIX epoch seconds; omitted: server time.")
    served_by: ServedBy | None = Field(
        None, description="A/B: the model version that produced these results."
    )

    def to_new_session(self) -> NewSession:
        """The session as stored; `served_by` only where it was sent (the content hash of a
        session without it stays what it was)."""
        session = self.model_dump(include=_SESSION_FIELDS - {"served_by"})
        for result, given in zip(session["search_results"], self.search_results, strict=True):
            if given.served_by is None:
                del result["served_by"]
        if self.served_by is not None:
            session["served_by"] = self.served_by
        return session  # type: ignore[return-value]


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: ClientId
    object_id: ClientId = Field(description="One of the session's search_results.")
    event_type: NonEmptyText = Field(
        "click", max_length=64, description="Any type; the fine-tuning method decides its weight."
    )
    created_at: Epoch | None = Field(None, description="UNIX epoch seconds; omitted: server time.")
    meta: JsonObject = Field(default_factory=dict)

    def to_new_event(self) -> NewEvent:
        return self.model_dump()  # type: ignore[return-value]


class EventsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: ClientId
    events: list[EventIn]


class SessionWithEventsIn(SessionIn):
    """`POST /clickstream/session`: the session and, inline, what the user did (one request per
    search); the events are stored as `POST /clickstream/session/events` stores them."""

    events: list[EventIn] = Field(default_factory=list)


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


class SessionImportIn(SessionWithEventsIn):
    """One NDJSON line of `POST /clickstream/import`."""

    is_irrelevant: bool = False


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


def check_session(session: SessionIn, settings: Settings, now: float, *, check_age: bool) -> None:
    """The session's limits, unique object_ids and timestamp (`ApiError` 422)."""
    check_count(
        len(session.search_results),
        settings.max_search_results,
        "too_many_search_results",
        "search_results",
    )
    seen: set[str] = set()
    for index, result in enumerate(session.search_results):
        if result.object_id in seen:
            raise ApiError(
                422,
                "duplicate_object",
                f"object_id {result.object_id!r} appears more than once in search_results.",
                f"search_results.{index}.object_id",
            )
        seen.add(result.object_id)
        check_json_size(result.meta, settings.max_meta_bytes, f"search_results.{index}.meta")
    check_json_size(session.search_meta, settings.max_meta_bytes, "search_meta")
    check_timestamp(session.created_at, settings, now, "created_at", check_age=check_age)


def check_events(events: list[EventIn], settings: Settings, now: float, *, check_age: bool) -> None:
    """The events' count, meta sizes and timestamps (`ApiError` 422)."""
    check_count(len(events), settings.max_events_per_request, "too_many_events", "events")
    for index, event in enumerate(events):
        check_json_size(event.meta, settings.max_meta_bytes, f"events.{index}.meta")
        check_timestamp(
            event.created_at, settings, now, f"events.{index}.created_at", check_age=check_age
        )


def check_timestamp(
    value: float | None, settings: Settings, now: float, param: str, *, check_age: bool
) -> None:
    """Not in the future (5 minutes of clock skew allowed) and, live, within the age window."""
    if value is None:
        return
    if value > now + FUTURE_TOLERANCE_S:
        raise ApiError(
            422,
            "invalid_timestamp",
            f"{param} is more than 5 minutes in the future (UNIX epoch seconds expected).",
            param,
        )
    max_age = settings.clickstream_max_age_s
    if check_age and max_age > 0 and value < now - max_age:
        raise ApiError(
            422,
            "invalid_timestamp",
            f"{param} is older than {max_age:g} seconds (CLICKTUNE_CLICKSTREAM_MAX_AGE_S); "
            "use POST /clickstream/import for historical logs.",
            param,
        )

"""Search sessions and their events as clients send them, and the checks they pass.

The models check each field on its own; `check_session` and `check_events` then apply what
depends on the settings and the clock (size limits, the timestamp window) and on several fields
together (duplicate object_ids). Live requests and imports check the same way; only the age
window is the live path's alone.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from clicktune.errors import InvalidInput
from clicktune.ingest.fields import (
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
from clicktune.store.clickstream import IncomingSession, NewEvent, NewSession

FUTURE_TOLERANCE_S = 300.0
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


class SessionWithEventsIn(SessionIn):
    """`POST /clickstream/session`: the session and, inline, what the user did (one request per
    search); the events are stored as `POST /clickstream/session/events` stores them."""

    events: list[EventIn] = Field(default_factory=list)

    def to_incoming(self, position: int) -> IncomingSession:
        """The session with its events as the store takes them, at `position`."""
        return IncomingSession(
            position, self.to_new_session(), [event.to_new_event() for event in self.events]
        )


class SessionImportIn(SessionWithEventsIn):
    """One NDJSON line of `POST /clickstream/import`."""

    is_irrelevant: bool = False

    def to_incoming(self, position: int) -> IncomingSession:
        return replace(super().to_incoming(position), is_irrelevant=self.is_irrelevant)


def check_session(session: SessionIn, settings: Settings, now: float, *, check_age: bool) -> None:
    """The session's limits, unique object_ids and timestamp (`InvalidInput`)."""
    check_count(
        len(session.search_results),
        settings.max_search_results,
        "too_many_search_results",
        "search_results",
    )
    seen: set[str] = set()
    for index, result in enumerate(session.search_results):
        if result.object_id in seen:
            raise InvalidInput(
                f"object_id {result.object_id!r} appears more than once in search_results.",
                f"search_results.{index}.object_id",
                code="duplicate_object",
            )
        seen.add(result.object_id)
        check_json_size(result.meta, settings.max_meta_bytes, f"search_results.{index}.meta")
    check_json_size(session.search_meta, settings.max_meta_bytes, "search_meta")
    check_timestamp(session.created_at, settings, now, "created_at", check_age=check_age)


def check_events(events: list[EventIn], settings: Settings, now: float, *, check_age: bool) -> None:
    """The events' count, meta sizes and timestamps (`InvalidInput`)."""
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
        raise InvalidInput(
            f"{param} is more than 5 minutes in the future (UNIX epoch seconds expected).",
            param,
            code="invalid_timestamp",
        )
    max_age = settings.clickstream_max_age_s
    if check_age and max_age > 0 and value < now - max_age:
        raise InvalidInput(
            f"{param} is older than {max_age:g} seconds (CLICKTUNE_CLICKSTREAM_MAX_AGE_S); "
            "use POST /clickstream/import for historical logs.",
            param,
            code="invalid_timestamp",
        )


def check_session_with_events(
    session: SessionWithEventsIn, settings: Settings, now: float, *, check_age: bool
) -> None:
    """`check_session` and `check_events` of a session sent with its events."""
    check_session(session, settings, now, check_age=check_age)
    check_events(session.events, settings, now, check_age=check_age)

"""Graded judgments as clients send them, and the checks a judged set passes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from clicktune.errors import InvalidInput
from clicktune.ingest.fields import MAX_QUERY_CHARS, ClientId, NonEmptyText
from clicktune.settings import Settings
from clicktune.store.judgments import Judgment

MAX_GRADE = 100
"""Gains are 2^grade - 1: a larger grade has no meaning a float can hold."""


class JudgmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: NonEmptyText = Field(
        max_length=MAX_QUERY_CHARS, description="The query text, as a user would type it."
    )
    object_id: ClientId
    grade: int = Field(
        strict=True,
        ge=0,
        le=MAX_GRADE,
        description="0 not relevant … 3 perfect (any integer from 0; gain 2^grade - 1).",
    )

    def to_judgment(self) -> Judgment:
        return Judgment(self.query, self.object_id, self.grade)


def check_judgments(judgments: list[JudgmentIn], settings: Settings) -> list[Judgment]:
    """At least one and at most `max_judgments`, no (query, object_id) pair twice
    (`InvalidInput`). An empty body would silently empty the set and fail every later task on
    it: removing a set takes an explicit DELETE."""
    if not judgments:
        raise InvalidInput(
            "A judged set needs at least one judgment; to remove the set, DELETE "
            "/judgments/{set_id}.",
            "judgments",
        )
    check_judgment_count(len(judgments), settings)
    seen: set[tuple[str, str]] = set()
    for index, judgment in enumerate(judgments):
        pair = (judgment.query, judgment.object_id)
        if pair in seen:
            raise InvalidInput(
                f"judgments.{index}: the query {judgment.query!r} judges object_id "
                f"{judgment.object_id!r} twice.",
                f"judgments.{index}.object_id",
                code="duplicate_judgment",
            )
        seen.add(pair)
    return [judgment.to_judgment() for judgment in judgments]


def check_judgment_count(count: int, settings: Settings) -> None:
    if count > settings.max_judgments:
        raise InvalidInput(
            f"The set has {count} judgments; at most {settings.max_judgments} are allowed.",
            "judgments",
            code="too_many_judgments",
        )

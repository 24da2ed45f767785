"""Judged sets as the API takes and gives them (API.md, judged sets)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from clicktune.api.errors import ApiError
from clicktune.api.schemas.common import MAX_QUERY_CHARS, ClientId, NonEmptyText
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


class JudgmentsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    judgments: list[JudgmentIn]


class JudgmentSetReplaced(BaseModel):
    set_id: str
    queries: int
    judgments: int
    unknown_objects: int = Field(
        description="Judged object ids not in the catalog now (kept: they may arrive)."
    )


class JudgmentSetSummary(BaseModel):
    set_id: str
    queries: int
    judgments: int
    updated_at: float = Field(description="UNIX epoch seconds of the last replace.")


class JudgmentOut(BaseModel):
    query: str
    object_id: str
    grade: int


class JudgmentSetOut(JudgmentSetSummary):
    sample: list[JudgmentOut] = Field(description="The set's first 20 judgments.")


class JudgmentSetList(BaseModel):
    data: list[JudgmentSetSummary]


def check_judgments(judgments: list[JudgmentIn], settings: Settings) -> list[Judgment]:
    """At most `max_judgments`, no (query, object_id) pair twice (`ApiError` 422)."""
    check_judgment_count(len(judgments), settings)
    seen: set[tuple[str, str]] = set()
    for index, judgment in enumerate(judgments):
        pair = (judgment.query, judgment.object_id)
        if pair in seen:
            raise ApiError(
                422,
                "duplicate_judgment",
                f"judgments.{index}: the query {judgment.query!r} judges object_id "
                f"{judgment.object_id!r} twice.",
                f"judgments.{index}.object_id",
            )
        seen.add(pair)
    return [judgment.to_judgment() for judgment in judgments]


def check_judgment_count(count: int, settings: Settings) -> None:
    if count > settings.max_judgments:
        raise ApiError(
            422,
            "too_many_judgments",
            f"The set has {count} judgments; at most {settings.max_judgments} are allowed.",
            "judgments",
        )

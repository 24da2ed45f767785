"""Judged sets as the API takes and gives them (docs/api.md, judged sets); a judgment as sent
is `clicktune.ingest.judgments`'s model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from clicktune.ingest.judgments import JudgmentIn


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

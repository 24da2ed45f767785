"""Online comparison: interleaved result lists and a batch's champion-against-challenger report."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from clicktune.ingest.fields import ClientId

MAX_RANKING = 1000

Verdict = Literal["better", "worse", "inconclusive", "not_enough_traffic"]


class Rankings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    champion: list[ClientId] = Field(max_length=MAX_RANKING, description="Best first.")
    challenger: list[ClientId] = Field(default_factory=list, max_length=MAX_RANKING)


class InterleaveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: ClientId = Field(
        description="The session to show it in: the same id, the same list."
    )
    method: ClientId = Field(description="The method whose champion and challenger ranked.")
    rankings: Rankings
    limit: int = Field(10, strict=True, ge=1, le=MAX_RANKING)


class InterleavedResult(BaseModel):
    object_id: str
    served_by: str = Field(description="The model version that contributed it (its team).")


class InterleaveOut(BaseModel):
    results: list[InterleavedResult]
    champion: str
    challenger: str | None


class ArmOut(BaseModel):
    served_by: str
    sessions: int
    users: int
    click_through: float
    reciprocal_rank: float
    weighted_clicks_at_10: float
    abandonment: float


class AbOut(BaseModel):
    metric: str
    champion: ArmOut
    challenger: ArmOut
    difference: float | None = Field(description="Challenger minus champion (sign: better > 0).")
    interval: list[float] | None
    verdict: Verdict


class InterleavingOut(BaseModel):
    sessions: int
    wins: int = Field(description="Sessions the challenger's results won.")
    losses: int
    ties: int
    share: float | None = Field(description="The challenger's share of the sessions not tied.")
    interval: list[float] | None
    verdict: Verdict


class ComparisonOut(BaseModel):
    batch_id: str
    method: str
    champion: str
    challenger: str | None
    arms: list[ArmOut]
    ab: AbOut | None
    interleaving: InterleavingOut | None
    verdict: Verdict

    @classmethod
    def of(cls, batch_id: str, method: str, report: dict[str, Any]) -> ComparisonOut:
        return cls.model_validate({"batch_id": batch_id, "method": method, **report})

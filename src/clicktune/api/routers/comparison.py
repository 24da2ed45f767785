"""Live traffic between a method's champion and its challenger: interleaved lists to show, and
what a batch's traffic says about the two (docs/evaluation.md, online comparison)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from clicktune.api.deps import JSON_BODY, EngineDep, RegistryDep, ServedModelsDep
from clicktune.api.routers.tasks import method_with_models
from clicktune.api.schemas.comparison import ComparisonOut, InterleaveIn, InterleaveOut
from clicktune.errors import ModelRegistryUnavailable, unavailable_on_error
from clicktune.evaluation.interleaving import team_draft
from clicktune.evaluation.online_evidence import OnlineEvidence
from clicktune.ingest.fields import ClientId
from clicktune.methods.embedding import EmbeddingFineTuningMethod
from clicktune.store import clickstream as store
from clicktune.store.engine import read_transaction
from clicktune.tracking.model_cache import ServedModels
from clicktune.tracking.registry import CHALLENGER, CHAMPION, Alias

router = APIRouter(prefix="/clickstream", tags=["online"])

DEFAULT_METHOD = "Default Fine Tuning Method"


@router.post("/interleave", response_model=InterleaveOut, dependencies=JSON_BODY)
def interleave(body: InterleaveIn, registry: RegistryDep, served: ServedModelsDep) -> InterleaveOut:
    """Merge the champion's and the challenger's rankings (team draft, the same list for the same
    session_id). Show `results` and register the session with each result's `served_by`. Without
    a challenger the champion's ranking comes back, attributed to it."""
    method = method_with_models(registry, body.method, "method")
    versions = _served_versions(served, method)
    champion, challenger = versions[CHAMPION], versions[CHALLENGER]
    assert champion is not None
    rankings = {champion: body.rankings.champion}
    if challenger is not None:
        rankings[challenger] = body.rankings.challenger
    merged = team_draft(body.session_id, rankings, body.limit)
    return InterleaveOut.model_validate(
        {
            "results": [{"object_id": oid, "served_by": team} for oid, team in merged],
            "champion": champion,
            "challenger": challenger,
        }
    )


@router.get("/batches/{batch_id}/comparison", response_model=ComparisonOut)
def batch_comparison(
    batch_id: ClientId,
    engine: EngineDep,
    registry: RegistryDep,
    served: ServedModelsDep,
    method: Annotated[
        ClientId | None,
        Query(description="Whose champion and challenger; default: the default method."),
    ] = None,
) -> ComparisonOut:
    """The method's champion against its challenger on the batch's traffic: per served model,
    sessions and online metrics; the A/B difference and the interleaving share with their
    intervals and verdicts; `verdict` from interleaving when it has enough sessions, else A/B."""
    chosen = method_with_models(registry, method or DEFAULT_METHOD, "method")
    versions = _served_versions(served, chosen)
    evidence = OnlineEvidence(
        weights=chosen.config.event_weights, default_weight=chosen.config.default_event_weight
    )
    with read_transaction(engine) as conn:
        evidence.add_all(store.iter_batch_sessions(conn, batch_id))
    champion = versions[CHAMPION]
    assert champion is not None
    report = evidence.report(
        champion, versions[CHALLENGER], seed=chosen.config.seed, min_gain=chosen.config.min_gain
    )
    return ComparisonOut.of(batch_id, chosen.meta.name, report)


def _served_versions(
    served: ServedModels, method: EmbeddingFineTuningMethod
) -> dict[Alias, str | None]:
    """The champion's and the challenger's versions, as the model registry holds them now."""
    with unavailable_on_error(
        ModelRegistryUnavailable,
        "The MLflow model registry does not answer now",
        method=method.meta.name,
    ):
        return served.versions(method.registered_model_name)

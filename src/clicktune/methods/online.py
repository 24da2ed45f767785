"""The decision a task makes before it trains: what its batch's live traffic says about the
method's challenger (EVALUATION.md, online decisions).

Better (the interval above the minimum gain; for interleaving, the challenger's share above one
half) → it becomes champion and this task trains from it; worse → it is retired; otherwise it
stays challenger. A batch without traffic from both arms decides nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clicktune.evaluation.online import OnlineEvidence
from clicktune.tracking.registry import CHALLENGER, CHAMPION, AliasMove, served_version

if TYPE_CHECKING:
    from clicktune.methods.base import TaskContext
    from clicktune.methods.embedding import EmbeddingFineTuningMethod
    from clicktune.tracking.iterations import MethodTracking


def decide_online(
    method: EmbeddingFineTuningMethod, context: TaskContext, tracking: MethodTracking
) -> dict[str, Any] | None:
    """The online comparison of the batch and what it changed (`decision`: promoted, retired
    or kept); None when the method has no challenger."""
    registry = tracking.registry
    challenger = registry.version(CHALLENGER)
    if challenger is None:
        return None
    name = registry.name
    champion_version = served_version(name, registry.version(CHAMPION))
    challenger_version = served_version(name, challenger)
    config = method.config
    evidence = OnlineEvidence(
        weights=config.event_weights, default_weight=config.default_event_weight
    ).add_all(context.iter_sessions())
    report = evidence.report(
        champion_version, challenger_version, seed=config.seed, min_gain=config.min_gain
    )
    part = report["interleaving"]
    if part is None or part["verdict"] == "not_enough_traffic":
        part = report["ab"] or part
    kind = "interleaving" if part is report["interleaving"] else "A/B"
    verdict = report["verdict"]
    if part is None:
        reason = (
            f"The batch has no traffic served by challenger {challenger_version}: it stays "
            "challenger."
        )
    elif verdict == "better":
        reason = f"Challenger {challenger_version} is better online ({_figures(kind, part)})."
    elif verdict == "worse":
        reason = f"Challenger {challenger_version} is worse online ({_figures(kind, part)})."
    else:
        reason = (
            f"Online traffic does not decide yet ({_figures(kind, part)}): challenger "
            f"{challenger_version} stays."
        )
    context.raise_if_canceled()  # a canceled task moves no alias
    move = AliasMove(context.task.task_id, reason, {"evidence": "online", "verdict": verdict})
    decision = "kept"
    if verdict == "better":
        registry.promote(str(challenger.run_id), move)
        decision = "promoted"
    elif verdict == "worse":
        registry.retire_challenger(move)
        decision = "retired"
    return {**report, "decision": decision, "reason": reason, "decided_by": kind}


def _figures(kind: str, part: dict[str, Any]) -> str:
    if part["verdict"] == "not_enough_traffic":
        return f"{kind}: not enough traffic yet"
    low, high = part["interval"]
    if kind == "interleaving":
        return (
            f"interleaving: it won {part['wins']} of {part['wins'] + part['losses']} decided "
            f"sessions, share {part['share']:.3f}, 95 % interval [{low:.3f}, {high:.3f}]"
        )
    return (
        f"A/B: {part['metric']} {part['difference']:+.4f}, 95 % interval "
        f"[{low:+.4f}, {high:+.4f}] over {part['champion']['users']} + "
        f"{part['challenger']['users']} users"
    )

"""The decision a task makes before it trains: what its batch's live traffic says about the
method's challenger (docs/evaluation.md, online decisions).

Better (the interval above the minimum gain; for interleaving, the challenger's share above one
half) → it becomes champion and this task trains from it; worse → it is retired; otherwise it
stays challenger. A batch without traffic from both arms decides nothing.

The decision is made before training and applied in the completing step (`apply_live`), so a
canceled task moves nothing; it is applied only if the champion and challenger are still those
it was made about.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from clicktune.evaluation.online_evidence import OnlineEvidence
from clicktune.tracking.registry import (
    CHALLENGER,
    CHAMPION,
    AliasMove,
    ModelRegistry,
    served_version,
)

if TYPE_CHECKING:
    from clicktune.tuning.config import EmbeddingMethodConfig
    from clicktune.tuning.plugin import TaskContext


@dataclass(frozen=True)
class LiveDecision:
    """The batch's online comparison (`report`, with `decision`: promoted, retired or kept) and
    the versions it was made about."""

    report: dict[str, Any]
    champion: str | None
    challenger: str
    challenger_run_id: str

    @property
    def promotes(self) -> bool:
        return self.report["decision"] == "promoted"


def decide_live(
    context: TaskContext, config: EmbeddingMethodConfig, registry: ModelRegistry
) -> LiveDecision | None:
    """What the batch's live traffic decides about the challenger (nothing is moved yet); None
    when the method has no challenger."""
    challenger = registry.version(CHALLENGER)
    if challenger is None:
        return None
    champion = registry.version(CHAMPION)
    name = registry.name
    champion_version = served_version(name, champion)
    challenger_version = served_version(name, challenger)
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
    decision = {"better": "promoted", "worse": "retired"}.get(verdict, "kept")
    return LiveDecision(
        {**report, "decision": decision, "reason": reason, "decided_by": kind},
        champion=None if champion is None else str(champion.version),
        challenger=str(challenger.version),
        challenger_run_id=str(challenger.run_id),
    )


def apply_live(decided: LiveDecision, registry: ModelRegistry, task_id: str) -> dict[str, Any]:
    """Move the aliases as decided, in the completing step; the report as applied. When the
    champion or challenger changed since the decision (another task moved them), nothing
    moves and the report says so."""
    report = decided.report
    if report["decision"] == "kept":
        return report
    champion, challenger = registry.version(CHAMPION), registry.version(CHALLENGER)
    now = (
        None if champion is None else str(champion.version),
        None if challenger is None else str(challenger.version),
    )
    if now != (decided.champion, decided.challenger):
        return {
            **report,
            "decision": "kept",
            "reason": f"{report['reason']} Not applied: the champion or challenger changed "
            "while this task ran.",
        }
    evidence = {"evidence": "online", "verdict": report["verdict"]}
    move = AliasMove(task_id, report["reason"], evidence)
    if decided.promotes:
        registry.promote(decided.challenger_run_id, move)
    else:
        registry.retire_challenger(move)
    return report


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

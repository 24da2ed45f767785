"""What a task decides about its best model, and the plain sentence that says why
(docs/evaluation.md).

- `auto`: judged evidence decides: promoted when the gain's interval lies above `min_gain`.
  Without a judged set the model becomes the method's challenger, for live traffic to decide.
- `always`: promoted whatever the evidence says (the evidence is still reported).
- `never`: neither champion nor challenger changes; the model is only downloadable.

An evidence-based promotion is checked again once the task completes (`recheck_promotion`): the
evidence compared with the champion the iteration started from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from clicktune.evaluation.comparison import Comparison
from clicktune.status import Promotion

Evidence = Literal["judged", "online", "none"]


@dataclass(frozen=True)
class Decision:
    evidence: Evidence
    promoted: bool
    challenger: bool
    reason: str


def decide(
    policy: Promotion,
    comparison: Comparison | None,
    *,
    min_gain: float,
    run: str,
    judged_set: str | None,
) -> Decision:
    evidence: Evidence = "judged" if comparison is not None else "none"
    judged = "" if comparison is None else describe(comparison, judged_set)
    if policy is Promotion.NEVER:
        return Decision(
            evidence,
            False,
            False,
            f"Not promoted: the task's promotion policy is 'never'; {run} is only downloadable"
            + (f" ({judged})." if judged else "."),
        )
    if policy is Promotion.ALWAYS:
        return Decision(
            evidence,
            True,
            False,
            f"Promoted {run} because the task's promotion policy is 'always'"
            + (f" ({judged})." if judged else ", without evidence that it is better."),
        )
    if comparison is None:
        return Decision(
            evidence,
            False,
            True,
            f"Not promoted: without a judged set nothing here can tell whether {run} is better "
            "than the starting model, so it became the method's challenger until live traffic "
            "decides.",
        )
    low = comparison.interval[0]
    if low > min_gain:
        return Decision(
            evidence, True, False, f"Promoted {run}: {judged}, above the minimum gain {min_gain:g}."
        )
    return Decision(
        evidence,
        False,
        False,
        f"Not promoted: {judged}, which does not rule out a gain of {min_gain:g} or less; "
        "the current model stays.",
    )


def recheck_promotion(
    decision: Decision,
    policy: Promotion,
    *,
    expected_champion: str | None,
    current_champion: Callable[[], str | None],
    run: str,
) -> Decision:
    """An evidence-based promotion compares with the champion this iteration started from
    (`expected_champion`; None: the initial model); when another task changed the champion
    meanwhile (`current_champion()`, asked only for such a promotion), the model becomes the
    challenger instead (live traffic decides between the two), so the champion never goes back
    to an older line of models."""
    if not decision.promoted or policy is not Promotion.AUTO:
        return decision
    champion_now = current_champion()
    if champion_now == expected_champion:
        return decision
    started = "the initial model" if expected_champion is None else f"version {expected_champion}"
    return Decision(
        decision.evidence,
        promoted=False,
        challenger=True,
        reason=f"{decision.reason} Not promoted after all: the champion changed from "
        f"{started} to version {champion_now} while this task ran, so {run} became the "
        "challenger for live traffic to compare with the new champion.",
    )


def describe(comparison: Comparison, judged_set: str | None) -> str:
    """`on judged set 'x' (40 queries) nDCG@10 changes by +0.031, 95 % interval [+0.012, +0.049],
    better on 25 queries, worse on 9`."""
    low, high = comparison.interval
    where = f"judged set {judged_set!r}" if judged_set else "the judged set"
    return (
        f"on {where} ({comparison.queries} queries) {comparison.metric} changes by "
        f"{comparison.gain:+.4f}, 95 % interval [{low:+.4f}, {high:+.4f}], better on "
        f"{comparison.wins} queries, worse on {comparison.losses}"
    )


def alias_evidence(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """What an alias move records beside its reason: the figures the decision rests on."""
    names = ("evidence", "main_metric", "baseline", "best", "gain", "gain_interval", "queries")
    return {name: metrics[name] for name in (*names, "validation_set") if name in metrics}


def decision_tags(
    decision: Decision, comparison: Comparison | None, version: str | None
) -> dict[str, str]:
    """The decision on the best run, as MLflow run tags (what the UI shows beside its metrics)."""
    outcome = "promoted" if decision.promoted else "challenger" if decision.challenger else "kept"
    tags = {
        "clicktune.decision": outcome,
        "clicktune.evidence": decision.evidence,
        "clicktune.promotion_reason": decision.reason,
    }
    if comparison is not None:
        low, high = comparison.interval
        tags |= {
            "clicktune.gain": f"{comparison.gain:.6f}",
            "clicktune.gain_interval": f"[{low:.6f}, {high:.6f}]",
            "clicktune.queries": str(comparison.queries),
            "clicktune.wins_ties_losses": (
                f"{comparison.wins}/{comparison.ties}/{comparison.losses}"
            ),
        }
    if version is not None:
        tags["clicktune.model_version"] = version
    return tags

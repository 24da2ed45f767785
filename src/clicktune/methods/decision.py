"""What a task decides about its best model, and the plain sentence that says why (EVALUATION.md).

- `auto`: judged evidence decides: promoted when the gain's interval lies above `min_gain`.
  Without a judged set the model becomes the method's challenger, for live traffic to decide.
- `always`: promoted whatever the evidence says (the evidence is still reported).
- `never`: neither champion nor challenger changes; the model is only downloadable.
"""

from __future__ import annotations

from collections.abc import Mapping
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

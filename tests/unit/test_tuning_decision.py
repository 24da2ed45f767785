"""The decision rule (docs/evaluation.md): a paired, seeded interval, and what each policy does."""

from __future__ import annotations

import numpy as np
import pytest

from clicktune.evaluation.comparison import Comparison, paired_comparison
from clicktune.status import Promotion
from clicktune.tuning.decision import decide


def _scores(
    seed: int, shift: float, queries: int = 60
) -> tuple[dict[str, float], dict[str, float]]:
    rng = np.random.default_rng(seed)
    baseline = {f"q{i}": float(v) for i, v in enumerate(rng.uniform(0.2, 0.8, queries))}
    candidate = {q: v + shift + float(rng.normal(0, 0.05)) for q, v in baseline.items()}
    return baseline, candidate


def test_the_interval_is_paired_and_reproducible_with_the_seed() -> None:
    baseline, candidate = _scores(0, 0.03)
    first = paired_comparison("ndcg_at_10", baseline, candidate, seed=7)
    assert first == paired_comparison("ndcg_at_10", baseline, candidate, seed=7)
    assert first.interval != paired_comparison("ndcg_at_10", baseline, candidate, seed=8).interval
    low, high = first.interval
    assert low < first.gain < high
    assert first.gain == pytest.approx(np.mean([candidate[q] - baseline[q] for q in baseline]))
    assert first.wins + first.ties + first.losses == first.queries == 60
    # Paired: a shift shared by every query is a sure gain, however spread the queries are.
    shifted = {q: v + 0.01 for q, v in baseline.items()}
    sure = paired_comparison("ndcg_at_10", baseline, shifted, seed=7)
    assert sure.interval == pytest.approx((0.01, 0.01)) and sure.wins == 60


def test_only_queries_both_models_scored_are_compared() -> None:
    paired = paired_comparison("ndcg_at_10", {"a": 0.5, "b": 0.2}, {"b": 0.4, "c": 1.0}, seed=0)
    assert (paired.queries, paired.gain, paired.wins) == (1, pytest.approx(0.2), 1)
    with pytest.raises(ValueError):
        paired_comparison("ndcg_at_10", {"a": 0.5}, {"b": 0.5}, seed=0)


def _comparison(low: float, high: float) -> Comparison:
    return Comparison(
        "ndcg_at_10", 40, 0.5, 0.5 + (low + high) / 2, (low + high) / 2, (low, high), 20, 5, 15
    )


@pytest.mark.parametrize(
    ("interval", "promoted"),
    [((0.004, 0.03), True), ((-0.01, 0.03), False), ((-0.03, -0.01), False), ((0.0, 0.0), False)],
)
def test_auto_promotes_only_when_the_interval_is_above_the_minimum_gain(
    interval: tuple[float, float], promoted: bool
) -> None:
    decision = decide(
        Promotion.AUTO, _comparison(*interval), min_gain=0.0, run="run-2", judged_set="golden"
    )
    assert (decision.evidence, decision.promoted, decision.challenger) == (
        "judged",
        promoted,
        False,
    )
    assert decision.reason.startswith("Promoted run-2" if promoted else "Not promoted")
    assert "judged set 'golden' (40 queries)" in decision.reason
    assert "95 % interval" in decision.reason
    stricter = decide(
        Promotion.AUTO, _comparison(*interval), min_gain=0.01, run="run-2", judged_set="golden"
    )
    assert not stricter.promoted


def test_without_evidence_auto_never_promotes_and_names_a_challenger() -> None:
    decision = decide(Promotion.AUTO, None, min_gain=0.0, run="run-1", judged_set=None)
    assert (decision.evidence, decision.promoted, decision.challenger) == ("none", False, True)
    assert "challenger" in decision.reason


def test_always_and_never_ignore_the_evidence_but_report_it() -> None:
    worse = _comparison(-0.03, -0.01)
    always = decide(Promotion.ALWAYS, worse, min_gain=0.0, run="run-1", judged_set="golden")
    assert (always.promoted, always.challenger) == (True, False)
    assert "'always'" in always.reason and "-0.0200" in always.reason
    better = _comparison(0.01, 0.03)
    never = decide(Promotion.NEVER, better, min_gain=0.0, run="run-1", judged_set="golden")
    assert (never.promoted, never.challenger) == (False, False)
    blind = decide(Promotion.NEVER, None, min_gain=0.0, run="run-1", judged_set=None)
    assert (blind.evidence, blind.promoted, blind.challenger) == ("none", False, False)

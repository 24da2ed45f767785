"""Completing an iteration, its pure parts: the promotion re-checked against the champion now,
the task's metrics, the decision as MLflow tags and alias evidence, and the one kept model."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from clicktune.evaluation.comparison import Comparison
from clicktune.status import Promotion
from clicktune.tuning.completion import task_metrics
from clicktune.tuning.decision import Decision, alias_evidence, decision_tags, recheck_promotion
from clicktune.tuning.kept_model import KeptModel
from clicktune.tuning.scores import Scored

PROMOTED = Decision("judged", promoted=True, challenger=False, reason="Promoted run-2: better.")
COMPARISON = Comparison("ndcg_at_10", 40, 0.5, 0.53, 0.03, (0.01, 0.05), 25, 6, 9)


def asked(answer: str | None) -> tuple[list[int], Any]:
    calls: list[int] = []

    def current() -> str | None:
        calls.append(1)
        return answer

    return calls, current


def test_a_promotion_stands_while_the_champion_is_the_one_the_iteration_started_from() -> None:
    calls, current = asked("3")
    kept = recheck_promotion(
        PROMOTED, Promotion.AUTO, expected_champion="3", current_champion=current, run="run-2"
    )
    assert kept is PROMOTED and calls == [1]
    _, initial = asked(None)
    assert (
        recheck_promotion(
            PROMOTED, Promotion.AUTO, expected_champion=None, current_champion=initial, run="run-2"
        )
        is PROMOTED
    )


@pytest.mark.parametrize(("expected", "started"), [("3", "version 3"), (None, "the initial model")])
def test_a_promotion_after_the_champion_changed_makes_a_challenger(
    expected: str | None, started: str
) -> None:
    _, current = asked("4")
    decision = recheck_promotion(
        PROMOTED, Promotion.AUTO, expected_champion=expected, current_champion=current, run="run-2"
    )
    assert (decision.evidence, decision.promoted, decision.challenger) == ("judged", False, True)
    assert decision.reason == (
        f"Promoted run-2: better. Not promoted after all: the champion changed from {started} "
        "to version 4 while this task ran, so run-2 became the challenger for live traffic to "
        "compare with the new champion."
    )


def test_only_an_evidence_based_promotion_is_rechecked() -> None:
    calls, current = asked("4")
    forced = recheck_promotion(
        PROMOTED, Promotion.ALWAYS, expected_champion="3", current_champion=current, run="run-2"
    )
    challenger = Decision("none", promoted=False, challenger=True, reason="No evidence.")
    kept = recheck_promotion(
        challenger, Promotion.AUTO, expected_champion="3", current_champion=current, run="run-2"
    )
    assert (forced, kept, calls) == (PROMOTED, challenger, [])  # the registry is not asked


def scored(value: float, run_id: str = "r", number: int = 0) -> Scored:
    return Scored(
        run_id, value, {"clicks_ndcg_at_10": value / 2, "judged_ndcg_at_10": value}, {}, number
    )


def test_metrics_without_evidence_are_the_decision_and_the_click_diagnostics() -> None:
    decision = Decision("none", promoted=False, challenger=True, reason="A challenger.")
    metrics = task_metrics("ndcg_at_10", scored(0.4), scored(0.6), None, decision, None, None)
    assert metrics == {
        "main_metric": "ndcg_at_10",
        "evidence": "none",
        "promotion_reason": "A challenger.",
        "clicks_baseline": 0.2,
        "clicks_best": 0.3,
    }
    online = {"decision": "kept"}
    assert (
        task_metrics("ndcg_at_10", scored(0.4), scored(0.6), None, decision, online, None)["online"]
        == online
    )


def test_metrics_with_a_judged_set_carry_the_comparison_and_the_set() -> None:
    judged: Any = SimpleNamespace(
        set_id="golden", digest="d", corpus={"a": "x", "b": "y"}, pooled=False
    )
    metrics = task_metrics(
        "ndcg_at_10", scored(0.5), scored(0.53), COMPARISON, PROMOTED, None, judged
    )
    assert metrics["baseline"] == 0.5 and metrics["best"] == 0.53
    assert (metrics["gain"], metrics["gain_interval"], metrics["queries"]) == (
        0.03,
        [0.01, 0.05],
        40,
    )
    assert (metrics["wins"], metrics["ties"], metrics["losses"]) == (25, 6, 9)
    assert (metrics["validation_set"], metrics["validation_set_digest"]) == ("golden", "d")
    assert (metrics["judged_items"], metrics["judged_pooled"]) == (2, False)
    assert alias_evidence(metrics) == {
        "evidence": "judged",
        "main_metric": "ndcg_at_10",
        "baseline": 0.5,
        "best": 0.53,
        "gain": 0.03,
        "gain_interval": [0.01, 0.05],
        "queries": 40,
        "validation_set": "golden",
    }


def test_the_decision_is_tagged_on_the_best_run() -> None:
    tags = decision_tags(PROMOTED, COMPARISON, "7")
    assert tags == {
        "clicktune.decision": "promoted",
        "clicktune.evidence": "judged",
        "clicktune.promotion_reason": "Promoted run-2: better.",
        "clicktune.gain": "0.030000",
        "clicktune.gain_interval": "[0.010000, 0.050000]",
        "clicktune.queries": "40",
        "clicktune.wins_ties_losses": "25/6/9",
        "clicktune.model_version": "7",
    }
    kept = Decision("judged", promoted=False, challenger=False, reason="Not promoted.")
    assert decision_tags(kept, None, None)["clicktune.decision"] == "kept"


class FakeIteration:
    """Records which run models are saved and deleted."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def save_model(self, run_id: str, local_dir: Path) -> None:
        self.calls.append(("save", run_id))

    def delete_model(self, run_id: str) -> None:
        self.calls.append(("delete", run_id))


def test_only_the_best_runs_model_is_kept(tmp_path: Path) -> None:
    iteration = FakeIteration()
    kept = KeptModel(iteration)  # type: ignore[arg-type]
    kept.offer(scored(0.5, "a", 1), tmp_path)
    kept.offer(scored(0.4, "b", 2), tmp_path)  # worse: not saved
    kept.offer(scored(0.5, "c", 3), tmp_path)  # a tie keeps the first
    kept.offer(scored(0.7, "d", 4), tmp_path)
    assert iteration.calls == [("save", "a"), ("save", "d"), ("delete", "a")]
    assert kept.best is not None and kept.best.run_id == "d"


def test_an_earlier_attempts_best_stays_and_its_other_models_go(tmp_path: Path) -> None:
    iteration = FakeIteration()
    kept = KeptModel(iteration)  # type: ignore[arg-type]
    kept.consider_earlier(scored(0.6, "a", 1))
    kept.consider_earlier(scored(0.8, "b", 2))
    records: Any = [
        SimpleNamespace(run_id="a", has_model=True),
        SimpleNamespace(run_id="b", has_model=True),
        SimpleNamespace(run_id="c", has_model=False),
    ]
    kept.drop_others(records)
    assert iteration.calls == [("delete", "a")]
    kept.offer(scored(0.7, "d", 3), tmp_path)
    assert (
        kept.best is not None and kept.best.run_id == "b" and iteration.calls == [("delete", "a")]
    )

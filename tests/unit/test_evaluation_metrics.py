"""Ranking metrics with graded gains, checked against hand-computed values."""

from __future__ import annotations

import math

import pytest

from clicktune.evaluation.metrics import (
    METRIC_NAMES,
    mrr_at_k,
    ndcg_at_k,
    ranking_metrics,
    recall_at_k,
)


def test_ndcg_uses_the_weights_as_gains() -> None:
    gains = {"a": 3.0, "b": 1.0}
    assert ndcg_at_k(["a", "b", "x"], gains, 10) == pytest.approx(1.0)
    swapped = (1.0 + 3.0 / math.log2(3)) / (3.0 + 1.0 / math.log2(3))
    assert ndcg_at_k(["b", "a", "x"], gains, 10) == pytest.approx(swapped)
    # Binary relevance would not tell these two apart; graded gains do.
    assert ndcg_at_k(["x", "a"], gains, 10) > ndcg_at_k(["x", "b"], gains, 10)


def test_ndcg_cuts_at_k() -> None:
    ranking = [f"x{i}" for i in range(10)] + ["a"]
    assert ndcg_at_k(ranking, {"a": 1.0}, 10) == 0.0
    assert ndcg_at_k(ranking, {"a": 1.0}, 11) == pytest.approx(1 / math.log2(12))


def test_mrr_and_recall() -> None:
    gains = {"a": 1.0, "b": 2.0, "c": 1.0}
    ranking = ["x", "b", "y", "a"]
    assert mrr_at_k(ranking, gains, 10) == pytest.approx(0.5)
    assert mrr_at_k(ranking, gains, 1) == 0.0
    assert recall_at_k(ranking, gains, 10) == pytest.approx(2 / 3)
    assert recall_at_k(ranking, gains, 2) == pytest.approx(1 / 3)


def test_ranking_metrics_average_over_judged_queries() -> None:
    rankings = {"q1": ["a", "x"], "q2": ["x", "b"], "q3": ["a"]}
    qrels = {"q1": {"a": 1.0}, "q2": {"b": 1.0}}
    metrics = ranking_metrics(rankings, qrels)
    assert set(metrics) == set(METRIC_NAMES)
    assert metrics["mrr_at_10"] == pytest.approx((1.0 + 0.5) / 2)
    assert metrics["recall_at_100"] == 1.0
    assert metrics["ndcg_at_10"] == pytest.approx((1.0 + 1 / math.log2(3)) / 2)
    assert ranking_metrics({"q": ["a"]}, {}) == dict.fromkeys(METRIC_NAMES, 0.0)

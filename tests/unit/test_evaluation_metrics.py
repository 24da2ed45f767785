"""Ranking metrics with graded gains, and rankings from scores, checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clicktune.evaluation.metrics import (
    METRIC_NAMES,
    mrr_at_k,
    ndcg_at_k,
    ranking_metrics,
    recall_at_k,
)
from clicktune.evaluation.retrieval import top_k


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


def test_top_k_orders_best_first() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [1.0, 0.0, 0.2, 0.3]])
    assert top_k(scores, ["a", "b", "c", "d"], 3) == [["b", "d", "c"], ["a", "d", "c"]]
    assert top_k(scores, ["a", "b", "c", "d"], 10)[0] == ["b", "d", "c", "a"]


def test_ranking_metrics_on_a_hand_computed_example() -> None:
    doc_ids = [f"d{i}" for i in range(12)]
    qrels = {"q1": {"d1": 2, "d0": 0}, "q2": {"d11": 1}}
    scores = np.array([np.linspace(1, 0, 12), np.linspace(1, 0, 12)])
    rankings = dict(zip(["q1", "q2"], top_k(scores, doc_ids, 100), strict=True))
    metrics = ranking_metrics(rankings, qrels, all_judged=True)
    # q1: the grade-2 document at rank 2; q2: the only relevant document at rank 12.
    assert metrics["ndcg_at_10"] == pytest.approx((1 / np.log2(3)) / 2)
    assert metrics["mrr_at_10"] == pytest.approx(0.5 / 2)
    assert metrics["recall_at_100"] == pytest.approx(1.0)


def test_ranking_metrics_refuse_queries_without_relevant_documents() -> None:
    with pytest.raises(ValueError):
        ranking_metrics({"q": ["a", "b"]}, {"q": {"a": 0}}, all_judged=True)

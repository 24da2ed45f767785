"""Ranking metrics over graded judgements (the positives' weights are the gains).

sentence-transformers' `InformationRetrievalEvaluator` only knows binary relevance, so nDCG with
graded gains is computed here; the other metrics follow the usual definitions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

METRIC_NAMES = ("ndcg_at_10", "mrr_at_10", "recall_at_10", "recall_at_100")
MAX_K = 100


def ndcg_at_k(ranking: Sequence[str], gains: Mapping[str, float], k: int) -> float:
    """nDCG@k with linear gains: sum(gain / log2(rank + 1)) over the ideal ordering's sum."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float(sum(gains.get(oid, 0.0) * discounts[i] for i, oid in enumerate(ranking[:k])))
    ideal = np.sort(np.fromiter(gains.values(), dtype=float))[::-1][:k]
    idcg = float(np.dot(ideal, discounts[: len(ideal)]))
    return dcg / idcg if idcg > 0 else 0.0


def mrr_at_k(ranking: Sequence[str], gains: Mapping[str, float], k: int) -> float:
    for rank, oid in enumerate(ranking[:k], start=1):
        if gains.get(oid, 0.0) > 0:
            return 1.0 / rank
    return 0.0


def recall_at_k(ranking: Sequence[str], gains: Mapping[str, float], k: int) -> float:
    relevant = {oid for oid, gain in gains.items() if gain > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranking[:k])) / len(relevant)


def ranking_metrics(
    rankings: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, float]]
) -> dict[str, float]:
    """The mean of each metric over the queries that have judgements."""
    judged = [qid for qid in rankings if any(g > 0 for g in qrels.get(qid, {}).values())]
    if not judged:
        return dict.fromkeys(METRIC_NAMES, 0.0)
    per_metric = {
        "ndcg_at_10": [ndcg_at_k(rankings[q], qrels[q], 10) for q in judged],
        "mrr_at_10": [mrr_at_k(rankings[q], qrels[q], 10) for q in judged],
        "recall_at_10": [recall_at_k(rankings[q], qrels[q], 10) for q in judged],
        "recall_at_100": [recall_at_k(rankings[q], qrels[q], 100) for q in judged],
    }
    return {name: float(np.mean(values)) for name, values in per_metric.items()}

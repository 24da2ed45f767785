"""Ranking metrics over graded judgements: the one implementation every figure comes from.

The task's evaluation, the simulator, the demo and `bench/quality.py` all score rankings here, so
a benchmark figure and a task figure mean the same thing. Gains are the grades as given (linear,
as trec_eval and BEIR use them) unless turned into `2^grade - 1` first (`exponential_gains`, what
a judged set's grades mean, docs/evaluation.md); Recall and MRR count a document relevant when its
gain is above 0, and an unjudged document is not relevant. The values agree with trec_eval's
`ndcg_cut_10`, `recall_100` and reciprocal rank cut at 10 (a test checks them with `ir_measures`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

METRIC_NAMES = ("ndcg_at_10", "mrr_at_10", "recall_at_10", "recall_at_100")
MAX_K = 100
"""The deepest cut of any metric: rankings longer than this are not looked at."""

Qrels = Mapping[str, Mapping[str, float]]
"""Query id → document id → grade."""

_DISCOUNTS = 1.0 / np.log2(np.arange(2, MAX_K + 2))


def exponential_gains(qrels: Qrels) -> dict[str, dict[str, float]]:
    """Grades 0, 1, 2, 3 … as gains 0, 1, 3, 7 …: a perfect result is worth more than twice a
    good one."""
    return {
        query_id: {doc_id: 2.0**grade - 1.0 for doc_id, grade in judged.items()}
        for query_id, judged in qrels.items()
    }


def ndcg_at_k(ranking: Sequence[str], gains: Mapping[str, float], k: int) -> float:
    """nDCG@k with linear gains: sum(gain / log2(rank + 1)) over the ideal ordering's sum."""
    discounts = _DISCOUNTS if k <= MAX_K else 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float(sum(gains.get(oid, 0.0) * discounts[i] for i, oid in enumerate(ranking[:k])))
    ideal = np.sort(np.fromiter(gains.values(), dtype=float))[::-1][:k]
    idcg = float(np.dot(ideal, discounts[: len(ideal)]))
    return dcg / idcg if idcg > 0 else 0.0


def mrr_at_k(ranking: Sequence[str], gains: Mapping[str, float], k: int) -> float:
    """The reciprocal rank of the first relevant document within the top k (0 without one)."""
    for rank, oid in enumerate(ranking[:k], start=1):
        if gains.get(oid, 0.0) > 0:
            return 1.0 / rank
    return 0.0


def recall_at_k(ranking: Sequence[str], gains: Mapping[str, float], k: int) -> float:
    relevant = {oid for oid, gain in gains.items() if gain > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranking[:k])) / len(relevant)


def query_metrics(ranking: Sequence[str], gains: Mapping[str, float]) -> dict[str, float]:
    """Every metric of `METRIC_NAMES` for one query's ranking."""
    return {
        "ndcg_at_10": ndcg_at_k(ranking, gains, 10),
        "mrr_at_10": mrr_at_k(ranking, gains, 10),
        "recall_at_10": recall_at_k(ranking, gains, 10),
        "recall_at_100": recall_at_k(ranking, gains, 100),
    }


def is_judged(gains: Mapping[str, float] | None) -> bool:
    """Whether a query has a relevant document: only such queries are scored."""
    return bool(gains) and any(grade > 0 for grade in gains.values())


def per_query_metrics(
    rankings: Mapping[str, Sequence[str]], qrels: Qrels, *, all_judged: bool = False
) -> dict[str, dict[str, float]]:
    """Each judged query's metrics (a query with no relevant document is left out).

    `all_judged`: raise `ValueError` instead of leaving a query out, for query sets that must be
    fully judged (a benchmark's test queries): a silently skipped query would shift the mean.
    """
    scored = {}
    for query_id, ranking in rankings.items():
        gains = qrels.get(query_id)
        if not is_judged(gains):
            if all_judged:
                raise ValueError(f"query {query_id!r} has no relevant document to score against")
            continue
        assert gains is not None
        scored[query_id] = query_metrics(ranking, gains)
    return scored


def mean_metrics(per_query: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The mean of each metric over the queries (0 for every metric when there are none)."""
    if not per_query:
        return dict.fromkeys(METRIC_NAMES, 0.0)
    return {
        name: float(np.mean([values[name] for values in per_query.values()]))
        for name in METRIC_NAMES
    }


def ranking_metrics(
    rankings: Mapping[str, Sequence[str]], qrels: Qrels, *, all_judged: bool = False
) -> dict[str, float]:
    """The mean of each metric over the judged queries (see `per_query_metrics`)."""
    return mean_metrics(per_query_metrics(rankings, qrels, all_judged=all_judged))

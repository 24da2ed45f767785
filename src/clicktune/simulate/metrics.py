"""Full-corpus ranking metrics on held-out queries: nDCG@10 (graded), Recall@100, MRR@10."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def ranking_metrics(
    scores: np.ndarray,
    doc_ids: Sequence[str],
    query_ids: Sequence[str],
    qrels: Mapping[str, Mapping[str, int]],
) -> dict[str, float]:
    """Mean metrics over `query_ids`; `scores[i, j]` scores document j for query i.

    nDCG uses the grades as linear gains (as trec_eval and BEIR do); Recall and MRR count
    a document as relevant when its grade is above 0. Unjudged documents are non-relevant.
    """
    from sklearn.metrics import ndcg_score

    if scores.shape != (len(query_ids), len(doc_ids)):
        raise ValueError("scores must have one row per query and one column per document")
    column = {doc_id: j for j, doc_id in enumerate(doc_ids)}
    gains = np.zeros(scores.shape, dtype=np.float64)
    for i, query_id in enumerate(query_ids):
        for doc_id, grade in qrels.get(query_id, {}).items():
            if grade > 0 and doc_id in column:
                gains[i, column[doc_id]] = grade
    if not (gains > 0).any(axis=1).all():
        raise ValueError("every evaluated query needs a relevant document in the corpus")
    ranked = np.argsort(-scores, axis=1, kind="stable")[:, :100]
    relevant_ranked = np.take_along_axis(gains, ranked, axis=1) > 0
    recall_at_100 = relevant_ranked.sum(axis=1) / (gains > 0).sum(axis=1)
    first_hit = relevant_ranked[:, :10]
    reciprocal_rank = np.where(first_hit.any(axis=1), 1.0 / (first_hit.argmax(axis=1) + 1), 0.0)
    return {
        "ndcg_at_10": float(ndcg_score(gains, scores, k=10)),
        "recall_at_100": float(recall_at_100.mean()),
        "mrr_at_10": float(reciprocal_rank.mean()),
    }

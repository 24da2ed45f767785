"""The one metrics implementation agrees with trec_eval (through `ir_measures`' pytrec_eval).

Random scored runs with graded judgements (grades 0 to 3) and many tied scores: our rankings break
ties as trec_eval does, and every metric matches trec_eval's value for every query.
"""

from __future__ import annotations

import ir_measures
import numpy as np
import pytest
from ir_measures import RR, R, nDCG

from clicktune.evaluation.metrics import MAX_K, per_query_metrics
from clicktune.evaluation.retrieval import TopK, top_k

DOCS = [f"d{i:03d}" for i in range(150)]
QUERIES = 300


def _random_run(seed: int) -> tuple[dict[str, np.ndarray], dict[str, dict[str, int]]]:
    rng = np.random.default_rng(seed)
    scores, qrels = {}, {}
    for number in range(QUERIES):
        query_id = f"q{number}"
        scores[query_id] = rng.integers(0, 8, size=len(DOCS)).astype(np.float32) / 8  # ties
        judged = rng.choice(len(DOCS), size=20, replace=False)
        grades = rng.integers(0, 4, size=len(judged))
        grades[0] = max(grades[0], 1)
        qrels[query_id] = {DOCS[j]: int(g) for j, g in zip(judged, grades, strict=True)}
    return scores, qrels


def _trec_eval(
    scores: dict[str, np.ndarray], qrels: dict[str, dict[str, int]]
) -> dict[str, dict[str, float]]:
    judged = [ir_measures.Qrel(q, d, g) for q, docs in qrels.items() for d, g in docs.items()]
    run = [
        ir_measures.ScoredDoc(q, d, float(s))
        for q, row in scores.items()
        for d, s in zip(DOCS, row, strict=True)
    ]
    values: dict[str, dict[str, float]] = {}
    evaluator = ir_measures.providers.registry["pytrec_eval"]
    for m in evaluator.iter_calc([nDCG @ 10, R @ 10, R @ 100, RR], judged, run):
        values.setdefault(m.query_id, {})[str(m.measure)] = m.value
    return {
        query_id: {
            "ndcg_at_10": found["nDCG@10"],
            "recall_at_10": found["R@10"],
            "recall_at_100": found["R@100"],
            # trec_eval's reciprocal rank has no cut: the first relevant within 10 is ≥ 1/10.
            "mrr_at_10": found["RR"] if found["RR"] >= 0.1 - 1e-12 else 0.0,
        }
        for query_id, found in values.items()
    }


@pytest.mark.parametrize("seed", [0, 1])
def test_metrics_match_trec_eval_on_random_rankings_with_ties(seed: int) -> None:
    scores, qrels = _random_run(seed)
    rankings = {q: top_k(row[None, :], DOCS, MAX_K)[0] for q, row in scores.items()}
    ours = per_query_metrics(rankings, qrels)
    reference = _trec_eval(scores, qrels)
    assert set(ours) == set(reference)
    for query_id, expected in reference.items():
        assert ours[query_id] == pytest.approx(expected, abs=1e-12), query_id


def test_chunked_top_k_equals_one_pass_with_ties() -> None:
    scores, _ = _random_run(2)
    matrix = np.stack(list(scores.values()))
    chunked = TopK(len(matrix), 10, DOCS)
    for start in range(0, len(DOCS), 7):
        chunked.add(matrix[:, start : start + 7], np.arange(start, min(start + 7, len(DOCS))))
    assert chunked.ids() == top_k(matrix, DOCS, 10)

"""The test-split evaluator: each held-out query ranks the whole test pool, and is scored.

A sentence-transformers evaluator, so the trainer calls it at each evaluation step; it remembers
its last metrics and the time it spent (the training-overhead benchmark subtracts that time), and
its retrieval checks for cancel between chunks of the pool (a large pool takes a while on a CPU).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.evaluation import BaseEvaluator

from clicktune.evaluation.metrics import MAX_K, METRIC_NAMES, Qrels, is_judged, ranking_metrics
from clicktune.evaluation.retrieval import DenseRetriever


class RetrievalEvaluator(BaseEvaluator):
    """nDCG@10 (graded), MRR@10, Recall@10 and Recall@100 of held-out queries over the pool."""

    def __init__(
        self,
        queries: Mapping[str, str],
        qrels: Qrels,
        pool: Mapping[str, str],
        *,
        main_metric: str = "ndcg_at_10",
        batch_size: int = 64,
        is_canceled: Callable[[], bool] = lambda: False,
        bf16: bool = False,
    ) -> None:
        super().__init__()
        if main_metric not in METRIC_NAMES:
            raise ValueError(f"main_metric must be one of {METRIC_NAMES}, got {main_metric!r}")
        self.queries = {qid: text for qid, text in queries.items() if is_judged(qrels.get(qid))}
        self.qrels = qrels
        self.pool = pool
        self.batch_size = batch_size
        self.is_canceled = is_canceled
        self.bf16 = bf16
        self.primary_metric = main_metric
        self.last_metrics: dict[str, float] = {}
        self.seconds = 0.0

    def __call__(
        self,
        model: SentenceTransformer,
        output_path: str | None = None,
        epoch: float = -1,
        steps: int = -1,
        *args: Any,
        **kwargs: Any,
    ) -> dict[str, float]:
        started = time.perf_counter()
        metrics = ranking_metrics(self.rankings(model), self.qrels)
        self.seconds += time.perf_counter() - started
        self.last_metrics = dict(metrics)  # the trainer renames the returned dict's keys in place
        return metrics

    def rankings(self, model: SentenceTransformer) -> dict[str, list[str]]:
        """Each query's top `MAX_K` pool items, best first."""
        retriever = DenseRetriever(
            model,
            self.pool,
            batch_size=self.batch_size,
            bf16=self.bf16,
            is_canceled=self.is_canceled,
        )
        ranked = retriever.search(list(self.queries.values()), MAX_K)
        return dict(zip(self.queries, ranked, strict=True))

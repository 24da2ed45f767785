"""The task's evaluator: a model scored on each evidence set from one encoding of their documents.

The held-out clicks rank the batch's shown results (`clicks_*`, diagnostics: docs/evaluation.md); a
judged set ranks the whole catalog, or its pool (`judged_*`, the evidence that decides). A
sentence-transformers evaluator, so the trainer calls it at each evaluation step; it remembers
its last metrics, each query's scores (a comparison is paired over queries) and the time it spent
(the training-overhead benchmark subtracts that time); its retrieval checks for cancel between
chunks of the documents.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.evaluation import BaseEvaluator

from clicktune.evaluation.evidence import CLICKS, EvidenceSet
from clicktune.evaluation.metrics import MAX_K, METRIC_NAMES, mean_metrics, per_query_metrics
from clicktune.evaluation.retrieval import DenseRetriever, QuerySet


class TaskEvaluator(BaseEvaluator):
    """nDCG@10 (graded), MRR@10, Recall@10 and Recall@100 of each set, named `<set>_<metric>`."""

    def __init__(
        self,
        pool: Mapping[str, str],
        sets: Mapping[str, EvidenceSet],
        *,
        main_metric: str = "ndcg_at_10",
        primary_set: str = CLICKS,
        batch_size: int = 64,
        is_canceled: Callable[[], bool] = lambda: False,
        bf16: bool = False,
    ) -> None:
        super().__init__()
        if main_metric not in METRIC_NAMES:
            raise ValueError(f"main_metric must be one of {METRIC_NAMES}, got {main_metric!r}")
        self.pool = pool
        self.sets = sets
        self.batch_size = batch_size
        self.is_canceled = is_canceled
        self.bf16 = bf16
        self.primary_metric = f"{primary_set}_{main_metric}"
        self.last_metrics: dict[str, float] = {}
        self.last_per_query: dict[str, dict[str, dict[str, float]]] = {}
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
        rankings = self.rankings(model)
        self.last_per_query = {
            name: per_query_metrics(rankings[name], self.sets[name].qrels) for name in self.sets
        }
        metrics = {
            f"{name}_{metric}": value
            for name, per_query in self.last_per_query.items()
            for metric, value in mean_metrics(per_query).items()
        }
        self.seconds += time.perf_counter() - started
        self.last_metrics = dict(metrics)  # the trainer renames the returned dict's keys in place
        return metrics

    def rankings(self, model: SentenceTransformer) -> dict[str, dict[str, list[str]]]:
        """Each set's judged queries, each with its top `MAX_K` documents, best first."""
        retriever = DenseRetriever(
            model,
            self.pool,
            batch_size=self.batch_size,
            bf16=self.bf16,
            is_canceled=self.is_canceled,
        )
        queries = {name: evidence.judged_queries() for name, evidence in self.sets.items()}
        ranked = retriever.rank(
            {
                name: QuerySet(list(queries[name].values()), evidence.doc_ids)
                for name, evidence in self.sets.items()
            },
            MAX_K,
        )
        return {name: dict(zip(queries[name], ranked[name], strict=True)) for name in self.sets}

"""The test-split evaluator: rank the whole test pool for every held-out query by cosine similarity.

A sentence-transformers evaluator, so the trainer calls it at each evaluation step; it remembers
its last metrics and the time it spent (the training-overhead benchmark subtracts that time), and
checks for cancel between chunks of the pool (a large pool takes a while on a CPU).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.evaluation import BaseEvaluator

from clicktune.evaluation.metrics import MAX_K, ranking_metrics
from clicktune.methods.base import TaskCanceled
from clicktune.training.precision import bf16_autocast

MAIN_METRIC = "ndcg_at_10"


class RetrievalEvaluator(BaseEvaluator):
    """nDCG@10 (graded), MRR@10, Recall@10 and Recall@100 of held-out queries over the pool."""

    def __init__(
        self,
        queries: Mapping[str, str],
        qrels: Mapping[str, Mapping[str, float]],
        pool: Mapping[str, str],
        batch_size: int = 64,
        chunk_size: int = 1024,
        is_canceled: Callable[[], bool] = lambda: False,
        bf16: bool = False,
    ) -> None:
        super().__init__()
        self.bf16 = bf16
        self.is_canceled = is_canceled
        self.query_ids = [qid for qid in queries if qrels.get(qid)]
        self.query_texts = [queries[qid] for qid in self.query_ids]
        self.qrels = qrels
        self.pool_ids = list(pool)
        self.pool_texts = [pool[oid] for oid in self.pool_ids]
        self.batch_size = batch_size
        self.chunk_size = chunk_size
        self.primary_metric = MAIN_METRIC
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
        """Each query's top `MAX_K` pool items, best first (ties by object id)."""
        with torch.inference_mode():
            queries = self._encode(model, self.query_texts)
            best_scores = torch.full((len(queries), 0), float("-inf"), device=queries.device)
            best_index = torch.zeros((len(queries), 0), dtype=torch.long, device=queries.device)
            for start in range(0, len(self.pool_texts), self.chunk_size):
                if self.is_canceled():
                    raise TaskCanceled("canceled during evaluation")
                chunk = self._encode(model, self.pool_texts[start : start + self.chunk_size])
                scores = torch.cat([best_scores, queries @ chunk.T], dim=1)
                index = torch.cat(
                    [
                        best_index,
                        torch.arange(start, start + len(chunk), device=queries.device).expand(
                            len(queries), -1
                        ),
                    ],
                    dim=1,
                )
                k = min(MAX_K, scores.shape[1])
                best_scores, picked = torch.topk(scores, k, dim=1)
                best_index = index.gather(1, picked)
        rankings = {}
        for row, qid in enumerate(self.query_ids):
            pairs = zip(best_scores[row].tolist(), best_index[row].tolist(), strict=True)
            ordered = sorted(pairs, key=lambda pair: (-pair[0], self.pool_ids[pair[1]]))
            rankings[qid] = [self.pool_ids[i] for _score, i in ordered]
        return rankings

    def _encode(self, model: SentenceTransformer, texts: list[str]) -> torch.Tensor:
        with bf16_autocast(model.device.type, self.bf16):
            embeddings = model.encode(
                texts,
                batch_size=self.batch_size,
                convert_to_tensor=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return embeddings.float()

"""Retrieval over a corpus, and the evaluator that scores a model by it.

One dense retriever ranks for the task's evaluation (the test pool, every evaluation step), the
simulator's serving model, the demo and `bench/quality.py` (the whole corpus, its encodings cached
on disk, since encoding a corpus is the dominant cost on a CPU). Rankings break ties between equal
scores as trec_eval does (document id, descending), so a ranking does not depend on the order of
the corpus, and metrics computed here agree with trec_eval's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clicktune.device import bf16_autocast
from clicktune.errors import TaskCanceled
from clicktune.evaluation.metrics import MAX_K, Qrels, ranking_metrics

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MODEL_FILES = ("modules.json", "sentence_bert_config.json")
WEIGHT_SUFFIXES = (".safetensors", ".bin")


def model_fingerprint(model_dir: Path | str) -> str:
    """A digest of a sentence-transformers folder's weights and module layout."""
    root = Path(model_dir)
    digest = hashlib.sha256()
    files = sorted(
        path
        for path in root.rglob("*")
        if path.is_file() and (path.suffix in WEIGHT_SUFFIXES or path.name in MODEL_FILES)
    )
    if not files:
        raise FileNotFoundError(f"no sentence-transformers model files under {root}")
    for path in files:
        digest.update(str(path.relative_to(root)).encode())
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


class TopK:
    """The k best documents of each query, kept while score chunks of the corpus arrive.

    Order: score descending, then document id descending (trec_eval's). Exact whatever the
    chunking, because every merge keeps the top k under that total order.
    """

    def __init__(self, queries: int, k: int, doc_ids: Sequence[str]) -> None:
        self.k = k
        self.doc_ids = doc_ids
        # tie_rank[j]: where document j stands among all ids sorted descending.
        order = sorted(range(len(doc_ids)), key=doc_ids.__getitem__, reverse=True)
        self.tie_rank = np.empty(len(doc_ids), dtype=np.int64)
        self.tie_rank[order] = np.arange(len(doc_ids))
        self.scores = np.empty((queries, 0), dtype=np.float32)
        self.index = np.empty((queries, 0), dtype=np.int64)

    def add(self, scores: np.ndarray, columns: np.ndarray) -> None:
        """`scores[:, i]` scores document `columns[i]` (an index into `doc_ids`) for each query."""
        merged_scores = np.concatenate([self.scores, scores.astype(np.float32, copy=False)], 1)
        merged_index = np.concatenate(
            [self.index, np.broadcast_to(columns.astype(np.int64), scores.shape)], axis=1
        )
        k = min(self.k, merged_scores.shape[1])
        kept_scores = np.empty((len(merged_scores), k), dtype=np.float32)
        kept_index = np.empty((len(merged_scores), k), dtype=np.int64)
        for row, (row_scores, row_index) in enumerate(
            zip(merged_scores, merged_index, strict=True)
        ):
            # Everything tied with the k-th best score competes on the tie rule.
            threshold = np.partition(row_scores, len(row_scores) - k)[len(row_scores) - k]
            candidates = np.flatnonzero(row_scores >= threshold)
            order = np.lexsort((self.tie_rank[row_index[candidates]], -row_scores[candidates]))[:k]
            kept_scores[row] = row_scores[candidates[order]]
            kept_index[row] = row_index[candidates[order]]
        self.scores, self.index = kept_scores, kept_index

    def ids(self) -> list[list[str]]:
        return [[self.doc_ids[j] for j in row] for row in self.index.tolist()]


def top_k(scores: np.ndarray, doc_ids: Sequence[str], k: int) -> list[list[str]]:
    """The ids of each row's `k` best-scored documents, best first (ties as `TopK`)."""
    best = TopK(len(scores), k, doc_ids)
    best.add(scores, np.arange(len(doc_ids)))
    return best.ids()


@dataclass(frozen=True)
class QuerySet:
    """Queries to rank over the corpus, or over a part of it (`doc_ids`)."""

    texts: Sequence[str]
    doc_ids: AbstractSet[str] | None = None
    """The documents these queries rank; None: the whole corpus."""


class DenseRetriever:
    """Cosine-similarity retrieval over a corpus (`id → text`) with one model.

    With `cache_path`, the corpus is encoded once and its embeddings kept in memory and on disk;
    without, it is encoded a chunk at a time for each search (memory bounded by the chunk), and
    `is_canceled` is checked between chunks.
    """

    def __init__(
        self,
        model: SentenceTransformer,
        corpus: Mapping[str, str],
        *,
        batch_size: int = 64,
        chunk_size: int = 1024,
        bf16: bool = False,
        cache_path: Path | None = None,
        is_canceled: Callable[[], bool] = lambda: False,
        show_progress: bool = False,
    ) -> None:
        self.model = model
        self.doc_ids = list(corpus)
        self.texts = [corpus[doc_id] for doc_id in self.doc_ids]
        self.batch_size = batch_size
        self.chunk_size = chunk_size
        self.bf16 = bf16
        self.cache_path = cache_path
        self.is_canceled = is_canceled
        self.show_progress = show_progress
        self._corpus: np.ndarray | None = None

    def search(self, queries: Sequence[str], k: int = MAX_K) -> list[list[str]]:
        """The ids of the `k` best documents of each query, best first."""
        return self.rank({"queries": QuerySet(queries)}, k)["queries"]

    def rank(
        self, query_sets: Mapping[str, QuerySet], k: int = MAX_K
    ) -> dict[str, list[list[str]]]:
        """Each set's queries ranked over its documents, from one pass over the corpus: a corpus
        is encoded once however many sets share it."""
        encoded = {
            name: self._encode(list(qs.texts), query=True) for name, qs in query_sets.items()
        }
        subsets = {name: qs.doc_ids for name, qs in query_sets.items()}
        return self._rank_encoded(encoded, subsets, k)

    def search_encoded(self, queries: np.ndarray, k: int = MAX_K) -> list[list[str]]:
        """`search` for queries encoded elsewhere (normalized vectors of this model, as an
        application gets them from `/embeddings`)."""
        vectors = np.asarray(queries, dtype=np.float32)
        return self._rank_encoded({"queries": vectors}, {"queries": None}, k)["queries"]

    def _rank_encoded(
        self,
        encoded: Mapping[str, np.ndarray],
        subsets: Mapping[str, AbstractSet[str] | None],
        k: int,
    ) -> dict[str, list[list[str]]]:
        members = {
            name: None
            if subset is None
            else np.fromiter((d in subset for d in self.doc_ids), bool, len(self.doc_ids))
            for name, subset in subsets.items()
        }
        best = {name: TopK(len(queries), k, self.doc_ids) for name, queries in encoded.items()}
        for start, chunk in self._corpus_chunks():
            columns = np.arange(start, start + len(chunk))
            for name, queries in encoded.items():
                member = members[name]
                if member is None:
                    best[name].add(queries @ chunk.T, columns)
                else:
                    inside = member[start : start + len(chunk)]
                    best[name].add(queries @ chunk[inside].T, columns[inside])
        return {name: topk.ids() for name, topk in best.items()}

    def corpus_embeddings(self) -> np.ndarray:
        """The whole corpus encoded (loaded from `cache_path` when it is there)."""
        if self._corpus is not None:
            return self._corpus
        if self.cache_path is not None and self.cache_path.exists():
            self._corpus = np.load(self.cache_path)
            return self._corpus
        self._corpus = self._encode(self.texts, query=False, show_progress=self.show_progress)
        if self.cache_path is not None:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.cache_path.with_suffix(".partial.npy")
            np.save(partial, self._corpus)
            partial.replace(self.cache_path)
        return self._corpus

    def _corpus_chunks(self) -> Any:
        cached = self.cache_path is not None
        for start in range(0, len(self.texts), self.chunk_size):
            if self.is_canceled():
                raise TaskCanceled("canceled during retrieval")
            if cached:
                yield start, self.corpus_embeddings()[start : start + self.chunk_size]
            else:
                yield start, self._encode(self.texts[start : start + self.chunk_size], query=False)

    def _encode(self, texts: list[str], *, query: bool, show_progress: bool = False) -> np.ndarray:
        encode = self.model.encode_query if query else self.model.encode_document
        with bf16_autocast(self.model.device.type, self.bf16):
            embeddings = encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=show_progress,
            )
        return np.asarray(embeddings, dtype=np.float32)


class Bm25Retriever:
    """Lexical reference line (bm25s; k1=0.9, b=0.4 as Anserini's defaults, English stopwords)."""

    def __init__(self, corpus: Mapping[str, str], k1: float = 0.9, b: float = 0.4) -> None:
        import bm25s

        self._bm25s = bm25s
        self.doc_ids = list(corpus)
        self.index = bm25s.BM25(k1=k1, b=b)
        self.index.index(self._tokenize([corpus[d] for d in self.doc_ids]), show_progress=False)

    def _tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        return self._bm25s.tokenize(
            list(texts), stopwords="en", return_ids=False, show_progress=False
        )

    def search(self, queries: Sequence[str], k: int = MAX_K) -> list[list[str]]:
        """BM25's `k` best documents of each query; a query of stopwords only scores 0."""
        empty = np.zeros(len(self.doc_ids), dtype=np.float32)
        scores = np.stack(
            [
                self.index.get_scores(tokens) if tokens else empty
                for tokens in self._tokenize(queries)
            ]
        )
        return top_k(scores, self.doc_ids, k)


def retrieval_metrics(
    retriever: DenseRetriever | Bm25Retriever, queries: Mapping[str, str], qrels: Qrels
) -> dict[str, float]:
    """Mean metrics of every query (`id → text`) over the retriever's corpus; each query must
    have a relevant document (a benchmark's held-out queries are fully judged)."""
    rankings = retriever.search(list(queries.values()), MAX_K)
    return ranking_metrics(dict(zip(queries, rankings, strict=True)), qrels, all_judged=True)

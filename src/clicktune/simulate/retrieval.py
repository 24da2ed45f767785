"""Full-corpus retrieval for the simulation's serving model and the benchmark's reference lines.

The dense retriever encodes the whole corpus once per (model, corpus, truncation, precision) and
keeps the embeddings on disk, because encoding a corpus is the dominant cost on a CPU.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from clicktune.simulate.collection import Document
from clicktune.training.precision import bf16_autocast

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


def load_model(model_dir: Path | str, max_seq_length: int | None = None) -> SentenceTransformer:
    """Load a local sentence-transformers folder on the CPU (or the one CUDA device)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), local_files_only=True)
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    return model


class DenseRetriever:
    """Cosine-similarity retrieval over a whole corpus with one model."""

    def __init__(
        self,
        model: SentenceTransformer,
        model_key: str,
        documents: Sequence[Document],
        corpus_key: str,
        *,
        cache_dir: Path | None = None,
        bf16: bool = False,
        batch_size: int = 64,
        show_progress: bool = False,
    ) -> None:
        self.model = model
        self.documents = documents
        self.doc_ids = [document.id for document in documents]
        self.bf16 = bf16
        self.batch_size = batch_size
        self.show_progress = show_progress
        key = f"{model_key}:{corpus_key}:{model.max_seq_length}:{'bf16' if bf16 else 'fp32'}"
        self.cache_path = (
            cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.npy"
            if cache_dir is not None
            else None
        )
        self._corpus: np.ndarray | None = None

    def corpus_embeddings(self) -> np.ndarray:
        if self._corpus is not None:
            return self._corpus
        if self.cache_path is not None and self.cache_path.exists():
            self._corpus = np.load(self.cache_path)
            return self._corpus
        with bf16_autocast(self.model.device.type, self.bf16):
            embeddings = self.model.encode_document(
                [document.content for document in self.documents],
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=self.show_progress,
            )
        self._corpus = np.asarray(embeddings, dtype=np.float32)
        if self.cache_path is not None:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.cache_path.with_suffix(".partial.npy")
            np.save(partial, self._corpus)
            partial.replace(self.cache_path)
        return self._corpus

    def scores(self, queries: Sequence[str]) -> np.ndarray:
        """Cosine similarity of every query (rows) with every document (columns)."""
        corpus = self.corpus_embeddings()
        with bf16_autocast(self.model.device.type, self.bf16):
            encoded = self.model.encode_query(
                list(queries),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(encoded, dtype=np.float32) @ corpus.T

    def search(self, queries: Sequence[str], k: int) -> list[list[str]]:
        """The ids of the `k` best documents of each query, best first."""
        return top_k_ids(self.scores(queries), self.doc_ids, k)


class Bm25Retriever:
    """Lexical reference line (bm25s; k1=0.9, b=0.4 as Anserini's defaults, English stopwords)."""

    def __init__(self, documents: Sequence[Document], k1: float = 0.9, b: float = 0.4) -> None:
        import bm25s

        self._bm25s = bm25s
        self.doc_ids = [document.id for document in documents]
        self.index = bm25s.BM25(k1=k1, b=b)
        self.index.index(
            self._tokenize([document.content for document in documents]), show_progress=False
        )

    def _tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        return self._bm25s.tokenize(
            list(texts), stopwords="en", return_ids=False, show_progress=False
        )

    def scores(self, queries: Sequence[str]) -> np.ndarray:
        """BM25 score of every document for every query; a query of stopwords only scores 0."""
        empty = np.zeros(len(self.doc_ids), dtype=np.float32)
        return np.stack(
            [
                self.index.get_scores(tokens) if tokens else empty
                for tokens in self._tokenize(queries)
            ]
        )

    def search(self, queries: Sequence[str], k: int) -> list[list[str]]:
        return top_k_ids(self.scores(queries), self.doc_ids, k)


def top_k_ids(scores: np.ndarray, doc_ids: Sequence[str], k: int) -> list[list[str]]:
    k = min(k, scores.shape[1])
    best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(scores, best, axis=1).argsort(axis=1, kind="stable")[:, ::-1]
    ranked = np.take_along_axis(best, order, axis=1)
    return [[doc_ids[i] for i in row] for row in ranked]

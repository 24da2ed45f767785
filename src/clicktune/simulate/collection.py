"""Public IR test collections in the layout of `shared/data/*` (corpus, queries, graded qrels)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

TRAIN_FRACTION = 2 / 3


@dataclass(frozen=True)
class Document:
    """One corpus entry: `content` is what a model sees, `extra` the other fields."""

    id: str
    title: str
    text: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def content(self) -> str:
        return "\n".join(part for part in (self.title.strip(), self.text.strip()) if part)


@dataclass(frozen=True)
class Query:
    id: str
    text: str
    split: str | None = None


@dataclass
class Collection:
    """A corpus, its queries and graded judgements (`qrels[query_id][doc_id] = grade`)."""

    name: str
    documents: list[Document]
    queries: dict[str, Query]
    qrels: dict[str, dict[str, int]]

    @property
    def max_grade(self) -> int:
        return max(grade for judged in self.qrels.values() for grade in judged.values())

    def corpus(self) -> dict[str, str]:
        """Every document's content by id: what a retriever ranks."""
        return {document.id: document.content for document in self.documents}

    def query_texts(self, query_ids: Iterable[str]) -> dict[str, str]:
        return {query_id: self.queries[query_id].text for query_id in query_ids}

    def fingerprint(self) -> str:
        """Changes whenever any document's id or content changes (cache key of encodings)."""
        digest = hashlib.sha256()
        for document in self.documents:
            digest.update(document.id.encode())
            digest.update(b"\0")
            digest.update(document.content.encode())
            digest.update(b"\1")
        return digest.hexdigest()[:16]

    def split(self, seed: int = 0) -> tuple[list[str], list[str]]:
        """Train and test query ids of the benchmark protocol, judged queries only.

        A collection with its own `split` field keeps it (scifact: train / test); any other is
        shuffled with `seed` and cut 2/3 train, 1/3 test.
        """
        judged = [query_id for query_id in self.queries if self.qrels.get(query_id)]
        if any(self.queries[query_id].split for query_id in judged):
            train = [q for q in judged if self.queries[q].split == "train"]
            test = [q for q in judged if self.queries[q].split == "test"]
            return train, test
        shuffled = sorted(judged)
        random.Random(seed).shuffle(shuffled)
        cut = round(len(shuffled) * TRAIN_FRACTION)
        return shuffled[:cut], shuffled[cut:]

    def subset(self, query_ids: list[str], distractors: int, seed: int = 0) -> Collection:
        """A smaller collection: these queries, every document judged for them, and
        `distractors` other documents drawn with `seed` (for quick runs and tests)."""
        judged = {doc_id for query_id in query_ids for doc_id in self.qrels.get(query_id, {})}
        others = sorted(document.id for document in self.documents if document.id not in judged)
        drawn = set(random.Random(seed).sample(others, min(distractors, len(others))))
        return Collection(
            name=self.name,
            documents=[d for d in self.documents if d.id in judged or d.id in drawn],
            queries={query_id: self.queries[query_id] for query_id in query_ids},
            qrels={query_id: dict(self.qrels.get(query_id, {})) for query_id in query_ids},
        )


def _open_text(path: Path) -> IO[str]:
    """The file itself or its gzip-compressed `.gz` sibling (the bundled demo catalog)."""
    if path.exists():
        return path.open(encoding="utf-8")
    compressed = path.with_name(path.name + ".gz")
    if compressed.exists():
        return gzip.open(compressed, "rt", encoding="utf-8")
    raise FileNotFoundError(f"neither {path} nor {compressed} exists")


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with _open_text(path) as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def load_collection(directory: Path | str, *, graded: bool = True) -> Collection:
    """Load `corpus.jsonl[.gz]`, `queries.jsonl` and the qrels (`qrels_graded.tsv` if `graded`
    and present, else `qrels.tsv`) of one collection folder."""
    directory = Path(directory)
    documents = [
        Document(
            id=str(row.pop("id")),
            title=row.pop("title", "") or "",
            text=row.pop("text", "") or "",
            extra=row,
        )
        for row in _jsonl(directory / "corpus.jsonl")
    ]
    queries = {
        str(row["id"]): Query(id=str(row["id"]), text=row["text"], split=row.get("split"))
        for row in _jsonl(directory / "queries.jsonl")
    }
    qrels_name = "qrels_graded.tsv" if graded else "qrels.tsv"
    if not (directory / qrels_name).exists() and not (directory / f"{qrels_name}.gz").exists():
        qrels_name = "qrels.tsv"
    qrels: dict[str, dict[str, int]] = {}
    with _open_text(directory / qrels_name) as rows:
        for row in csv.DictReader(rows, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["doc-id"]] = int(row["grade"])
    return Collection(name=directory.name, documents=documents, queries=queries, qrels=qrels)

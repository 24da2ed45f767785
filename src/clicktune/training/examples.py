"""Clickstream → labelled examples and the query-grouped split (docs/architecture.md).

Sessions are streamed once and each labelled positive is appended to a JSON-lines file in the
task's work folder, so memory does not grow with the number of sessions: what stays in memory is
bounded by the catalog and the query vocabulary (item texts of the batch's results, one 64-bit hash
per distinct labelled query, at most `max_irrelevant_negatives` ids per query from its irrelevant
sessions, the held-out queries' judgements).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from clicktune.errors import TaskFailed

ItemLoader = Callable[[list[str]], Mapping[str, str]]
"""object ids → text of those that have content (ids without content are left out)."""

LOAD_CHUNK = 2000


def normalize_query(query: str) -> str:
    """The split's grouping key: lowercased, whitespace collapsed."""
    return " ".join(query.lower().split())


@dataclass(frozen=True)
class LabelConfig:
    """How events become graded positives."""

    event_weights: Mapping[str, float]
    default_event_weight: float = 1.0
    position_bias_eta: float | None = None


class Positive(NamedTuple):
    object_id: str
    gain: float
    """The relevance grade (largest event weight): the gain in evaluation."""
    weight: float
    """The training weight: the gain, divided by the examination propensity when enabled."""
    negatives: tuple[str, ...]
    """Results shown above this one and not interacted with (skip-above), nearest first."""


class SessionLabels(NamedTuple):
    query: str
    positives: tuple[Positive, ...] = ()
    irrelevant: tuple[str, ...] = ()
    """Every shown result of a session the user marked irrelevant."""


def label_session(session: Mapping[str, Any], config: LabelConfig) -> SessionLabels | None:
    """A session's positives and hard negatives; None for a session that carries no label.

    A session marked irrelevant contributes all its results as negatives and no positives, even
    if it has events: the user said none of them was what they wanted.
    """
    results = [result["object_id"] for result in session["search_results"]]
    query = session["search_query"]
    if session.get("is_irrelevant"):
        return SessionLabels(query=query, irrelevant=tuple(results)) if results else None
    events = session.get("events")
    if not events:
        return None
    weights, default = config.event_weights, config.default_event_weight
    gains: dict[str, float] = {}
    for event in events:
        weight = weights.get(event["event_type"], default)
        object_id = event["object_id"]
        if weight > gains.get(object_id, -math.inf):
            gains[object_id] = weight
    positives = []
    for index, object_id in enumerate(results):
        gain = gains.get(object_id)
        if gain is None or gain <= 0:
            continue
        weight = gain
        if config.position_bias_eta:
            weight = gain * (index + 1) ** config.position_bias_eta
        above = tuple(oid for oid in reversed(results[:index]) if oid not in gains)
        positives.append(Positive(object_id, gain, weight, above))
    return SessionLabels(query=query, positives=tuple(positives)) if positives else None


@dataclass
class PreparationStats:
    sessions: int = 0
    labelled_sessions: int = 0
    irrelevant_sessions: int = 0
    unlabelled_sessions: int = 0
    positives: int = 0
    skipped_positives: int = 0
    objects_without_content: int = 0
    labelled_queries: int = 0
    train_queries: int = 0
    test_queries: int = 0
    train_positives: int = 0
    test_positives: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


@dataclass
class PreparedData:
    """A batch made ready for training and evaluation; see the module docstring for memory."""

    examples_path: Path
    """JSON lines `[query_hash, query_key, query, object_id, gain, weight, [negative ids]]`."""
    texts: dict[str, str]
    """The test pool: every result of the batch that has content, by object id."""
    split_seed: int
    test_cutoff: int
    test_queries: dict[str, str]
    """Held-out query key → query text (its first occurrence)."""
    test_qrels: dict[str, dict[str, float]]
    """Held-out query key → object id → gain."""
    irrelevant_negatives: dict[str, list[str]]
    """Query key → results of its irrelevant sessions (capped), extra negatives for training."""
    stats: PreparationStats
    missing_examples: list[str] = field(default_factory=list)
    """A few object ids without content, to name in the warning."""
    held_out_keys: frozenset[str] = frozenset()
    """Query keys kept out of training whatever the split: the queries of the task's judged set,
    which judge the trained model and must not have taught it."""

    def is_test(self, query_key: str) -> bool:
        return query_hash(self.split_seed, query_key) <= self.test_cutoff

    def iter_examples(self, *, test: bool) -> Iterator[list[Any]]:
        """Records of one side of the split, without their hash: `[query_key, query, …]`; the
        training side leaves out `held_out_keys`."""
        cutoff = self.test_cutoff
        held_out = self.held_out_keys
        with self.examples_path.open(encoding="utf-8") as lines:
            for line in lines:
                record = json.loads(line)
                if (record[0] <= cutoff) == test and (test or record[1] not in held_out):
                    yield record[1:]

    def hold_out(self, queries: Iterable[str]) -> int:
        """Keep `queries` out of training; returns how many training positives that removes."""
        self.held_out_keys = frozenset(normalize_query(query) for query in queries)
        return self.stats.train_positives - sum(1 for _ in self.iter_examples(test=False))


def query_hash(seed: int, query_key: str) -> int:
    digest = hashlib.blake2b(f"{seed}\x00{query_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class _TextCache:
    """Item texts looked up once per object id, a page of sessions at a time."""

    def __init__(self, loader: ItemLoader) -> None:
        self.loader = loader
        self.texts: dict[str, str] = {}
        self.missing: set[str] = set()

    def load(self, object_ids: set[str]) -> None:
        object_ids -= self.texts.keys()
        object_ids -= self.missing
        wanted = sorted(object_ids)
        for start in range(0, len(wanted), LOAD_CHUNK):
            chunk = wanted[start : start + LOAD_CHUNK]
            found = self.loader(chunk)
            for oid in chunk:
                text = found.get(oid)
                if text:
                    self.texts[oid] = text
                else:
                    self.missing.add(oid)


def _pages(sessions: Iterable[Mapping[str, Any]], size: int) -> Iterator[list[Mapping[str, Any]]]:
    page: list[Mapping[str, Any]] = []
    for session in sessions:
        page.append(session)
        if len(page) >= size:
            yield page
            page = []
    if page:
        yield page


def prepare_examples(
    sessions: Iterable[Mapping[str, Any]],
    *,
    label: Callable[[Mapping[str, Any]], SessionLabels | None],
    load_items: ItemLoader,
    out_dir: Path,
    test_fraction: float,
    seed: int,
    min_labelled_queries: int,
    max_irrelevant_negatives: int = 16,
    page_size: int = 1000,
    check_canceled: Callable[[], None] = lambda: None,
) -> PreparedData:
    """Stream the sessions to an examples file, then split by query; fail with what is missing."""
    out_dir.mkdir(parents=True, exist_ok=True)
    examples_path = out_dir / "examples.jsonl"
    stats = PreparationStats()
    cache = _TextCache(load_items)
    labelled_hashes: set[int] = set()
    irrelevant: dict[str, list[str]] = {}
    texts = cache.texts
    dumps = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode
    with examples_path.open("w", encoding="utf-8") as out:
        for page in _pages(sessions, page_size):
            check_canceled()
            cache.load({r["object_id"] for s in page for r in s["search_results"]})
            for session in page:
                stats.sessions += 1
                labels = label(session)
                if labels is None:
                    stats.unlabelled_sessions += 1
                    continue
                key = normalize_query(labels.query)
                if labels.irrelevant:
                    stats.irrelevant_sessions += 1
                    negatives = irrelevant.setdefault(key, [])
                    for oid in labels.irrelevant:
                        if len(negatives) >= max_irrelevant_negatives:
                            break
                        if oid in texts and oid not in negatives:
                            negatives.append(sys.intern(oid))  # one string per item, however often
                if not labels.positives:
                    continue
                stats.labelled_sessions += 1
                query = labels.query.strip()
                hashed = query_hash(seed, key)
                for object_id, gain, weight, above in labels.positives:
                    stats.positives += 1
                    if object_id not in texts:
                        stats.skipped_positives += 1
                        continue
                    negatives = [oid for oid in above if oid in texts]
                    record = [hashed, key, query, object_id, gain, weight, negatives]
                    out.write(dumps(record) + "\n")
                    labelled_hashes.add(hashed)
    stats.objects_without_content = len(cache.missing)
    stats.labelled_queries = len(labelled_hashes)
    _check_enough(stats, min_labelled_queries)
    test_count = min(max(1, round(len(labelled_hashes) * test_fraction)), len(labelled_hashes) - 1)
    cutoff = sorted(labelled_hashes)[test_count - 1]
    del labelled_hashes
    data = PreparedData(
        examples_path=examples_path,
        texts=cache.texts,
        split_seed=seed,
        test_cutoff=cutoff,
        test_queries={},
        test_qrels={},
        irrelevant_negatives=irrelevant,
        stats=stats,
        missing_examples=sorted(cache.missing)[:10],
    )
    _collect_split(data)
    return data


def _check_enough(stats: PreparationStats, min_labelled_queries: int) -> None:
    if stats.labelled_queries == 0:
        raise TaskFailed(
            "no_training_data",
            f"The batch has no clicked result with content to train on: {stats.sessions} "
            f"sessions, {stats.labelled_sessions} with events on shown results, "
            f"{stats.irrelevant_sessions} marked irrelevant, {stats.skipped_positives} clicked "
            f"results without content ({stats.objects_without_content} objects have no content "
            "in the catalog; add them with PUT /api/v1/items/{object_id}).",
        )
    needed = max(min_labelled_queries, 2)
    if stats.labelled_queries < needed:
        raise TaskFailed(
            "batch_too_small",
            f"The batch has {stats.labelled_queries} distinct queries with clicked results; at "
            f"least {needed} are needed to hold some out for evaluation. Collect more sessions "
            "and events, then release a new batch.",
        )


def _collect_split(data: PreparedData) -> None:
    stats = data.stats
    with data.examples_path.open(encoding="utf-8") as lines:
        for line in lines:
            hashed, key, query, object_id, gain, _weight, _negatives = json.loads(line)
            if hashed <= data.test_cutoff:
                stats.test_positives += 1
                data.test_queries.setdefault(key, query)
                qrels = data.test_qrels.setdefault(key, {})
                qrels[object_id] = max(gain, qrels.get(object_id, gain))
            else:
                stats.train_positives += 1
    stats.test_queries = len(data.test_queries)
    stats.train_queries = stats.labelled_queries - stats.test_queries

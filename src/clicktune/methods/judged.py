"""A judged set made ready to decide with: its queries, their gains, and what they rank.

Every candidate and the starting model rank the whole catalog (every item with content; unjudged
items count as not relevant). A catalog above `judged_max_items` is scored over a pool instead:
every judged item and a seeded uniform sample of the others up to the limit (EVALUATION.md), read
in one pass so memory holds at most the pool.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from clicktune.errors import TaskFailed
from clicktune.evaluation.evidence import EvidenceSet
from clicktune.evaluation.metrics import exponential_gains

if TYPE_CHECKING:
    from clicktune.methods.base import TaskContext
    from clicktune.methods.embedding import EmbeddingFineTuningMethod


@dataclass(frozen=True)
class JudgedSet:
    set_id: str
    digest: str
    """Of the set's content when the task read it: which version decided."""
    evidence: EvidenceSet
    corpus: dict[str, str]
    """What the judged queries rank: object id → text."""
    catalog_items: int
    """Items with content in the catalog."""
    pooled: bool
    """The catalog was above the limit: `corpus` is the judged items and a sample."""
    judged_without_content: int

    def describe(self) -> str:
        scope = (
            f"a pool of {len(self.corpus)} of the catalog's {self.catalog_items} items "
            "(every judged item and a seeded sample: the catalog is above judged_max_items)"
            if self.pooled
            else f"the whole catalog ({self.catalog_items} items)"
        )
        return (
            f"judged set {self.set_id!r}: {len(self.evidence.judged_queries())} queries with a "
            f"relevant judgment, ranking {scope}"
        )


def load_judged_set(
    method: EmbeddingFineTuningMethod,
    context: TaskContext,
    set_id: str,
    *,
    max_items: int,
    seed: int,
) -> JudgedSet:
    digest, graded = context.judgments(set_id)
    judged_ids = {object_id for judged in graded.values() for object_id in judged}
    capacity = max(max_items - len(judged_ids), 0)
    rng = random.Random(seed)
    corpus: dict[str, str] = {}
    sample: list[tuple[str, str]] = []
    others = items = 0
    for item in context.iter_catalog():
        if items % 1000 == 0:
            context.raise_if_canceled()
        text = method.item_text(item)
        if not text:
            continue
        items += 1
        object_id = item["object_id"]
        if object_id in judged_ids:
            corpus[object_id] = text
            continue
        others += 1  # Algorithm R: each of the others ends in the sample with equal chance
        if len(sample) < capacity:
            sample.append((object_id, text))
        else:
            slot = rng.randrange(others)
            if slot < capacity:
                sample[slot] = (object_id, text)
    corpus.update(sample)
    evidence = EvidenceSet(
        queries={query: query for query in graded},
        qrels=exponential_gains(graded),
        doc_ids=frozenset(corpus),
    )
    if not evidence.judged_queries():
        raise TaskFailed(
            "judgment_set_unusable",
            f"Judged set {set_id!r} has no query with a relevant judgment (grade 1 or more): "
            "it cannot tell a better model from a worse one.",
        )
    return JudgedSet(
        set_id=set_id,
        digest=digest,
        evidence=evidence,
        corpus=corpus,
        catalog_items=items,
        pooled=others > capacity,
        judged_without_content=len(judged_ids - corpus.keys()),
    )

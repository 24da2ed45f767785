"""A judged set made ready to decide with: its queries, their gains, and what they rank.

Every candidate and the starting model rank the whole catalog (every item with content; unjudged
items count as not relevant). A catalog above `judged_max_items` is scored over a pool instead:
every judged item and a seeded uniform sample of the others up to the limit (docs/evaluation.md),
read in one pass so memory holds at most the pool. The judged queries judge the trained model, so
they are kept out of its training (`hold_out_judged_queries`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from clicktune.errors import TaskFailed
from clicktune.evaluation.evidence import EvidenceSet
from clicktune.evaluation.metrics import exponential_gains

if TYPE_CHECKING:
    from clicktune.training.examples import PreparedData
    from clicktune.tuning.plugin import TaskContext


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
    context: TaskContext,
    set_id: str,
    item_text: Callable[[Mapping[str, Any]], str | None],
    *,
    max_items: int,
    seed: int,
) -> JudgedSet:
    """The set's judgments and what its queries rank, each item embedded as `item_text` says."""
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
        text = item_text(item)
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


def hold_out_judged_queries(context: TaskContext, data: PreparedData, judged: JudgedSet) -> None:
    """The judged set's queries judge the trained model, so they must not have taught it: a
    model trained on them looks better on them than it is (seen on esci_us_srw150: +0.039 on
    the judged queries, -0.032 on held-out test queries). Fails the task when no training
    query is left."""
    removed = data.hold_out(judged.evidence.queries.values())
    if removed == data.stats.train_positives:
        raise TaskFailed(
            "no_training_data",
            f"Every training query of batch {context.task.batch_id} is in judged set "
            f"{judged.set_id!r}: judged queries are kept out of training so that they can "
            "judge the model. Judge fewer queries, or collect clicks on others.",
        )
    context.add_event(
        f"The judged set's queries are kept out of training: {removed} training positives "
        f"of {data.stats.train_positives} left out",
        held_out_positives=removed,
    )

"""The evidence sets a task's evaluator scores: which queries, judged how, ranking what.

Importing this module stays cheap (no torch): the API and the methods name the sets without
loading a model.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from clicktune.evaluation.metrics import Qrels, is_judged

CLICKS = "clicks"
JUDGED = "judged"


@dataclass(frozen=True)
class EvidenceSet:
    """Queries (`id → text`) with their gains, ranked over `doc_ids` of the evaluator's pool."""

    queries: Mapping[str, str]
    qrels: Qrels
    doc_ids: AbstractSet[str] | None = None
    """None: the whole pool."""

    def judged_queries(self) -> dict[str, str]:
        return {qid: text for qid, text in self.queries.items() if is_judged(self.qrels.get(qid))}

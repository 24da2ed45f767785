"""A model's evaluation as the iteration compares it: the selection metric, all metrics and, with
a judged set, the main metric of each judged query (what a paired comparison needs)."""

from __future__ import annotations

from dataclasses import dataclass

from clicktune.evaluation.evidence import CLICKS, JUDGED
from clicktune.tracking.iterations import RunRecord

PER_QUERY_ARTIFACT = "evaluation/judged_per_query.json"
"""A run's judged main metric per query: what a later attempt compares without re-evaluating."""


def selection_metric(main_metric: str, *, judged: bool) -> str:
    """The metric runs are selected by: judged when the task has a judged set, else clicks."""
    return f"{JUDGED if judged else CLICKS}_{main_metric}"


def finished_with(record: RunRecord, selection: str) -> bool:
    """An earlier attempt finished this run and scored it on `selection`: it is not run again."""
    return record.finished and selection in record.metrics


@dataclass
class Scored:
    """One evaluated model: a trial's or the baseline's."""

    run_id: str
    value: float
    """Its `selection` metric."""
    metrics: dict[str, float]
    per_query: dict[str, float] | None = None
    number: int = 0
    """The trial's number (`run-<n>`); 0 for the baseline."""

    def beats(self, other: Scored | None) -> bool:
        return other is None or self.value > other.value

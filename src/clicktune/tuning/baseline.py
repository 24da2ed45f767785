"""The baseline: the starting model scored on the task's evidence, once per iteration (a later
attempt reads back what an earlier one recorded)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from clicktune.errors import TaskCanceled
from clicktune.tracking.iterations import BASELINE_RUN, KIND_BASELINE, RunRecord
from clicktune.tuning.scores import PER_QUERY_ARTIFACT, Scored, finished_with

if TYPE_CHECKING:
    from clicktune.tuning.opening import OpenedIteration


def evaluate_baseline(opened: OpenedIteration, record: RunRecord | None) -> Scored:
    """The starting model's scores, from the `baseline` run an earlier attempt finished or
    from a new evaluation logged as that run."""
    scope, iteration, selection = opened.scope, opened.iteration, opened.selection
    scope.progress.stage("baseline", "Evaluating the starting model", percent=3.0)
    if record is not None and finished_with(record, selection):
        baseline = opened.scored_earlier(record, 0)
    else:
        run_id = iteration.start_run(BASELINE_RUN, KIND_BASELINE, existing=record)
        try:
            metrics = scope.hooks.evaluate(opened.start_dir, opened.evaluator)
        except TaskCanceled:
            iteration.kill_run(run_id)
            raise
        iteration.log_metrics(run_id, metrics, step=0)
        baseline = Scored(run_id, metrics[selection], metrics, opened.per_query())
        if baseline.per_query is not None:
            iteration.log_json(run_id, baseline.per_query, PER_QUERY_ARTIFACT)
        iteration.finish_run(run_id)
    scope.context.add_event(
        f"Baseline {selection} = {baseline.value:.4f}",
        baseline=baseline.value,
        metrics=baseline.metrics,
    )
    return baseline

"""Opening an iteration: everything before the first run is evaluated.

In order: the batch's examples, the judged set (its queries kept out of training), what live
traffic says about the challenger, the starting model, and the iteration's MLflow experiment
with the starting model downloaded and the task's evaluator built.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clicktune.evaluation.evidence import JUDGED
from clicktune.tracking.iterations import TAG_SELECTION, Iteration, MethodTracking, RunRecord
from clicktune.tuning.judged_set import JudgedSet, hold_out_judged_queries, load_judged_set
from clicktune.tuning.live_decision import LiveDecision, decide_live
from clicktune.tuning.scores import PER_QUERY_ARTIFACT, Scored, selection_metric

if TYPE_CHECKING:
    from collections.abc import Callable

    from clicktune.evaluation.evaluator import TaskEvaluator
    from clicktune.training.examples import PreparedData
    from clicktune.tuning.plugin import TaskContext
    from clicktune.tuning.scope import IterationScope


@dataclass(frozen=True)
class OpenedIteration:
    """What every step after opening the iteration works with."""

    scope: IterationScope
    tracking: MethodTracking
    iteration: Iteration
    data: PreparedData
    start_dir: Path
    evaluator: TaskEvaluator
    judged: JudgedSet | None
    live: LiveDecision | None
    """What the batch's live traffic decided about the challenger before training."""
    expected_champion: str | None
    """The champion version this iteration's evidence is relative to (None: the initial model);
    a promotion needs it to still be the champion."""

    @property
    def main_metric(self) -> str:
        return self.scope.config.main_metric

    @property
    def selection(self) -> str:
        """The metric runs are selected by: judged when the task has a judged set."""
        return selection_metric(self.main_metric, judged=self.judged is not None)

    def per_query(self) -> dict[str, float] | None:
        """The judged main metric of each query in the evaluator's last evaluation."""
        if self.judged is None:
            return None
        scores = self.evaluator.last_per_query[JUDGED]
        return {query: values[self.main_metric] for query, values in scores.items()}

    def scored_earlier(self, record: RunRecord, number: int) -> Scored:
        """A run an earlier attempt finished, as it was scored then."""
        per_query = None
        if self.judged is not None:
            per_query = self.iteration.read_json(record.run_id, PER_QUERY_ARTIFACT)
        metrics = dict(record.metrics)
        return Scored(record.run_id, metrics[self.selection], metrics, per_query, number)


def open_iteration(scope: IterationScope) -> OpenedIteration:
    """Prepare the evidence, resolve the starting model and open (or find again) the MLflow
    iteration of the task."""
    task, context, hooks = scope.task, scope.context, scope.hooks
    scope.progress.stage(
        "preparing_data",
        f"Preparing training examples from batch {task.batch_id}",
        percent=0.0,
        batch_id=task.batch_id,
    )
    data = hooks.prepare_data(context, scope.root / "data")
    report_data(context, data)
    judged = read_judged_set(scope)
    if judged is not None:
        hold_out_judged_queries(context, data, judged)

    tracking = MethodTracking(context.settings, hooks.meta.name, hooks.registered_model_name)
    live = decide_from_live_traffic(scope, tracking)
    scope.progress.stage("initial_model", "Resolving the starting model", percent=1.0)
    candidate, expected_champion = starting_run(tracking, live, hooks.initial_model_path)
    iteration = tracking.open_iteration(task.task_id, task.batch_id, candidate)
    iteration.set_tag(
        TAG_SELECTION, selection_metric(scope.config.main_metric, judged=judged is not None)
    )
    start_dir = tracking.download_model(iteration.starting_run_id, scope.root / "start")
    context.add_event(
        f"Starting from the model of MLflow run {iteration.starting_run_id}; iteration "
        f"experiment {iteration.name!r}",
        starting_run_id=iteration.starting_run_id,
        mlflow_experiment=iteration.name,
    )
    scope.log.info(
        "iteration_opened", experiment=iteration.name, starting_run_id=iteration.starting_run_id
    )
    evaluator = hooks.make_evaluator(data, context.is_canceled, judged)
    return OpenedIteration(
        scope, tracking, iteration, data, start_dir, evaluator, judged, live, expected_champion
    )


def report_data(context: TaskContext, data: PreparedData) -> None:
    """What the batch gave: examples, queries, and the shown objects without content."""
    stats = data.stats.as_dict()
    context.add_event(
        f"{stats['train_positives']} training and {stats['test_positives']} test positives "
        f"from {stats['sessions']} sessions ({stats['train_queries']} train / "
        f"{stats['test_queries']} test queries, {len(data.texts)} items in the test pool)",
        **stats,
    )
    if data.stats.objects_without_content:
        context.add_event(
            f"{data.stats.objects_without_content} objects shown in the batch have no content "
            f"and were skipped ({data.stats.skipped_positives} clicked results among them)",
            level="warning",
            objects_without_content=data.stats.objects_without_content,
            skipped_positives=data.stats.skipped_positives,
            examples=data.missing_examples,
        )


def read_judged_set(scope: IterationScope) -> JudgedSet | None:
    """The task's judged set, ready to rank (None without one: no judged evidence)."""
    context = scope.context
    set_id = scope.task.validation_set
    if set_id is None:
        context.add_event(
            "No judged set: held-out clicks are reported as diagnostics (clicks_*) and "
            "cannot promote",
            evidence="none",
        )
        return None
    scope.progress.stage("judged_set", f"Reading judged set {set_id!r} and the catalog", 0.5)
    judged = load_judged_set(
        context,
        set_id,
        scope.hooks.item_text,
        max_items=context.settings.judged_max_items,
        seed=scope.config.seed,
    )
    context.add_event(
        f"Deciding on {judged.describe()}",
        validation_set=set_id,
        validation_set_digest=judged.digest,
        queries=len(judged.evidence.judged_queries()),
        items=len(judged.corpus),
        catalog_items=judged.catalog_items,
        pooled=judged.pooled,
    )
    if judged.judged_without_content:
        context.add_event(
            f"{judged.judged_without_content} judged objects have no content in the catalog: "
            "no model can retrieve them (they still count as relevant)",
            level="warning",
            judged_without_content=judged.judged_without_content,
        )
    return judged


def decide_from_live_traffic(
    scope: IterationScope, tracking: MethodTracking
) -> LiveDecision | None:
    """Decide on the challenger from the batch's live traffic, before training from the
    champion it leaves (the decision moves aliases only when the task completes)."""
    scope.progress.stage("online", "Comparing the champion and the challenger on live traffic", 0.8)
    decided = decide_live(scope.context, scope.config, tracking.registry)
    if decided is None:
        return None
    online: dict[str, Any] = decided.report
    scope.context.add_event(
        online["reason"],
        level="info",
        online_decision=online["decision"],
        verdict=online["verdict"],
        decided_by=online["decided_by"],
        champion=online["champion"],
        challenger=online["challenger"],
    )
    scope.log.info("online_decision", decision=online["decision"], verdict=online["verdict"])
    return decided


def starting_run(
    tracking: MethodTracking, live: LiveDecision | None, initial_model: Callable[[], Path]
) -> tuple[str, str | None]:
    """The run whose model this iteration starts from: the challenger's when live traffic
    promotes it, else the champion's, else the initial model's; and the champion version the
    evidence will be relative to (None: the initial model)."""
    if live is not None and live.promotes:
        return live.challenger_run_id, live.challenger
    champion = tracking.champion()
    if champion is not None and champion.run_id:
        return str(champion.run_id), str(champion.version)
    return tracking.initial_run(initial_model), None

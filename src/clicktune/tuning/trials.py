"""The trial search: the planned runs trained and scored one after another, each resumed or
skipped as earlier attempts left it, the best one's model kept.

A run that fails is recorded (its MLflow run `FAILED`, an error event) and the search goes on; the
task fails only when every run failed. A cancel stops the current run (`KILLED`) and the task.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from typing import TYPE_CHECKING

from clicktune.errors import TaskCanceled, TaskFailed
from clicktune.tracking.iterations import (
    KIND_TRIAL,
    TAG_PARAMS_HASH,
    MetricBuffer,
    RunRecord,
    trial_run_name,
)
from clicktune.training.search_space import Value
from clicktune.tuning.kept_model import KeptModel
from clicktune.tuning.progress import BEFORE_TRAINING
from clicktune.tuning.scores import PER_QUERY_ARTIFACT, Scored, finished_with

if TYPE_CHECKING:
    from clicktune.training.trainer import TrainOutcome
    from clicktune.tuning.opening import OpenedIteration
    from clicktune.tuning.trial_plan import TrialPlan


def run_trials(opened: OpenedIteration, plan: TrialPlan) -> Scored:
    """Every planned run; the best one (its model is the iteration's kept model)."""
    progress, selection = opened.scope.progress, opened.selection
    progress.runs_total = plan.total
    kept = KeptModel(opened.iteration)
    for name, record in plan.trials.items():
        if finished_with(record, selection):
            scored = opened.scored_earlier(record, int(name.rsplit("-", 1)[1]))
            plan.search.add_result(plan.earlier[name], scored.value)
            kept.consider_earlier(scored)
    kept.drop_others(plan.trials.values())

    progress.stage(
        "training",
        f"Training {plan.total} run{'s' if plan.total > 1 else ''}, selected by {selection}",
        percent=BEFORE_TRAINING,
        selection=selection,
    )
    first_failure: str | None = None
    progress.runs_done = sum(1 for r in plan.trials.values() if finished_with(r, selection))
    for number in range(1, plan.total + 1):
        name = trial_run_name(number)
        record = plan.trials.get(name)
        if record is not None and finished_with(record, selection):
            continue
        if record is not None:
            token, params = None, plan.earlier[name]
        else:
            token, params = plan.search.ask()
        scored, failure = run_trial(opened, number, params, record, kept)
        value = None if scored is None else scored.value
        if token is None:
            plan.search.add_result(params, value)
        else:
            plan.search.tell(token, value)
        if failure is not None:
            first_failure = first_failure or failure
    if kept.best is None:
        raise TaskFailed(
            "all_runs_failed", f"Every training run failed; the first failure: {first_failure}"
        )
    return kept.best


def run_trial(
    opened: OpenedIteration,
    number: int,
    params: Mapping[str, Value],
    record: RunRecord | None,
    kept: KeptModel,
) -> tuple[Scored | None, str | None]:
    """Train, evaluate and (when it is the best so far) keep one run's model.

    Returns the run's scores (None when it failed) and the failure message.
    """
    from clicktune.training.search import params_hash
    from clicktune.training.trainer import RunCallback

    scope, iteration = opened.scope, opened.iteration
    context, progress = scope.context, scope.progress
    context.raise_if_canceled()
    name = trial_run_name(number)
    progress.report("training", current_run=number)
    run_id = iteration.start_run(
        name, KIND_TRIAL, params, tags={TAG_PARAMS_HASH: params_hash(params)}, existing=record
    )
    run_log = scope.log.bind(run_id=run_id, run=name)
    context.add_event(f"Run {name} started", run=number, run_id=run_id, params=dict(params))
    run_log.info("run_started", params=dict(params))
    buffer = iteration.metric_buffer(run_id)
    run_dir = scope.root / "runs" / name
    callback = RunCallback(
        evaluator=opened.evaluator,
        is_canceled=context.is_canceled,
        on_progress=lambda fraction: progress.report(
            "training", current_run=number, fraction=fraction
        ),
        on_metrics=buffer.add,
        checkpoint_every_s=scope.config.checkpoint_every_s,
    )
    try:
        outcome = scope.hooks.train(opened.start_dir, opened.data, params, run_dir, callback)
        buffer.add({"train_examples_per_s": outcome.examples_per_second}, outcome.steps)
        buffer.flush()
        scored = Scored(
            run_id,
            outcome.metrics[opened.selection],
            dict(outcome.metrics),
            opened.per_query(),
            number,
        )
        if scored.per_query is not None:
            iteration.log_json(run_id, scored.per_query, PER_QUERY_ARTIFACT)
        kept.offer(scored, run_dir / "model")
        iteration.finish_run(run_id)
    except TaskCanceled:
        _stop_run(opened, run_id, buffer)
        raise
    except Exception as exc:
        if context.is_canceled():
            _stop_run(opened, run_id, buffer)
            raise TaskCanceled(scope.task.task_id) from exc
        message = f"{type(exc).__name__}: {exc}"
        buffer.flush()
        iteration.fail_run(run_id, message)
        run_log.exception("run_failed")
        context.add_event(f"Run {name} failed: {message}", level="error", run=number, run_id=run_id)
        shutil.rmtree(run_dir, ignore_errors=True)
        return None, message
    progress.runs_done += 1
    shutil.rmtree(run_dir, ignore_errors=True)
    _report_finished(opened, name, number, run_id, scored, outcome)
    run_log.info("run_finished", metrics=outcome.metrics, steps=outcome.steps)
    return scored, None


def _report_finished(
    opened: OpenedIteration,
    name: str,
    number: int,
    run_id: str,
    scored: Scored,
    outcome: TrainOutcome,
) -> None:
    resumed = outcome.resumed_from_step
    opened.scope.context.add_event(
        f"Run {name} finished: {opened.selection} = {scored.value:.4f}"
        + (f" (resumed from the checkpoint of step {resumed})" if resumed else ""),
        run=number,
        run_id=run_id,
        metrics=outcome.metrics,
        steps=outcome.steps,
        train_examples_per_s=round(outcome.examples_per_second, 2),
        resumed_from_step=resumed,
    )


def _stop_run(opened: OpenedIteration, run_id: str, buffer: MetricBuffer) -> None:
    buffer.flush()
    opened.iteration.kill_run(run_id)
    opened.scope.log.info("run_canceled", run_id=run_id)

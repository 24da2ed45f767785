"""The standard iteration (PIPELINE.md's eight steps) of embedding methods.

`EmbeddingFineTuningMethod.run` calls `run_iteration`; the method's hooks do each step's work
(examples, model, loss, training arguments, evaluation), this module orders the steps, tracks them
in MLflow and reports them to the task. Everything this attempt
needs to know about earlier attempts of the same task is read back from MLflow (the iteration's
experiment and its runs), so a task taken over from a lost worker does not redo finished runs,
and an unfinished run resumes from its newest checkpoint when the work folder still has it.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clicktune.errors import InvalidHyperparameter, TaskCanceled, TaskFailed
from clicktune.logs import get_logger
from clicktune.methods.base import TaskContext, TaskResult
from clicktune.tracking.iterations import (
    BASELINE_RUN,
    KIND_BASELINE,
    KIND_TRIAL,
    TAG_KIND,
    TAG_PARAMS_HASH,
    Iteration,
    MethodTracking,
    MetricBuffer,
    RunRecord,
    model_uri,
    trial_run_name,
)
from clicktune.training.examples import PreparedData
from clicktune.training.search_space import Value, parse_params

if TYPE_CHECKING:
    from clicktune.evaluation.evaluator import RetrievalEvaluator
    from clicktune.methods.embedding import EmbeddingFineTuningMethod

log = get_logger(__name__)

# Share of `percent` before training starts and after it ends.
_BEFORE_TRAINING = 5.0
_AFTER_TRAINING = 95.0


def run_iteration(method: EmbeddingFineTuningMethod, context: TaskContext) -> TaskResult:
    """One iteration of `method` on the task's batch; temporary folders go whatever happens."""
    return IterationPipeline(method, context).run()


@dataclass
class _Best:
    run_id: str
    number: int
    value: float


@dataclass(frozen=True)
class _Opened:
    """What every step after opening the iteration works with."""

    tracking: MethodTracking
    iteration: Iteration
    data: PreparedData
    start_dir: Path
    evaluator: RetrievalEvaluator


class IterationPipeline:
    def __init__(self, method: EmbeddingFineTuningMethod, context: TaskContext) -> None:
        self.method = method
        self.config = method.config
        self.context = context
        self.task = context.task
        self.main_metric = method.config.main_metric
        self.root = context.work_dir / "iteration"
        self.log = log.bind(task_id=self.task.task_id, method=method.meta.name)
        self.runs_total = self.config.n_trials
        self.runs_done = 0

    # -- reporting ------------------------------------------------------------------------

    def progress(
        self,
        stage: str,
        current_run: int | None = None,
        fraction: float = 0.0,
        percent: float | None = None,
    ) -> None:
        if percent is None:
            span = _AFTER_TRAINING - _BEFORE_TRAINING
            done = (self.runs_done + fraction) / max(self.runs_total, 1)
            percent = _BEFORE_TRAINING + span * min(done, 1.0)
        self.context.report_progress(
            stage=stage,
            runs_total=self.runs_total,
            runs_done=self.runs_done,
            current_run=current_run,
            percent=round(percent, 1),
        )

    def stage(self, stage: str, message: str, percent: float | None = None, **data: Any) -> None:
        self.context.raise_if_canceled()
        self.progress(stage, percent=percent)
        self.context.add_event(message, stage=stage, **data)
        self.log.info("pipeline_stage", stage=stage, **data)

    # -- the iteration --------------------------------------------------------------------

    def run(self) -> TaskResult:
        try:
            return self._run()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _run(self) -> TaskResult:
        try:
            fixed = self.method.validate_hyperparameters(dict(self.task.hyperparameters))
        except InvalidHyperparameter as exc:
            raise TaskFailed("invalid_hyperparameters", exc.message) from exc

        self.stage(
            "preparing_data",
            f"Preparing training examples from batch {self.task.batch_id}",
            percent=0.0,
            batch_id=self.task.batch_id,
        )
        data = self.method.prepare_data(self.context, self.root / "data")
        self._report_data(data)

        self.stage("initial_model", "Resolving the starting model", percent=1.0)
        tracking = MethodTracking(
            self.context.settings, self.method.meta.name, self.method.registered_model_name
        )
        candidate = tracking.starting_run(self.method.initial_model_path)
        iteration = tracking.open_iteration(self.task.task_id, self.task.batch_id, candidate)
        start_dir = tracking.download_model(iteration.starting_run_id, self.root / "start")
        self.context.add_event(
            f"Starting from the model of MLflow run {iteration.starting_run_id}; iteration "
            f"experiment {iteration.name!r}",
            starting_run_id=iteration.starting_run_id,
            mlflow_experiment=iteration.name,
        )
        self.log.info(
            "iteration_opened",
            experiment=iteration.name,
            starting_run_id=iteration.starting_run_id,
        )

        opened = _Opened(
            tracking,
            iteration,
            data,
            start_dir,
            self.method.make_evaluator(data, self.context.is_canceled),
        )
        runs = iteration.runs()
        baseline = self._baseline(opened, runs.get(BASELINE_RUN))
        best = self._search(opened, runs, fixed)
        return self._complete(opened, baseline, best)

    def _report_data(self, data: PreparedData) -> None:
        stats = data.stats.as_dict()
        self.context.add_event(
            f"{stats['train_positives']} training and {stats['test_positives']} test positives "
            f"from {stats['sessions']} sessions ({stats['train_queries']} train / "
            f"{stats['test_queries']} test queries, {len(data.texts)} items in the test pool)",
            **stats,
        )
        if data.stats.objects_without_content:
            self.context.add_event(
                f"{data.stats.objects_without_content} objects shown in the batch have no content "
                f"and were skipped ({data.stats.skipped_positives} clicked results among them)",
                level="warning",
                objects_without_content=data.stats.objects_without_content,
                skipped_positives=data.stats.skipped_positives,
                examples=data.missing_examples,
            )

    def _baseline(self, opened: _Opened, record: RunRecord | None) -> float:
        self.stage("baseline", "Evaluating the starting model on the test split", percent=3.0)
        iteration = opened.iteration
        key = f"test_{self.main_metric}"
        if record is not None and record.finished and key in record.metrics:
            value = record.metrics[key]
        else:
            run_id = iteration.start_run(BASELINE_RUN, KIND_BASELINE, existing=record)
            try:
                metrics = self.method.evaluate(opened.start_dir, opened.evaluator)
            except TaskCanceled:
                iteration.kill_run(run_id)
                raise
            iteration.log_metrics(run_id, {f"test_{k}": v for k, v in metrics.items()}, step=0)
            iteration.finish_run(run_id)
            value = metrics[self.main_metric]
        self.context.add_event(
            f"Baseline {self.main_metric} = {value:.4f}",
            baseline=value,
            main_metric=self.main_metric,
        )
        return value

    def _search(
        self, opened: _Opened, runs: dict[str, RunRecord], fixed: Mapping[str, Value]
    ) -> _Best:
        from clicktune.training.search import HyperparameterSearch, first_trial_sets, params_hash

        tracking, iteration = opened.tracking, opened.iteration
        space = self.config.search_space
        search = HyperparameterSearch(space, fixed, seed=self.config.seed)
        self.runs_total = self.config.n_trials if search.searchable else 1
        key = f"test_{self.main_metric}"
        trials = {name: r for name, r in runs.items() if r.tags.get(TAG_KIND) == KIND_TRIAL}
        earlier = {name: parse_params(space, r.params) for name, r in trials.items()}
        best: _Best | None = None
        for name, record in trials.items():
            if record.finished and key in record.metrics:
                search.add_result(earlier[name], record.metrics[key])
                number = int(name.rsplit("-", 1)[1])
                if best is None or record.metrics[key] > best.value:
                    best = _Best(record.run_id, number, record.metrics[key])
        for record in trials.values():
            if record.has_model and (best is None or record.run_id != best.run_id):
                iteration.delete_model(record.run_id)
        previous = tracking.previous_iteration(exclude_experiment_id=iteration.experiment_id)
        if previous is not None:
            top = tracking.top_parameter_sets(previous.experiment_id, key, self.config.top_k)
            parsed = []
            for raw in top:
                try:
                    parsed.append(parse_params(space, raw))
                except ValueError:
                    continue
            search.enqueue(parsed, skip={params_hash(p) for p in earlier.values()})
            self.context.add_event(
                f"Trying the {len(parsed)} best parameter sets of {previous.name!r} first",
                previous_experiment=previous.name,
                parameter_sets=parsed,
            )
        else:
            search.enqueue(
                first_trial_sets(space, self.config.first_trials),
                skip={params_hash(p) for p in earlier.values()},
            )

        self.stage("training", f"Training {self.runs_total} runs", percent=_BEFORE_TRAINING)
        first_failure: str | None = None
        self.runs_done = sum(1 for r in trials.values() if r.finished and key in r.metrics)
        for number in range(1, self.runs_total + 1):
            name = trial_run_name(number)
            record = trials.get(name)
            if record is not None and record.finished and key in record.metrics:
                continue
            if record is not None:
                token, params = None, earlier[name]
            else:
                token, params = search.ask()
            value, failure, best = self._run_trial(opened, number, params, record, best)
            if token is None:
                search.add_result(params, value)
            else:
                search.tell(token, value)
            if failure is not None:
                first_failure = first_failure or failure
        if best is None:
            raise TaskFailed(
                "all_runs_failed", f"Every training run failed; the first failure: {first_failure}"
            )
        return best

    def _run_trial(
        self,
        opened: _Opened,
        number: int,
        params: Mapping[str, Value],
        record: RunRecord | None,
        best: _Best | None,
    ) -> tuple[float | None, str | None, _Best | None]:
        """Train, evaluate and (when it is the best so far) keep one run's model.

        Returns the main metric (None when the run failed), the failure message, and the best
        run after this one.
        """
        from clicktune.training.search import params_hash
        from clicktune.training.trainer import RunCallback

        self.context.raise_if_canceled()
        iteration = opened.iteration
        name = trial_run_name(number)
        self.progress("training", current_run=number)
        run_id = iteration.start_run(
            name, KIND_TRIAL, params, tags={TAG_PARAMS_HASH: params_hash(params)}, existing=record
        )
        run_log = self.log.bind(run_id=run_id, run=name)
        self.context.add_event(
            f"Run {name} started", run=number, run_id=run_id, params=dict(params)
        )
        run_log.info("run_started", params=dict(params))
        buffer = iteration.metric_buffer(run_id)
        run_dir = self.root / "runs" / name
        callback = RunCallback(
            evaluator=opened.evaluator,
            is_canceled=self.context.is_canceled,
            on_progress=lambda fraction: self.progress(
                "training", current_run=number, fraction=fraction
            ),
            on_metrics=buffer.add,
            checkpoint_every_s=self.config.checkpoint_every_s,
        )
        try:
            outcome = self.method.train(opened.start_dir, opened.data, params, run_dir, callback)
            buffer.add({"train_examples_per_s": outcome.examples_per_second}, outcome.steps)
            buffer.flush()
            value = outcome.metrics[self.main_metric]
            if best is None or value > best.value:
                iteration.save_model(run_id, run_dir / "model")
                if best is not None:
                    iteration.delete_model(best.run_id)
                best = _Best(run_id, number, value)
            iteration.finish_run(run_id)
        except TaskCanceled:
            self._stop_run(iteration, run_id, buffer)
            raise
        except Exception as exc:
            if self.context.is_canceled():
                self._stop_run(iteration, run_id, buffer)
                raise TaskCanceled(self.task.task_id) from exc
            message = f"{type(exc).__name__}: {exc}"
            buffer.flush()
            iteration.fail_run(run_id, message)
            run_log.exception("run_failed")
            self.context.add_event(
                f"Run {name} failed: {message}", level="error", run=number, run_id=run_id
            )
            shutil.rmtree(run_dir, ignore_errors=True)
            return None, message, best
        self.runs_done += 1
        shutil.rmtree(run_dir, ignore_errors=True)
        resumed = outcome.resumed_from_step
        self.context.add_event(
            f"Run {name} finished: {self.main_metric} = {value:.4f}"
            + (f" (resumed from the checkpoint of step {resumed})" if resumed else ""),
            run=number,
            run_id=run_id,
            metrics=outcome.metrics,
            steps=outcome.steps,
            train_examples_per_s=round(outcome.examples_per_second, 2),
            resumed_from_step=resumed,
        )
        run_log.info("run_finished", metrics=outcome.metrics, steps=outcome.steps)
        return value, None, best

    def _stop_run(self, iteration: Iteration, run_id: str, buffer: MetricBuffer) -> None:
        buffer.flush()
        iteration.kill_run(run_id)
        self.log.info("run_canceled", run_id=run_id)

    def _complete(self, opened: _Opened, baseline: float, best: _Best) -> TaskResult:
        tracking, iteration = opened.tracking, opened.iteration
        self.stage("completing", "Completing the iteration", percent=_AFTER_TRAINING)
        promoted = best.value > baseline
        if promoted:
            version = tracking.promote(
                best.run_id,
                f"{iteration.name}, run-{best.number}: {self.main_metric} {best.value:.4f} "
                f"(baseline {baseline:.4f})",
            )
            self.context.add_event(
                f"Promoted run-{best.number} ({self.main_metric} {best.value:.4f} > baseline "
                f"{baseline:.4f}) as version {version} of {tracking.registered_model_name!r} "
                "(alias champion)",
                promoted=True,
                version=version,
                best_run_id=best.run_id,
            )
        else:
            self.context.add_event(
                f"Not promoted: the best run ({self.main_metric} {best.value:.4f}) did not beat "
                f"the starting model ({baseline:.4f}); the current model stays",
                level="warning",
                promoted=False,
                best_run_id=best.run_id,
            )
        iteration.complete(promoted)
        retired = tracking.retire_previous_iterations(iteration.experiment_id)
        if retired:
            self.context.add_event(
                f"Removed the previous iteration's experiment {', '.join(retired)} (soft delete)",
                retired=retired,
            )
        self.stage("cleanup", "Removing temporary folders", percent=99.0)
        shutil.rmtree(self.root, ignore_errors=True)
        self.progress("done", percent=100.0)
        self.log.info("iteration_done", promoted=promoted, best=best.value, baseline=baseline)
        return TaskResult(
            metrics={"main_metric": self.main_metric, "baseline": baseline, "best": best.value},
            best_run_id=best.run_id,
            best_model_uri=model_uri(best.run_id),
            promoted=promoted,
            mlflow_experiment=iteration.name,
        )

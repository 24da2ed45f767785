"""The standard iteration (PIPELINE.md's eight steps, decided as EVALUATION.md says) of embedding
methods.

`EmbeddingFineTuningMethod.run` calls `run_iteration`; the method's hooks do each step's work
(examples, model, loss, training arguments, evaluation), this module orders the steps, tracks them
in MLflow, decides what becomes of the best model and reports it all to the task. Everything this
attempt needs to know about earlier attempts of the same task is read back from MLflow (the
iteration's experiment, its runs, their per-query scores), so a task taken over from a lost
worker does not redo finished runs, and an unfinished run resumes from its newest checkpoint when
the work folder still has it.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clicktune.errors import InvalidHyperparameter, TaskCanceled, TaskFailed
from clicktune.evaluation.comparison import Comparison, paired_comparison
from clicktune.evaluation.evidence import CLICKS, JUDGED
from clicktune.logs import get_logger
from clicktune.methods.base import TaskContext, TaskResult
from clicktune.methods.decision import Decision, alias_evidence, decide, decision_tags
from clicktune.methods.judged import JudgedSet, load_judged_set
from clicktune.methods.online import OnlineDecision, apply_online, decide_online
from clicktune.status import Promotion
from clicktune.tracking.iterations import (
    BASELINE_RUN,
    KIND_BASELINE,
    KIND_TRIAL,
    TAG_KIND,
    TAG_PARAMS_HASH,
    TAG_SELECTION,
    Iteration,
    MethodTracking,
    MetricBuffer,
    RunRecord,
    trial_run_name,
)
from clicktune.tracking.models import model_uri
from clicktune.tracking.registry import CHAMPION, AliasMove
from clicktune.training.examples import PreparedData
from clicktune.training.search_space import Value, parse_params

if TYPE_CHECKING:
    from clicktune.evaluation.evaluator import TaskEvaluator
    from clicktune.methods.embedding import EmbeddingFineTuningMethod
    from clicktune.training.search import HyperparameterSearch

log = get_logger(__name__)

# Share of `percent` before training starts and after it ends.
_BEFORE_TRAINING = 5.0
_AFTER_TRAINING = 95.0
PER_QUERY_ARTIFACT = "evaluation/judged_per_query.json"
"""A run's judged main metric per query: what a later attempt compares without re-evaluating."""


def run_iteration(method: EmbeddingFineTuningMethod, context: TaskContext) -> TaskResult:
    """One iteration of `method` on the task's batch; temporary folders go whatever happens."""
    return IterationPipeline(method, context).run()


@dataclass
class _Scored:
    """A model's evaluation: the metric runs are selected by, all metrics, judged per query."""

    run_id: str
    value: float
    metrics: dict[str, float]
    per_query: dict[str, float] | None = None
    number: int = 0
    """The trial's number (`run-<n>`); 0 for the baseline."""


@dataclass(frozen=True)
class _Opened:
    """What every step after opening the iteration works with."""

    tracking: MethodTracking
    iteration: Iteration
    data: PreparedData
    start_dir: Path
    evaluator: TaskEvaluator
    judged: JudgedSet | None


@dataclass
class _Search:
    """The runs of this iteration: done by earlier attempts and still to do."""

    total: int
    search: HyperparameterSearch
    trials: dict[str, RunRecord]
    earlier: dict[str, dict[str, Value]] = field(default_factory=dict)


class IterationPipeline:
    def __init__(self, method: EmbeddingFineTuningMethod, context: TaskContext) -> None:
        self.method = method
        self.config = method.config
        self.context = context
        self.task = context.task
        self.main_metric = method.config.main_metric
        self.selection = f"{CLICKS}_{self.main_metric}"
        """The metric runs are selected by: judged when the task has a judged set."""
        self.root = context.work_dir / "iteration"
        self.log = log.bind(task_id=self.task.task_id, method=method.meta.name)
        self.runs_total = 1
        self.runs_done = 0
        self.online: OnlineDecision | None = None
        """What the batch's live traffic decided about the challenger before training."""
        self.expected_champion: str | None = None
        """The champion version this iteration's evidence is relative to (None: the initial
        model); a promotion needs it to still be the champion."""

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
        judged = self._judged_set()
        if judged is not None:
            self._hold_out_judged_queries(data, judged)

        tracking = MethodTracking(
            self.context.settings, self.method.meta.name, self.method.registered_model_name
        )
        self.online = self._online(tracking)
        self.stage("initial_model", "Resolving the starting model", percent=1.0)
        candidate = self._starting_run(tracking)
        iteration = tracking.open_iteration(self.task.task_id, self.task.batch_id, candidate)
        iteration.set_tag(TAG_SELECTION, self.selection)
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

        evaluator = self.method.make_evaluator(data, self.context.is_canceled, judged)
        opened = _Opened(tracking, iteration, data, start_dir, evaluator, judged)
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

    def _online(self, tracking: MethodTracking) -> OnlineDecision | None:
        """Decide on the challenger from the batch's live traffic, before training from the
        champion it leaves (the decision moves aliases only when the task completes)."""
        self.stage("online", "Comparing the champion and the challenger on live traffic", 0.8)
        decided = decide_online(self.method, self.context, tracking)
        if decided is None:
            return None
        online = decided.report
        self.context.add_event(
            online["reason"],
            level="info",
            online_decision=online["decision"],
            verdict=online["verdict"],
            decided_by=online["decided_by"],
            champion=online["champion"],
            challenger=online["challenger"],
        )
        self.log.info("online_decision", decision=online["decision"], verdict=online["verdict"])
        return decided

    def _starting_run(self, tracking: MethodTracking) -> str:
        """The champion's run (the challenger's, when live traffic promotes it), else the
        initial model's; remembers which champion the evidence will be relative to."""
        if self.online is not None and self.online.promotes:
            self.expected_champion = self.online.challenger
            return self.online.challenger_run_id
        champion = tracking.champion()
        if champion is not None and champion.run_id:
            self.expected_champion = str(champion.version)
            return str(champion.run_id)
        return tracking.initial_run(self.method.initial_model_path)

    def _hold_out_judged_queries(self, data: PreparedData, judged: JudgedSet) -> None:
        """The judged set's queries judge the trained model, so they must not have taught it: a
        model trained on them looks better on them than it is (seen on esci_us_srw150: +0.039 on
        the judged queries, -0.032 on held-out test queries)."""
        removed = data.hold_out(judged.evidence.queries.values())
        if removed == data.stats.train_positives:
            raise TaskFailed(
                "no_training_data",
                f"Every training query of batch {self.task.batch_id} is in judged set "
                f"{judged.set_id!r}: judged queries are kept out of training so that they can "
                "judge the model. Judge fewer queries, or collect clicks on others.",
            )
        self.context.add_event(
            f"The judged set's queries are kept out of training: {removed} training positives "
            f"of {data.stats.train_positives} left out",
            held_out_positives=removed,
        )

    def _judged_set(self) -> JudgedSet | None:
        """The task's judged set, ready to rank (None without one: no judged evidence)."""
        set_id = self.task.validation_set
        if set_id is None:
            self.context.add_event(
                "No judged set: held-out clicks are reported as diagnostics (clicks_*) and "
                "cannot promote",
                evidence="none",
            )
            return None
        self.stage("judged_set", f"Reading judged set {set_id!r} and the catalog", percent=0.5)
        judged = load_judged_set(
            self.method,
            self.context,
            set_id,
            max_items=self.context.settings.judged_max_items,
            seed=self.config.seed,
        )
        self.selection = f"{JUDGED}_{self.main_metric}"
        self.context.add_event(
            f"Deciding on {judged.describe()}",
            validation_set=set_id,
            validation_set_digest=judged.digest,
            queries=len(judged.evidence.judged_queries()),
            items=len(judged.corpus),
            catalog_items=judged.catalog_items,
            pooled=judged.pooled,
        )
        if judged.judged_without_content:
            self.context.add_event(
                f"{judged.judged_without_content} judged objects have no content in the catalog: "
                "no model can retrieve them (they still count as relevant)",
                level="warning",
                judged_without_content=judged.judged_without_content,
            )
        return judged

    def _baseline(self, opened: _Opened, record: RunRecord | None) -> _Scored:
        self.stage("baseline", "Evaluating the starting model", percent=3.0)
        iteration = opened.iteration
        if record is not None and record.finished and self.selection in record.metrics:
            baseline = self._scored(opened, record, 0)
        else:
            run_id = iteration.start_run(BASELINE_RUN, KIND_BASELINE, existing=record)
            try:
                metrics = self.method.evaluate(opened.start_dir, opened.evaluator)
            except TaskCanceled:
                iteration.kill_run(run_id)
                raise
            iteration.log_metrics(run_id, metrics, step=0)
            baseline = _Scored(run_id, metrics[self.selection], metrics, self._per_query(opened))
            if baseline.per_query is not None:
                iteration.log_json(run_id, baseline.per_query, PER_QUERY_ARTIFACT)
            iteration.finish_run(run_id)
        self.context.add_event(
            f"Baseline {self.selection} = {baseline.value:.4f}",
            baseline=baseline.value,
            metrics=baseline.metrics,
        )
        return baseline

    def _per_query(self, opened: _Opened) -> dict[str, float] | None:
        """The judged main metric of each query in the evaluator's last evaluation."""
        if opened.judged is None:
            return None
        scores = opened.evaluator.last_per_query[JUDGED]
        return {query: values[self.main_metric] for query, values in scores.items()}

    def _scored(self, opened: _Opened, record: RunRecord, number: int) -> _Scored:
        """A run an earlier attempt finished, as it was scored then."""
        per_query = None
        if opened.judged is not None:
            per_query = opened.iteration.read_json(record.run_id, PER_QUERY_ARTIFACT)
        metrics = dict(record.metrics)
        return _Scored(record.run_id, metrics[self.selection], metrics, per_query, number)

    def _plan(
        self, opened: _Opened, runs: dict[str, RunRecord], fixed: Mapping[str, Value]
    ) -> _Search:
        """How many runs, with which parameters first. With a judged set: the method's number of
        trials (or the task's), the previous iteration's best sets first. Without one a search
        cannot select, so: one run of the method's first trial, unless the task asks for more."""
        from clicktune.training.search import HyperparameterSearch, first_trial_sets, params_hash

        tracking, iteration = opened.tracking, opened.iteration
        space = self.config.search_space
        search = HyperparameterSearch(space, fixed, seed=self.config.seed)
        if not search.searchable:
            total = 1
        elif self.task.n_trials is not None:
            total = self.task.n_trials
        else:
            total = self.config.n_trials if opened.judged is not None else 1
        trials = {name: r for name, r in runs.items() if r.tags.get(TAG_KIND) == KIND_TRIAL}
        plan = _Search(total, search, trials)
        plan.earlier = {name: parse_params(space, r.params) for name, r in trials.items()}
        skip = {params_hash(p) for p in plan.earlier.values()}
        previous = None
        if opened.judged is not None:
            previous = tracking.previous_iteration(exclude_experiment_id=iteration.experiment_id)
        if previous is not None:
            key = previous.tags.get(TAG_SELECTION, self.selection)
            parsed = []
            for raw in tracking.top_parameter_sets(previous.experiment_id, key, self.config.top_k):
                try:
                    parsed.append(parse_params(space, raw))
                except ValueError:
                    continue
            if parsed:
                search.enqueue(parsed, skip=skip)
                self.context.add_event(
                    f"Trying the {len(parsed)} best parameter sets of {previous.name!r} first",
                    previous_experiment=previous.name,
                    parameter_sets=parsed,
                )
                return plan
        search.enqueue(first_trial_sets(space, self.config.first_trials), skip=skip)
        return plan

    def _search(
        self, opened: _Opened, runs: dict[str, RunRecord], fixed: Mapping[str, Value]
    ) -> _Scored:
        plan = self._plan(opened, runs, fixed)
        self.runs_total = plan.total
        best: _Scored | None = None
        for name, record in plan.trials.items():
            if record.finished and self.selection in record.metrics:
                scored = self._scored(opened, record, int(name.rsplit("-", 1)[1]))
                plan.search.add_result(plan.earlier[name], scored.value)
                if best is None or scored.value > best.value:
                    best = scored
        for record in plan.trials.values():
            if record.has_model and (best is None or record.run_id != best.run_id):
                opened.iteration.delete_model(record.run_id)

        self.stage(
            "training",
            f"Training {self.runs_total} run{'s' if self.runs_total > 1 else ''}, selected by "
            f"{self.selection}",
            percent=_BEFORE_TRAINING,
            selection=self.selection,
        )
        first_failure: str | None = None
        self.runs_done = sum(
            1 for r in plan.trials.values() if r.finished and self.selection in r.metrics
        )
        for number in range(1, self.runs_total + 1):
            name = trial_run_name(number)
            record = plan.trials.get(name)
            if record is not None and record.finished and self.selection in record.metrics:
                continue
            if record is not None:
                token, params = None, plan.earlier[name]
            else:
                token, params = plan.search.ask()
            scored, failure, best = self._run_trial(opened, number, params, record, best)
            value = None if scored is None else scored.value
            if token is None:
                plan.search.add_result(params, value)
            else:
                plan.search.tell(token, value)
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
        best: _Scored | None,
    ) -> tuple[_Scored | None, str | None, _Scored | None]:
        """Train, evaluate and (when it is the best so far) keep one run's model.

        Returns the run's scores (None when it failed), the failure message, and the best run
        after this one.
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
            scored = _Scored(
                run_id,
                outcome.metrics[self.selection],
                dict(outcome.metrics),
                self._per_query(opened),
                number,
            )
            if scored.per_query is not None:
                iteration.log_json(run_id, scored.per_query, PER_QUERY_ARTIFACT)
            if best is None or scored.value > best.value:
                iteration.save_model(run_id, run_dir / "model")
                if best is not None:
                    iteration.delete_model(best.run_id)
                best = scored
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
            f"Run {name} finished: {self.selection} = {scored.value:.4f}"
            + (f" (resumed from the checkpoint of step {resumed})" if resumed else ""),
            run=number,
            run_id=run_id,
            metrics=outcome.metrics,
            steps=outcome.steps,
            train_examples_per_s=round(outcome.examples_per_second, 2),
            resumed_from_step=resumed,
        )
        run_log.info("run_finished", metrics=outcome.metrics, steps=outcome.steps)
        return scored, None, best

    def _stop_run(self, iteration: Iteration, run_id: str, buffer: MetricBuffer) -> None:
        buffer.flush()
        iteration.kill_run(run_id)
        self.log.info("run_canceled", run_id=run_id)

    # -- step 7: the decision --------------------------------------------------------------

    def _complete(self, opened: _Opened, baseline: _Scored, best: _Scored) -> TaskResult:
        tracking, iteration = opened.tracking, opened.iteration
        self.stage("completing", "Deciding and completing the iteration", percent=_AFTER_TRAINING)
        comparison = None
        if opened.judged is not None:
            assert baseline.per_query is not None and best.per_query is not None
            comparison = paired_comparison(
                self.main_metric, baseline.per_query, best.per_query, seed=self.config.seed
            )
        decision = decide(
            self.task.promotion,
            comparison,
            min_gain=self.config.min_gain,
            run=trial_run_name(best.number),
            judged_set=self.task.validation_set,
        )
        # Every side effect from here on happens only once the completing step is won.
        self.context.begin_completing()
        online = None
        if self.online is not None:
            online = apply_online(self.online, tracking.registry, self.task.task_id)
        decision = self._still_valid(decision, tracking, trial_run_name(best.number))
        metrics = self._metrics(opened, baseline, best, comparison, decision, online)
        move = AliasMove(self.task.task_id, decision.reason, alias_evidence(metrics))
        self.context.raise_if_canceled()  # the heartbeat found the lease lost: apply no more
        version = None
        if decision.promoted:
            version = tracking.registry.promote(best.run_id, move)
        elif decision.challenger:
            version = tracking.registry.make_challenger(best.run_id, move)
        iteration.complete(
            best.run_id,
            decision_tags(decision, comparison, version),
            promoted=decision.promoted,
            challenger=decision.challenger,
        )
        self.context.add_event(
            decision.reason
            + (
                f" Version {version} of {tracking.registered_model_name!r} is now the "
                f"{'champion' if decision.promoted else 'challenger'}."
                if version
                else ""
            ),
            level="info" if decision.promoted or decision.challenger else "warning",
            promoted=decision.promoted,
            challenger=decision.challenger,
            evidence=decision.evidence,
            version=version,
            best_run_id=best.run_id,
            **({"comparison": comparison.as_dict()} if comparison is not None else {}),
        )
        self.context.raise_if_canceled()
        retired = tracking.retire_previous_iterations(iteration.experiment_id)
        if retired:
            self.context.add_event(
                f"Removed the previous iteration's experiment {', '.join(retired)} (soft delete)",
                retired=retired,
            )
        self.stage("cleanup", "Removing temporary folders", percent=99.0)
        shutil.rmtree(self.root, ignore_errors=True)
        self.progress("done", percent=100.0)
        self.log.info(
            "iteration_done",
            promoted=decision.promoted,
            challenger=decision.challenger,
            evidence=decision.evidence,
            best=best.value,
            baseline=baseline.value,
        )
        return TaskResult(
            metrics=metrics,
            best_run_id=best.run_id,
            best_model_uri=model_uri(best.run_id),
            promoted=decision.promoted,
            challenger=decision.challenger,
            mlflow_experiment=iteration.name,
        )

    def _still_valid(self, decision: Decision, tracking: MethodTracking, run: str) -> Decision:
        """An evidence-based promotion compares with the champion this iteration started from;
        when another task changed the champion meanwhile, the model becomes the challenger
        instead (live traffic decides between the two), so the champion never goes back to an
        older line of models."""
        if not decision.promoted or self.task.promotion is not Promotion.AUTO:
            return decision
        champion = tracking.registry.version(CHAMPION)
        now = None if champion is None else str(champion.version)
        if now == self.expected_champion:
            return decision
        started = (
            "the initial model"
            if self.expected_champion is None
            else f"version {self.expected_champion}"
        )
        return Decision(
            decision.evidence,
            promoted=False,
            challenger=True,
            reason=f"{decision.reason} Not promoted after all: the champion changed from "
            f"{started} to version {now} while this task ran, so {run} became the challenger "
            "for live traffic to compare with the new champion.",
        )

    def _metrics(
        self,
        opened: _Opened,
        baseline: _Scored,
        best: _Scored,
        comparison: Comparison | None,
        decision: Decision,
        online: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """The task's `metrics`: what was decided, on which evidence, with the click figures
        beside it as diagnostics."""
        clicks = f"{CLICKS}_{self.main_metric}"
        metrics: dict[str, Any] = {
            "main_metric": self.main_metric,
            "evidence": decision.evidence,
            "promotion_reason": decision.reason,
            "clicks_baseline": baseline.metrics.get(clicks),
            "clicks_best": best.metrics.get(clicks),
        }
        if online is not None:
            metrics["online"] = online
        if comparison is not None and opened.judged is not None:
            metrics |= {
                "baseline": baseline.value,
                "best": best.value,
                "gain": comparison.gain,
                "gain_interval": list(comparison.interval),
                "queries": comparison.queries,
                "wins": comparison.wins,
                "ties": comparison.ties,
                "losses": comparison.losses,
                "validation_set": opened.judged.set_id,
                "validation_set_digest": opened.judged.digest,
                "judged_items": len(opened.judged.corpus),
                "judged_pooled": opened.judged.pooled,
            }
        return metrics

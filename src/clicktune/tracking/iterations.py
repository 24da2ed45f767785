"""MLflow layout of a method's iterations (docs/architecture.md, "A task's iteration").

- `iteration / initial`: one run per method (run name = method name) holding the initial model.
- `iteration / <method> / <batch_id>`: one experiment per iteration (tags `task_id`,
  `fine_tuning_method`, `batch_id`, `starting_run_id`), with a `baseline` run and `run-<n>` runs.
- Only the iteration's best run keeps `model/` (tracking/models.py); what the task decides about
  it moves the method's `champion` or `challenger` alias (tracking/registry.py).

Everything here reads its state back from MLflow, so an attempt that takes over a task from a
lost worker continues where the MLflow record says the last one stopped.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clicktune.settings import Settings
from clicktune.tracking.client import artifact_location, make_client
from clicktune.tracking.models import (
    MODEL_PATH,
    log_sentence_transformer,
    sentence_transformer_dir,
)
from clicktune.tracking.registry import CHAMPION, ModelRegistry

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Experiment, Metric, Run
    from mlflow.entities.model_registry import ModelVersion

INITIAL_EXPERIMENT = "iteration / initial"

TAG_TASK = "task_id"
TAG_METHOD = "fine_tuning_method"
TAG_BATCH = "batch_id"
TAG_STARTING_RUN = "starting_run_id"
TAG_PARAMS_HASH = "params_hash"
TAG_MODEL_DELETED = "model_deleted"
TAG_METHOD_ID = "clicktune.method_id"
TAG_KIND = "clicktune.kind"
TAG_COMPLETED = "clicktune.completed"
TAG_PROMOTED = "clicktune.promoted"
TAG_CHALLENGER = "clicktune.challenger"
TAG_SELECTION = "clicktune.selection"
"""On an iteration: the metric its runs were selected by (`judged_…` or `clicks_…`)."""
TAG_MODEL_SAVED = "clicktune.model_saved"
TAG_ERROR = "clicktune.error"

KIND_INITIAL = "initial"
KIND_BASELINE = "baseline"
KIND_TRIAL = "trial"
BASELINE_RUN = "baseline"


def iteration_name(method_name: str, batch_id: str) -> str:
    return f"iteration / {method_name} / {batch_id}"


def trial_run_name(number: int) -> str:
    return f"run-{number}"


def method_id(method_name: str) -> str:
    """A filter-safe tag value for a method (names may hold quotes that filters cannot)."""
    return hashlib.sha256(method_name.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RunRecord:
    """A run as the pipeline needs it: name, status, typed-later params, latest metrics, tags."""

    run_id: str
    name: str
    status: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]

    @classmethod
    def of(cls, run: Run) -> RunRecord:
        return cls(
            run_id=run.info.run_id,
            name=run.info.run_name,
            status=run.info.status,
            params=dict(run.data.params),
            metrics=dict(run.data.metrics),
            tags=dict(run.data.tags),
        )

    @property
    def finished(self) -> bool:
        return self.status == "FINISHED"

    @property
    def has_model(self) -> bool:
        return (
            self.tags.get(TAG_MODEL_SAVED) == "true" and self.tags.get(TAG_MODEL_DELETED) != "true"
        )


class MetricBuffer:
    """Per-step metrics collected during training and written in batches (one call per flush)."""

    def __init__(self, client: MlflowClient, run_id: str, flush_every_s: float = 2.0) -> None:
        self.client = client
        self.run_id = run_id
        self.flush_every_s = flush_every_s
        self._pending: list[Metric] = []
        self._last_flush = time.monotonic()

    def add(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        self._pending.extend(Metric(k, float(v), timestamp, step) for k, v in metrics.items())
        if time.monotonic() - self._last_flush >= self.flush_every_s:
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        while self._pending:
            chunk, self._pending = self._pending[:1000], self._pending[1000:]
            self.client.log_batch(self.run_id, metrics=chunk)


class MethodTracking:
    """One method's experiments, runs, models and registry entries in MLflow."""

    def __init__(self, settings: Settings, method_name: str, registered_model_name: str) -> None:
        self.settings = settings
        self.client = make_client(settings)
        self.method_name = method_name
        self.method_id = method_id(method_name)
        self.registered_model_name = registered_model_name
        self.registry = ModelRegistry(
            self.client,
            registered_model_name,
            tags={TAG_METHOD: method_name, TAG_METHOD_ID: self.method_id},
        )

    # -- experiments ----------------------------------------------------------------------

    def _experiment(self, name: str, tags: Mapping[str, str]) -> Experiment:
        """The experiment called `name` (restored when soft-deleted), created when absent."""
        from mlflow.exceptions import MlflowException

        existing = self.client.get_experiment_by_name(name)
        if existing is None:
            try:
                experiment_id = self.client.create_experiment(
                    name, artifact_location=artifact_location(self.settings), tags=dict(tags)
                )
                return self.client.get_experiment(experiment_id)
            except MlflowException:
                existing = self.client.get_experiment_by_name(name)
                if existing is None:
                    raise
        if existing.lifecycle_stage == "deleted":
            self.client.restore_experiment(existing.experiment_id)
            existing = self.client.get_experiment(existing.experiment_id)
        return existing

    def search_runs(self, experiment_id: str, filters: Iterable[str], **kwargs: Any) -> list[Run]:
        return list(
            self.client.search_runs(
                [experiment_id], filter_string=" and ".join(filters), max_results=1000, **kwargs
            )
        )

    # -- step 1: the initial model and the starting model ---------------------------------

    def initial_run(self, model_dir: Callable[[], Path]) -> str:
        """The method's run in `iteration / initial`, uploading the initial model the first time."""
        experiment = self._experiment(INITIAL_EXPERIMENT, {})
        finished = self.search_runs(
            experiment.experiment_id,
            [f"tags.`{TAG_METHOD_ID}` = '{self.method_id}'", "attributes.status = 'FINISHED'"],
            order_by=["attributes.start_time ASC"],
        )
        if finished:
            return finished[0].info.run_id
        run = self.client.create_run(
            experiment.experiment_id,
            run_name=self.method_name,
            tags={
                TAG_METHOD: self.method_name,
                TAG_METHOD_ID: self.method_id,
                TAG_KIND: KIND_INITIAL,
            },
        )
        run_id = run.info.run_id
        log_sentence_transformer(self.client, run_id, model_dir())
        self.client.set_tag(run_id, TAG_MODEL_SAVED, "true")
        self.client.set_terminated(run_id, "FINISHED")
        return run_id

    def champion(self) -> ModelVersion | None:
        """The method's current promoted model version, if any."""
        return self.registry.version(CHAMPION)

    def download_model(self, run_id: str, destination: Path) -> Path:
        """The run's model as a local sentence-transformers folder."""
        destination.mkdir(parents=True, exist_ok=True)
        downloaded = self.client.download_artifacts(run_id, MODEL_PATH, str(destination))
        return sentence_transformer_dir(Path(downloaded))

    # -- step 2: what the previous iteration found -----------------------------------------

    def previous_iteration(self, exclude_experiment_id: str | None = None) -> Experiment | None:
        """The method's last completed iteration that is still active."""
        from mlflow.entities import ViewType

        experiments = self.client.search_experiments(
            view_type=ViewType.ACTIVE_ONLY,
            filter_string=(
                f"tags.`{TAG_METHOD_ID}` = '{self.method_id}' and tags.`{TAG_COMPLETED}` = 'true'"
            ),
            order_by=["creation_time DESC"],
        )
        for experiment in experiments:
            if experiment.experiment_id != exclude_experiment_id:
                return experiment
        return None

    def top_parameter_sets(self, experiment_id: str, metric: str, k: int) -> list[dict[str, str]]:
        """The `k` best finished runs' params (as MLflow stores them: strings), best first."""
        if k <= 0:
            return []
        runs = self.search_runs(
            experiment_id,
            [f"tags.`{TAG_KIND}` = '{KIND_TRIAL}'", "attributes.status = 'FINISHED'"],
            order_by=[f"metrics.`{metric}` DESC"],
        )
        return [dict(run.data.params) for run in runs if metric in run.data.metrics][:k]

    # -- step 3: the iteration's experiment ------------------------------------------------

    def open_iteration(self, task_id: str, batch_id: str, starting_run_id: str) -> Iteration:
        """This task's iteration experiment: created, or found again on a later attempt.

        Another task on the same method and batch gets `… / <batch_id> / <task_id>`, since
        experiment names are unique in MLflow.
        """
        base = iteration_name(self.method_name, batch_id)
        tags = {
            TAG_TASK: task_id,
            TAG_METHOD: self.method_name,
            TAG_BATCH: batch_id,
            TAG_STARTING_RUN: starting_run_id,
            TAG_METHOD_ID: self.method_id,
        }
        for name in (base, f"{base} / {task_id}"):
            existing = self.client.get_experiment_by_name(name)
            if existing is None or existing.tags.get(TAG_TASK) == task_id:
                experiment = self._experiment(name, tags)
                return Iteration(self, experiment)
        raise RuntimeError(f"MLflow experiment {base!r} / {task_id!r} belongs to another task")

    # -- step 7: retiring the previous iteration (promotion: `self.registry`) ---------------

    def retire_previous_iterations(self, current_experiment_id: str) -> list[str]:
        """Soft-delete the method's other completed iterations; registered versions stay."""
        from mlflow.entities import ViewType

        retired = []
        for experiment in self.client.search_experiments(
            view_type=ViewType.ACTIVE_ONLY,
            filter_string=(
                f"tags.`{TAG_METHOD_ID}` = '{self.method_id}' and tags.`{TAG_COMPLETED}` = 'true'"
            ),
        ):
            if experiment.experiment_id != current_experiment_id:
                self.client.delete_experiment(experiment.experiment_id)
                retired.append(experiment.name)
        return retired


class Iteration:
    """One iteration's experiment: its runs, their metrics and its single kept model."""

    def __init__(self, tracking: MethodTracking, experiment: Experiment) -> None:
        self.tracking = tracking
        self.client = tracking.client
        self.experiment_id = experiment.experiment_id
        self.name = experiment.name
        self.starting_run_id = experiment.tags.get(TAG_STARTING_RUN, "")

    def runs(self) -> dict[str, RunRecord]:
        """The iteration's runs by name (the newest one of a name, should there be two)."""
        records: dict[str, RunRecord] = {}
        runs = self.tracking.search_runs(
            self.experiment_id, [], order_by=["attributes.start_time ASC"]
        )
        for run in runs:
            records[run.info.run_name] = RunRecord.of(run)
        return records

    def start_run(
        self,
        name: str,
        kind: str,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        existing: RunRecord | None = None,
    ) -> str:
        """A new run, or `existing` (an unfinished run of an earlier attempt) set running again."""
        from mlflow.entities import Param

        all_tags = {TAG_KIND: kind, **(tags or {})}
        if existing is not None:
            run_id = existing.run_id
            self.client.update_run(run_id, status="RUNNING")
            if TAG_ERROR in existing.tags:
                self.client.delete_tag(run_id, TAG_ERROR)
            for key, value in all_tags.items():
                self.client.set_tag(run_id, key, value)
            return run_id
        run = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags)
        if params:
            self.client.log_batch(
                run.info.run_id, params=[Param(k, str(v)) for k, v in sorted(params.items())]
            )
        return run.info.run_id

    def metric_buffer(self, run_id: str) -> MetricBuffer:
        return MetricBuffer(self.client, run_id)

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        buffer = self.metric_buffer(run_id)
        buffer.add(metrics, step)
        buffer.flush()

    def finish_run(self, run_id: str) -> None:
        self.client.set_terminated(run_id, "FINISHED")

    def kill_run(self, run_id: str) -> None:
        self.client.set_terminated(run_id, "KILLED")

    def fail_run(self, run_id: str, message: str) -> None:
        self.client.set_tag(run_id, TAG_ERROR, message[:5000])
        self.client.set_terminated(run_id, "FAILED")

    def save_model(self, run_id: str, local_dir: Path) -> None:
        log_sentence_transformer(self.client, run_id, local_dir)
        self.client.set_tag(run_id, TAG_MODEL_SAVED, "true")

    def log_json(self, run_id: str, value: Any, path: str) -> None:
        """A JSON artifact of the run (e.g. per-query scores, for a later attempt's decision)."""
        self.client.log_dict(run_id, value, path)

    def read_json(self, run_id: str, path: str) -> Any:
        with tempfile.TemporaryDirectory(prefix="clicktune-artifact-") as folder:
            downloaded = self.client.download_artifacts(run_id, path, folder)
            return json.loads(Path(downloaded).read_text())

    def delete_model(self, run_id: str) -> None:
        """Remove a run's `model/` artifacts (a better run replaced it) and say so in a tag."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        run = self.client.get_run(run_id)
        repository = get_artifact_repository(
            run.info.artifact_uri, tracking_uri=self.tracking.settings.effective_mlflow_tracking_uri
        )
        if any(info.path == MODEL_PATH for info in repository.list_artifacts()):
            repository.delete_artifacts(MODEL_PATH)
        self.client.set_tag(run_id, TAG_MODEL_DELETED, "true")

    def set_tag(self, key: str, value: str) -> None:
        """An experiment tag of the iteration."""
        self.client.set_experiment_tag(self.experiment_id, key, value)

    def complete(
        self, best_run_id: str, decision: Mapping[str, str], *, promoted: bool, challenger: bool
    ) -> None:
        """Record the decision on the best run (its tags) and mark the iteration completed."""
        for key, value in decision.items():
            self.client.set_tag(best_run_id, key, value[:5000])
        self.set_tag(TAG_PROMOTED, str(promoted).lower())
        self.set_tag(TAG_CHALLENGER, str(challenger).lower())
        self.set_tag(TAG_COMPLETED, "true")

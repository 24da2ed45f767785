"""The fine-tuning method (plugin) interface.

A method is a class with `meta` and a `run` that turns one task (a released batch) into a result.
The worker owns the lifecycle (claim, lease, status); the method owns the work and reports through
the `TaskContext` it is given, which is also its only way to the batch and the catalog. Importing
this module must stay cheap: no torch.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from clicktune.errors import InvalidHyperparameter, TaskCanceled
from clicktune.settings import Settings
from clicktune.status import Promotion


@dataclass(frozen=True)
class MethodMeta:
    """What identifies a method: tasks name it by `name`."""

    name: str
    version: str
    description: str


@dataclass
class TaskResult:
    """What a finished run of a method puts on the task."""

    metrics: dict[str, Any] | None = None
    best_run_id: str | None = None
    best_model_uri: str | None = None
    promoted: bool | None = None
    """The model became the method's champion."""
    challenger: bool | None = None
    """The model became the method's challenger (live traffic decides)."""
    mlflow_experiment: str | None = None


@dataclass(frozen=True)
class TaskSpec:
    """The task as the method sees it."""

    task_id: str
    fine_tuning_method: str
    batch_id: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1
    validation_set: str | None = None
    """The judged set that decides (`iter_judgments`); None: no judged evidence."""
    promotion: Promotion = Promotion.AUTO
    n_trials: int | None = None
    """Runs the task asked for; None: the method decides."""


class TaskContext(abc.ABC):
    """The method's line to the worker: cancellation, progress, events and where to work."""

    task: TaskSpec
    settings: Settings
    work_dir: Path

    @abc.abstractmethod
    def is_canceled(self) -> bool:
        """True once the task was canceled or this worker lost its lease; cheap to call often."""

    def raise_if_canceled(self) -> None:
        if self.is_canceled():
            raise TaskCanceled(self.task.task_id)

    @abc.abstractmethod
    def begin_completing(self) -> None:
        """Enter the completing step; call it before any side effect of the task's decision
        (promotion, alias moves, removing the previous iteration). From here a cancel is refused
        and a shutdown waits for the task to finish; no other task of the method completes at
        the same time (it waits here). Raises `TaskCanceled` when the task was canceled or is no
        longer this worker's: then apply nothing."""

    @abc.abstractmethod
    def report_progress(self, **progress: Any) -> None:
        """Replace the task's `progress` (stage, runs_total, runs_done, current_run, percent)."""

    @abc.abstractmethod
    def iter_sessions(self) -> Iterator[dict[str, Any]]:
        """The task's batch as frozen at its release, streamed in session order.

        Each session: `session_id`, `session_number`, `search_query`, `search_results` (in the
        order shown, each `{object_id, rank, meta}`), `search_meta`, `user_id`, `created_at`,
        `is_irrelevant` and its `events` (`event_id`, `object_id`, `event_type`, `created_at`,
        `meta`).
        """

    @abc.abstractmethod
    def items(self, object_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The catalog's items among `object_ids` (`{object_id, text, fields, meta}`); unknown
        ids are absent."""

    @abc.abstractmethod
    def iter_catalog(self) -> Iterator[dict[str, Any]]:
        """Every item of the catalog (`{object_id, text, fields, meta}`), in object_id order."""

    @abc.abstractmethod
    def judgments(self, set_id: str) -> tuple[str, dict[str, dict[str, int]]]:
        """A judged set as `query → object_id → grade`, with the digest of its content; raises
        `TaskFailed` (`judgment_set_not_found`) when the set is gone."""

    @abc.abstractmethod
    def add_event(
        self,
        message: str,
        level: Literal["info", "warning", "error"] = "info",
        **data: Any,
    ) -> None:
        """Append to the task's progress log."""


class FineTuningMethod(abc.ABC):
    """Base class of every fine-tuning method plugin."""

    meta: ClassVar[MethodMeta]

    def describe(self) -> dict[str, Any]:
        """The `GET /fine-tuning/methods` entry; subclasses add the model and search space."""
        return {
            "name": self.meta.name,
            "version": self.meta.version,
            "description": self.meta.description,
            "base_model": None,
            "hyperparameters": {},
        }

    def validate_hyperparameters(self, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        """Check a task's fixed hyperparameters; raise `InvalidHyperparameter` naming the bad one.

        The default accepts only names of the search space `describe()` publishes; methods with
        typed search spaces also check and convert the values.
        """
        space = self.describe().get("hyperparameters") or {}
        for name in sorted(set(hyperparameters) - set(space)):
            raise InvalidHyperparameter(
                name, f"unknown hyperparameter {name!r}; this method has: {sorted(space) or 'none'}"
            )
        return hyperparameters

    @abc.abstractmethod
    def run(self, context: TaskContext) -> TaskResult:
        """Do the task's work; raise `TaskCanceled` or `TaskFailed` to end it otherwise."""

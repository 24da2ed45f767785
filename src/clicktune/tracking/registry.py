"""A method's registered model in MLflow: its versions, the `champion` and `challenger` aliases,
and how they moved.

An alias is where MLflow says a version stands now; each move is also written on the version
itself as tags (`clicktune.<event>.at|task_id|reason`, events `champion`, `challenger`,
`retired`), so the history survives the next move and shows in the MLflow UI.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from clicktune.timeutil import now as current_time
from clicktune.tracking.models import model_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHAMPION = "champion"
CHALLENGER = "challenger"
Alias = Literal["champion", "challenger"]
ModelEvent = Literal["champion", "challenger", "retired"]
EVENTS: tuple[ModelEvent, ...] = ("challenger", "champion", "retired")
TAG_TASK = "task_id"
"""On a version: the task whose run produced it."""


def served_version(registered_model_name: str, version: ModelVersion | None) -> str:
    """How a served model is named: what `/embeddings` answers as `model_version` and a session
    sends back as `served_by`. `<registered model>/v<n>`, or `<registered model>/initial` for
    the method's initial model (served before any promotion)."""
    suffix = "initial" if version is None else f"v{version.version}"
    return f"{registered_model_name}/{suffix}"


def task_version(task_id: str) -> str:
    """The served name of a task's best model asked for by task id."""
    return f"task/{task_id}"


def alias_version(client: MlflowClient, name: str, alias: Alias) -> ModelVersion | None:
    """The version `alias` points at; None when there is no such registered model or alias."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        # No such registered model, or no such alias on it (MLflow says the latter this way).
        code = getattr(exc, "error_code", "")
        if code == "RESOURCE_DOES_NOT_EXIST" or (
            code == "INVALID_PARAMETER_VALUE" and "alias" in str(exc).lower()
        ):
            return None
        raise


@dataclass(frozen=True)
class AliasMove:
    """Why a version moves: the task deciding, a plain sentence, and the evidence behind it."""

    task_id: str
    reason: str
    evidence: dict[str, Any]


class ModelRegistry:
    """One method's registered model (created on its first registration)."""

    def __init__(self, client: MlflowClient, name: str, tags: dict[str, str]) -> None:
        self.client = client
        self.name = name
        self.tags = tags
        """Set on the registered model when it is created (the method it belongs to)."""

    def version(self, alias: Alias) -> ModelVersion | None:
        return alias_version(self.client, self.name, alias)

    def promote(self, run_id: str, move: AliasMove) -> str:
        """The run's model becomes champion (registered once); a challenger that is this same
        version stops being challenger. Returns the version."""
        version = self._register(run_id, move.task_id)
        challenger = self.version(CHALLENGER)
        self.client.set_registered_model_alias(self.name, CHAMPION, version)
        self._record(version, "champion", move)
        if challenger is not None and str(challenger.version) == version:
            self.client.delete_registered_model_alias(self.name, CHALLENGER)
        return version

    def make_challenger(self, run_id: str, move: AliasMove) -> str:
        """The run's model becomes challenger; the one it replaces is retired."""
        version = self._register(run_id, move.task_id)
        previous = self.version(CHALLENGER)
        self.client.set_registered_model_alias(self.name, CHALLENGER, version)
        self._record(version, "challenger", move)
        if previous is not None and str(previous.version) != version:
            replaced = AliasMove(
                move.task_id, f"Replaced by version {version} as challenger.", move.evidence
            )
            self._record(str(previous.version), "retired", replaced)
        return version

    def retire_challenger(self, move: AliasMove) -> str | None:
        """The challenger stops being one (live traffic found it worse); its version stays.
        Returns the version retired, None when there was no challenger."""
        challenger = self.version(CHALLENGER)
        if challenger is None:
            return None
        self.client.delete_registered_model_alias(self.name, CHALLENGER)
        self._record(str(challenger.version), "retired", move)
        return str(challenger.version)

    def history(self) -> list[dict[str, Any]]:
        """Every recorded move, newest first: `{event, version, run_id, task_id, at, reason,
        evidence}` (`task_id` is the task that decided the move)."""
        moves = []
        for version in self._versions():
            tags = version.tags or {}
            for event in EVENTS:
                at = tags.get(f"clicktune.{event}.at")
                if at is None:
                    continue
                moves.append(
                    {
                        "event": event,
                        "version": str(version.version),
                        "run_id": version.run_id,
                        "task_id": tags.get(f"clicktune.{event}.task_id"),
                        "at": float(at),
                        "reason": tags.get(f"clicktune.{event}.reason", ""),
                        "evidence": json.loads(tags.get(f"clicktune.{event}.evidence", "{}")),
                    }
                )
        return sorted(moves, key=lambda move: move["at"], reverse=True)

    def aliases(self) -> dict[Alias, dict[str, Any] | None]:
        """Where each alias points now, with the move that put it there (None: nowhere)."""
        history = self.history()
        found: dict[Alias, dict[str, Any] | None] = {}
        for alias in (CHAMPION, CHALLENGER):
            version = self.version(alias)
            move = None
            if version is not None:
                move = next(
                    (
                        m
                        for m in history
                        if m["event"] == alias and m["version"] == str(version.version)
                    ),
                    None,
                )
            found[alias] = (
                None
                if version is None
                else {
                    "version": str(version.version),
                    "model_version": served_version(self.name, version),
                    "run_id": version.run_id,
                    "task_id": (version.tags or {}).get(TAG_TASK),
                    "since": move["at"] if move else None,
                    "decided_by": move["task_id"] if move else None,
                    "reason": move["reason"] if move else "",
                    "evidence": move["evidence"] if move else {},
                }
            )
        return found

    def _versions(self) -> list[ModelVersion]:
        # Filtered here, not in MLflow's filter string: a method's name may hold quotes.
        return [v for v in self.client.search_model_versions() if v.name == self.name]

    def _register(self, run_id: str, task_id: str) -> str:
        """The version holding the run's model, registered the first time it is asked for."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(self.name, tags=self.tags)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                raise
        for version in self.client.search_model_versions(f"run_id = '{run_id}'"):
            if version.name == self.name:
                return str(version.version)
        created = self.client.create_model_version(
            self.name,
            source=model_uri(run_id),
            run_id=run_id,
            tags={TAG_TASK: task_id},
        )
        return str(created.version)

    def _record(self, version: str, event: ModelEvent, move: AliasMove) -> None:
        prefix = f"clicktune.{event}"
        tags = {
            f"{prefix}.at": str(current_time()),
            f"{prefix}.task_id": move.task_id,
            f"{prefix}.reason": move.reason,
            f"{prefix}.evidence": json.dumps(move.evidence, sort_keys=True),
        }
        for key, value in tags.items():
            self.client.set_model_version_tag(self.name, version, key, value)

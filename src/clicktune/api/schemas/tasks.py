"""Fine-tuning methods, tasks and task events as the API takes and gives them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from clicktune.api.schemas.common import ClientId, JsonObject
from clicktune.status import TaskStatus

EventLevel = Literal["info", "warning", "error"]


class MethodOut(BaseModel):
    """A method as its plugin describes it; plugins may add fields."""

    model_config = ConfigDict(extra="allow")

    name: str
    version: str
    description: str
    base_model: str | None
    hyperparameters: dict[str, Any]


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fine_tuning_method: ClientId = Field(description="A registered method's `meta.name`.")
    batch_id: ClientId | None = Field(
        None,
        description="A released batch; omitted: the collecting batch is released by this request.",
    )
    metadata: JsonObject | None = Field(None, description="Stored on the task as given.")
    idempotency_key: ClientId | None = Field(
        None,
        description="A repeat with the same key and body answers the same task (200, replayed).",
    )
    hyperparameters: JsonObject | None = Field(
        None, description="Values fixed for this task among the method's search space."
    )

    def canonical(self) -> dict[str, Any]:
        """The request with defaults applied: what the idempotency hash covers."""
        return {
            "fine_tuning_method": self.fine_tuning_method,
            "batch_id": self.batch_id,
            "metadata": self.metadata or {},
            "idempotency_key": self.idempotency_key,
            "hyperparameters": self.hyperparameters or {},
        }


class TaskError(BaseModel):
    code: str
    message: str


class TaskOut(BaseModel):
    id: str
    fine_tuning_method: str
    status: TaskStatus
    created_at: str
    updated_at: str
    started_at: str | None
    finished_at: str | None
    batch_id: str
    metadata: dict[str, Any]
    idempotency_key: str | None
    progress: dict[str, Any] | None
    metrics: dict[str, Any] | None
    best_run_id: str | None
    best_model_url: str | None
    promoted: bool | None
    mlflow_experiment: str | None
    attempts: int = Field(
        description="The current attempt's number: 1 at creation, + 1 on restart and + 1 "
        "each time a worker takes over from a lost one."
    )
    error: TaskError | None


class TaskList(BaseModel):
    data: list[TaskOut]
    total: int


class TaskEventOut(BaseModel):
    id: str
    created_at: str
    level: EventLevel
    message: str
    data: dict[str, Any]


class TaskEventPage(BaseModel):
    data: list[TaskEventOut]
    has_more: bool

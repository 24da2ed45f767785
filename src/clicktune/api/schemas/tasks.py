"""Fine-tuning methods, tasks and task events as the API takes and gives them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from clicktune.ingest.fields import ClientId, JsonObject
from clicktune.status import Promotion, TaskStatus

EventLevel = Literal["info", "warning", "error"]
MAX_TRIALS = 100


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
    validation_set: ClientId | None = Field(
        None,
        description="A judged set (PUT /judgments/{set_id}): the evidence that decides promotion "
        "and selects among runs.",
    )
    promotion: Promotion = Field(
        Promotion.AUTO,
        description="`auto`: judged evidence decides (without a judged set the model becomes "
        "challenger); `always`: the best run becomes champion; `never`: nothing changes.",
    )
    n_trials: int | None = Field(
        None,
        strict=True,
        ge=1,
        le=MAX_TRIALS,
        description="Training runs; default: the method's number with a judged set, else one.",
    )

    def canonical(self) -> dict[str, Any]:
        """The request with defaults applied: what the idempotency hash covers (the evidence
        fields only when given, so a request from before they existed hashes as it did)."""
        evidence = {
            "validation_set": self.validation_set,
            "promotion": self.promotion.value if self.promotion is not Promotion.AUTO else None,
            "n_trials": self.n_trials,
        }
        return {
            "fine_tuning_method": self.fine_tuning_method,
            "batch_id": self.batch_id,
            "metadata": self.metadata or {},
            "idempotency_key": self.idempotency_key,
            "hyperparameters": self.hyperparameters or {},
            **{name: value for name, value in evidence.items() if value is not None},
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
    promoted: bool | None = Field(description="The model became the method's champion.")
    challenger: bool | None = Field(
        description="The model became the method's challenger (live traffic decides)."
    )
    validation_set: str | None
    promotion: Promotion
    n_trials: int | None
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


class ModelVersionOut(BaseModel):
    """A registered version where an alias points now, and why it got there."""

    version: str
    model_version: str = Field(
        description="Its served name: `/embeddings`' `model_version`, a session's `served_by`."
    )
    run_id: str | None
    task_id: str | None = Field(description="The task whose run produced this version.")
    since: str | None = Field(description="When the alias moved to it (ISO 8601, UTC).")
    decided_by: str | None = Field(description="The task that moved the alias.")
    reason: str
    evidence: dict[str, Any]


class ModelEventOut(BaseModel):
    event: Literal["champion", "challenger", "retired"]
    version: str
    run_id: str | None
    task_id: str | None = Field(description="The task that decided this move.")
    at: str
    reason: str
    evidence: dict[str, Any]


class MethodModelsOut(BaseModel):
    champion: ModelVersionOut | None = Field(
        description="null before any promotion: the method's initial model serves."
    )
    challenger: ModelVersionOut | None
    history: list[ModelEventOut] = Field(description="Every alias move, newest first.")

"""Fine-tuning methods and tasks: create, read, list, cancel, restart, progress events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BeforeValidator

from clicktune.api.deps import JSON_BODY, EngineDep, RegistryDep, SettingsDep
from clicktune.api.schemas.tasks import (
    MethodModelsOut,
    MethodOut,
    TaskCreate,
    TaskEventPage,
    TaskList,
    TaskOut,
)
from clicktune.errors import (
    InvalidHyperparameter,
    InvalidInput,
    MethodNotFound,
    ModelRegistryUnavailable,
    unavailable_on_error,
)
from clicktune.ingest.fields import MAX_STORED_INT, ClientId, check_json_size
from clicktune.logs import get_logger
from clicktune.methods.embedding import EmbeddingFineTuningMethod
from clicktune.methods.registry import MethodRegistry
from clicktune.settings import Settings
from clicktune.status import TaskStatus
from clicktune.store import tasks as task_store
from clicktune.store.engine import read_transaction, write_transaction
from clicktune.store.tasks import Task, TaskNotFound
from clicktune.timeutil import to_iso
from clicktune.tracking.client import make_client
from clicktune.tracking.registry import ModelRegistry

router = APIRouter(tags=["fine-tuning"])
log = get_logger(__name__)

TaskId = Annotated[ClientId, Path(description="The task's id.")]
REPLAYED_HEADER = "Idempotent-Replayed"


def task_out(task: Task, settings: Settings) -> dict[str, Any]:
    """The API's task object (docs/api.md): ISO times, the model's URL once done, error on error."""
    return {
        "id": task.id,
        "fine_tuning_method": task.fine_tuning_method,
        "status": task.status,
        "created_at": to_iso(task.created_at),
        "updated_at": to_iso(task.updated_at),
        "started_at": to_iso(task.started_at),
        "finished_at": to_iso(task.finished_at),
        "batch_id": task.batch_id,
        "metadata": task.metadata or {},
        "idempotency_key": task.idempotency_key,
        "progress": task.progress,
        "metrics": task.metrics,
        "best_run_id": task.best_run_id,
        "best_model_url": (
            f"{settings.effective_public_url}/api/v1/fine-tuning/task/{task.id}/model"
            if task.has_model
            else None
        ),
        "promoted": task.promoted,
        "challenger": task.challenger,
        "validation_set": task.validation_set,
        "promotion": task.promotion,
        "n_trials": task.n_trials,
        "mlflow_experiment": task.mlflow_experiment,
        "attempts": task.attempts,
        "error": task.error if task.status is TaskStatus.ERROR else None,
    }


@router.get("/fine-tuning/methods", response_model=list[MethodOut])
def list_methods(registry: RegistryDep) -> list[dict[str, Any]]:
    return [registry.methods[name].describe() for name in registry.names()]


def method_with_models(
    registry: MethodRegistry, name: str, param: str
) -> EmbeddingFineTuningMethod:
    """The method named `name` that trains and serves models; `MethodNotFound` else."""
    method = registry.get(name)
    if not isinstance(method, EmbeddingFineTuningMethod):
        raise MethodNotFound(name, registry.names(), param, with_models=True)
    return method


@router.get("/fine-tuning/methods/{name}/models", response_model=MethodModelsOut)
def method_models(
    name: Annotated[ClientId, Path(description="The method's `meta.name`.")],
    registry: RegistryDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """The method's champion and challenger (MLflow registered-model aliases) and every move
    of them, newest first."""
    method = method_with_models(registry, name, "name")
    with unavailable_on_error(
        ModelRegistryUnavailable, "The MLflow model registry does not answer now", method=name
    ):
        models = ModelRegistry(make_client(settings), method.registered_model_name, tags={})
        aliases = models.aliases()
        history = models.history()
    return {
        **{
            alias: None if found is None else {**found, "since": to_iso(found["since"])}
            for alias, found in aliases.items()
        },
        "history": [{**move, "at": to_iso(move["at"])} for move in history],
    }


def _validated_hyperparameters(
    registry: MethodRegistry, body: TaskCreate
) -> tuple[str, dict[str, Any]]:
    method = registry.get(body.fine_tuning_method)
    if method is None:
        raise MethodNotFound(body.fine_tuning_method, registry.names(), "fine_tuning_method")
    try:
        hyperparameters = method.validate_hyperparameters(dict(body.hyperparameters or {}))
    except InvalidHyperparameter:
        raise
    except (TypeError, ValueError) as exc:  # a plugin's own refusal, not naming a parameter
        raise InvalidInput(str(exc), "hyperparameters", code="invalid_hyperparameter") from exc
    return method.meta.name, hyperparameters


@router.post(
    "/fine-tuning/task",
    status_code=201,
    response_model=TaskOut,
    dependencies=JSON_BODY,
    responses={200: {"model": TaskOut, "description": "A replay of an idempotent create."}},
)
def create_task(
    body: TaskCreate,
    response: Response,
    engine: EngineDep,
    settings: SettingsDep,
    registry: RegistryDep,
) -> dict[str, Any]:
    check_json_size(body.metadata or {}, settings.max_meta_bytes, "metadata")
    check_json_size(body.hyperparameters or {}, settings.max_meta_bytes, "hyperparameters")
    method_name, hyperparameters = _validated_hyperparameters(registry, body)
    new = task_store.NewTask(
        fine_tuning_method=method_name,
        batch_id=body.batch_id,
        metadata=body.metadata or {},
        hyperparameters=hyperparameters,
        idempotency_key=body.idempotency_key,
        request_hash=task_store.request_hash(body.canonical()),
        validation_set=body.validation_set,
        promotion=body.promotion,
        n_trials=body.n_trials,
    )
    with write_transaction(engine) as conn:
        created = task_store.create_task(conn, new)
    task = created.task
    if created.replayed:
        response.status_code = 200
        response.headers[REPLAYED_HEADER] = "true"
    else:
        log.info("task_created", task_id=task.id, method=method_name, batch_id=task.batch_id)
    return task_out(task, settings)


def _blank_is_absent(value: Any) -> Any:
    return value or None


@router.get("/fine-tuning/task", response_model=TaskList)
def list_tasks(
    engine: EngineDep,
    settings: SettingsDep,
    status: Annotated[
        TaskStatus | None,
        BeforeValidator(_blank_is_absent),
        Query(description="Only tasks in this status; empty: all."),
    ] = None,
    fine_tuning_method: Annotated[
        ClientId | None,
        BeforeValidator(_blank_is_absent),
        Query(description="Only tasks of this method; empty: all."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_STORED_INT)] = 0,
) -> dict[str, Any]:
    with read_transaction(engine) as conn:
        page, total = task_store.list_tasks(
            conn,
            status=status,
            fine_tuning_method=fine_tuning_method,
            limit=limit,
            offset=offset,
        )
    return {"data": [task_out(t, settings) for t in page], "total": total}


@router.get("/fine-tuning/task/{task_id}", response_model=TaskOut)
def get_task(task_id: TaskId, engine: EngineDep, settings: SettingsDep) -> dict[str, Any]:
    with read_transaction(engine) as conn:
        task = task_store.get_task(conn, task_id)
    if task is None:
        raise TaskNotFound(task_id)
    return task_out(task, settings)


@router.put("/fine-tuning/task/{task_id}/cancel", response_model=TaskOut)
def cancel_task(task_id: TaskId, engine: EngineDep, settings: SettingsDep) -> dict[str, Any]:
    with write_transaction(engine) as conn:
        task = task_store.cancel_task(conn, task_id)
    log.info("task_canceled", task_id=task_id)
    return task_out(task, settings)


@router.put("/fine-tuning/task/{task_id}/restart", response_model=TaskOut)
def restart_task(task_id: TaskId, engine: EngineDep, settings: SettingsDep) -> dict[str, Any]:
    with write_transaction(engine) as conn:
        task = task_store.restart_task(conn, task_id)
    log.info("task_restarted", task_id=task_id, attempt=task.attempts)
    return task_out(task, settings)


@router.get("/fine-tuning/task/{task_id}/events", response_model=TaskEventPage)
def list_task_events(
    task_id: TaskId,
    engine: EngineDep,
    after: Annotated[ClientId | None, Query(description="The last event id seen.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    with read_transaction(engine) as conn:
        if task_store.get_task(conn, task_id) is None:
            raise TaskNotFound(task_id)
        events, has_more = task_store.list_events(conn, task_id, after=after, limit=limit)
    return {
        "data": [
            {
                "id": e["id"],
                "created_at": to_iso(e["created_at"]),
                "level": e["level"],
                "message": e["message"],
                "data": e["data"],
            }
            for e in events
        ],
        "has_more": has_more,
    }

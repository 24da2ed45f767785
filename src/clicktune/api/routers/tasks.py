"""Fine-tuning methods and tasks: create, read, list, cancel, restart, progress events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BeforeValidator
from sqlalchemy import Connection, Engine

from clicktune.api.deps import JSON_BODY, EngineDep, RegistryDep, SettingsDep
from clicktune.api.errors import ApiError, store_error
from clicktune.api.schemas.common import MAX_STORED_INT, ClientId, check_json_size
from clicktune.api.schemas.tasks import (
    MethodModelsOut,
    MethodOut,
    TaskCreate,
    TaskEventPage,
    TaskList,
    TaskOut,
)
from clicktune.errors import InvalidHyperparameter
from clicktune.logs import get_logger
from clicktune.methods.embedding import EmbeddingFineTuningMethod
from clicktune.methods.registry import MethodRegistry
from clicktune.settings import Settings
from clicktune.status import TaskStatus
from clicktune.store import tasks as task_store
from clicktune.store.clickstream import BatchNotFound, BatchNotReleased, NoCollectingBatch
from clicktune.store.engine import read_transaction, write_transaction
from clicktune.store.judgments import JudgmentSetNotFound
from clicktune.store.tasks import Task
from clicktune.timeutil import to_iso
from clicktune.tracking.client import make_client
from clicktune.tracking.registry import ModelRegistry

router = APIRouter(tags=["fine-tuning"])
log = get_logger(__name__)

TaskId = Annotated[ClientId, Path(description="The task's id.")]
REPLAYED_HEADER = "Idempotent-Replayed"


def task_out(task: Task, settings: Settings) -> dict[str, Any]:
    """The API's task object (API.md): ISO times, the model's URL once done, error on error."""
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


def _not_found(task_id: str) -> ApiError:
    return ApiError(404, "task_not_found", f"No fine-tuning task with id {task_id!r}.")


@router.get("/fine-tuning/methods", response_model=list[MethodOut])
def list_methods(registry: RegistryDep) -> list[dict[str, Any]]:
    return [registry.methods[name].describe() for name in registry.names()]


def method_with_models(
    registry: MethodRegistry, name: str, param: str
) -> EmbeddingFineTuningMethod:
    """The method named `name` that trains and serves models; 404 `method_not_found` else."""
    method = registry.get(name)
    if not isinstance(method, EmbeddingFineTuningMethod):
        raise ApiError(
            404,
            "method_not_found",
            f"No fine-tuning method with models named {name!r}; methods: {registry.names()}.",
            param,
        )
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
    try:
        models = ModelRegistry(make_client(settings), method.registered_model_name, tags={})
        aliases = models.aliases()
        history = models.history()
    except Exception as exc:
        log.exception("model_registry_unavailable", method=name)
        raise ApiError(
            503,
            "model_registry_unavailable",
            f"The MLflow model registry does not answer now: {type(exc).__name__}: {exc}",
        ) from exc
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
        raise ApiError(
            404,
            "method_not_found",
            f"No fine-tuning method named {body.fine_tuning_method!r}; "
            f"registered methods: {registry.names()}.",
            "fine_tuning_method",
        )
    try:
        hyperparameters = method.validate_hyperparameters(dict(body.hyperparameters or {}))
    except InvalidHyperparameter as exc:
        raise ApiError(
            422, "invalid_hyperparameter", exc.message, f"hyperparameters.{exc.name}"
        ) from exc
    except (TypeError, ValueError) as exc:
        raise ApiError(422, "invalid_hyperparameter", str(exc), "hyperparameters") from exc
    return method.meta.name, hyperparameters


_BATCH_STATUS = {BatchNotFound: 404, BatchNotReleased: 409, NoCollectingBatch: 409}
"""How a create answers when the batch it names is unknown or still collecting, or there is no
collecting batch to release."""


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
    try:
        with write_transaction(engine) as conn:
            created = task_store.create_task(conn, new)
    except task_store.IdempotencyKeyReused as exc:
        raise ApiError(409, "idempotency_key_reused", str(exc), "idempotency_key") from exc
    except (BatchNotFound, BatchNotReleased, NoCollectingBatch) as exc:
        raise store_error(exc, _BATCH_STATUS[type(exc)]) from exc
    except JudgmentSetNotFound as exc:
        raise ApiError(404, exc.code, exc.message, "validation_set") from exc
    except task_store.TaskExists as exc:
        raise _task_exists(exc) from exc
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
        raise _not_found(task_id)
    return task_out(task, settings)


def _task_exists(exc: task_store.TaskExists) -> ApiError:
    return ApiError(409, "task_exists", str(exc), "batch_id")


def _change_status(
    engine: Engine,
    task_id: str,
    change: Callable[[Connection, str], Task],
    conflict: Callable[[str], ApiError],
) -> Task:
    """Apply a store status change; 404 for an unknown task, `conflict` for a refused change."""
    try:
        with write_transaction(engine) as conn:
            return change(conn, task_id)
    except task_store.TaskNotFound as exc:
        raise _not_found(task_id) from exc
    except task_store.TaskStateConflict as exc:
        raise conflict(exc.status) from exc
    except task_store.TaskExists as exc:
        raise _task_exists(exc) from exc


@router.put("/fine-tuning/task/{task_id}/cancel", response_model=TaskOut)
def cancel_task(task_id: TaskId, engine: EngineDep, settings: SettingsDep) -> dict[str, Any]:
    task = _change_status(
        engine,
        task_id,
        task_store.cancel_task,
        lambda status: ApiError(
            409,
            "task_finished",
            f"Task {task_id!r} is completing (its worker is applying its decision); too late "
            "to cancel."
            if status == "completing"
            else f"Task {task_id!r} is already {status}; nothing to cancel.",
        ),
    )
    log.info("task_canceled", task_id=task_id)
    return task_out(task, settings)


@router.put("/fine-tuning/task/{task_id}/restart", response_model=TaskOut)
def restart_task(task_id: TaskId, engine: EngineDep, settings: SettingsDep) -> dict[str, Any]:
    task = _change_status(
        engine,
        task_id,
        task_store.restart_task,
        lambda status: ApiError(
            409,
            "task_not_restartable",
            f"Task {task_id!r} is {status}; only a task in error or canceled can be restarted.",
        ),
    )
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
            raise _not_found(task_id)
        try:
            events, has_more = task_store.list_events(conn, task_id, after=after, limit=limit)
        except task_store.EventNotFound as exc:
            raise ApiError(404, "event_not_found", str(exc), "after") from exc
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

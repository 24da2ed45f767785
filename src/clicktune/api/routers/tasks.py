"""Fine-tuning methods and tasks: create, read, list, cancel, restart, progress events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BeforeValidator
from sqlalchemy import Connection, Engine

from clicktune.api.bodies import require_json
from clicktune.api.deps import get_engine, get_registry, get_settings
from clicktune.api.errors import ApiError
from clicktune.api.schemas.common import ClientId, check_json_size
from clicktune.api.schemas.tasks import (
    MethodOut,
    TaskCreate,
    TaskEventPage,
    TaskList,
    TaskOut,
    TaskStatus,
)
from clicktune.logs import get_logger
from clicktune.methods.base import InvalidHyperparameter
from clicktune.methods.registry import MethodRegistry
from clicktune.settings import Settings
from clicktune.store import tasks as task_store
from clicktune.store.clickstream import get_batch_summary, release_collecting_batch
from clicktune.store.engine import read_transaction
from clicktune.timeutil import to_iso

router = APIRouter(tags=["fine-tuning"])
log = get_logger(__name__)

TaskId = Annotated[ClientId, Path(description="The task's id.")]
REPLAYED_HEADER = "Idempotent-Replayed"


def task_out(task: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The API's task object (API.md): ISO times, the model's URL once done, error on error."""
    has_model = task["status"] == "done" and task["best_model_uri"] is not None
    return {
        "id": task["id"],
        "fine_tuning_method": task["fine_tuning_method"],
        "status": task["status"],
        "created_at": to_iso(task["created_at"]),
        "updated_at": to_iso(task["updated_at"]),
        "started_at": to_iso(task["started_at"]),
        "finished_at": to_iso(task["finished_at"]),
        "batch_id": task["batch_id"],
        "metadata": task["metadata"] or {},
        "idempotency_key": task["idempotency_key"],
        "progress": task["progress"],
        "metrics": task["metrics"],
        "best_run_id": task["best_run_id"],
        "best_model_url": (
            f"{settings.effective_public_url}/api/v1/fine-tuning/task/{task['id']}/model"
            if has_model
            else None
        ),
        "promoted": task["promoted"],
        "mlflow_experiment": task["mlflow_experiment"],
        "attempts": task["attempts"],
        "error": task["error"] if task["status"] == "error" else None,
    }


def _not_found(task_id: str) -> ApiError:
    return ApiError(404, "task_not_found", f"No fine-tuning task with id {task_id!r}.")


@router.get("/fine-tuning/methods", response_model=list[MethodOut])
def list_methods(registry: MethodRegistry = Depends(get_registry)) -> list[dict[str, Any]]:
    return [registry.methods[name].describe() for name in registry.names()]


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


def _resolve_batch(conn: Connection, new: task_store.NewTask) -> str:
    """The batch the task trains on; releases the collecting batch when none was named."""
    if new.batch_id is not None:
        summary = get_batch_summary(conn, new.batch_id)
        if summary is None:
            raise ApiError(
                404, "batch_not_found", f"No batch with id {new.batch_id!r}.", "batch_id"
            )
        if summary["status"] != "released":
            raise ApiError(
                409,
                "batch_not_released",
                f"Batch {new.batch_id!r} is still collecting; release it first or omit batch_id.",
                "batch_id",
            )
        return new.batch_id
    released = release_collecting_batch(conn, new.idempotency_key)
    if released is None:
        raise ApiError(
            409,
            "no_collecting_batch",
            "No sessions were collected since the last release: there is no batch to train on.",
        )
    return released["batch_id"]


@router.post(
    "/fine-tuning/task",
    status_code=201,
    response_model=TaskOut,
    dependencies=[Depends(require_json)],
    responses={200: {"model": TaskOut, "description": "A replay of an idempotent create."}},
)
def create_task(
    body: TaskCreate,
    response: Response,
    engine: Engine = Depends(get_engine),
    settings: Settings = Depends(get_settings),
    registry: MethodRegistry = Depends(get_registry),
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
    )
    try:
        created = task_store.create_task(engine, new, _resolve_batch)
    except task_store.IdempotencyKeyReused as exc:
        raise ApiError(409, "idempotency_key_reused", str(exc), "idempotency_key") from exc
    task = created.task
    if created.replayed:
        response.status_code = 200
        response.headers[REPLAYED_HEADER] = "true"
    else:
        log.info("task_created", task_id=task["id"], method=method_name, batch_id=task["batch_id"])
    return task_out(task, settings)


def _blank_is_absent(value: Any) -> Any:
    return value or None


@router.get("/fine-tuning/task", response_model=TaskList)
def list_tasks(
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
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
    engine: Engine = Depends(get_engine),
    settings: Settings = Depends(get_settings),
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
def get_task(
    task_id: TaskId,
    engine: Engine = Depends(get_engine),
    settings: Settings = Depends(get_settings),
) -> dict[str, Any]:
    with read_transaction(engine) as conn:
        task = task_store.get_task(conn, task_id)
    if task is None:
        raise _not_found(task_id)
    return task_out(task, settings)


@router.put("/fine-tuning/task/{task_id}/cancel", response_model=TaskOut)
def cancel_task(
    task_id: TaskId,
    engine: Engine = Depends(get_engine),
    settings: Settings = Depends(get_settings),
) -> dict[str, Any]:
    try:
        task = task_store.cancel_task(engine, task_id)
    except task_store.TaskNotFound as exc:
        raise _not_found(task_id) from exc
    except task_store.TaskStateConflict as exc:
        raise ApiError(
            409, "task_finished", f"Task {task_id!r} is already {exc.status}; nothing to cancel."
        ) from exc
    log.info("task_canceled", task_id=task_id)
    return task_out(task, settings)


@router.put("/fine-tuning/task/{task_id}/restart", response_model=TaskOut)
def restart_task(
    task_id: TaskId,
    engine: Engine = Depends(get_engine),
    settings: Settings = Depends(get_settings),
) -> dict[str, Any]:
    try:
        task = task_store.restart_task(engine, task_id)
    except task_store.TaskNotFound as exc:
        raise _not_found(task_id) from exc
    except task_store.TaskStateConflict as exc:
        raise ApiError(
            409,
            "task_not_restartable",
            f"Task {task_id!r} is {exc.status}; only a task in error or canceled can be restarted.",
        ) from exc
    log.info("task_restarted", task_id=task_id, attempt=task["attempts"])
    return task_out(task, settings)


@router.get("/fine-tuning/task/{task_id}/events", response_model=TaskEventPage)
def list_task_events(
    task_id: TaskId,
    after: Annotated[ClientId | None, Query(description="The last event id seen.")] = None,
    limit: int = Query(50, ge=1, le=1000),
    engine: Engine = Depends(get_engine),
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

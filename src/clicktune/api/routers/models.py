"""Download a finished task's best model as a zip of a sentence-transformers folder."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse
from sqlalchemy import Engine

from clicktune.api.deps import EngineDep, SettingsDep
from clicktune.api.errors import ApiError
from clicktune.api.schemas.common import ClientId
from clicktune.logs import get_logger
from clicktune.store import tasks as task_store
from clicktune.store.engine import read_transaction
from clicktune.tracking.serving import ModelStore

router = APIRouter(tags=["fine-tuning"])
log = get_logger(__name__)


def task_with_model(engine: Engine, task_id: str) -> task_store.Task:
    """The task when it is done with a model; 404 `task_not_found` / `model_not_found`."""
    try:
        with read_transaction(engine) as conn:
            return task_store.get_task_model(conn, task_id)
    except task_store.TaskNotFound as exc:
        raise ApiError(404, "task_not_found", str(exc)) from exc
    except task_store.TaskHasNoModel as exc:
        raise ApiError(404, "model_not_found", str(exc)) from exc


@router.get(
    "/fine-tuning/task/{task_id}/model",
    response_class=FileResponse,
    responses={200: {"content": {"application/zip": {}}, "description": "The model's zip."}},
)
def download_model(
    task_id: Annotated[ClientId, Path(description="The task's id.")],
    engine: EngineDep,
    settings: SettingsDep,
) -> FileResponse:
    """The best model as a `.zip`: unzip it and load the folder with `SentenceTransformer(path)`."""
    task = task_with_model(engine, task_id)
    assert task.best_model_uri is not None
    try:
        archive = ModelStore(settings).task_model_zip(task_id, task.best_model_uri)
    except Exception as exc:
        log.exception("model_download_failed", task_id=task_id)
        raise ApiError(
            503,
            "model_unavailable",
            f"The model of task {task_id!r} cannot be fetched from MLflow now: "
            f"{type(exc).__name__}: {exc}",
        ) from exc
    return FileResponse(
        archive, media_type="application/zip", filename=f"clicktune-model-{task_id}.zip"
    )

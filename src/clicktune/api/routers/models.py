"""Download a finished task's best model as a zip of a sentence-transformers folder."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse
from sqlalchemy import Engine

from clicktune.api.deps import EngineDep, SettingsDep
from clicktune.errors import ModelUnavailable, unavailable_on_error
from clicktune.ingest.fields import ClientId
from clicktune.store import tasks as task_store
from clicktune.store.engine import read_transaction
from clicktune.tracking.model_cache import ModelStore

router = APIRouter(tags=["fine-tuning"])


def task_with_model(engine: Engine, task_id: str) -> task_store.Task:
    """The task when it is done with a model; `TaskNotFound` or `TaskHasNoModel` else."""
    with read_transaction(engine) as conn:
        return task_store.get_task_model(conn, task_id)


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
    with unavailable_on_error(
        ModelUnavailable,
        f"The model of task {task_id!r} cannot be fetched from MLflow now",
        task_id=task_id,
    ):
        archive = ModelStore(settings).task_model_zip(task_id, task.best_model_uri)
    return FileResponse(
        archive, media_type="application/zip", filename=f"clicktune-model-{task_id}.zip"
    )

"""Download a finished task's best model as a zip of a sentence-transformers folder."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import FileResponse
from sqlalchemy import Engine, select

from clicktune.api.deps import get_engine, get_settings
from clicktune.api.errors import ApiError
from clicktune.api.schemas.common import ClientId
from clicktune.logs import get_logger
from clicktune.settings import Settings
from clicktune.store.tables import tasks

router = APIRouter(tags=["fine-tuning"])
log = get_logger(__name__)


def task_with_model(engine: Engine, task_id: str) -> dict[str, Any]:
    """The task row when it is done with a model; 404 `task_not_found` / `model_not_found`."""
    with engine.connect() as conn:
        row = conn.execute(
            select(tasks.c.id, tasks.c.status, tasks.c.best_model_uri).where(tasks.c.id == task_id)
        ).first()
    if row is None:
        raise ApiError(404, "task_not_found", f"No fine-tuning task with id {task_id!r}.")
    if row.status != "done" or not row.best_model_uri:
        reason = (
            "it is done without a model"
            if row.status == "done"
            else f"its status is {row.status!r}; the model is available once it is 'done'"
        )
        raise ApiError(404, "model_not_found", f"Task {task_id!r} has no model: {reason}.")
    return dict(row._mapping)


@router.get(
    "/fine-tuning/task/{task_id}/model",
    response_class=FileResponse,
    responses={200: {"content": {"application/zip": {}}}},
)
def download_model(
    task_id: Annotated[ClientId, Path(description="The task's id.")],
    engine: Engine = Depends(get_engine),
    settings: Settings = Depends(get_settings),
) -> FileResponse:
    """The best model as a `.zip`: unzip it and load the folder with `SentenceTransformer(path)`."""
    from clicktune.tracking.serving import ModelStore

    task = task_with_model(engine, task_id)
    try:
        archive = ModelStore(settings).task_model_zip(task_id, task["best_model_uri"])
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

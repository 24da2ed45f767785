"""Models for serving, as local folders: a task's best model, a method's champion, their zips.

Downloads from MLflow land in `<data dir>/cache/models/` once and are reused: a task's best model
and a registered version never change. Several API processes may share the folder; each download
goes to a private staging folder first and is renamed into place.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from clicktune.settings import Settings
from clicktune.tracking.client import make_client
from clicktune.tracking.iterations import MODEL_PATH, champion_version, method_id

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

_lock = threading.Lock()


class ModelStore:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cache_dir = settings.data_dir.resolve() / "cache" / "models"

    def task_model_dir(self, task_id: str, best_model_uri: str) -> Path:
        """The task's best model folder (downloaded on first use)."""
        return self._cached(f"task-{task_id}", best_model_uri)

    def task_model_zip(self, task_id: str, best_model_uri: str) -> Path:
        """A zip of the task's best model folder, its files at the top level."""
        archive = self.cache_dir / f"task-{task_id}.zip"
        if archive.exists():
            return archive
        folder = self.task_model_dir(task_id, best_model_uri)
        with tempfile.TemporaryDirectory(dir=self.cache_dir) as staging:
            built = shutil.make_archive(str(Path(staging) / "model"), "zip", root_dir=folder)
            Path(built).replace(archive)
        return archive

    def champion(self, registered_model_name: str) -> ModelVersion | None:
        return champion_version(make_client(self.settings), registered_model_name)

    def version_model_dir(self, registered_model_name: str, version: ModelVersion) -> Path:
        """A registered version's model folder (downloaded on first use)."""
        name = f"{method_id(registered_model_name)}-v{version.version}"
        return self._cached(name, f"runs:/{version.run_id}/{MODEL_PATH}")

    def _cached(self, name: str, artifact_uri: str) -> Path:
        import mlflow.artifacts

        target = self.cache_dir / name
        if target.is_dir():
            return target
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with _lock, tempfile.TemporaryDirectory(dir=self.cache_dir) as staging:
            if target.is_dir():
                return target
            downloaded = mlflow.artifacts.download_artifacts(
                artifact_uri=artifact_uri,
                dst_path=staging,
                tracking_uri=self.settings.effective_mlflow_tracking_uri,
            )
            try:
                Path(downloaded).rename(target)
            except OSError:
                if not target.is_dir():
                    raise
        return target

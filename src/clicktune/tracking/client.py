"""An explicit MLflow client per use: no process-global tracking URI leaks between tasks."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from clicktune.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

_REMOTE_SCHEMES = {"http", "https", "databricks"}


def is_remote(tracking_uri: str) -> bool:
    """A tracking server (which decides where artifacts go) rather than a local store."""
    return urlparse(tracking_uri).scheme in _REMOTE_SCHEMES


def make_client(settings: Settings) -> MlflowClient:
    from mlflow import MlflowClient

    uri = settings.effective_mlflow_tracking_uri
    if not is_remote(uri):
        settings.ensure_data_dir()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def artifact_location(settings: Settings) -> str | None:
    """Where new experiments keep artifacts: the data dir's folder for local stores."""
    if is_remote(settings.effective_mlflow_tracking_uri):
        return None
    folder = settings.mlflow_artifacts_dir
    folder.mkdir(parents=True, exist_ok=True)
    return folder.as_uri()

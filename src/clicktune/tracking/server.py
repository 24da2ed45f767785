"""The MLflow UI that `clicktune up` serves over the embedded tracking store."""

from __future__ import annotations

import sys

from clicktune.settings import Settings
from clicktune.tracking.client import is_remote

# The UI needs no MLflow job runner (it would start several more processes).
MLFLOW_UI_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def mlflow_ui_command(settings: Settings) -> list[str]:
    """`mlflow server` on `settings.mlflow_port`, over the same store and artifact folder the
    workers write; run it with `MLFLOW_UI_ENV` added to the environment. Raises `ValueError`
    for a remote tracking server (nothing to start)."""
    uri = settings.effective_mlflow_tracking_uri
    if is_remote(uri):
        raise ValueError(f"MLflow tracking is the remote server {uri}; it serves its own UI.")
    settings.ensure_data_dir()
    artifacts = settings.mlflow_artifacts_dir
    artifacts.mkdir(parents=True, exist_ok=True)
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        uri,
        "--registry-store-uri",
        uri,
        "--artifacts-destination",
        artifacts.as_uri(),
        "--host",
        settings.host,
        "--port",
        str(settings.mlflow_port),
        "--workers",
        "1",
    ]

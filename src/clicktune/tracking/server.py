"""The MLflow UI that `clicktune up` serves over the embedded tracking store: read-only
(`readonly_ui`), configured through its environment so no store URI shows on a command line."""

from __future__ import annotations

import sys

from clicktune.settings import Settings
from clicktune.tracking.client import is_remote

READONLY_APP = "clicktune-readonly"
"""The `mlflow.app` entry point (pyproject) of `readonly_ui.app`."""


def mlflow_ui_command(settings: Settings) -> tuple[list[str], dict[str, str]]:
    """`mlflow server` on `settings.mlflow_host:mlflow_port` over the store and artifact folder
    the workers write: its command line and the environment to add. Raises `ValueError` for a
    remote tracking server (nothing to start)."""
    uri = settings.effective_mlflow_tracking_uri
    if is_remote(uri):
        raise ValueError("MLflow tracking is a remote server; it serves its own UI.")
    settings.ensure_data_dir()
    artifacts = settings.mlflow_artifacts_dir
    artifacts.mkdir(parents=True, exist_ok=True)
    env = {
        "MLFLOW_BACKEND_STORE_URI": uri,
        "MLFLOW_REGISTRY_STORE_URI": uri,
        "MLFLOW_ARTIFACTS_DESTINATION": artifacts.as_uri(),
        "MLFLOW_HOST": settings.mlflow_host,
        "MLFLOW_PORT": str(settings.mlflow_port),
        "MLFLOW_WORKERS": "1",
        # The UI needs no MLflow job runner (it would start several more processes).
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    return [sys.executable, "-m", "mlflow", "server", "--app-name", READONLY_APP], env

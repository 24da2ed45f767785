"""An explicit MLflow client per use: no process-global tracking URI leaks between tasks."""

from __future__ import annotations

import fcntl
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import httpx
from sqlalchemy import create_engine, text

from clicktune.settings import Settings, redact, redact_url

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


def ensure_tracking_store(settings: Settings) -> None:
    """Create (migrate) a local MLflow store once, under a file lock: processes that open a fresh
    store together (the worker, the MLflow UI) would otherwise race on its schema migrations."""
    uri = settings.effective_mlflow_tracking_uri
    if is_remote(uri):
        return
    settings.ensure_data_dir()
    with (settings.data_dir / ".mlflow-store.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        make_client(settings).search_experiments(max_results=1)


def artifact_location(settings: Settings) -> str | None:
    """Where new experiments keep artifacts: the data dir's folder for local stores."""
    if is_remote(settings.effective_mlflow_tracking_uri):
        return None
    folder = settings.mlflow_artifacts_dir
    folder.mkdir(parents=True, exist_ok=True)
    return folder.as_uri()


def tracking_health(settings: Settings) -> dict[str, Any]:
    """Whether the tracking store answers, without importing MLflow (the API stays light)."""
    uri = settings.effective_mlflow_tracking_uri
    scheme = urlparse(uri).scheme
    try:
        if scheme in {"http", "https"}:
            httpx.get(f"{uri.rstrip('/')}/health", timeout=2.0).raise_for_status()
        elif scheme and scheme not in {"file", "databricks"}:  # a database-backed store
            engine = create_engine(uri)
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
            finally:
                engine.dispose()
    except Exception as exc:  # health reports failures instead of raising them
        message = redact(str(exc), settings.secrets)
        return {"status": "error", "tracking_uri": redact_url(uri), "message": message}
    return {"status": "ok", "tracking_uri": redact_url(uri)}

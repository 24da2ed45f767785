"""A database shared between hosts needs models that every host can reach."""

from __future__ import annotations

from pathlib import Path

from clicktune.settings import Settings


def test_only_a_shared_database_with_host_local_models_is_a_problem(tmp_path: Path) -> None:
    shared = "postgresql+psycopg://ct@db/ct"

    def problem(**fields: object) -> str | None:
        return Settings(data_dir=tmp_path, **fields).host_local_models()  # type: ignore[arg-type]

    assert problem() is None  # SQLite: everything is on this host anyway
    assert problem(database_url=shared) is not None
    assert problem(database_url=shared, mlflow_tracking_uri="sqlite:///ml.db") is not None
    assert problem(database_url=shared, mlflow_tracking_uri="postgresql://ml@db/ml") is not None
    assert problem(database_url=shared, mlflow_tracking_uri="http://mlflow:5000") is None
    assert problem(database_url=shared, single_host=True) is None

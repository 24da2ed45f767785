"""Shared fixtures: every database test runs on real SQLite and real PostgreSQL.

PostgreSQL tests get a fresh database each. Without a reachable server they skip, unless
CLICKTUNE_REQUIRE_POSTGRES=1 (CI), where they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text

from clicktune.api.app import create_app
from clicktune.ids import new_id
from clicktune.settings import Settings
from clicktune.store.engine import make_engine, migrate

POSTGRES_ADMIN_URL = os.environ.get(
    "CLICKTUNE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _postgres_available() -> str | None:
    try:
        engine = create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return str(exc)


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    reason = _postgres_available()
    if reason is not None:
        if os.environ.get("CLICKTUNE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required (CLICKTUNE_REQUIRE_POSTGRES=1): {reason}")
        pytest.skip(f"PostgreSQL not reachable: {reason}")
    engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def make_postgres_database(admin: Engine) -> str:
    name = f"clicktune_test_{new_id()}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return admin.url.set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(admin: Engine, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'clicktune.db'}"
        return
    admin = request.getfixturevalue("postgres_admin")
    url = make_postgres_database(admin)
    try:
        yield url
    finally:
        drop_postgres_database(admin, url)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        public_url="http://testserver",
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.effective_database_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def one_thread() -> Iterator[None]:
    """torch on one thread: training tests share two cores with the worker processes they run."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

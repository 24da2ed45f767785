"""A PostgreSQL outage under a real API process: every request answers `503 unavailable` with a
Retry-After (naming the database, never its address), the connection stays usable, the bundled
client retries through the outage, and a resend afterwards stores nothing twice.

The outage is a TCP forwarder between the API and PostgreSQL that the test cuts and restores:
the shared server itself keeps serving the other tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from clicktune.client import ClicktuneClient
from clicktune.settings import Settings
from clicktune.simulate.outage import TcpForwarder, through_forwarder
from clicktune.simulate.service import instance_env, local_url, running
from clicktune.store.engine import make_engine, migrate
from clicktune.tuning.plugin import TaskSpec
from clicktune.worker.context import WorkerTaskContext
from tests.conftest import drop_postgres_database, make_postgres_database

SESSION = {"search_query": "red shoes", "search_results": [{"object_id": "o-1"}]}


@pytest.fixture
def forwarded_database(postgres_admin: Engine) -> Iterator[tuple[str, TcpForwarder]]:
    url = make_postgres_database(postgres_admin)
    try:
        with through_forwarder(url) as forwarded:
            yield forwarded
    finally:
        drop_postgres_database(postgres_admin, url)


def test_a_database_outage_answers_503_and_loses_nothing(
    tmp_path: Path, forwarded_database: tuple[str, TcpForwarder]
) -> None:
    database_url, forwarder = forwarded_database
    env = instance_env(tmp_path / "data", database_url=database_url, single_host="1")
    url = local_url(env)
    log = tmp_path / "api.log"
    with running("api", env, url, log=log), httpx.Client(base_url=f"{url}/api/v1") as http:
        assert http.post(
            "/clickstream/session", json={"session_id": "before", **SESSION}
        ).is_success

        forwarder.cut()
        for attempt in range(3):  # the same keep-alive connection answers every time
            answer = http.post("/clickstream/session", json={"session_id": "during", **SESSION})
            assert answer.status_code == 503, (attempt, answer.text)
            assert answer.json()["error"]["code"] == "unavailable"
            assert answer.headers["retry-after"].isdigit()
            assert str(forwarder.port) not in answer.text and "127.0.0.1" not in answer.text
        assert http.get("/clickstream/batches").status_code == 503

        threading.Timer(3.0, forwarder.restore).start()
        started = time.perf_counter()
        with ClicktuneClient(url, retries=6, backoff_s=0.5) as client:
            stored = client.create_session("during", **SESSION)
            assert time.perf_counter() - started >= 2.5
            again = client.create_session("during", **SESSION)
        assert stored["session_id"] == again["session_id"] == "during"

        batch = http.get("/clickstream/batches").json()["data"][0]
        assert batch["sessions"] == 2
    logged = log.read_text()
    assert "database_unavailable" in logged and "Traceback" not in logged


def test_a_worker_keeps_training_through_an_outage_of_its_reports(
    tmp_path: Path, forwarded_database: tuple[str, TcpForwarder]
) -> None:
    """Progress and events are reports: one the database cannot take is skipped, not the
    training run (before, a progress write in an outage failed the run and lost its training)."""
    database_url, forwarder = forwarded_database
    engine = make_engine(database_url, connect_args={"connect_timeout": 3})
    migrate(engine)
    spec = TaskSpec(task_id="t-1", fine_tuning_method="m", batch_id="b-1")
    context = WorkerTaskContext(spec, Settings(data_dir=tmp_path), engine, worker_id="w-1")
    try:
        forwarder.cut()
        context.report_progress(stage="training", percent=40.0)
        context.add_event("Run run-1 finished", run=1)
        assert not context.is_canceled()
        forwarder.restore()
        context.report_progress(stage="training", percent=41.0)  # not this worker's task
        assert context.is_canceled()
    finally:
        engine.dispose()

"""Multi-machine mode, proven on one machine: PostgreSQL, an MLflow server that proxies
artifacts from its own folder, the API and two workers, every process with its own data dir and
nothing shared but the database and the MLflow server. Two tasks run at once, one per worker, and
the API downloads and serves both models."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from sentence_transformers import SentenceTransformer
from sqlalchemy import Engine

from clicktune.settings import Settings
from clicktune.simulate.service import free_port, instance_env, local_url, running
from tests.conftest import drop_postgres_database, make_postgres_database
from tests.pipeline_support import PLUGINS_DIR, TINY_METHOD, TINY_MODEL_ENV, Shop, tiny_model_path
from tests.task_support import in_status, wait_for, workers

TEXTS = ["crimson sneaker", "hat in blue by zenith"]


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """`mlflow server --serve-artifacts` with its store and artifacts in a folder of its own."""
    folder = tmp_path / "mlflow-server"
    folder.mkdir()
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{folder / 'mlflow.db'}",
        "--serve-artifacts",
        "--artifacts-destination",
        str(folder / "artifacts"),
        "--workers",
        "1",
    ]
    with (folder / "server.log").open("wb") as log:
        server = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(f"{url}/health"), 120, "the MLflow server")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def shared_database(postgres_admin: Engine) -> Iterator[str]:
    url = make_postgres_database(postgres_admin)
    yield url
    drop_postgres_database(postgres_admin, url)


def test_two_workers_on_their_own_hosts_and_the_api_serving_both_models(
    tmp_path: Path, shared_database: str, mlflow_server: str
) -> None:
    tiny = str(tiny_model_path())
    api_env = instance_env(
        tmp_path / "api-host",
        database_url=shared_database,
        mlflow_tracking_uri=mlflow_server,
        plugins_path=str(PLUGINS_DIR),
        log_level="WARNING",
    )
    api_env[TINY_MODEL_ENV] = tiny
    url = local_url(api_env)
    worker_hosts = [
        Settings(
            data_dir=tmp_path / f"worker-host-{n}",
            database_url=shared_database,
            plugins_path=PLUGINS_DIR,
        )
        for n in range(2)
    ]
    worker_env = {
        "CLICKTUNE_MLFLOW_TRACKING_URI": mlflow_server,
        "CLICKTUNE_SINGLE_HOST": "0",
        TINY_MODEL_ENV: tiny,
        "OMP_NUM_THREADS": "1",
    }
    with (
        running("api", api_env, url, log=tmp_path / "api.log") as _,
        httpx.Client(base_url=url, timeout=60) as api,
    ):
        shop = Shop(seed=5)
        assert api.post("/api/v1/items/bulk", json={"items": shop.item_rows()}).is_success
        with (
            workers(worker_hosts[0], tmp_path, **worker_env) as [first],
            workers(worker_hosts[1], tmp_path, **worker_env) as [second],
        ):
            for worker in (first, second):
                wait_for(lambda w=worker: w.logged("worker_started"), what="a worker")
            task_ids = [_task_on_a_new_batch(api, Shop(seed=seed)) for seed in (5, 6)]
            finished = [
                wait_for(lambda t=t: in_status(api, t, "done", "error"), 300, "a task")
                for t in task_ids
            ]
            claimed_by = {
                task_id: {
                    w.pid for w in (first, second) if w.logged("task_claimed", task_id=task_id)
                }
                for task_id in task_ids
            }
        assert [task["status"] for task in finished] == ["done", "done"], finished
        assert claimed_by[task_ids[0]] | claimed_by[task_ids[1]] == {first.pid, second.pid}
        assert all(len(pids) == 1 for pids in claimed_by.values()), claimed_by
        one, other = finished  # and at the same time
        assert one["started_at"] < other["finished_at"] and other["started_at"] < one["finished_at"]

        for task in finished:
            assert task["best_model_url"] is not None
            zipped = api.get(f"/api/v1/fine-tuning/task/{task['id']}/model")
            assert zipped.status_code == 200, zipped.text
            folder = tmp_path / f"downloaded-{task['id']}"
            zipfile.ZipFile(io.BytesIO(zipped.content)).extractall(folder)
            expected = SentenceTransformer(str(folder)).encode(TEXTS)
            served = api.post("/api/v1/embeddings", json={"input": TEXTS, "model": task["id"]})
            assert served.status_code == 200, served.text
            vectors = np.array([item["embedding"] for item in served.json()["data"]])
            assert np.allclose(vectors, expected, atol=1e-5)

    for host in [tmp_path / "api-host", *(settings.data_dir for settings in worker_hosts)]:
        assert not list(host.rglob("mlflow.db")), f"{host} kept a tracking store of its own"
        assert not list(host.rglob("mlartifacts")), f"{host} kept artifacts of its own"
    artifacts = tmp_path / "mlflow-server" / "artifacts"
    assert len(list(artifacts.rglob("model.safetensors"))) >= 2  # both models, on the server


def _task_on_a_new_batch(api: httpx.Client, shop: Shop) -> str:
    """Import the shop's sessions into the collecting batch and create a task on it (the
    create releases the batch)."""
    lines = "\n".join(json.dumps(line) for line in shop.sessions(per_query=2))
    imported = api.post(
        "/api/v1/clickstream/import",
        content=lines.encode(),
        headers={"content-type": "application/x-ndjson"},
    )
    assert imported.is_success and not imported.json()["errors"], imported.text
    created = api.post("/api/v1/fine-tuning/task", json={"fine_tuning_method": TINY_METHOD})
    assert created.status_code == 201, created.text
    time.sleep(0.2)  # the first task is claimed before the second batch opens
    return created.json()["id"]

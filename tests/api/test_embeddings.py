"""Serving: the model download and `POST /embeddings`, on both databases and a real MLflow store."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sentence_transformers import SentenceTransformer
from sqlalchemy import Engine

from clicktune.api.app import create_app
from clicktune.settings import Settings
from clicktune.store import tasks as task_store
from tests.pipeline_support import (
    TINY_METHOD,
    TINY_MODEL_ENV,
    Shop,
    load_batch,
    tiny_model_path,
)
from tests.store_support import write
from tests.task_support import in_status, task_events, wait_for, workers

pytestmark = pytest.mark.usefixtures("one_thread")

TEXTS = ["crimson sneaker", "hat in blue by zenith"]


def embed(api: TestClient, model: str, **extra: object) -> np.ndarray:
    response = api.post("/api/v1/embeddings", json={"input": TEXTS, "model": model, **extra})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list" and body["model"] == model
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
    if extra.get("encoding_format") == "base64":
        return np.stack(
            [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in body["data"]]
        )
    return np.array([d["embedding"] for d in body["data"]], dtype=np.float32)


def test_clickstream_to_served_model_through_the_api_and_a_worker(
    api: TestClient, psettings: Settings, tmp_path: Path
) -> None:
    """REST in (catalog, clickstream, task), a real worker process, REST out (model, vectors)."""
    initial = SentenceTransformer(str(tiny_model_path())).encode(TEXTS)
    assert np.allclose(embed(api, TINY_METHOD), initial, atol=1e-6)

    shop = Shop(seed=3)
    response = api.post("/api/v1/items/bulk", json={"items": shop.item_rows()})
    assert response.status_code == 200, response.text
    lines = "\n".join(json.dumps(line) for line in shop.sessions(per_query=2, irrelevant_every=9))
    response = api.post(
        "/api/v1/clickstream/import",
        content=lines.encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 200 and not response.json()["errors"], response.text
    golden = [judgment._asdict() for judgment in shop.judgments()]
    response = api.put("/api/v1/judgments/golden", json={"judgments": golden})
    assert response.status_code == 200, response.text
    response = api.post(
        "/api/v1/fine-tuning/task",
        json={"fine_tuning_method": TINY_METHOD, "validation_set": "golden"},
    )
    assert response.status_code == 201, response.text
    task_id = response.json()["id"]
    with workers(
        psettings, tmp_path, **{TINY_MODEL_ENV: str(tiny_model_path()), "OMP_NUM_THREADS": "1"}
    ):
        task = wait_for(lambda: in_status(api, task_id, "done", "error"), 180, "the task")
    assert task["status"] == "done", task
    assert (task["promoted"], task["challenger"]) == (True, False)
    assert task["metrics"]["evidence"] == "judged"
    assert task["metrics"]["best"] > task["metrics"]["baseline"]
    assert task["mlflow_experiment"] == f"iteration / {TINY_METHOD} / {task['batch_id']}"
    assert task["progress"]["percent"] == 100.0
    assert task["best_model_url"] == f"http://testserver/api/v1/fine-tuning/task/{task_id}/model"
    messages = [e["message"] for e in task_events(api, task_id)]
    assert any(m.startswith("Run run-2 finished") for m in messages)

    response = api.get(task["best_model_url"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    folder = tmp_path / "downloaded"
    zipfile.ZipFile(io.BytesIO(response.content)).extractall(folder)
    downloaded = SentenceTransformer(str(folder)).encode(TEXTS)
    assert not np.allclose(downloaded, initial, atol=1e-3)

    assert np.allclose(embed(api, task_id), downloaded, atol=1e-6)
    # The promotion is served under the method's name without a restart.
    assert np.allclose(embed(api, TINY_METHOD), downloaded, atol=1e-6)
    assert np.array_equal(embed(api, task_id, encoding_format="base64"), downloaded)
    single = api.post("/api/v1/embeddings", json={"input": TEXTS[0], "model": task_id}).json()
    assert len(single["data"]) == 1
    assert np.allclose(single["data"][0]["embedding"], downloaded[0], atol=1e-6)
    again = api.get(f"/api/v1/fine-tuning/task/{task_id}/model")
    assert again.content == response.content

    models = api.get(f"/api/v1/fine-tuning/methods/{TINY_METHOD}/models").json()
    assert models["champion"]["decided_by"] == models["champion"]["task_id"] == task_id
    assert models["champion"]["reason"] == task["metrics"]["promotion_reason"]
    assert models["challenger"] is None
    assert [m["event"] for m in models["history"]] == ["champion"]
    assert np.allclose(embed(api, f"{TINY_METHOD}@champion"), downloaded, atol=1e-6)
    no_challenger = api.post(
        "/api/v1/embeddings", json={"input": "x", "model": f"{TINY_METHOD}@challenger"}
    )
    assert no_challenger.status_code == 404
    assert no_challenger.json()["error"]["code"] == "no_challenger"


def test_no_model_yet(api: TestClient, engine: Engine) -> None:
    shop = Shop()
    batch = load_batch(engine, shop, shop.sessions(per_query=1))
    new = task_store.NewTask(TINY_METHOD, batch, {}, {}, None, "hash")
    task_id = write(engine, task_store.create_task, new).task.id
    response = api.get(f"/api/v1/fine-tuning/task/{task_id}/model")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"
    assert "pending" in response.json()["error"]["message"]
    response = api.post("/api/v1/embeddings", json={"input": "x", "model": task_id})
    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "model_not_found",
        "message": response.json()["error"]["message"],
        "param": "model",
    }
    missing = api.get("/api/v1/fine-tuning/task/000000000000000000000000/model")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "task_not_found"
    assert api.get("/api/v1/fine-tuning/task/a%00b/model").status_code == 422


MISTAKES = [
    ({"input": "x", "model": "No Such Model"}, 404, "model_not_found", "model"),
    ({"input": "", "model": TINY_METHOD}, 422, "invalid_request", "input"),
    ({"input": "   ", "model": TINY_METHOD}, 422, "invalid_request", "input"),
    ({"input": [], "model": TINY_METHOD}, 422, "invalid_request", "input"),
    ({"input": ["ok", ""], "model": TINY_METHOD}, 422, "invalid_request", "input.1"),
    ({"input": ["x"] * 3, "model": TINY_METHOD}, 422, "too_many_inputs", "input"),
    ({"input": "x"}, 422, "invalid_request", "model"),
    ({"input": "x", "model": ""}, 422, "invalid_request", "model"),
    ({"input": [1, 2], "model": TINY_METHOD}, 422, "invalid_request", "input"),
    ({"input": ["ok", "a\x00b"], "model": TINY_METHOD}, 422, "invalid_request", "input.1"),
    ({"input": "x", "model": "a\x00b"}, 422, "invalid_request", "model"),
    (
        {"input": "x", "model": TINY_METHOD, "encoding_format": "int8"},
        422,
        "invalid_request",
        "encoding_format",
    ),
    ({"input": "x", "model": TINY_METHOD, "surprise": 1}, 422, "invalid_request", "surprise"),
    ({"input": "x", "model": TINY_METHOD, "dimensions": 0}, 422, "invalid_request", "dimensions"),
    ({"input": "x", "model": TINY_METHOD, "dimensions": 999}, 422, "invalid_request", "dimensions"),
    ({"input": ["ok", "y" * 41], "model": TINY_METHOD}, 422, "input_too_long", "input.1"),
]


def test_client_mistakes_get_clear_errors(psettings: Settings) -> None:
    limits = {"embeddings_max_inputs": 2, "embeddings_max_chars": 40}
    settings = psettings.model_copy(update=limits)
    with TestClient(create_app(settings)) as api:
        for body, status, code, param in MISTAKES:
            response = api.post("/api/v1/embeddings", json=body)
            assert response.status_code == status, (body, response.text)
            error = response.json()["error"]
            assert error["code"] == code, body
            assert error["param"] == param or error["param"].startswith(f"{param}."), body
            if code == "model_not_found":
                assert TINY_METHOD in error["message"]


def test_the_api_starts_without_torch(psettings: Settings) -> None:
    script = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from clicktune.api.app import create_app\n"
        "from clicktune.settings import Settings\n"
        f"settings = Settings(data_dir={str(psettings.data_dir)!r}, "
        f"database_url={psettings.effective_database_url!r}, "
        f"plugins_path={str(psettings.plugins_path)!r})\n"
        "with TestClient(create_app(settings)) as api:\n"
        "    assert api.get('/api/v1/fine-tuning/methods').status_code == 200\n"
        "    assert api.post('/api/v1/embeddings', json={'input': '', 'model': 'x'})"
        ".status_code == 422\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)


def test_concurrent_requests_on_one_model_all_succeed(api: TestClient) -> None:
    """A loaded model's fast tokenizer is shared state: texts of different lengths at once."""
    words = ["crimson", "sneaker", "hat", "in", "blue", "by", "zenith", "navy", "tee"]

    def call(n: int) -> int:
        texts = [" ".join(words[: 1 + (n + i) % len(words)]) for i in range(1 + n % 4)]
        body = {"input": texts, "model": TINY_METHOD}
        return api.post("/api/v1/embeddings", json=body).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(call, range(400)))
    assert set(codes) == {200}

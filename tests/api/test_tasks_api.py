"""The fine-tuning endpoints of docs/api.md on SQLite and PostgreSQL (no worker involved)."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from clicktune.ids import new_id
from clicktune.settings import Settings
from clicktune.store import tasks as task_store
from tests.store_support import write
from tests.task_support import (
    PLUGINS_DIR,
    STEPS_METHOD,
    create_task,
    get_task,
    register_sessions,
    released_batch,
    task_events,
)

TASK_FIELDS = {
    "id",
    "fine_tuning_method",
    "status",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
    "batch_id",
    "metadata",
    "idempotency_key",
    "progress",
    "metrics",
    "best_run_id",
    "best_model_url",
    "promoted",
    "challenger",
    "validation_set",
    "promotion",
    "n_trials",
    "mlflow_experiment",
    "attempts",
    "error",
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"plugins_path": PLUGINS_DIR})


def _engine(client: TestClient) -> Engine:
    return client.app.state.engine  # type: ignore[attr-defined]


def _post(client: TestClient, body: dict[str, Any]) -> Any:
    return client.post("/api/v1/fine-tuning/task", json=body)


def _error(response: Any, status: int, code: str, param: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    return error


def _collecting_batch(client: TestClient) -> dict[str, Any] | None:
    page = client.get("/api/v1/clickstream/batches", params={"status": "collecting"}).json()
    return page["data"][0] if page["data"] else None


def test_methods_lists_registered_plugins(client: TestClient) -> None:
    response = client.get("/api/v1/fine-tuning/methods")
    assert response.status_code == 200
    methods = {m["name"]: m for m in response.json()}
    steps = methods[STEPS_METHOD]
    assert steps["version"] == "1.0"
    assert set(steps["hyperparameters"]) == {
        "steps",
        "step_s",
        "fail",
        "fail_until_attempt",
        "runs_dir",
        "quiet",
    }


def test_create_without_batch_releases_the_collecting_batch(client: TestClient) -> None:
    register_sessions(client, 2)
    collecting = _collecting_batch(client)
    assert collecting is not None
    key = new_id()
    response = _post(
        client,
        {"fine_tuning_method": STEPS_METHOD, "idempotency_key": key, "metadata": {"a": [1, 2]}},
    )
    assert response.status_code == 201, response.text
    task = response.json()
    assert set(task) == TASK_FIELDS
    assert task["status"] == "pending"
    assert (task["promotion"], task["validation_set"], task["n_trials"]) == ("auto", None, None)
    assert task["batch_id"] == collecting["batch_id"]
    assert task["metadata"] == {"a": [1, 2]}
    assert task["idempotency_key"] == key
    assert task["attempts"] == 1
    assert task["error"] is None and task["best_model_url"] is None
    assert task["started_at"] is None and task["finished_at"] is None
    created_at = datetime.fromisoformat(task["created_at"])
    assert created_at.utcoffset() is not None and created_at.utcoffset().total_seconds() == 0
    batch = client.get(f"/api/v1/clickstream/batches/{task['batch_id']}").json()
    assert batch["status"] == "released"
    assert batch["release_id"] == f"task:{key}"  # its own namespace, apart from clients'
    assert _collecting_batch(client) is None
    _error(_post(client, {"fine_tuning_method": STEPS_METHOD}), 409, "no_collecting_batch")
    assert client.get("/api/v1/fine-tuning/task").json()["total"] == 1


def test_create_with_batch_id(client: TestClient) -> None:
    batch_id = released_batch(client)
    task = create_task(client, batch_id, steps=3, step_s=0.5)
    assert task["batch_id"] == batch_id
    assert get_task(client, task["id"]) == task
    _error(
        _post(client, {"fine_tuning_method": STEPS_METHOD, "batch_id": "nope"}),
        404,
        "batch_not_found",
        "batch_id",
    )
    register_sessions(client, 1)
    collecting = _collecting_batch(client)
    assert collecting is not None
    _error(
        _post(client, {"fine_tuning_method": STEPS_METHOD, "batch_id": collecting["batch_id"]}),
        409,
        "batch_not_released",
        "batch_id",
    )


def test_invalid_creates_change_nothing(client: TestClient) -> None:
    register_sessions(client, 1)
    collecting = _collecting_batch(client)
    error = _error(
        _post(client, {"fine_tuning_method": "No Such Method"}),
        404,
        "method_not_found",
        "fine_tuning_method",
    )
    assert STEPS_METHOD in error["message"]
    _error(
        _post(client, {"fine_tuning_method": STEPS_METHOD, "hyperparameters": {"nope": 1}}),
        422,
        "invalid_hyperparameter",
        "hyperparameters.nope",
    )
    _error(
        _post(client, {"fine_tuning_method": STEPS_METHOD, "hyperparameters": {"steps": "many"}}),
        422,
        "invalid_hyperparameter",
        "hyperparameters.steps",
    )
    _error(_post(client, {}), 422, "invalid_request", "fine_tuning_method")
    _error(
        _post(client, {"fine_tuning_method": STEPS_METHOD, "batch": "typo"}),
        422,
        "invalid_request",
        "batch",
    )
    _error(
        _post(client, {"fine_tuning_method": STEPS_METHOD, "idempotency_key": ""}),
        422,
        "invalid_request",
        "idempotency_key",
    )
    _error(
        _post(client, {"fine_tuning_method": STEPS_METHOD, "metadata": {"x": "y" * 70_000}}),
        422,
        "meta_too_large",
        "metadata",
    )
    _error(
        _post(client, {"fine_tuning_method": STEPS_METHOD, "metadata": []}), 422, "invalid_request"
    )
    response = client.post(
        "/api/v1/fine-tuning/task",
        content=b'{"fine_tuning_method": ',
        headers={"content-type": "application/json"},
    )
    _error(response, 400, "invalid_json")
    response = client.post(
        "/api/v1/fine-tuning/task",
        content=b"fine_tuning_method=x",
        headers={"content-type": "text/plain"},
    )
    _error(response, 415, "unsupported_media_type")
    assert client.get("/api/v1/fine-tuning/task").json()["total"] == 0
    assert _collecting_batch(client) == collecting


def test_idempotent_replay_and_key_reuse(client: TestClient) -> None:
    batch_id = released_batch(client)
    key = new_id()
    body = {"fine_tuning_method": STEPS_METHOD, "batch_id": batch_id, "idempotency_key": key}
    first = _post(client, body)
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    # The same request, defaults spelled out: the same request.
    replay = _post(client, {**body, "metadata": {}, "hyperparameters": None})
    assert replay.status_code == 200
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == first.json()["id"]
    error = _error(
        _post(client, {**body, "metadata": {"changed": True}}),
        409,
        "idempotency_key_reused",
        "idempotency_key",
    )
    assert first.json()["id"] in error["message"]
    assert client.get("/api/v1/fine-tuning/task").json()["total"] == 1


def test_concurrent_creates_with_one_key_create_one_task(client: TestClient) -> None:
    register_sessions(client, 3)
    key = new_id()
    body = {"fine_tuning_method": STEPS_METHOD, "idempotency_key": key}
    barrier = threading.Barrier(20)
    responses: list[Any] = []

    def create() -> None:
        barrier.wait()
        responses.append(_post(client, body))

    threads = [threading.Thread(target=create) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 19 + [201], [r.text for r in responses if r.status_code >= 300]
    assert len({r.json()["id"] for r in responses}) == 1
    assert all(
        r.headers.get("idempotent-replayed") == "true" for r in responses if r.status_code == 200
    )
    assert client.get("/api/v1/fine-tuning/task").json()["total"] == 1
    released = client.get("/api/v1/clickstream/batches", params={"status": "released"}).json()
    assert released["total"] == 1
    assert released["data"][0]["release_id"] == f"task:{key}"


def test_get_and_list(client: TestClient) -> None:
    ids = [create_task(client, released_batch(client))["id"] for _ in range(4)]
    client.put(f"/api/v1/fine-tuning/task/{ids[0]}/cancel")
    _error(client.get("/api/v1/fine-tuning/task/nope"), 404, "task_not_found")
    listed = client.get("/api/v1/fine-tuning/task", params={"limit": 2}).json()
    assert listed["total"] == 4
    assert [t["id"] for t in listed["data"]] == [ids[3], ids[2]]
    assert all(set(t) == TASK_FIELDS for t in listed["data"])
    second = client.get("/api/v1/fine-tuning/task", params={"limit": 2, "offset": 2}).json()
    assert [t["id"] for t in second["data"]] == [ids[1], ids[0]]
    pending = client.get("/api/v1/fine-tuning/task", params={"status": "pending"}).json()
    assert pending["total"] == 3 and ids[0] not in {t["id"] for t in pending["data"]}
    by_method = client.get(
        "/api/v1/fine-tuning/task",
        params={"fine_tuning_method": STEPS_METHOD, "status": "canceled"},
    ).json()
    assert [t["id"] for t in by_method["data"]] == [ids[0]]
    other = client.get("/api/v1/fine-tuning/task", params={"fine_tuning_method": "other"}).json()
    assert other == {"data": [], "total": 0}
    blank = client.get("/api/v1/fine-tuning/task?status=&fine_tuning_method=&limit=100&offset=0")
    assert blank.json()["total"] == 4
    _error(
        client.get("/api/v1/fine-tuning/task", params={"status": "running"}),
        422,
        "invalid_request",
        "status",
    )
    _error(
        client.get("/api/v1/fine-tuning/task", params={"limit": 0}), 422, "invalid_request", "limit"
    )


def test_cancel_and_restart(client: TestClient) -> None:
    task_id = create_task(client, released_batch(client))["id"]
    canceled = client.put(f"/api/v1/fine-tuning/task/{task_id}/cancel")
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    assert canceled.json()["finished_at"] is not None
    assert canceled.json()["error"] is None
    _error(client.put(f"/api/v1/fine-tuning/task/{task_id}/cancel"), 409, "task_finished")
    restarted = client.put(f"/api/v1/fine-tuning/task/{task_id}/restart")
    assert restarted.status_code == 200
    assert restarted.json()["status"] == "pending"
    assert restarted.json()["attempts"] == 2
    assert restarted.json()["finished_at"] is None
    _error(client.put(f"/api/v1/fine-tuning/task/{task_id}/restart"), 409, "task_not_restartable")
    _error(client.put("/api/v1/fine-tuning/task/nope/cancel"), 404, "task_not_found")
    _error(client.put("/api/v1/fine-tuning/task/nope/restart"), 404, "task_not_found")
    messages = [e["message"] for e in task_events(client, task_id)]
    assert messages == ["task created", "task canceled", "task restarted"]


def test_done_and_error_tasks_as_the_api_shows_them(client: TestClient) -> None:
    batch_id = released_batch(client)
    engine = _engine(client)
    done_id = create_task(client, batch_id)["id"]
    failed_id = create_task(client, released_batch(client))["id"]
    assert write(engine, task_store.claim_task, "w", lease_s=60, max_attempts=3) is not None
    assert write(engine, task_store.claim_task, "w2", lease_s=60, max_attempts=3) is not None
    result = {
        "metrics": {"main_metric": "ndcg_at_10", "baseline": 0.4, "best": 0.5},
        "best_run_id": "run1",
        "best_model_uri": "models:/m/1",
        "promoted": True,
        "challenger": False,
        "mlflow_experiment": f"iteration / {STEPS_METHOD} / {batch_id}",
    }
    assert write(engine, task_store.complete_task, done_id, "w", **result)
    assert write(
        engine, task_store.fail_task, failed_id, "w2", "batch_too_small", "need 10 queries"
    )
    done = get_task(client, done_id)
    assert done["status"] == "done"
    assert done["best_model_url"] == f"http://testserver/api/v1/fine-tuning/task/{done_id}/model"
    assert done["metrics"] == result["metrics"]
    assert (done["best_run_id"], done["promoted"]) == ("run1", True)
    assert done["mlflow_experiment"] == result["mlflow_experiment"]
    assert done["error"] is None and done["started_at"] is not None
    failed = get_task(client, failed_id)
    assert failed["error"] == {"code": "batch_too_small", "message": "need 10 queries"}
    assert failed["best_model_url"] is None
    _error(client.put(f"/api/v1/fine-tuning/task/{done_id}/cancel"), 409, "task_finished")
    _error(client.put(f"/api/v1/fine-tuning/task/{done_id}/restart"), 409, "task_not_restartable")
    restarted = client.put(f"/api/v1/fine-tuning/task/{failed_id}/restart").json()
    assert restarted["status"] == "pending" and restarted["error"] is None


def test_events_pagination(client: TestClient) -> None:
    task_id = create_task(client, released_batch(client))["id"]
    for _ in range(3):
        client.put(f"/api/v1/fine-tuning/task/{task_id}/cancel")
        client.put(f"/api/v1/fine-tuning/task/{task_id}/restart")
    first = client.get(f"/api/v1/fine-tuning/task/{task_id}/events", params={"limit": 4}).json()
    assert len(first["data"]) == 4 and first["has_more"]
    assert set(first["data"][0]) == {"id", "created_at", "level", "message", "data"}
    rest = client.get(
        f"/api/v1/fine-tuning/task/{task_id}/events",
        params={"after": first["data"][-1]["id"], "limit": 50},
    ).json()
    assert len(rest["data"]) == 3 and not rest["has_more"]
    all_ids = [e["id"] for e in first["data"] + rest["data"]]
    assert len(set(all_ids)) == 7
    _error(
        client.get(f"/api/v1/fine-tuning/task/{task_id}/events", params={"after": "nope"}),
        404,
        "event_not_found",
        "after",
    )
    _error(client.get("/api/v1/fine-tuning/task/nope/events"), 404, "task_not_found")


def test_evidence_fields_of_a_task(client: TestClient) -> None:
    batch_id = released_batch(client)
    base = {"fine_tuning_method": STEPS_METHOD, "batch_id": batch_id}
    _error(
        _post(client, {**base, "validation_set": "nope"}),
        404,
        "judgment_set_not_found",
        "validation_set",
    )
    _error(_post(client, {**base, "promotion": "sometimes"}), 422, "invalid_request", "promotion")
    _error(_post(client, {**base, "n_trials": 0}), 422, "invalid_request", "n_trials")
    _error(_post(client, {**base, "n_trials": "2"}), 422, "invalid_request", "n_trials")
    judgments = {"judgments": [{"query": "q", "object_id": "doc-1", "grade": 1}]}
    assert client.put("/api/v1/judgments/golden", json=judgments).status_code == 200
    body = {**base, "validation_set": "golden", "promotion": "never", "n_trials": 2}
    created = _post(client, {**body, "idempotency_key": "k"})
    assert created.status_code == 201, created.text
    task = created.json()
    assert (task["validation_set"], task["promotion"], task["n_trials"]) == ("golden", "never", 2)
    assert task["challenger"] is None
    replay = _post(client, {**body, "idempotency_key": "k"})
    assert replay.status_code == 200 and replay.json()["id"] == task["id"]
    _error(
        _post(client, {**body, "idempotency_key": "k", "promotion": "always"}),
        409,
        "idempotency_key_reused",
    )


def test_one_active_task_per_method_and_batch(client: TestClient) -> None:
    batch_id = released_batch(client)
    first = create_task(client, batch_id)
    keys = [
        _post(
            client,
            {"fine_tuning_method": STEPS_METHOD, "batch_id": batch_id, "idempotency_key": f"k-{n}"},
        )
        for n in range(5)
    ]
    for response in keys:
        error = _error(response, 409, "task_exists", "batch_id")
        assert first["id"] in error["message"]
    assert client.get("/api/v1/fine-tuning/task").json()["total"] == 1
    # Once it is canceled another may run; restarting the first is then refused.
    client.put(f"/api/v1/fine-tuning/task/{first['id']}/cancel")
    second = create_task(client, batch_id)
    _error(client.put(f"/api/v1/fine-tuning/task/{first['id']}/restart"), 409, "task_exists")
    client.put(f"/api/v1/fine-tuning/task/{second['id']}/cancel")
    assert client.put(f"/api/v1/fine-tuning/task/{first['id']}/restart").status_code == 200


def test_a_client_release_id_and_a_task_key_do_not_meet(client: TestClient) -> None:
    register_sessions(client, 2)
    manual = client.post(
        "/api/v1/clickstream/internal/batch/release", json={"release_id": "nightly"}
    )
    register_sessions(client, 2)
    task = _post(client, {"fine_tuning_method": STEPS_METHOD, "idempotency_key": "nightly"})
    assert task.status_code == 201, task.text
    assert task.json()["batch_id"] != manual.json()["batch_id"]  # a new release, not a replay

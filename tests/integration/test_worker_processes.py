"""Real `clicktune worker` processes against SQLite and PostgreSQL.

The steps plugin (tests/plugins) does real work in steps and records each run in `runs_dir`.
Leases are 2 s and heartbeats 0.3 s, so crashes are noticed in seconds.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from clicktune.settings import Settings
from tests.task_support import (
    PLUGINS_DIR,
    create_task,
    get_task,
    in_status,
    released_batch,
    run_records,
    task_events,
    wait_for,
    workers,
)

QUIET_S = 1.5  # several heartbeat periods: long enough for a stray write to show


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"plugins_path": PLUGINS_DIR})


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    path = tmp_path / "runs"
    path.mkdir()
    return path


def _progress_step(client: TestClient, task_id: str) -> int:
    task = get_task(client, task_id)
    return (task["progress"] or {}).get("step", 0) if task["status"] == "processing" else 0


def test_killed_worker_task_is_taken_over_then_worker_lost_at_the_limit(
    client: TestClient, settings: Settings, tmp_path: Path, runs_dir: Path
) -> None:
    batch_id = released_batch(client)
    survivor = create_task(client, batch_id, steps=10, step_s=0.1, runs_dir=str(runs_dir))["id"]
    env = {"CLICKTUNE_WORKER_MAX_ATTEMPTS": "2"}
    with workers(settings, tmp_path, **env) as [first]:
        wait_for(lambda: _progress_step(client, survivor) >= 2, what="first worker's progress")
        first.signal(signal.SIGKILL)
        first.wait()
    with workers(settings, tmp_path, **env) as [second]:
        done = wait_for(lambda: in_status(client, survivor, "done", "error"), what="takeover")
        assert done["status"] == "done", done
        assert done["attempts"] == 2
        records = run_records(runs_dir, survivor)
        assert sorted(r["pid"] for r in records) == sorted([first.pid, second.pid])
        assert [r["state"] for r in records if r["pid"] == second.pid] == ["finished"]
        assert [r["attempt"] for r in records if r["pid"] == second.pid] == [2]
        assert not any(Path(r["work_dir"]).exists() for r in records if r["pid"] == second.pid)
        messages = [e["message"] for e in task_events(client, survivor)]
        assert messages.count("worker took over the task") == 1
        assert messages[-1] == "task done"

        doomed = create_task(client, batch_id, steps=200, step_s=0.1)["id"]
        wait_for(lambda: _progress_step(client, doomed) >= 1, what="second worker's progress")
        second.signal(signal.SIGKILL)
        second.wait()
    with workers(settings, tmp_path, **env) as [third]:
        wait_for(lambda: third.logged("task_claimed", task_id=doomed), what="the takeover")
        third.signal(signal.SIGKILL)
        third.wait()
    with workers(settings, tmp_path, **env):
        lost = wait_for(lambda: in_status(client, doomed, "error"), what="worker_lost")
    assert lost["error"]["code"] == "worker_lost"
    assert lost["attempts"] == 2


def test_many_tasks_three_workers_each_task_runs_once(
    client: TestClient, settings: Settings, tmp_path: Path, runs_dir: Path
) -> None:
    ids = [
        create_task(
            client, released_batch(client, sessions=5), steps=3, step_s=0.05, runs_dir=str(runs_dir)
        )["id"]
        for _ in range(12)
    ]
    with workers(settings, tmp_path, count=3) as started:
        for task_id in ids:
            wait_for(
                lambda t=task_id: in_status(client, t, "done", "error"), what=f"{task_id} done"
            )
        claimers = {w.pid: w.logs() for w in started}
    digests = set()
    for task_id in ids:
        task = get_task(client, task_id)
        assert task["status"] == "done" and task["attempts"] == 1
        digests.add(task["metrics"]["digest"])
        records = run_records(runs_dir, task_id)
        assert len(records) == 1 and records[0]["state"] == "finished"
        messages = [e["message"] for e in task_events(client, task_id)]
        assert messages.count("worker claimed the task") == 1
        assert messages.count("hashing started") == 1
    assert len(digests) == len(ids)  # each its own batch (one active task per batch), own result
    claimed = [
        entry["task_id"]
        for logs in claimers.values()
        for entry in logs
        if entry.get("event") == "task_claimed"
    ]
    assert sorted(claimed) == sorted(ids)


def test_cancel_pending_and_running(
    client: TestClient, settings: Settings, tmp_path: Path, runs_dir: Path
) -> None:
    batch_id = released_batch(client)
    running = create_task(client, batch_id, steps=200, step_s=0.1, runs_dir=str(runs_dir))["id"]
    with workers(settings, tmp_path) as [worker]:
        wait_for(lambda: _progress_step(client, running) >= 2, what="progress")
        pending = create_task(client, released_batch(client), runs_dir=str(runs_dir))["id"]
        assert client.put(f"/api/v1/fine-tuning/task/{pending}/cancel").status_code == 200
        response = client.put(f"/api/v1/fine-tuning/task/{running}/cancel")
        assert response.status_code == 200 and response.json()["status"] == "canceled"
        wait_for(
            lambda: worker.logged("task_stopped", task_id=running, reason="canceled"),
            what="the worker to stop the task",
        )
        before = get_task(client, running)
        events_before = task_events(client, running)
        time.sleep(QUIET_S)
        assert get_task(client, running) == before
        assert task_events(client, running) == events_before
        assert before["status"] == "canceled"
        assert events_before[-1]["message"] == "task canceled"
        record = run_records(runs_dir, running)[0]
        assert record["state"] == "started"
        assert not Path(record["work_dir"]).exists()
        assert get_task(client, pending)["status"] == "canceled"
        assert run_records(runs_dir, pending) == []

        # A method that writes nothing while it works: the heartbeat alone notices the cancel.
        silent = create_task(client, released_batch(client), steps=200, step_s=0.1, quiet=True)[
            "id"
        ]
        wait_for(lambda: in_status(client, silent, "processing"), what="the silent task to run")
        client.put(f"/api/v1/fine-tuning/task/{silent}/cancel")
        wait_for(
            lambda: worker.logged("task_stopped", task_id=silent, reason="canceled"),
            what="the heartbeat to stop the silent task",
        )
        assert get_task(client, silent)["status"] == "canceled"
        assert worker.process.poll() is None  # the worker goes on


def test_restart_after_error_and_after_cancel(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    failing = create_task(
        client,
        released_batch(client),
        steps=2,
        step_s=0.05,
        fail="task_failed",
        fail_until_attempt=1,
    )["id"]
    crashing = create_task(
        client, released_batch(client), steps=2, step_s=0.05, fail="crash", fail_until_attempt=1
    )["id"]
    canceled = create_task(client, released_batch(client), steps=2, step_s=0.05)["id"]
    client.put(f"/api/v1/fine-tuning/task/{canceled}/cancel")
    with workers(settings, tmp_path):
        failed = wait_for(lambda: in_status(client, failing, "error"), what="failure")
        crashed = wait_for(lambda: in_status(client, crashing, "error"), what="crash")
        assert failed["error"] == {"code": "test_failure", "message": "told to fail"}
        assert crashed["error"]["code"] == "method_failed"
        assert "told to crash" in crashed["error"]["message"]
        for task_id in (failing, crashing, canceled):
            assert client.put(f"/api/v1/fine-tuning/task/{task_id}/cancel").status_code == 409
            response = client.put(f"/api/v1/fine-tuning/task/{task_id}/restart")
            assert response.status_code == 200
            assert response.json()["attempts"] == 2
        for task_id in (failing, crashing, canceled):
            done = wait_for(lambda t=task_id: in_status(client, t, "done"), what="rerun")
            assert done["attempts"] == 2 and done["error"] is None
            response = client.put(f"/api/v1/fine-tuning/task/{task_id}/restart")
            assert response.status_code == 409
            assert response.json()["error"]["code"] == "task_not_restartable"


def test_sigterm_hands_the_task_back_and_exits_0(
    client: TestClient, settings: Settings, tmp_path: Path, runs_dir: Path
) -> None:
    task_id = create_task(
        client, released_batch(client), steps=30, step_s=0.1, runs_dir=str(runs_dir)
    )["id"]
    with workers(settings, tmp_path) as [first]:
        wait_for(lambda: _progress_step(client, task_id) >= 2, what="progress")
        first.signal(signal.SIGTERM)
        assert first.wait() == 0
        assert first.logged("task_handed_back", task_id=task_id)
        handed_back = get_task(client, task_id)
        assert handed_back["status"] == "pending" and handed_back["attempts"] == 1
    with workers(settings, tmp_path) as [second]:
        done = wait_for(lambda: in_status(client, task_id, "done"), what="completion")
        assert done["attempts"] == 1
        records = run_records(runs_dir, task_id)
        assert {r["pid"]: r["state"] for r in records} == {
            first.pid: "started",
            second.pid: "finished",
        }
        second.signal(signal.SIGTERM)
        assert second.wait() == 0

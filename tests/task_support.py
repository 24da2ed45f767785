"""Helpers shared by the task and worker tests: batches through the REST API, worker processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from fastapi.testclient import TestClient

from clicktune.ids import new_id
from clicktune.settings import Settings

PLUGINS_DIR = Path(__file__).parent / "plugins"
STEPS_METHOD = "Test Steps Method"

T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], timeout_s: float = 90.0, what: str = "condition") -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def register_sessions(client: TestClient, count: int, prefix: str | None = None) -> list[str]:
    """Register `count` sessions with one click each through the REST API."""
    prefix = prefix or new_id()
    session_ids = []
    for number in range(count):
        session_id = f"{prefix}-{number}"
        response = client.post(
            "/api/v1/clickstream/session",
            json={
                "session_id": session_id,
                "search_query": f"query {prefix} {number}",
                "search_results": [{"object_id": f"doc-{number}"}, {"object_id": "doc-x"}],
            },
        )
        assert response.status_code == 201, response.text
        response = client.post(
            "/api/v1/clickstream/session/events",
            json={
                "session_id": session_id,
                "events": [{"event_id": "e1", "object_id": f"doc-{number}"}],
            },
        )
        assert response.status_code == 200, response.text
        session_ids.append(session_id)
    return session_ids


def released_batch(client: TestClient, sessions: int = 3) -> str:
    register_sessions(client, sessions)
    response = client.post(
        "/api/v1/clickstream/internal/batch/release", json={"release_id": new_id()}
    )
    assert response.status_code == 200, response.text
    return response.json()["batch_id"]


def create_task(
    client: TestClient, batch_id: str | None = None, expect: int = 201, **hyperparameters: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"fine_tuning_method": STEPS_METHOD, "hyperparameters": hyperparameters}
    if batch_id is not None:
        body["batch_id"] = batch_id
    response = client.post("/api/v1/fine-tuning/task", json=body)
    assert response.status_code == expect, response.text
    return response.json()


def get_task(client: TestClient, task_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/fine-tuning/task/{task_id}")
    assert response.status_code == 200, response.text
    return response.json()


def task_events(client: TestClient, task_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if after:
            params["after"] = after
        page = client.get(f"/api/v1/fine-tuning/task/{task_id}/events", params=params).json()
        events.extend(page["data"])
        if not page["has_more"]:
            return events
        after = events[-1]["id"]


def in_status(client: TestClient, task_id: str, *statuses: str) -> dict[str, Any] | None:
    task = get_task(client, task_id)
    return task if task["status"] in statuses else None


def run_records(runs_dir: Path, task_id: str) -> list[dict[str, Any]]:
    """The steps method's records of every run of `task_id` (one file per run)."""
    return [json.loads(p.read_text()) for p in sorted(runs_dir.glob(f"{task_id}.*.json"))]


def worker_env(settings: Settings, **overrides: str) -> dict[str, str]:
    """The environment of a worker of the same service: database, data dir and plugins."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKTUNE_")}
    env.update(
        CLICKTUNE_DATABASE_URL=settings.effective_database_url,
        CLICKTUNE_DATA_DIR=str(settings.data_dir),
        CLICKTUNE_PLUGINS_PATH=str(settings.plugins_path or PLUGINS_DIR),
        CLICKTUNE_WORKER_LEASE_S="2",
        CLICKTUNE_WORKER_HEARTBEAT_S="0.3",
        CLICKTUNE_WORKER_POLL_S="0.1",
        CLICKTUNE_LOG_JSON="1",
        CLICKTUNE_SINGLE_HOST="1",
    )
    env.update(overrides)
    return env


class WorkerProcess:
    """A real `clicktune worker` process with its JSON log lines in a file."""

    def __init__(self, settings: Settings, log_path: Path, **env: str) -> None:
        self.log_path = log_path
        self._log_file = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "clicktune", "worker"],
            env=worker_env(settings, **env),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.process.pid

    def logs(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log_path.read_text().splitlines():
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return lines

    def logged(self, event: str, **fields: Any) -> dict[str, Any] | None:
        for entry in self.logs():
            if entry.get("event") == event and all(entry.get(k) == v for k, v in fields.items()):
                return entry
        return None

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout_s: float = 30.0) -> int:
        return self.process.wait(timeout=timeout_s)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log_file.close()


@contextmanager
def workers(
    settings: Settings, log_dir: Path, count: int = 1, **env: str
) -> Iterator[list[WorkerProcess]]:
    started = [
        WorkerProcess(settings, log_dir / f"worker-{new_id()}.log", **env) for _ in range(count)
    ]
    try:
        yield started
    finally:
        for worker in started:
            worker.stop()

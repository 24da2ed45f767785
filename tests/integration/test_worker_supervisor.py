"""`clicktune up`: the API and a worker as real child processes, stopped together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from clicktune.simulate.service import free_port
from tests.task_support import wait_for


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of the (exited) supervisor counts as gone
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class Service:
    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api/v1"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKTUNE_")}
        env.update(
            CLICKTUNE_DATA_DIR=str(tmp_path / "data"),
            CLICKTUNE_PORT=str(self.port),
            CLICKTUNE_MLFLOW_PORT=str(free_port()),
            CLICKTUNE_WORKER_HEARTBEAT_S="0.3",
            CLICKTUNE_WORKER_POLL_S="0.1",
        )
        self.log = (tmp_path / "up.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "clicktune", "up"],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def health(self) -> dict[str, Any] | None:
        try:
            return httpx.get(f"{self.url}/health", timeout=2).json()
        except httpx.HTTPError:
            return None

    def worker_pid(self) -> int:
        def online() -> list[dict[str, Any]] | None:
            health = self.health()
            return health["components"]["workers"]["seen"] if health else None

        [worker] = wait_for(online, timeout_s=60, what="the API and a worker online")
        return worker["pid"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    service = Service(tmp_path)
    try:
        yield service
    finally:
        service.stop()


def test_up_runs_api_and_worker_and_stops_cleanly_on_sigterm(service: Service) -> None:
    worker_pid = service.worker_pid()
    assert httpx.get(f"{service.url}/ping").json() == {"status": "ok"}
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(timeout=60) == 0
    wait_for(lambda: not _alive(worker_pid), what="the worker to exit")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{service.url}/ping", timeout=2)


def test_up_exits_nonzero_when_a_child_dies(service: Service) -> None:
    worker_pid = service.worker_pid()
    os.kill(worker_pid, signal.SIGKILL)
    assert service.process.wait(timeout=60) != 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{service.url}/ping", timeout=2)

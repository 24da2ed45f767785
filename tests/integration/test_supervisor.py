"""`clicktune up`: the API, a worker and the MLflow UI as real child processes, restarted when
they die and stopped together, with everything they started."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, make_url

from clicktune.simulate.service import free_port
from clicktune.supervisor import ChildSpec, RestartPolicy, supervise
from tests.conftest import drop_postgres_database, make_postgres_database
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
    def __init__(self, tmp_path: Path, **settings: str) -> None:
        self.port = free_port()
        self.mlflow_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api/v1"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKTUNE_")}
        env.update(
            CLICKTUNE_DATA_DIR=str(tmp_path / "data"),
            CLICKTUNE_PORT=str(self.port),
            CLICKTUNE_MLFLOW_PORT=str(self.mlflow_port),
            CLICKTUNE_WORKER_HEARTBEAT_S="0.3",
            CLICKTUNE_WORKER_POLL_S="0.1",
            **settings,
        )
        key = settings.get("CLICKTUNE_API_KEYS", ":").split(":", 1)[1]
        self.auth = {"Authorization": f"Bearer {key}"} if key else {}
        self.log_path = tmp_path / "up.log"
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "clicktune", "up"],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def health(self) -> dict[str, Any] | None:
        try:
            return httpx.get(f"{self.url}/health", headers=self.auth, timeout=2).json()
        except httpx.HTTPError:
            return None

    def worker_pid(self) -> int:
        """The live worker's pid (a killed one stays in /health for a while)."""

        def online() -> int | None:
            health = self.health()
            seen = health["components"]["workers"]["seen"] if health else []
            alive = [w["pid"] for w in seen if _alive(w["pid"])]
            return alive[0] if len(alive) == 1 else None

        return wait_for(online, timeout_s=60, what="the API and a worker online")

    def descendants(self) -> set[int]:
        found: set[int] = set()
        parents = [self.process.pid]
        while parents:
            parent = parents.pop()
            for task in Path(f"/proc/{parent}/task").glob("*/children"):
                children = {int(pid) for pid in task.read_text().split()}
                parents.extend(children - found)
                found |= children
        return found

    def child_pid(self, name: str) -> int | None:
        """The pid of the `up` child whose command line holds `name`, if one runs."""
        for task in Path(f"/proc/{self.process.pid}/task").glob("*/children"):
            for pid in task.read_text().split():
                if name in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode():
                    return int(pid)
        return None

    def mlflow_ui_answers(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.mlflow_port}/health", timeout=2).is_success
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        """As a user stops it (SIGTERM: `up` stops its children), then whatever is left."""
        started = self.descendants() if self.process.poll() is None else set()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.log.close()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    service = Service(tmp_path)
    try:
        yield service
    finally:
        service.stop()


def test_up_runs_api_worker_and_ui_and_stops_everything_on_sigterm(service: Service) -> None:
    service.worker_pid()
    wait_for(service.mlflow_ui_answers, timeout_s=90, what="the MLflow UI")
    assert httpx.get(f"{service.url}/ping").json() == {"status": "ok"}
    printed = service.log_path.read_text()
    assert f"API          {service.url}" in printed
    assert f"MLflow UI    http://127.0.0.1:{service.mlflow_port}" in printed
    started = service.descendants()
    assert len(started) >= 4  # api, worker, mlflow server and its uvicorn
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(timeout=60) == 0
    wait_for(lambda: not any(_alive(pid) for pid in started), what="every process to exit")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{service.url}/ping", timeout=2)
    assert not service.mlflow_ui_answers()


def test_up_restarts_killed_children_while_the_api_answers(service: Service) -> None:
    worker_pid = service.worker_pid()
    os.kill(worker_pid, signal.SIGKILL)

    def answers() -> bool:
        return httpx.get(f"{service.url}/ping", timeout=2).status_code == 200

    wait_for(lambda: not _alive(worker_pid) and answers(), what="the API, the worker dead")
    assert service.worker_pid() != worker_pid

    wait_for(service.mlflow_ui_answers, timeout_s=90, what="the MLflow UI")
    mlflow_pid = service.child_pid("mlflow")
    assert mlflow_pid is not None
    os.kill(mlflow_pid, signal.SIGKILL)  # its server process would keep the port: not for long
    wait_for(lambda: service.child_pid("mlflow") not in (None, mlflow_pid), what="a new MLflow UI")
    wait_for(service.mlflow_ui_answers, timeout_s=90, what="the MLflow UI on its port again")
    assert service.process.poll() is None
    assert httpx.get(f"{service.url}/ping").json() == {"status": "ok"}


def test_a_child_that_keeps_dying_stops_the_service(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    flaky = ChildSpec(
        "flaky",
        [sys.executable, "-c", f"open({str(starts)!r}, 'a').write('x'); raise SystemExit(3)"],
    )
    steady = ChildSpec("steady", [sys.executable, "-c", "import time; time.sleep(60)"])
    policy = RestartPolicy(max_restarts=2, backoff_s=0.05)
    assert supervise([flaky, steady], stop_grace_s=5, policy=policy) == 1
    assert starts.read_text() == "xxx"  # the first start and two restarts


def test_no_key_or_password_on_a_command_line_in_health_or_logs(
    tmp_path: Path, postgres_admin: Engine
) -> None:
    password, key = "pw-Vb62-q", "adm-Rk40-z7Qp2-wx"
    databases = [make_postgres_database(postgres_admin) for _ in range(2)]
    store, tracking = (make_url(url).set(password=password) for url in databases)
    service = Service(
        tmp_path,
        CLICKTUNE_API_KEYS=f"admin:{key}",
        CLICKTUNE_DATABASE_URL=store.render_as_string(hide_password=False),
        CLICKTUNE_MLFLOW_TRACKING_URI=tracking.render_as_string(hide_password=False),
        CLICKTUNE_SINGLE_HOST="1",
    )
    try:
        service.worker_pid()
        wait_for(service.mlflow_ui_answers, timeout_s=120, what="the MLflow UI")
        health = httpx.get(f"{service.url}/health", headers=service.auth).text
        command_lines = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in service.descendants()]
        environments = {
            Path(f"/proc/{pid}/cmdline").read_bytes(): Path(f"/proc/{pid}/environ").read_bytes()
            for pid in service.descendants()
        }
    finally:
        service.stop()
        for url in databases:
            drop_postgres_database(postgres_admin, url)
    assert '"status":"ok"' in health and ":***@" in health
    shown = b"\n".join([health.encode(), *command_lines, service.log_path.read_bytes()])
    assert len(command_lines) >= 4
    assert password.encode() not in shown and key.encode() not in shown
    # Children get only what they need: the worker no API key, the MLflow UI no CLICKTUNE_*.
    workers = [env for line, env in environments.items() if b"\x00worker" in line]
    uis = [env for line, env in environments.items() if b"mlflow" in line and b"server" in line]
    assert workers and uis
    assert all(key.encode() not in env for env in workers + uis)
    assert all(b"CLICKTUNE_" not in env for env in uis)


def test_the_api_and_worker_do_not_outlive_a_killed_up(service: Service) -> None:
    worker_pid = service.worker_pid()
    api_pid = service.child_pid("clicktune api")
    assert api_pid is not None
    service.process.kill()
    service.process.wait()
    wait_for(lambda: not _alive(worker_pid) and not _alive(api_pid), what="the children to exit")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{service.url}/ping", timeout=2)

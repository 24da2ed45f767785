"""clicktune's own processes as children: the demo, the benchmarks and the tests start them here.

`running` starts `clicktune up` (or `api`) in its own session, yields once the API answers
`/ping`, and stops it with SIGTERM on the way out (a kill after a minute); `instance_env` is the
environment of a fresh, independent instance on free ports.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from clicktune.client import ClicktuneClient, ErrorResponse

STOP_TIMEOUT_S = 60.0


class ServiceNotStarted(RuntimeError):
    """The child exited, or did not answer in time; the message says which and where to look."""


def free_port() -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def instance_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """This process's environment without any `CLICKTUNE_*`, plus a data dir, free API and MLflow
    UI ports, and `settings` (`log_level="WARNING"` sets `CLICKTUNE_LOG_LEVEL`)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("CLICKTUNE_")}
    env.update(
        CLICKTUNE_DATA_DIR=str(data_dir),
        CLICKTUNE_PORT=str(free_port()),
        CLICKTUNE_MLFLOW_PORT=str(free_port()),
    )
    env.update({f"CLICKTUNE_{name.upper()}": value for name, value in settings.items()})
    return env


def local_url(env: Mapping[str, str]) -> str:
    """Where an instance started with `env` answers on this machine."""
    return f"http://127.0.0.1:{env['CLICKTUNE_PORT']}"


@contextmanager
def running(
    command: str,
    env: Mapping[str, str],
    url: str,
    *,
    log: Path | None = None,
    timeout_s: float = 120.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """`clicktune <command>` with `env`, once its API answers at `url`; stopped on exit."""
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") if log is not None else open(os.devnull, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "clicktune", command],
            env=dict(env),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_until_up(url, process, log, timeout_s)
            yield process
        finally:
            stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and a kill when it has not exited within `STOP_TIMEOUT_S`."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_until_up(
    url: str, process: subprocess.Popen[bytes], log: Path | None, timeout_s: float
) -> None:
    where = f"; see {log}" if log is not None else ""
    deadline = time.monotonic() + timeout_s
    with ClicktuneClient(url, timeout=5.0) as client:
        while True:
            if process.poll() is not None:
                raise ServiceNotStarted(
                    f"the service exited during start-up (code {process.returncode}){where}"
                )
            try:
                client.ping()
                return
            except (httpx.HTTPError, ErrorResponse) as exc:
                if time.monotonic() > deadline:
                    raise ServiceNotStarted(
                        f"the service did not answer at {url} within {timeout_s:.0f} s: "
                        f"{exc}{where}"
                    ) from exc
                time.sleep(0.2)

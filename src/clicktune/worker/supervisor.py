"""`clicktune up`: run the API, a worker (and whatever else is listed) as child processes.

SIGINT/SIGTERM are forwarded to every child as SIGTERM; a child still running after the grace
period is killed. A child that exits while nobody asked it to stops the others, and `up` exits
non-zero: a half-running service is worse than a stopped one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType

from clicktune.logs import get_logger
from clicktune.settings import Settings

log = get_logger(__name__)

POLL_S = 0.2
STOP_GRACE_S = 30.0


@dataclass(frozen=True)
class ChildSpec:
    """One supervised process: a name for the logs, its command line, extra environment."""

    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)


def clicktune_command(*args: str) -> list[str]:
    """The `clicktune` command of this very installation (same interpreter, same environment)."""
    return [sys.executable, "-m", "clicktune", *args]


def up_children(settings: Settings) -> list[ChildSpec]:
    """What `clicktune up` runs: the API, one worker and, for a local store, the MLflow UI.

    The children inherit this process's environment, so they read the same `CLICKTUNE_*`
    settings; `settings` is for children whose command line needs a value (a port).
    """
    from clicktune.tracking.client import is_remote
    from clicktune.tracking.server import MLFLOW_UI_ENV, mlflow_ui_command

    children = [
        ChildSpec("api", clicktune_command("api")),
        ChildSpec("worker", clicktune_command("worker")),
    ]
    if not is_remote(settings.effective_mlflow_tracking_uri):
        children.append(ChildSpec("mlflow", mlflow_ui_command(settings), env=MLFLOW_UI_ENV))
    return children


def supervise(children: Sequence[ChildSpec], stop_grace_s: float = STOP_GRACE_S) -> int:
    """Run the children until a signal (exit 0) or an unexpected child exit (exit 1)."""
    stop_signal: list[int] = []

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        stop_signal.append(signum)

    previous = {
        signum: signal.signal(signum, _on_signal) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    running: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for child in children:
            running[child.name] = subprocess.Popen(child.command, env={**os.environ, **child.env})
            log.info("child_started", child=child.name, pid=running[child.name].pid)
        while not stop_signal:
            exited = {name: p.returncode for name, p in running.items() if p.poll() is not None}
            if exited:
                for name, code in exited.items():
                    log.error("child_exited_unexpectedly", child=name, exit_code=code)
                _stop_all(running, stop_grace_s)
                return 1
            time.sleep(POLL_S)
        log.info("stopping", signal=signal.Signals(stop_signal[0]).name)
        _stop_all(running, stop_grace_s)
        return 0
    finally:
        _stop_all(running, stop_grace_s)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _stop_all(running: dict[str, subprocess.Popen[bytes]], grace_s: float) -> None:
    """SIGTERM every child still running, wait up to `grace_s`, then SIGKILL the rest."""
    alive = {name: p for name, p in running.items() if p.poll() is None}
    for p in alive.values():
        p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for name, p in alive.items():
        try:
            p.wait(timeout=max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            log.warning("child_killed", child=name, pid=p.pid, grace_s=grace_s)
            p.kill()
            p.wait()
        log.info("child_stopped", child=name, exit_code=p.returncode)

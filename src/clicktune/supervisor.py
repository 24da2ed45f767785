"""`clicktune up`: run the API, a worker (and whatever else is listed) as child processes.

A child that dies is restarted after a backoff while the others keep serving; one that keeps
dying (`RestartPolicy`) stops the service, and `up` exits non-zero. Each child runs in its own
process group, so what it started itself (the MLflow UI's server process) goes with it: no
orphan keeps a port. SIGINT/SIGTERM are forwarded to every group as SIGTERM; a group still
running after the grace period is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType

from clicktune.logs import get_logger
from clicktune.settings import Settings

log = get_logger(__name__)

POLL_S = 0.2
STOP_GRACE_S = 30.0
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ChildSpec:
    """One supervised process: a name for the logs, its command line, extra environment, and
    the prefixes of this process's variables it must not inherit (secrets it has no use for)."""

    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict, repr=False)
    withheld: tuple[str, ...] = ()

    def environment(self) -> dict[str, str]:
        inherited = {
            name: value for name, value in os.environ.items() if not name.startswith(self.withheld)
        }
        return {**inherited, **self.env}


@dataclass(frozen=True)
class RestartPolicy:
    """A dead child is started again after `backoff_s`, doubled for each restart still within
    `window_s` (at most `max_backoff_s`); more than `max_restarts` within the window gives up."""

    max_restarts: int = 5
    window_s: float = 600.0
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0


def clicktune_command(*args: str) -> list[str]:
    """The `clicktune` command of this very installation (same interpreter, same environment)."""
    return [sys.executable, "-m", "clicktune", *args]


def up_children(settings: Settings) -> list[ChildSpec]:
    """What `clicktune up` runs: the API, one worker and, for a local store, the MLflow UI.

    The children inherit this process's environment, so they read the same `CLICKTUNE_*`
    settings, but for what they do not need: the worker serves nothing and gets no API keys;
    the MLflow UI gets none of the `CLICKTUNE_*` variables (its store comes in its own `env`).
    A child's own configuration travels in its `env`, never on its command line.
    """
    from clicktune.tracking.client import is_remote
    from clicktune.tracking.server import mlflow_ui_command

    children = [
        ChildSpec("api", clicktune_command("api")),
        ChildSpec("worker", clicktune_command("worker"), withheld=("CLICKTUNE_API_KEY",)),
    ]
    if not is_remote(settings.effective_mlflow_tracking_uri):
        command, env = mlflow_ui_command(settings)
        children.append(ChildSpec("mlflow", command, env=env, withheld=("CLICKTUNE_",)))
    return children


class _Child:
    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts: deque[float] = deque()
        self.start_at: float | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.spec.command,
            env=self.spec.environment(),
            start_new_session=True,
            preexec_fn=_terminate_with_parent if sys.platform == "linux" else None,
        )
        self.start_at = None
        log.info("child_started", child=self.spec.name, pid=self.process.pid)

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def kill_group(self, signum: int) -> None:
        """Signal the child's whole process group (what it started, even after it died)."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signum)


def _terminate_with_parent() -> None:
    """In the child before it starts (Linux): SIGTERM when `up` dies, even by SIGKILL, so no
    child outlives it holding a port."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def supervise(
    children: Sequence[ChildSpec],
    stop_grace_s: float = STOP_GRACE_S,
    policy: RestartPolicy | None = None,
) -> int:
    """Run the children until a signal (exit 0) or a child that keeps dying (exit 1)."""
    policy = policy or RestartPolicy()
    stop_signal: list[int] = []

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        stop_signal.append(signum)

    previous = {
        signum: signal.signal(signum, _on_signal) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    running = [_Child(spec) for spec in children]
    try:
        for child in running:
            child.start()
        while not stop_signal:
            for child in running:
                if not _keep_alive(child, policy):
                    return 1
            time.sleep(POLL_S)
        log.info("stopping", signal=signal.Signals(stop_signal[0]).name)
        return 0
    finally:
        _stop_all(running, stop_grace_s)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _keep_alive(child: _Child, policy: RestartPolicy) -> bool:
    """Notice a death, schedule the restart, start it when due; False: give up."""
    now = time.monotonic()
    if child.start_at is not None:
        if now >= child.start_at:
            child.start()
        return True
    code = child.exited()
    if code is None:
        return True
    child.kill_group(signal.SIGKILL)
    while child.restarts and child.restarts[0] < now - policy.window_s:
        child.restarts.popleft()
    if len(child.restarts) >= policy.max_restarts:
        log.error(
            "child_keeps_dying",
            child=child.spec.name,
            exit_code=code,
            restarts=len(child.restarts),
            window_s=policy.window_s,
        )
        return False
    delay = min(policy.backoff_s * 2 ** len(child.restarts), policy.max_backoff_s)
    child.restarts.append(now)
    child.start_at = now + delay
    log.error(
        "child_exited_unexpectedly",
        child=child.spec.name,
        exit_code=code,
        restart_in_s=delay,
        restart=len(child.restarts),
    )
    return True


def _stop_all(running: Sequence[_Child], grace_s: float) -> None:
    """SIGTERM every child's group, wait up to `grace_s`, then SIGKILL what is left."""
    alive = [(c, c.process) for c in running if c.process is not None and c.exited() is None]
    for child, _ in alive:
        child.kill_group(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for child, process in alive:
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            log.warning("child_killed", child=child.spec.name, pid=process.pid, grace_s=grace_s)
        log.info("child_stopped", child=child.spec.name, exit_code=process.poll())
    for child in running:
        child.kill_group(signal.SIGKILL)
        if child.process is not None:
            child.process.wait()

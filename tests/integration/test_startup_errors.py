"""A data dir that cannot be written, a database or an MLflow store that does not answer: `up`,
`api` and `worker` refuse to start with one line and exit 2, at once, with no secret shown."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

UNREACHABLE = "127.0.0.1:9"


def start(command: str, tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKTUNE_")}
    env["CLICKTUNE_DATA_DIR"] = str(tmp_path / "data")
    env.update({f"CLICKTUNE_{name.upper()}": value for name, value in settings.items()})
    return subprocess.run(
        [sys.executable, "-m", "clicktune", command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("command", ["up", "api", "worker"])
def test_stores_that_cannot_serve_are_one_line(command: str, tmp_path: Path) -> None:
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    cases = [
        ({"data_dir": str(not_a_folder)}, f"the data dir {not_a_folder} cannot be written"),
        (
            {
                "database_url": f"postgresql+psycopg://clicktune:pa55word@{UNREACHABLE}/db",
                "single_host": "1",
            },
            f"the database postgresql+psycopg://clicktune:***@{UNREACHABLE}/db does not answer",
        ),
        (
            {"mlflow_tracking_uri": f"http://{UNREACHABLE}"},
            f"the MLflow store http://{UNREACHABLE} does not answer",
        ),
    ]
    for settings, problem in cases:
        started = time.monotonic()
        result = start(command, tmp_path, **settings)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith(f"Refusing to start: {problem}"), result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert "pa55word" not in result.stderr + result.stdout
        assert time.monotonic() - started < 30


def test_a_bad_setting_is_one_line_without_its_value(tmp_path: Path) -> None:
    keys = "admin:0123456789abcdef-secret,bogus"
    for command in ("config", "api"):
        result = start(command, tmp_path, api_keys=keys)
        assert result.returncode == 2
        assert result.stderr == (
            "Refusing to start: CLICKTUNE_API_KEYS: CLICKTUNE_API_KEYS entry 2 is not "
            "`role:key` with role admin or ingest\n"
        )

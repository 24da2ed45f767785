"""The CLI refuses to expose an open service and never prints a secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CLICKTUNE = str(Path(sys.executable).parent / "clicktune")
PASSWORD = "pw-Hq72-x"
KEY = "adm-Zt31-k8Lm4-vy"


def run_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLICKTUNE_")}
    return subprocess.run(
        [CLICKTUNE, *args],
        env={**clean, "CLICKTUNE_DATA_DIR": str(tmp_path / "data"), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_config_hides_keys_and_passwords(tmp_path: Path) -> None:
    shown = run_cli(
        tmp_path,
        "config",
        CLICKTUNE_API_KEYS=f"admin:{KEY}",
        CLICKTUNE_DATABASE_URL=f"postgresql+psycopg://ct:{PASSWORD}@db:5432/ct",
        CLICKTUNE_MLFLOW_TRACKING_URI=f"postgresql://ml:{PASSWORD}@db:5432/ml",
    )
    assert shown.returncode == 0, shown.stderr
    config = json.loads(shown.stdout)
    assert config["CLICKTUNE_DATABASE_URL"] == "postgresql+psycopg://ct:***@db:5432/ct"
    assert config["CLICKTUNE_MLFLOW_TRACKING_URI"] == "postgresql://ml:***@db:5432/ml"
    assert config["CLICKTUNE_API_KEYS"] == "***"
    assert config["CLICKTUNE_API_KEY"] == "***"  # the first admin key, as simulate sends it
    assert config["CLICKTUNE_DEVICE"] in {"cpu (the default)", "cuda (the default)"}
    assert config["CLICKTUNE_DATA_DIR"] == str((tmp_path / "data").resolve())
    assert PASSWORD not in shown.stdout + shown.stderr and KEY not in shown.stdout + shown.stderr


def test_an_open_api_is_not_exposed_unless_meant(tmp_path: Path) -> None:
    for command in ("api", "up"):
        refused = run_cli(tmp_path, command, CLICKTUNE_HOST="0.0.0.0")
        assert refused.returncode == 2
        assert "CLICKTUNE_ALLOW_ANONYMOUS=1" in refused.stderr
    ui = run_cli(tmp_path, "up", CLICKTUNE_API_KEYS=f"admin:{KEY}", CLICKTUNE_MLFLOW_HOST="0.0.0.0")
    assert ui.returncode == 2 and "the MLflow UI" in ui.stderr
    assert KEY not in ui.stdout + ui.stderr


def test_version(tmp_path: Path) -> None:
    shown = run_cli(tmp_path, "--version")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("clicktune ")


def test_a_shared_database_with_models_on_this_host_is_refused(tmp_path: Path) -> None:
    shared = "postgresql+psycopg://ct@db.internal:5432/ct"
    for command in ("worker", "api", "up"):
        refused = run_cli(tmp_path, command, CLICKTUNE_DATABASE_URL=shared)
        assert refused.returncode == 2, (command, refused.stderr)
        assert "CLICKTUNE_SINGLE_HOST=1" in refused.stderr
        assert "CLICKTUNE_MLFLOW_TRACKING_URI" in refused.stderr
    local_file = run_cli(
        tmp_path, "worker", CLICKTUNE_DATABASE_URL=shared, CLICKTUNE_MLFLOW_TRACKING_URI="/srv/ml"
    )
    assert local_file.returncode == 2


def test_options_win_over_variables_and_are_checked_like_them(tmp_path: Path) -> None:
    exposed = run_cli(tmp_path, "api", "--host", "0.0.0.0", CLICKTUNE_HOST="127.0.0.1")
    assert exposed.returncode == 2
    assert "the API on 0.0.0.0 without CLICKTUNE_API_KEYS" in exposed.stderr
    bad_device = run_cli(tmp_path, "worker", "--device", "gpu")
    assert bad_device.returncode == 2
    assert bad_device.stderr.startswith("Refusing to start: CLICKTUNE_DEVICE: ")
    assert "Traceback" not in bad_device.stderr

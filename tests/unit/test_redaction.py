"""Keys and passwords never show: not in URLs shown, not in log lines."""

from __future__ import annotations

import pytest
import structlog
from pydantic import SecretStr

from clicktune.logs import configure_logging, get_logger
from clicktune.settings import Settings, redact, redact_url


def test_urls_lose_their_password_and_keep_the_rest() -> None:
    assert redact_url("postgresql+psycopg://ct:s3cr%40t@db:5432/ct") == (
        "postgresql+psycopg://ct:***@db:5432/ct"
    )
    assert redact_url("sqlite:////data/clicktune.db") == "sqlite:////data/clicktune.db"
    assert redact_url("https://user@mlflow:5000") == "https://user@mlflow:5000"


def test_settings_know_their_secrets() -> None:
    settings = Settings(
        api_keys=SecretStr("admin:adm-key-1-abcdefgh,ingest:ing-key-2-abcdefgh"),
        database_url="postgresql://ct:s3cr%40t@db/ct",
        mlflow_tracking_uri="postgresql://ml:pw-ml-9@db/ml",
    )
    assert set(settings.secrets) == {
        "adm-key-1-abcdefgh",
        "ing-key-2-abcdefgh",
        "s3cr%40t",
        "s3cr@t",
        "pw-ml-9",
    }
    assert settings.client_api_key == "adm-key-1-abcdefgh"
    assert (
        redact("failed for s3cr@t at adm-key-1-abcdefgh", settings.secrets)
        == "failed for *** at ***"
    )


def test_log_lines_never_show_a_secret(capsys: pytest.CaptureFixture[str]) -> None:
    before = structlog.get_config()
    configure_logging(secrets=["pw-ml-9"])
    try:
        get_logger("test").warning(
            "store_unreachable", uri="postgresql://ml:pw-ml-9@db/ml", detail={"pw": "pw-ml-9"}
        )
        line = capsys.readouterr().err
    finally:
        structlog.configure(**before)
    assert "store_unreachable" in line and "postgresql://ml:***@db/ml" in line
    assert "pw-ml-9" not in line

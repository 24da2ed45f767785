"""Every setting is a `CLICKTUNE_*` environment variable; this is the one place they are read."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal, get_args
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ApiRole = Literal["admin", "ingest"]
"""`admin` may call every route; `ingest` the clickstream writes and POST /embeddings."""


class Settings(BaseSettings):
    """The effective configuration of one clicktune instance (API, worker or both)."""

    model_config = SettingsConfigDict(env_prefix="CLICKTUNE_", extra="ignore")

    data_dir: Path = Field(
        Path("./clicktune-data"), description="Embedded database, MLflow store, work folders."
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default SQLite in the data dir."
    )
    host: str = Field("127.0.0.1", description="Where the API listens.")
    port: int = Field(5000, description="API port.")
    api_keys: SecretStr | None = Field(
        None,
        description="`role:key` pairs, comma-separated (roles `admin`, `ingest`); unset: the API "
        "is open.",
    )
    allow_anonymous: bool = Field(
        False, description="Let `up` and `api` listen on a non-loopback address without keys."
    )
    api_key: SecretStr | None = Field(
        None,
        description="The key `simulate` and `demo` send; default the first `admin` key of "
        "CLICKTUNE_API_KEYS.",
    )
    public_url: str | None = Field(None, description="Base of absolute URLs the API hands out.")
    mlflow_tracking_uri: str | None = Field(
        None, description="MLflow store or server; default SQLite in the data dir."
    )
    single_host: bool = Field(
        False,
        description="Every process runs on this host: a shared database may then keep models "
        "in a host-local MLflow store.",
    )
    mlflow_host: str = Field(
        "127.0.0.1", description="Where `clicktune up` serves the (read-only) MLflow UI."
    )
    mlflow_port: int = Field(5001, description="Where `clicktune up` serves the MLflow UI.")
    plugins_path: Path | None = Field(
        None, description="Folder of extra fine-tuning method plugins."
    )
    clickstream_max_age_s: float = Field(
        43200, description="Oldest created_at accepted on live endpoints; 0 disables."
    )

    max_search_results: int = Field(1000, description="Most search_results in one session.")
    max_events_per_request: int = Field(1000, description="Most events in one events request.")
    max_bulk_items: int = Field(10000, description="Most items in one bulk request.")
    max_meta_bytes: int = Field(
        65536, description="Largest meta/metadata object, in bytes of JSON."
    )
    max_request_bytes: int = Field(
        64 * 1024 * 1024, ge=1, description="Largest request body (413 above it)."
    )
    max_session_bytes: int = Field(
        1024 * 1024,
        ge=1,
        description="Largest body of a session endpoint, and largest line of an NDJSON import.",
    )
    max_sessions_batch_bytes: int = Field(
        16 * 1024 * 1024, ge=1, description="Largest body of POST /clickstream/sessions."
    )
    max_header_bytes: int = Field(
        65536,
        ge=1024,
        description="Largest request line and headers together (431 above it).",
    )
    max_headers: int = Field(100, ge=1, description="Most header fields in one request (431).")
    header_timeout_s: float = Field(
        10.0, gt=0, description="Longest a request's head may take to arrive (408 after it)."
    )
    body_idle_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Longest pause while a request body is read (the connection closes).",
    )

    device: str | None = Field(
        None,
        pattern=r"^(cpu|cuda(:\d+)?)$",
        description="The one device a worker trains on: cpu, cuda or cuda:N; default the first "
        "CUDA device, else the CPU.",
    )
    worker_lease_s: float = Field(
        60.0, description="How long a claimed task stays leased without a heartbeat."
    )
    worker_heartbeat_s: float = Field(
        5.0, description="How often a worker renews its lease and checks for cancel."
    )
    worker_poll_s: float = Field(
        1.0, description="How often an idle worker looks for a pending task."
    )
    worker_max_attempts: int = Field(
        3, description="Claims of one task before it ends `error` / `worker_lost`."
    )
    worker_online_s: float = Field(
        30.0, description="A worker seen within this many seconds counts as online in /health."
    )

    embeddings_max_inputs: int = Field(
        2048, description="Most texts in one POST /embeddings request."
    )
    embeddings_max_chars: int = Field(
        32768, ge=1, description="Longest text in a POST /embeddings request, in characters."
    )
    embeddings_champion_ttl_s: float = Field(
        10.0,
        description="How long /embeddings trusts its view of a method's champion before checking.",
    )
    embeddings_cached_models: int = Field(
        4, description="Models /embeddings keeps loaded (least recently used ones go first)."
    )
    model_cache_bytes: int = Field(
        10 * 1024**3,
        ge=0,
        description="Largest size of downloaded models kept; least recently used go first.",
    )
    challenger_share: float = Field(
        0.5, ge=0.0, le=1.0, description="Share of users `<method>@ab` sends to the challenger."
    )
    judged_max_items: int = Field(
        50000,
        ge=1,
        description="Most catalog items a judged set ranks per model; above it, a seeded pool.",
    )
    max_judgments: int = Field(100000, ge=1, description="Most judgments in one judged set.")

    log_level: str = Field("INFO", description="Log level of every process.")
    log_json: bool = Field(False, description="Logs as JSON lines instead of key=value text.")
    access_log: bool = Field(False, description="The API logs a line per request (uvicorn's).")

    @field_validator("api_keys")
    @classmethod
    def _check_api_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_api_keys(value.get_secret_value())
        return value

    @property
    def api_key_roles(self) -> dict[str, ApiRole]:
        """Each key and its role; empty when no keys are set (the API is open)."""
        if self.api_keys is None:
            return {}
        return parse_api_keys(self.api_keys.get_secret_value())

    @property
    def client_api_key(self) -> str | None:
        """The key this installation's own clients (simulate, demo) send."""
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        admin = [key for key, role in self.api_key_roles.items() if role == "admin"]
        return admin[0] if admin else None

    @property
    def secrets(self) -> list[str]:
        """Every secret value this configuration holds, for redaction."""
        values = list(self.api_key_roles)
        if self.api_key is not None:
            values.append(self.api_key.get_secret_value())
        for url in (self.database_url, self.mlflow_tracking_uri):
            password = urlsplit(url or "").password
            if password:
                values.extend({password, unquote(password)})
        return [v for v in values if v]

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'clicktune.db').resolve()}"

    @property
    def effective_mlflow_tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.data_dir / 'mlflow.db').resolve()}"

    def host_local_models(self) -> str | None:
        """Why this configuration would keep models on one host's disk while its database is
        shared with other hosts; None when it does not (or `single_host` says all is here)."""
        if self.single_host or self.effective_database_url.startswith("sqlite"):
            return None
        scheme = urlsplit(self.effective_mlflow_tracking_uri).scheme
        if scheme in REMOTE_TRACKING_SCHEMES:
            return None
        where = (
            "the default MLflow store in the data dir"
            if self.mlflow_tracking_uri is None
            else f"CLICKTUNE_MLFLOW_TRACKING_URI ({scheme or 'a path'}: a store without a server)"
        )
        return (
            f"The database is shared (CLICKTUNE_DATABASE_URL is not SQLite), but models would go "
            f"to {where}, on this host's disk: a worker or API on another host could not load "
            "them. Point CLICKTUNE_MLFLOW_TRACKING_URI at an MLflow server that serves artifacts "
            "(http://…), or set CLICKTUNE_SINGLE_HOST=1 if every process runs on this host."
        )

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return (self.data_dir / "mlartifacts").resolve()

    @property
    def work_dir(self) -> Path:
        """Temporary per-task folders (starting model, checkpoints); removed when a task ends."""
        return (self.data_dir / "work").resolve()

    @property
    def effective_public_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{self.host}:{self.port}"

    def ensure_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)


REMOTE_TRACKING_SCHEMES = frozenset({"http", "https", "databricks"})
"""Tracking URIs that name a server every host reaches (models travel through it)."""


MIN_API_KEY_CHARS = 16


def parse_api_keys(value: str) -> dict[str, ApiRole]:
    """`admin:k1,ingest:k2` as `{k1: admin, k2: ingest}`. Errors name the entry by position,
    never its text (it holds a key)."""
    roles: dict[str, ApiRole] = {}
    positions: dict[str, int] = {}
    for position, entry in enumerate(value.split(","), start=1):
        role, _, key = entry.strip().partition(":")
        key = key.strip()
        if role not in get_args(ApiRole) or not key:
            raise ValueError(
                f"CLICKTUNE_API_KEYS entry {position} is not `role:key` with role admin or ingest"
            )
        if len(key) < MIN_API_KEY_CHARS:
            raise ValueError(
                f"CLICKTUNE_API_KEYS entry {position} has a key of fewer than {MIN_API_KEY_CHARS} "
                "characters: too easy to guess (`openssl rand -hex 24` makes a good one)"
            )
        if key in positions:
            raise ValueError(
                f"CLICKTUNE_API_KEYS entries {positions[key]} and {position} have the same key: "
                "a key has one role"
            )
        positions[key] = position
        roles[key] = role  # type: ignore[assignment]
    return roles


def redact_url(url: str) -> str:
    """The URL with its password (if any) replaced by `***`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))


def redact(text: str, secrets: list[str]) -> str:
    """`text` with every secret value replaced by `***`."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@lru_cache
def get_settings() -> Settings:
    return Settings()

"""deploy/compose.yaml, the multi-machine topology users start, checked against the settings.

No Docker needed: the file is parsed and its variables interpolated from deploy/.env.example the
way Compose does it, then every service's configuration is checked against `Settings` and the
rules of multi-machine mode (docs/deployment.md).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
import shlex
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from clicktune.settings import Settings, parse_api_keys

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE_FILE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
DOCKERFILE = "deploy/Dockerfile"
SETTING_VARIABLES = {f"CLICKTUNE_{name.upper()}" for name in Settings.model_fields}

Service = dict[str, Any]

# Compose's interpolation: `$$` (a literal `$`), `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
# `${VAR:?error}`, `${VAR?error}`, and a bare `$VAR`.
SUBSTITUTION = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)"
)


def substituted_names(text: str) -> set[str]:
    """The variables a compose file's text takes from the environment (not `$$` escapes)."""
    return {
        match["braced"] or match["bare"]
        for match in SUBSTITUTION.finditer(text)
        if match[0] != "$$"
    }


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """`value` with its substitutions replaced as Compose does; a required one missing fails."""

    def replace(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name = match["braced"] or match["bare"]
        op, arg = match["op"], match["arg"]
        present = env.get(name)
        unset_or_empty = not present if op and op.startswith(":") else present is None
        if op and op.endswith("?") and unset_or_empty:
            raise AssertionError(f"compose needs {name}: {arg}")
        if op and op.endswith("-") and unset_or_empty:
            return arg
        return present or ""

    return SUBSTITUTION.sub(replace, value)


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    """Every string in a parsed compose file interpolated (keys stay as written)."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    return node


@cache
def env_example() -> dict[str, str]:
    """`NAME=value` lines of deploy/.env.example (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"not NAME=value in .env.example: {line!r}"
            values[name.strip()] = value.strip()
    return values


@cache
def raw_services() -> dict[str, Service]:
    """The services as written (anchors and merge keys resolved, nothing interpolated)."""
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


@cache
def services() -> dict[str, Service]:
    """The services as Compose runs them with deploy/.env.example as the .env file."""
    return interpolate_tree(raw_services(), env_example())


def environment(service: Service) -> dict[str, str | None]:
    """A service's `environment`, written as a mapping or as a `NAME=value` list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.partition("=") for item in env)
        return {name: (value if sep else None) for name, sep, value in pairs}
    return {name: None if value is None else str(value) for name, value in env.items()}


def command(service: Service) -> list[str]:
    """A service's command as a list (Compose also takes a shell-style string)."""
    value = service.get("command") or []
    return shlex.split(value) if isinstance(value, str) else [str(part) for part in value]


def option(args: list[str], name: str) -> str | None:
    """The value of `--name value` or `--name=value` in a command line."""
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(f"{name}="):
            return arg.partition("=")[2]
    return None


def is_clicktune(service: Service) -> bool:
    """Built from deploy/Dockerfile's clicktune image (its entrypoint is `clicktune`)."""
    build = service.get("build")
    return (
        isinstance(build, dict)
        and build.get("dockerfile") == DOCKERFILE
        and build.get("target", "clicktune") == "clicktune"
        and "entrypoint" not in service
    )


def clicktune_services(all_services: Mapping[str, Service]) -> dict[str, Service]:
    """The services that run a clicktune process (API or worker)."""
    return {name: s for name, s in all_services.items() if is_clicktune(s)}


def runs(all_services: Mapping[str, Service], subcommand: str) -> dict[str, Service]:
    """The clicktune services that run `clicktune <subcommand>`."""
    return {
        name: s
        for name, s in clicktune_services(all_services).items()
        if command(s)[:1] == [subcommand]
    }


def mlflow_server() -> tuple[str, Service]:
    """The one service that runs `mlflow server`."""
    found = [(name, s) for name, s in services().items() if command(s)[:2] == ["mlflow", "server"]]
    assert len(found) == 1, f"expected one `mlflow server` service, found {len(found)}"
    return found[0]


def mounts(service: Service) -> dict[str, str]:
    """A service's volumes as {target: source}, from the short or the long syntax."""
    result: dict[str, str] = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            result[rest.partition(":")[0]] = source
        else:
            result[volume["target"]] = volume.get("source", "")
    return result


def published_host_ips(service: Service) -> list[str | None]:
    """The host address of each published port; None where it is every interface."""
    ips: list[str | None] = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            ips.append(port.get("host_ip") or None)
            continue
        spec = str(port).partition("/")[0]
        if spec.startswith("["):  # [::1]:5001:5000
            ips.append(spec[1 : spec.index("]")])
        else:
            parts = spec.split(":")
            ips.append(parts[0] if len(parts) == 3 and parts[0] else None)
    return ips


def gpu_device_ids(service: Service) -> list[str]:
    """The NVIDIA GPUs a service reserves (`deploy.resources.reservations.devices`)."""
    reservations = service.get("deploy", {}).get("resources", {}).get("reservations", {})
    ids: list[str] = []
    for device in reservations.get("devices") or []:
        if device.get("driver") == "nvidia" and "gpu" in device.get("capabilities", []):
            ids.extend(str(device_id) for device_id in device.get("device_ids") or [])
    return ids


def settings_of(service: Service, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The `Settings` a clicktune process builds from this service's environment alone."""
    for name in SETTING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment(service).items():
        if name.startswith("CLICKTUNE_") and value is not None:
            monkeypatch.setenv(name, value)
    return Settings()


def test_every_clicktune_variable_is_a_setting() -> None:
    unknown = {
        f"{name}: {variable}"
        for name, service in raw_services().items()
        for variable in environment(service)
        if variable.startswith("CLICKTUNE_") and variable not in SETTING_VARIABLES
    }
    unknown |= {
        f".env: {variable}"
        for variable in substituted_names(COMPOSE_FILE.read_text()) | set(env_example())
        if variable.startswith("CLICKTUNE_") and variable not in SETTING_VARIABLES
    }
    assert unknown == set()


def test_clicktune_services_share_the_database_and_a_tracking_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ours = clicktune_services(raw_services())
    assert set(runs(raw_services(), "api")) and set(runs(raw_services(), "worker"))
    database_urls = {environment(s).get("CLICKTUNE_DATABASE_URL") for s in ours.values()}
    assert len(database_urls) == 1 and None not in database_urls
    for name, service in clicktune_services(services()).items():
        env = environment(service)
        assert "CLICKTUNE_SINGLE_HOST" not in env, name
        assert (env.get("CLICKTUNE_MLFLOW_TRACKING_URI") or "").startswith("http://"), name
        settings = settings_of(service, monkeypatch)
        assert settings.host_local_models() is None, name  # `api`/`worker` would refuse


def test_the_database_url_names_the_postgres_service() -> None:
    postgres = environment(services()["postgres"])
    for name, service in clicktune_services(services()).items():
        url = urlsplit(environment(service)["CLICKTUNE_DATABASE_URL"] or "")
        assert url.scheme == "postgresql+psycopg", name
        assert (url.hostname, url.port) == ("postgres", 5432), name
        assert url.username == postgres["POSTGRES_USER"], name
        assert url.password == postgres["POSTGRES_PASSWORD"], name
        assert url.path.lstrip("/") == postgres["POSTGRES_DB"], name


def test_the_tracking_uri_names_the_mlflow_server_which_accepts_its_host() -> None:
    name, mlflow = mlflow_server()
    args = command(mlflow)
    # MLflow answers 403 to a Host header it does not allow; its default allows only localhost
    # and private addresses, not the service name the clicktune containers use.
    allowed = (option(args, "--allowed-hosts") or "").split(",")
    for service_name, service in clicktune_services(services()).items():
        url = urlsplit(environment(service)["CLICKTUNE_MLFLOW_TRACKING_URI"] or "")
        assert url.hostname == name, service_name
        assert str(url.port) == option(args, "--port"), service_name
        assert any(
            fnmatch.fnmatch(url.netloc, host) if "*" in host else url.netloc == host
            for host in allowed
        ), f"{service_name}: Host {url.netloc} not in mlflow's --allowed-hosts {allowed}"


def test_every_clicktune_service_has_its_own_data_volume() -> None:
    sources: dict[str, str] = {}
    for name, service in clicktune_services(services()).items():
        data_dir = environment(service).get("CLICKTUNE_DATA_DIR")
        assert data_dir, f"{name}: CLICKTUNE_DATA_DIR not set"
        source = mounts(service).get(data_dir)
        assert source, f"{name}: nothing mounted at {data_dir}"
        assert source not in sources, f"{name} shares {source} with {sources.get(source)}"
        sources[source] = name


def test_the_api_listens_on_all_interfaces_with_keys_from_the_env_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    apis = runs(raw_services(), "api")
    assert apis
    for name in apis:
        raw = environment(raw_services()[name])
        assert re.fullmatch(r"\$\{CLICKTUNE_API_KEYS:\?[^}]*\}", raw["CLICKTUNE_API_KEYS"] or "")
        service = services()[name]
        assert environment(service)["CLICKTUNE_HOST"] == "0.0.0.0"
        settings = settings_of(service, monkeypatch)
        assert settings.api_keys is not None
        roles = set(parse_api_keys(settings.api_keys.get_secret_value()).values())
        assert roles == {"admin", "ingest"}, name


def test_each_worker_reserves_its_own_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    workers = runs(services(), "worker")
    assert len(workers) >= 2
    device_ids: list[str] = []
    for name, service in workers.items():
        ids = gpu_device_ids(service)
        assert len(ids) == 1, f"{name}: one GPU per worker, reserves {ids}"
        device_ids += ids
        # The container sees only the reserved GPU, as device 0.
        assert settings_of(service, monkeypatch).device in (None, "cuda", "cuda:0"), name
    assert len(set(device_ids)) == len(device_ids), f"workers share a GPU: {device_ids}"


def test_the_mlflow_server_proxies_artifacts_to_the_bucket() -> None:
    _, mlflow = mlflow_server()
    args = command(mlflow)
    assert "--serve-artifacts" in args
    assert option(args, "--host") == "0.0.0.0"
    destination = urlsplit(option(args, "--artifacts-destination") or "")
    assert destination.scheme == "s3"
    env = environment(mlflow)
    assert (env.get("MLFLOW_BACKEND_STORE_URI") or "").startswith("postgresql")
    assert env.get("MLFLOW_S3_ENDPOINT_URL")
    assert env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY")
    # The bucket exists before the server starts: a one-shot `mc mb` creates it.
    creators = [
        name
        for name, service in services().items()
        if command(service)[:1] == ["mb"]
        and any(arg.endswith(f"/{destination.hostname}") for arg in command(service))
    ]
    assert creators, f"no service creates the bucket {destination.hostname}"
    assert set(creators) & set(mlflow.get("depends_on") or {})


def test_every_substituted_variable_is_in_the_env_example() -> None:
    used = substituted_names(COMPOSE_FILE.read_text())
    documented = set(env_example())
    assert used - documented == set(), "add these to deploy/.env.example"
    assert documented - used == set(), "deploy/.env.example lists variables compose never uses"


def test_only_the_api_is_published_beyond_loopback() -> None:
    apis = set(runs(services(), "api"))
    for name, service in services().items():
        if name in apis:
            continue
        for host_ip in published_host_ips(service):
            assert host_ip is not None, f"{name} publishes a port on every interface"
            assert ipaddress.ip_address(host_ip).is_loopback, f"{name} publishes on {host_ip}"

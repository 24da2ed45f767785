"""Liveness and component health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import Engine

from clicktune.api.deps import EngineDep, RegistryDep, SettingsDep
from clicktune.api.schemas.service import Health, Ping
from clicktune.settings import Settings, redact
from clicktune.store.engine import check_database, read_transaction
from clicktune.store.workers import workers_seen_since
from clicktune.timeutil import now, to_iso
from clicktune.tracking.client import tracking_health

router = APIRouter(tags=["service"])


@router.get("/ping", response_model=Ping)
def ping() -> Ping:
    return Ping()


@router.get("/health", response_model=Health)
def health(engine: EngineDep, settings: SettingsDep, registry: RegistryDep) -> dict[str, Any]:
    """`degraded` when a component has an error; `warning` (no worker online) is only shown."""
    components: dict[str, Any] = {}
    try:
        with read_transaction(engine) as conn:
            check_database(conn)
        components["database"] = {"status": "ok", "dialect": engine.dialect.name}
    except Exception as exc:  # health reports failures instead of raising them
        message = redact(str(exc), settings.secrets)
        components["database"] = {"status": "error", "message": message}
    components["methods"] = {
        "status": "error" if registry.errors else "ok",
        "loaded": registry.names(),
        "errors": [e.as_dict() for e in registry.errors],
    }
    components["mlflow"] = tracking_health(settings)
    components["workers"] = _workers_health(engine, settings)
    status = "degraded" if any(c["status"] == "error" for c in components.values()) else "ok"
    return {"status": status, "components": components}


def _workers_health(engine: Engine, settings: Settings) -> dict[str, Any]:
    """Workers seen within `worker_online_s` (each records itself every heartbeat period)."""
    try:
        with read_transaction(engine) as conn:
            seen = workers_seen_since(conn, now() - settings.worker_online_s)
    except Exception as exc:  # health reports failures instead of raising them
        return {"status": "error", "message": redact(str(exc), settings.secrets)}
    return {
        "status": "ok" if seen else "warning",
        "online": len(seen),
        "seen": [
            {
                "worker_id": w["worker_id"],
                "hostname": w["hostname"],
                "pid": w["pid"],
                "started_at": to_iso(w["started_at"]),
                "seen_at": to_iso(w["seen_at"]),
            }
            for w in seen
        ],
    }

"""Liveness and component health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy import Engine, text

from clicktune.api.deps import get_engine, get_registry, get_settings
from clicktune.methods.registry import MethodRegistry
from clicktune.settings import Settings
from clicktune.store.engine import read_transaction
from clicktune.store.workers import workers_seen_since
from clicktune.timeutil import now, to_iso
from clicktune.tracking.client import tracking_health

router = APIRouter(tags=["service"])


@router.get("/ping")
def ping() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health")
def health(
    engine: Engine = Depends(get_engine),
    settings: Settings = Depends(get_settings),
    registry: MethodRegistry = Depends(get_registry),
) -> dict[str, Any]:
    """`degraded` when a component has an error; `warning` (no worker online) is only shown."""
    components: dict[str, Any] = {}
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        components["database"] = {"status": "ok", "dialect": engine.dialect.name}
    except Exception as exc:  # health reports failures instead of raising them
        components["database"] = {"status": "error", "message": str(exc)}
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
        return {"status": "error", "message": str(exc)}
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

"""Liveness and component health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy import Engine, text

from clicktune.api.deps import get_engine

router = APIRouter(tags=["service"])


@router.get("/ping")
def ping() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health")
def health(engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    components: dict[str, Any] = {}
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        components["database"] = {"status": "ok", "dialect": engine.dialect.name}
    except Exception as exc:  # health reports failures instead of raising them
        components["database"] = {"status": "error", "message": str(exc)}
    status = "ok" if all(c["status"] == "ok" for c in components.values()) else "degraded"
    return {"status": status, "components": components}

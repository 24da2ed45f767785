"""Liveness and component health."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Ping(BaseModel):
    status: Literal["ok"] = "ok"


class ComponentHealth(BaseModel):
    """One component's state; each component adds what it knows (dialect, workers seen, …)."""

    model_config = ConfigDict(extra="allow")

    status: Literal["ok", "warning", "error"]


class Health(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        description="`degraded` when a component has an error; a warning is only shown."
    )
    components: dict[str, ComponentHealth]

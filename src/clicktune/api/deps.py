"""Request-scoped access to what the app holds, as `Annotated` aliases routes declare.

`async` on purpose: FastAPI runs a plain `def` dependency in the threadpool, a costly hop
for returning an attribute.
"""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine

from clicktune.api.bodies import require_json
from clicktune.api.metrics import ApiMetrics
from clicktune.api.session_writer import SessionWriter
from clicktune.methods.registry import MethodRegistry
from clicktune.settings import Settings
from clicktune.tracking.model_cache import ServedModels

_served_lock = threading.Lock()


async def get_engine(request: Request) -> Engine:
    return request.app.state.engine


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_registry(request: Request) -> MethodRegistry:
    return request.app.state.methods


async def get_metrics(request: Request) -> ApiMetrics:
    return request.app.state.metrics


async def get_session_writer(request: Request) -> SessionWriter:
    return request.app.state.session_writer


async def get_served_models(request: Request) -> ServedModels:
    """The app's model cache, made on first use (so the API starts without torch)."""
    state = request.app.state
    with _served_lock:
        if getattr(state, "served_models", None) is None:
            state.served_models = ServedModels(state.settings)
    return state.served_models


EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[MethodRegistry, Depends(get_registry)]
ServedModelsDep = Annotated[ServedModels, Depends(get_served_models)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]
SessionWriterDep = Annotated[SessionWriter, Depends(get_session_writer)]
JSON_BODY = [Depends(require_json)]
"""`dependencies=` of a route whose body must be JSON (415 otherwise)."""

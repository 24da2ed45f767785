"""Request-scoped access to what the app holds: settings, the database engine, the methods.

`async` on purpose: FastAPI runs a plain `def` dependency in the threadpool, a costly hop
for returning an attribute.
"""

from __future__ import annotations

from fastapi import Request
from sqlalchemy import Engine

from clicktune.methods.registry import MethodRegistry
from clicktune.settings import Settings


async def get_engine(request: Request) -> Engine:
    return request.app.state.engine


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_registry(request: Request) -> MethodRegistry:
    return request.app.state.methods

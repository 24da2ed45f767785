"""Request-scoped access to what the app holds: settings and the database engine."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy import Engine

from clicktune.settings import Settings


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def get_settings(request: Request) -> Settings:
    return request.app.state.settings

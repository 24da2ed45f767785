"""Every route declares what it answers: a pydantic response model (or a file, or no content), so
the OpenAPI document describes it and clients can be generated from it."""

from __future__ import annotations

import typing

from fastapi.responses import FileResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel

from clicktune.api.app import ROUTERS


def _is_schema(annotation: typing.Any) -> bool:
    for part in (annotation, *typing.get_args(annotation)):
        if isinstance(part, type) and issubclass(part, BaseModel):
            return True
    return False


def test_every_route_answers_with_a_declared_schema() -> None:
    undeclared = []
    for router in ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            no_content = route.status_code == 204 and route.response_model is None
            file = route.response_class is FileResponse
            if not (no_content or file or _is_schema(route.response_model)):
                undeclared.append(f"{sorted(route.methods)} {route.path}")
    assert undeclared == []

"""The MLflow UI as `clicktune up` serves it: MLflow's own server app, refusing every write.

Why read-only rather than MLflow's basic-auth app: the worker and the API write to the store
directly (no server in between), so the UI is for watching, and a write through it (an alias
moved, an artifact replaced) would change what the worker trains from or the API serves. Reads
include the few POSTs the UI uses to search; anything else that is not GET answers 403.
"""

from __future__ import annotations

import re

from mlflow.server.fastapi_app import app as mlflow_app
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
READ_POSTS = re.compile(
    r".*/(search|search-datasets|get-latest-versions|batchGetInfos|calculate-filter-correlation"
    r"|traces/metrics)$|/graphql$"
)
"""POSTs that only read (MLflow's GraphQL schema has no writes)."""
NEVER = re.compile(r".*/gateway-proxy$")
"""Reads that reach beyond the store."""


def is_read(method: str, path: str) -> bool:
    if NEVER.match(path):
        return False
    return method in READ_METHODS or (method == "POST" and READ_POSTS.match(path) is not None)


class ReadOnly:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not is_read(scope["method"], scope["path"]):
            refusal = JSONResponse(
                {
                    "error_code": "PERMISSION_DENIED",
                    "message": "The MLflow UI of clicktune is read-only; runs and models change "
                    "through the clicktune API.",
                },
                status_code=403,
            )
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)


app = ReadOnly(mlflow_app)

"""API keys (docs/api.md, Authentication): who may call which route, checked before anything else.

An ASGI middleware rather than a route dependency: FastAPI reads and parses a body before it
runs dependencies, and an unauthenticated request should cost nothing and learn nothing (not
even whether its body was valid JSON).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict, deque
from collections.abc import Mapping

from fastapi.security import HTTPBearer
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from clicktune.api.errors import Forbidden, TooManyFailedAttempts, Unauthorized, error_response
from clicktune.api_paths import API_PREFIX, METRICS_PATH
from clicktune.errors import ClicktuneError
from clicktune.logs import get_logger
from clicktune.settings import ApiRole

log = get_logger(__name__)

OPEN_ROUTES = frozenset({("GET", f"{API_PREFIX}/ping")})
INGEST_ROUTES = frozenset(
    ("POST", f"{API_PREFIX}{path}")
    for path in (
        "/clickstream/session",
        "/clickstream/sessions",
        "/clickstream/session/events",
        "/clickstream/session/irrelevant",
        "/clickstream/interleave",
        "/embeddings",
    )
)
"""What a search backend's `ingest` key may call: write clickstream, embed, interleave."""
DOCUMENTATION_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
"""The API's own description: any known key may read it (when keys are set, the routes it
lists are not for anyone's eyes)."""

bearer = HTTPBearer(
    auto_error=False,
    description="`Authorization: Bearer <key>` with a key of CLICKTUNE_API_KEYS.",
)
"""Documents the scheme in OpenAPI (the Authorize button); `ApiKeyAuth` enforces it."""


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class ApiKeyAuth:
    """`401 unauthorized` without a known key, `403 forbidden` when its role may not call the
    route. Keys are held as digests and looked up by digest, so comparing takes the same time
    whatever the key. No keys: the API is open."""

    def __init__(self, app: ASGIApp, keys: Mapping[str, ApiRole]) -> None:
        self.app = app
        self.roles = {_digest(key): role for key, role in keys.items()}
        self.failures = FailedAttempts()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.roles or not self._guarded(scope):
            await self.app(scope, receive, send)
            return
        route = (scope["method"], scope["path"])
        address = (scope.get("client") or ("unknown",))[0]
        wait_s = self.failures.blocked_for(address)
        if wait_s:
            log.info("request_throttled", method=route[0], path=route[1], client=address)
            refusal = error_response(
                TooManyFailedAttempts(FAILURE_WINDOW_S), headers={"Retry-After": str(wait_s)}
            )
            await refusal(scope, receive, send)
            return
        role = self.roles.get(_digest(_bearer_token(scope)))
        if role is None:
            self.failures.add(address)
            log.info("request_unauthorized", method=route[0], path=route[1], client=address)
            await _refuse(Unauthorized("A valid API key is required."))(scope, receive, send)
        elif (
            role == "ingest" and route not in INGEST_ROUTES and route[1] not in DOCUMENTATION_PATHS
        ):
            log.info("request_forbidden", method=route[0], path=route[1], role=role)
            refusal = Forbidden(f"An {role} key may not call {route[0]} {route[1]}.")
            await _refuse(refusal)(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    @staticmethod
    def _guarded(scope: Scope) -> bool:
        path: str = scope["path"]
        if (scope["method"], path) in OPEN_ROUTES:
            return False
        return (
            path in (METRICS_PATH, API_PREFIX)
            or path in DOCUMENTATION_PATHS
            or path.startswith(f"{API_PREFIX}/")
        )


MAX_FAILURES = 20
FAILURE_WINDOW_S = 60.0
TRACKED_ADDRESSES = 10_000


class FailedAttempts:
    """Requests with an unknown key, by client address: past `MAX_FAILURES` within
    `FAILURE_WINDOW_S`, an address gets `429` for every request (a valid key too, or the answer
    would tell a guess right) until its oldest failure leaves the window. Memory is bounded: the
    least recently failing addresses are forgotten first."""

    def __init__(self) -> None:
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def add(self, address: str) -> None:
        failures = self._failures.pop(address, None) or deque(maxlen=MAX_FAILURES)
        failures.append(time.monotonic())
        self._failures[address] = failures
        if len(self._failures) > TRACKED_ADDRESSES:
            self._failures.popitem(last=False)

    def blocked_for(self, address: str) -> int:
        """Seconds until `address` may try again; 0 when it may now."""
        failures = self._failures.get(address)
        if failures is None or len(failures) < MAX_FAILURES:
            return 0
        left = failures[0] + FAILURE_WINDOW_S - time.monotonic()
        return max(int(left) + 1, 0) if left > 0 else 0


def _bearer_token(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return ""


def _refuse(error: ClicktuneError) -> JSONResponse:
    return error_response(error, headers={"WWW-Authenticate": "Bearer"})

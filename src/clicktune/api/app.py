"""The FastAPI application factory. Importing this module must not import torch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Security
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from clicktune import __version__
from clicktune.api.auth import ApiKeyAuth, bearer
from clicktune.api.bodies import BodySizeLimit
from clicktune.api.errors import install_error_handlers
from clicktune.api.http_protocol import ConnectionLimits, bounded_protocol
from clicktune.api.metrics import ApiMetrics, RequestMetrics
from clicktune.api.paths import PathGuard
from clicktune.api.routers import (
    clickstream,
    comparison,
    embeddings,
    items,
    judgments,
    models,
    service,
    tasks,
)
from clicktune.api.session_writer import SessionWriter
from clicktune.api_paths import API_PREFIX, METRICS_PATH
from clicktune.heap import freeze_startup_heap
from clicktune.logs import get_logger
from clicktune.methods.registry import load_registry
from clicktune.settings import Settings, get_settings
from clicktune.store.engine import make_engine, migrate

log = get_logger(__name__)

ROUTERS = (
    service.router,
    clickstream.router,
    comparison.router,
    items.router,
    judgments.router,
    tasks.router,
    models.router,
    embeddings.router,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.ensure_data_dir()
        engine = make_engine(settings.effective_database_url)
        migrate(engine)
        app.state.engine = engine
        app.state.methods = load_registry(settings)
        writer = app.state.session_writer = SessionWriter(engine, metrics)
        writer.start()
        log.info("api_started", database=engine.url.render_as_string(hide_password=True))
        try:
            yield
        finally:
            writer.stop()
            engine.dispose()

    app = FastAPI(
        title="clicktune",
        version=__version__,
        description="Turn search clickstream into better embedding models.",
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
        dependencies=[Security(bearer)],
    )
    app.state.settings = settings
    metrics = app.state.metrics = ApiMetrics(lambda: getattr(app.state, "engine", None))
    install_error_handlers(app)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_request_bytes,
        limits=body_limits(settings),
        streamed_paths=frozenset({f"{API_PREFIX}/clickstream/import"}),
    )
    app.add_middleware(PathGuard)
    app.add_middleware(ApiKeyAuth, keys=settings.api_key_roles)
    app.add_middleware(RequestMetrics, metrics=metrics)  # outermost: counts refusals too
    for router in ROUTERS:
        app.include_router(router, prefix=API_PREFIX)

    @app.get(METRICS_PATH, tags=["service"], response_class=PlainTextResponse)
    def prometheus_metrics() -> PlainTextResponse:
        """Prometheus text format: requests, sessions and events stored, embeddings served by
        model version, tasks by status, queue depth, task run time (an admin key when keys
        are set)."""
        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def body_limits(settings: Settings) -> dict[str, int]:
    """The paths whose bodies have a limit of their own: one search's worth, or a batch's."""
    one_search = (
        "/clickstream/session",
        "/clickstream/session/events",
        "/clickstream/session/irrelevant",
        "/clickstream/interleave",
    )
    limits = {f"{API_PREFIX}{path}": settings.max_session_bytes for path in one_search}
    limits[f"{API_PREFIX}/clickstream/sessions"] = settings.max_sessions_batch_bytes
    return limits


def serve_api(settings: Settings) -> None:
    """Serve the API in the foreground, each connection bounded in what it may send before the
    application sees a request (`http_protocol`)."""
    import uvicorn

    application = create_app(settings)
    freeze_startup_heap()
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        http=bounded_protocol(
            ConnectionLimits(
                max_head_bytes=settings.max_header_bytes,
                max_headers=settings.max_headers,
                head_timeout_s=settings.header_timeout_s,
                body_idle_timeout_s=settings.body_idle_timeout_s,
            )
        ),
        log_level="info" if settings.access_log else "warning",
        access_log=settings.access_log,
    )

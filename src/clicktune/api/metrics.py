"""Prometheus metrics of an API process (`GET /metrics`): its requests, what it stored and
served, and the task queue as the database has it when scraped.

Counters are per process (Prometheus sums the API processes behind a load balancer); the task
figures come from the shared database, so every process reports the same ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clicktune.api_paths import API_PREFIX
from clicktune.status import TaskStatus
from clicktune.store.engine import read_transaction
from clicktune.store.tasks import task_statistics

UNROUTED = "unrouted"
"""The route label of a request answered before routing (refused keys, oversized bodies)."""


class TaskQueue(Collector):
    """Tasks by status, the queue depth and finished tasks' run time, read at scrape time."""

    def __init__(self, engine: Callable[[], Engine | None]) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        engine = self.engine()
        if engine is None:
            return
        with read_transaction(engine) as conn:
            counts = {count.status: count for count in task_statistics(conn)}
        by_status = GaugeMetricFamily(
            "clicktune_tasks", "Fine-tuning tasks by status.", labels=["status"]
        )
        durations = SummaryMetricFamily(
            "clicktune_task_run_seconds",
            "Run time of finished tasks (started to finished), by how they ended.",
            labels=["status"],
        )
        for status in TaskStatus:
            count = counts.get(status.value)
            by_status.add_metric([status.value], count.tasks if count else 0)
            if status.value in ("done", "canceled", "error"):
                durations.add_metric(
                    [status.value],
                    count_value=count.ran if count else 0,
                    sum_value=count.run_seconds if count else 0.0,
                )
        pending = counts.get(TaskStatus.PENDING.value)
        yield by_status
        yield GaugeMetricFamily(
            "clicktune_queue_depth",
            "Tasks waiting for a worker.",
            value=pending.tasks if pending else 0,
        )
        yield durations


class ApiMetrics:
    """The API process's metrics, in a registry of its own (one per app)."""

    def __init__(self, engine: Callable[[], Engine | None]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "clicktune_http_requests",
            "Requests answered, by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "clicktune_http_request_duration_seconds",
            "Time to answer a request, by route and method.",
            ["route", "method"],
            registry=self.registry,
        )
        self.sessions = Counter(
            "clicktune_sessions_stored", "Sessions this process stored.", registry=self.registry
        )
        self.events = Counter(
            "clicktune_events_stored", "Events this process stored.", registry=self.registry
        )
        self.embeddings = Counter(
            "clicktune_embeddings",
            "Texts embedded, by the model version that answered.",
            ["model_version"],
            registry=self.registry,
        )
        self.registry.register(TaskQueue(engine))


class RequestMetrics:
    """ASGI middleware: each request's route template, method, status and duration."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = _route_label(scope)
            method = scope["method"]
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route, method).observe(time.perf_counter() - started)


def _route_label(scope: Scope) -> str:
    """The matched route's template under the API prefix (`/api/v1/clickstream/session/{id}`),
    never the raw path: one series per route, whatever ids clients send."""
    route = getattr(scope.get("route"), "path", None)
    if route is None:
        return UNROUTED
    if route.startswith(f"{API_PREFIX}/") or not scope["path"].startswith(f"{API_PREFIX}/"):
        return route
    return f"{API_PREFIX}{route}"

"""A small typed Python client for the clicktune REST API (docs/api.md), built on httpx.

Every 4xx/5xx answer raises `ErrorResponse`, a `ClicktuneError` with the contract's error `code`,
`message` and `param`, so callers branch on codes rather than on status numbers or message text.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

from clicktune.api_paths import API_PREFIX
from clicktune.errors import ClicktuneError
from clicktune.status import FINISHED_STATUSES, Promotion, TaskStatus

DEFAULT_ITEMS_CHUNK = 1000
RETRY_STATUSES = frozenset({429, 503})
LONGEST_WAIT_S = 30.0

JSON = dict[str, Any]


@dataclass(frozen=True)
class Embedded:
    vectors: list[list[float]]
    model_version: str


def _segment(value: str) -> str:
    """A client-chosen id as one path segment (ids may hold '/', '?', '#' or spaces)."""
    return quote(value, safe="")


class ErrorResponse(ClicktuneError):
    """An error answer of the API: `status_code` plus the contract's `code`, `message`, `param`."""

    def __init__(self, status_code: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message, param, code=code)
        self.status_code = status_code

    def __str__(self) -> str:
        where = f" (param {self.param})" if self.param else ""
        return f"{self.status_code} {self.code}: {self.message}{where}"

    @classmethod
    def from_response(cls, response: httpx.Response) -> ErrorResponse:
        try:
            error = response.json()["error"]
            return cls(response.status_code, error["code"], error["message"], error.get("param"))
        except (ValueError, KeyError, TypeError):
            reason = response.reason_phrase or "error"
            text = response.text.strip()[:500] or reason
            return cls(response.status_code, f"http_{response.status_code}", text)


class ClicktuneClient:
    """Synchronous client; `api_key` is sent as `Authorization: Bearer` (docs/api.md); `http`
    reuses any `httpx.Client` (e.g. FastAPI's TestClient).

    A `429` or `503` answer is retried up to `retries` times, waiting as `Retry-After` says or
    `backoff_s`, doubling (every write is safe to repeat: docs/api.md); connection failures are
    retried by the transport. A streamed body (an import) is never resent.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:5000",
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        http: httpx.Client | None = None,
    ) -> None:
        self.retries = retries
        self.backoff_s = backoff_s
        self._owns_http = http is None
        self._http = http or httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            transport=httpx.HTTPTransport(retries=3),
        )
        if api_key is not None:
            self._http.headers["Authorization"] = f"Bearer {api_key}"

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        content = kwargs.get("content")
        attempts = 1 + (self.retries if content is None or isinstance(content, bytes) else 0)
        for attempt in range(attempts):
            response = self._http.request(method, API_PREFIX + path, **kwargs)
            if response.status_code not in RETRY_STATUSES or attempt == attempts - 1:
                break
            time.sleep(self._wait_s(response, attempt))
        if response.status_code >= 400:
            raise ErrorResponse.from_response(response)
        return response

    def _wait_s(self, response: httpx.Response, attempt: int) -> float:
        """`Retry-After` (seconds) when the server gives it, else the doubling backoff."""
        given = response.headers.get("retry-after", "")
        wait = float(given) if given.isdigit() else self.backoff_s * 2**attempt
        return min(wait, LONGEST_WAIT_S)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    # Service

    def ping(self) -> JSON:
        return self._json("GET", "/ping")

    def health(self) -> JSON:
        return self._json("GET", "/health")

    # Clickstream

    def create_session(
        self,
        session_id: str,
        search_query: str,
        search_results: Sequence[JSON],
        *,
        search_meta: JSON | None = None,
        user_id: str | None = None,
        created_at: float | None = None,
        served_by: str | None = None,
        events: Sequence[JSON] | None = None,
    ) -> JSON:
        """Register a session, with the `events` known already (one request per search);
        sending the same session again is a safe retry. `served_by`: the model version that
        produced the results (from `embed`), for an A/B test."""
        optional = {
            "search_meta": search_meta,
            "user_id": user_id,
            "created_at": created_at,
            "served_by": served_by,
            "events": None if events is None else list(events),
        }
        body: JSON = {
            "session_id": session_id,
            "search_query": search_query,
            "search_results": list(search_results),
            **{name: value for name, value in optional.items() if value is not None},
        }
        return self._json("POST", "/clickstream/session", json=body)

    def create_sessions(self, sessions: Sequence[JSON]) -> JSON:
        """Register up to 1,000 sessions (each a `create_session` body, `events` inline) in one
        request: answers `sessions`, `events`, `duplicates` and `errors` (a refused session by
        its index; the others are stored). Resending is a safe retry."""
        return self._json("POST", "/clickstream/sessions", json={"sessions": list(sessions)})

    def get_session(self, session_id: str) -> JSON:
        return self._json("GET", f"/clickstream/session/{_segment(session_id)}")

    def add_events(self, session_id: str, events: Sequence[JSON]) -> JSON:
        """Add events (`event_id`, `object_id`, `event_type`, ...); answers accepted/duplicates."""
        return self._json(
            "POST", "/clickstream/session/events", json={"session_id": session_id, "events": events}
        )

    def mark_irrelevant(self, session_id: str) -> JSON:
        return self._json(
            "POST", "/clickstream/session/irrelevant", json={"session_id": session_id}
        )

    def release_batch(self, release_id: str) -> JSON:
        """Freeze the collecting batch; the same `release_id` always answers the same batch."""
        return self._json(
            "POST", "/clickstream/internal/batch/release", json={"release_id": release_id}
        )

    def list_batches(self, status: str | None = None, *, limit: int = 100, offset: int = 0) -> JSON:
        params: JSON = {"limit": limit, "offset": offset}
        if status is not None:
            params["status"] = status
        return self._json("GET", "/clickstream/batches", params=params)

    def get_batch(self, batch_id: str) -> JSON:
        return self._json("GET", f"/clickstream/batches/{_segment(batch_id)}")

    def iter_batch_sessions(
        self, batch_id: str, *, page_size: int = 100, events_limit: int = 100
    ) -> Iterator[JSON]:
        """Every session of a batch in `session_number` order (keyset pagination)."""
        after = 0
        while True:
            page = self._json(
                "GET",
                "/clickstream/internal/batch/sessions",
                params={
                    "batch_id": batch_id,
                    "after_number": after,
                    "limit": page_size,
                    "events_limit": events_limit,
                },
            )
            yield from page["sessions"]
            if not page["sessions"] or page["last_number"] is None:
                return
            after = page["last_number"]

    def import_sessions(self, sessions: Iterable[JSON]) -> JSON:
        """Bulk-import historical sessions (each with its `events`) as one streamed NDJSON body."""

        def lines() -> Iterator[bytes]:
            for session in sessions:
                yield (json.dumps(session, separators=(",", ":")) + "\n").encode()

        return self._json(
            "POST",
            "/clickstream/import",
            content=lines(),
            headers={"Content-Type": "application/x-ndjson"},
        )

    # Items

    def put_item(
        self,
        object_id: str,
        *,
        text: str | None = None,
        fields: JSON | None = None,
        meta: JSON | None = None,
    ) -> JSON:
        body: JSON = {}
        if text is not None:
            body["text"] = text
        if fields is not None:
            body["fields"] = fields
        if meta is not None:
            body["meta"] = meta
        return self._json("PUT", f"/items/{_segment(object_id)}", json=body)

    def get_item(self, object_id: str) -> JSON:
        return self._json("GET", f"/items/{_segment(object_id)}")

    def delete_item(self, object_id: str) -> None:
        self._request("DELETE", f"/items/{_segment(object_id)}")

    def bulk_items(
        self,
        items: Iterable[JSON],
        *,
        chunk_size: int = DEFAULT_ITEMS_CHUNK,
        on_chunk: Callable[[int], None] | None = None,
    ) -> int:
        """Upsert items in requests of `chunk_size`; returns how many were upserted.

        `on_chunk(n)` is called after each request with the number of items it carried.
        """
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        upserted = 0
        chunk: list[JSON] = []
        for item in items:
            chunk.append(item)
            if len(chunk) == chunk_size:
                upserted += self._bulk_chunk(chunk, on_chunk)
                chunk = []
        if chunk:
            upserted += self._bulk_chunk(chunk, on_chunk)
        return upserted

    def _bulk_chunk(self, chunk: list[JSON], on_chunk: Callable[[int], None] | None) -> int:
        upserted = int(self._json("POST", "/items/bulk", json={"items": chunk})["upserted"])
        if on_chunk is not None:
            on_chunk(len(chunk))
        return upserted

    # Judged sets

    def put_judgments(self, set_id: str, judgments: Iterable[JSON]) -> JSON:
        """Create or replace a judged set from `{"query", "object_id", "grade"}` judgments."""
        body = {"judgments": list(judgments)}
        return self._json("PUT", f"/judgments/{_segment(set_id)}", json=body)

    def list_judgment_sets(self) -> list[JSON]:
        return self._json("GET", "/judgments")["data"]

    def get_judgment_set(self, set_id: str) -> JSON:
        return self._json("GET", f"/judgments/{_segment(set_id)}")

    def delete_judgment_set(self, set_id: str) -> None:
        self._request("DELETE", f"/judgments/{_segment(set_id)}")

    # Fine-tuning

    def list_methods(self) -> list[JSON]:
        return self._json("GET", "/fine-tuning/methods")

    def method_models(self, method: str) -> JSON:
        """The method's champion, challenger and the history of both."""
        return self._json("GET", f"/fine-tuning/methods/{_segment(method)}/models")

    def create_task(
        self,
        fine_tuning_method: str,
        *,
        batch_id: str | None = None,
        hyperparameters: JSON | None = None,
        metadata: JSON | None = None,
        idempotency_key: str | None = None,
        validation_set: str | None = None,
        promotion: Promotion | None = None,
        n_trials: int | None = None,
    ) -> JSON:
        """Create a task; without `batch_id` the collecting batch is released by this request."""
        optional = {
            "batch_id": batch_id,
            "hyperparameters": hyperparameters,
            "metadata": metadata,
            "idempotency_key": idempotency_key,
            "validation_set": validation_set,
            "promotion": promotion,
            "n_trials": n_trials,
        }
        body: JSON = {
            "fine_tuning_method": fine_tuning_method,
            **{name: value for name, value in optional.items() if value is not None},
        }
        return self._json("POST", "/fine-tuning/task", json=body)

    def get_task(self, task_id: str) -> JSON:
        return self._json("GET", f"/fine-tuning/task/{_segment(task_id)}")

    def list_tasks(
        self,
        *,
        status: TaskStatus | None = None,
        fine_tuning_method: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> JSON:
        params: JSON = {"limit": limit, "offset": offset}
        if status is not None:
            params["status"] = status
        if fine_tuning_method is not None:
            params["fine_tuning_method"] = fine_tuning_method
        return self._json("GET", "/fine-tuning/task", params=params)

    def cancel_task(self, task_id: str) -> JSON:
        return self._json("PUT", f"/fine-tuning/task/{_segment(task_id)}/cancel")

    def restart_task(self, task_id: str) -> JSON:
        return self._json("PUT", f"/fine-tuning/task/{_segment(task_id)}/restart")

    def task_events(self, task_id: str, *, after: str | None = None, limit: int = 50) -> JSON:
        params: JSON = {"limit": limit}
        if after is not None:
            params["after"] = after
        return self._json("GET", f"/fine-tuning/task/{_segment(task_id)}/events", params=params)

    def iter_task_events(self, task_id: str, *, after: str | None = None) -> Iterator[JSON]:
        """The task's progress log from after `after` up to now, oldest first."""
        while True:
            page = self.task_events(task_id, after=after)
            yield from page["data"]
            if not page["data"] or not page["has_more"]:
                return
            after = page["data"][-1]["id"]

    def wait_for_task(
        self,
        task_id: str,
        *,
        on_progress: Callable[[JSON], None] | None = None,
        poll_s: float = 1.0,
        timeout_s: float | None = None,
    ) -> JSON:
        """Poll until the task is done, canceled or error, and return it.

        `on_progress(task)` is called with every polled state. Raises `TimeoutError` after
        `timeout_s` seconds (the task keeps running).
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            task = self.get_task(task_id)
            if on_progress is not None:
                on_progress(task)
            if task["status"] in FINISHED_STATUSES:
                return task
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"task {task_id} still {task['status']} after {timeout_s} s")
            time.sleep(poll_s)

    def download_model(self, task_id: str, destination: Path | str) -> Path:
        """Download the task's best model and unpack it into `destination` (a new folder).

        The folder loads with `SentenceTransformer(str(destination))`.
        """
        destination = Path(destination)
        if destination.exists() and any(destination.iterdir()):
            raise FileExistsError(f"{destination} exists and is not empty")
        with tempfile.TemporaryDirectory() as scratch:
            archive = Path(scratch) / "model.zip"
            url = f"{API_PREFIX}/fine-tuning/task/{_segment(task_id)}/model"
            with self._http.stream("GET", url) as response:
                if response.status_code >= 400:
                    response.read()
                    raise ErrorResponse.from_response(response)
                with archive.open("wb") as handle:
                    for chunk in response.iter_bytes():
                        handle.write(chunk)
            unpacked = Path(scratch) / "model"
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(unpacked)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(unpacked), destination)
        return destination

    # Embeddings

    def embeddings(self, texts: str | Sequence[str], model: str) -> list[list[float]]:
        """Embed texts with `model`: a method name (its current model) or a task id."""
        return self.embed(texts, model).vectors

    def embed(self, texts: str | Sequence[str], model: str, *, user: str | None = None) -> Embedded:
        """Embed texts with `model` (`<method>@ab` routes by `user`); the vectors and the model
        version that answered (send it back as the sessions' `served_by`)."""
        body: JSON = {"input": texts if isinstance(texts, str) else list(texts), "model": model}
        if user is not None:
            body["user"] = user
        answer = self._json("POST", "/embeddings", json=body)
        rows = sorted(answer["data"], key=lambda r: r["index"])
        return Embedded([row["embedding"] for row in rows], answer["model_version"])

    # Online comparison

    def interleave(
        self,
        session_id: str,
        method: str,
        champion: Sequence[str],
        challenger: Sequence[str],
        *,
        limit: int = 10,
    ) -> JSON:
        """The team-draft merge of both rankings to show in `session_id`."""
        body = {
            "session_id": session_id,
            "method": method,
            "rankings": {"champion": list(champion), "challenger": list(challenger)},
            "limit": limit,
        }
        return self._json("POST", "/clickstream/interleave", json=body)

    def comparison(self, batch_id: str, method: str | None = None) -> JSON:
        """What the batch's traffic says about the method's champion and challenger."""
        params = {} if method is None else {"method": method}
        url = f"/clickstream/batches/{_segment(batch_id)}/comparison"
        return self._json("GET", url, params=params)

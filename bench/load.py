"""Load: minutes of mixed traffic against the real API, then everything counted back from the store.

For each database (SQLite, PostgreSQL): starts a fresh `clicktune api` (no worker: created tasks
stay pending) on a free port with API keys on, as a deployment runs it, and lets `--clients`
concurrent clients (asyncio, one connection each) send mixed traffic for `--seconds`. Each client
picks its next request by weight: register a session (some with inline `events`), add events to
one of its own sessions, embed a few texts, and less often release the collecting batch, create a
fine-tuning task on a released batch, cancel a task, list batches, get a task. Clickstream writes
and embeddings carry the `ingest` key, everything else the `admin` key.

Retries: a transport error or timeout resends the very same request (same session_id, event_id,
release_id, idempotency key), which the contract makes safe; so does a 429 or 503 answer, after
Retry-After (else a short doubling backoff), as the bundled client does. Besides, `--resend` of the
answered writes are sent a second time on purpose, as a client whose answer was lost would, and
the answer is checked (the stored session, events as duplicates, the same batch, the replayed task).

Database outage (`--outage-s N`, PostgreSQL only): the API reaches PostgreSQL through a
`TcpForwarder`, cut at `--outage-at` of the run (new connections refused, live ones dropped) and
restored N seconds later, while the clients keep sending. A request sent before the restore and
answered after the cut may be answered `503 unavailable`: expected, counted on its own, not as a
5xx; the clients resend it until it is stored. Reported: those 503s, the resends after each
status, and the longest a request caught in the outage waited for its 2xx.

At the end every session and event the server acknowledged (2xx) is looked up in the database:
lost (acked, not stored), duplicated (stored more than once) and stored but never acknowledged (an
answer lost on the way; not an error) are counted, with the batches' session numbers (dense 1..n)
and the acked tasks. The API process's RSS is sampled every 5 s: after a warm-up (the first
embeddings request loads a model), its maximum, and at the end.

Goals (docs/benchmarks.md §3): zero 5xx, zero lost or duplicated sessions/events, API memory flat
(RSS at the end at most 1.10 times the RSS after the warm-up); through a 30 s PostgreSQL outage,
zero acknowledged sessions or events lost or duplicated and no 5xx but the outage's 503.

    python bench/load.py [--databases sqlite postgresql] [--seconds 600] [--clients 16]
                         [--outage-s 30 [--outage-at 0.33]] [--no-record]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, func, select, text

from clicktune.client import LONGEST_WAIT_S, RETRY_STATUSES
from clicktune.ids import new_id
from clicktune.simulate.outage import TcpForwarder, through_forwarder
from clicktune.simulate.service import instance_env, local_url, running
from clicktune.store.engine import make_engine, read_transaction
from clicktune.store.tables import batches, events, sessions, tasks
from recording import RESULTS, append_section, git_commit, machine

API = "/api/v1"
METHOD = "Default Fine Tuning Method"
RSS_INTERVAL_S = 5.0
WARMUP_S = 60.0
RSS_GOAL_RATIO = 1.10
"""RSS at the end over RSS after the warm-up. A Python process's RSS moves by a few percent with
allocator fragmentation and the database driver's caches; a leak of even 1 KiB per request
(tens of thousands of requests a minute) passes 10 % well within 10 minutes."""
REQUEST_TIMEOUT_S = 60.0
RETRIES = 5
BACKOFF_S = 0.5
"""The first wait after a 429/503 without Retry-After, doubling (the bundled client's default)."""
RECOVERY_S = 60.0
"""How long after an outage's end a request answered 429/503 is still resent: a request refused
for longer than the outage and this gives up (the API did not recover)."""
QUERIES = ["running shoes", "navy tote", "rain jacket", "trail socks", "wool hat", "desk lamp"]
EVENT_TYPES = ["click", "click", "click", "view", "add_to_cart"]
TEXTS = ["running shoes for wet trails", "a navy canvas tote", "warm wool hat", "lamp"]

# What each client picks, by weight; the rarer kinds need state the common ones make.
WEIGHTS: dict[str, float] = {
    "session": 30.0,
    "session+inline events": 5.0,
    "events": 40.0,
    "embeddings": 12.0,
    "release": 0.5,
    "task create": 1.0,
    "task cancel": 0.5,
    "batches list": 1.0,
    "task get": 1.0,
}
REQUEST_OF = {
    "session": "POST /clickstream/session",
    "session+inline events": "POST /clickstream/session (with `events`)",
    "events": "POST /clickstream/session/events",
    "embeddings": "POST /embeddings",
    "release": "POST /clickstream/internal/batch/release",
    "task create": "POST /fine-tuning/task",
    "task cancel": "PUT /fine-tuning/task/{id}/cancel",
    "batches list": "GET /clickstream/batches",
    "task get": "GET /fine-tuning/task/{id}",
}
EXPECTED_4XX = {
    ("release", "no_collecting_batch"),  # nothing collected since the last release
    ("task create", "task_exists"),  # the batch already has a pending task
    ("task cancel", "task_finished"),  # canceled already
}


# --- what the clients saw ----------------------------------------------------------------------


@dataclass
class Ledger:
    """Every answer, and what the server acknowledged; shared by the clients of one event loop."""

    started: float = field(default_factory=time.monotonic)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    codes: Counter[tuple[str, int, str]] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    resends: Counter[str] = field(default_factory=Counter)
    server_errors: list[dict[str, Any]] = field(default_factory=list)
    gave_up: list[dict[str, Any]] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    sessions_acked: set[str] = field(default_factory=set)
    events_acked: set[tuple[str, str]] = field(default_factory=set)
    inline_acked: set[tuple[str, str]] = field(default_factory=set)
    inline_echoed: set[tuple[str, str]] = field(default_factory=set)
    tasks_acked: dict[str, str] = field(default_factory=dict)  # idempotency key -> task id
    released: list[str] = field(default_factory=list)  # batch ids
    task_ids: list[str] = field(default_factory=list)
    status_retries: Counter[tuple[str, int]] = field(default_factory=Counter)  # (kind, status)
    status_gave_up: Counter[str] = field(default_factory=Counter)  # still 429/503, not resent
    outage_503: Counter[str] = field(default_factory=Counter)  # 503 unavailable in the outage
    longest_wait: dict[str, tuple[float, str]] = field(default_factory=dict)  # outage: to a 2xx
    cut_at: float | None = None  # seconds into the run, when the database connection was cut
    restored_at: float | None = None

    def in_outage(self, sent_at: float) -> bool:
        """Whether an answer now, to a request sent at `sent_at`, may be the outage's."""
        return self.cut_at is not None and (self.restored_at is None or sent_at < self.restored_at)

    def at(self) -> str:
        return f"{datetime.now(UTC):%H:%M:%S.%f}"[:-3] + f" UTC (t+{self.elapsed():.0f} s)"

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def record(
        self,
        kind: str,
        request: str,
        body: Any,
        response: httpx.Response,
        seconds: float,
        sent_at: float,
    ) -> None:
        self.latencies[kind].append(seconds)
        self.statuses[kind][response.status_code] += 1
        if (
            response.status_code == 503
            and self.in_outage(sent_at)
            and _error_code(response) == "unavailable"
        ):
            self.outage_503[kind] += 1
        elif response.status_code >= 500:
            self.server_errors.append(
                {
                    "at": self.at(),
                    "request": request,
                    "body": json.dumps(body)[:600] if body is not None else None,
                    "status": response.status_code,
                    "response": response.text[:600],
                }
            )
        elif response.status_code >= 400:
            self.codes[(kind, response.status_code, _error_code(response))] += 1


def _error_code(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return f"(not an error body: {response.text[:80]!r})"


def retry_wait_s(response: httpx.Response, attempt: int) -> float:
    """What the bundled client waits before resending after a 429/503: `Retry-After` (seconds)
    when the answer gives it, else `BACKOFF_S` doubling with each attempt."""
    given = response.headers.get("retry-after", "")
    wait = float(given) if given.isdigit() else BACKOFF_S * 2**attempt
    return min(wait, LONGEST_WAIT_S)


@dataclass
class OwnSession:
    session_id: str
    object_ids: list[str]
    next_event: int = 0


class Client:
    """One simulated caller: its own connection, ids and sessions."""

    def __init__(
        self,
        number: int,
        http: httpx.AsyncClient,
        keys: dict[str, str],
        ledger: Ledger,
        rng: random.Random,
        resend: float,
        retry_for_s: float,
    ) -> None:
        self.number = number
        self.http = http
        self.ingest = {"Authorization": f"Bearer {keys['ingest']}"}
        self.admin = {"Authorization": f"Bearer {keys['admin']}"}
        self.ledger = ledger
        self.rng = rng
        self.resend_share = resend
        self.retry_for_s = retry_for_s
        self.sessions: list[OwnSession] = []
        self.sent = 0

    def new_id(self, tag: str) -> str:
        self.sent += 1
        return f"load-{self.number}-{tag}{self.sent}"

    async def call(
        self,
        kind: str,
        method: str,
        path: str,
        headers: dict[str, str],
        body: Any = None,
        *,
        resend: bool = False,
    ) -> tuple[httpx.Response | None, int]:
        """The answer (None after `RETRIES` transport errors) and how many retries it took; a
        transport error or timeout resends the very same request, and so does a 429 or 503
        answer, after `retry_wait_s`, for up to `retry_for_s` since the first send. An answer's
        latency counts from the send it answers (from the first, after transport errors)."""
        request = f"{method} {path}"
        recorded = kind if not resend else f"{kind} (resend)"
        started = time.perf_counter()
        first_at = self.ledger.elapsed()
        last: Exception | None = None
        transport_errors = status_retries = 0
        while transport_errors <= RETRIES:
            sent_at = self.ledger.elapsed()
            try:
                response = await self.http.request(method, path, headers=headers, json=body)
            except httpx.TransportError as exc:
                last = exc
                self.ledger.retries[kind] += 1
                await asyncio.sleep(min(0.1 * 2**transport_errors, 2.0))
                transport_errors += 1
                continue
            answered = time.perf_counter()
            self.ledger.record(recorded, request, body, response, answered - started, sent_at)
            waited = self.ledger.elapsed() - first_at
            if response.status_code in RETRY_STATUSES:
                if waited >= self.retry_for_s:
                    self.ledger.status_gave_up[recorded] += 1
                    self.ledger.anomalies.append(
                        f"{self.ledger.at()}: {request} still answered {response.status_code} "
                        f"after {waited:.0f} s of resends; given up"
                    )
                    return response, transport_errors + status_retries
                self.ledger.status_retries[(recorded, response.status_code)] += 1
                await asyncio.sleep(retry_wait_s(response, status_retries))
                status_retries += 1
                started = time.perf_counter()
                continue
            if response.is_success and self.ledger.in_outage(first_at):
                longest, _ = self.ledger.longest_wait.get(recorded, (0.0, ""))
                if waited > longest:
                    self.ledger.longest_wait[recorded] = (
                        waited,
                        f"{request}, sent at t+{first_at:.1f} s, {status_retries} resends after "
                        f"429/503, 2xx at {self.ledger.at()}",
                    )
            return response, transport_errors + status_retries
        self.ledger.gave_up.append(
            {
                "kind": kind,
                "at": self.ledger.at(),
                "request": request,
                "body": body,
                "error": repr(last),
            }
        )
        return None, RETRIES + 1

    def should_resend(self) -> bool:
        return self.rng.random() < self.resend_share

    # --- the kinds of request ---

    async def session(self, inline_events: bool) -> None:
        kind = "session+inline events" if inline_events else "session"
        session_id = self.new_id("s")
        object_ids = [f"doc-{n}" for n in self.rng.sample(range(5000), 10)]
        body: dict[str, Any] = {
            "session_id": session_id,
            "search_query": self.rng.choice(QUERIES),
            "search_results": [
                {"object_id": o, "rank": round(1.0 - i / 20, 3)} for i, o in enumerate(object_ids)
            ],
            "user_id": f"user-{self.rng.randrange(500)}",
        }
        inline: list[tuple[str, str]] = []
        if inline_events:
            body["events"] = [
                {
                    "event_id": f"{session_id}-i{k}",
                    "object_id": object_ids[k],
                    "event_type": "click",
                }
                for k in range(2)
            ]
            inline = [(session_id, e["event_id"]) for e in body["events"]]
        path = f"{API}/clickstream/session"
        response, retries = await self.call(kind, "POST", path, self.ingest, body)
        if response is None or not response.is_success:
            return
        if response.status_code == 200 and retries == 0:
            self.ledger.anomalies.append(
                f"{self.ledger.at()}: session {session_id} answered 200 (already stored) on "
                "its first send"
            )
        self.ledger.sessions_acked.add(session_id)
        self.ledger.inline_acked.update(inline)
        echoed = {(session_id, e["event_id"]) for e in response.json().get("events", [])}
        self.ledger.inline_echoed.update(echoed & set(inline))
        self.sessions.append(OwnSession(session_id, object_ids))
        if self.should_resend():
            again, _ = await self.call(kind, "POST", path, self.ingest, body, resend=True)
            self.ledger.resends[kind] += 1
            if again is not None and again.status_code != 200:
                self.ledger.anomalies.append(
                    f"{self.ledger.at()}: resent session {session_id} answered "
                    f"{again.status_code} (expected 200): {again.text[:300]}"
                )

    async def events(self) -> None:
        own = self.rng.choice(self.sessions)
        batch = []
        for _ in range(self.rng.randint(1, 3)):
            own.next_event += 1
            batch.append(
                {
                    "event_id": f"{own.session_id}-e{own.next_event}",
                    "object_id": self.rng.choice(own.object_ids),
                    "event_type": self.rng.choice(EVENT_TYPES),
                }
            )
        body = {"session_id": own.session_id, "events": batch}
        path = f"{API}/clickstream/session/events"
        response, retries = await self.call("events", "POST", path, self.ingest, body)
        if response is None or not response.is_success:
            return
        answer = response.json()
        if answer["accepted"] + answer["duplicates"] != len(batch) or (
            retries == 0 and answer["duplicates"]
        ):
            self.ledger.anomalies.append(
                f"{self.ledger.at()}: events for {own.session_id} ({len(batch)} sent, "
                f"{retries} retries) answered {answer}"
            )
        self.ledger.events_acked.update((own.session_id, e["event_id"]) for e in batch)
        if self.should_resend():
            again, _ = await self.call("events", "POST", path, self.ingest, body, resend=True)
            self.ledger.resends["events"] += 1
            expected = {"accepted": 0, "duplicates": len(batch)}
            if again is not None and (again.status_code != 200 or again.json() != expected):
                self.ledger.anomalies.append(
                    f"{self.ledger.at()}: resent events for {own.session_id} answered "
                    f"{again.status_code} {again.text[:300]} (expected {expected})"
                )

    async def embeddings(self) -> None:
        body = {"input": self.rng.sample(TEXTS, self.rng.randint(1, 3)), "model": METHOD}
        await self.call("embeddings", "POST", f"{API}/embeddings", self.ingest, body)

    async def release(self) -> None:
        body = {"release_id": self.new_id("r")}
        path = f"{API}/clickstream/internal/batch/release"
        response, _ = await self.call("release", "POST", path, self.admin, body)
        if response is None or response.status_code != 200:
            return
        batch_id = response.json()["batch_id"]
        self.ledger.released.append(batch_id)
        if self.should_resend():
            again, _ = await self.call("release", "POST", path, self.admin, body, resend=True)
            self.ledger.resends["release"] += 1
            if again is not None and (
                again.status_code != 200 or again.json().get("batch_id") != batch_id
            ):
                self.ledger.anomalies.append(
                    f"{self.ledger.at()}: resent release {body['release_id']} answered "
                    f"{again.status_code} {again.text[:300]} (expected batch {batch_id})"
                )

    async def task_create(self) -> None:
        if not self.ledger.released:
            await self.release()
            return
        key = self.new_id("t")
        body = {
            "fine_tuning_method": METHOD,
            "batch_id": self.rng.choice(self.ledger.released),
            "idempotency_key": key,
        }
        path = f"{API}/fine-tuning/task"
        response, _ = await self.call("task create", "POST", path, self.admin, body)
        if response is None or not response.is_success:
            return
        task_id = response.json()["id"]
        self.ledger.tasks_acked[key] = task_id
        self.ledger.task_ids.append(task_id)
        if self.should_resend():
            again, _ = await self.call("task create", "POST", path, self.admin, body, resend=True)
            self.ledger.resends["task create"] += 1
            if again is not None and (
                again.status_code != 200
                or again.headers.get("Idempotent-Replayed") != "true"
                or again.json().get("id") != task_id
            ):
                self.ledger.anomalies.append(
                    f"{self.ledger.at()}: resent task create {key} answered "
                    f"{again.status_code} {again.text[:300]} (expected a replay of {task_id})"
                )

    async def task_cancel(self) -> None:
        if not self.ledger.task_ids:
            await self.task_create()
            return
        task_id = self.rng.choice(self.ledger.task_ids)
        path = f"{API}/fine-tuning/task/{task_id}/cancel"
        await self.call("task cancel", "PUT", path, self.admin)

    async def batches_list(self) -> None:
        path = f"{API}/clickstream/batches?limit=20"
        await self.call("batches list", "GET", path, self.admin)

    async def task_get(self) -> None:
        if not self.ledger.task_ids:
            await self.batches_list()
            return
        path = f"{API}/fine-tuning/task/{self.rng.choice(self.ledger.task_ids)}"
        await self.call("task get", "GET", path, self.admin)

    async def run(self, stop_at: float) -> None:
        kinds = list(WEIGHTS)
        weights = list(WEIGHTS.values())
        await self.embeddings()  # all clients at once: the model's lazy load under contention
        while time.monotonic() < stop_at:
            kind = self.rng.choices(kinds, weights)[0]
            if kind == "events" and not self.sessions:
                kind = "session"
            match kind:
                case "session":
                    await self.session(inline_events=False)
                case "session+inline events":
                    await self.session(inline_events=True)
                case "events":
                    await self.events()
                case "embeddings":
                    await self.embeddings()
                case "release":
                    await self.release()
                case "task create":
                    await self.task_create()
                case "task cancel":
                    await self.task_cancel()
                case "batches list":
                    await self.batches_list()
                case "task get":
                    await self.task_get()


# --- memory ------------------------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    """The process's resident memory now (VmRSS), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc status")


async def sample_rss(
    pid: int, ledger: Ledger, samples: list[tuple[float, float]], done: asyncio.Event
) -> None:
    while not done.is_set():
        samples.append((ledger.elapsed(), rss_mib(pid)))
        with suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), RSS_INTERVAL_S)
    samples.append((ledger.elapsed(), rss_mib(pid)))


@dataclass(frozen=True)
class Memory:
    warmup_s: float
    warm: float
    peak: float
    end: float
    slope_mib_min: float  # least squares over the samples after the warm-up
    by_minute: list[float]  # the first sample at or after each full minute, and the last

    @property
    def ratio(self) -> float:
        return self.end / self.warm

    @property
    def flat(self) -> bool:
        return self.ratio <= RSS_GOAL_RATIO


def memory(samples: list[tuple[float, float]], warmup_s: float) -> Memory:
    after = [(t, mib) for t, mib in samples if t >= warmup_s] or samples[-1:]
    slope = 0.0
    if len(after) >= 3:
        slope = statistics.linear_regression([t for t, _ in after], [m for _, m in after]).slope
    return Memory(
        warmup_s=after[0][0],
        warm=after[0][1],
        peak=max(mib for _, mib in samples),
        end=samples[-1][1],
        slope_mib_min=slope * 60,
        by_minute=[
            next(mib for t, mib in samples if t >= minute * 60)
            for minute in range(1, int(samples[-1][0] // 60) + 1)
        ]
        + [samples[-1][1]],
    )


# --- one run -----------------------------------------------------------------------------------


async def cut_database(forwarder: TcpForwarder, ledger: Ledger, at_s: float, for_s: float) -> None:
    """The outage: the API's connection to the database cut `at_s` into the run, restored
    `for_s` seconds later."""
    await asyncio.sleep(at_s - ledger.elapsed())
    forwarder.cut()
    ledger.cut_at = ledger.elapsed()
    print(f"  t+{ledger.cut_at:.0f} s: database connection cut for {for_s:g} s", flush=True)
    try:
        await asyncio.sleep(for_s)
    finally:
        forwarder.restore()
        ledger.restored_at = ledger.elapsed()
        print(f"  t+{ledger.restored_at:.0f} s: database connection restored", flush=True)


async def load(
    base: str,
    keys: dict[str, str],
    pid: int,
    forwarder: TcpForwarder | None,
    args: argparse.Namespace,
) -> tuple[Ledger, list[tuple[float, float]]]:
    """The clients' traffic for `args.seconds`, and the outage through `forwarder` if any."""
    ledger = Ledger()
    samples: list[tuple[float, float]] = []
    done = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(pid, ledger, samples, done))
    outage = (
        asyncio.create_task(
            cut_database(forwarder, ledger, args.outage_at * args.seconds, args.outage_s)
        )
        if forwarder is not None
        else None
    )
    stop_at = time.monotonic() + args.seconds
    timeout = httpx.Timeout(args.timeout)
    clients = [httpx.AsyncClient(base_url=base, timeout=timeout) for _ in range(args.clients)]
    retry_for_s = args.outage_s + RECOVERY_S
    try:
        await asyncio.gather(
            *(
                Client(
                    n,
                    http,
                    keys,
                    ledger,
                    random.Random(args.seed * 1000 + n),
                    args.resend,
                    retry_for_s,
                ).run(stop_at)
                for n, http in enumerate(clients)
            )
        )
    finally:
        if outage is not None:
            outage.cancel()
            with suppress(asyncio.CancelledError):
                await outage
        for http in clients:
            await http.aclose()
        done.set()
        await sampler
    return ledger, samples


def check_keys(base: str, keys: dict[str, str]) -> None:
    """The instance refuses a request without a key and an admin route with the ingest key."""
    path = f"{base}{API}/clickstream/batches"
    got = {
        name: httpx.get(path, headers=headers).status_code
        for name, headers in (
            ("no key", {}),
            ("ingest key", {"Authorization": f"Bearer {keys['ingest']}"}),
            ("admin key", {"Authorization": f"Bearer {keys['admin']}"}),
        )
    }
    if got != {"no key": 401, "ingest key": 403, "admin key": 200}:
        raise SystemExit(f"API keys are not enforced as expected: {got}")


@dataclass(frozen=True)
class Stored:
    sessions: Counter[str]
    events: Counter[tuple[str, str]]
    task_keys: Counter[str]
    bad_batches: list[str]  # batches whose session numbers are not 1..n or whose count differs


def count_back(url: str) -> Stored:
    engine = make_engine(url)
    try:
        with read_transaction(engine) as conn:
            stored_sessions = Counter(conn.execute(select(sessions.c.session_id)).scalars())
            stored_events = Counter(
                (s, e) for s, e in conn.execute(select(events.c.session_id, events.c.event_id))
            )
            task_keys = Counter(
                conn.execute(
                    select(tasks.c.idempotency_key).where(tasks.c.idempotency_key.is_not(None))
                ).scalars()
            )
            numbers = conn.execute(
                select(
                    sessions.c.batch_id,
                    func.count(),
                    func.count(sessions.c.session_number.distinct()),
                    func.min(sessions.c.session_number),
                    func.max(sessions.c.session_number),
                ).group_by(sessions.c.batch_id)
            ).all()
            counted = dict(conn.execute(select(batches.c.batch_id, batches.c.sessions)).all())
    finally:
        engine.dispose()
    bad = [
        f"{batch_id}: {n} sessions, {distinct} numbers {low}..{high}, batch row says "
        f"{counted.get(batch_id)}"
        for batch_id, n, distinct, low, high in numbers
        if not (n == distinct == high == counted.get(batch_id) and low == 1)
    ]
    return Stored(stored_sessions, stored_events, task_keys, bad)


@dataclass(frozen=True)
class Tally:
    """Acknowledged against stored, for one kind of record."""

    acked: int
    stored: int  # of the acked ones
    lost: list[str]
    duplicated: list[str]
    unacked: int  # stored, never acknowledged

    @property
    def ok(self) -> bool:
        return not self.lost and not self.duplicated


def tally(acked: set[Any], stored: Counter[Any], universe: set[Any] | None = None) -> Tally:
    """`universe`: the records of this kind in `stored` (default all of `stored`)."""
    mine = set(stored) if universe is None else set(stored) & universe
    return Tally(
        acked=len(acked),
        stored=len(acked & mine),
        lost=sorted(map(str, acked - mine)),
        duplicated=sorted(str(k) for k in mine if stored[k] > 1),
        unacked=len(mine - acked),
    )


@dataclass
class Outcome:
    label: str
    ledger: Ledger
    memory: Memory
    stored: Stored
    sessions: Tally
    events: Tally
    inline: Tally
    tasks: Tally
    log: Path
    seconds: float
    outage_s: float

    @property
    def server_errors(self) -> int:
        """5xx answers, the outage's 503 `unavailable` aside."""
        answered = sum(n for c in self.ledger.statuses.values() for s, n in c.items() if s >= 500)
        return answered - self.ledger.outage_503.total()

    @property
    def unexpected_4xx(self) -> int:
        return sum(
            n
            for (kind, _, code), n in self.ledger.codes.items()
            if (kind.removesuffix(" (resend)"), code) not in EXPECTED_4XX
        )


@contextmanager
def fresh_database(kind: str, admin_url: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'load.db'}"
        return
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    database = f"clicktune_load_{new_id()}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{database}"'))
    try:
        yield admin.url.set(database=database).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


def run_database(kind: str, args: argparse.Namespace) -> Outcome:
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[kind]
    keys = {"admin": secrets.token_urlsafe(24), "ingest": secrets.token_urlsafe(24)}
    log = args.log_dir / f"api-{kind}.log"
    print(f"{label}: {args.clients} clients for {args.seconds:.0f} s; server log {log}", flush=True)
    with (
        tempfile.TemporaryDirectory(prefix="clicktune-load-") as folder,
        fresh_database(kind, args.postgres_admin_url, Path(folder)) as url,
        through_forwarder(url) if args.outage_s else nullcontext((url, None)) as (
            api_url,
            forwarder,
        ),
    ):
        env = instance_env(
            Path(folder) / "data",
            database_url=api_url,
            single_host="1",
            api_keys=f"admin:{keys['admin']},ingest:{keys['ingest']}",
            log_level="INFO",
        )
        base = local_url(env)
        with running("api", env, base, log=log, timeout_s=120) as process:
            check_keys(base, keys)
            started = time.monotonic()
            ledger, samples = asyncio.run(load(base, keys, process.pid, forwarder, args))
            seconds = time.monotonic() - started
            stored = count_back(url)
    inline_ids = {(s, e) for s, e in stored.events if e.startswith(f"{s}-i")}
    return Outcome(
        label=label,
        ledger=ledger,
        memory=memory(samples, min(WARMUP_S, args.seconds / 5)),
        stored=stored,
        sessions=tally(ledger.sessions_acked, stored.sessions),
        events=tally(ledger.events_acked, stored.events, set(stored.events) - inline_ids),
        inline=tally(ledger.inline_acked, stored.events, inline_ids),
        tasks=tally(set(ledger.tasks_acked), stored.task_keys),
        log=log,
        seconds=seconds,
        outage_s=args.outage_s,
    )


# --- report ------------------------------------------------------------------------------------


def _percentiles(seconds: list[float]) -> tuple[float, float]:
    if len(seconds) < 2:
        return (seconds[0] * 1000,) * 2 if seconds else (float("nan"),) * 2
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def request_rows(outcome: Outcome) -> list[list[str]]:
    ledger = outcome.ledger
    rows = []
    gave_up = Counter(failure["kind"] for failure in ledger.gave_up)
    kinds = set(ledger.latencies) | set(ledger.retries) | set(gave_up)
    for kind in sorted(kinds, key=lambda k: (-len(ledger.latencies[k]), k)):
        statuses = ledger.statuses[kind]
        p50, p99 = _percentiles(ledger.latencies[kind])
        codes = ", ".join(
            f"{status} {code} x{n}"
            for (k, status, code), n in sorted(ledger.codes.items())
            if k == kind
        )
        base_kind = kind.removesuffix(" (resend)")
        rows.append(
            [
                outcome.label,
                REQUEST_OF[base_kind] + (" (resent on purpose)" if kind != base_kind else ""),
                f"{statuses.total():,}",
                f"{sum(n for s, n in statuses.items() if s < 300):,}",
                codes or "0",
                f"{sum(n for s, n in statuses.items() if s >= 500) - ledger.outage_503[kind]}",
                f"{ledger.retries[kind]} / {gave_up[kind]}",
                f"{p50:.1f} / {p99:.1f}",
            ]
        )
    return rows


REQUEST_HEADER = [
    "database",
    "request",
    "answers",
    "2xx",
    "4xx by code",
    "5xx",
    "transport retries / gave up",
    "p50 / p99 ms",
]


def _tally_cell(t: Tally) -> str:
    return f"{t.acked:,} / {t.stored:,} / {len(t.lost):,} / {len(t.duplicated):,} / {t.unacked:,}"


def goal_rows(outcome: Outcome) -> list[list[str]]:
    m = outcome.memory
    total = sum(c.total() for c in outcome.ledger.statuses.values())
    stored_ok = outcome.sessions.ok and outcome.events.ok and not outcome.stored.bad_batches
    server_errors = f"{outcome.server_errors}"
    no_5xx = "0 5xx"
    no_loss = "0 lost/duplicated"
    if outcome.outage_s:
        server_errors += f" (+{outcome.ledger.outage_503.total():,} 503 in the outage)"
        no_5xx += " but the outage's 503"
        no_loss += f" through a {outcome.outage_s:g} s database outage"
    return [
        [
            outcome.label,
            f"{total:,} in {outcome.seconds:.0f} s ({total / outcome.seconds:,.0f}/s)",
            server_errors,
            _tally_cell(outcome.sessions),
            _tally_cell(outcome.events),
            _tally_cell(outcome.inline),
            _tally_cell(outcome.tasks),
            f"{m.warm:.0f} (t={m.warmup_s:.0f} s) / {m.peak:.0f} / {m.end:.0f}",
            f"{m.ratio:.3f} ({m.slope_mib_min:+.1f} MiB/min)",
            "; ".join(
                [
                    f"{no_5xx}: {'met' if outcome.server_errors == 0 else 'MISSED'}",
                    f"{no_loss}: {'met' if stored_ok else 'MISSED'}",
                    f"RSS ≤ {RSS_GOAL_RATIO:.2f}x warm: {'met' if m.flat else 'MISSED'}",
                ]
            ),
        ]
    ]


GOAL_HEADER = [
    "database",
    "requests",
    "5xx",
    "sessions acked / stored / lost / duplicated / stored unacked",
    "events (same)",
    "inline `events` on POST /session (same)",
    "tasks by idempotency key (same)",
    "API RSS MiB warm / max / end",
    "end ÷ warm",
    "goals",
]


def outage_rows(outcome: Outcome) -> list[list[str]]:
    """Per kind of request touched by the outage: its 503s, the resends after 429/503, the
    longest a request first sent before the restore and answered after the cut waited for a 2xx,
    the requests given up; then all together."""
    ledger = outcome.ledger
    kinds = (
        set(ledger.outage_503)
        | {kind for kind, _ in ledger.status_retries}
        | set(ledger.status_gave_up)
        | set(ledger.longest_wait)
    )

    def row(name: str, of: set[str]) -> list[str]:
        retries = {
            status: sum(
                n for (kind, s), n in ledger.status_retries.items() if kind in of and s == status
            )
            for status in (503, 429)
        }
        waits = [ledger.longest_wait[kind][0] for kind in of if kind in ledger.longest_wait]
        return [
            outcome.label,
            name,
            f"{sum(ledger.outage_503[kind] for kind in of):,}",
            f"{retries[503]:,} / {retries[429]:,}",
            f"{max(waits):.1f}" if waits else "-",
            f"{sum(ledger.status_gave_up[kind] for kind in of):,}",
        ]

    def name(kind: str) -> str:
        base_kind = kind.removesuffix(" (resend)")
        return REQUEST_OF[base_kind] + (" (resent on purpose)" if kind != base_kind else "")

    ordered = sorted(kinds, key=lambda k: (-ledger.outage_503[k], k))
    return [row(name(kind), {kind}) for kind in ordered] + [row("all", kinds)]


OUTAGE_HEADER = [
    "database",
    "request",
    "503 `unavailable` in the outage",
    "resends after 503 / 429",
    "longest wait for a 2xx, s (sent before the restore, answered after the cut)",
    f"still 429/503 after the outage + {RECOVERY_S:.0f} s (given up)",
]


def notes(outcome: Outcome) -> list[str]:
    ledger = outcome.ledger
    lines = []
    resent = ", ".join(f"{kind} {n}" for kind, n in sorted(ledger.resends.items()))
    lines.append(
        f"{outcome.label}: writes resent on purpose: {resent or 'none'}; server log {outcome.log}"
    )
    curve = ", ".join(f"{mib:.0f}" for mib in outcome.memory.by_minute)
    lines.append(f"{outcome.label}: API RSS MiB at each full minute, then at the end: {curve}")
    if outcome.outage_s:
        lines.append(outage_note(outcome))
    if outcome.inline.acked and outcome.inline.stored == 0:
        lines.append(
            f"{outcome.label}: POST /clickstream/session answered 2xx to every session sent with "
            f"an `events` list ({outcome.inline.acked:,} events) and stored none of them "
            f"(echoed back: {len(ledger.inline_echoed)}): the field is ignored silently, where "
            "docs/api.md says an unknown field is 422 invalid_request (not part of the loss goal: "
            "the live endpoint has no `events` field)"
        )
    for name, t in (("sessions", outcome.sessions), ("events", outcome.events)):
        if t.lost:
            lines.append(f"{outcome.label}: LOST {name} ({len(t.lost)}): {', '.join(t.lost[:10])}")
        if t.duplicated:
            lines.append(
                f"{outcome.label}: DUPLICATED {name} ({len(t.duplicated)}): "
                f"{', '.join(t.duplicated[:10])}"
            )
    for bad in outcome.stored.bad_batches[:10]:
        lines.append(f"{outcome.label}: batch numbering broken: {bad}")
    unexpected = [
        f"{kind}: {status} {code} x{n}"
        for (kind, status, code), n in sorted(ledger.codes.items())
        if (kind.removesuffix(" (resend)"), code) not in EXPECTED_4XX
    ]
    if unexpected:
        lines.append(f"{outcome.label}: unexpected 4xx: {'; '.join(unexpected)}")
    for error in ledger.server_errors[:5]:
        lines.append(
            f"{outcome.label}: 5xx at {error['at']}: {error['request']} {error['body']} -> "
            f"{error['status']} {error['response']}"
        )
    for failure in ledger.gave_up[:5]:
        lines.append(f"{outcome.label}: no answer after {RETRIES} retries: {failure}")
    for anomaly in ledger.anomalies[:10]:
        lines.append(f"{outcome.label}: anomaly: {anomaly}")
    if len(ledger.anomalies) > 10:
        lines.append(f"{outcome.label}: … {len(ledger.anomalies) - 10} more anomalies")
    return lines


def outage_note(outcome: Outcome) -> str:
    ledger = outcome.ledger
    if ledger.cut_at is None or ledger.restored_at is None:
        return f"{outcome.label}: OUTAGE NOT RUN (the run ended before it)"
    longest = max(ledger.longest_wait.values(), default=None)
    retries = Counter[int]()
    for (_, status), n in ledger.status_retries.items():
        retries[status] += n
    return (
        f"{outcome.label}: database connection cut at t+{ledger.cut_at:.1f} s, restored at "
        f"t+{ledger.restored_at:.1f} s; {ledger.outage_503.total():,} answers 503 `unavailable` "
        "to requests sent before the restore (expected: not counted as 5xx); resends after 503: "
        f"{retries[503]:,}, after 429: {retries[429]:,}; longest wait for a 2xx of a request "
        "sent before the restore: "
        + (f"{longest[0]:.1f} s ({longest[1]})" if longest else "none")
        + f"; other 5xx: {outcome.server_errors}"
    )


def server_log_errors(log: Path, limit: int = 80) -> list[str]:
    """The log's lines from its first error on (a traceback follows an `unhandled_error`)."""
    lines = log.read_text(errors="replace").splitlines()
    for index, line in enumerate(lines):
        if "error" in line.lower() or "traceback" in line.lower():
            return lines[index : index + limit]
    return []


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--databases",
        nargs="+",
        choices=["sqlite", "postgresql"],
        default=["sqlite", "postgresql"],
        help="databases to load (default: both)",
    )
    parser.add_argument("--seconds", type=float, default=600.0, help="traffic per database")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument(
        "--resend", type=float, default=0.02, help="share of answered writes sent again on purpose"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=REQUEST_TIMEOUT_S,
        help="client timeout per request; a timeout resends the same request",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the clients' choices")
    parser.add_argument(
        "--postgres-admin-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="where fresh PostgreSQL databases are created",
    )
    parser.add_argument(
        "--log-dir", type=Path, default=None, help="where the API's logs go (default: a temp dir)"
    )
    parser.add_argument(
        "--outage-s",
        type=float,
        default=0.0,
        help="cut the API's connection to PostgreSQL for this long in the run (default 0: none)",
    )
    parser.add_argument(
        "--outage-at",
        type=float,
        default=0.33,
        help="when the outage starts, as a fraction of --seconds (default 0.33)",
    )
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    if args.outage_s < 0:
        parser.error("--outage-s must be 0 (no outage) or more")
    if args.outage_s and "sqlite" in args.databases:
        parser.error(
            "--outage-s cuts the API's network connection to PostgreSQL; SQLite is a file in the "
            "API's process, with no connection to cut: run it with --databases postgresql"
        )
    if args.outage_s and not (
        args.outage_at > 0 and args.outage_at * args.seconds + args.outage_s < args.seconds
    ):
        parser.error(
            f"--outage-at {args.outage_at:g} with --outage-s {args.outage_s:g}: the outage must "
            f"start after the run does and end before its --seconds {args.seconds:g}"
        )
    if args.log_dir is None:
        args.log_dir = Path(tempfile.mkdtemp(prefix="clicktune-load-logs-"))
    load_before = os.getloadavg()[0]
    outcomes = [run_database(kind, args) for kind in args.databases]

    requests = _table(REQUEST_HEADER, [row for o in outcomes for row in request_rows(o)])
    goals = _table(GOAL_HEADER, [row for o in outcomes for row in goal_rows(o)])
    if args.outage_s:
        goals += ["", *_table(OUTAGE_HEADER, [row for o in outcomes for row in outage_rows(o)])]
    remarks = [line for o in outcomes for line in notes(o)]
    print("\n".join([*requests, "", *goals, "", *(f"- {line}" for line in remarks)]))
    for outcome in outcomes:
        if outcome.server_errors:
            print(f"\n{outcome.label}: server log from its first error ({outcome.log}):")
            print("\n".join(server_log_errors(outcome.log)))
    if args.no_record:
        return
    weights = ", ".join(f"{kind} {weight:g}" for kind, weight in WEIGHTS.items())
    outage = (
        f"; database outage: the API's connection to PostgreSQL (through a TCP forwarder) cut "
        f"at {args.outage_at:g} of the run for {args.outage_s:g} s (new connections refused, "
        "live ones dropped), then restored; 429/503 resent after Retry-After"
        if args.outage_s
        else ""
    )
    append_section(
        "Load",
        [
            f"- command: `python bench/load.py {' '.join(sys.argv[1:])}`".rstrip(),
            f"- commit: {git_commit()}",
            f"- machine: {machine()}; load average before the run {load_before:.1f} (clients, "
            "server and database share the CPUs)",
            f"- workload: `clicktune api` alone (no worker: tasks stay pending), API keys on; "
            f"{args.clients} clients, one connection each, no think time; weights: {weights}; "
            f"{args.resend:.0%} of answered writes resent on purpose; RSS sampled every "
            f"{RSS_INTERVAL_S:.0f} s, warm = the first sample after "
            f"{min(WARMUP_S, args.seconds / 5):.0f} s{outage}",
            "",
            *requests,
            "",
            *goals,
            "",
            *(f"- {line}" for line in remarks),
        ],
    )
    print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()

"""`clicktune simulate`: simulated users search a collection and the service records them.

The serving model ranks the whole corpus for each query, the click model plays the users, and the
sessions reach the service through its REST API (live endpoints or bulk import) or an NDJSON
file. Session and event ids derive from the seed and the serving model, so re-running the same
command is a safe retry while a new model (the next iteration) makes new sessions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from clicktune.client import ClicktuneClient, ErrorResponse
from clicktune.errors import NoChallenger
from clicktune.evaluation.retrieval import model_fingerprint
from clicktune.ids import new_id
from clicktune.simulate.arms import ab_serve, interleave_serve, load_arms
from clicktune.simulate.click_model import ClickModelConfig, PositionBasedClickModel
from clicktune.simulate.collection import Collection, load_collection
from clicktune.simulate.senders import import_sessions, load_items, send_sessions, write_ndjson
from clicktune.simulate.serving import CorpusEncoding, packaged_base_model
from clicktune.simulate.sessions import SimulatedSession, served_sessions, simulate_sessions

QuerySet = Literal["train", "test", "all"]


class SimulationFailed(Exception):
    """A simulation (or the demo) cannot go on; the message says why and what to do."""


@dataclass
class SimulateOptions:
    collection_dir: Path
    url: str
    cache_dir: Path
    model_dir: Path | None = None
    task_id: str | None = None
    queries: QuerySet = "train"
    limit_queries: int | None = None
    sessions_per_query: int = 3
    seed: int = 0
    click_model: ClickModelConfig = field(default_factory=ClickModelConfig)
    load_items: bool = True
    via: Literal["api", "import"] = "api"
    ndjson: Path | None = None
    release: bool = False
    max_seq_length: int | None = None
    bf16: bool | None = None
    concurrency: int = 4
    method: str = "Default Fine Tuning Method"
    challenger_share: float | None = None
    """A/B traffic: each user searches with the arm the service's `<method>@ab` picks (the
    service's CLICKTUNE_CHALLENGER_SHARE splits; this is the share expected, checked)."""
    interleave: bool = False
    """Interleaved traffic: both models rank, the service merges each page."""
    api_key: str | None = field(default=None, repr=False)


def select_queries(
    collection: Collection, queries: QuerySet, seed: int, limit: int | None = None
) -> list[str]:
    """The benchmark split's query ids (train, test or both), the first `limit` of them."""
    train, test = collection.split(seed)
    chosen = {"train": train, "test": test, "all": train + test}[queries]
    return chosen[:limit] if limit is not None else chosen


def progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def serving_model_dir(client: ClicktuneClient, options: SimulateOptions) -> Path:
    """The model that ranks: a task's best model (downloaded once), a folder, or the base."""
    if options.task_id is not None:
        target = options.cache_dir / "models" / options.task_id
        if not target.exists():
            client.download_model(options.task_id, target)
        return target
    return options.model_dir or packaged_base_model()


def simulate_command(options: SimulateOptions, console: Console) -> None:
    try:
        _simulate(options, console)
    except httpx.HTTPError as exc:
        raise SimulationFailed(
            f"cannot reach the service at {options.url} ({exc}); is `clicktune up` running?"
        ) from exc
    except ErrorResponse as exc:
        raise SimulationFailed(f"the service refused a request: {exc}") from exc


def _simulate(options: SimulateOptions, console: Console) -> None:
    collection = load_collection(options.collection_dir)
    query_ids = select_queries(collection, options.queries, options.seed, options.limit_queries)
    with ClicktuneClient(options.url, api_key=options.api_key) as client:
        model_dir = serving_model_dir(client, options)
        console.print(
            f"{collection.name}: {len(collection.documents)} documents, {len(query_ids)} "
            f"{options.queries} queries x {options.sessions_per_query} sessions; serving model "
            f"{model_dir}"
        )
        if options.load_items and options.ndjson is None:
            with progress_bar(console) as progress:
                bar = progress.add_task("catalog items", total=len(collection.documents))
                load_items(client, collection, on_chunk=lambda n: progress.advance(bar, n))
        encoding = CorpusEncoding(
            options.cache_dir / "embeddings", options.max_seq_length, options.bf16
        )
        click_model = PositionBasedClickModel(collection.max_grade, options.click_model)
        if options.interleave or options.challenger_share is not None:
            sessions = online_sessions(
                client, collection, query_ids, encoding, click_model, options, console
            )
        else:
            console.print("ranking the corpus with the serving model (cached after the first time)")
            retriever = encoding.retriever(model_dir, collection, show_progress=True)
            sessions = list(
                simulate_sessions(
                    collection,
                    query_ids,
                    retriever.search,
                    click_model,
                    sessions_per_query=options.sessions_per_query,
                    seed=options.seed,
                    session_prefix=f"sim-{model_fingerprint(model_dir)[:8]}",
                )
            )
        deliver(client, sessions, options, console)
        if options.release and options.ndjson is None:
            released = client.release_batch(release_id=new_id())
            console.print(f"released batch {released['batch_id']}")


def online_sessions(
    client: ClicktuneClient,
    collection: Collection,
    query_ids: list[str],
    encoding: CorpusEncoding,
    click_model: PositionBasedClickModel,
    options: SimulateOptions,
    console: Console,
) -> list[SimulatedSession]:
    """Sessions on traffic split (A/B) or merged (interleaving) between champion and challenger."""
    try:
        arms = load_arms(
            client,
            options.method,
            collection,
            encoding,
            options.cache_dir / "models",
            options.model_dir or packaged_base_model(),
        )
    except NoChallenger as exc:
        raise SimulationFailed(f"{exc}; run a task without a judged set first") from exc
    form = "interleaved" if options.interleave else "A/B"
    console.print(f"{form} traffic: champion {arms.champion}, challenger {arms.challenger}")
    serve = (
        interleave_serve(client, arms, collection, query_ids)
        if options.interleave
        else ab_serve(client, arms)
    )
    prefix = f"{'il' if options.interleave else 'ab'}-{new_id()[:8]}"
    with progress_bar(console) as progress:
        bar = progress.add_task(
            f"{form} searches", total=len(query_ids) * options.sessions_per_query
        )
        sessions = []
        for session in served_sessions(
            collection,
            query_ids,
            serve,
            click_model,
            sessions_per_query=options.sessions_per_query,
            seed=options.seed,
            session_prefix=prefix,
        ):
            sessions.append(session)
            progress.advance(bar)
    if not options.interleave:
        share = sum(s.served_by == arms.challenger for s in sessions) / max(len(sessions), 1)
        console.print(
            f"the service sent {share:.0%} of the users to the challenger"
            + (f" (expected {options.challenger_share:.0%})" if options.challenger_share else "")
        )
    return sessions


def deliver(
    client: ClicktuneClient,
    sessions: list[SimulatedSession],
    options: SimulateOptions,
    console: Console,
) -> None:
    clicks = sum(len(s.outcome.clicked) for s in sessions)
    irrelevant = sum(s.outcome.irrelevant for s in sessions)
    if options.ndjson is not None:
        lines = write_ndjson(options.ndjson, sessions)
        console.print(f"wrote {lines} sessions ({clicks} clicks) to {options.ndjson}")
        return
    if options.via == "import":
        report = import_sessions(client, sessions)
        console.print(
            f"imported {report['sessions']} sessions, {report['events']} events, "
            f"{report['duplicates']} duplicates, {len(report['errors'])} bad lines"
        )
        for failed in report["errors"][:5]:
            error = failed["error"]
            console.print(f"line {failed['line']}: {error['code']}: {error['message']}")
        return
    with progress_bar(console) as progress:
        bar = progress.add_task("sessions", total=len(sessions))
        stats = send_sessions(
            client,
            sessions,
            concurrency=options.concurrency,
            on_session=lambda _: progress.advance(bar),
        )
    console.print(
        f"sent {stats.sessions} sessions with {stats.events} events ({clicks} clicks); "
        f"{irrelevant} marked irrelevant"
    )

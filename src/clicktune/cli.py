"""The `clicktune` command."""

from __future__ import annotations

import json
import os
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, NoReturn

import typer

from clicktune.logs import configure_logging
from clicktune.settings import Settings, get_settings, is_loopback, redact_url

if TYPE_CHECKING:
    from clicktune.ingest.imports import ClickstreamImport, ItemsImport

app = typer.Typer(
    name="clicktune",
    help="Turn search clickstream into better embedding models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"clicktune {version('clicktune')}")
        raise typer.Exit()


@app.callback()
def main(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Turn search clickstream into better embedding models."""


def _set_options(**options: object) -> None:
    """Command-line options, given, win over their `CLICKTUNE_*` variables (and are checked
    like them)."""
    for name, value in options.items():
        if value is not None:
            os.environ[f"CLICKTUNE_{name.upper()}"] = str(value)


def _settings() -> Settings:
    """The settings, or one line per bad `CLICKTUNE_*` variable and exit 2: never the value
    given (CLICKTUNE_API_KEYS holds keys)."""
    from pydantic import ValidationError

    try:
        return get_settings()
    except ValidationError as exc:
        for error in exc.errors(include_input=False, include_url=False):
            name = "CLICKTUNE_" + "_".join(str(part) for part in error["loc"]).upper()
            message = error["msg"].removeprefix("Value error, ")
            typer.echo(f"Refusing to start: {name}: {message}", err=True)
        raise typer.Exit(2) from None


def _setup() -> Settings:
    settings = _settings()
    configure_logging(settings.log_level, settings.log_json, settings.secrets)
    return settings


def _refuse_anonymous_exposure(settings: Settings, *, mlflow_ui: bool) -> None:
    """An open API (no keys) or the MLflow UI (no keys of its own) only on loopback, unless
    CLICKTUNE_ALLOW_ANONYMOUS=1 says that is meant."""
    if settings.allow_anonymous:
        return
    exposed = []
    if not settings.api_key_roles and not is_loopback(settings.host):
        exposed.append(f"the API on {settings.host} without CLICKTUNE_API_KEYS")
    if mlflow_ui and not is_loopback(settings.mlflow_host):
        exposed.append(f"the MLflow UI (no keys) on {settings.mlflow_host}")
    if exposed:
        typer.echo(
            f"Refusing to serve {' and '.join(exposed)}: anyone who reaches it could use it. "
            "Set CLICKTUNE_API_KEYS (and a loopback CLICKTUNE_MLFLOW_HOST), or "
            "CLICKTUNE_ALLOW_ANONYMOUS=1 if that is what you want.",
            err=True,
        )
        raise typer.Exit(2)


def _refuse_unusable_stores(settings: Settings) -> None:
    """The data dir, the database and the MLflow store, checked before anything starts: a
    problem is one line and exit 2, not a traceback or a silent minute in MLflow's retries."""
    from clicktune.store.engine import check_database, make_engine, read_transaction
    from clicktune.tracking.client import tracking_health

    try:
        settings.ensure_data_dir()
        probe = settings.data_dir / ".write-check"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        _refuse(f"the data dir {settings.data_dir} cannot be written ({exc.strerror or exc}).")
    database = redact_url(settings.effective_database_url)
    try:
        url = settings.effective_database_url
        timeout = {} if url.startswith("sqlite") else {"connect_args": {"connect_timeout": 5}}
        engine = make_engine(url, **timeout)
        try:
            with read_transaction(engine) as conn:
                check_database(conn)
        finally:
            engine.dispose()
    except Exception as exc:
        _refuse(f"the database {database} does not answer ({_first_line(exc)}).")
    tracking = tracking_health(settings)
    if tracking["status"] == "error":
        uri = redact_url(settings.effective_mlflow_tracking_uri)
        _refuse(f"the MLflow store {uri} does not answer ({_first_line(tracking['message'])}).")


def _first_line(error: object) -> str:
    text = str(error).strip()
    return (text.splitlines() or [type(error).__name__])[0][:300]


def _refuse(problem: str) -> NoReturn:
    typer.echo(f"Refusing to start: {problem}", err=True)
    raise typer.Exit(2)


def _refuse_host_local_models(settings: Settings) -> None:
    """A database shared between hosts with models kept on one host's disk would leave the
    other hosts without the models: refused at start, with what to set instead."""
    problem = settings.host_local_models()
    if problem is not None:
        _refuse(problem)


@app.command()
def api(
    host: Annotated[
        str | None, typer.Option(help="Where to listen (CLICKTUNE_HOST).", show_default=False)
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="The port (CLICKTUNE_PORT).", show_default=False)
    ] = None,
) -> None:
    """Serve the REST API (CLICKTUNE_HOST:CLICKTUNE_PORT) in the foreground."""
    _set_options(host=host, port=port)
    settings = _setup()
    _refuse_anonymous_exposure(settings, mlflow_ui=False)
    _refuse_host_local_models(settings)
    _refuse_unusable_stores(settings)
    from clicktune.api.app import serve_api

    serve_api(settings)


@app.command()
def worker(
    device: Annotated[
        str | None,
        typer.Option(help="cpu, cuda or cuda:N (CLICKTUNE_DEVICE).", show_default=False),
    ] = None,
) -> None:
    """Run a worker: claim fine-tuning tasks from the database and run them (SIGTERM stops it)."""
    _set_options(device=device)
    settings = _setup()
    _refuse_host_local_models(settings)
    _refuse_unusable_stores(settings)
    from clicktune.worker.loop import run_worker

    run_worker(settings)


@app.command()
def up() -> None:
    """Run the whole service in one command: API, a worker and the MLflow UI, until Ctrl-C."""
    from clicktune.supervisor import supervise, up_children
    from clicktune.tracking.client import ensure_tracking_store

    settings = _setup()
    _refuse_host_local_models(settings)
    _refuse_unusable_stores(settings)
    children = up_children(settings)
    _refuse_anonymous_exposure(settings, mlflow_ui=any(c.name == "mlflow" for c in children))
    ensure_tracking_store(settings)  # before the children that open it
    typer.echo(_serving_banner(settings, mlflow_ui=any(c.name == "mlflow" for c in children)))
    raise typer.Exit(supervise(children))


def _serving_banner(settings: Settings, *, mlflow_ui: bool) -> str:
    """Where everything `up` starts will answer, printed before it does."""
    api = f"http://{settings.host}:{settings.port}"
    lines = [
        f"clicktune {version('clicktune')} starting (Ctrl-C stops it)",
        f"  API          {api}/api/v1",
        f"  API docs     {api}/docs",
    ]
    if mlflow_ui:
        lines.append(f"  MLflow UI    http://{settings.mlflow_host}:{settings.mlflow_port}")
    lines.append(f"  data         {settings.data_dir.resolve()}")
    return "\n".join(lines)


@app.command("import-clickstream")
def import_clickstream(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="JSONL: a session per line.")
    ],
) -> None:
    """Import historical sessions (the lines of POST /clickstream/import) into the collecting batch.

    Bad lines are reported and skipped; the exit code is 1 when there were any.
    """
    from clicktune.ingest.imports import ClickstreamImport

    _import(file, ClickstreamImport)


@app.command("import-items")
def import_items(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="JSONL: an item per line.")
    ],
) -> None:
    """Insert or replace catalog items (each `{"object_id", "text", "fields", "meta"}`).

    Bad lines are reported and skipped; the exit code is 1 when there were any.
    """
    from clicktune.ingest.imports import ItemsImport

    _import(file, ItemsImport)


@app.command("import-judgments")
def import_judgments(
    set_id: Annotated[str, typer.Argument(help="The judged set's id (created or replaced).")],
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, help='JSONL: {"query", "object_id", "grade"} a line.'
        ),
    ],
) -> None:
    """Create or replace a judged set (the evidence a task can be decided on), all or nothing.

    The exit code is 1, and nothing is stored, when a line is bad.
    """
    from rich.console import Console

    from clicktune.errors import ClicktuneError
    from clicktune.ingest.imports import import_judgments as replace_set
    from clicktune.store.engine import make_engine, migrate

    settings = _setup()
    settings.ensure_data_dir()
    engine = make_engine(settings.effective_database_url)
    console = Console(highlight=False)
    try:
        migrate(engine)
        report = replace_set(file, set_id, engine, settings)
    except ClicktuneError as exc:
        param = f" ({exc.param})" if exc.param else ""
        console.print(f"{exc.code}{param}: {exc.message}")
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
    console.print(
        f"judged set {report['set_id']}: {report['queries']} queries, {report['judgments']} "
        f"judgments, {report['unknown_objects']} object ids not in the catalog (yet)"
    )


def _import(file: Path, start: type[ClickstreamImport] | type[ItemsImport]) -> None:
    from rich.console import Console
    from rich.progress import Progress

    from clicktune.ingest.imports import import_file
    from clicktune.store.engine import make_engine, migrate

    settings = _setup()
    settings.ensure_data_dir()
    engine = make_engine(settings.effective_database_url)
    try:
        migrate(engine)
        run = start(engine, settings)
        with Progress() as progress:
            bar = progress.add_task(f"import {file.name}", total=file.stat().st_size)
            import_file(file, run, lambda size: progress.advance(bar, size))
    finally:
        engine.dispose()
    report = run.report()
    console = Console(highlight=False)
    counts = [f"{name} {value}" for name, value in report.items() if isinstance(value, int)]
    console.print(", ".join(counts).replace("errors_total", "bad lines"))
    for failed in report["errors"]:
        error = failed["error"]
        param = f" ({error['param']})" if error["param"] else ""
        console.print(f"line {failed['line']}: {error['code']}{param}: {error['message']}")
    if report["errors_total"] > len(report["errors"]):
        console.print(f"… and {report['errors_total'] - len(report['errors'])} more bad lines")
    if report["errors_total"]:
        raise typer.Exit(1)


@app.command()
def simulate(
    collection: Annotated[
        Path | None,
        typer.Option(
            help="Collection folder (corpus/queries/qrels); default: the bundled catalog."
        ),
    ] = None,
    url: Annotated[
        str | None, typer.Option(help="Service URL; default CLICKTUNE_PUBLIC_URL.")
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            help="Serving model folder (with --interleave or --challenger-share: the method's "
            "initial model, when it is the champion); default the packaged base model."
        ),
    ] = None,
    task: Annotated[
        str | None, typer.Option(help="Serve with this task's best model (downloaded).")
    ] = None,
    queries: Annotated[
        Literal["train", "test", "all"], typer.Option(help="Which queries of the split.")
    ] = "train",
    limit_queries: Annotated[int | None, typer.Option(min=1, help="Only the first N.")] = None,
    sessions_per_query: Annotated[int, typer.Option(min=1)] = 3,
    seed: Annotated[int, typer.Option(help="Same seed, same clickstream.")] = 0,
    eta: Annotated[
        float, typer.Option(min=0.0, help="Position bias: examination (1/p)^eta.")
    ] = 1.0,
    eps: Annotated[float, typer.Option(min=0.0, max=1.0, help="Noise click probability.")] = 0.1,
    add_to_cart: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.3,
    irrelevant: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.5,
    items: Annotated[bool, typer.Option(help="Load the corpus into the catalog first.")] = True,
    via: Annotated[
        Literal["api", "import"], typer.Option(help="Live endpoints or one bulk import.")
    ] = "api",
    ndjson: Annotated[
        Path | None, typer.Option(dir_okay=False, help="Write an import file instead of sending.")
    ] = None,
    release: Annotated[bool, typer.Option(help="Release the batch afterwards.")] = False,
    max_seq_length: Annotated[int | None, typer.Option(min=8)] = None,
    bf16: Annotated[
        bool | None, typer.Option(help="bfloat16 encoding; default where the CPU has it.")
    ] = None,
    method: Annotated[
        str, typer.Option(help="With --challenger-share or --interleave: whose two models.")
    ] = "Default Fine Tuning Method",
    challenger_share: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="A/B traffic: each user searches with the model the service's <method>@ab "
            "picks (its CLICKTUNE_CHALLENGER_SHARE splits; this share is the one expected).",
        ),
    ] = None,
    interleave: Annotated[
        bool,
        typer.Option(help="Interleaved traffic: both models rank, the service merges each page."),
    ] = False,
) -> None:
    """Simulate users searching a public collection and send their clickstream to the service."""
    from rich.console import Console

    from clicktune.simulate.click_model import ClickModelConfig
    from clicktune.simulate.serving import bundled_collection_path
    from clicktune.simulate.traffic import SimulateOptions, SimulationFailed, simulate_command

    settings = _setup()
    options = SimulateOptions(
        collection_dir=collection or bundled_collection_path(),
        url=url or settings.effective_public_url,
        api_key=settings.client_api_key,
        cache_dir=settings.data_dir / "simulate",
        model_dir=model,
        task_id=task,
        queries=queries,
        limit_queries=limit_queries,
        sessions_per_query=sessions_per_query,
        seed=seed,
        click_model=ClickModelConfig(eta, eps, add_to_cart, irrelevant),
        load_items=items,
        via=via,
        ndjson=ndjson,
        release=release,
        max_seq_length=max_seq_length,
        bf16=bf16,
        method=method,
        challenger_share=challenger_share,
        interleave=interleave,
    )
    console = Console()
    try:
        simulate_command(options, console)
    except SimulationFailed as exc:
        console.print(f"[red]simulation failed:[/red] {exc}")
        raise typer.Exit(1) from exc


@app.command()
def demo(
    url: Annotated[
        str | None, typer.Option(help="Service URL; default CLICKTUNE_PUBLIC_URL.")
    ] = None,
    start: Annotated[
        bool, typer.Option(help="Start the service (clicktune up) for the demo.")
    ] = False,
    quick: Annotated[
        bool,
        typer.Option(help="36 queries and their products (about 1,900), not the whole catalog."),
    ] = False,
    stay: Annotated[
        bool, typer.Option(help="With --start: keep the service running afterwards.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Same seed, same shoppers.")] = 0,
) -> None:
    """Simulated shoppers, a fine-tuning task and a before/after table on a product catalog."""
    from rich.console import Console

    from clicktune.simulate.demo import DemoOptions, run_demo
    from clicktune.simulate.traffic import SimulationFailed

    settings = _setup()
    options = DemoOptions(
        url=url or settings.effective_public_url,
        api_key=settings.client_api_key,
        start=start,
        quick=quick,
        seed=seed,
        stay=stay,
    )
    console = Console()
    try:
        run_demo(options, settings, console)
    except SimulationFailed as exc:
        console.print(f"[red]demo failed:[/red] {exc}")
        raise typer.Exit(1) from exc


@app.command()
def config() -> None:
    """Print the effective settings as JSON, by their `CLICKTUNE_*` variables: defaults
    resolved (the database, the MLflow store, the public URL, the device), secrets as `***`."""
    from pydantic import SecretStr

    from clicktune.device import default_device_type

    settings = _settings()
    values = {
        f"CLICKTUNE_{name.upper()}": "***" if isinstance(value, SecretStr) else value
        for name, value in ((name, getattr(settings, name)) for name in type(settings).model_fields)
    }
    client_key = settings.client_api_key
    values |= {
        "CLICKTUNE_DATA_DIR": settings.data_dir.resolve(),
        "CLICKTUNE_DATABASE_URL": redact_url(settings.effective_database_url),
        "CLICKTUNE_MLFLOW_TRACKING_URI": redact_url(settings.effective_mlflow_tracking_uri),
        "CLICKTUNE_PUBLIC_URL": settings.effective_public_url,
        "CLICKTUNE_DEVICE": settings.device or f"{default_device_type()} (the default)",
        "CLICKTUNE_API_KEY": None if client_key is None else "***",
    }
    typer.echo(json.dumps(values, indent=2, default=str))

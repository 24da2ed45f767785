"""The `clicktune` command."""

from __future__ import annotations

import json

import typer

from clicktune.logs import configure_logging
from clicktune.settings import Settings, get_settings

app = typer.Typer(
    name="clicktune",
    help="Turn search clickstream into better embedding models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _setup() -> Settings:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    return settings


@app.command()
def api() -> None:
    """Serve the REST API (CLICKTUNE_HOST:CLICKTUNE_PORT) in the foreground."""
    import uvicorn

    from clicktune.api.app import create_app

    settings = _setup()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")


@app.command()
def config() -> None:
    """Print the effective settings (environment variables applied) as JSON."""
    settings = get_settings()
    values = {name: getattr(settings, name) for name in type(settings).model_fields}
    values["database_url"] = settings.effective_database_url
    values["mlflow_tracking_uri"] = settings.effective_mlflow_tracking_uri
    values["public_url"] = settings.effective_public_url
    typer.echo(json.dumps(values, indent=2, default=str))

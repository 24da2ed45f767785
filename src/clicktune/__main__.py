"""`python -m clicktune` is the `clicktune` command (used to start child processes)."""

from clicktune.cli import app

app(prog_name="clicktune")

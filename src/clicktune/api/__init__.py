"""The REST API (FastAPI). Nothing outside this package imports it, except the CLI."""

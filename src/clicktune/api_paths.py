"""URL paths the server and its Python client agree on (API.md), in one place for both."""

API_PREFIX = "/api/v1"
METRICS_PATH = "/metrics"

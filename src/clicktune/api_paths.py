"""URL paths the server and its Python client agree on (docs/api.md), in one place for both."""

API_PREFIX = "/api/v1"
METRICS_PATH = "/metrics"

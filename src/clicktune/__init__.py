"""clicktune: turn search clickstream into better embedding models."""

__version__ = "0.1.0"

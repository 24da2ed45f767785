"""Store functions called as the API and the worker call them: each in its own transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from sqlalchemy import Engine

from clicktune.store.engine import read_transaction, write_transaction

T = TypeVar("T")


def write(engine: Engine, operation: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`operation(conn, *args, **kwargs)` in a write transaction of its own."""
    with write_transaction(engine) as conn:
        return operation(conn, *args, **kwargs)


def read(engine: Engine, operation: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`operation(conn, *args, **kwargs)` in a read transaction of its own."""
    with read_transaction(engine) as conn:
        return operation(conn, *args, **kwargs)


def stream(
    engine: Engine, operation: Callable[..., Iterator[T]], *args: Any, **kwargs: Any
) -> Iterator[T]:
    """A streaming store function, its read transaction open while the stream is read."""
    with read_transaction(engine) as conn:
        yield from operation(conn, *args, **kwargs)


def outcome(**fields: Any) -> dict[str, Any]:
    """`complete_task`'s result fields, the ones not given None."""
    return {
        "metrics": None,
        "best_run_id": None,
        "best_model_uri": None,
        "promoted": None,
        "challenger": None,
        "mlflow_experiment": None,
        **fields,
    }

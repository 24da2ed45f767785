"""The worker registry: each worker process records when it was last seen, for `/health`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from clicktune.store.tables import workers
from clicktune.timeutil import now as current_time

FORGET_AFTER_S = 7 * 24 * 3600.0


def record_worker(
    conn: Connection, worker_id: str, *, hostname: str, pid: int, started_at: float
) -> None:
    """Mark the worker seen now (first call registers it); forgets workers gone for a week."""
    at = current_time()
    seen = conn.execute(update(workers).where(workers.c.worker_id == worker_id).values(seen_at=at))
    if seen.rowcount == 0:
        conn.execute(delete(workers).where(workers.c.seen_at < at - FORGET_AFTER_S))
        conn.execute(
            insert(workers).values(
                worker_id=worker_id, hostname=hostname, pid=pid, started_at=started_at, seen_at=at
            )
        )


def workers_seen_since(conn: Connection, since: float) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(workers).where(workers.c.seen_at >= since).order_by(workers.c.started_at)
    ).all()
    return [dict(r._mapping) for r in rows]

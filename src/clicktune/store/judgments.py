"""Judged sets: graded `(query, object_id, grade)` judgments users upload as evidence.

A set is replaced whole (`replace_judgment_set`); its `digest` changes with its content, so a task
can say which version of the set it was judged on. Every function takes the caller's `Connection`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import Connection, delete, func, insert, select

from clicktune.errors import JudgmentSetNotFound
from clicktune.jsontext import canonical_hash
from clicktune.store.tables import items, judgment_sets, judgments
from clicktune.timeutil import now as current_time

# Ids per `IN (...)` query: well under SQLite's bound-parameter limit.
_IDS_PER_QUERY = 500
SAMPLE_SIZE = 20


class Judgment(NamedTuple):
    query: str
    object_id: str
    grade: int


@dataclass(frozen=True)
class JudgmentSetSummary:
    set_id: str
    queries: int
    judgments: int
    digest: str
    created_at: float
    updated_at: float


def judgments_digest(rows: Sequence[Judgment]) -> str:
    """The same judgments in any order give the same digest."""
    return canonical_hash(sorted(rows))


def replace_judgment_set(
    conn: Connection, set_id: str, rows: Sequence[Judgment]
) -> tuple[JudgmentSetSummary, int]:
    """Create or replace the set with `rows` (validated: no repeated (query, object_id) pair).

    Returns its summary and how many judged object ids are not in the catalog now.
    """
    at = current_time()
    existing = get_judgment_set(conn, set_id)
    conn.execute(delete(judgments).where(judgments.c.set_id == set_id))
    values = {
        "queries": len({row.query for row in rows}),
        "judgments": len(rows),
        "digest": judgments_digest(rows),
        "updated_at": at,
    }
    if existing is None:
        conn.execute(insert(judgment_sets).values(set_id=set_id, created_at=at, **values))
    else:
        conn.execute(
            judgment_sets.update().where(judgment_sets.c.set_id == set_id).values(**values)
        )
    if rows:
        conn.execute(
            insert(judgments),
            [{"set_id": set_id, **row._asdict()} for row in rows],
        )
    summary = get_judgment_set(conn, set_id)
    assert summary is not None
    return summary, _unknown_objects(conn, {row.object_id for row in rows})


def _unknown_objects(conn: Connection, object_ids: set[str]) -> int:
    wanted = sorted(object_ids)
    known = 0
    for start in range(0, len(wanted), _IDS_PER_QUERY):
        chunk = wanted[start : start + _IDS_PER_QUERY]
        known += conn.execute(
            select(func.count()).select_from(items).where(items.c.object_id.in_(chunk))
        ).scalar_one()
    return len(wanted) - known


def get_judgment_set(conn: Connection, set_id: str) -> JudgmentSetSummary | None:
    row = conn.execute(select(judgment_sets).where(judgment_sets.c.set_id == set_id)).first()
    return None if row is None else JudgmentSetSummary(**row._mapping)


def list_judgment_sets(conn: Connection) -> list[JudgmentSetSummary]:
    rows = conn.execute(select(judgment_sets).order_by(judgment_sets.c.set_id))
    return [JudgmentSetSummary(**row._mapping) for row in rows]


def delete_judgment_set(conn: Connection, set_id: str) -> bool:
    """Remove the set and its judgments; False when there was none."""
    conn.execute(delete(judgments).where(judgments.c.set_id == set_id))
    return conn.execute(delete(judgment_sets).where(judgment_sets.c.set_id == set_id)).rowcount > 0


def sample_judgments(conn: Connection, set_id: str, limit: int = SAMPLE_SIZE) -> list[Judgment]:
    """The set's first judgments, in the order they were sent."""
    rows = conn.execute(
        select(judgments.c.query, judgments.c.object_id, judgments.c.grade)
        .where(judgments.c.set_id == set_id)
        .order_by(judgments.c.seq)
        .limit(limit)
    )
    return [Judgment(*row) for row in rows]


def load_judgments(conn: Connection, set_id: str) -> tuple[str, dict[str, dict[str, int]]]:
    """The set's digest and its judgments as `query → object_id → grade`.

    Raises `JudgmentSetNotFound`.
    """
    summary = get_judgment_set(conn, set_id)
    if summary is None:
        raise JudgmentSetNotFound(set_id)
    graded: dict[str, dict[str, int]] = {}
    rows = conn.execute(
        select(judgments.c.query, judgments.c.object_id, judgments.c.grade)
        .where(judgments.c.set_id == set_id)
        .order_by(judgments.c.seq)
    )
    for query, object_id, grade in rows:
        graded.setdefault(query, {})[object_id] = grade
    return summary.digest, graded

"""A tiny shop for the tuning unit tests: a catalog, clicked sessions and judgments, in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clicktune.tuning.plugin import TaskSpec
from clicktune.tuning.testing import InMemoryTaskContext

COLORS = ("red", "blue", "green", "black")
KINDS = ("shoe", "shirt", "hat")
ITEMS = {f"{color}-{kind}": f"{kind} in {color}" for color in COLORS for kind in KINDS}
QUERIES = {f"{color} {kind}": f"{color}-{kind}" for color in COLORS for kind in KINDS}
"""Twelve queries, each with the one item it is after."""


def sessions(per_query: int = 2) -> list[dict[str, Any]]:
    """Each query's sessions show four items with the wanted one third, clicked."""
    ids = sorted(ITEMS)
    lines = []
    for query, wanted in QUERIES.items():
        others = [oid for oid in ids if oid != wanted][:3]
        for _ in range(per_query):
            lines.append(
                {
                    "search_query": query,
                    "search_results": [others[0], others[1], wanted, others[2]],
                    "events": [{"object_id": wanted}],
                }
            )
    return lines


def judgments(queries: list[str]) -> dict[str, dict[str, int]]:
    """The wanted item of each query graded 3."""
    return {query: {QUERIES[query]: 3} for query in queries}


def shop_context(tmp_path: Path, **task: Any) -> InMemoryTaskContext:
    """The shop's batch with a judged set `golden` of every other query (and `every`, all)."""
    return InMemoryTaskContext(
        TaskSpec(task_id="task-1", fine_tuning_method="m", batch_id="batch-1", **task),
        work_dir=tmp_path,
        sessions=sessions(),
        items=ITEMS,
        judgments={
            "golden": judgments(sorted(QUERIES)[::2]),
            "every": judgments(sorted(QUERIES)),
        },
    )

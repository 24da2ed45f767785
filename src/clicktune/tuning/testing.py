"""An in-memory `TaskContext`, for tests of methods and of the iteration's steps.

The worker's context reads the batch, the catalog and judged sets from the database and writes
progress and events back, each write conditional on its lease. `InMemoryTaskContext` does the same
over plain lists and dicts that a test sets up, and records what the method reports, so a test
runs a method (or one step of the iteration) without a database or a worker:

    context = InMemoryTaskContext(
        sessions=[{"search_query": "red shoe", "search_results": ["a", "b"],
                   "events": [{"object_id": "b"}]}],
        items={"a": "blue shirt", "b": "red shoe"},
        work_dir=tmp_path,
    )
    context.events[-1].message, context.progress[-1]["percent"], context.completing
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from clicktune.errors import JudgmentSetNotFound, TaskFailed
from clicktune.jsontext import canonical_hash
from clicktune.settings import Settings
from clicktune.tuning.plugin import TaskContext, TaskSpec

Level = Literal["info", "warning", "error"]
Graded = Mapping[str, Mapping[str, int]]
"""A judged set: query → object_id → grade."""


@dataclass(frozen=True)
class RecordedEvent:
    """One `add_event` call."""

    message: str
    level: Level
    data: dict[str, Any] = field(default_factory=dict)


class InMemoryTaskContext(TaskContext):
    """A real `TaskContext` over in-memory sessions, items and judged sets.

    Sessions and items may be given tersely: a session needs only `search_query`; results may be
    object ids; an event needs only `object_id` (a `click`). An item is its text, or a mapping
    with `text`, `fields` and `meta`. Everything the method reports is kept: `progress` (every
    `report_progress`, in order), `events`, `completing` and `completions`.
    """

    def __init__(
        self,
        task: TaskSpec | None = None,
        *,
        work_dir: Path,
        sessions: Iterable[Mapping[str, Any]] = (),
        items: Mapping[str, str | Mapping[str, Any]] | None = None,
        judgments: Mapping[str, Graded] | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.task = task or TaskSpec(
            task_id="task-1", fine_tuning_method="test method", batch_id="batch-1"
        )
        self.settings = settings or Settings()
        self.work_dir = work_dir
        self.sessions = [_session(number, s) for number, s in enumerate(sessions, 1)]
        self.catalog = {oid: _item(oid, item) for oid, item in sorted((items or {}).items())}
        self.judged_sets = {set_id: _graded(graded) for set_id, graded in (judgments or {}).items()}
        self.progress: list[dict[str, Any]] = []
        self.events: list[RecordedEvent] = []
        self.canceled = False
        self.completing = False
        self.completions = 0
        """How many times `begin_completing` was won (more than once is a bug)."""

    # -- what a test does to the task ------------------------------------------------------

    def cancel(self) -> bool:
        """Cancel the task, as the API does: refused (False) once it is completing."""
        if self.completing:
            return False
        self.canceled = True
        return True

    def messages(self) -> list[str]:
        return [event.message for event in self.events]

    # -- TaskContext -----------------------------------------------------------------------

    def is_canceled(self) -> bool:
        return self.canceled

    def begin_completing(self) -> None:
        self.raise_if_canceled()
        self.completing = True
        self.completions += 1

    def report_progress(self, **progress: Any) -> None:
        self.progress.append(dict(progress))

    def add_event(self, message: str, level: Level = "info", **data: Any) -> None:
        self.events.append(RecordedEvent(message, level, data))

    def iter_sessions(self) -> Iterator[dict[str, Any]]:
        for session in self.sessions:
            yield copy.deepcopy(session)

    def items(self, object_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {oid: copy.deepcopy(self.catalog[oid]) for oid in object_ids if oid in self.catalog}

    def iter_catalog(self) -> Iterator[dict[str, Any]]:
        for item in self.catalog.values():
            yield copy.deepcopy(item)

    def judgments(self, set_id: str) -> tuple[str, dict[str, dict[str, int]]]:
        graded = self.judged_sets.get(set_id)
        if graded is None:
            missing = JudgmentSetNotFound(set_id)
            raise TaskFailed(missing.code, missing.message)
        return canonical_hash(graded), copy.deepcopy(graded)


def _session(number: int, session: Mapping[str, Any]) -> dict[str, Any]:
    """A session as the worker streams it, its missing fields filled in."""
    results = [
        {"object_id": r, "rank": None, "meta": {}}
        if isinstance(r, str)
        else {"rank": None, "meta": {}, **r}
        for r in session.get("search_results", ())
    ]
    events = [
        {
            "event_id": f"e-{number}-{index}",
            "event_type": "click",
            "created_at": None,
            "meta": {},
            **event,
        }
        for index, event in enumerate(session.get("events", ()), 1)
    ]
    return {
        "session_id": f"s-{number}",
        "session_number": number,
        "search_meta": {},
        "user_id": None,
        "created_at": None,
        "is_irrelevant": False,
        **session,
        "search_results": results,
        "events": events,
    }


def _item(object_id: str, item: str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(item, str):
        return {"object_id": object_id, "text": item, "fields": {}, "meta": {}}
    return {"object_id": object_id, "text": None, "fields": {}, "meta": {}, **item}


def _graded(graded: Graded) -> dict[str, dict[str, int]]:
    return {query: dict(grades) for query, grades in graded.items()}

"""The in-memory task context: what it streams, what it records, and how cancel and the
completing step interact (as with the worker's context)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from clicktune.errors import TaskCanceled, TaskFailed
from clicktune.tuning.testing import InMemoryTaskContext, RecordedEvent


def test_terse_sessions_and_items_are_filled_in(tmp_path: Path) -> None:
    context = InMemoryTaskContext(
        work_dir=tmp_path,
        sessions=[
            {"search_query": "red shoe", "search_results": ["a", {"object_id": "b", "rank": 2}]},
            {"search_query": "hat", "events": [{"object_id": "c", "event_type": "purchase"}]},
        ],
        items={"b": "red shoe", "a": {"fields": {"title": "blue shirt"}}},
    )
    first, second = context.iter_sessions()
    assert (first["session_id"], first["session_number"], second["session_number"]) == (
        "s-1",
        1,
        2,
    )
    assert first["search_results"] == [
        {"object_id": "a", "rank": None, "meta": {}},
        {"object_id": "b", "rank": 2, "meta": {}},
    ]
    assert (first["is_irrelevant"], first["user_id"], first["events"]) == (False, None, [])
    [event] = second["events"]
    assert (event["object_id"], event["event_type"], event["event_id"]) == (
        "c",
        "purchase",
        "e-2-1",
    )
    assert [item["object_id"] for item in context.iter_catalog()] == ["a", "b"]
    assert context.items(["b", "unknown"]) == {
        "b": {"object_id": "b", "text": "red shoe", "fields": {}, "meta": {}}
    }
    first["search_query"] = "changed by the method"
    assert next(context.iter_sessions())["search_query"] == "red shoe"


def test_judged_sets_have_a_digest_of_their_content(tmp_path: Path) -> None:
    context = InMemoryTaskContext(
        work_dir=tmp_path,
        judgments={"a": {"q": {"x": 3, "y": 0}}, "b": {"q": {"y": 0, "x": 3}}, "c": {"q": {}}},
    )
    digest, graded = context.judgments("a")
    assert graded == {"q": {"x": 3, "y": 0}}
    assert digest == context.judgments("b")[0] != context.judgments("c")[0]
    with pytest.raises(TaskFailed) as failed:
        context.judgments("gone")
    assert failed.value.code == "judgment_set_not_found"


def test_progress_and_events_are_recorded_in_order(tmp_path: Path) -> None:
    context = InMemoryTaskContext(work_dir=tmp_path)
    context.report_progress(stage="a", percent=1.0)
    context.add_event("first", run=1)
    context.add_event("second", level="warning")
    context.report_progress(stage="b", percent=2.0)
    assert context.progress == [{"stage": "a", "percent": 1.0}, {"stage": "b", "percent": 2.0}]
    assert context.events == [
        RecordedEvent("first", "info", {"run": 1}),
        RecordedEvent("second", "warning", {}),
    ]
    assert context.messages() == ["first", "second"]


def test_a_canceled_task_cannot_complete_and_a_completing_one_cannot_be_canceled(
    tmp_path: Path,
) -> None:
    canceled = InMemoryTaskContext(work_dir=tmp_path)
    assert canceled.cancel() is True and canceled.is_canceled()
    with pytest.raises(TaskCanceled):
        canceled.begin_completing()
    assert (canceled.completing, canceled.completions) == (False, 0)

    completing = InMemoryTaskContext(work_dir=tmp_path)
    completing.begin_completing()
    assert completing.cancel() is False
    assert not completing.is_canceled() and completing.completions == 1
    completing.raise_if_canceled()


def test_the_guides_own_run_example_runs_on_the_in_memory_context(tmp_path: Path) -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text()
    [source] = re.findall(r"```python\n# plugins/click_stats\.py\n(.*?)```", guide, re.DOTALL)
    namespace: dict[str, Any] = {}
    exec(compile(source, "click_stats.py", "exec"), namespace)
    context = InMemoryTaskContext(
        work_dir=tmp_path,
        sessions=[
            {
                "search_query": "red shoe",
                "search_results": ["a", "b"],
                "events": [{"object_id": "b"}],
            }
        ],
    )
    result = namespace["ClickStatsMethod"]().run(context)
    assert result.metrics == {"main_metric": "ctr", "best": 0.5, "sessions": 1}
    assert context.progress[-1] == {"stage": "done", "percent": 100.0}
    assert context.messages() == ["counted"]

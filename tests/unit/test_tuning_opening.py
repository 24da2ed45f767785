"""Opening an iteration without a database or MLflow: the judged set read from the catalog, its
queries kept out of training (or the task refused when nothing would be left), the events that
say so, and which model the iteration starts from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from clicktune.errors import TaskFailed
from clicktune.logs import get_logger
from clicktune.methods.default import DefaultFineTuningMethod
from clicktune.training.examples import PreparedData
from clicktune.tuning.hooks import IterationHooks
from clicktune.tuning.judged_set import hold_out_judged_queries, load_judged_set
from clicktune.tuning.live_decision import LiveDecision
from clicktune.tuning.opening import read_judged_set, report_data, starting_run
from clicktune.tuning.progress import ProgressReporter
from clicktune.tuning.scope import IterationScope
from clicktune.tuning.testing import InMemoryTaskContext
from tests.tuning_support import ITEMS, QUERIES, shop_context

METHOD = DefaultFineTuningMethod()


def prepared(context: InMemoryTaskContext, tmp_path: Path) -> PreparedData:
    return METHOD.prepare_data(context, tmp_path / "data")


def scope(context: InMemoryTaskContext, tmp_path: Path) -> IterationScope:
    log = get_logger(__name__)
    return IterationScope(METHOD, context, ProgressReporter(context, log), tmp_path, log)


def test_the_methods_implement_every_hook_the_iteration_calls() -> None:
    hooks = {
        name
        for name in vars(IterationHooks)
        if not name.startswith("_") and name not in {"meta", "config", "registered_model_name"}
    }
    assert hooks == {
        "validate_hyperparameters",
        "prepare_data",
        "item_text",
        "initial_model_path",
        "make_evaluator",
        "evaluate",
        "train",
    }
    assert all(callable(getattr(METHOD, name)) for name in hooks)
    assert (METHOD.meta.name, METHOD.registered_model_name) == (METHOD.meta.name,) * 2
    assert METHOD.config.main_metric == "ndcg_at_10"


def test_a_judged_set_ranks_the_whole_catalog_below_the_limit(tmp_path: Path) -> None:
    context = shop_context(tmp_path)
    judged = load_judged_set(context, "golden", METHOD.item_text, max_items=100, seed=0)
    assert (judged.pooled, judged.catalog_items, judged.judged_without_content) == (
        False,
        len(ITEMS),
        0,
    )
    assert judged.corpus == ITEMS
    assert len(judged.evidence.judged_queries()) == 6
    assert judged.digest == context.judgments("golden")[0]
    assert "the whole catalog (12 items)" in judged.describe()


def test_above_the_limit_a_judged_set_ranks_its_items_and_a_seeded_sample(tmp_path: Path) -> None:
    context = shop_context(tmp_path)
    judged = load_judged_set(context, "golden", METHOD.item_text, max_items=8, seed=0)
    judged_ids = {oid for grades in context.judged_sets["golden"].values() for oid in grades}
    assert judged.pooled and len(judged.corpus) == 8 and judged_ids <= set(judged.corpus)
    again = load_judged_set(context, "golden", METHOD.item_text, max_items=8, seed=0)
    assert again.corpus == judged.corpus
    assert "a pool of 8 of the catalog's 12 items" in judged.describe()


def test_a_judged_set_without_a_relevant_judgment_is_refused(tmp_path: Path) -> None:
    context = InMemoryTaskContext(
        work_dir=tmp_path, items=ITEMS, judgments={"zeros": {"red shoe": {"red-shoe": 0}}}
    )
    with pytest.raises(TaskFailed) as failed:
        load_judged_set(context, "zeros", METHOD.item_text, max_items=100, seed=0)
    assert failed.value.code == "judgment_set_unusable"


def test_judged_queries_are_kept_out_of_training(tmp_path: Path) -> None:
    context = shop_context(tmp_path)
    data = prepared(context, tmp_path)
    judged = load_judged_set(context, "golden", METHOD.item_text, max_items=100, seed=0)
    before = data.stats.train_positives
    hold_out_judged_queries(context, data, judged)
    event = context.events[-1]
    removed = event.data["held_out_positives"]
    assert 0 < removed < before
    assert event.message == (
        f"The judged set's queries are kept out of training: {removed} training positives "
        f"of {before} left out"
    )
    trained = {record[0] for record in data.iter_examples(test=False)}
    assert trained.isdisjoint(context.judged_sets["golden"])


def test_a_task_whose_every_training_query_is_judged_is_refused(tmp_path: Path) -> None:
    context = shop_context(tmp_path)
    data = prepared(context, tmp_path)
    judged = load_judged_set(context, "every", METHOD.item_text, max_items=100, seed=0)
    with pytest.raises(TaskFailed) as failed:
        hold_out_judged_queries(context, data, judged)
    assert failed.value.code == "no_training_data"
    assert "Every training query of batch batch-1 is in judged set 'every'" in failed.value.message
    assert context.events == []


def test_reading_the_judged_set_reports_the_stage_and_what_decides(tmp_path: Path) -> None:
    context = shop_context(tmp_path, validation_set="golden")
    judged = read_judged_set(scope(context, tmp_path))
    assert judged is not None and judged.set_id == "golden"
    assert context.progress == [
        {
            "stage": "judged_set",
            "runs_total": 1,
            "runs_done": 0,
            "current_run": None,
            "percent": 0.5,
        }
    ]
    assert context.messages() == [
        "Reading judged set 'golden' and the catalog",
        "Deciding on judged set 'golden': 6 queries with a relevant judgment, ranking the whole "
        "catalog (12 items)",
    ]
    assert context.events[1].data["validation_set_digest"] == judged.digest


def test_without_a_judged_set_the_task_says_clicks_cannot_promote(tmp_path: Path) -> None:
    context = shop_context(tmp_path)
    assert read_judged_set(scope(context, tmp_path)) is None
    assert context.progress == []
    [event] = context.events
    assert event.data == {"evidence": "none"} and "cannot promote" in event.message


def test_the_batch_is_reported_with_objects_without_content(tmp_path: Path) -> None:
    context = shop_context(tmp_path)
    context.catalog.pop(QUERIES["red shoe"])
    report_data(context, prepared(context, tmp_path))
    summary, warning = context.events
    assert summary.message.endswith("11 items in the test pool)")
    assert summary.data["sessions"] == 24
    assert warning.level == "warning"
    assert warning.data["objects_without_content"] == 1 and warning.data["examples"] == ["red-shoe"]


@dataclass
class FakeTracking:
    """The two questions `starting_run` asks of MLflow."""

    champion_version: Any = None
    initial_asked: int = 0

    def champion(self) -> Any:
        return self.champion_version

    def initial_run(self, model_dir: Any) -> str:
        self.initial_asked += 1
        return "initial-run"


def live(decision: str) -> LiveDecision:
    return LiveDecision(
        {"decision": decision}, champion="1", challenger="2", challenger_run_id="challenger-run"
    )


def test_the_starting_model_is_the_promoted_challenger_the_champion_or_the_initial_one() -> None:
    champion = SimpleNamespace(version=1, run_id="champion-run")
    tracking: Any = FakeTracking(champion)
    initial = METHOD.initial_model_path
    assert starting_run(tracking, live("promoted"), initial) == ("challenger-run", "2")
    assert starting_run(tracking, live("kept"), initial) == ("champion-run", "1")
    assert starting_run(tracking, None, initial) == ("champion-run", "1")
    fresh: Any = FakeTracking()
    assert starting_run(fresh, live("retired"), initial) == ("initial-run", None)
    assert fresh.initial_asked == 1

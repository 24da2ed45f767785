"""What a task decides on the real stack (tiny BERT, real MLflow): judged evidence promotes only
a better model, no evidence makes a challenger, and the policies do what they say. The task
metrics, its events, the MLflow run tags and the aliases agree.

SQLite only: the database paths are the pipeline tests' (both databases); these are about the
decision.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from clicktune.methods.registry import MethodRegistry
from clicktune.settings import Settings
from clicktune.status import Promotion
from clicktune.store.engine import read_transaction
from clicktune.store.tasks import list_events
from clicktune.tracking.client import make_client
from clicktune.tracking.registry import CHALLENGER, CHAMPION, ModelRegistry
from clicktune.tuning.plugin import TaskResult
from tests.pipeline_support import (
    TINY_METHOD,
    Shop,
    claimed_context,
    load_batch,
    load_judged_set,
    register_tiny_model,
)

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


def run_task(
    engine: Engine, psettings: Settings, registry: MethodRegistry, shop: Shop, **evidence: Any
) -> tuple[TaskResult, list[dict[str, Any]]]:
    batch = load_batch(engine, shop, shop.sessions(per_query=2))
    with claimed_context(engine, psettings, TINY_METHOD, batch, **evidence) as context:
        result = registry.get(TINY_METHOD).run(context)
    with read_transaction(engine) as conn:
        events, _ = list_events(conn, context.task.task_id, limit=1000)
    return result, events


def model_registry(psettings: Settings) -> ModelRegistry:
    return ModelRegistry(make_client(psettings), TINY_METHOD, tags={})


def decision_event(events: list[dict[str, Any]]) -> dict[str, Any]:
    [event] = [e for e in events if "promoted" in e["data"] and "evidence" in e["data"]]
    return event


def test_a_candidate_worse_on_the_judged_set_is_not_promoted(
    engine: Engine, psettings: Settings, registry: MethodRegistry
) -> None:
    shop = Shop()
    inverted = load_judged_set(engine, "inverted", shop.judgments(inverted=True))
    result, events = run_task(engine, psettings, registry, shop, validation_set=inverted)
    metrics = result.metrics
    assert metrics is not None
    assert (result.promoted, result.challenger, metrics["evidence"]) == (False, False, "judged")
    assert metrics["best"] < metrics["baseline"]
    assert metrics["gain_interval"][1] < 0 and metrics["losses"] > metrics["wins"]
    assert model_registry(psettings).version(CHAMPION) is None
    event = decision_event(events)
    assert event["message"] == metrics["promotion_reason"]
    assert event["data"]["comparison"]["interval"] == metrics["gain_interval"]
    run = make_client(psettings).get_run(result.best_run_id)
    assert run.data.tags["clicktune.decision"] == "kept"


def test_without_a_judged_set_one_run_becomes_the_challenger(
    engine: Engine, psettings: Settings, registry: MethodRegistry
) -> None:
    result, events = run_task(engine, psettings, registry, Shop())
    metrics = result.metrics
    assert metrics is not None
    assert (result.promoted, result.challenger, metrics["evidence"]) == (False, True, "none")
    assert "baseline" not in metrics and "gain" not in metrics  # nothing judged
    assert {"clicks_baseline", "clicks_best"} <= set(metrics)
    client = make_client(psettings)
    experiment = client.get_experiment_by_name(result.mlflow_experiment)
    assert {r.info.run_name for r in client.search_runs([experiment.experiment_id])} == {
        "baseline",
        "run-1",
    }
    models = model_registry(psettings)
    assert models.version(CHAMPION) is None
    challenger = models.version(CHALLENGER)
    assert challenger is not None and challenger.run_id == result.best_run_id
    [move] = models.history()
    assert (move["event"], move["reason"]) == ("challenger", metrics["promotion_reason"])
    assert move["evidence"]["evidence"] == "none"
    assert decision_event(events)["data"]["challenger"] is True
    assert client.get_run(result.best_run_id).data.tags["clicktune.decision"] == "challenger"


def test_n_trials_without_a_judged_set_selects_by_clicks(
    engine: Engine, psettings: Settings, registry: MethodRegistry
) -> None:
    result, events = run_task(engine, psettings, registry, Shop(), n_trials=2)
    assert result.challenger is True
    assert any(e["message"].startswith("Run run-2 finished: clicks_ndcg_at_10") for e in events)


def test_always_promotes_without_evidence_and_never_changes_nothing(
    engine: Engine, psettings: Settings, registry: MethodRegistry
) -> None:
    shop = Shop()
    golden = load_judged_set(engine, "golden", shop.judgments())
    never, _ = run_task(
        engine, psettings, registry, shop, validation_set=golden, promotion=Promotion.NEVER
    )
    assert (never.promoted, never.challenger) == (False, False)
    assert never.metrics is not None and never.metrics["evidence"] == "judged"
    assert never.metrics["gain_interval"][0] > 0  # better, yet the policy keeps the champion
    models = model_registry(psettings)
    assert models.version(CHAMPION) is None and models.version(CHALLENGER) is None

    always, _ = run_task(engine, psettings, registry, Shop(seed=3), promotion=Promotion.ALWAYS)
    assert (always.promoted, always.challenger) == (True, False)
    assert always.metrics is not None and always.metrics["evidence"] == "none"
    champion = models.version(CHAMPION)
    assert champion is not None and champion.run_id == always.best_run_id


@pytest.mark.parametrize(("challenger_wins", "decision"), [(True, "promoted"), (False, "retired")])
def test_live_traffic_decides_about_the_challenger_before_training(
    engine: Engine,
    psettings: Settings,
    registry: MethodRegistry,
    challenger_wins: bool,
    decision: str,
) -> None:
    champion = f"{TINY_METHOD}/initial"
    challenger = register_tiny_model(psettings, "challenger", "earlier-task", seed=1)
    shop = Shop()
    sessions = shop.sessions(per_query=2)
    winner, loser = (challenger, champion) if challenger_wins else (champion, challenger)
    batch = load_batch(engine, shop, shop.interleaved(sessions, winner, loser))
    with claimed_context(engine, psettings, TINY_METHOD, batch) as context:
        result = registry.get(TINY_METHOD).run(context)
    assert result.metrics is not None
    online = result.metrics["online"]
    assert (online["decision"], online["verdict"]) == (
        decision,
        "better" if challenger_wins else "worse",
    )
    assert online["decided_by"] == "interleaving"
    part = online["interleaving"]
    assert part["wins" if challenger_wins else "losses"] == len(sessions) - len(sessions) // 4
    models = model_registry(psettings)
    history = models.history()
    moved = next(m for m in history if m["task_id"] == context.task.task_id and m["version"] == "1")
    assert moved["event"] == ("champion" if challenger_wins else "retired")
    assert moved["reason"] == online["reason"] and moved["evidence"]["evidence"] == "online"
    client = make_client(psettings)
    experiment = client.get_experiment_by_name(result.mlflow_experiment)
    challenger_run = client.get_model_version(TINY_METHOD, "1").run_id
    starting = experiment.tags["starting_run_id"]
    # The task trains from the champion the traffic left: the old challenger when it won.
    assert (starting == challenger_run) is challenger_wins
    # This task's own model (no judged set) is the new challenger either way.
    assert result.challenger is True
    assert models.version(CHALLENGER).run_id == result.best_run_id

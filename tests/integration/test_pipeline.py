"""The iteration pipeline on the real stack: both databases, a real MLflow store, the worker's
own task context (and, where processes matter, real worker processes).

The method under test is the default method on a tiny BERT (tests/pipeline_plugins).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from mlflow.entities import ViewType
from sqlalchemy import Engine, select

from clicktune import TaskFailed
from clicktune.methods.registry import MethodRegistry, load_registry
from clicktune.settings import Settings
from clicktune.store import tasks as task_store
from clicktune.store.engine import read_transaction, write_transaction
from clicktune.store.tables import task_events
from clicktune.tracking.client import make_client
from clicktune.tracking.iterations import INITIAL_EXPERIMENT
from clicktune.training.search import params_hash
from clicktune.training.search_space import parse_params
from clicktune.worker.loop import Worker
from tests.pipeline_plugins.tiny_methods import TINY_SPACE
from tests.pipeline_support import (
    BROKEN_METHOD,
    TINY_METHOD,
    TINY_MODEL_ENV,
    Shop,
    claimed_context,
    load_batch,
    load_judged_set,
    tiny_model_path,
)
from tests.task_support import wait_for, workers

pytestmark = pytest.mark.usefixtures("one_thread")


def events(engine: Engine, task_id: str) -> list[dict[str, Any]]:
    with read_transaction(engine) as conn:
        rows = conn.execute(
            select(task_events.c.level, task_events.c.message, task_events.c.data)
            .where(task_events.c.task_id == task_id)
            .order_by(task_events.c.seq)
        ).all()
    return [dict(row._mapping) for row in rows]


def task_row(engine: Engine, task_id: str) -> task_store.Task:
    with read_transaction(engine) as conn:
        task = task_store.get_task(conn, task_id)
    assert task is not None
    return task


def test_two_iterations_on_the_real_stack(
    engine: Engine, psettings: Settings, registry: MethodRegistry
) -> None:
    shop = Shop(seed=1)
    batch = load_batch(engine, shop, shop.sessions(per_query=2, irrelevant_every=7))
    golden = load_judged_set(engine, "golden", shop.judgments())
    method = registry.get(TINY_METHOD)
    with claimed_context(engine, psettings, TINY_METHOD, batch, validation_set=golden) as context:
        result = method.run(context)
        assert not (context.work_dir / "iteration").exists()
    task_id = context.task.task_id

    assert (result.promoted, result.challenger) == (True, False)
    metrics = result.metrics
    assert metrics is not None and metrics["main_metric"] == "ndcg_at_10"
    assert metrics["evidence"] == "judged" and metrics["validation_set"] == golden
    assert metrics["best"] > metrics["baseline"]
    assert metrics["gain"] == pytest.approx(metrics["best"] - metrics["baseline"])
    low, high = metrics["gain_interval"]
    assert 0 < low <= metrics["gain"] <= high
    assert (
        metrics["queries"]
        == len({judgment.query for judgment in shop.judgments()})
        == metrics["wins"] + metrics["ties"] + (metrics["losses"])
    )
    assert (metrics["judged_items"], metrics["judged_pooled"]) == (len(shop.items), False)
    assert metrics["promotion_reason"].startswith("Promoted run-")
    assert {"clicks_baseline", "clicks_best"} <= set(metrics)
    assert result.mlflow_experiment == f"iteration / {TINY_METHOD} / {batch}"
    assert result.best_model_uri == f"runs:/{result.best_run_id}/model"

    client = make_client(psettings)
    initial = client.get_experiment_by_name(INITIAL_EXPERIMENT)
    [initial_run] = client.search_runs([initial.experiment_id])
    assert initial_run.info.run_name == TINY_METHOD
    assert [a.path for a in client.list_artifacts(initial_run.info.run_id)] == ["model"]
    assert {a.path for a in client.list_artifacts(initial_run.info.run_id, "model")} >= {
        "model/MLmodel",
        "model/model.sentence_transformer",
    }

    experiment = client.get_experiment_by_name(result.mlflow_experiment)
    assert experiment.artifact_location == psettings.mlflow_artifacts_dir.as_uri()
    assert {k: experiment.tags[k] for k in ("task_id", "fine_tuning_method", "batch_id")} == {
        "task_id": task_id,
        "fine_tuning_method": TINY_METHOD,
        "batch_id": batch,
    }
    assert experiment.tags["starting_run_id"] == initial_run.info.run_id
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"baseline", "run-1", "run-2"}
    baseline = runs["baseline"]
    assert baseline.data.metrics["judged_ndcg_at_10"] == metrics["baseline"]
    assert baseline.data.metrics["clicks_ndcg_at_10"] == metrics["clicks_baseline"]
    assert set(baseline.data.metrics) == {
        f"{evidence}_{name}"
        for evidence in ("clicks", "judged")
        for name in ("ndcg_at_10", "mrr_at_10", "recall_at_10", "recall_at_100")
    }
    with_model = []
    for name in ("run-1", "run-2"):
        run = runs[name]
        assert run.info.status == "FINISHED"
        params = parse_params(TINY_SPACE, run.data.params)
        assert set(params) == set(TINY_SPACE)
        assert run.data.tags["params_hash"] == params_hash(params)
        losses = client.get_metric_history(run.info.run_id, "train_loss")
        assert [m.step for m in losses] == list(range(1, len(losses) + 1))
        for logged in ("learning_rate", "grad_norm", "epoch"):
            history = client.get_metric_history(run.info.run_id, logged)
            assert [m.step for m in history] == [m.step for m in losses], logged
        evaluations = client.get_metric_history(run.info.run_id, "judged_ndcg_at_10")
        assert len(evaluations) == params["num_train_epochs"]
        if client.list_artifacts(run.info.run_id, "model"):
            with_model.append(run.info.run_id)
        else:
            assert run.data.tags.get("model_deleted") in (None, "true")
    assert with_model == [result.best_run_id]
    best = client.get_run(result.best_run_id)
    assert best.data.metrics["judged_ndcg_at_10"] == metrics["best"]
    assert best.data.tags["clicktune.decision"] == "promoted"
    assert best.data.tags["clicktune.evidence"] == "judged"
    assert best.data.tags["clicktune.promotion_reason"] == metrics["promotion_reason"]
    champion = client.get_model_version_by_alias(TINY_METHOD, "champion")
    assert champion.run_id == result.best_run_id
    assert best.data.tags["clicktune.model_version"] == str(champion.version)
    assert champion.tags["clicktune.champion.task_id"] == task_id
    assert champion.tags["clicktune.champion.reason"] == metrics["promotion_reason"]

    messages = [e["message"] for e in events(engine, task_id)]
    for expected in (
        "Preparing training examples",
        "Deciding on judged set 'golden'",
        "Evaluating the starting model",
        "Baseline judged_ndcg_at_10",
        "Run run-1 started",
        "Run run-1 finished",
        "Run run-2 started",
        "Run run-2 finished",
        "Promoted run-",
        "Removing temporary folders",
    ):
        assert any(m.startswith(expected) for m in messages), expected
    progress = task_row(engine, task_id).progress
    assert progress == {
        "stage": "done",
        "runs_total": 2,
        "runs_done": 2,
        "current_run": None,
        "percent": 100.0,
    }

    # The second iteration starts from the champion, tries the first one's best parameters
    # first, and retires the first iteration's experiment (its registered version stays).
    second_shop = Shop(seed=2)
    second_batch = load_batch(engine, second_shop, second_shop.sessions(per_query=2))
    with claimed_context(
        engine, psettings, TINY_METHOD, second_batch, validation_set=golden
    ) as context:
        second = method.run(context)
    second_experiment = client.get_experiment_by_name(second.mlflow_experiment)
    assert second_experiment.tags["starting_run_id"] == result.best_run_id
    first_run_1 = client.search_runs(
        [second_experiment.experiment_id], filter_string="attributes.run_name = 'run-1'"
    )[0]
    assert first_run_1.data.params == best.data.params
    assert client.get_experiment(experiment.experiment_id).lifecycle_stage == "deleted"
    active = {e.name for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)}
    assert result.mlflow_experiment not in active
    assert client.get_model_version(TINY_METHOD, champion.version).run_id == result.best_run_id
    second_messages = [e["message"] for e in events(engine, context.task.task_id)]
    assert any(m.startswith("Removed the previous iteration's experiment") for m in second_messages)
    assert any(m.startswith("Trying the 1 best parameter sets") for m in second_messages)


def test_not_promoted_when_the_best_run_does_not_beat_the_baseline(
    engine: Engine, psettings: Settings, registry: MethodRegistry
) -> None:
    shop = Shop()
    batch = load_batch(engine, shop, shop.sessions(per_query=2))
    golden = load_judged_set(engine, "golden", shop.judgments())
    with claimed_context(
        engine, psettings, TINY_METHOD, batch, {"learning_rate": 0.0}, validation_set=golden
    ) as context:
        result = registry.get(TINY_METHOD).run(context)
    assert (result.promoted, result.challenger) == (False, False)
    assert result.metrics is not None
    assert result.metrics["best"] == result.metrics["baseline"]
    assert result.metrics["gain"] == 0.0 and result.metrics["gain_interval"] == [0.0, 0.0]
    assert result.metrics["ties"] == result.metrics["queries"]
    assert result.best_model_uri == f"runs:/{result.best_run_id}/model"
    client = make_client(psettings)
    assert client.search_registered_models() == []
    [reason] = [
        e for e in events(engine, context.task.task_id) if e["data"].get("promoted") is False
    ]
    assert reason["level"] == "warning"
    assert reason["message"].startswith("Not promoted: on judged set 'golden'")
    assert reason["message"] == result.metrics["promotion_reason"]
    experiment = client.get_experiment_by_name(result.mlflow_experiment)
    for run in client.search_runs([experiment.experiment_id]):
        assert run.data.params.get("learning_rate") in (None, "0.0")


def test_every_run_failing_fails_the_task_with_the_first_failure(
    engine: Engine, psettings: Settings, registry: MethodRegistry
) -> None:
    shop = Shop()
    batch = load_batch(engine, shop, shop.sessions(per_query=2))
    golden = load_judged_set(engine, "golden", shop.judgments())
    task_id = create_task(engine, batch, method=BROKEN_METHOD, validation_set=golden)
    with in_process_worker(psettings, engine, registry):
        task = wait_for(lambda: task_in(engine, task_id, "error"), 120, "the task to fail")
    assert task.error["code"] == "all_runs_failed"
    message = task.error["message"]
    assert message.startswith("Every training run failed; the first failure: AttributeError")
    assert "NoSuchLoss" in message
    assert not any(psettings.work_dir.iterdir())
    client = make_client(psettings)
    experiment = client.get_experiment_by_name(f"iteration / {BROKEN_METHOD} / {batch}")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert runs["run-1"].info.status == runs["run-2"].info.status == "FAILED"
    assert "NoSuchLoss" in runs["run-1"].data.tags["clicktune.error"]
    failed = [e for e in events(engine, task_id) if e["level"] == "error"]
    assert [e["message"].split(":")[0] for e in failed][:2] == [
        "Run run-1 failed",
        "Run run-2 failed",
    ]


def test_a_batch_without_item_content_fails_before_training(
    engine: Engine, psettings: Settings, registry: MethodRegistry
) -> None:
    shop = Shop()
    sessions = shop.sessions(per_query=1)
    for session in sessions:
        for result in session["search_results"]:
            result["object_id"] = "unknown-" + result["object_id"]
        for event in session["events"]:
            event["object_id"] = "unknown-" + event["object_id"]
    batch = load_batch(engine, shop, sessions)
    with (
        claimed_context(engine, psettings, TINY_METHOD, batch) as context,
        pytest.raises(TaskFailed) as failure,
    ):
        registry.get(TINY_METHOD).run(context)
    assert failure.value.code == "no_training_data"
    assert (
        make_client(psettings).search_experiments(filter_string="name LIKE 'iteration / %'") == []
    )


def worker_options() -> dict[str, str]:
    return {TINY_MODEL_ENV: str(tiny_model_path()), "OMP_NUM_THREADS": "1"}


def create_task(
    engine: Engine,
    batch_id: str,
    method: str = TINY_METHOD,
    validation_set: str | None = None,
    **hyperparameters: Any,
) -> str:
    new = task_store.NewTask(
        fine_tuning_method=method,
        batch_id=batch_id,
        metadata={},
        hyperparameters=hyperparameters,
        idempotency_key=None,
        request_hash="test",
        validation_set=validation_set,
    )
    with write_transaction(engine) as conn:
        return task_store.create_task(conn, new).task.id


@contextmanager
def in_process_worker(
    settings: Settings, engine: Engine, registry: MethodRegistry
) -> Iterator[Worker]:
    """The worker's own loop and heartbeat in a thread of this process (torch is loaded here)."""
    fast = settings.model_copy(
        update={"worker_heartbeat_s": 0.2, "worker_poll_s": 0.05, "worker_lease_s": 2.0}
    )
    worker = Worker(fast, engine, registry)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.request_stop()
        thread.join(60)
    assert not thread.is_alive()


def task_in(engine: Engine, task_id: str, *statuses: str) -> task_store.Task | None:
    task = task_row(engine, task_id)
    return task if task.status in statuses else None


def event_seen(engine: Engine, task_id: str, prefix: str) -> bool:
    return any(e["message"].startswith(prefix) for e in events(engine, task_id))


def test_cancel_during_training_stops_the_worker_and_leaves_no_folders(
    engine: Engine, psettings: Settings, registry: MethodRegistry
) -> None:
    shop = Shop()
    batch = load_batch(engine, shop, shop.sessions(per_query=4))
    golden = load_judged_set(engine, "golden", shop.judgments())
    task_id = create_task(
        engine, batch, validation_set=golden, num_train_epochs=3, per_device_train_batch_size=4
    )
    with in_process_worker(psettings, engine, registry):
        wait_for(lambda: event_seen(engine, task_id, "Run run-1 started"), 300, "run-1")
        with write_transaction(engine) as conn:
            task_store.cancel_task(conn, task_id)
        wait_for(lambda: not any(psettings.work_dir.iterdir()), 60, "the work folder to go")
    assert task_row(engine, task_id).status == "canceled"
    client = make_client(psettings)
    experiment = client.get_experiment_by_name(f"iteration / {TINY_METHOD} / {batch}")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert runs["run-1"].info.status == "KILLED"
    assert "run-2" not in runs
    assert not any(e["message"].startswith("Run run-1 finished") for e in events(engine, task_id))


def test_a_reclaimed_task_resumes_without_rerunning_finished_runs(
    engine: Engine, psettings: Settings, tmp_path: Path
) -> None:
    shop = Shop()
    # Judged queries are kept out of training: enough sessions that run-2 outlasts the
    # tiny method's one-second checkpoint interval several times over.
    batch = load_batch(engine, shop, shop.sessions(per_query=12))
    golden = load_judged_set(engine, "golden", shop.judgments())
    task_id = create_task(
        engine, batch, validation_set=golden, num_train_epochs=3, per_device_train_batch_size=4
    )
    run_2 = psettings.work_dir / task_id / "iteration" / "runs" / "run-2" / "checkpoints"
    with workers(psettings, tmp_path, **worker_options()) as [first]:
        wait_for(
            lambda: (
                list(run_2.glob("checkpoint-*/trainer_state.json"))
                or task_in(engine, task_id, "done", "error")
            ),
            300,
            "a checkpoint of run-2",
        )
        assert task_row(engine, task_id).status == "processing"
        first.signal(signal.SIGKILL)
        first.wait()
    client = make_client(psettings)
    experiment = client.get_experiment_by_name(f"iteration / {TINY_METHOD} / {batch}")
    before = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert before["run-1"].info.status == "FINISHED"
    assert before["run-2"].info.status == "RUNNING"
    seen = len(events(engine, task_id))
    # The next worker runs in this process (it has torch loaded already) once the lease expires.
    with in_process_worker(psettings, engine, load_registry(psettings)) as second:
        wait_for(lambda: task_in(engine, task_id, "done"), 180, "the task to finish")
    task = task_row(engine, task_id)
    assert task.lease_owner == second.worker_id
    assert task.attempts == 2
    after = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert after["run-1"].info.run_id == before["run-1"].info.run_id
    assert after["run-1"].info.end_time == before["run-1"].info.end_time
    assert after["run-2"].info.run_id == before["run-2"].info.run_id
    assert after["run-2"].info.status == "FINISHED"
    later = [e for e in events(engine, task_id)[seen:]]
    later_messages = [e["message"] for e in later]
    assert not any(m.startswith("Run run-1") for m in later_messages)
    [finished] = [e for e in later if e["message"].startswith("Run run-2 finished")]
    assert finished["data"]["resumed_from_step"] > 0
    assert task.best_run_id in {after["run-1"].info.run_id, after["run-2"].info.run_id}
    assert not any(psettings.work_dir.iterdir())

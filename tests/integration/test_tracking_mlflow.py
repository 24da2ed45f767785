"""The MLflow layout on a real local store: initial runs, iterations, the kept model (in MLflow's
sentence_transformers flavour), the registry's champion and challenger."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
import mlflow.sentence_transformers
import numpy as np
import pytest
from mlflow.entities import ViewType
from sentence_transformers import SentenceTransformer

from clicktune.settings import Settings
from clicktune.simulate.service import free_port
from clicktune.tracking.iterations import (
    INITIAL_EXPERIMENT,
    KIND_TRIAL,
    TAG_MODEL_DELETED,
    MethodTracking,
    iteration_name,
)
from clicktune.tracking.model_cache import ModelStore
from clicktune.tracking.registry import CHALLENGER, CHAMPION, AliasMove
from clicktune.tracking.server import mlflow_ui_command
from tests.pipeline_support import tiny_model_path, with_mlflow_store
from tests.task_support import wait_for

METHOD = "Tracking Test Method"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A fresh store, also where plain `mlflow` calls look (as a user's script would set it)."""
    settings = with_mlflow_store(Settings(data_dir=tmp_path / "data"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.effective_mlflow_tracking_uri)
    return settings


@pytest.fixture
def model_dir() -> Path:
    return tiny_model_path()


def _move(task_id: str, reason: str) -> AliasMove:
    return AliasMove(task_id, reason, {"evidence": "judged"})


def _embeds_like(folder: Path, model_dir: Path) -> bool:
    texts = ["crimson sneaker", "hat in blue by zenith"]
    kept = SentenceTransformer(str(folder), device="cpu").encode(texts)
    return bool(np.allclose(kept, SentenceTransformer(str(model_dir)).encode(texts), atol=1e-6))


def test_initial_model_is_uploaded_once_per_method(settings: Settings, model_dir: Path) -> None:
    tracking = MethodTracking(settings, METHOD, METHOD)
    uploads = []

    def provide() -> Path:
        uploads.append(1)
        return model_dir

    first = tracking.initial_run(provide)
    assert tracking.initial_run(provide) == first
    assert len(uploads) == 1
    other = MethodTracking(settings, "Another Method", "Another Method").initial_run(provide)
    assert other != first
    client = tracking.client
    experiment = client.get_experiment_by_name(INITIAL_EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(run.info.run_name for run in runs) == ["Another Method", METHOD]
    kept = {f.path for f in client.list_artifacts(first, "model")}
    assert {"model/MLmodel", "model/model.sentence_transformer"} <= kept
    loaded = mlflow.sentence_transformers.load_model(f"runs:/{first}/model")
    assert loaded.encode(["navy tote"]).shape == (1, 32)
    assert experiment.artifact_location == settings.mlflow_artifacts_dir.as_uri()


def test_iteration_experiment_is_tagged_and_found_again(
    settings: Settings, model_dir: Path
) -> None:
    tracking = MethodTracking(settings, METHOD, METHOD)
    start = tracking.initial_run(lambda: model_dir)
    iteration = tracking.open_iteration("task-1", "batch-1", start)
    assert iteration.name == iteration_name(METHOD, "batch-1") == f"iteration / {METHOD} / batch-1"
    tags = tracking.client.get_experiment(iteration.experiment_id).tags
    assert {
        k: tags[k] for k in ("task_id", "fine_tuning_method", "batch_id", "starting_run_id")
    } == {
        "task_id": "task-1",
        "fine_tuning_method": METHOD,
        "batch_id": "batch-1",
        "starting_run_id": start,
    }
    again = tracking.open_iteration("task-1", "batch-1", "another-start")
    assert again.experiment_id == iteration.experiment_id
    assert again.starting_run_id == start  # a later attempt keeps the first attempt's start
    other = tracking.open_iteration("task-2", "batch-1", start)
    assert other.name == f"iteration / {METHOD} / batch-1 / task-2"


def test_one_model_per_iteration_promotion_and_retiring(
    settings: Settings, model_dir: Path, tmp_path: Path
) -> None:
    tracking = MethodTracking(settings, METHOD, "tracking-test-model")
    client = tracking.client
    first = tracking.open_iteration("task-1", "batch-1", tracking.initial_run(lambda: model_dir))
    run_a = first.start_run("run-1", KIND_TRIAL, {"learning_rate": 1e-5})
    first.save_model(run_a, model_dir)
    first.finish_run(run_a)
    run_b = first.start_run("run-2", KIND_TRIAL, {"learning_rate": 2e-5})
    first.save_model(run_b, model_dir)
    first.delete_model(run_a)
    first.finish_run(run_b)
    assert client.list_artifacts(run_a) == []
    assert client.get_run(run_a).data.tags[TAG_MODEL_DELETED] == "true"
    assert [f.path for f in client.list_artifacts(run_b)] == ["model"]

    assert tracking.champion() is None
    assert tracking.registry.promote(run_b, _move("task-1", "first")) == "1"
    assert tracking.registry.promote(run_b, _move("task-1", "first, again")) == "1"
    assert tracking.champion().run_id == run_b
    first.complete(run_b, {"clicktune.decision": "promoted"}, promoted=True, challenger=False)
    assert tracking.previous_iteration().experiment_id == first.experiment_id

    second = tracking.open_iteration("task-2", "batch-2", tracking.champion().run_id)
    assert second.starting_run_id == run_b
    second.complete(run_b, {}, promoted=False, challenger=False)
    assert tracking.retire_previous_iterations(second.experiment_id) == [first.name]
    deleted = client.get_experiment(first.experiment_id)
    assert deleted.lifecycle_stage == "deleted"
    assert tracking.previous_iteration(second.experiment_id) is None
    # The registered version outlives its experiment, and still downloads.
    version = tracking.champion()
    assert str(version.version) == "1"
    folder = ModelStore(settings).version_model_dir("tracking-test-model", version)
    assert _embeds_like(folder, model_dir)
    champion = mlflow.sentence_transformers.load_model("models:/tracking-test-model@champion")
    assert champion.encode(["navy tote"]).shape == (1, 32)
    active = client.search_experiments(view_type=ViewType.ACTIVE_ONLY)
    assert first.name not in {e.name for e in active}


def test_top_parameter_sets_best_first(settings: Settings, model_dir: Path) -> None:
    tracking = MethodTracking(settings, METHOD, METHOD)
    iteration = tracking.open_iteration("task-1", "batch-1", "start")
    for number, (rate, score) in enumerate([(1e-5, 0.3), (2e-5, 0.5), (3e-5, 0.4)], start=1):
        run_id = iteration.start_run(f"run-{number}", KIND_TRIAL, {"learning_rate": rate})
        iteration.log_metrics(run_id, {"judged_ndcg_at_10": score}, step=1)
        iteration.finish_run(run_id)
    failed = iteration.start_run("run-4", KIND_TRIAL, {"learning_rate": 4e-5})
    iteration.fail_run(failed, "boom")
    top = tracking.top_parameter_sets(iteration.experiment_id, "judged_ndcg_at_10", 2)
    assert top == [{"learning_rate": "2e-05"}, {"learning_rate": "3e-05"}]
    assert iteration.runs()["run-4"].status == "FAILED"


def test_challenger_moves_and_the_history_says_why(settings: Settings, model_dir: Path) -> None:
    tracking = MethodTracking(settings, METHOD, "alias-test-model")
    registry = tracking.registry
    iteration = tracking.open_iteration(
        "task-1", "batch-1", tracking.initial_run(lambda: model_dir)
    )
    runs = []
    for number in (1, 2, 3):
        run_id = iteration.start_run(f"run-{number}", KIND_TRIAL)
        iteration.save_model(run_id, model_dir)
        iteration.finish_run(run_id)
        runs.append(run_id)
    assert registry.version(CHALLENGER) is None
    assert registry.make_challenger(runs[0], _move("task-1", "no judged set")) == "1"
    assert registry.make_challenger(runs[1], _move("task-2", "no judged set")) == "2"
    assert registry.version(CHALLENGER).run_id == runs[1]
    assert registry.promote(runs[2], _move("task-3", "judged: better")) == "3"
    # Promoting the challenger itself ends its time as challenger.
    assert registry.promote(runs[1], _move("task-4", "online: better")) == "2"
    assert registry.version(CHALLENGER) is None
    assert registry.version(CHAMPION).run_id == runs[1]
    history = registry.history()
    assert [(m["event"], m["version"], m["task_id"]) for m in history] == [
        ("champion", "2", "task-4"),
        ("champion", "3", "task-3"),
        ("retired", "1", "task-2"),
        ("challenger", "2", "task-2"),
        ("challenger", "1", "task-1"),
    ]
    assert history[0]["reason"] == "online: better"
    assert history[0]["evidence"] == {"evidence": "judged"}
    aliases = registry.aliases()
    assert aliases["challenger"] is None
    assert aliases["champion"]["version"] == "2"
    assert aliases["champion"]["task_id"] == "task-2"  # the task whose run made the version
    assert aliases["champion"]["decided_by"] == "task-4"


def test_the_mlflow_ui_shows_the_store_and_refuses_every_write(
    settings: Settings, model_dir: Path
) -> None:
    MethodTracking(settings, METHOD, METHOD).initial_run(lambda: model_dir)
    port = free_port()
    command, env = mlflow_ui_command(settings.model_copy(update={"mlflow_port": port}))
    assert settings.effective_mlflow_tracking_uri not in " ".join(command)
    process = subprocess.Popen(
        command,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    ui = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    try:

        def experiments() -> list[str] | None:
            try:
                response = ui.post(
                    "/ajax-api/2.0/mlflow/experiments/search", json={"max_results": 10}
                )
            except httpx.TransportError:
                return None
            return [e["name"] for e in response.json()["experiments"]]

        assert INITIAL_EXPERIMENT in wait_for(experiments, 60, "the MLflow UI")
        writes = [
            ui.post("/api/2.0/mlflow/experiments/create", json={"name": "intruder"}),
            ui.post("/ajax-api/2.0/mlflow/runs/set-tag", json={"key": "k", "value": "v"}),
            ui.post(
                "/api/2.0/mlflow/registered-models/alias",
                json={"name": METHOD, "alias": "champion", "version": "1"},
            ),
            ui.put("/api/2.0/mlflow-artifacts/artifacts/0/model/weights.bin", content=b"evil"),
            ui.get("/ajax-api/2.0/mlflow/gateway-proxy"),
        ]
        assert [w.status_code for w in writes] == [403] * len(writes)
        assert writes[0].json()["error_code"] == "PERMISSION_DENIED"
        assert "intruder" not in (experiments() or [])
    finally:
        ui.close()
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    with pytest.raises(ValueError):
        mlflow_ui_command(settings.model_copy(update={"mlflow_tracking_uri": "http://mlflow:5000"}))

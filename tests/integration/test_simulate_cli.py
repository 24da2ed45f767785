"""`clicktune simulate` and the Python client against a running service, end to end.

Real processes: `clicktune up` (API + worker, SQLite) with the tiny test method, the simulate
command as a user runs it, a fine-tuning task followed and its model downloaded by the client,
then a second simulation served by the tuned model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from clicktune.client import ClicktuneClient
from clicktune.settings import Settings
from clicktune.simulate.service import free_port, instance_env, local_url, running
from tests.pipeline_support import (
    COLORS,
    KINDS,
    PLUGINS_DIR,
    TINY_METHOD,
    TINY_MODEL_ENV,
    Shop,
    tiny_model_path,
    with_mlflow_store,
)

CLICKTUNE = str(Path(sys.executable).parent / "clicktune")


def write_shop_collection(root: Path) -> Path:
    """The test shop as a collection: exact items grade 3, the same kind in another color 1."""
    shop = Shop()
    root.mkdir()
    corpus = [{"id": oid, "title": "", "text": text} for oid, text in shop.items.items()]
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    queries, qrels = [], ["query-id\tdoc-id\tgrade"]
    for n, (query, color, kind) in enumerate(shop.queries()):
        queries.append(json.dumps({"id": f"q{n}", "text": query}) + "\n")
        for oid in shop.items:
            if oid.startswith(f"{color}-{kind}-"):
                qrels.append(f"q{n}\t{oid}\t3")
            elif f"-{kind}-" in oid:
                qrels.append(f"q{n}\t{oid}\t1")
    (root / "queries.jsonl").write_text("".join(queries))
    (root / "qrels.tsv").write_text("\n".join(qrels) + "\n")
    assert len(queries) == len(COLORS) * len(KINDS)
    return root


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    data_dir = tmp_path / "data"
    with_mlflow_store(Settings(data_dir=data_dir))
    env = instance_env(data_dir, plugins_path=str(PLUGINS_DIR), worker_poll_s="0.2") | {
        TINY_MODEL_ENV: str(tiny_model_path())
    }
    url = local_url(env)
    with running("up", env, url, timeout_s=60):
        yield url, env


def simulate(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [CLICKTUNE, "simulate", *args],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_simulate_train_download_and_serve_the_tuned_model(
    service: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, env = service
    collection = str(write_shop_collection(tmp_path / "shop"))
    common = ["--collection", collection, "--url", url, "--queries", "all", "--no-bf16"]
    first = simulate(env, *common, "--model", str(tiny_model_path()), "--eps", "0.5")
    assert "sent 75 sessions" in first.stdout
    with ClicktuneClient(url) as client:
        collecting = client.list_batches(status="collecting")["data"][0]
        assert collecting["sessions"] == 75
        assert client.get_item("red-shoe-acme")["text"] == "shoe in red by acme"

        again = simulate(
            env, *common, "--model", str(tiny_model_path()), "--eps", "0.5", "--via", "import"
        )
        assert "imported 0 sessions" in again.stdout
        assert "0 bad lines" in again.stdout
        assert client.get_batch(collecting["batch_id"])["sessions"] == 75

        task = client.create_task(
            TINY_METHOD,
            hyperparameters={
                "learning_rate": 0.005,
                "num_train_epochs": 1,
                "per_device_train_batch_size": 8,
                "num_hard_negatives": 1,
                "warmup_ratio": 0.0,
            },
        )
        assert task["batch_id"] == collecting["batch_id"]
        stages: list[str] = []
        done = client.wait_for_task(
            task["id"],
            on_progress=lambda t: stages.append((t["progress"] or {}).get("stage", "")),
            poll_s=0.2,
            timeout_s=180,
        )
        assert done["status"] == "done", done["error"]
        assert stages[-1] == "done"
        model_dir = client.download_model(task["id"], tmp_path / "tuned")
        assert (model_dir / "modules.json").exists()
        with pytest.raises(FileExistsError):
            client.download_model(task["id"], model_dir)

    served = simulate(env, *common, "--task", task["id"], "--no-items", "--release")
    assert "sent 75 sessions" in served.stdout
    assert "released batch" in served.stdout

    # Without a judged set the task's model became the challenger: live traffic compares it.
    assert done["challenger"] is True
    online = [*common, "--no-items", "--method", TINY_METHOD, "--model", str(tiny_model_path())]
    interleaved = simulate(env, *online, "--seed", "1", "--interleave", "--release")
    assert "interleaved traffic: champion" in interleaved.stdout
    assert "sent 75 sessions" in interleaved.stdout
    ab = simulate(env, *online, "--seed", "2", "--challenger-share", "0.5")
    assert "of the users to the challenger (expected 50%)" in ab.stdout
    with ClicktuneClient(url) as client:
        released = client.list_batches(status="released")["data"][0]
        report = client.comparison(released["batch_id"], TINY_METHOD)
        assert report["challenger"] == f"{TINY_METHOD}/v1"
        assert report["interleaving"]["sessions"] == 75
        collecting = client.list_batches(status="collecting")["data"][0]
        arms = client.comparison(collecting["batch_id"], TINY_METHOD)["arms"]
        assert sum(arm["sessions"] for arm in arms) == 75
        assert {arm["served_by"] for arm in arms} <= {report["champion"], report["challenger"]}


def run_against_nothing(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A CLI command pointed at a port where no service listens."""
    done = subprocess.run(
        [CLICKTUNE, *args, "--url", f"http://127.0.0.1:{free_port()}"],
        env={**os.environ, "COLUMNS": "200", "CLICKTUNE_DATA_DIR": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    return done


def test_simulate_says_so_when_the_service_is_unreachable(tmp_path: Path) -> None:
    collection = str(write_shop_collection(tmp_path / "shop"))
    done = run_against_nothing(tmp_path, "simulate", "--collection", collection)
    assert "simulation failed: cannot reach the service" in done.stdout


def test_demo_says_so_when_the_service_is_unreachable(tmp_path: Path) -> None:
    done = run_against_nothing(tmp_path, "demo", "--quick")
    assert "demo failed: lost the service" in done.stdout
    assert "clicktune up" in done.stdout

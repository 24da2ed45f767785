"""Generated requests at the fine-tuning endpoints: a 4xx in the error format or 2xx, no 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clicktune.api.app import create_app
from clicktune.settings import Settings
from tests.task_support import PLUGINS_DIR, STEPS_METHOD, released_batch

DEFAULT_METHOD = "Default Fine Tuning Method"
EXAMPLES = 60

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
strings = st.text(max_size=300)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data_dir: Path = tmp_path_factory.mktemp("no500")
    app_settings = Settings(data_dir=data_dir, plugins_path=PLUGINS_DIR, public_url="http://t")
    with TestClient(create_app(app_settings)) as client:
        yield client


@pytest.fixture(scope="module")
def batch_id(client: TestClient) -> str:
    return released_batch(client)


def _check(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"code", "message", "param"}
        assert error["code"] and error["message"]


def _hyperparameters(method: str) -> st.SearchStrategy[Any]:
    names = {
        STEPS_METHOD: ["steps", "step_s", "fail", "fail_until_attempt", "runs_dir", "quiet"],
        DEFAULT_METHOD: [
            "learning_rate",
            "num_train_epochs",
            "per_device_train_batch_size",
            "num_hard_negatives",
            "warmup_ratio",
        ],
    }[method]
    return (
        st.dictionaries(st.sampled_from([*names, "unknown"]), json_values, max_size=4) | json_values
    )


@st.composite
def create_bodies(draw: st.DrawFn, batch_id: str) -> Any:
    method = draw(st.sampled_from([STEPS_METHOD, DEFAULT_METHOD]))
    body: dict[str, Any] = {}
    fields = {
        "fine_tuning_method": st.just(method) | json_values,
        "batch_id": st.just(batch_id) | st.none() | strings | json_values,
        "metadata": st.dictionaries(strings, json_values, max_size=3) | json_values,
        "idempotency_key": strings | json_values,
        "hyperparameters": _hyperparameters(method),
    }
    for name, strategy in fields.items():
        if draw(st.booleans()):
            body[name] = draw(strategy)
    if draw(st.booleans()):
        body[draw(st.text(max_size=10))] = draw(json_values)
    return draw(st.just(body) | json_values) if draw(st.integers(0, 9)) == 0 else body


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_create_never_500(client: TestClient, batch_id: str, data: st.DataObject) -> None:
    body = data.draw(create_bodies(batch_id))
    _check(client.post("/api/v1/fine-tuning/task", json=body))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    task_id=strings, after=strings, status=strings, method=strings, limit=strings, offset=strings
)
def test_reads_and_transitions_never_500(
    client: TestClient, task_id: str, after: str, status: str, method: str, limit: str, offset: str
) -> None:
    params = {"status": status, "fine_tuning_method": method, "limit": limit, "offset": offset}
    _check(client.get("/api/v1/fine-tuning/task", params=params))
    path = f"/api/v1/fine-tuning/task/{quote(task_id, safe='')}"
    _check(client.get(path))
    _check(client.get(f"{path}/events", params={"after": after, "limit": limit}))
    _check(client.put(f"{path}/cancel"))
    _check(client.put(f"{path}/restart"))
